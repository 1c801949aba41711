"""Classical baselines: same count/shape/dtype out, brighter than the dark input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stpr.baselines import ALL_METHODS, METHODS, make_method, temporal_denoise


def dark_clip(n=4, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h + 8, w + 8)), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    frames = []
    for i in range(n):
        f = np.stack([tex[4:4 + h, i:i + w]] * 3, -1) * [0.12, 0.1, 0.08] + rng.normal(0, 0.01, (h, w, 3))
        frames.append((np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8))
    return frames


def test_registry_is_a_plain_dict():
    assert set(METHODS) == {"gamma-clahe", "gamma-clahe-temporal", "lime"}
    assert all(callable(f) and f.__doc__ for f in METHODS.values())
    assert set(ALL_METHODS) == {"stpr", "stpr-perframe", *METHODS}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_baseline_shapes_and_brightening(name):
    frames = dark_clip()
    out = METHODS[name](frames)
    assert len(out) == len(frames)
    for o, f in zip(out, frames):
        assert o.shape == f.shape and o.dtype == np.uint8
        assert o.mean() > f.mean() + 40
    single = METHODS[name](frames[:1])
    assert len(single) == 1 and single[0].shape == frames[0].shape


def test_temporal_denoise_reduces_noise_on_static_scene():
    rng = np.random.default_rng(1)
    clean = np.full((32, 40, 3), 120.0)
    clean[:, 20:] = 160.0
    noisy = [np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8) for _ in range(5)]
    den = temporal_denoise(noisy, radius=2)
    err_in = np.abs(noisy[2].astype(float) - clean).mean()
    err_out = np.abs(den[2].astype(float) - clean).mean()
    assert err_out < 0.75 * err_in


def test_make_method_baseline_and_unknown():
    assert make_method("lime") is METHODS["lime"]
    with pytest.raises(KeyError):
        make_method("nope")
