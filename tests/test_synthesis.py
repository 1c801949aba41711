"""Physics-based low-light synthesis (stpr.data.synthesis)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stpr.data.synthesis import (DarkParams, darken_clip, darken_frame, h264_roundtrip, linear_to_srgb,
                                 sample_params, scale_noise, srgb_to_linear)


def params(**kw) -> DarkParams:
    base = dict(exposure=0.1, full_well=1000.0, read_noise=1e-3, wb_gains=(1.0, 1.0, 1.0), flicker=0.0, crf=None)
    return DarkParams(**{**base, **kw})


def smooth_clip(t: int = 3, h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 3)
    img = np.clip((img - img.mean()) * 5 + 150, 0, 255).astype(np.uint8)
    return np.repeat(img[None], t, axis=0)


def grey_clip(t: int = 2, h: int = 48, w: int = 48, value: int = 200) -> np.ndarray:
    return np.full((t, h, w, 3), value, np.uint8)


def highpass_std(img: np.ndarray) -> float:
    """Std of the residual after a 5x5 box blur (flat image -> only noise survives)."""
    f = img.astype(np.float32)
    return float((f - cv2.blur(f, (5, 5)))[4:-4, 4:-4].std())


def test_srgb_linear_inverse():
    x = np.linspace(0, 1, 1001)
    assert np.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-9)
    assert np.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-9)
    # known points of the IEC curve
    assert srgb_to_linear(np.array(0.5)) == pytest.approx(0.21404, abs=1e-4)
    assert srgb_to_linear(np.array(1.0)) == pytest.approx(1.0)
    assert np.all(np.diff(srgb_to_linear(x)) > 0)
    # linear_to_srgb clips out-of-range linear values
    assert linear_to_srgb(np.array([-0.5, 2.0])).tolist() == pytest.approx([0.0, 1.0])


def test_darken_clip_is_darker_noisier_and_keeps_shape():
    clean = grey_clip(t=3, value=180)
    dark = darken_clip(clean, params(exposure=0.08, full_well=400.0), np.random.default_rng(0))
    assert dark.dtype == np.uint8 and dark.shape == clean.shape
    assert dark.mean() < 0.5 * clean.mean()
    assert highpass_std(clean[0]) == 0.0
    assert all(highpass_std(d) > 0.5 for d in dark)
    # float input in [0, 1] gives the same kind of output
    dark_f = darken_clip(clean.astype(np.float32) / 255.0, params(), np.random.default_rng(0))
    assert dark_f.dtype == np.uint8 and dark_f.shape == clean.shape


def test_darken_noise_is_signal_dependent():
    """Less full-well capacity (fewer photons) -> more shot noise at the same exposure."""
    clean = grey_clip(t=1, value=200)
    lo = darken_clip(clean, params(full_well=3000.0, read_noise=1e-4), np.random.default_rng(1))[0]
    hi = darken_clip(clean, params(full_well=100.0, read_noise=1e-4), np.random.default_rng(1))[0]
    assert highpass_std(hi) > 1.5 * highpass_std(lo)


def test_darken_seeded():
    clean = smooth_clip()
    p = params(flicker=0.03)
    a = darken_clip(clean, p, np.random.default_rng(7))
    b = darken_clip(clean, p, np.random.default_rng(7))
    c = darken_clip(clean, p, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_noise_is_independent_across_frames():
    clean = grey_clip(t=2, value=150)  # a static clip
    dark = darken_clip(clean, params(flicker=0.0), np.random.default_rng(3))
    assert not np.array_equal(dark[0], dark[1])
    d0 = dark[0].astype(np.float32) - dark[0].mean()
    d1 = dark[1].astype(np.float32) - dark[1].mean()
    corr = float((d0 * d1).mean() / (d0.std() * d1.std()))
    assert abs(corr) < 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_lower_exposure_is_darker(seed):
    clean = smooth_clip(t=1, seed=seed)
    means = [darken_clip(clean, params(exposure=e), np.random.default_rng(seed)).mean()
             for e in (0.01, 0.03, 0.1, 0.3, 1.0)]
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_white_balance_gains_tint():
    clean = grey_clip(t=1, value=200)
    dark = darken_frame(clean[0], params(exposure=0.3, wb_gains=(1.5, 1.0, 0.6)), np.random.default_rng(0))
    r, g, b = (dark[..., k].mean() for k in range(3))
    assert r > g > b


def test_sample_params_ranges_and_seed():
    rng = np.random.default_rng(0)
    ps = [sample_params(rng, (0.02, 0.2), h264_prob=0.5) for _ in range(200)]
    assert all(0.02 <= p.exposure <= 0.2 for p in ps)
    assert any(p.crf is None for p in ps) and any(p.crf is not None for p in ps)
    assert all(18 <= p.crf < 32 for p in ps if p.crf is not None)
    assert sample_params(np.random.default_rng(5)) == sample_params(np.random.default_rng(5))
    assert all(p.crf is None for p in (sample_params(rng, h264_prob=0.0) for _ in range(20)))


def waves(h: int, w: int, shift: int) -> np.ndarray:
    """Smooth colour waves moving right by ``shift`` px (easy content for a video codec)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 60 + 120 * (0.5 + 0.5 * np.sin((xx + shift) / 5))
    g = 60 + 120 * (0.5 + 0.5 * np.cos(yy / 6))
    b = 100 + 80 * (0.5 + 0.5 * np.sin((xx + yy + shift) / 8))
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("hw", [(32, 48), (31, 45)])
def test_h264_roundtrip_keeps_shape_and_content(hw):
    frames = np.stack([waves(*hw, 3 * i) for i in range(4)])
    out = h264_roundtrip(frames, crf=18)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    err = [np.abs(o.astype(np.float32) - f).mean() for o, f in zip(out, frames)]
    assert max(err) < 5.0, err
    # frames stay in order: each decoded frame is far closer to its own input than to the others
    moved = np.abs(frames[0].astype(np.float32) - frames[-1]).mean()
    assert moved > 4 * max(err)
    assert np.abs(out[-1].astype(np.float32) - frames[-1]).mean() < np.abs(out[-1].astype(np.float32) - frames[0]).mean()


def test_darken_clip_with_crf_goes_through_h264():
    clean = smooth_clip(t=3, h=32, w=32)
    p = params(exposure=0.3, crf=40)
    plain = darken_clip(clean, DarkParams(**{**p.__dict__, "crf": None}), np.random.default_rng(0))
    coded = darken_clip(clean, p, np.random.default_rng(0))
    assert coded.shape == plain.shape and coded.dtype == np.uint8
    assert not np.array_equal(coded, plain)
    # a strong encode smooths away most of the independent sensor noise
    assert highpass_std(coded[1]) < highpass_std(plain[1])


def test_darken_clip_exposure_scales():
    """Per-frame exposure multipliers: a 4x step shows as a ~4x step in linear-light brightness,
    and the scales must match the number of frames."""
    clean = grey_clip(t=4, value=150)
    p = params(exposure=0.05, full_well=3000.0, flicker=0.0)
    dark = darken_clip(clean, p, np.random.default_rng(0), np.array([0.5, 2.0, 0.5, 2.0]))
    lin = srgb_to_linear(dark.astype(np.float64) / 255).mean(axis=(1, 2, 3))
    assert lin[1] / lin[0] == pytest.approx(4.0, rel=0.1) and lin[3] / lin[2] == pytest.approx(4.0, rel=0.1)
    same = darken_clip(clean, p, np.random.default_rng(0), np.ones(4))
    assert np.array_equal(same, darken_clip(clean, p, np.random.default_rng(0)))
    with pytest.raises(ValueError):
        darken_clip(clean, p, np.random.default_rng(0), np.ones(3))


def test_scale_noise_scales_the_noise_std():
    """Half the noise std: the high-pass std of a flat grey frame roughly halves; 0: no noise left
    beyond 8-bit rounding (all pixels equal), and two draws agree."""
    clean = grey_clip(t=1, value=160)
    p = params(exposure=0.05, full_well=300.0, read_noise=2e-3)
    stds = [highpass_std(darken_clip(clean, scale_noise(p, s), np.random.default_rng(4))[0]) for s in (1.0, 0.5)]
    assert stds[1] == pytest.approx(stds[0] / 2, rel=0.2)
    quiet = scale_noise(p, 0.0)
    a = darken_clip(clean, quiet, np.random.default_rng(1))
    b = darken_clip(clean, quiet, np.random.default_rng(2))
    assert np.array_equal(a, b) and highpass_std(a[0]) == 0.0
    # the rest of the camera is unchanged: about the same mean level (noise through the concave
    # sRGB curve lowers the noisy mean a little)
    assert abs(float(a.mean()) - float(darken_clip(clean, p, np.random.default_rng(1)).mean())) < 3.0
    assert scale_noise(p, 1.0) == p
    with pytest.raises(ValueError):
        scale_noise(p, -1.0)
