"""How much of the held-out LOL error is the exposure guess?

For a model, on the held-out LOL split (the pairs ``lol_split`` keeps out of training):

- PSNR as scored by ``stpr eval``;
- PSNR after one oracle gain per image (the least-squares gain to the ground truth), i.e. what a
  perfect exposure estimate would score with the same restoration;
- how predictable the ground truth's brightness is from the dark image: the spread of log mean
  brightness of the normal-light images, and the spread left after a linear fit on the training
  pairs (features: log mean, log median, log 99th percentile and log noise level of the dark image)
  applied to the held-out pairs;
- the model's own exposure guess against a constant one: the spread of log(output mean / ground
  truth mean), and the PSNR when each output is instead scaled to one fixed mean brightness (the
  mean over the training pairs' ground truths);
- what that exposure guess alone costs: the PSNR of the ground truth scaled by the model's
  per-image exposure error (a perfect restoration with the same exposure guess).

    .venv/bin/python scripts/exposure_analysis.py [--model W] [--lol ../shared/data/lol-train]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import lol_split, read_rgb
from stpr.evaluate import enhance_sequence, to_tensor
from stpr.metrics.image import psnr


def dark_features(low: np.ndarray) -> list[float]:
    g = low.astype(np.float32).mean(axis=2)
    noise = np.median(np.abs(g - cv2.blur(g, (3, 3)))) / 0.6745  # robust high-pass noise level
    return [np.log(g.mean() + 0.1), np.log(np.median(g) + 0.1), np.log(np.percentile(g, 99) + 0.1),
            np.log(noise + 1e-3)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="weights (default: the shipped model)")
    ap.add_argument("--lol", default="../shared/data/lol-train")
    ap.add_argument("--val", type=int, default=30, help="held-out pairs (as in the training configs)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.lol)
    train_names, val_names = lol_split(root, args.val)
    model = load_model(args.model).eval()

    def pair(n):
        low = read_rgb(next((root / "low").glob(n + ".*")))
        high = read_rgb(next((root / "high").glob(n + ".*")))
        return low, high

    def target(high: np.ndarray) -> float:
        return float(np.log(high.astype(np.float32).mean() / 255.0))

    plain, oracle, xv, yv, outs = [], [], [], [], []
    for n in val_names:
        low, high = pair(n)
        xv.append(dark_features(low))
        yv.append(target(high))
        out, gt = enhance_sequence(model, [low])[0], to_tensor(high)
        gain = (out * gt).sum() / (out * out).sum().clamp_min(1e-12)
        outs.append((out, gt))
        plain.append(psnr(out, gt).item())
        oracle.append(psnr((out * gain).clamp(0, 1), gt).item())
    print(f"held-out LOL ({len(val_names)} pairs): PSNR {np.mean(plain):.2f} dB; "
          f"with an oracle gain per image {np.mean(oracle):.2f} dB")

    pairs = [pair(n) for n in train_names]
    xt = np.array([dark_features(low) for low, _ in pairs])
    yt = np.array([target(high) for _, high in pairs])
    xv, yv = np.array(xv), np.array(yv)
    a = np.c_[xt, np.ones(len(xt))]
    coef = np.linalg.lstsq(a, yt, rcond=None)[0]
    resid = np.c_[xv, np.ones(len(xv))] @ coef - yv
    print(f"log mean brightness of the normal-light images: std {yt.std():.3f} (training pairs), "
          f"{yv.std():.3f} (held out)")
    print(f"held out, after a linear fit on the dark images' features: residual std {resid.std():.3f}, "
          f"bias {resid.mean():+.3f}")
    fixed = float(np.exp(yt.mean()))  # training pairs' geometric-mean brightness (0..1)
    own = np.array([np.log(o.mean().item() / g.mean().item()) for o, g in outs])
    const = [psnr((o * (fixed / o.mean().clamp_min(1e-6))).clamp(0, 1), g).item() for o, g in outs]
    # Perfect restoration with this model's exposure guess: the ground truth scaled by the model's
    # per-image exposure error. Plain PSNR cannot exceed this without a better exposure guess.
    cap = [psnr((g * float(np.exp(e))).clamp(0, 1), g).item() for e, (_, g) in zip(own, outs)]
    print(f"ground truth scaled by the model's exposure error (perfect restoration, same exposure guess): "
          f"PSNR {np.mean(cap):.2f} dB")
    print(f"model's exposure error log(output / ground-truth mean): std {own.std():.3f}, bias {own.mean():+.3f}; "
          f"constant target {fixed * 255:.1f}/255: error std {yv.std():.3f} (the held-out spread), "
          f"PSNR with outputs scaled to it {np.mean(const):.2f} dB")

    # Where the held-out bias comes from: the model's exposure error on training pairs (every
    # 3rd, to keep this quick), and how dark each split's low images are against their ground truth.
    own_train = []
    for low, high in pairs[::3]:
        out = enhance_sequence(model, [low])[0]
        own_train.append(np.log(out.mean().item() / to_tensor(high).mean().item()))
    # log(ground-truth mean / dark mean): y is on the 0..1 scale, dark_features' log mean on 0..255
    # (hence + log 255 when printed)
    ratio_t = yt - xt[:, 0]
    ratio_v = yv - xv[:, 0]
    print(f"model's exposure bias: {own.mean():+.3f} held out, {np.mean(own_train):+.3f} on "
          f"{len(own_train)} training pairs; ground truths' geometric-mean brightness "
          f"{np.exp(yt.mean()) * 255:.1f} (training) vs {np.exp(yv.mean()) * 255:.1f} (held out); "
          f"log(ground-truth mean / dark mean): {ratio_t.mean() + np.log(255):.2f} vs "
          f"{ratio_v.mean() + np.log(255):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
