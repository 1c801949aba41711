"""Speed-up of ``stpr batch --ray`` with more local Ray workers.

Generates N dark test clips, then enhances them all with a local Ray instance for each worker count
(1 and 2 by default), each actor with one torch thread, and prints the wall-clock per worker count
(median of ``--repeat`` interleaved rounds, after an untimed warm-up batch that pays Ray's one-time
start-up costs) and the speed-up over the first. The wall-clock covers what ``stpr batch`` does
after Ray is up: starting the actors (each imports torch and loads the model once), decoding,
enhancing, encoding.

Weights: the shipped ``stpr_default.safetensors`` if present, else an untrained default-size STPR
(same architecture, hence the same cost per frame).

    .venv/bin/python scripts/bench_batch.py --videos 4 --frames 64 --size 320x240 --workers 1,2
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clips(folder: Path, n: int, frames: int, width: int, height: int) -> None:
    from stpr.bench import write_clip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    for k in range(n):
        base = rng.uniform(0, 1, size=3)
        clip = []
        for t in range(frames):  # a dark, noisy, slowly moving pattern
            pattern = 0.5 + 0.5 * np.sin((xx + 2 * t + 17 * k) / 13.0) * np.cos((yy - t) / 11.0)
            img = 30 * pattern[..., None] * base + rng.normal(0, 3, size=(height, width, 3))
            clip.append(np.clip(img, 0, 255).astype(np.uint8))
        write_clip(folder / f"clip{k}.mp4", clip, fps=25)


def weights_file(tmp: Path) -> tuple[Path, str]:
    from stpr.checkpoint import DEFAULT_WEIGHTS, save_model
    from stpr.models.stpr_arch import STPR, STPRConfig

    if DEFAULT_WEIGHTS.is_file():
        return DEFAULT_WEIGHTS, f"shipped weights {DEFAULT_WEIGHTS.name}"
    import torch

    torch.manual_seed(0)
    path = tmp / "untrained_default.safetensors"
    save_model(STPR(STPRConfig()), path)
    return path, "untrained default-size STPR (no shipped weights found)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", default="320x240", metavar="WxH")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    ap.add_argument("--repeat", type=int, default=2, help="timed rounds per worker count (default 2)")
    ap.add_argument("--keep", metavar="DIR", help="generate clips and outputs here and keep them")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = [int(v) for v in args.workers.split(",")]

    import ray

    from stpr.batch import LOCAL_OBJECT_STORE_BYTES, run_batch

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="stpr_bench_batch_"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        make_clips(tmp / "videos", args.videos, args.frames, width, height)
        weights, what = weights_file(tmp)
        print(f"{args.videos} clips of {args.frames} frames at {width}x{height} "
              f"(generated in {time.perf_counter() - t0:.1f} s); model: {what}; {args.threads} thread(s)/worker; "
              f"{os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.2f}")
        ray.init(num_cpus=max(os.cpu_count() or 1, max(counts) * args.threads),
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        # untimed warm-up: the first Ray Data run pays one-time costs (worker processes, imports)
        make_clips(tmp / "warmup", 1, 4, width, height)
        run_batch(tmp / "warmup", tmp / "warmup_out", model=str(weights), threads=args.threads, ray=True,
                  workers=max(counts), quiet=True)
        times: dict[int, list[float]] = {w: [] for w in counts}
        for rnd in range(args.repeat):
            for w in counts:
                out = tmp / f"out_{w}"
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                res = run_batch(tmp / "videos", out, model=str(weights), threads=args.threads, ray=True,
                                workers=w, quiet=True)
                wall = time.perf_counter() - t
                bad = [r for r in res if r.status != "ok"]
                if bad:
                    print(f"{w} worker(s): {len(bad)} file(s) failed: {bad[0].status}", file=sys.stderr)
                    return 1
                frames = sum(r.frames for r in res)
                times[w].append(wall)
                print(f"round {rnd + 1}, {w} worker(s): {wall:.1f} s wall-clock, {frames / wall:.2f} frames/s "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)
        walls = {w: float(np.median(v)) for w, v in times.items()}
        for w in counts:
            print(f"{w} worker(s): median {walls[w]:.1f} s")
        ref = counts[0]
        for w in counts[1:]:
            print(f"speed-up {w} vs {ref} worker(s): {walls[ref] / walls[w]:.2f}x")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
