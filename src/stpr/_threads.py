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
import time

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


class OtherLoad:
    """How many cores other processes keep busy, from the kernel's CPU counters (Linux).

    Why it matters: torch's intra-op threads meet at a barrier after every operation. When another
    process holds a core, the thread that shares it waits for a time slice at each barrier, and a
    2-thread enhancement beside a busy process ran ~30x slower than with one thread (1.2 against
    34.5 frames/s here, docs/research/speed-and-memory.md). ``Enhancer`` asks this every
    ``stpr.enhance.LOAD_CHECK_SECONDS`` and runs on the cores the others leave.

    ``busy()`` returns the mean number of cores that other processes used since the previous call
    (system-wide busy time less this process's own CPU time; a hypervisor's steal is not counted),
    or None where /proc/stat cannot be read.
    """

    def __init__(self, stat_path: str = "/proc/stat", clock=None, own_cpu=None):
        self._path = stat_path
        self._clock = clock or time.monotonic
        self._own = own_cpu or (lambda: sum(os.times()[:2]))
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        try:
            with open(self._path) as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu" or len(fields) < 8:
            return None
        # user nice system idle iowait irq softirq [steal ...]: busy is all but idle and iowait
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
        busy = (user + nice + system + irq + softirq) / self._hz
        return self._clock(), busy, self._own()

    def busy(self) -> float | None:
        now = self._sample()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0]))


def cores_available() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
