"""How much of the T = 3 over T = 1 gain the plain PSNR hides behind the tone both share.

On the held-out synthetic-dark videos (the evaluation camera of ``stpr eval --synthetic``), the
same weights run with T = 3 and with T = 1 (the per-frame ablation); each output frame is then
scored as it is and after oracle tone corrections fitted to its ground truth:

- ``affine``: per channel, the least-squares a * output + b;
- ``lut``: per channel, a 64-bin lookup table (the mean ground truth of the pixels in each bin),
  any tone curve;
- ``block means``: the output's 8x8 block means replaced by the ground truth's (all low-frequency
  error removed, only detail and noise left).

An oracle correction removes error both windows share (exposure, contrast, colour balance), so the
gap that remains is what the extra frames add to noise and detail. The fits use the ground truth:
these are diagnostics, not results.

    .venv/bin/python scripts/tone_oracle.py                                  # shipped model
    .venv/bin/python scripts/tone_oracle.py --model runs/v5.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import enhance_sequence, synthetic_eval_clip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def affine_fit(out: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-channel least-squares a * out + b. out, gt: (H, W, 3) float."""
    fit = np.empty_like(out)
    for c in range(3):
        design = np.stack([out[..., c].ravel(), np.ones(out[..., c].size)], 1)
        coef, *_ = np.linalg.lstsq(design, gt[..., c].ravel(), rcond=None)
        fit[..., c] = (design @ coef).reshape(out.shape[:2])
    return fit


def lut_fit(out: np.ndarray, gt: np.ndarray, bins: int = 64) -> np.ndarray:
    """Per-channel lookup table: each output bin mapped to its pixels' mean ground truth."""
    fit = np.empty_like(out)
    for c in range(3):
        idx = np.clip((out[..., c] * bins).astype(int), 0, bins - 1)
        sums = np.bincount(idx.ravel(), gt[..., c].ravel(), bins)
        fit[..., c] = (sums / np.maximum(np.bincount(idx.ravel(), minlength=bins), 1))[idx]
    return fit


def block_means_fit(out: np.ndarray, gt: np.ndarray, block: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The output with its block means replaced by the ground truth's (cropped to whole blocks)."""
    h, w = (out.shape[0] // block) * block, (out.shape[1] // block) * block
    o, g = out[:h, :w], gt[:h, :w]

    def means(x):
        m = x.reshape(h // block, block, w // block, block, 3).mean((1, 3))
        return np.repeat(np.repeat(m, block, 0), block, 1)

    return o - means(o) + means(g), g


def scores(model, clean: np.ndarray, dark: np.ndarray) -> dict[str, float]:
    outs = enhance_sequence(model, list(dark))
    rows = {"plain": [], "affine": [], "lut": [], "block means": []}
    for o, c in zip(outs, clean):
        o = o[0].permute(1, 2, 0).numpy().astype(np.float64)
        g = c.astype(np.float64) / 255.0
        rows["plain"].append(psnr(o, g))
        rows["affine"].append(psnr(affine_fit(o, g), g))
        rows["lut"].append(psnr(lut_fit(o, g), g))
        rows["block means"].append(psnr(*block_means_fit(o, g)))
    return {k: float(np.mean(v)) for k, v in rows.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="weights file (default: the shipped model)")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| clip | window | plain | affine | lut | block means |")
    print("|---|---|---:|---:|---:|---:|")
    for name, video in (("carphone", "carphone_pristine.mp4"), ("tree", "tree.avi")):
        clean = read_video_frames(Path(args.videos) / video, 30)
        dark = synthetic_eval_clip(clean)
        t3 = scores(load_model(args.model, frames=3), clean, dark)
        t1 = scores(load_model(args.model, frames=1), clean, dark)
        for label, row in (("T = 3", t3), ("T = 1", t1), ("gain", {k: t3[k] - t1[k] for k in t3})):
            print(f"| {name} | {label} | " + " | ".join(f"{v:+.2f}" if label == "gain" else f"{v:.2f}"
                                                       for v in row.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
