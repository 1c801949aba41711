"""``stpr.tone``: plain brightening's shadows on the output (``--tone-match``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stpr.enhance import Enhancer
from stpr.errors import UsageError
from stpr.tone import LEVELS, ToneMatch, check_tone_match, luma_quantiles

from helpers import tiny_model


def scene(seed: int = 0, h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth scene with deep shadows and bright highlights, (H, W, 3) float in [0, 1]."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 1) ** 2


def u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def test_luma_quantiles_match_numpy():
    frame = u8(scene())
    small = cv2.resize(frame, (32, 24), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float64)
    y = small @ np.array([0.299, 0.587, 0.114]) / 255
    q, mean = luma_quantiles(frame)
    assert q.shape == LEVELS.shape and np.all(np.diff(q) >= 0)
    # the histogram gives the inverted CDF to within its bins (1/1023 wide)
    assert np.abs(q - np.quantile(y, LEVELS, method="inverted_cdf")).max() < 1.5e-3
    assert abs(mean - y.mean()) < 1e-5


def test_a_hazy_output_gets_plain_brightenings_blacks_and_keeps_its_highlights():
    truth = scene()
    dark = u8(truth * 0.1)
    hazy = u8(0.25 + 0.75 * truth)  # lifted blacks, flat shadows
    stats = luma_quantiles(dark)
    tm = ToneMatch(smoothing=0.0)
    out = tm(hazy.copy(), stats)
    plain = u8(np.clip(dark / 255 * (hazy.mean() / dark.mean()), 0, 1))
    dark_pct = lambda f: np.percentile(f.reshape(-1, 3) @ np.array([0.299, 0.587, 0.114]), 1)  # noqa: E731
    assert dark_pct(hazy) - dark_pct(plain) > 40
    assert abs(dark_pct(out) - dark_pct(plain)) < 6  # the haze is gone
    top = hazy.reshape(-1, 3).max(0)
    assert np.abs(out.reshape(-1, 3).max(0).astype(int) - top).max() <= 1  # highlights stay
    # one monotone curve for all three channels: the order of pixel values is kept
    order = np.argsort(hazy[..., 1], axis=None, kind="stable")
    assert np.all(np.diff(out[..., 1].ravel()[order].astype(int)) >= 0)
    # strength scales the correction; 0 is the identity
    half = ToneMatch(strength=0.5, smoothing=0.0)(hazy.copy(), stats)
    assert dark_pct(out) < dark_pct(half) < dark_pct(hazy)
    off = ToneMatch(strength=0.0)
    assert not off.active and np.array_equal(off(hazy.copy(), stats), hazy)


def test_the_correction_is_smoothed_over_time_and_carried_by_its_state():
    truth = scene(1)
    frames = [(u8(truth * g * 0.1), u8(0.2 + 0.8 * truth * g)) for g in (1.0, 0.9, 1.1, 1.0, 0.95, 1.05)]
    stats = [luma_quantiles(d) for d, _ in frames]
    whole = ToneMatch()
    ref = [whole(o.copy(), s) for (_, o), s in zip(frames, stats)]
    first = ToneMatch()
    head = [first(o.copy(), s) for (_, o), s in list(zip(frames, stats))[:3]]
    state = first.state()
    assert set(state) == {"tone_correction"}
    second = ToneMatch()
    second.carry = {**state, "prev": np.zeros(1)}  # the file also holds the temporal filter's keys
    second.reset()
    tail = [second(o.copy(), s) for (_, o), s in list(zip(frames, stats))[3:]]
    assert all(np.array_equal(a, b) for a, b in zip(ref, head + tail))
    # smoothing: the correction of frame 2 is not that frame's own curve
    alone = ToneMatch(smoothing=0.0)
    assert not np.array_equal(alone(frames[2][1].copy(), stats[2]), ref[2])


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_strength_out_of_range_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="--tone-match"):
        check_tone_match(bad)
    with pytest.raises(UsageError):
        Enhancer(tiny_model(), tone_match=bad)


def test_enhancer_applies_it_to_each_frame_against_its_own_input():
    """The Enhancer's output with the curve is its output without it mapped through the curve
    fitted against the same input frame (the window's lag does not misalign them)."""
    rng = np.random.default_rng(3)
    clip = [u8(scene(2) * s * 0.15 + rng.normal(0, 0.01, (96, 128, 3))) for s in (1.0, 0.6, 1.2, 0.8, 1.0)]
    model = tiny_model()
    plain = list(Enhancer(model, tile=0, precision="fp32", temporal_filter=0).enhance_frames(list(clip)))
    got = list(Enhancer(model, tile=0, precision="fp32", temporal_filter=0, tone_match=1).enhance_frames(list(clip)))
    tm = ToneMatch()
    want = [tm(o.copy(), luma_quantiles(i)) for o, i in zip(plain, clip)]
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert any(not np.array_equal(a, b) for a, b in zip(got, plain))
