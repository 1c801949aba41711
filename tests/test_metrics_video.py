"""Video metrics against references and known values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from stpr.metrics import (flicker_ratio, lpips_or_none, mabd, mabd_mse, mean_brightness, psnr_gt_mean, psnr_rgb,
                          psnr_y, sequence_flows, ssim_rgb, ssim_y, warping_error)
from stpr.metrics.video import frame_brightness, lowpass_sigma, lpips_status  # not all re-exported by stpr.metrics

Y = np.array([0.299, 0.587, 0.114])


def texture(h=48, w=64, pad=16, seed=0):
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((h + pad, w + pad)), (0, 0), 1.5)
    return (t - t.min()) / (t.max() - t.min())


def moving_clip(n=5, h=48, w=64, level=0.15, seed=0):
    """Float clip in [0, 1]: a texture sliding one pixel right-to-left per frame, dark."""
    tex = texture(h, w, seed=seed)
    return [np.stack([tex[4:4 + h, 2 + i:2 + i + w]] * 3, -1) * np.array([1.0, 0.9, 0.8]) * level
            for i in range(n)]


def to8(frames):
    return [(np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8) for f in frames]


def test_psnr_known_values():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 51, np.uint8)  # error 0.2 everywhere: MSE 0.04 -> 13.98 dB
    assert psnr_rgb(a, b) == pytest.approx(10 * np.log10(1 / 0.04), abs=1e-9)
    assert psnr_y(a, b) == pytest.approx(10 * np.log10(1 / 0.04), abs=1e-9)
    # Y only sees the luma error: a pure blue offset of 0.5 -> Y error 0.057
    c = np.zeros((8, 8, 3))
    c[..., 2] = 0.5
    assert psnr_y(np.zeros((8, 8, 3)), c) == pytest.approx(10 * np.log10(1 / (0.114 * 0.5) ** 2), abs=1e-9)
    assert psnr_rgb(b, b) > 100


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_skimage(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = np.clip(cv2.GaussianBlur(a, (5, 5), 1.0).astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    af, bf = a / 255.0, b / 255.0
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
    ref_rgb = structural_similarity(af, bf, channel_axis=-1, **kw)
    ref_y = structural_similarity(af @ Y, bf @ Y, **kw)
    assert abs(ssim_rgb(a, b) - ref_rgb) < 1e-3
    assert abs(ssim_y(a, b) - ref_y) < 1e-3
    assert ssim_rgb(af, af) == pytest.approx(1.0)


def test_flow_points_from_t_to_t_minus_1():
    flows = sequence_flows(to8(moving_clip(3)))
    assert len(flows) == 2
    # frame t at x shows what frame t-1 had at x + 1
    fx = flows[0].flow[0, 0, 8:-8, 8:-8].mean().item()
    assert fx == pytest.approx(1.0, abs=0.15)
    assert flows[0].mask.mean().item() > 0.8


def test_warping_error_zero_for_static_sequence():
    f = to8(moving_clip(1))[0]
    static = [f] * 4
    assert warping_error(static, static) < 1e-8
    assert np.isnan(warping_error([f], [f]))


def test_warping_error_rises_with_flicker():
    clip = moving_clip(5)
    inputs = to8(clip)
    flows = sequence_flows(inputs)
    steady = [np.clip(f * 4, 0, 1) for f in clip]
    jitter = [np.clip(f * 4 * g, 0, 1) for f, g in zip(clip, [1.0, 1.2, 0.85, 1.15, 0.9])]
    e_steady = warping_error(steady, inputs)
    e_jitter = warping_error(jitter, flows=flows)
    assert e_steady < 1e-4
    assert e_jitter > 10 * e_steady
    assert warping_error(steady, flows=flows) == pytest.approx(e_steady)


def test_flicker_ratio():
    rng = np.random.default_rng(3)
    clean = moving_clip(5)
    noisy = to8([f + rng.normal(0, 0.01, f.shape) for f in clean])
    # plain brightening of the noisy input: ratio ~ 1
    plain = to8([f / 255.0 * 3.5 for f in noisy])
    assert flicker_ratio(plain, noisy) == pytest.approx(1.0, abs=0.05)
    # a temporally smoothed output (noise removed, same brightness): well below 1
    smooth = to8([f * 3.5 for f in clean])
    assert flicker_ratio(smooth, noisy) < 0.5
    # more flicker than plain brightening: above 1
    flicker = to8([f / 255.0 * 3.5 * g for f, g in zip(noisy, [1.0, 1.3, 0.8, 1.2, 0.85])])
    assert flicker_ratio(flicker, noisy) > 1.5


def test_lowpass_flicker_ratio_sees_flicker_not_grain():
    rng = np.random.default_rng(4)
    clean = moving_clip(5, 96, 128)
    noisy = to8([f + rng.normal(0, 0.01, f.shape) for f in clean])  # dark input with grain
    flows = sequence_flows(noisy)
    sigma = lowpass_sigma(noisy[0]) * 4
    pumping = to8([f / 255.0 * 3.5 * g for f, g in zip(noisy, [1.0, 1.3, 0.8, 1.2, 0.85])])
    # the grain of plain brightening is most of the plain ratio's reference; blurred out of both,
    # the same brightness flicker weighs several times more
    assert flicker_ratio(pumping, noisy, flows=flows, sigma=sigma) > 5 * flicker_ratio(pumping, noisy, flows=flows) > 5
    plain = to8([f / 255.0 * 3.5 for f in noisy])
    assert flicker_ratio(plain, noisy, flows=flows, sigma=sigma) == pytest.approx(1.0, abs=0.05)
    assert lowpass_sigma(np.zeros((512, 700, 3))) == 2.0


def test_mabd_and_brightness_known_values():
    frames = [np.full((4, 6, 3), v, np.uint8) for v in (10, 30, 25)]
    np.testing.assert_allclose(mabd(frames), [20.0, 5.0])
    np.testing.assert_allclose(frame_brightness(frames), [10, 30, 25])
    rng = np.random.default_rng(0)  # uint8 frames take the channel means; others the luma image's
    noisy = [rng.integers(0, 256, (9, 7, 3), dtype=np.uint8) for _ in range(2)]
    np.testing.assert_allclose(frame_brightness(noisy), frame_brightness([f / 255.0 for f in noisy]))
    np.testing.assert_allclose(frame_brightness(noisy), [(f / 255.0 @ Y).mean() * 255 for f in noisy])
    assert mean_brightness(frames) == pytest.approx(65 / 3)
    gt = [np.full((4, 6, 3), v, np.uint8) for v in (100, 110, 100)]  # MABD [10, 10]
    assert mabd_mse(frames, gt) == pytest.approx(((20 - 10) ** 2 + (5 - 10) ** 2) / 2)
    assert mabd(frames[:1]).shape == (0,)
    # colour weights are BT.601 luma
    red = [np.zeros((2, 2, 3)), np.dstack([np.ones((2, 2)), np.zeros((2, 2)), np.zeros((2, 2))])]
    np.testing.assert_allclose(mabd(red), [0.299 * 255])


def test_lpips_none_without_package_or_weights():
    ok, reason = lpips_status()
    f = to8(moving_clip(1))
    if ok:
        vals = lpips_or_none(f, f)
        assert vals is not None and vals[0] < 1e-3
    else:
        assert reason
        assert lpips_or_none(f, f) is None


def test_psnr_gt_mean_ignores_exposure_but_not_noise():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.1, 0.6, (32, 32, 3))
    darker = gt * 0.7  # right content, wrong exposure
    assert psnr_rgb(darker, gt) < 20
    assert psnr_gt_mean(darker, gt) > 100  # exposure taken out exactly
    noisy = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    assert psnr_gt_mean(noisy, gt) == pytest.approx(psnr_rgb(noisy, gt), abs=0.2)  # noise still counts
    assert psnr_gt_mean(np.zeros_like(gt), gt) < 15  # a black frame is not rescued
