"""--exposure / --brightness: the user's exposure choice on top of the model's guess."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stpr.cli import main
from stpr.enhance import Enhancer
from stpr.errors import UsageError
from stpr.exposure import ExposureControl
from stpr.metrics.video import frame_brightness
from stpr.models.common import srgb_to_linear

from helpers import tiny


def _img(level=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, 32, 40, generator=g) * level + 0.05).clamp(0, 1)


def test_ev_scales_linear_light():
    img = _img()
    up = ExposureControl(ev=1.0)(img)
    ratio = srgb_to_linear(up).sum() / srgb_to_linear(img).sum()
    assert ratio == pytest.approx(2.0, rel=1e-3)  # nothing clips at this level
    assert torch.equal(ExposureControl()(img), img)


def test_target_brightness_is_reached_and_smoothed():
    ctl = ExposureControl(target=120.0, smoothing=0.0)
    out = ctl(_img())
    assert float((out * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0).mean()) * 255 == pytest.approx(120, abs=3)
    # without steady exposure the gain is smoothed: a sudden bright frame moves it only partly, so
    # the brighter frame still shows, not flattened at once
    ctl = ExposureControl(target=120.0, smoothing=0.9, steady=False)
    steady = [ctl(_img(0.3, s)) for s in range(5)]
    jump = ctl(_img(0.6, 9))
    b = [float(x.mean()) for x in steady + [jump]]
    assert b[-1] > b[-2] * 1.2


def test_target_with_steady_exposure_holds_every_frame():
    """The default (steady): a guess that jumps from frame to frame is held at the target on every
    frame, where a smoothed gain lets most of each jump through (real-footage §47)."""
    guesses = [_img(0.3, 0) * k for k in (1.0, 1.4, 1.0, 1.4, 1.0, 1.4)]
    held = [_luma(ExposureControl(target=110.0)(g.clone())) for g in guesses]
    ctl = ExposureControl(target=110.0)
    held_video = [_luma(ctl(g.clone())) for g in guesses]
    assert held_video == pytest.approx(held, abs=1e-4)  # no state: each frame on its own
    assert max(abs(b - 110.0) for b in held_video) < 3.0  # the gain is solved on a subsample
    assert ctl.log_gain is None  # nothing for a resumed run to carry
    smoothed = ExposureControl(target=110.0, steady=False)
    jumps = [_luma(smoothed(g.clone())) for g in guesses]
    assert np.abs(np.diff(jumps)).mean() > 10 * np.abs(np.diff(held_video)).mean()


@pytest.mark.parametrize("kw", [dict(ev=9), dict(ev=float("nan")), dict(target=0), dict(target=300)])
def test_bad_values_are_usage_errors(kw):
    with pytest.raises(UsageError):
        ExposureControl(**kw)


def test_enhancer_applies_it():
    model = tiny()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 40, (32, 40, 3), dtype=np.uint8) for _ in range(4)]
    plain = list(Enhancer(model).enhance_frames(frames))
    held = list(Enhancer(model, brightness=90.0).enhance_frames(frames))
    assert np.abs(frame_brightness(held) - 90.0).max() < 3
    darker = list(Enhancer(model, exposure=-1.0).enhance_frames(frames))
    assert frame_brightness(darker).mean() < frame_brightness(plain).mean()


def test_cli_rejects_out_of_range_before_loading(tmp_path):
    src = tmp_path / "x.png"
    src.write_bytes(b"not read: the option check comes first")
    assert main(["enhance", str(src), "-o", str(tmp_path / "y.png"), "--brightness", "400"]) == 2
    assert main(["enhance", str(src), "-o", str(tmp_path / "y.png"), "--exposure", "12"]) == 2


def test_exposure_and_brightness_exclude_each_other():
    with pytest.raises(UsageError, match="exclude"):
        ExposureControl(ev=1.0, target=100.0)


def test_a_resumed_run_carries_the_smoothed_gain():
    ctl = ExposureControl(target=120.0, steady=False)
    for s in range(3):
        ctl(_img(0.3, s))
    kept = ctl.log_gain
    ctl.carry = kept
    ctl.reset()
    assert ctl.log_gain == kept
    ctl.reset()  # a fresh video after that starts from nothing
    assert ctl.log_gain is None


def test_resume_refuses_segments_made_with_other_exposure_or_frame_rate():
    from stpr.resume import FORMAT, _mismatch

    def job(**opts):
        return {"format": FORMAT, "input": {"path": "x"}, "model": "m", "options": {"crf": 18, **opts}}

    assert _mismatch(job(exposure=1.0), job(exposure=0.0)) is not None
    assert _mismatch(job(brightness=90.0), job(brightness=None)) is not None
    # a key only the earlier run recorded counts too (e.g. --fps given then, not now)
    assert "fps" in _mismatch(job(fps="30"), job())
    assert _mismatch(job(exposure=0.0), job(exposure=0.0)) is None


def _luma(img: torch.Tensor) -> float:
    return float((img.clamp(0, 1) * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0).mean()) * 255


def test_steady_exposure_smooths_a_pumping_guess():
    """The network's brightness jumps from frame to frame: the output's changes far less, and the
    first frame is left as it was."""
    ctl = ExposureControl()
    assert ctl.steady and ctl.active
    guesses = [_img(0.3, 0), _img(0.3, 0) * 1.4, _img(0.3, 0), _img(0.3, 0) * 1.4, _img(0.3, 0)]
    before = [_luma(g) for g in guesses]
    after = [_luma(ctl(g.clone())) for g in guesses]
    assert after[0] == pytest.approx(before[0], abs=1e-3)
    assert np.abs(np.diff(after)).mean() < 0.25 * np.abs(np.diff(before)).mean()


def test_steady_exposure_follows_a_lasting_change():
    """A light comes on and stays on: the output settles at the new brightness (0.9 per frame: 99 %
    of the way after 40 frames)."""
    ctl = ExposureControl()
    outs = [_luma(ctl(_img(0.2, 0).clone() * k)) for k in [1.0] * 5 + [2.0] * 40]
    assert outs[5] < 1.3 * outs[0]  # not at once
    assert outs[-1] == pytest.approx(_luma(_img(0.2, 0) * 2.0), rel=0.03)


def test_steady_exposure_leaves_black_frames_and_can_be_turned_off():
    ctl = ExposureControl()
    black = torch.zeros(3, 8, 8)
    assert torch.equal(ctl(black.clone()), black)
    off = ExposureControl(steady=False)
    img = _img()
    assert not off.active and torch.equal(off(img), img)
    # --brightness replaces it; --exposure adds to it
    assert ExposureControl(target=100.0).active and ExposureControl(ev=1.0).steady


def test_enhancer_steady_exposure_only_rescales_frames():
    model = tiny()
    rng = np.random.default_rng(1)
    frames = [(rng.integers(0, 30, (32, 40, 3)) * (1 + (i % 2))).astype(np.uint8) for i in range(5)]
    free = list(Enhancer(model, precision="fp32", steady_exposure=False).enhance_frames(frames))
    steady = list(Enhancer(model, precision="fp32").enhance_frames(frames))
    assert np.array_equal(free[0], steady[0])  # nothing to smooth yet
    for a, b in zip(free, steady):  # one factor per frame (up to rounding and clipping)
        sel = (a > 20) & (a < 200) & (b < 250)
        r = b[sel].astype(float) / a[sel]
        assert r.std() < 0.05 * r.mean() + 0.02
    fb, sb = frame_brightness(free), frame_brightness(steady)
    assert np.abs(np.diff(sb)).mean() < np.abs(np.diff(fb)).mean()


def test_plain_gain_is_the_factor_the_steady_exposure_applies():
    frames = [_img(level) for level in (0.3, 0.6, 0.2)]
    called, folded = ExposureControl(), ExposureControl()
    for img in frames:
        gain = folded.plain_gain(img)
        torch.testing.assert_close(img * gain, called(img.clone()))
        assert folded.log_gain == called.log_gain  # the smoothing moved on alike
    assert ExposureControl(steady=False).plain_gain(frames[0]) == 1.0
    assert ExposureControl(ev=1.0).plain_gain(frames[0]) is None
    assert ExposureControl(target=120).plain_gain(frames[0]) is None
