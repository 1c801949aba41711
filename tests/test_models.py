"""STPR network: shapes, flow helpers, window reflection, training signal, streaming and budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from stpr.models.common import cat_channels, frame_stats
from stpr.models.prrd_arch import PRRDConfig, PyramidRecursiveRDN
from stpr.models.stpr_arch import STPR, STPRConfig, window_indices
from stpr.models.warp import flow_validity_mask, flow_warp, occlusion_mask, resize_flow

from helpers import TINY, assert_runs_in_child, tiny, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def wake(model: STPR, std: float = 0.05, seed: int = 0) -> STPR:
    """Give the zero-initialised output layers (flow heads, residual, local/global gain) random
    weights, so that flow and propagated features actually change the enhanced frame."""
    g = torch.Generator().manual_seed(seed)
    rec = model.reconstruction
    # in the order the draws were always made, the local gain skipped where the model has none
    layers = [h[-1] for h in model.flow_net.heads]
    layers += [h for h in (rec.residual, rec.local_gain, rec.global_gain[-1]) if h is not None]
    if rec.blend is not None:
        layers.append(rec.blend[-1])
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * std)
    return model


def textured(b: int, t: int, h: int, w: int, seed: int = 0, scale: float = 0.3) -> torch.Tensor:
    """Dark, smooth-ish random frames (B, T, 3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 1, 3, h, w, generator=g)
    frames = base + 0.1 * torch.rand(b, t, 3, h, w, generator=g)
    return (frames * scale).clamp(0, 1)


# ------------------------------------------------------------------------------------- shapes


# the fast model's layout: strided encoder, flow pyramid from 1/8 resolution
FAST = {"encoder": "strided", "flow_stride": 8}


@pytest.mark.parametrize("frames", [1, 3, 5])
@pytest.mark.parametrize("hw", [(17, 9), (33, 50), (1, 1)])
@pytest.mark.parametrize("layout", [{}, FAST], ids=["default", "fast"])
def test_output_shape_matches_input(frames, hw, layout):
    model = tiny(frames=frames, **layout).eval()
    x = textured(2, frames, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, *hw)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("mode", ["learned", "zero", "dis"])
@pytest.mark.parametrize("frames", [1, 3])
def test_flow_modes_run_and_eval_output_in_unit_range(mode, frames):
    model = tiny(frames=frames, flow_mode=mode).eval()
    # 48x52 pads to 64x64 -> the 1/4-resolution frame DIS sees is 16x16 (DIS needs >= 12).
    x = textured(1, frames, 48, 52)
    # extreme inputs: a black corner and a saturated one push the gains to their limits
    x[..., :8, :8] = 0.0
    x[..., -8:, -8:] = 1.0
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 48, 52)
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0
    # and the net actually brightens a dark frame (untrained = plainly brightened input)
    assert y.mean() > x[:, frames // 2].mean()


@pytest.mark.parametrize("hw", [(17, 9), (32, 32)])
def test_dis_flow_on_small_frames(hw):
    model = tiny(frames=3, flow_mode="dis").eval()
    with torch.no_grad():
        y = model(textured(1, 3, *hw))
    assert y.shape == (1, 3, *hw)


@pytest.mark.parametrize("preset", ["ULTRAFAST", "FAST", "MEDIUM"])
def test_dis_flow_on_short_wide_images(preset):
    """OpenCV 5.1's fast DIS presets segfault on images under 32 rows and >= 80 columns (the
    temporal filter's work size of a 10:1 strip, a tiny clip): dis_flow must not hand them one.
    Run in a child process, so that a crash fails this test rather than the whole run."""
    code = ("import sys, cv2, numpy as np\n"
            "from stpr.models.flow_arch import dis_flow\n"
            "rng = np.random.default_rng(0)\n"
            "for h, w in [(28, 80), (16, 100), (31, 1024), (8, 300)]:\n"
            "    a, b = (rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(2))\n"
            f"    f = dis_flow(a, b, cv2.DISOPTICAL_FLOW_PRESET_{preset})\n"
            "    assert f.shape == (h, w, 2) and f.dtype == np.float32 and np.isfinite(f).all(), (h, w)\n")
    assert_runs_in_child(code)


@pytest.mark.parametrize("layout", [{}, FAST], ids=["default", "fast"])
def test_flow_features_are_the_pyramid_encode_frame_makes(layout):
    """The flow-only training stage (``STPR.flow_features``) sees the same pyramid as inference."""
    model = tiny(**layout).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 0.1
    stats = frame_stats(x)
    with torch.no_grad():
        want = model.encode_frame(x, stats).flow_pyr
        got = model.flow_features(x, stats)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_train_mode_output_is_not_clamped():
    model = tiny(frames=1).train()
    x = torch.full((1, 1, 3, 32, 32), 0.002)
    x[..., :4, :4] = 0.9  # a bright spot in a black frame: the base gain pushes it far above 1
    y = model(x)
    assert y.max() > 1.0


def test_forward_rejects_bad_shapes():
    model = tiny(frames=3)
    with pytest.raises(ValueError):
        model(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError):
        model(torch.rand(1, 3, 4, 16, 16))


# ------------------------------------------------------------------------------------- warp helpers


def test_flow_warp_identity():
    x = torch.rand(2, 3, 13, 21)
    assert torch.allclose(flow_warp(x, torch.zeros(2, 2, 13, 21)), x, atol=1e-5)


@pytest.mark.parametrize("dx,dy", [(3, -2), (-1, 4), (0, 2), (5, 0)])
def test_flow_warp_integer_shift(dx, dy):
    h, w = 20, 28
    ref = torch.rand(1, 3, h, w)
    # nbr[y, x] = ref[y - dy, x - dx]: content at p in ref sits at p + (dx, dy) in nbr.
    nbr = torch.roll(ref, shifts=(dy, dx), dims=(2, 3))
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    back = flow_warp(nbr, flow)
    m = 6  # stay away from the wrapped / clamped borders
    assert torch.allclose(back[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-5)
    # swapped x/y or a wrong sign would not reproduce the reference
    if dx != dy:
        swapped = flow.flip(1)
        assert not torch.allclose(flow_warp(nbr, swapped)[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-3)
    assert not torch.allclose(flow_warp(nbr, -flow)[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-3)


def test_flow_warp_half_pixel_is_bilinear():
    x = torch.rand(1, 1, 6, 9)
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0] = 0.5
    out = flow_warp(x, flow)
    assert torch.allclose(out[..., :-1], 0.5 * (x[..., :-1] + x[..., 1:]), atol=1e-5)


def test_flow_validity_mask_marks_out_of_bounds():
    h, w = 7, 10
    flow = torch.zeros(1, 2, h, w)
    assert flow_validity_mask(flow).eq(1).all()
    flow[:, 0] = 2.0  # right shift: the last two columns land outside
    m = flow_validity_mask(flow)
    assert m.shape == (1, 1, h, w)
    assert m[..., : w - 2].eq(1).all() and m[..., w - 2:].eq(0).all()
    flow = torch.zeros(1, 2, h, w)
    flow[:, 1] = -1.5  # up: the first two rows land above the image
    m = flow_validity_mask(flow)
    assert m[..., :2, :].eq(0).all() and m[..., 2:, :].eq(1).all()


def test_occlusion_mask():
    z = torch.zeros(2, 2, 9, 11)
    occ = occlusion_mask(z, z)
    assert occ.shape == (2, 1, 9, 11) and occ.eq(1).all()
    # consistent translation: forward +2 px in x, backward -2 px -> visible except where it leaves
    fw = torch.zeros(1, 2, 9, 11)
    fw[:, 0] = 2.0
    occ = occlusion_mask(fw, -fw)
    assert occ[..., :9].eq(1).all() and occ[..., 9:].eq(0).all()
    # inconsistent: backward equal to forward -> large fw + bw -> occluded everywhere
    assert occlusion_mask(fw * 3, fw * 3).eq(0).all()


def test_resize_flow_scales_vectors():
    flow = torch.zeros(1, 2, 8, 12)
    flow[:, 0], flow[:, 1] = 1.5, -2.0
    up = resize_flow(flow, (16, 48))  # y x2, x x4
    assert up.shape == (1, 2, 16, 48)
    assert torch.allclose(up[:, 0], torch.full_like(up[:, 0], 6.0))
    assert torch.allclose(up[:, 1], torch.full_like(up[:, 1], -4.0))
    assert resize_flow(flow, (8, 12)) is flow


# ------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize("center,length,frames,expected", [
    (0, 1, 1, [0]),
    (0, 1, 3, [0, 0, 0]),
    (0, 1, 5, [0, 0, 0, 0, 0]),
    (0, 2, 3, [1, 0, 1]),
    (1, 2, 3, [0, 1, 0]),
    (0, 2, 5, [0, 1, 0, 1, 0]),
    (1, 2, 5, [1, 0, 1, 0, 1]),
    (0, 5, 3, [1, 0, 1]),
    (4, 5, 3, [3, 4, 3]),
    (2, 5, 3, [1, 2, 3]),
    (0, 5, 5, [2, 1, 0, 1, 2]),
    (1, 5, 5, [1, 0, 1, 2, 3]),
    (4, 5, 5, [2, 3, 4, 3, 2]),
    (3, 5, 5, [1, 2, 3, 4, 3]),
    (2, 5, 5, [0, 1, 2, 3, 4]),
    (0, 5, 1, [0]),
])
def test_window_indices(center, length, frames, expected):
    assert window_indices(center, length, frames) == expected


# ------------------------------------------------------------------------------------- learning


def test_every_subnet_gets_gradients_and_a_step_changes_output():
    model = tiny(frames=3, flow_mode="learned").train()
    subnets = ("encoder", "flow_net", "propagation", "pyramid", "reconstruction")
    # every parameter of the model belongs to one of the five subnets
    covered = sum(sum(p.numel() for p in getattr(model, n).parameters()) for n in subnets)
    assert covered == sum(p.numel() for p in model.parameters())
    x = textured(2, 3, 32, 32, seed=1)
    target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))

    def backward():
        model.zero_grad(set_to_none=True)
        (model(x) - target).abs().mean().backward()

    backward()
    for name in subnets:
        params = list(getattr(model, name).named_parameters())
        assert params, name
        missing = [n for n, p in params if p.grad is None]
        assert not missing, f"{name}: no gradient for {missing}"

    model.eval()
    with torch.no_grad():
        before = model(x)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt.step()
    model.eval()
    with torch.no_grad():
        after = model(x)
    assert (after - before).abs().max() > 1e-4

    # The output layers start at zero, so at initialisation only they receive a non-zero gradient;
    # after one step the learning signal must reach every subnet.
    model.train()
    backward()
    for name in subnets:
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, f"{name}: all gradients are zero after one step"


def test_untrained_model_is_plain_brightening_and_flow_matters_once_awake():
    # Without pixel fusion (whose untrained blend already averages the window; see the pixel
    # fusion tests) the output layers start at zero and the model only brightens the centre.
    model = tiny(frames=3, flow_mode="learned", pixel_fusion=False).eval()
    x = textured(1, 3, 32, 32, seed=3)
    x[:, 0] = x[:, 0].roll(3, dims=-1)
    with torch.no_grad():
        plain = model(x)
        # zero-initialised output layers: neighbours and flow have no influence yet
        x_other = x.clone()
        x_other[:, 0] = torch.rand(1, 3, 32, 32) * 0.3
        assert torch.equal(model(x_other), plain)
        wake(model)
        ref = model(x)
        assert not torch.allclose(model(x_other), ref, atol=1e-5)  # neighbours now matter
        for head in model.flow_net.heads:
            head[-1].bias.fill_(1.5)  # a constant non-zero flow at every level
        moved = model(x)
    assert (moved - ref).abs().max() > 1e-5


# ------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("frames,mode,pixel,layout", [(3, "learned", False, {}), (5, "learned", False, {}),
                                                     (3, "zero", False, {}), (3, "learned", True, {}),
                                                     (5, "learned", False, FAST)])
def test_forward_clip_matches_reflected_windows(frames, mode, pixel, layout):
    # non-trivial flow heads and reconstruction, so that a wrong neighbour order would show
    model = wake(tiny(frames=frames, flow_mode=mode, seed=4, pixel_fusion=pixel, **layout)).eval()
    clip = textured(1, 5, 24, 40, seed=5)
    clip = clip * torch.linspace(0.6, 1.4, 5).view(1, 5, 1, 1, 1)  # frames differ in brightness
    with torch.no_grad():
        outs, aux = model.forward_clip(clip, [0, 1, 2, 3, 4])
        assert len(outs) == 5 and len(aux) == 5
        for c, out in enumerate(outs):
            idx = window_indices(c, 5, frames)
            ref = model(clip[:, idx])
            assert out.shape == (1, 3, 24, 40)
            assert torch.allclose(out, ref, atol=1e-5), (c, (out - ref).abs().max())
        # different centres give different outputs (the test above is not vacuous)
        assert (outs[0] - outs[4]).abs().max() > 1e-3


@pytest.mark.parametrize("layout", [{}, FAST], ids=["default", "fast"])
def test_neighbours_in_one_batch_equal_one_at_a_time(layout):
    """decode runs the flow net and the propagation on all neighbours as one batch; each neighbour's
    flow, fusion weight and output equal what it gets on its own (and the order is kept)."""
    model = wake(tiny(frames=5, seed=6, **layout)).eval()
    clip = textured(2, 5, 32, 48, seed=7) * torch.linspace(0.7, 1.3, 5).view(1, 5, 1, 1, 1)
    clip = torch.stack([torch.roll(clip[:, t], shifts=(2 * t, 3 * t), dims=(-2, -1)) for t in range(5)], dim=1)
    padded, _ = model.pad(clip)
    with torch.no_grad():
        states = [model.encode_frame(padded[:, i], frame_stats(clip[:, i])) for i in range(5)]
        centre, nbrs = states[2], states[:2] + states[3:]
        batched = model.estimate_flows(centre, nbrs)
        single = [model.estimate_flow(centre, n) for n in nbrs]
        for b, s in zip(batched, single):
            assert torch.allclose(b, s, atol=1e-5)
        assert (batched[0] - batched[3]).abs().max() > 1e-3  # the neighbours' flows differ
        _, aux = model.decode(states, flows=single)
        w = aux["weights"]
        # fusion weight of each neighbour with only that neighbour in the window, against the centre's
        for k, n in enumerate(nbrs):
            _, one = model.decode([n, centre, n], flows=[single[k], single[k]])
            ratio_batched = w[:, 1 + k] / w[:, 0]
            ratio_single = one["weights"][:, 1] / one["weights"][:, 0]
            assert torch.allclose(ratio_batched, ratio_single, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------- pixel fusion


def _noise_std(model: STPR, clip: torch.Tensor) -> float:
    with torch.no_grad():
        out = model(clip)
    return float(out[..., 4:-4, 4:-4].std())  # away from the replicate-padded border


def test_pixel_fusion_averages_noise_of_a_static_scene():
    """A flat grey scene with independent noise in every frame: blending the aligned neighbours
    must cut the output noise well below that of the same weights run per frame (T = 1), while
    the feature-only model (no pixel fusion) passes the centre frame's noise straight through."""
    g = torch.Generator().manual_seed(0)
    clip = (0.08 + 0.02 * torch.randn(1, 3, 3, 48, 48, generator=g)).clamp(0, 1)
    fused = tiny(frames=3, flow_mode="zero", pixel_fusion=True, seed=1).eval()
    single = STPR(STPRConfig(**{**fused.cfg.to_dict(), "frames": 1})).eval()
    single.load_state_dict(fused.state_dict())
    assert _noise_std(fused, clip) < 0.75 * _noise_std(single, clip)  # ~1/sqrt(3) for a plain mean
    features_only = tiny(frames=3, flow_mode="zero", pixel_fusion=False, seed=1).eval()
    assert _noise_std(features_only, clip) > 0.95 * _noise_std(single, clip)


def test_pixel_fusion_keeps_the_centre_where_a_neighbour_is_misaligned():
    """Blend weights follow alignment: a neighbour pushed out of the frame by its flow (invalid
    samples) must not leak into the output."""
    model = wake(tiny(frames=3, flow_mode="learned", pixel_fusion=True, seed=2)).eval()
    x = textured(1, 3, 32, 32, seed=6)
    with torch.no_grad():
        states = [model.encode_frame(x[:, t]) for t in range(3)]
        far = torch.full((1, 2, 8, 8), 100.0)  # every sample lands outside the neighbour
        out_far, _ = model.decode(states, [far, far])
        other = [states[0], states[1], model.encode_frame(torch.rand(1, 3, 32, 32))]
        other[0] = model.encode_frame(torch.rand(1, 3, 32, 32))
        out_far_other, _ = model.decode(other, [far, far])
    # What is left is the blend's 1e-4 weight floor, amplified by the gain: under one 8-bit level.
    assert torch.allclose(out_far, out_far_other, atol=4e-3)


# ------------------------------------------------------------------------------------- PRRD


def test_prrd_recursions_share_weights():
    def build(r):
        torch.manual_seed(0)
        return PyramidRecursiveRDN(PRRDConfig(channels=8, scales=3, recursions=r, growth=4, layers=2))

    p1, p2, p4 = build(1), build(2), build(4)
    n = [sum(p.numel() for p in m.parameters()) for m in (p1, p2, p4)]
    assert n[0] == n[1] == n[2]
    # identical weights (same seed), different depth -> different output
    assert all(torch.equal(a, b) for a, b in zip(p1.state_dict().values(), p2.state_dict().values()))
    x = torch.rand(1, 8, 16, 16)
    with torch.no_grad():
        y1, y2 = p1(x), p2(x)
    assert y1.shape == y2.shape == x.shape
    assert (y1 - y2).abs().max() > 1e-4


# ------------------------------------------------------------------------------------- config


def test_config_round_trip():
    cfg = STPRConfig(frames=5, channels=12, flow_mode="zero", flow_levels=3, flow_channels=(4, 6, 8),
                     flow_hidden=10, hf_split=False, brightness_weight=False, prrd_scales=4,
                     prrd_recursions=3, prrd_growth=5, prrd_layers=1)
    d = cfg.to_dict()
    assert d["flow_channels"] == [4, 6, 8]
    again = STPRConfig.from_dict(d)
    assert again == cfg
    assert isinstance(again.flow_channels, tuple)
    assert STPRConfig.from_dict(STPRConfig().to_dict()) == STPRConfig()
    assert STPRConfig.from_dict({}) == STPRConfig()  # a training config's "model": {} is the default
    assert {f.name for f in dataclasses.fields(STPRConfig)} == set(d)


@pytest.mark.parametrize("bad", [{"frames": 2}, {"frames": 4}, {"frames": 0}, {"flow_mode": "magic"},
                                 {"flow_levels": 3}, {"no_such_key": 1}, {"encoder": "magic"}, {"flow_stride": 16}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        STPRConfig.from_dict({**STPRConfig().to_dict(), **bad})


# the retired options as weights written before their removal store them (all off)
RETIRED_OFF = {"flow_corr_radius": 0, "temporal_residual": False, "temporal_hidden": 0, "linear_light": False,
               "refine_channels": 0, "recurrent": False, "recurrent_cap": 8.0, "feature_recurrent": False}


def test_config_drops_retired_options_at_their_off_values():
    assert STPRConfig.from_dict({**STPRConfig().to_dict(), **RETIRED_OFF}) == STPRConfig()
    assert STPRConfig.from_dict({"recurrent_cap": 4.0}) == STPRConfig()  # only a setting of recurrent


@pytest.mark.parametrize("on", [{"recurrent": True}, {"feature_recurrent": True}, {"linear_light": True},
                                {"refine_channels": 12}, {"temporal_residual": True}, {"temporal_hidden": 32},
                                {"flow_corr_radius": 2}])
def test_config_refuses_a_retired_option_turned_on(on):
    from stpr.models.stpr_arch import RetiredOptionError

    (name, value), = on.items()
    with pytest.raises(RetiredOptionError, match=f"^{name} = .*retired.*50d3f5c") as e:
        STPRConfig.from_dict({**STPRConfig().to_dict(), **RETIRED_OFF, **on})
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------- budget


def test_default_model_budget():
    model = STPR(STPRConfig()).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params <= 3e6
    x = torch.rand(1, 3, 360, 640) * 0.2
    padded, (h, w) = model.pad(x)
    assert (h, w) == (360, 640) and padded.shape[-2] % model.multiple == 0 and padded.shape[-1] % model.multiple == 0
    with torch.no_grad():
        prev = model.encode_frame(padded)
        nxt = model.encode_frame(padded)
        # streaming: per new frame, one encode and one decode (the window's other frames are cached)
        with FlopCounterMode(display=False) as counter:
            cur = model.encode_frame(padded)
            out, _ = model.decode([prev, cur, nxt])
    flops = counter.get_total_flops()
    assert out.shape == padded.shape
    assert 1e8 < flops <= 10e9, flops / 1e9


# ------------------------------------------------------------------------------------- sRGB and statistics


def test_srgb_transfer_matches_numpy_and_round_trips():
    from stpr.data.synthesis import linear_to_srgb as np_encode, srgb_to_linear as np_decode
    from stpr.models.common import linear_to_srgb, srgb_to_linear

    x = torch.linspace(0, 1, 1001, dtype=torch.float64)
    assert torch.allclose(srgb_to_linear(x), torch.from_numpy(np_decode(x.numpy())), atol=1e-12)
    assert torch.allclose(linear_to_srgb(x), torch.from_numpy(np_encode(x.numpy())), atol=1e-12)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-9)
    # above 1 the curve goes on (training gradients), below 0 it stops at 0
    assert linear_to_srgb(torch.tensor([2.0])) > 1.0 and linear_to_srgb(torch.tensor([-1.0])) == 0.0
    y = torch.tensor([0.0, 0.002, 0.5, 1.5], requires_grad=True)
    linear_to_srgb(y).sum().backward()
    assert torch.isfinite(y.grad).all() and (y.grad[1:] > 0).all()


def test_frame_stats_linear_mean():
    from stpr.models.common import frame_stats, luma, srgb_to_linear

    x = torch.rand(2, 3, 40, 56) * 0.3
    st = frame_stats(x)
    assert st.shape == (2, 6)
    expect = torch.log(luma(srgb_to_linear(x)).mean(dim=(1, 2, 3)) + 1e-5)
    assert torch.allclose(st[:, 5], expect, atol=1e-5)
    # large frames: a 1-in-16 pixel sample, still within 1 % of the full mean
    big = torch.rand(1, 3, 256, 320) * 0.3
    expect = torch.log(luma(srgb_to_linear(big)).mean() + 1e-5)
    assert abs(float(frame_stats(big)[0, 5] - expect)) < 0.01


def test_without_local_gain_the_model_is_one_with_its_local_gain_zeroed():
    """``local_gain=False`` drops the local gain map's convolution and computes what the same
    weights with that convolution at zero compute (how real-footage section 34's candidate was
    made from a trained model)."""
    with_map = wake(STPR(STPRConfig(**TINY)), seed=3).eval()
    without = STPR(STPRConfig(**TINY, local_gain=False)).eval()
    assert without.reconstruction.local_gain is None
    state = {k: v for k, v in with_map.state_dict().items() if "local_gain" not in k}
    without.load_state_dict(state)  # strict: every other tensor is there, none is left over
    clip = torch.rand(1, 3, 3, 32, 40, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        woke = with_map(clip)
        with_map.reconstruction.local_gain.weight.zero_()
        with_map.reconstruction.local_gain.bias.zero_()
        zeroed, dropped = with_map(clip), without(clip)
    assert not torch.allclose(woke, zeroed, atol=1e-4)  # the map did something before
    torch.testing.assert_close(dropped, zeroed, atol=1e-6, rtol=1e-5)


def test_without_feature_fusion_neighbours_reach_the_output_through_the_pixel_fusion_alone():
    """``feature_fusion=False``: the propagated features are the centre's own (what a T = 1 run
    propagates), the fusion weights still cover every frame, and the pixel fusion still blends."""
    from stpr.models.propagation_arch import FeaturePropagation, PropagationConfig

    torch.manual_seed(5)
    prop = FeaturePropagation(PropagationConfig(8, hf_split=False, feature_fusion=False)).eval()
    c, small, logb = torch.rand(1, 8, 6, 7), torch.rand(1, 3, 6, 7), torch.rand(1, 1, 6, 7)
    nbr = [torch.rand(1, 8, 6, 7) for _ in range(2)]
    flows = [torch.randn(1, 2, 6, 7) for _ in range(2)]
    with torch.no_grad():
        out, weights, errors = prop(c, small, logb, nbr, [torch.rand(1, 3, 6, 7)] * 2, [logb] * 2, flows)
        alone, _, _ = prop(c, small, logb, [], [], [], [])
    assert torch.equal(out, alone)
    assert weights.shape[1] == 3 and weights[:, 1:].min() > 0 and len(errors) == 3

    model = tiny_model(6, pixel_fusion=True, hf_split=False)
    off = tiny_model(6, pixel_fusion=True, hf_split=False, feature_fusion=False)
    x = torch.rand(1, 5, 3, 32, 48) * 0.2
    with torch.no_grad():
        three = off.forward_clip(x, [2])[0][0]
        assert (three - model.forward_clip(x, [2])[0][0]).abs().max() > 1e-4
        off.cfg.frames = model.cfg.frames = 1
        one = off.forward_clip(x, [2])[0][0]
        assert torch.equal(one, model.forward_clip(x, [2])[0][0])
    assert (three - one).abs().max() > 1e-4  # the pixel fusion still blends the neighbours


# ------------------------------------------------------------------------- shipped model, pinned

REFERENCES = {"quality": Path(__file__).parent / "data" / "shipped_reference.npz",
              "fast": Path(__file__).parent / "data" / "shipped_reference_fast.npz"}


def shipped_reference_outputs(name: str = "quality") -> dict[str, np.ndarray]:
    """A shipped model (float32, one thread) on a seeded dark clip: ``model(x)`` of a T = 3
    window, and ``Enhancer.enhance_frames`` on four uint8 frames. ``tests/data/shipped_reference.npz``
    holds what this gave for the quality model (v9) when it shipped, ``shipped_reference_fast.npz``
    the same for the fast model (``np.savez_compressed(path, **shipped_reference_outputs("fast"))``)."""
    from stpr.checkpoint import load_model
    from stpr.enhance import Enhancer

    model = load_model(name)
    g = torch.Generator().manual_seed(2026)
    x = torch.rand(1, 3, 3, 48, 64, generator=g) * 0.2
    with torch.no_grad():
        forward = model(x)
    frames = (torch.rand(4, 48, 64, 3, generator=g) * 50).to(torch.uint8).numpy()
    stream = np.stack(list(Enhancer(model, tile=0, precision="fp32", device="cpu",
                                       steady_exposure=False, temporal_filter=0).enhance_frames(iter(frames))))
    return {"x": x.numpy(), "forward": forward.numpy(), "frames": frames, "stream": stream}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_shipped_model_outputs_match_the_pinned_reference(name):
    """Removing code the shipped models do not use, or restructuring the hot path (one sampling
    grid per flow, the gain's exponential split per channel, the neighbours in one batch), may
    change float rounding, never results: the network's output within 1e-5, enhanced frames within
    one level (a wrong change moves them by tens)."""
    ref = np.load(REFERENCES[name])
    now = shipped_reference_outputs(name)
    assert np.array_equal(now["x"], ref["x"]) and np.array_equal(now["frames"], ref["frames"])
    assert np.abs(now["forward"] - ref["forward"]).max() <= 1e-5
    assert np.abs(now["stream"].astype(int) - ref["stream"].astype(int)).max() <= 1


# ------------------------------------------------------------------------------------------ looks


def _with_looks(seed: int = 0) -> STPR:
    """A tiny model with two looks whose look vectors are random (trained ones differ)."""
    m = tiny_model(seed, looks=("natural", "lol"))
    with torch.no_grad():
        m.reconstruction.look_feats.normal_(0, 0.5)
        m.reconstruction.look_gain.normal_(0, 0.2)
    return m


def test_looks_pick_the_tone_and_default_to_the_first():
    m = _with_looks()
    clip = torch.rand(2, 3, 3, 32, 48) * 0.2
    with torch.no_grad():
        natural = m(clip)
        m.set_look("lol")
        lol = m(clip)
        per_sample, _ = m.forward_clip(clip, [1], look=torch.tensor([0, 1]))
        m.set_look(None)
        again = m(clip)
    assert (natural - lol).abs().mean() > 1e-3
    assert torch.equal(again, natural)
    # a look per sample in one batch is the same as each look on its own
    assert torch.allclose(per_sample[0][0], natural[0], atol=1e-6)
    assert torch.allclose(per_sample[0][1], lol[1], atol=1e-6)


def test_untrained_looks_are_one_tone_and_models_without_looks_refuse_one():
    m = tiny_model(looks=("natural", "lol"))
    clip = torch.rand(1, 3, 3, 32, 32) * 0.2
    with torch.no_grad():
        a = m(clip)
        m.set_look("lol")
        assert torch.equal(m(clip), a)  # zero-initialised: the looks start equal
    with pytest.raises(ValueError, match="its looks are natural, lol"):
        m.set_look("sepia")
    with pytest.raises(ValueError, match="one look only"):
        tiny_model().set_look("lol")
    tiny_model().set_look(None)  # the default is always there
    assert "look_feats" not in " ".join(tiny_model().state_dict())  # models without looks: no new weights


@pytest.mark.parametrize("looks", [("one",), ("a", "a")])
def test_config_rejects_bad_looks(looks):
    with pytest.raises(ValueError, match="looks"):
        STPRConfig(looks=looks)
    assert STPRConfig.from_dict(STPRConfig(looks=("x", "y")).to_dict()).looks == ("x", "y")


def test_cat_channels_writes_channels_last_when_features_are():
    cl = torch.channels_last
    feats = torch.rand(2, 8, 6, 10).contiguous(memory_format=cl)  # a channels-last convolution's output
    warped = torch.rand(2, 5, 6, 10)  # a warp's output, default layout
    mask = torch.rand(2, 1, 6, 10)
    out = cat_channels([feats, warped, mask])
    assert torch.equal(out, torch.cat([feats, warped, mask], dim=1))
    assert out.is_contiguous(memory_format=cl) and not out.is_contiguous()
    # layout from `like` when no input is channels-last features (a repeat loses the layout)
    out = cat_channels([feats.repeat(1, 1, 1, 1).contiguous(), warped], like=feats)
    assert out.is_contiguous(memory_format=cl) and not out.is_contiguous()
    # no channels-last features: the plain cat, in the default layout
    assert cat_channels([warped, mask]).is_contiguous()
    # dtypes promote as torch.cat does
    assert cat_channels([feats.bfloat16(), warped]).dtype == torch.float32


def test_cat_channels_keeps_gradients():
    cl = torch.channels_last
    feats = torch.rand(1, 4, 5, 5).contiguous(memory_format=cl).requires_grad_()
    other = torch.rand(1, 2, 5, 5)
    cat_channels([feats, other]).sum().backward()
    assert torch.equal(feats.grad, torch.ones_like(feats))


@pytest.mark.parametrize("hw", [(64, 96), (60, 90), (8, 8)])
def test_frame_stats_of_a_padded_frame_are_the_frames(hw):
    frame = torch.rand(2, 3, *hw)
    padded = torch.nn.functional.pad(frame, (0, 6, 0, 10), mode="replicate")
    torch.testing.assert_close(frame_stats(padded, size=hw), frame_stats(frame), rtol=0, atol=1e-6)
