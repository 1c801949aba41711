"""OpenMP wait policy (issue: two jobs on a shared machine ran ~4x slower than one after the other)."""

from __future__ import annotations

import os
import subprocess
import sys

from stpr._threads import USER_POLICY_VARS, set_passive_openmp


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in USER_POLICY_VARS}


def _child(code: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_stpr_sets_passive_before_torch_loads():
    # What libgomp reads when torch loads it: the environment at that moment.
    code = ("import os, stpr, sys; assert 'torch' in sys.modules; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('KMP_BLOCKTIME'))")
    assert _child(code, _clean_env()) == "PASSIVE 0"


def test_the_cli_entry_point_sets_it_too():
    code = "import os, stpr.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert _child(code, _clean_env()) == "PASSIVE"


def test_a_users_choice_is_kept():
    for var, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "5000")):
        env = {**_clean_env(), var: value}
        code = f"import os, stpr; print(os.environ.get('{var}'), os.environ.get('OMP_WAIT_POLICY'))"
        expect = f"{value} ACTIVE" if var == "OMP_WAIT_POLICY" else f"{value} None"
        assert _child(code, env) == expect


def test_too_late_once_torch_is_loaded():
    env: dict = {}
    assert "torch" in sys.modules  # the test process has torch loaded
    assert set_passive_openmp(env) is False and env == {}
