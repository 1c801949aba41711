"""Noise statistics of real dark frames vs this project's synthetic dark frames.

Is the synthesis (``stpr.data.synthesis``) as noisy as real low-light footage? Every set of dark
8-bit frames is measured with the same estimators:

- *spatial*: the non-local-means residual of ``fit_noise``, as a std at intensity 10 and 30 (0-255
  scale; pixels binned by their denoised intensity). Denoising removes only part of
  spatially correlated noise, so this under-reads blotchy noise.
- *temporal* (clips only): frame t+1 aligned to frame t with OpenCV DIS flow, var(difference) / 2
  in flat regions, binned and fitted the same way. Alignment error only adds to it, so it
  over-reads.
- *grain size*: the ratio of the noise std after a 2x2 box average to before it (0.5 for white
  noise; closer to 1 for blotchy, spatially correlated noise), from the temporal differences.

Sets: the held-out LOL low images, the real phone clips, the fixed evaluation camera on carphone
and tree (what ``stpr eval --synthetic`` scores) and 24 training cameras drawn by ``sample_params``.
For the synthetic sets the true noise is also measured (two noise draws of the same frame, so no
estimator bias), which checks the estimators.

    .venv/bin/python scripts/noise_calibration.py
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import denoise_nlm, lol_split, read_rgb, read_video_frames
from stpr.data.synthesis import darken_clip, sample_params
from stpr.evaluate import EVAL_DARK_PARAMS, synthetic_eval_clip
from stpr.models.flow_arch import dis_flow, remap_backward


LEVELS = (10, 30)  # 8-bit intensities at which the noise std is reported


def _binned_std(mean: np.ndarray, var: np.ndarray) -> list[float]:
    """Noise std at each of LEVELS: sqrt of the mean variance of pixels whose (denoised) intensity is
    within 4 of it; NaN with fewer than 200 such pixels. Binned rather than fitted: after the sRGB
    curve, noise variance is not linear in intensity (it is largest in the darkest levels)."""
    out = []
    for lv in LEVELS:
        sel = np.abs(mean - lv) < 4
        out.append(float(np.sqrt(var[sel].mean())) if sel.sum() >= 200 else float("nan"))
    return out


def spatial(img: np.ndarray) -> list[float]:
    """Noise std at LEVELS from the non-local-means residual (the estimator of ``fit_noise``)."""
    den = denoise_nlm(img)
    r = img.astype(np.float32) - den.astype(np.float32)
    return _binned_std(den.astype(np.float32).ravel(), (r ** 2).ravel())


def temporal(frames: np.ndarray) -> list[float]:
    """[std at each of LEVELS..., grain] from consecutive frames of one clip (see the docstring)."""
    means, vars_, grains = [], [], []
    for f0, f1 in zip(frames[:-1], frames[1:]):
        d0, d1 = denoise_nlm(f0), denoise_nlm(f1)
        # DIS on a contrast-stretched grey image: dark frames have too little signal for it otherwise.
        g0, g1 = (cv2.cvtColor(d, cv2.COLOR_RGB2GRAY).astype(np.float32) for d in (d0, d1))
        s = 200.0 / max(np.percentile(g0, 99), 1.0)
        flow = dis_flow(np.clip(g0 * s, 0, 255).astype(np.uint8), np.clip(g1 * s, 0, 255).astype(np.uint8))
        h, w = g0.shape
        diff = f0.astype(np.float32) - remap_backward(f1.astype(np.float32), flow)
        # Flat regions only: alignment error lives on edges.
        grad = np.hypot(cv2.Sobel(g0, cv2.CV_32F, 1, 0), cv2.Sobel(g0, cv2.CV_32F, 0, 1))
        flat = grad < np.percentile(grad, 50)
        means.append(d0.astype(np.float32)[flat].ravel())
        vars_.append((diff[flat] ** 2 / 2.0).ravel())
        # Grain: std of the 2x2-box-averaged difference over the std of the difference, on flat cells.
        hh, ww = (h // 2) * 2, (w // 2) * 2
        cells = diff[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2, 3).transpose(0, 2, 1, 3, 4)
        fl = flat[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2).all(axis=(1, 3))
        if fl.sum() > 100:
            grains.append(float(cells[fl].mean(axis=(1, 2)).std() / cells[fl].std()))
    return _binned_std(np.concatenate(means), np.concatenate(vars_)) + [
        float(np.median(grains)) if grains else float("nan")]


def true_noise(clean: np.ndarray, params, seed: int) -> list[float]:
    """Noise std at LEVELS of the synthesis itself: two noise draws of the same frames, no motion."""
    steady = dataclasses.replace(params, flicker=0.0)  # so the two draws differ by noise alone
    d1 = darken_clip(clean, steady, np.random.default_rng(seed)).astype(np.float32)
    d2 = darken_clip(clean, steady, np.random.default_rng(seed + 1)).astype(np.float32)
    return _binned_std(((d1 + d2) / 2).ravel(), ((d1 - d2) ** 2 / 2).ravel())


def row(name: str, n: int, mean: float, sp: list, tp: list | None = None, tr: list | None = None) -> str:
    """One markdown row; each list holds per-image (or per-clip) measurements, summarised by median."""
    def med(rows: list, i: int) -> float:
        vals = [r[i] for r in rows if not np.isnan(r[i])]
        return float(np.median(vals)) if vals else float("nan")

    cells = [name, str(n), f"{mean:.1f}", f"{med(sp, 0):.2f}", f"{med(sp, 1):.2f}"]
    cells += [f"{med(tp, 0):.2f}", f"{med(tp, 1):.2f}", f"{med(tp, 2):.2f}"] if tp else ["–"] * 3
    cells += [f"{med(tr, 0):.2f}", f"{med(tr, 1):.2f}"] if tr else ["–"] * 2
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lol", default="../shared/data/lol-train")
    ap.add_argument("--clips", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--videos", default="data_cache/videos")
    args = ap.parse_args()

    print("| dark frames | n | mean level | spatial std @10 | spatial std @30 | temporal std @10 "
          "| temporal std @30 | grain (2x2 ratio) | true std @10 | true std @30 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lol = Path(args.lol)
    if (lol / "low").is_dir():
        _, val = lol_split(lol)
        imgs = [read_rgb(next((lol / "low").glob(n + ".*"))) for n in val]
        print(row("LOL held-out low images", len(imgs), float(np.mean([i.mean() for i in imgs])),
                  [spatial(i) for i in imgs]))
    clips = sorted(p for p in Path(args.clips).glob("*") if p.is_dir())
    if clips:
        seqs = [np.stack([read_rgb(f) for f in sorted(c.glob("*.png"))]) for c in clips]
        print(row("real phone clips", len(seqs), float(np.mean([s.mean() for s in seqs])),
                  [spatial(s[0]) for s in seqs], [temporal(s) for s in seqs]))
    videos = Path(args.videos)
    for name in ("carphone_pristine.mp4", "tree.avi"):
        if not (videos / name).exists():
            continue
        clean = read_video_frames(videos / name, 8)
        dark = synthetic_eval_clip(clean)
        print(row(f"evaluation camera, {name}", len(dark), float(dark.mean()), [spatial(f) for f in dark[:4]],
                  [temporal(dark)], [true_noise(clean, EVAL_DARK_PARAMS, 1234)]))
    if (videos / "carphone_pristine.mp4").exists():
        clean = read_video_frames(videos / "carphone_pristine.mp4", 4)
        rng = np.random.default_rng(0)
        sp, tp, tr, means = [], [], [], []
        for i in range(24):
            p = sample_params(rng)
            dark = darken_clip(clean, p, np.random.default_rng(100 + i))
            means.append(dark.mean())
            sp.append(spatial(dark[0]))
            tp.append(temporal(dark))
            tr.append(true_noise(clean, p, 200 + i))
        print(row("training cameras, carphone", len(sp), float(np.mean(means)), sp, tp, tr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
