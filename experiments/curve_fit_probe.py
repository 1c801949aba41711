"""Is a model's loss on a validation video tone or restoration? PSNR after each output frame is
fitted to its original by a per-channel gain and offset (``eval_video``'s affine fit), by a
per-channel cubic in the output (a tone curve) and by a 3x4 colour matrix (what neither undoes
is noise, blur and spatially varying tone or colour), for T = 3 and T = 1; then, at T = 3, the
affine-fitted error split at a Gaussian of sigma 2 px (low-pass PSNR, high-pass error PSNR), the
output's high-frequency energy over the truth's and its saturation (max - min of RGB) over the
truth's. The validation videos' first 30 frames, darkened by the evaluation camera.

    .venv/bin/python experiments/curve_fit_probe.py default runs/q7_mixed/last.safetensors@natural

Each model is ``WEIGHTS[@LOOK]`` ('default' names the shipped one). One torch thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import enhance_sequence, synthetic_eval_clip, to_tensor


def psnr(mse: float) -> float:
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def poly_fitted(out: np.ndarray, gt: np.ndarray, degree: int) -> np.ndarray:
    """(3, H, W) ``out`` mapped by the per-channel polynomial of ``degree`` least-squares fitted to
    ``gt`` (degree 1: ``eval_video``'s affine fit)."""
    fitted = np.empty_like(out)
    for c in range(3):
        fitted[c] = np.polyval(np.polyfit(out[c].ravel(), gt[c].ravel(), degree), out[c])
    return fitted


def fitted_psnr(out: np.ndarray, gt: np.ndarray, degree: int) -> float:
    """PSNR of (3, H, W) ``out`` against ``gt`` (both in [0, 1]) after ``poly_fitted``."""
    return psnr(float(np.mean((np.clip(poly_fitted(out, gt, degree), 0, 1) - gt) ** 2)))


def matrix_psnr(out: np.ndarray, gt: np.ndarray) -> float:
    """PSNR after a least-squares 3x4 colour matrix (with offset) maps (3, H, W) ``out`` to ``gt``."""
    a = np.concatenate([out.reshape(3, -1).T, np.ones((out[0].size, 1))], 1)
    k = np.linalg.lstsq(a, gt.reshape(3, -1).T, rcond=None)[0]
    return psnr(float(np.mean((np.clip(a @ k, 0, 1) - gt.reshape(3, -1).T) ** 2)))


def bands(out: np.ndarray, gt: np.ndarray) -> tuple[float, float, float, float]:
    """Mean squared low-pass and high-pass error of the affine-fitted (3, H, W) ``out``, its
    high-frequency energy and the truth's, split at a Gaussian of sigma 2 px."""
    fit = poly_fitted(out, gt, 1)
    blur = lambda x: np.stack([cv2.GaussianBlur(ch, (0, 0), 2.0) for ch in x])  # noqa: E731
    lo_o, lo_g = blur(fit), blur(gt)
    hi_o, hi_g = fit - lo_o, gt - lo_g
    return (float(np.mean((lo_o - lo_g) ** 2)), float(np.mean((hi_o - hi_g) ** 2)),
            float(np.mean(hi_o ** 2)), float(np.mean(hi_g ** 2)))


def saturation(x: np.ndarray) -> float:
    return float((x.max(0) - x.min(0)).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="WEIGHTS[@LOOK]")
    ap.add_argument("--videos", nargs="+", default=["data_cache/videos/tree.avi", "data_cache/videos/city.mpg"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| video | model | affine-fitted T = 3 / T = 1 | cubic-fitted T = 3 / T = 1 | colour-matrix-fitted "
          "T = 3 / T = 1 | low-pass / high-pass PSNR | HF energy / saturation vs truth |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for video in args.videos:
        clean = read_video_frames(Path(video), 30)
        dark = synthetic_eval_clip(clean)
        gts = [to_tensor(c)[0].numpy().astype(np.float64) for c in clean]
        for spec in args.models:
            path, _, look = spec.partition("@")
            row = {}
            for frames in (3, 1):
                model = load_model(None if path == "default" else path, frames=frames,
                                   **({"look": look} if look else {}))
                outs = [o[0].clamp(0, 1).numpy().astype(np.float64) for o in enhance_sequence(model, list(dark))]
                for deg in (1, 3):
                    row[(frames, deg)] = np.mean([fitted_psnr(o, g, deg) for o, g in zip(outs, gts)])
                row[(frames, "m")] = np.mean([matrix_psnr(o, g) for o, g in zip(outs, gts)])
                if frames == 3:
                    b = np.mean([bands(o, g) for o, g in zip(outs, gts)], 0)
                    sat = np.mean([saturation(o) / saturation(g) for o, g in zip(outs, gts)])
            print(f"| {Path(video).stem} | {spec} | {row[(3, 1)]:.2f} / {row[(1, 1)]:.2f} | "
                  f"{row[(3, 3)]:.2f} / {row[(1, 3)]:.2f} | {row[(3, 'm')]:.2f} / {row[(1, 'm')]:.2f} | "
                  f"{psnr(b[0]):.2f} / {psnr(b[1]):.2f} | {b[2] / b[3]:.2f} / {sat:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
