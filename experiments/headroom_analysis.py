"""Where the error of a model is, and how much temporal fusion could win back.

On the held-out synthetic-dark video (the fixed evaluation camera of ``stpr eval --synthetic``):

1. *Noise headroom*: the model run per frame (T = 1) on the dark clip, on the mean of 3 and of 9
   independent noise draws of each dark frame (what perfect alignment over a 3- or 9-frame window
   would give), and on the dark clip without noise. With the weights fixed this only shows what
   the model can make of cleaner input it was not trained on; ``scripts/fusion_bound.py`` trains
   for each noise level and bounds what fusion can add.
2. *Where the output comes from*: the share of the output's mean that the reconstruction's
   1/4-resolution residual carries (the rest is the gained full-resolution base image).
3. *Low-frequency error*: the share of the squared error in 8x8 block means, and the PSNR when the
   output's 8x8 block means are replaced by those of a linear-light gain of the input that matches
   the ground truth's per-channel means (an oracle exposure; shows how much is tone, not detail).

On the held-out LOL pairs (no model): PSNR of the dark image scaled by the per-channel gain that
matches the ground truth's mean, in sRGB and in linear light.

    .venv/bin/python scripts/headroom_analysis.py                      # shipped model
    .venv/bin/python scripts/headroom_analysis.py --model runs/v2/last.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stpr.checkpoint import load_model
from stpr.data.datasets import lol_split, read_rgb, read_video_frames
from stpr.data.synthesis import darken_clip, linear_to_srgb, srgb_to_linear
from stpr.evaluate import EVAL_DARK_PARAMS, enhance_sequence, eval_video, to_tensor


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def block_means(a: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) -> (N, 3, H/8, W/8) means of 8x8 blocks."""
    return F.avg_pool2d(torch.from_numpy(a).permute(0, 3, 1, 2), 8)


def noisy_mean(clean: np.ndarray, k: int, params) -> np.ndarray:
    """The mean of k independent darkenings of the clip (seeded), quantised to 8 bits."""
    rng = np.random.default_rng(1234)
    acc = sum(darken_clip(clean, params, rng).astype(np.float64) for _ in range(k))
    return np.clip(np.round(acc / k), 0, 255).astype(np.uint8)


def residual_share(model, dark: np.ndarray) -> float:
    """Mean of the reconstruction's residual over the mean of the output (centre of frames 0-4)."""
    captured = {}
    hook = model.reconstruction.residual.register_forward_hook(
        lambda mod, inp, out: captured.__setitem__("res", F.pixel_shuffle(out, 4)))
    try:
        clip = torch.cat([to_tensor(f) for f in dark[:5]])[None]
        with torch.no_grad():
            outs, _ = model.forward_clip(clip, [2])
    finally:
        hook.remove()
    h, w = dark.shape[1:3]
    return float(captured["res"][..., :h, :w].mean() / outs[0].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="weights (default: the shipped model)")
    ap.add_argument("--video", default="data_cache/videos/carphone_pristine.mp4")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--lol", default="../shared/data/lol-train")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    clean = read_video_frames(Path(args.video), args.frames)
    per_frame = load_model(args.model, frames=1).eval()
    window = load_model(args.model).eval()
    p = EVAL_DARK_PARAMS
    dark = noisy_mean(clean, 1, p)
    print(f"{args.video}, {len(clean)} frames, evaluation camera:")
    print(f"  model, T = {window.cfg.frames}:            {eval_video(window, clean, dark)['psnr']:.2f} dB")
    for name, frames in (("T = 1 on the dark clip", dark), ("T = 1 on a 3-draw mean", noisy_mean(clean, 3, p)),
                         ("T = 1 on a 9-draw mean", noisy_mean(clean, 9, p)),
                         ("T = 1 without noise", noisy_mean(clean, 1, dataclasses.replace(
                             p, full_well=1e7, read_noise=0.0)))):
        print(f"  {name + ':':30s} {eval_video(per_frame, clean, frames)['psnr']:.2f} dB")
    print(f"  residual share of the output mean: {residual_share(window, dark):.2f}")

    out = np.stack([o[0].permute(1, 2, 0).numpy() for o in enhance_sequence(window, list(dark))]).astype(np.float64)
    gt = clean.astype(np.float64) / 255
    lin = srgb_to_linear(dark.astype(np.float64) / 255)
    oracle = linear_to_srgb(lin * srgb_to_linear(gt).mean((0, 1, 2)) / lin.mean((0, 1, 2)))
    low = float(((block_means(out) - block_means(gt)) ** 2).mean())
    up = F.interpolate(block_means(oracle) - block_means(out), scale_factor=8, mode="nearest")
    swapped = np.clip(out + up.permute(0, 2, 3, 1).numpy(), 0, 1)
    print(f"  share of the squared error in 8x8 block means: {low / np.mean((out - gt) ** 2):.2f}")
    print(f"  PSNR {psnr(out, gt):.2f} dB; with the block means of the oracle linear-light gain: "
          f"{psnr(swapped, gt):.2f} dB")

    root = Path(args.lol)
    if (root / "low").is_dir():
        _, val = lol_split(root, 30)
        res = {"sRGB": [], "linear light": []}
        for n in val:
            lo = read_rgb(next((root / "low").glob(n + ".*"))).astype(np.float64) / 255
            hi = read_rgb(next((root / "high").glob(n + ".*"))).astype(np.float64) / 255
            res["sRGB"].append(psnr(np.clip(lo * hi.mean((0, 1)) / lo.mean((0, 1)), 0, 1), hi))
            ll, lh = srgb_to_linear(lo), srgb_to_linear(hi)
            res["linear light"].append(psnr(linear_to_srgb(ll * lh.mean((0, 1)) / ll.mean((0, 1))), hi))
        print(f"LOL held-out ({len(val)} pairs), dark image times the per-channel gain matching the "
              "ground truth's mean, no denoising:")
        for k, v in res.items():
            print(f"  gain in {k}: {np.mean(v):.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
