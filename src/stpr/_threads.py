"""OpenMP wait policy for machines that other processes share.

PyTorch's CPU wheels run their intra-op thread pool on GNU OpenMP (libgomp). By default a libgomp
worker that finishes its share spins (busy-waits ~300,000 iterations) before sleeping. Alone on a
machine that saves a wake-up; beside another busy process the spinning threads take the cores
from the threads they wait for, and two `stpr enhance` jobs on 2 cores each ran ~4x slower than
one after the other. A passive policy (sleep at once) costs a lone job little and makes two jobs
cost about their share (`stpr bench --side-by-side 2` measures both).

libgomp reads its environment once, when it is loaded, so this must run before ``torch`` is
imported: ``stpr/__init__.py`` calls it first thing. A value the user set is kept.
"""

from __future__ import annotations

import os
import sys

# Variables whose presence means the user chose a policy: GOMP_SPINCOUNT overrides
# OMP_WAIT_POLICY in libgomp; KMP_BLOCKTIME is Intel OpenMP's (a torch built against it).
USER_POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def set_passive_openmp(environ: dict | None = None) -> bool:
    """Ask OpenMP threads to sleep rather than spin while they wait. Returns whether it applied:
    not when the user chose a policy, nor when torch is already loaded (too late to matter)."""
    env = os.environ if environ is None else environ
    if any(v in env for v in USER_POLICY_VARS) or "torch" in sys.modules:
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["KMP_BLOCKTIME"] = "0"
    return True
