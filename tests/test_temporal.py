"""The recursive temporal filter (stpr.temporal) and its place in the Enhancer."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_runs_in_child, tiny_model

from stpr.enhance import Enhancer
from stpr.errors import UsageError
from stpr.temporal import TemporalFilter


def textured(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random texture (float 0-255) that optical flow can follow."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, size=(h // 8, w // 8, 3))
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def noisy(base: np.ndarray, n: int, sigma: float = 8.0, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(base + rng.normal(0, sigma, base.shape)).clip(0, 255).round().astype(np.uint8) for _ in range(n)]


def test_off_is_the_identity_and_the_first_frame_passes_unchanged():
    frames = noisy(textured(), 3)
    off = TemporalFilter(strength=0.0)
    assert all(off(f) is f for f in frames)
    on = TemporalFilter()
    assert np.array_equal(on(frames[0]), frames[0])


def test_a_still_noisy_scene_is_steadied_without_shifting_its_mean():
    """Grain on a still scene: its coarse part (what survives a blur) is averaged over many frames,
    with ``detail`` 0 the fine part is left to the current frame, and the brightness stays."""
    import cv2

    base = textured()
    frames = noisy(base, 12)
    filt = TemporalFilter(detail=0.0)
    out = [filt(f) for f in frames]
    blur = lambda x: cv2.GaussianBlur(np.asarray(x, np.float32), (0, 0), 2.0)  # noqa: E731
    err = lambda seq, f: np.mean([np.abs(f(x) - f(base)).mean() for x in seq])  # noqa: E731
    assert err(out[6:], blur) < 0.7 * err(frames[6:], blur)
    assert err(out[6:], lambda x: np.asarray(x, np.float32)) < err(frames[6:], lambda x: np.asarray(x, np.float32))
    assert abs(np.mean(out[6:]) - np.mean(frames[6:])) < 1.0
    # frame-to-frame change of the coarse picture: what the low-pass flicker ratio measures
    change = lambda seq: np.mean(np.abs(np.diff(np.stack([blur(x) for x in seq]), axis=0)))  # noqa: E731
    assert change(out[6:]) < 0.6 * change(frames[6:])
    # with ``detail`` (0.3 by default) the fine grain is averaged too
    fine = TemporalFilter()
    assert fine.detail == 0.3
    out_fine = [fine(f) for f in frames]
    assert np.mean(np.abs(np.diff(np.stack(out_fine[6:]).astype(float), axis=0))) < \
        0.9 * np.mean(np.abs(np.diff(np.stack(frames[6:]).astype(float), axis=0)))


@pytest.mark.parametrize("preset", ["fast", "medium"])
def test_moving_content_is_followed_not_smeared(preset):
    """A texture panning 3 px a frame: the filter follows it along the flow, so the output stays
    close to the current frame's truth (no ghost of where it was), with either flow preset."""
    big = textured(96, 160, seed=3)
    truths = [big[12:84, 3 * k:3 * k + 96] for k in range(8)]
    frames = [t.round().astype(np.uint8) for t in truths]
    filt = TemporalFilter(flow_preset=preset)
    out = [filt(f) for f in frames]
    inner = (slice(8, -8), slice(8, -8))  # the border that enters the frame has no past to blend with
    for o, t in zip(out[1:], truths[1:]):
        assert np.abs(o.astype(float) - t)[inner].mean() < 2.0


def test_a_cut_passes_the_new_shot_through():
    a, b = textured(seed=4), textured(seed=5)
    filt = TemporalFilter()
    filt(a.round().astype(np.uint8))
    new = b.round().astype(np.uint8)
    out = filt(new)
    assert np.array_equal(out, new)


def test_state_carries_a_stream_across_a_resume():
    frames = noisy(textured(seed=6), 8, seed=7)
    whole = TemporalFilter()
    ref = [whole(f) for f in frames]
    first = TemporalFilter()
    part = [first(f) for f in frames[:4]]
    second = TemporalFilter()
    second.carry = first.state()
    second.reset()
    part += [second(f) for f in frames[4:]]
    assert all(np.array_equal(a, b) for a, b in zip(ref, part))
    assert TemporalFilter().state() is None


@pytest.mark.parametrize("kw, error", [({"strength": 1.0}, UsageError), ({"strength": -0.1}, UsageError),
                                       ({"detail": 1.5}, ValueError), ({"tolerance": 0.0}, ValueError),
                                       ({"flow_preset": "slow"}, ValueError)])
def test_bad_settings_are_refused(kw, error):
    with pytest.raises(error):
        TemporalFilter(**kw)


def test_enhancer_filters_by_default_and_zero_turns_it_off():
    model = tiny_model()
    clip = noisy(textured(48, 64, seed=8) * 0.15, 5, sigma=3.0, seed=9)
    on = list(Enhancer(model, tile=0, precision="fp32").enhance_frames(clip))
    off = list(Enhancer(model, tile=0, precision="fp32", temporal_filter=0).enhance_frames(clip))
    assert np.array_equal(on[0], off[0])  # nothing to blend with yet
    assert any(not np.array_equal(a, b) for a, b in zip(on[1:], off[1:]))
    with pytest.raises(UsageError, match="temporal-filter"):
        Enhancer(model, temporal_filter=1.0)


def test_the_fast_model_keeps_the_cheaper_flow():
    """The shipped fast model's filter runs §47's flow (DIS fast at 320, tolerance 0.08), the rest
    §49's default (medium at 480, 0.12); either can be asked for, anything else is refused."""
    quality, fast = Enhancer.from_pretrained(None).temporal, Enhancer.from_pretrained("fast").temporal
    assert (quality.flow_preset, quality.flow_side, quality.tolerance) == ("medium", 480, 0.12)
    assert (fast.flow_preset, fast.flow_side, fast.tolerance) == ("fast", 320, 0.08)
    assert Enhancer.from_pretrained("fast", temporal_flow="medium").temporal.flow_preset == "medium"
    assert Enhancer(tiny_model(), temporal_flow="fast").temporal.flow_side == 320
    with pytest.raises(UsageError, match="temporal filter flow"):
        Enhancer(tiny_model(), temporal_flow="slow")


def test_a_strip_wider_than_ten_to_one_is_filtered():
    """With the fast model's flow the filter's work size of a 1280x96 video is 320x24: OpenCV 5.1's
    fast DIS preset segfaulted on it (`stpr enhance` died on such a video); the default flow works
    at 480x36. Run in a child process so a crash fails this test only."""
    code = ("import numpy as np\n"
            "from stpr.temporal import FLOW_SETTINGS, TemporalFilter\n"
            "rng = np.random.default_rng(0)\n"
            "for flow in FLOW_SETTINGS.values():\n"
            "    f = TemporalFilter(strength=0.5, **flow)\n"
            "    outs = [f(rng.integers(0, 256, (96, 1280, 3), dtype=np.uint8)) for _ in range(3)]\n"
            "    assert all(o.shape == (96, 1280, 3) and o.dtype == np.uint8 for o in outs)\n")
    assert_runs_in_child(code)
