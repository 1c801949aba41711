"""Synthetic camera/object motion for turning still image pairs into short clips.

A clip of N crops is cut from one image with a smooth random similarity transform per frame
(translation, small rotation and zoom). Low and high images use the same transforms, and the exact
optical flow between any two crops follows from the transforms, so it can supervise the flow net.

``motion_blur_clip`` adds the blur of a handheld pan, whose length changes from frame to frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from stpr.data.synthesis import linear_to_srgb, srgb_to_linear


def random_trajectory(n: int, crop: int, img_hw: tuple[int, int], rng: np.random.Generator,
                      max_shift: float = 6.0, max_rot_deg: float = 1.5, max_zoom: float = 0.03) -> list[np.ndarray]:
    """Per-frame 2x3 matrices mapping crop pixel coords to image coords.

    Motion is a constant velocity plus jitter, so consecutive frames move by up to ``max_shift`` px.
    """
    h, w = img_hw
    vel = rng.uniform(-max_shift, max_shift, size=2)
    rot_vel = np.deg2rad(rng.uniform(-max_rot_deg, max_rot_deg))
    zoom_vel = rng.uniform(-max_zoom, max_zoom)
    span = crop + 2 * (n * max_shift + 8)
    cx = rng.uniform(span / 2, max(span / 2, w - span / 2))
    cy = rng.uniform(span / 2, max(span / 2, h - span / 2))
    mats = []
    for t in range(n):
        k = t - (n - 1) / 2
        jitter = rng.normal(0, 0.5, size=2)
        ang, s = rot_vel * k, 1.0 + zoom_vel * k
        c, si = np.cos(ang) * s, np.sin(ang) * s
        tx, ty = cx + vel[0] * k + jitter[0], cy + vel[1] * k + jitter[1]
        # crop coord q (centred) -> image coord: R q + t
        off = (crop - 1) / 2
        m = np.array([[c, -si, tx - c * off + si * off], [si, c, ty - si * off - c * off]], np.float64)
        mats.append(m)
    return mats


def warp_crop(img: np.ndarray, mat: np.ndarray, crop: int) -> np.ndarray:
    """Sample a crop x crop patch of ``img`` through ``mat`` (crop -> image coords)."""
    return cv2.warpAffine(img, mat, (crop, crop), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def affine_flow(src: np.ndarray, dst: np.ndarray, crop: int, scale: float = 1.0) -> np.ndarray:
    """Exact flow from crop ``src`` to crop ``dst`` (both 2x3 crop->image), sampled on a grid
    downscaled by ``scale`` (e.g. 0.25 for 1/4 resolution), in pixels of that grid.

    Returns (2, h, w) float32 with h = w = round(crop * scale).
    """
    n = int(round(crop * scale))
    # pixel centres of the small grid in full crop coordinates
    g = (np.arange(n) + 0.5) / scale - 0.5
    xs, ys = np.meshgrid(g, g)
    pts = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (n, n, 3)
    img_pts = pts @ src.T  # (n, n, 2)
    a = np.vstack([dst, [0, 0, 1]])
    inv = np.linalg.inv(a)[:2]
    q = np.concatenate([img_pts, np.ones_like(xs)[..., None]], axis=-1) @ inv.T
    flow = (q - pts[..., :2]) * scale
    return flow.transpose(2, 0, 1).astype(np.float32)


def line_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised, centred line of ``length`` px at ``angle`` (radians), drawn anti-aliased on an
    odd square grid: the blur of a uniform motion during the exposure. Lengths under 1 px give the
    identity (1x1)."""
    if length < 1.0:
        return np.ones((1, 1), np.float32)
    size = int(np.ceil(length)) | 1
    c = size // 2
    k = np.zeros((size, size), np.float32)
    steps = max(2, int(np.ceil(length * 4)))
    for t in np.linspace(-0.5, 0.5, steps):  # points along the segment, bilinearly splatted
        x, y = c + t * (length - 1) * np.cos(angle), c + t * (length - 1) * np.sin(angle)
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    k[y0 + dy, x0 + dx] += wy * wx
    return k / k.sum()


def motion_blur_clip(frames: np.ndarray, rng: np.random.Generator, max_len: float) -> np.ndarray:
    """Motion-blur each frame of a clip along one direction (drawn per clip, within 10 degrees
    frame to frame) by a length drawn per frame, uniform in [0, ``max_len``] px, in linear light.

    Why: in a handheld pan the blur changes from frame to frame, and a model whose tone follows the
    amount of fine texture then flickers (docs/research/real-footage.md, section 13). The kernel is
    centred, so nothing moves and a clip's flows stay valid; the result is both the target and the
    input of the darkening (enhancement, not deblurring).

    Args:
        frames: (N, H, W, 3) uint8 sRGB.
        rng: the clip's random generator.
        max_len: longest blur in pixels.

    Returns:
        (N, H, W, 3) uint8.
    """
    angle = rng.uniform(0.0, np.pi)
    lengths = rng.uniform(0.0, max_len, size=len(frames))
    jitter = rng.normal(0.0, np.deg2rad(10.0) / 2, size=len(frames))
    out = np.empty_like(frames)
    for i, (f, length) in enumerate(zip(frames, lengths)):
        k = line_kernel(float(length), angle + jitter[i])
        if k.shape == (1, 1):
            out[i] = f
            continue
        lin = srgb_to_linear(f.astype(np.float32) / 255.0)
        blurred = cv2.filter2D(lin, -1, k, borderType=cv2.BORDER_REFLECT)
        out[i] = np.clip(np.rint(linear_to_srgb(np.clip(blurred, 0.0, 1.0)) * 255.0), 0, 255).astype(np.uint8)
    return out
