"""Synthetic camera/object motion for turning still image pairs into short clips.

A clip of N crops is cut from one image with a smooth random similarity transform per frame
(translation, small rotation and zoom). Low and high images use the same transforms, and the exact
optical flow between any two crops follows from the transforms, so it can supervise the flow net.
"""

from __future__ import annotations

import cv2
import numpy as np


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
