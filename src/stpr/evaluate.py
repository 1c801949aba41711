"""Validation used during training and by ``stpr eval``: PSNR/SSIM of STPR on held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stpr.data.datasets import lol_file, read_rgb
from stpr.data.synthesis import DarkParams, darken_clip, scale_noise
from stpr.losses import fit_affine
from stpr.metrics.image import psnr, ssim
from stpr.models.stpr_arch import STPR

# Fixed camera for the held-out synthetic-dark video: dark, noisy, slight cast and flicker.
EVAL_DARK_PARAMS = DarkParams(exposure=0.05, full_well=800.0, read_noise=2e-3, wb_gains=(1.05, 1.0, 0.93),
                              flicker=0.03, crf=None)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div_(255.0)


@torch.no_grad()
def enhance_sequence(model: STPR, frames: list[np.ndarray]) -> list[torch.Tensor]:
    """Enhance a short in-memory sequence (each frame (H, W, 3) uint8), edges reflected.
    Returns (1, 3, H, W) tensors in [0, 1] (unquantised, for metrics). Encodes each frame once."""
    model.eval()
    clip = torch.cat([to_tensor(f) for f in frames])[None]
    outs, _ = model.forward_clip(clip, list(range(len(frames))))
    return outs


@torch.no_grad()
def eval_lol(model: STPR, root: Path, names: list[str]) -> dict:
    """Mean PSNR/SSIM on LOL pairs; each low image is enhanced as a static clip (T copies)."""
    p, s = [], []
    for n in names:
        low = read_rgb(lol_file(root, "low", n))
        high = to_tensor(read_rgb(lol_file(root, "high", n)))
        out = enhance_sequence(model, [low])[0]
        p.append(psnr(out, high).item())
        s.append(ssim(out, high).item())
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "n": len(names)}


# Exposure jumps for the evaluation: the camera's exposure alternates between these multipliers
# frame to frame (a 4x step), so every dark frame has two brighter neighbours.
EVAL_JUMP_SCALES = (0.5, 2.0)
JUMP_LABEL = " / ".join(f"{k:g}x" for k in EVAL_JUMP_SCALES)  # "0.5x / 2x", for help and reports


def synthetic_eval_clip(clean: np.ndarray, seed: int = 1234, jumps: bool = False,
                        noise_scale: float = 1.0) -> np.ndarray:
    """Darken (N, H, W, 3) uint8 clean frames with the fixed evaluation camera and seed; ``jumps``
    alternates the exposure with EVAL_JUMP_SCALES; ``noise_scale`` multiplies its noise std
    (``scale_noise``; only for analyses, ``stpr eval`` always uses 1)."""
    scales = np.resize(np.asarray(EVAL_JUMP_SCALES), len(clean)) if jumps else None
    return darken_clip(clean, scale_noise(EVAL_DARK_PARAMS, noise_scale), np.random.default_rng(seed), scales)


@torch.no_grad()
def eval_video(model: STPR, clean: np.ndarray, dark: np.ndarray) -> dict:
    """Mean PSNR/SSIM over the frames of a dark clip against its clean original, and the mean
    PSNR after each output frame is fitted to its original by a per-channel gain and offset
    (``psnr_affine``: the tone taken out, so a ground truth with lifted blacks, as tree.avi's,
    does not reward a hazy output)."""
    outs = enhance_sequence(model, list(dark))
    gts = [to_tensor(c) for c in clean]
    p = [psnr(o, g).item() for o, g in zip(outs, gts)]
    s = [ssim(o, g).item() for o, g in zip(outs, gts)]
    pa = [psnr(fit_affine(o, g).clamp(0, 1), g).item() for o, g in zip(outs, gts)]
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "psnr_affine": float(np.mean(pa)), "n": len(p)}
