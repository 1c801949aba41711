"""Classical low-light enhancement baselines for ``stpr eval`` and ``stpr bench``.

Every method is a plain function ``frames -> frames``: a list of (H, W, 3) uint8 RGB frames in,
a list of the same length, shape and dtype out. ``METHODS`` maps the CLI names to them. STPR
itself needs a weights file, so it is built by :func:`stpr_method` (and :func:`make_method`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from stpr.models.flow_arch import dis_flow, fb_consistent, remap_backward

Method = Callable[[list[np.ndarray]], list[np.ndarray]]

#: Names of the STPR variants (need a model; see :func:`stpr_method`).
STPR_METHODS = ("stpr", "stpr-perframe")

_TARGET_MEAN = 0.45  # mean luma the auto-exposure baselines aim for


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


# ----------------------------------------------------------------------------- gamma + CLAHE
def auto_gamma(frame: np.ndarray, target: float = _TARGET_MEAN) -> float:
    """Gamma g such that mean_luma ** g ~= target (g < 1 brightens), clamped to [0.1, 1]."""
    m = float(_gray(frame).mean()) / 255.0
    m = min(max(m, 1e-3), 0.999)
    return float(np.clip(np.log(target) / np.log(m), 0.1, 1.0))


def _gamma_lut(gamma: float) -> np.ndarray:
    return np.clip(((np.arange(256) / 255.0) ** gamma) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def gamma_clahe(frames: list[np.ndarray], clip_limit: float = 2.0, grid: int = 8) -> list[np.ndarray]:
    """Per-frame auto gamma (from the frame's mean brightness) followed by CLAHE on the L channel
    of CIE Lab (contrast-limited adaptive histogram equalisation; colours keep their a, b).

    Each frame is processed on its own, so exposure flicker and noise pass straight through.
    """
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(grid, grid))
    out = []
    for f in frames:
        g = cv2.LUT(np.ascontiguousarray(f), _gamma_lut(auto_gamma(f)))
        lab = cv2.cvtColor(g, cv2.COLOR_RGB2LAB)
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        out.append(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return out


# ----------------------------------------------------------------------------- temporal denoising
def _flow_gray(frame: np.ndarray) -> np.ndarray:
    """Slightly blurred gray image for flow estimation (keeps noise from driving the flow)."""
    return cv2.GaussianBlur(_gray(frame), (0, 0), 1.0)


def _confidence(ref: np.ndarray, warped: np.ndarray, fw: np.ndarray, bw: np.ndarray,
                sigma: float = 0.06) -> np.ndarray:
    """Per-pixel weight in [0, 1] for a warped neighbour: forward-backward consistent flow, target
    inside the image, and similar (low-passed) colour to the reference."""
    h, w = fw.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tx, ty = xs + fw[..., 0], ys + fw[..., 1]
    ok = fb_consistent(fw, bw)
    ok &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    a = cv2.GaussianBlur(ref.astype(np.float32) / 255.0, (0, 0), 2.0)
    b = cv2.GaussianBlur(warped.astype(np.float32) / 255.0, (0, 0), 2.0)
    d2 = ((a - b) ** 2).mean(-1)
    return ok.astype(np.float32) * np.exp(-d2 / (2 * sigma ** 2)).astype(np.float32)


def temporal_denoise(frames: list[np.ndarray], radius: int = 2,
                     preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST) -> list[np.ndarray]:
    """Average each frame with its up to ``2 * radius`` neighbours, each warped onto it with DIS
    flow and weighted by a confidence mask (occlusion check and colour similarity), so moving or
    occluded content falls back to the frame itself."""
    grays = [_flow_gray(f) for f in frames]
    out = []
    for t, f in enumerate(frames):
        acc = f.astype(np.float32)
        norm = np.ones(f.shape[:2], np.float32)
        for s in range(max(0, t - radius), min(len(frames), t + radius + 1)):
            if s == t:
                continue
            fw = dis_flow(grays[t], grays[s], preset)
            bw = dis_flow(grays[s], grays[t], preset)
            warped = remap_backward(frames[s], fw)
            wgt = _confidence(f, warped, fw, bw)
            acc += warped.astype(np.float32) * wgt[..., None]
            norm += wgt
        out.append(np.clip(acc / norm[..., None] + 0.5, 0, 255).astype(np.uint8))
    return out


def gamma_clahe_temporal(frames: list[np.ndarray], radius: int = 2) -> list[np.ndarray]:
    """:func:`gamma_clahe`, then :func:`temporal_denoise` (flow-compensated averaging of up to
    ``radius`` frames on each side), which removes much of the noise and some flicker."""
    return temporal_denoise(gamma_clahe(frames), radius=radius)


# ----------------------------------------------------------------------------- LIME
def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Guided filter (He et al. 2010) with a gray float32 guide; edge-preserving smoothing."""
    def box(a):
        return cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)

    mi, ms = box(guide), box(src)
    var = box(guide * guide) - mi * mi
    cov = box(guide * src) - mi * ms
    a = cov / (var + eps)
    b = ms - a * mi
    return box(a) * guide + box(b)


def lime(frames: list[np.ndarray], gamma: float = 0.8, floor: float = 0.03,
         denoise: float = 0.08) -> list[np.ndarray]:
    """Retinex enhancement in the spirit of LIME (Guo et al., TIP 2017), per frame.

    The illumination map is the max over R, G, B, refined with a self-guided filter (edge-aware
    smoothing instead of LIME's optimisation), raised to ``gamma`` and floored at ``floor``; the
    reflectance is the frame divided by it. Noise amplified in dark regions is reduced with a
    bilateral filter, blended in where the illumination is low (as LIME does with BM3D).
    """
    out = []
    for f in frames:
        x = f.astype(np.float32) / 255.0
        t0 = x.max(axis=2)
        r = max(2, round(min(x.shape[:2]) / 40))
        illum = np.clip(guided_filter(t0, t0, r, 1e-3), floor, 1.0) ** gamma
        rf = np.clip(x / illum[..., None], 0.0, 1.0)
        smooth = cv2.bilateralFilter(rf, 5, denoise, 3.0)
        w = illum[..., None]
        res = rf * w + smooth * (1.0 - w)
        out.append(np.clip(res * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return out


# ----------------------------------------------------------------------------- registry
METHODS: dict[str, Method] = {
    "gamma-clahe": gamma_clahe,
    "gamma-clahe-temporal": gamma_clahe_temporal,
    "lime": lime,
}

#: Every method name ``stpr eval`` / ``stpr bench`` accept, in report order.
ALL_METHODS = (*STPR_METHODS, *METHODS)


def stpr_method(weights: str | Path | None = None, frames: int | None = None, flow: str | None = None,
                tile: int | None = None, look: str | None = None, temporal_filter: float | None = None,
                tone_match: float | None = None, brightness: float | None = None) -> Method:
    """STPR as a method: loads the weights once (default: the shipped model); ``frames=1`` gives
    the per-frame variant (each frame wholly on its own: no window, no exposure smoothing and no
    temporal filter), ``flow`` overrides the flow estimator ("learned", "dis", "zero"), ``look``
    picks a tone look, ``temporal_filter`` the filter's strength and ``tone_match`` the tone
    curve's (None: the defaults; 0: off; the per-frame variant runs without either);
    ``brightness`` holds the output at that mean luma, smoothed over time as ``stpr enhance
    --brightness`` does (in the per-frame variant too: its only link between frames)."""
    from stpr.enhance import Enhancer
    from stpr.temporal import DEFAULT_STRENGTH
    from stpr.tone import DEFAULT_STRENGTH as DEFAULT_TONE

    if frames == 1:
        temporal_filter = tone_match = 0.0
    temporal_filter = DEFAULT_STRENGTH if temporal_filter is None else temporal_filter
    tone_match = DEFAULT_TONE if tone_match is None else tone_match
    enhancer = Enhancer.from_pretrained(weights, flow=flow, frames=frames, tile=tile, steady_exposure=frames != 1,
                                        look=look, temporal_filter=temporal_filter, tone_match=tone_match,
                                        brightness=brightness)

    def run(seq: list[np.ndarray]) -> list[np.ndarray]:
        return list(enhancer.enhance_frames(seq))

    run.__name__ = "stpr" if frames != 1 else "stpr_perframe"
    run.__doc__ = f"STPR ({weights or 'default weights'}, frames={frames or 'model default'})"
    return run


def make_method(name: str, weights: str | Path | None = None, flow: str | None = None,
                look: str | None = None, temporal_filter: float | None = None,
                tone_match: float | None = None, brightness: float | None = None) -> Method:
    """Method by CLI name: a baseline from ``METHODS`` or an STPR variant built from ``weights``
    (``temporal_filter``, ``tone_match``: the stpr method's, None for the defaults; ``brightness``:
    both STPR variants' output level, None for the model's guess)."""
    if name == "stpr":
        return stpr_method(weights, flow=flow, look=look, temporal_filter=temporal_filter, tone_match=tone_match,
                           brightness=brightness)
    if name == "stpr-perframe":
        return stpr_method(weights, frames=1, flow=flow, look=look, brightness=brightness)
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; choose from {', '.join(ALL_METHODS)}") from None
