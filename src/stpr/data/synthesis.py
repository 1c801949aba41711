"""Physics-based low-light synthesis: turn normal-light sRGB video into realistic dark video.

Per clip we sample one set of camera parameters (``DarkParams``); per frame we draw fresh sensor
noise and a small exposure flicker. The chain follows a camera:

    sRGB -> linear -> white balance / colour cast -> exposure -> Poisson-Gaussian noise
         -> clip -> sRGB -> 8-bit quantisation -> (optional) H.264 round trip
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 inverse transfer. x in [0, 1]."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


@dataclass
class DarkParams:
    """Camera parameters for one clip.

    Args:
        exposure: linear-light scale (0.01 = 6.6 stops under).
        full_well: photo-electrons at linear value 1.0 *after* exposure; smaller = more shot noise.
        read_noise: std of Gaussian read noise in linear units.
        wb_gains: per-channel (R, G, B) multipliers (colour cast).
        flicker: std of the per-frame relative exposure jitter.
        crf: H.264 CRF for the re-encode, or None for no re-encode.
    """

    exposure: float
    full_well: float
    read_noise: float
    wb_gains: tuple[float, float, float]
    flicker: float
    crf: int | None = None


def sample_params(rng: np.random.Generator, exposure_range=(0.01, 0.3), h264_prob: float = 0.0) -> DarkParams:
    """Draw clip parameters. Exposure is log-uniform so very dark clips are as common as dim ones."""
    lo, hi = np.log(exposure_range[0]), np.log(exposure_range[1])
    return DarkParams(
        exposure=float(np.exp(rng.uniform(lo, hi))),
        full_well=float(np.exp(rng.uniform(np.log(300.0), np.log(3000.0)))),
        read_noise=float(np.exp(rng.uniform(np.log(3e-4), np.log(4e-3)))),
        wb_gains=tuple(float(g) for g in np.exp(rng.normal(0.0, 0.08, size=3))),
        flicker=float(rng.uniform(0.0, 0.05)),
        crf=int(rng.integers(18, 32)) if rng.random() < h264_prob else None,
    )


def scale_noise(p: DarkParams, scale: float) -> DarkParams:
    """The same camera with its sensor noise std multiplied by ``scale`` (shot and read noise alike).

    ``scale = 1 / sqrt(k)`` is the noise left after averaging k perfectly aligned frames, what ideal
    k-frame fusion would see; ``scale = 0`` is a noise-free camera (still 8-bit quantised).
    """
    if not scale >= 0:
        raise ValueError(f"noise scale must be >= 0, got {scale}")
    if scale == 0:
        return replace(p, full_well=float("inf"), read_noise=0.0)
    return replace(p, full_well=p.full_well / scale ** 2, read_noise=p.read_noise * scale)


def darken_frame(frame: np.ndarray, p: DarkParams, rng: np.random.Generator,
                 exposure_scale: float = 1.0) -> np.ndarray:
    """Darken one frame.

    Args:
        frame: (H, W, 3) float32 sRGB in [0, 1] (or uint8).
        p: clip parameters.
        rng: generator for this frame's noise.
        exposure_scale: extra per-frame multiplier (flicker).

    Returns:
        (H, W, 3) uint8 dark sRGB frame.
    """
    x = frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)
    lin = srgb_to_linear(x) * np.asarray(p.wb_gains, np.float32) * (p.exposure * exposure_scale)
    if np.isfinite(p.full_well):
        noisy = rng.poisson(np.clip(lin, 0, None) * p.full_well).astype(np.float32) / p.full_well
    else:  # noise-free camera (scale_noise(p, 0))
        noisy = lin
    if p.read_noise > 0:
        noisy = noisy + rng.normal(0.0, p.read_noise, size=lin.shape).astype(np.float32)
    out = linear_to_srgb(noisy)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def darken_clip(frames: np.ndarray, p: DarkParams, rng: np.random.Generator,
                exposure_scales: np.ndarray | None = None) -> np.ndarray:
    """Darken a clip with one set of parameters, fresh noise and flicker per frame.

    Args:
        frames: (T, H, W, 3) uint8 or float sRGB.
        exposure_scales: optional (T,) per-frame exposure multipliers on top of the flicker
            (exposure jumps: auto-exposure steps, bracketing, lights switching).

    Returns:
        (T, H, W, 3) uint8.
    """
    scales = np.ones(len(frames)) if exposure_scales is None else np.asarray(exposure_scales, np.float64)
    if scales.shape != (len(frames),):
        raise ValueError(f"exposure_scales needs one value per frame, got shape {scales.shape}")
    out = np.stack([
        darken_frame(f, p, rng, exposure_scale=float(s * np.exp(rng.normal(0.0, p.flicker))))
        for f, s in zip(frames, scales)
    ])
    if p.crf is not None:
        out = h264_roundtrip(out, p.crf)
    return out


def h264_roundtrip(frames: np.ndarray, crf: int) -> np.ndarray:
    """Encode (T, H, W, 3) uint8 frames with libx264 in memory and decode them again."""
    import av

    t, h, w, _ = frames.shape
    eh, ew = h + h % 2, w + w % 2  # yuv420p needs even sizes
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = ew, eh, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
        for f in frames:
            if (eh, ew) != (h, w):
                f = np.pad(f, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
            for pkt in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    buf.seek(0)
    with av.open(buf, mode="r") as inp:
        dec = [fr.to_ndarray(format="rgb24")[:h, :w] for fr in inp.decode(video=0)]
    return np.stack(dec[:t])
