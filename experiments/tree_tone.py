"""Tone of models on tree.avi: PSNR, affine-fitted PSNR (T = 3, 30 frames) and the luma
percentiles of one frame, beside the truth's and the dark input's.

    .venv/bin/python experiments/tree_tone.py default fast runs/q2_looks/last.safetensors@natural \
        runs/q2_looks/last.safetensors@lol

Each model is ``WEIGHTS[@LOOK]`` ('default' and 'fast' name the shipped ones). One torch thread:
beside a training run, two threads ran this 60x slower here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import enhance_sequence, eval_video, synthetic_eval_clip, to_tensor

QUANTILES = (0.01, 0.1, 0.5, 0.9)


def luma_percentiles(img: torch.Tensor) -> list[float]:
    """BT.601 luma (0-255) percentiles of a (3, H, W) image in [0, 1]."""
    y = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).flatten() * 255
    return [float(torch.quantile(y, q)) for q in QUANTILES]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="WEIGHTS[@LOOK]")
    ap.add_argument("--video", default="data_cache/videos/tree.avi")
    ap.add_argument("--frame", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clean = read_video_frames(Path(args.video), 30)
    dark = synthetic_eval_clip(clean)
    fmt = " / ".join
    print("| model | PSNR | affine-fitted PSNR | luma " + fmt(f"{q:g}" for q in QUANTILES) + " quantiles |")
    print("|---|---:|---:|---|")
    for name, img in (("original (truth)", clean[args.frame]), ("dark input", dark[args.frame])):
        print(f"| {name} | – | – | {fmt(f'{v:.1f}' for v in luma_percentiles(to_tensor(img)[0]))} |")
    for spec in args.models:
        path, _, look = spec.partition("@")
        model = load_model(None if path == "default" else path, frames=3, **({"look": look} if look else {}))
        scores = eval_video(model, clean, dark)
        out = enhance_sequence(model, list(dark[: args.frame + 2]))[args.frame][0].clamp(0, 1)
        print(f"| {spec} | {scores['psnr']:.2f} | {scores['psnr_affine']:.2f} | "
              f"{fmt(f'{v:.1f}' for v in luma_percentiles(out))} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
