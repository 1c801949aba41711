"""OpenMP wait policy (issue: two jobs on a shared machine ran ~4x slower than one after the other)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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


def _stat(tmp_path, busy: int, idle: int):
    # user nice system idle iowait irq softirq steal: busy split over user and system
    (tmp_path / "stat").write_text(f"cpu  {busy - busy // 4} 0 {busy // 4} {idle} 7 0 0 50 0 0\ncpu0 1 2 3 4\n")
    return str(tmp_path / "stat")


def test_other_load_counts_busy_cores_less_this_process(tmp_path):
    from stpr._threads import OtherLoad

    clock, own = [0.0], [0.0]
    path = _stat(tmp_path, 0, 0)
    load = OtherLoad(path, clock=lambda: clock[0], own_cpu=lambda: own[0])
    hz = load._hz
    # 2 s pass: the machine was busy for 3 core-seconds, 1 of them ours -> others kept 1 core busy
    clock[0], own[0] = 2.0, 1.0
    _stat(tmp_path, 3 * hz, 1 * hz)
    assert abs(load.busy() - 1.0) < 1e-9
    # next second: busy only by us -> 0 (never negative)
    clock[0], own[0] = 3.0, 2.5
    _stat(tmp_path, 4 * hz, 1 * hz)
    assert load.busy() == 0.0


def test_other_load_without_proc_stat_is_none(tmp_path):
    from stpr._threads import OtherLoad

    load = OtherLoad(str(tmp_path / "missing"))
    assert load.busy() is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert OtherLoad(str(tmp_path / "odd")).busy() is None


def test_other_load_reads_this_machine():
    from stpr._threads import OtherLoad, cores_available

    load = OtherLoad()
    # the kernel counts CPU time in ticks (10 ms): over the ~15 ms a short loop took, one tick more
    # read 2.75 busy cores on this 2-core machine; the product looks 0.25 s apart or more, so does this
    time.sleep(0.3)
    busy = load.busy()
    assert busy is None or 0.0 <= busy <= os.cpu_count() + 0.5
    assert cores_available() >= 1
