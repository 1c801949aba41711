"""How much of a model's LOL score is a global tone "look" a fixed curve could add afterwards.

Each model runs on LOL-v1 pairs (each low image as a static clip). Its outputs are scored as they
are, with the output scaled to the truth's mean ("GT mean"), after per-image oracle fits to the
truth (per-channel affine; per-channel 64-bin lookup table), and after **one fixed look**: a
per-channel 64-bin lookup table fitted once on the outputs of *training* pairs (the lowest-numbered
``--fit`` pairs of the folder) and applied unchanged to the validation pairs (752-789, the split
``lol_split`` holds out). The oracle rows use the truth of each scored image: diagnostics, not
results. The fixed-look row uses only training pairs, so it is a result a post-hoc look could give.

    .venv/bin/python experiments/look_probe.py --model quality --model fast \
        --model runs/q1_scratch/last.safetensors

A model given as ``WEIGHTS@LOOK`` runs in that look (models trained with looks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import lol_split, read_rgb
from stpr.evaluate import enhance_sequence
from tone_oracle import affine_fit, psnr  # experiments/ is the script's folder, on sys.path

BINS = 64
REF = 0.4


def lut_apply(out: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Per-channel lookup with linear interpolation between bin centres. out (H, W, 3); lut (3, BINS)."""
    centres = (np.arange(BINS) + 0.5) / BINS
    return np.stack([np.interp(out[..., c], centres, lut[c]) for c in range(3)], -1)


def lut_fit(outs: list[np.ndarray], gts: list[np.ndarray]) -> np.ndarray:
    """Per-channel table: each output bin's mean truth over all pixels of all images."""
    lut = np.zeros((3, BINS))
    for c in range(3):
        sums, cnt = np.zeros(BINS), np.zeros(BINS)
        for o, g in zip(outs, gts):
            idx = np.clip((o[..., c] * BINS).astype(int), 0, BINS - 1).ravel()
            sums += np.bincount(idx, g[..., c].ravel(), BINS)
            cnt += np.bincount(idx, minlength=BINS)
        centres = (np.arange(BINS) + 0.5) / BINS
        ok = cnt > 50
        lut[c] = np.interp(centres, centres[ok], sums[ok] / cnt[ok])
    return lut


def norm(img: np.ndarray) -> np.ndarray:
    """The image scaled to mean REF (the look is fitted and applied at one brightness)."""
    return img * REF / max(img.mean(), 1e-6)


def run(model, root: Path, names: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    outs, gts = [], []
    for n in names:
        low = read_rgb(next((root / "low").glob(n + ".*")))
        gt = read_rgb(next((root / "high").glob(n + ".*"))).astype(np.float64) / 255
        out = enhance_sequence(model, [low])[0][0].permute(1, 2, 0).double().numpy()
        outs.append(out)
        gts.append(gt)
    return outs, gts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lol", default="data_cache/lol-v1/train")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--fit", type=int, default=80, help="training pairs the fixed look is fitted on")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.lol)
    train, val = lol_split(root, 30)
    fit_names = train[:: max(1, len(train) // args.fit)][: args.fit]
    print(f"validation {len(val)} pairs ({val[0]}-{val[-1]}); look fitted on {len(fit_names)} training pairs")
    print("| model | PSNR | GT mean | fixed look | look at own mean | look, GT mean | affine oracle | LUT oracle |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in args.model:
        path, _, look = m.partition("@")
        model = load_model(path, look=look or None)
        fo, fg = run(model, root, fit_names)
        lut = lut_fit(fo, fg)
        nlut = lut_fit([norm(o) for o in fo], [norm(g) for g in fg])
        vo, vg = run(model, root, val)
        rows = {"PSNR": [], "GT mean": [], "fixed look": [], "norm look": [], "norm look, GT mean": [], "affine": [], "LUT": []}
        for o, g in zip(vo, vg):
            rows["PSNR"].append(psnr(o, g))
            rows["GT mean"].append(psnr(np.clip(o * g.mean() / max(o.mean(), 1e-6), 0, 1), g))
            rows["fixed look"].append(psnr(np.clip(lut_apply(o, lut), 0, 1), g))
            looked = lut_apply(norm(o), nlut)
            rows["norm look"].append(psnr(np.clip(looked * o.mean() / looked.mean(), 0, 1), g))
            rows["norm look, GT mean"].append(psnr(np.clip(looked * g.mean() / looked.mean(), 0, 1), g))
            rows["affine"].append(psnr(np.clip(affine_fit(o, g), 0, 1), g))
            rows["LUT"].append(psnr(np.clip(lut_apply(o, lut_fit([o], [g])), 0, 1), g))
        print(f"| {m} | " + " | ".join(f"{np.mean(v):.2f}" for v in rows.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
