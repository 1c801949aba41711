"""stpr.data.camera_torch: the batched torch camera against camera.py's NumPy/OpenCV one (CPU)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from stpr.data.camera import camera_frame, sample_camera, scale_camera_noise
from stpr.data.camera_torch import bilateral5, blur_per_sample, camera_clip_torch, camera_vector, demosaic_bilinear

pytestmark = pytest.mark.usefixtures("one_thread")


def _scene(h=64, w=96, seed=0) -> np.ndarray:
    """Smooth colour ramps plus a few soft blobs: (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.stack([60 + 120 * xx / w, 80 + 100 * yy / h, 150 - 80 * xx / w], -1)
    for _ in range(4):
        cy, cx, c = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(-60, 60, 3)
        img += c * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 120.0)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _camera(seed: int, **kw):
    p = dataclasses.replace(sample_camera(np.random.default_rng(seed), h264_prob=0.0), demosaic="bilinear", **kw)
    return p


def _torch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)


def test_demosaic_matches_opencv_bilinear_inside():
    rng = np.random.default_rng(0)
    raw = rng.random((32, 48)).astype(np.float32)
    ref = cv2.cvtColor((raw * 65535).astype(np.uint16), cv2.COLOR_BayerBG2RGB).astype(np.float32) / 65535
    got = demosaic_bilinear(torch.from_numpy(raw)[None, None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got[2:-2, 2:-2], ref[2:-2, 2:-2], atol=1e-4)


def test_bilateral_and_blur_match_opencv():
    rng = np.random.default_rng(1)
    y = cv2.GaussianBlur(rng.random((40, 56)).astype(np.float32), (0, 0), 1.5)
    for sc in (0.02, 0.1):
        ref = cv2.bilateralFilter(y, 5, sc, 2.0)
        got = bilateral5(torch.from_numpy(y)[None, None], torch.tensor([sc]))[0, 0].numpy()
        np.testing.assert_allclose(got, ref, atol=2e-3)
    assert torch.equal(bilateral5(torch.from_numpy(y)[None, None], torch.tensor([0.0]))[0, 0], torch.from_numpy(y))
    for sigma in (0.5, 1.6):
        ref = cv2.GaussianBlur(y, (0, 0), sigma)
        r = int(np.ceil(4 * sigma))
        x = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (x / sigma) ** 2)
        got = blur_per_sample(torch.from_numpy(y)[None, None], (k / k.sum())[None])[0, 0].numpy()
        np.testing.assert_allclose(got, ref, atol=2e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_free_output_matches_camera_py(seed):
    """Without sensor noise and flicker both cameras see the same scene the same way: they differ
    by rounding and at the borders only."""
    p = dataclasses.replace(scale_camera_noise(_camera(seed), 0.0), flicker=0.0, exposure=0.2)
    img = _scene(seed=seed)
    ref = camera_frame(img, p, np.random.default_rng(0)).astype(np.float32)
    got = camera_clip_torch(_torch(img)[None, None], [p])[0, 0].permute(1, 2, 0).numpy() * 255
    inner = (slice(8, -8), slice(8, -8))
    diff = np.abs(got[inner] - ref[inner])
    assert diff.mean() < 0.3 and diff.max() <= 3, (diff.mean(), diff.max())


def test_noise_matches_camera_py_in_strength():
    """Same cameras, flat grey scenes: per-channel noise std of the two agree within 12 %, means
    within one level."""
    img = np.full((64, 64, 3), 128, np.uint8)
    params = [dataclasses.replace(_camera(s), exposure=0.05, flicker=0.0) for s in range(6)]
    g = torch.Generator().manual_seed(0)
    got = camera_clip_torch(_torch(img)[None, None].repeat(6, 4, 1, 1, 1), params, generator=g) * 255
    for k, p in enumerate(params):
        ref = np.stack([camera_frame(img, p, np.random.default_rng(10 + i)) for i in range(4)]).astype(np.float32)
        t = got[k].permute(0, 2, 3, 1).numpy()
        inner = (slice(None), slice(8, -8), slice(8, -8))
        np.testing.assert_allclose(t[inner].mean(axis=(0, 1, 2)), ref[inner].mean(axis=(0, 1, 2)), atol=1.0)
        ratio = t[inner].std(axis=(0, 1, 2)) / ref[inner].std(axis=(0, 1, 2))
        assert np.all(np.abs(ratio - 1) < 0.12), (k, ratio)


def test_shapes_range_determinism_and_odd_sizes():
    clip = _torch(_scene(33, 45))[None, None].repeat(2, 3, 1, 1, 1)
    params = [_camera(0), _camera(1)]
    a = camera_clip_torch(clip, params, generator=torch.Generator().manual_seed(5))
    b = camera_clip_torch(clip, params, generator=torch.Generator().manual_seed(5))
    c = camera_clip_torch(clip, params, generator=torch.Generator().manual_seed(6))
    assert a.shape == clip.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    vectors = torch.stack([camera_vector(p) for p in params])  # what a DataLoader batch carries
    assert torch.equal(camera_clip_torch(clip, vectors, generator=torch.Generator().manual_seed(5)), a)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(torch.round(a * 255) / 255, a)  # 8-bit levels
    assert (a[:, 0] - a[:, 1]).abs().mean() > 0  # fresh noise per frame
    assert a.mean() < clip.mean()  # dark
    with pytest.raises(ValueError):
        camera_clip_torch(clip, params[:1])
    with pytest.raises(ValueError):
        camera_clip_torch(clip[:, 0], params)


def test_exposure_scales_scale_each_frame():
    img = np.full((32, 32, 3), 160, np.uint8)
    p = dataclasses.replace(scale_camera_noise(_camera(3), 0.0), flicker=0.0, exposure=0.05)
    clip = _torch(img)[None, None].repeat(1, 2, 1, 1, 1)
    out = camera_clip_torch(clip, [p], exposure_scales=torch.tensor([[1.0, 4.0]]))
    assert out[0, 1].mean() > 1.5 * out[0, 0].mean()
