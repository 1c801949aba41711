"""stpr.data.camera: the camera pipeline synthesis (tiny frames, CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stpr.data.camera import (add_sensor_noise, camera_clip, camera_frame, demosaic, mosaic, process,
                              sample_camera, unprocess)


def _scene(h=64, w=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(40, 220, (h // 16, w // 16, 3)), np.ones((16, 16, 1)))
    return base.astype(np.uint8)


def _clean(p):
    """The same camera without noise, codec, flicker or in-camera processing."""
    return dataclasses.replace(p, full_well=1e12, read_noise=0.0, row_noise=0.0, bits=16, crf=None,
                               luma_denoise=0.0, chroma_blur=0.0, sharpen=0.0, flicker=0.0,
                               wb_error=(0.0, 0.0), tone_gamma=1.0, demosaic="bilinear")


@pytest.mark.parametrize("method", ["bilinear", "edge_aware"])
def test_demosaic_layout(method):
    # A flat colour mosaicked as RGGB must come back as the same colour (OpenCV's shifted names).
    rgb = np.broadcast_to(np.array([0.2, 0.5, 0.8], np.float32), (16, 16, 3)).copy()
    out = demosaic(mosaic(rgb), method)
    np.testing.assert_allclose(out[4:-4, 4:-4], rgb[4:-4, 4:-4], atol=1e-4)


def test_noise_free_round_trip_restores_the_scene():
    # Reverse then forward with exposure 1 and no noise is the identity up to demosaicing.
    p = dataclasses.replace(_clean(sample_camera(np.random.default_rng(1))), exposure=1.0)
    img = _scene()
    out = process(unprocess(img, p), p)
    inner = (slice(2, -2), slice(2, -2))
    flat = np.ones((64, 64), bool)
    flat[7:10, :] = flat[:, 7:10] = False  # demosaicing blurs the block edges
    for k in range(1, 4):
        flat[16 * k - 2:16 * k + 2, :] = flat[:, 16 * k - 2:16 * k + 2] = False
    diff = np.abs(out.astype(int) - img.astype(int))[inner][flat[inner]]
    assert diff.max() <= 2


def test_dark_and_noisy():
    rng = np.random.default_rng(3)
    p = dataclasses.replace(sample_camera(rng, h264_prob=0.0), exposure=0.03)
    a = camera_frame(_scene(), p, np.random.default_rng(0))
    b = camera_frame(_scene(), p, np.random.default_rng(1))
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert a.mean() < 60  # dark
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.3  # fresh noise per draw


def test_sensor_noise_grows_as_light_falls():
    p = sample_camera(np.random.default_rng(2))
    raw = np.full((64, 64), 0.05, np.float32)
    dim = add_sensor_noise(raw * 0.1, p, np.random.default_rng(0)) / 0.1
    bright = add_sensor_noise(raw, p, np.random.default_rng(0))
    assert dim.std() > 2 * bright.std()
    # the ADC quantises to 2^bits - 1 levels
    levels = bright * (2 ** p.bits - 1)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)


def test_row_noise_is_per_row():
    p = dataclasses.replace(sample_camera(np.random.default_rng(4)), read_noise=0.0, full_well=1e12,
                            row_noise=0.01, bits=16)
    noisy = add_sensor_noise(np.full((32, 32), 0.3, np.float32), p, np.random.default_rng(0))
    assert noisy.std(axis=1).max() < 1e-4 < noisy.mean(axis=1).std()


def test_chroma_noise_is_blotchier_than_white():
    # In-camera chroma smoothing: neighbouring pixels' chroma noise is correlated.
    p = dataclasses.replace(sample_camera(np.random.default_rng(5), h264_prob=0.0), exposure=0.05,
                            chroma_blur=1.5, luma_denoise=0.0, sharpen=0.0)
    flat = np.full((64, 64, 3), 128, np.uint8)
    out = camera_frame(flat, p, np.random.default_rng(0)).astype(np.float32)
    cb = out[..., 2] - out[..., 1]
    cb -= cb.mean()
    corr = (cb[:, 1:] * cb[:, :-1]).mean() / cb.var()
    assert corr > 0.5


def test_clip_is_seeded_and_odd_sizes_work():
    frames = np.stack([_scene(h=48, w=64)[:47, :63]] * 3)
    p = sample_camera(np.random.default_rng(6), h264_prob=1.0)
    a = camera_clip(frames, p, np.random.default_rng(9))
    b = camera_clip(frames, p, np.random.default_rng(9))
    assert a.shape == frames.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        camera_clip(frames, p, np.random.default_rng(0), exposure_scales=np.ones(2))
