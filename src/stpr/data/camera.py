"""A phone camera in reverse and forward: dark, noisy, compressed video from normal-light sRGB.

The white Poisson-Gaussian synthesis of ``synthesis.py`` adds noise to finished sRGB pixels, so
its noise is fine-grained and equally strong in every channel. Real dark phone video is not: the
noise is added to a Bayer mosaic before demosaicing, white balance and colour correction amplify
red and blue, the camera smooths chroma harder than luma (blotches a few pixels wide remain), it
sharpens luma, and H.264 at night-time bitrates turns flat shadows into 4x4-16x16 blocks whose
chroma drifts green or orange. This module runs that chain (after Brooks et al., "Unprocessing
images for learned raw denoising", CVPR 2019, for the reverse half)::

    sRGB -> linear -> camera RGB (inverse CCM) -> / white balance -> exposure -> RGGB mosaic
         -> shot + read + row noise -> ADC quantisation (10-12 bit)
         -> demosaic -> white balance (with estimation error) -> CCM -> tone curve
         -> in-camera denoise (chroma harder than luma) -> sharpening -> 8 bit -> H.264

One ``CameraParams`` per clip (``sample_camera``), fresh noise and flicker per frame.
``experiments/camera_calibration.py`` compares its noise with the real dark clips' (noise power
spectra and luma/chroma ratios of flat patches).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from stpr.data.synthesis import h264_roundtrip, linear_to_srgb, srgb_to_linear

# OpenCV's names for Bayer layouts are shifted by one pixel: for a mosaic whose top-left 2x2 block
# is R G / G B (RGGB, written by ``mosaic``), the matching conversion is BayerBG2RGB
# (``tests/test_camera.py::test_demosaic_layout`` checks it).
_DEMOSAIC = {"bilinear": cv2.COLOR_BayerBG2RGB, "edge_aware": cv2.COLOR_BayerBG2RGB_EA}

# Camera RGB <- linear sRGB matrices are close to identity with the colours mixed: sensors' colour
# filters overlap, so camera RGB is less saturated than sRGB and the CCM re-saturates it.
_BT601 = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


@dataclass
class CameraParams:
    """One camera and scene light for a clip.

    Args:
        exposure: linear-light scale of the scene (0.01 = 6.6 stops under).
        full_well: photo-electrons at raw value 1.0 (after exposure); smaller = more shot noise.
        read_noise: std of the Gaussian read noise, raw units (1.0 = white level).
        row_noise: std of a per-row offset (banding), raw units.
        bits: ADC bits of the raw values.
        wb_gains: the camera's (R, B) white-balance gains; green is 1.
        wb_error: relative error of the camera's white-balance estimate, (R, B): a colour cast.
        mix: colour-filter crosstalk; camera RGB = (1 - mix) * sRGB + mix * its mean (per pixel).
        demosaic: "bilinear" or "edge_aware" (OpenCV).
        tone_gamma: extra power on the sRGB curve (< 1 lifts shadows as night modes do).
        luma_denoise: sigma (in 8-bit levels) of the in-camera edge-preserving luma smoothing (0: none).
        chroma_blur: sigma (px) of the in-camera chroma smoothing: the size of the blotches.
        sharpen: unsharp-mask amount on luma.
        flicker: std of the per-frame relative exposure jitter.
        crf: H.264 CRF of the recording, or None for uncompressed frames.
    """

    exposure: float
    full_well: float
    read_noise: float
    row_noise: float
    bits: int
    wb_gains: tuple[float, float]
    wb_error: tuple[float, float]
    mix: float
    demosaic: str
    tone_gamma: float
    luma_denoise: float
    chroma_blur: float
    sharpen: float
    flicker: float
    crf: int | None


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_camera(rng: np.random.Generator, exposure_range: tuple[float, float] = (0.01, 0.3),
                  h264_prob: float = 0.7, crf_range: tuple[int, int] = (20, 36)) -> CameraParams:
    """Draw a camera for one clip. Ranges are set so the synthetic noise brackets the real dark
    clips' (``experiments/camera_calibration.py``); exposure is log-uniform."""
    return CameraParams(
        exposure=_log_uniform(rng, *exposure_range),
        full_well=_log_uniform(rng, 400.0, 6000.0),
        read_noise=_log_uniform(rng, 2e-4, 3e-3),
        row_noise=_log_uniform(rng, 1e-5, 5e-4),
        bits=int(rng.choice([10, 12])),
        wb_gains=(float(rng.uniform(1.6, 2.4)), float(rng.uniform(1.4, 2.0))),
        wb_error=(float(rng.normal(0.0, 0.06)), float(rng.normal(0.0, 0.06))),
        mix=float(rng.uniform(0.1, 0.35)),
        demosaic=str(rng.choice(list(_DEMOSAIC))),
        tone_gamma=float(rng.uniform(0.85, 1.0)),
        luma_denoise=float(rng.uniform(0.0, 12.0)) if rng.random() < 0.8 else 0.0,
        chroma_blur=float(rng.uniform(0.2, 1.6)),
        sharpen=float(rng.uniform(0.0, 0.8)),
        flicker=float(rng.uniform(0.0, 0.04)),
        crf=int(rng.integers(crf_range[0], crf_range[1] + 1)) if rng.random() < h264_prob else None,
    )


def scale_camera_noise(p: CameraParams, scale: float) -> CameraParams:
    """The same camera with its sensor noise std multiplied by ``scale`` (as ``synthesis.scale_noise``)."""
    if not scale >= 0:
        raise ValueError(f"noise scale must be >= 0, got {scale}")
    if scale == 1:
        return p
    if scale == 0:
        return replace(p, full_well=1e12, read_noise=0.0, row_noise=0.0)
    return replace(p, full_well=p.full_well / scale ** 2, read_noise=p.read_noise * scale,
                   row_noise=p.row_noise * scale)


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) RGGB Bayer mosaic (H, W even)."""
    raw = np.empty(rgb.shape[:2], rgb.dtype)
    raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
    raw[0::2, 1::2] = rgb[0::2, 1::2, 1]
    raw[1::2, 0::2] = rgb[1::2, 0::2, 1]
    raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return raw


def demosaic(raw: np.ndarray, method: str = "bilinear") -> np.ndarray:
    """(H, W) RGGB mosaic in [0, 1] -> (H, W, 3) float32 RGB (OpenCV, through 16 bits)."""
    q = np.round(np.clip(raw, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return cv2.cvtColor(q, _DEMOSAIC[method]).astype(np.float32) / 65535.0


def _cam_from_srgb(mix: float) -> np.ndarray:
    return (1.0 - mix) * np.eye(3, dtype=np.float32) + mix / 3.0


def unprocess(frame: np.ndarray, p: CameraParams, exposure_scale: float = 1.0) -> np.ndarray:
    """Normal-light sRGB (H, W, 3) uint8 or float in [0, 1] -> clean raw RGGB mosaic (H, W)."""
    x = frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)
    lin = srgb_to_linear(x).astype(np.float32)
    cam = lin @ _cam_from_srgb(p.mix).T
    cam = cam / np.array([p.wb_gains[0], 1.0, p.wb_gains[1]], np.float32)
    return mosaic(np.clip(cam, 0.0, None) * np.float32(p.exposure * exposure_scale))


def add_sensor_noise(raw: np.ndarray, p: CameraParams, rng: np.random.Generator) -> np.ndarray:
    """Shot (Poisson), read (Gaussian) and row noise, then black-level clipping and the ADC."""
    noisy = rng.poisson(np.clip(raw, 0.0, None) * p.full_well).astype(np.float32) / np.float32(p.full_well)
    noisy += rng.normal(0.0, p.read_noise, raw.shape).astype(np.float32)
    noisy += rng.normal(0.0, p.row_noise, (raw.shape[0], 1)).astype(np.float32)
    levels = float(2 ** p.bits - 1)
    return np.round(np.clip(noisy, 0.0, 1.0) * levels).astype(np.float32) / np.float32(levels)


def process(raw: np.ndarray, p: CameraParams) -> np.ndarray:
    """Noisy raw mosaic (H, W) -> the camera's 8-bit sRGB frame (H, W, 3) uint8."""
    rgb = demosaic(raw, p.demosaic)
    gains = np.array([p.wb_gains[0] * (1 + p.wb_error[0]), 1.0, p.wb_gains[1] * (1 + p.wb_error[1])], np.float32)
    lin = np.clip(rgb * gains, 0.0, 1.0) @ np.linalg.inv(_cam_from_srgb(p.mix)).T.astype(np.float32)
    srgb = linear_to_srgb(np.clip(lin, 0.0, 1.0)).astype(np.float32) ** np.float32(p.tone_gamma)
    ycc = srgb @ _BT601.T  # Y in [0, 1], Cb/Cr in [-0.5, 0.5]
    y = ycc[..., 0]
    if p.luma_denoise > 0:
        y = cv2.bilateralFilter(y, 5, p.luma_denoise / 255.0, 2.0)
    if p.sharpen > 0:
        y = y + p.sharpen * (y - cv2.GaussianBlur(y, (0, 0), 1.0))
    if p.chroma_blur > 0:
        ycc[..., 1:] = cv2.GaussianBlur(ycc[..., 1:], (0, 0), p.chroma_blur)
    ycc[..., 0] = y
    out = ycc @ np.linalg.inv(_BT601).T.astype(np.float32)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def camera_frame(frame: np.ndarray, p: CameraParams, rng: np.random.Generator,
                 exposure_scale: float = 1.0) -> np.ndarray:
    """One normal-light frame (H, W, 3) through the camera, without the codec -> (H, W, 3) uint8.
    Odd sizes are edge-padded to even for the mosaic and cropped back."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    out = process(add_sensor_noise(unprocess(frame, p, exposure_scale), p, rng), p)
    return out[:h, :w]


def camera_clip(frames: np.ndarray, p: CameraParams, rng: np.random.Generator,
                exposure_scales: np.ndarray | None = None) -> np.ndarray:
    """A clip (T, H, W, 3) through the camera: fresh noise and flicker per frame, then the codec.

    Args:
        frames: (T, H, W, 3) uint8 or float sRGB, normal light.
        exposure_scales: optional (T,) per-frame exposure multipliers on top of the flicker.

    Returns:
        (T, H, W, 3) uint8 dark frames.
    """
    scales = np.ones(len(frames)) if exposure_scales is None else np.asarray(exposure_scales, np.float64)
    if scales.shape != (len(frames),):
        raise ValueError(f"exposure_scales needs one value per frame, got shape {scales.shape}")
    out = np.stack([camera_frame(f, p, rng, float(s * np.exp(rng.normal(0.0, p.flicker))))
                    for f, s in zip(frames, scales)])
    return h264_roundtrip(out, p.crf) if p.crf is not None else out
