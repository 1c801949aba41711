"""The network's full-resolution last step held back and run fused (stpr.models.tail), and
``Enhancer``'s use of it (``compile``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stpr.enhance import AUTO_COMPILE_MIN_PIXELS, Enhancer, padded_frame, padded_frame_u8
from stpr.models.stpr_arch import window_indices
from stpr.models.tail import Tail, _bilinear_at, compile_usable

from helpers import dark_clip, tiny_model


def _tail(seed: int = 0, local: bool = True, u8: bool = False, h: int = 24, w: int = 40) -> Tail:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w, generator=g)
    if u8:
        base = (base * 255).round().to(torch.uint8)
    return Tail(residual=(torch.randn(1, 48, h // 4, w // 4, generator=g) * 0.2).to(torch.bfloat16),
                base=base, gain=torch.rand(1, 3, 1, 1, generator=g) * 2 + 0.5,
                local=torch.randn(1, 1, h // 4, w // 4, generator=g) * 0.5 if local else None)


@pytest.mark.parametrize("kw", [{}, {"pixel_fusion": True}, {"local_gain": False}])
def test_decode_tail_is_the_clamped_output(kw):
    model = tiny_model(**kw)
    clip = torch.from_numpy(dark_clip(n=3)).permute(0, 3, 1, 2)[None].float() / 255.0
    padded, _ = model.pad(clip)
    with torch.no_grad():
        states = [model.encode_frame(padded[:, i]) for i in window_indices(1, 3, model.cfg.frames)]
        out, _ = model.decode(states)
        tail, _ = model.decode(states, tail=True)
    assert isinstance(tail, Tail) and tail.shape == out.shape
    torch.testing.assert_close(tail.float(), out, rtol=0, atol=0)


@pytest.mark.parametrize("local", [True, False])
def test_uint8_base_reads_as_its_float_frame(local):
    t8 = _tail(local=local, u8=True)
    tf = Tail(t8.residual, t8.base.float().div_(255.0), t8.gain, t8.local)
    torch.testing.assert_close(t8.float(), tf.float(), rtol=0, atol=0)


@pytest.mark.parametrize("step,h,w", [(1, 24, 40), (2, 24, 40), (3, 22, 37), (8, 24, 40), (5, 17, 33)])
def test_sample_is_the_output_at_every_step(step, h, w):
    t = _tail(local=True, u8=True)
    torch.testing.assert_close(t.sample(step, h, w), t.float()[..., :h:step, :w:step], rtol=1e-5, atol=1e-6)


def test_bilinear_taps_match_interpolate():
    x = torch.randn(2, 3, 7, 11)
    ys, xs = torch.arange(0, 28, 3), torch.arange(1, 44, 5)
    full = F.interpolate(x, size=(28, 44), mode="bilinear", align_corners=False)
    torch.testing.assert_close(_bilinear_at(x, ys, xs, 28, 44), full[..., ys, :][..., xs], rtol=1e-5, atol=1e-6)


def test_to_uint8_rounds_half_up_and_clamps():
    t = _tail(u8=True)
    scale = 255.0 * 1.7  # the exposure's factor pushes some pixels past white
    want = (t.float() * scale + 0.5).clamp(0.5, 255.5).to(torch.uint8).permute(0, 2, 3, 1)
    got = t.to_uint8(scale, compile=False)
    assert got.dtype == torch.uint8 and got.is_contiguous() and got.shape == (1, 24, 40, 3)
    assert torch.equal(got, want)
    assert int(got.max()) == 255 and int(got.min()) < 255


@pytest.mark.skipif(not compile_usable(), reason="torch.compile needs a C++ compiler here")
def test_compiled_step_matches_eager():
    for u8, local in ((True, True), (False, False)):
        t = _tail(seed=3, local=local, u8=u8, h=32, w=48)
        eager = t.to_uint8(300.0, compile=False).int()
        fused = t.to_uint8(300.0).int()
        assert int((fused - eager).abs().max()) <= 1
        assert float((fused != eager).float().mean()) < 0.01


def test_padded_uint8_frame_is_the_float_frame():
    frame = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    f = torch.from_numpy(frame)
    for multiple in (1, 8, 16):
        u8 = padded_frame_u8(f, multiple)
        assert u8.dtype == torch.uint8 and u8.shape == padded_frame(f, multiple).shape and u8.is_contiguous()
        torch.testing.assert_close(u8.float() / 255.0, padded_frame(f, multiple), rtol=0, atol=0)


@pytest.mark.parametrize("kw,enh", [({}, {}), ({"pixel_fusion": True}, {}), ({}, {"workers": 2}),
                                    ({}, {"exposure": 0.5}), ({}, {"steady_exposure": False})])
def test_enhancer_output_equal_with_the_step_held_back(kw, enh):
    """Whole frames with ``compile`` (the step held back, a uint8 base without pixel fusion, and
    compiled where usable) give the frames the eager path gives, within one level."""
    model = tiny_model(**kw)
    frames = list(dark_clip(n=5, h=45, w=70))  # padded: the output is cropped back
    ref = np.stack(list(Enhancer(model, tile=0, compile=False, **enh).enhance_frames(frames)))
    e = Enhancer(model, tile=0, compile=True, **enh)
    assert e.compiles_for(45, 70)
    out = np.stack(list(e.enhance_frames(frames)))
    assert out.shape == ref.shape
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_when_the_step_is_compiled(monkeypatch):
    model = tiny_model()
    big = int(AUTO_COMPILE_MIN_PIXELS ** 0.5) + 1
    assert not Enhancer(model, compile=False).compiles_for(big, big)
    assert not Enhancer(model).compiles_for(64, 64)  # small frames: building it would not pay
    assert Enhancer(model, compile=True).compiles_for(64, 64)
    assert not Enhancer(model, compile=True, tile=128).compiles_for(512, 512)  # tiles: blended eagerly
    assert not Enhancer(model, compile=True, batch=2).compiles_for(64, 64)
    assert Enhancer(model, memory_mb=100_000).compiles_for(big, big) == compile_usable()
    monkeypatch.setenv("STPR_COMPILE", "0")
    assert not compile_usable()
    assert not Enhancer(model, memory_mb=100_000).compiles_for(big, big)
