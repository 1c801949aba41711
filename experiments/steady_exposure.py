"""Steady exposure (the default) against each frame's own exposure guess, on real dark footage.

    .venv/bin/python experiments/steady_exposure.py --synthetic data_cache/videos/vtest.avi \
        data_cache/videos/Megamind.avi       # training videos, darkened: where the design was chosen
    .venv/bin/python experiments/steady_exposure.py data_cache/real-dark-videos/*.mp4 \
        --clips ../shared/data/real-lowlight-clips   # held out: reported once

The shipped model with ``Enhancer(steady_exposure=True)`` and ``False``, scored as ``stpr eval``
scores a method (``stpr.report.evaluate_sequences``: flicker ratio, exposure pumping, blacks,
saturation and NIQE against plain brightening), on the first ``--max-frames`` frames of each video
and on each 4-frame clip. The smoothing (0.9 per frame) was fixed before these held-out videos
were run, as ``--brightness`` uses it; nothing here was tuned on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stpr.enhance import Enhancer
from stpr.report import clip_sequences, evaluate_sequences, synthetic_sequences, unpaired_sequences

METRICS = ("flicker_ratio", "brightness", "pumping", "black_vs_plain", "saturation_vs_plain", "niqe_vs_plain",
           "psnr", "mabd_mse")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*")
    ap.add_argument("--clips", default=None)
    ap.add_argument("--max-frames", type=int, default=90)
    ap.add_argument("--synthetic", nargs="*", default=[], metavar="VIDEO",
                    help="normal-light videos darkened by stpr's evaluation camera, with exposure jumps")
    args = ap.parse_args()
    steady = Enhancer.from_pretrained(steady_exposure=True)
    free = Enhancer.from_pretrained(steady_exposure=False)
    methods = {"steady": lambda seq: list(steady.enhance_frames(seq)),
               "per-frame guess": lambda seq: list(free.enhance_frames(seq))}
    groups = [(Path(v).stem, unpaired_sequences(v, max_frames=args.max_frames)) for v in args.videos]
    for v in args.synthetic:
        groups.append((Path(v).stem + " (synthetic, jumps)",
                       synthetic_sequences(v, max_frames=args.max_frames, jumps=True)))
    if args.clips:
        groups.append(("real clips (mean of 6)", clip_sequences(args.clips)))
    print("| footage | exposure | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---:|" * len(METRICS))
    for name, seqs in groups:
        res = evaluate_sequences(seqs, methods, use_lpips=False)
        for m in methods:
            vals = []
            for k in METRICS:
                v = [r.per_method[m]["sequence"].get(k) for r in res]
                v = [x for x in v if x is not None]
                vals.append(f"{np.mean(v):.3f}" if v else "–")
            print(f"| {name} | {m} | " + " | ".join(vals) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
