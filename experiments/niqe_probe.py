"""Does sharpening or grain close the NIQE gap to plain brightening? (real-footage §48)

On the long validation videos (v8's cached outputs at the model's own level, the product's default
temporal filter applied; ``experiments/temporal_filter_probe.py --long`` writes the cache), NIQE
(mean of frames 0, 45, 89) and the flicker ratio of: the output; an unsharp mask of it (sigma,
amount); the output plus a share of plain brightening's fine detail (its difference from a
sigma = 1 blur: the input's grain and edges); and plain brightening itself.

    .venv/bin/python experiments/niqe_probe.py --videos phone_night_crowd,night_street_crossing
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import read_video_frames
from stpr.metrics.noref import niqe, plain_brighten
from stpr.metrics.video import flicker_ratio, frame_brightness, sequence_flows
from stpr.temporal import TemporalFilter


def unsharp(frame: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    x = frame.astype(np.float32)
    return np.clip(x + amount * (x - cv2.GaussianBlur(x, (0, 0), sigma)) + 0.5, 0, 255).astype(np.uint8)


def with_grain(frame: np.ndarray, plain: np.ndarray, amount: float) -> np.ndarray:
    q = plain.astype(np.float32)
    return np.clip(frame.astype(np.float32) + amount * (q - cv2.GaussianBlur(q, (0, 0), 1.0)) + 0.5,
                   0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="phone_night_crowd,night_street_crossing")
    ap.add_argument("--dir", type=Path, default=Path("data_cache/real-dark-val"))
    ap.add_argument("--cache", type=Path, default=Path("reports/temporal_probe_cache"))
    args = ap.parse_args()
    for name in args.videos.split(","):
        dark = list(read_video_frames(args.dir / f"{name}.mp4", 90))
        filt = TemporalFilter()
        outs = [filt(o) for o in np.load(args.cache / f"default_long_{name}_{len(dark)}.npy")]
        plain = plain_brighten(dark, float(frame_brightness(outs).mean()))
        flows = sequence_flows(dark)
        idx = [0, len(dark) // 2, len(dark) - 1]
        cands = {"output": outs, "plain brightening": plain}
        for sigma, amount in ((1.0, 0.5), (1.0, 1.0), (2.0, 0.5)):
            cands[f"unsharp sigma {sigma:g} amount {amount:g}"] = [unsharp(f, sigma, amount) for f in outs]
        for amount in (0.15, 0.3, 0.5):
            cands[f"grain {amount:g}"] = [with_grain(f, p, amount) for f, p in zip(outs, plain)]
        plain_niqe = np.mean([niqe(plain[i]) for i in idx])
        for label, frames in cands.items():
            n = np.mean([niqe(frames[i]) for i in idx])
            print(f"{name} {label}: NIQE {n:.2f} (vs plain {n - plain_niqe:+.2f}), flicker "
                  f"{flicker_ratio(frames, dark, flows=flows):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
