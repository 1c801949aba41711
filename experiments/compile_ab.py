"""A/B of the fused full-resolution passes (``Enhancer(compile=...)``, stpr.models.fused), end to end.

On a shared virtual machine a benchmark run's speed drifts by 10-30 % from one minute to the next
(time stolen by the host), more than the fused passes change, so separate `stpr bench` runs cannot
tell them apart. This enhances one generated clip end to end (decode, network, temporal filter,
tone match, x264 encode, reader and writer threads: ``Enhancer.enhance_video``) in one process, with
the eager and the compiled path alternating round by round (ABBA order), after one warm-up round
each (which builds the compiled passes), and prints each round's frames/s, the medians and the
median of the per-pair ratios:

    .venv/bin/python experiments/compile_ab.py --size 1920x1080 --model fast --frames 30 --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from stpr.bench import make_clip
from stpr.enhance import Enhancer, tune_malloc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x1080", help="WxH")
    ap.add_argument("--model", default="fast")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=6, help="rounds of each path (even: ABBA pairs)")
    ap.add_argument("--preset", default="veryfast", help="x264 preset")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tune_malloc()
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="stpr_ab_"))
    clip = tmp / "clip.mp4"
    make_clip(clip, w, h, args.frames)
    enh = {c: Enhancer.from_pretrained(args.model, compile=c, precision=args.precision, threads=args.threads)
           for c in (False, True)}

    def run(c: bool) -> float:
        res = enh[c].enhance_video(clip, tmp / f"out_{int(c)}.mp4", preset=args.preset, overwrite=True,
                                   progress=False)
        return res["fps"]

    for c in (False, True):
        run(c)  # warm-up; builds the compiled passes
    fps: dict[bool, list[float]] = {False: [], True: []}
    ratios = []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        got = {c: run(c) for c in order}
        for c in order:
            fps[c].append(got[c])
        ratios.append(got[True] / got[False])
    print(f"{args.model} {w}x{h}, {args.frames} frames, x264 {args.preset}, {args.threads} threads, "
          f"precision {enh[False].precision}")
    for c in (False, True):
        name = "compiled" if c else "eager"
        print(f"  {name:9s}: median {statistics.median(fps[c]):.2f} frames/s  rounds {[round(v, 2) for v in fps[c]]}")
    print(f"  compiled / eager, median of the {len(ratios)} pairs: {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
