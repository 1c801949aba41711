"""Video quality metrics on numpy frames: fidelity (PSNR/SSIM, RGB and Y), temporal stability
(warping error, flicker ratio, MABD), brightness, and optional LPIPS.

Frames are (H, W, 3) RGB, either uint8 or float in [0, 1]; a sequence is a list of frames or an
(N, H, W, 3) array. Everything is computed in float64 on [0, 1] unless stated otherwise.

Temporal metrics need motion that does not come from the method under test, so the optical flow is
always estimated on the *input* sequence (brightness-normalised, since it is dark) and shared by
every method evaluated on it (see :func:`sequence_flows`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from stpr.metrics.image import psnr as image_psnr
from stpr.metrics.image import ssim as image_ssim
from stpr.models.flow_arch import dis_flow
from stpr.models.warp import flow_warp, occlusion_mask

__all__ = [
    "to_float",
    "luma",
    "psnr_rgb",
    "psnr_y",
    "ssim_rgb",
    "ssim_y",
    "FramePairFlow",
    "sequence_flows",
    "warping_error",
    "flicker_ratio",
    "lowpass_sigma",
    "frame_brightness",
    "mean_brightness",
    "mabd",
    "mabd_mse",
    "lpips_status",
    "lpips_or_none",
]

# BT.601 luma weights (full range), as ``stpr.models.common.luma``.
_Y = np.array([0.299, 0.587, 0.114])


# ----------------------------------------------------------------------------- basics
def to_float(frame: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 or float -> float64 in [0, 1] (floats are taken as already in [0, 1])."""
    a = np.asarray(frame)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    return a.astype(np.float64)


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B (full range) of an RGB frame, float in [0, 1].
    (H, W, 3) -> (H, W)."""
    return to_float(frame) @ _Y


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_float(x), to_float(y)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    return x, y


def _chw(x: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) float array -> (1, C, H, W) float64 tensor for ``stpr.metrics.image``."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    return (t[None] if t.dim() == 2 else t.permute(2, 0, 1))[None]


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    return float(image_psnr(_chw(x), _chw(y))[0])


def psnr_rgb(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR in dB over all RGB values (data range 1). Identical images give 120 dB (MSE floor 1e-12)."""
    return _psnr(*_pair(x, y))


def psnr_gt_mean(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR in dB after scaling ``x`` so its mean equals the mean of the reference ``y`` (clipped to
    [0, 1]): the "GT mean" protocol of low-light papers. It takes the exposure guess out of the score
    and leaves noise, detail and colour; report it beside, never instead of, plain PSNR."""
    x, y = _pair(x, y)
    return _psnr(np.clip(x * (y.mean() / max(float(x.mean()), 1e-6)), 0.0, 1.0), y)


def psnr_y(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR in dB of the BT.601 luma channel (data range 1)."""
    x, y = _pair(x, y)
    return _psnr(x @ _Y, y @ _Y)


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5, border of half a window excluded), as
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``; the one implementation is ``stpr.metrics.image.ssim``."""
    if min(x.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {x.shape}")
    return float(image_ssim(_chw(x), _chw(y))[0])


def ssim_rgb(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM averaged over the R, G, B channels (skimage ``channel_axis=-1`` convention)."""
    return _ssim(*_pair(x, y))


def ssim_y(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of the BT.601 luma channel."""
    x, y = _pair(x, y)
    return _ssim(x @ _Y, y @ _Y)


# ----------------------------------------------------------------------------- flow
@dataclass
class FramePairFlow:
    """Motion between frames t-1 and t of an input sequence.

    flow: (1, 2, H, W) float32 flow from frame t to frame t-1 (so ``flow_warp(frame[t-1], flow)``
        aligns frame t-1 onto frame t).
    mask: (1, 1, H, W) 1 where the pixel is visible in both frames (forward-backward consistent
        and inside the image), 0 where occluded.
    """

    flow: torch.Tensor
    mask: torch.Tensor


def _normalised_gray(frame: np.ndarray, target: float = 0.45, max_gain: float = 100.0) -> np.ndarray:
    """Luma scaled so its mean is ~``target`` (dark input -> brightness constancy holds for the
    flow estimator), as uint8 (H, W)."""
    y = luma(frame)
    gain = min(target / max(float(y.mean()), 1e-6), max_gain)
    return (np.clip(y * gain, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sequence_flows(inputs: Sequence[np.ndarray], preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
                   ) -> list[FramePairFlow]:
    """DIS optical flow and occlusion masks for each consecutive pair of a (dark) input sequence.

    Returns N - 1 :class:`FramePairFlow` (empty for a single frame).
    """
    grays = [_normalised_gray(f) for f in inputs]
    out = []
    for prev, cur in zip(grays[:-1], grays[1:]):
        fw = torch.from_numpy(dis_flow(cur, prev, preset)).permute(2, 0, 1)[None].float()   # t -> t-1
        bw = torch.from_numpy(dis_flow(prev, cur, preset)).permute(2, 0, 1)[None].float()   # t-1 -> t
        out.append(FramePairFlow(fw, occlusion_mask(fw, bw)))
    return out


def _as_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(to_float(frame), dtype=np.float32)).permute(2, 0, 1)[None]


def _check_flows(frames: Sequence[np.ndarray], inputs, flows) -> list[FramePairFlow]:
    if flows is None:
        if inputs is None:
            raise ValueError("give the input sequence (or precomputed flows)")
        if len(inputs) != len(frames):
            raise ValueError(f"{len(frames)} output frames but {len(inputs)} input frames")
        flows = sequence_flows(inputs)
    if len(flows) != len(frames) - 1:
        raise ValueError(f"{len(frames)} frames need {len(frames) - 1} flows, got {len(flows)}")
    return flows


def warping_error(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray] | None = None, *,
                  flows: list[FramePairFlow] | None = None) -> float:
    """Warping error E_warp (Lai et al., ECCV 2018) of a video, on [0, 1] values.

    For each consecutive pair, output t-1 is backward-warped onto frame t with the flow estimated
    on the *input* sequence, and the squared difference to output t is averaged over the visible
    (non-occluded) pixels and the three channels; the result is the mean over all pairs.

    Args:
        outputs: the sequence to score.
        inputs: the sequence the flow is computed on (ignored when ``flows`` is given).
        flows: precomputed :func:`sequence_flows` of the inputs, to share between methods.

    Returns:
        E_warp (0 for a perfectly stable sequence), or NaN for fewer than two frames or when no
        pixel is visible in any pair.
    """
    if len(outputs) < 2:
        return float("nan")
    flows = _check_flows(outputs, inputs, flows)
    errs = []
    prev = _as_tensor(outputs[0])
    for pair, frame in zip(flows, outputs[1:]):
        cur = _as_tensor(frame)
        if cur.shape[-2:] != pair.flow.shape[-2:]:
            raise ValueError(f"frame size {tuple(cur.shape[-2:])} does not match the flow "
                             f"{tuple(pair.flow.shape[-2:])}")
        warped = flow_warp(prev, pair.flow)
        m = pair.mask
        n = float(m.sum()) * cur.shape[1]
        if n > 0:
            errs.append(float(((cur - warped) ** 2 * m).sum()) / n)
        prev = cur
    return float(np.mean(errs)) if errs else float("nan")


def lowpass_sigma(frame: np.ndarray) -> float:
    """The Gaussian σ (pixels) of the low-pass flicker ratio: the shorter side / 256 (2 px at 512)."""
    return min(frame.shape[:2]) / 256.0


def flicker_ratio(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray], *,
                  flows: list[FramePairFlow] | None = None, sigma: float | None = None) -> float:
    """E_warp(outputs) / E_warp(inputs brightened to the outputs' mean brightness).

    The reference is the input multiplied by one global gain (whole clip) so that its mean luma
    equals the outputs' and clipped to [0, 1]: what plain brightening would give. Both use the
    same flows. < 1: steadier than plain brightening (noise and flicker removed); ~1: as unstable;
    > 1: the method adds temporal instability. NaN for < 2 frames or a black input.

    Grain and fine detail dominate this ratio (a denoiser scores far below 1 by removing grain, and
    where the flow is off, in fast motion, detail weighs too: on a real clip with fast camera
    motion, plain brightening blurred with σ = 1 px scored 0.37). ``sigma`` (pixels) blurs the
    outputs and the reference alike first (:func:`lowpass_sigma` for the report's low-pass ratio):
    what is left weighs the flicker of brightness, colour and larger shapes, not grain.
    """
    if len(outputs) < 2:
        return float("nan")
    flows = _check_flows(outputs, inputs, flows)
    in_mean = np.mean([luma(f).mean() for f in inputs])
    out_mean = np.mean([luma(f).mean() for f in outputs])
    if in_mean <= 0:
        return float("nan")
    gain = out_mean / in_mean
    reference = [np.clip(to_float(f).astype(np.float32) * np.float32(gain), 0.0, 1.0) for f in inputs]
    if sigma:  # (in float32: the warping error is taken in float32 anyway, and it is twice as fast)
        blur = lambda f: cv2.GaussianBlur(to_float(f).astype(np.float32), (0, 0), sigma)  # noqa: E731
        reference, outputs = [blur(f) for f in reference], [blur(f) for f in outputs]
    ref = warping_error(reference, flows=flows)
    if not ref > 0:
        return float("nan")
    return warping_error(outputs, flows=flows) / ref


# ----------------------------------------------------------------------------- brightness
def frame_brightness(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Mean BT.601 luma of each frame on the 0-255 scale. Returns (N,)."""
    return np.array([_brightness(f) for f in frames], dtype=np.float64)


def _brightness(frame: np.ndarray) -> float:
    a = np.asarray(frame)
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        # luma is linear: the weighted channel means, without a float copy of the frame
        return float(np.dot(cv2.mean(np.ascontiguousarray(a))[:3], _Y))
    return float(luma(a).mean()) * 255.0


def mean_brightness(frames: Sequence[np.ndarray]) -> float:
    """Mean BT.601 luma over all frames, on the 0-255 scale."""
    return float(frame_brightness(frames).mean()) if len(frames) else float("nan")


def mabd(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Mean absolute brightness difference between consecutive frames (Jiang & Zheng, ICCV 2019):
    ``MABD[k] = mean_ij |Y_{k+1}(i, j) - Y_k(i, j)|`` with Y the BT.601 luma on the 0-255 scale.

    Returns (N - 1,) (empty for a single frame).
    """
    ys = [luma(f) * 255.0 for f in frames]
    return np.array([np.abs(b - a).mean() for a, b in zip(ys[:-1], ys[1:])])


def mabd_mse(outputs: Sequence[np.ndarray], gt: Sequence[np.ndarray]) -> float:
    """Mean squared error between the MABD vectors of ``outputs`` and ``gt`` (0-255 scale units
    squared): how far the output's frame-to-frame brightness changes are from the truth's."""
    a, b = mabd(outputs), mabd(gt)
    if len(a) != len(b):
        raise ValueError(f"{len(a) + 1} output frames but {len(b) + 1} ground-truth frames")
    return float(np.mean((a - b) ** 2)) if len(a) else float("nan")


# ----------------------------------------------------------------------------- LPIPS
_LPIPS_MODEL = None


def _alexnet_weights() -> Path | None:
    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    hits = sorted(ckpt.glob("alexnet-*.pth")) if ckpt.is_dir() else []
    return hits[0] if hits else None


def lpips_status() -> tuple[bool, str]:
    """Whether LPIPS can be computed offline: (available, reason if not). Never downloads."""
    if importlib.util.find_spec("lpips") is None:
        return False, "the lpips package is not installed"
    spec = importlib.util.find_spec("lpips")
    pkg = Path(spec.origin).parent if spec and spec.origin else None
    if pkg is None or not (pkg / "weights" / "v0.1" / "alex.pth").is_file():
        return False, "the lpips linear-layer weights (weights/v0.1/alex.pth) are missing"
    if _alexnet_weights() is None:
        return False, (f"the AlexNet backbone weights are not in the torch hub cache "
                       f"({Path(torch.hub.get_dir()) / 'checkpoints'}); not downloading them")
    return True, ""


def _lpips_model():
    global _LPIPS_MODEL
    if _LPIPS_MODEL is None:
        import lpips  # noqa: PLC0415 - optional dependency

        _LPIPS_MODEL = lpips.LPIPS(net="alex", verbose=False).eval()
    return _LPIPS_MODEL


def lpips_or_none(outputs: Sequence[np.ndarray], gt: Sequence[np.ndarray]) -> list[float] | None:
    """Per-frame LPIPS (AlexNet, v0.1) if the ``lpips`` package and all its weights are available
    locally, else None (see :func:`lpips_status` for the reason). Lower is better."""
    ok, _ = lpips_status()
    if not ok:
        return None
    try:
        model = _lpips_model()
    except Exception:  # noqa: BLE001 - any failure to build the optional model means "skip"
        return None
    vals = []
    with torch.inference_mode():
        for o, g in zip(outputs, gt):
            a, b = _as_tensor(o) * 2 - 1, _as_tensor(g) * 2 - 1
            vals.append(float(model(a, b).mean()))
    return vals
