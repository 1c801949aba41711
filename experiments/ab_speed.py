"""Interleaved A/B speed test of streaming enhancement between source trees and precisions.

    git worktree add /tmp/before <commit>
    .venv/bin/python experiments/ab_speed.py /tmp/before/src:fp32 /tmp/before/src:bf16 src:fp32 src:bf16

Each case is ``SRC:PRECISION``: the ``src`` folder to import stpr from and fp32 or bf16. Every round
runs each case once, in its own process (so no case warms another's caches), in turn; the
median over ``--rounds`` is printed. This machine is shared with other virtual machines and one
run can be 30 % off another, so only interleaved medians are compared. The rate is model only:
``Enhancer.enhance_frames`` on frames already in memory (640x360 by default), after a warm-up.
Trees from before ``--precision`` existed take ``bf16=True`` instead. ``--model fast`` times the
fast model (trees that have it); ``--batch 1 2`` times each case with one and with two windows per
network call; ``--workers 1 2`` with one and two frames at once, each in its own thread (trees
that have ``Enhancer(workers=)``); ``--env '' MALLOC_TOP_PAD_=268435456`` with none and with that
environment (comma-separated ``NAME=VALUE`` pairs); ``--busy 1``: beside one process that keeps a core
busy. Each child also reports its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import inspect, json, sys, time
import numpy as np, torch
import stpr.enhance
from stpr.enhance import Enhancer
if hasattr(stpr.enhance, "tune_malloc"):  # as `stpr enhance` does, in trees that have it
    stpr.enhance.tune_malloc()
precision, w, h, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = sys.argv[5] or None
batch, workers = int(sys.argv[6]), int(sys.argv[7])
params = inspect.signature(Enhancer.__init__).parameters
kw = {"precision": precision, "device": "cpu"} if "precision" in params else {"bf16": precision == "bf16"}
frames = list((np.random.default_rng(0).random((n, h, w, 3)) * 40).astype(np.uint8))
kw.update({"batch": batch} if batch > 1 else {})
kw.update({"workers": workers} if "workers" in params else {})
enh = Enhancer.from_pretrained(model, tile=0, **kw)
list(enh.enhance_frames(frames[:4]))
t0 = time.perf_counter()
k = sum(1 for _ in enh.enhance_frames(frames))
import resource
print(json.dumps({"fps": k / (time.perf_counter() - t0),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_interleaved(cases: dict[str, tuple[list[str], dict | None]], rounds: int,
                    busy: int = 0) -> dict[str, list[dict]]:
    """Run each case's command (argv, extra environment) once per round, the cases in turn, each
    in its own process; returns every case's JSON results (the last line it prints), one per round.
    ``busy``: that many processes spin on a core each while every case runs (a busy neighbour)."""
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (argv, env) in cases.items():
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            try:
                out = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                                     check=True).stdout
            finally:
                for s in spinners:
                    s.kill()
                    s.wait()
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    return results


def print_rates(rates: dict[str, list[float]], header: str, extra: dict[str, str] | None = None) -> None:
    """Median, range and ratio to the first case's median, as a Markdown table (``extra``: one more
    column, e.g. parameters, named in ``header``)."""
    first = statistics.median(rates[next(iter(rates))])
    cols = 5 if extra else 4
    print(header)
    print("|---|" + "---:|" * (cols - 3) + "---|---:|")
    for name, r in rates.items():
        med = statistics.median(r)
        mid = f" {extra[name]} |" if extra else ""
        print(f"| {name} |{mid} {med:.2f} | {min(r):.2f}–{max(r):.2f} | {med / first:.2f}× |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", metavar="SRC:PRECISION")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--model", default="", help="a shipped model's name or a weights file (default: quality)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1],
                    help="windows per network call; several values: each case at each batch")
    ap.add_argument("--workers", type=int, nargs="+", default=[1],
                    help="frames at once, one thread each; several values: each case at each")
    ap.add_argument("--env", nargs="+", default=[""],
                    help="extra environments, each comma-separated NAME=VALUE pairs ('' for none); each case in each")
    ap.add_argument("--busy", type=int, default=0,
                    help="processes that each keep a core busy while every case runs (a busy neighbour)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cases = {}
    for case in args.cases:
        src, precision = case.rsplit(":", 1)
        for b in args.batch:
            for k in args.workers:
                for extra in args.env:
                    argv = [sys.executable, "-c", CHILD, precision, str(w), str(h), str(args.frames), args.model,
                            str(b), str(k)]
                    name = case + (f" batch {b}" if len(args.batch) > 1 else "") + \
                        (f" workers {k}" if len(args.workers) > 1 else "") + \
                        (f" {extra or 'no env'}" if len(args.env) > 1 else "")
                    env = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
                    cases[name] = (argv, {"PYTHONPATH": os.path.abspath(src), **env})
    results = run_interleaved(cases, args.rounds, args.busy)
    print_rates({c: [r["fps"] for r in rs] for c, rs in results.items()},
                f"| case ({args.size}, model only) | peak RSS (MB) | median frames/s | range | vs first |",
                {c: f"{max(r.get('rss_mb', 0) for r in rs):.0f}" for c, rs in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
