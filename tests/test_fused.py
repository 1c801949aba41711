"""The network's full-resolution first and last steps as fused passes (stpr.models.fused), and
``Enhancer``'s use of them (``compile``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stpr.enhance import AUTO_COMPILE_MIN_PIXELS, Enhancer, padded_frame, padded_frame_u8
from stpr.models.common import frame_stats, normalize_brightness
from stpr.models.fused import Tail, _bilinear_at, compile_usable, head, head_supported, head_usable
from stpr.models.propagation_arch import log_brightness
from stpr.models.stpr_arch import window_indices

from helpers import dark_clip, tiny_model

NO_FUSION = {"pixel_fusion": False}  # the decoder reads only the centre frame: its state keeps uint8
# the fast model's kind: what the fused first step stands in for
STRIDED = {"encoder": "strided", "flow_stride": 8, "pixel_fusion": False}


def _tail(seed: int = 0, local: bool = True, u8: bool = False, h: int = 24, w: int = 40) -> Tail:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w, generator=g)
    if u8:
        base = (base * 255).round().to(torch.uint8)
    return Tail(residual=(torch.randn(1, 48, h // 4, w // 4, generator=g) * 0.2).to(torch.bfloat16),
                base=base, gain=torch.rand(1, 3, 1, 1, generator=g) * 2 + 0.5,
                local=torch.randn(1, 1, h // 4, w // 4, generator=g) * 0.5 if local else None)


@pytest.mark.parametrize("kw", [{}, NO_FUSION, {"local_gain": False}])
def test_decode_tail_is_the_clamped_output(kw):
    model = tiny_model(**kw)
    clip = torch.from_numpy(dark_clip(n=3)).permute(0, 3, 1, 2)[None].float() / 255.0
    padded, _ = model.pad(clip)
    with torch.no_grad():
        states = [model.encode_frame(padded[:, i]) for i in window_indices(1, 3, model.cfg.frames)]
        out, _ = model.decode(states)
        tail, _ = model.decode(states, tail=True)
    assert isinstance(tail, Tail) and tail.base.shape == out.shape
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




def _padded_u8(h: int, w: int, multiple: int = 16) -> torch.Tensor:
    return padded_frame_u8(torch.from_numpy(dark_clip(n=1, h=h, w=w)[0]), multiple)


@pytest.mark.parametrize("compile", [False, True])
def test_head_gives_the_encoders_inputs(compile):
    if compile and not compile_usable():
        pytest.skip("torch.compile needs a C++ compiler here")
    h, w = 72, 104  # padded to 80 x 112
    x8 = _padded_u8(h, w)
    x = x8.float() / 255.0
    stats, hd = head(x8, (h, w), compile=compile)
    want = frame_stats(x, size=(h, w))
    torch.testing.assert_close(stats, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hd.x_norm, normalize_brightness(x, want), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hd.norm_small, F.avg_pool2d(normalize_brightness(x, want), 4), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hd.logb, log_brightness(x), rtol=1e-5, atol=1e-5)
    _, bf = head(x8, (h, w), torch.bfloat16, channels_last=True, compile=compile)
    assert bf.x_norm.dtype == torch.bfloat16 and bf.x_norm.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(bf.x_norm.float(), hd.x_norm, rtol=0.01, atol=0.004)


def test_head_is_for_frames_and_models_it_matches():
    assert head_usable(1080, 1920) and head_usable(360, 640)
    assert not head_usable(100, 150) and not head_usable(56, 64)  # not multiples of 8; under 64
    assert head_supported(tiny_model(**STRIDED).cfg)
    assert not head_supported(tiny_model(**NO_FUSION).cfg)  # the unshuffle encoder reads the frame itself
    assert not head_supported(tiny_model(**{**STRIDED, "pixel_fusion": True}).cfg)  # warps the frames
    assert not head_supported(tiny_model(**{**STRIDED, "flow_stride": 4}).cfg)  # pyramid from the full frame


def test_encode_frame_from_a_head():
    model = tiny_model(**STRIDED)
    x8 = _padded_u8(64, 96)
    x = x8.float() / 255.0
    with torch.no_grad():
        stats, hd = head(x8, (64, 96), compile=False)
        ref = model.encode_frame(x, frame_stats(x, size=(64, 96)))
        got = model.encode_frame(x8, stats, head=hd)
        torch.testing.assert_close(got.feats, ref.feats, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got.logb, ref.logb, rtol=1e-5, atol=1e-5)
        assert got.x is x8
        with pytest.raises(ValueError, match="no fused head"):
            tiny_model(**NO_FUSION).encode_frame(x8, stats, head=hd)


@pytest.mark.parametrize("kw,enh,size", [({}, {}, (45, 70)), (NO_FUSION, {}, (45, 70)),
                                         (NO_FUSION, {"workers": 2}, (45, 70)), ({}, {"workers": 2}, (45, 70)),
                                         (NO_FUSION, {"exposure": 0.5}, (45, 70)),
                                         (NO_FUSION, {"steady_exposure": False}, (45, 70)),
                                         (STRIDED, {}, (64, 96)), (STRIDED, {"precision": "bf16"}, (64, 96)),
                                         (STRIDED, {"workers": 2}, (64, 96))])
def test_enhancer_output_equal_with_the_steps_fused(kw, enh, size):
    """Whole frames with ``compile`` (the last step held back, a uint8 base without pixel fusion,
    the first step fused for a strided encoder, compiled where usable) give the frames the eager
    path gives, within one level."""
    model = tiny_model(**kw)
    frames = list(dark_clip(n=5, h=size[0], w=size[1]))  # 45 x 70 is padded: the output is cropped back
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
    assert Enhancer(model, memory_mb=100_000, workers=1).compiles_for(big, big) == compile_usable()
    assert not Enhancer(model, memory_mb=100_000, workers=2).compiles_for(big, big)  # several at once: slower
    monkeypatch.setenv("STPR_COMPILE", "1")  # on for every size (stpr bench, stpr batch)
    assert Enhancer(model).compiles_for(64, 64) and not Enhancer(model, compile=False).compiles_for(64, 64)
    monkeypatch.setenv("STPR_COMPILE", "0")
    assert not compile_usable()
    assert not Enhancer(model, memory_mb=100_000, workers=1).compiles_for(big, big)
