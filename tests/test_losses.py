"""Perceptual-side training losses: tone (blacks, contrast), colour, edges, coarse tone."""

from __future__ import annotations

import pytest
import torch

from stpr.losses import (black_loss, chroma_loss, colour_loss, edge_loss, fit_affine, lowpass_loss,
                         temporal_coarse_loss, temporal_loss, tone_loss)


def _checker(amplitude: float) -> torch.Tensor:
    """(24, 32) of +-``amplitude`` alternating pixel by pixel: zero-mean noise that 2x2 and larger
    block means average away."""
    return ((torch.arange(24).view(-1, 1) + torch.arange(32)) % 2).float() * 2 * amplitude - amplitude


def _lifted_dark_green() -> tuple[torch.Tensor, torch.Tensor]:
    """An output (1, 3, 24, 32), requiring grad, whose darkest blocks are a dark green lifted over
    its truth's, a luma ramp from 0 to 0.5."""
    y = torch.linspace(0.0, 0.5, 32).expand(1, 3, 24, 32).clone()
    return (torch.tensor([0.05, 0.15, 0.05]).view(1, 3, 1, 1) + 0.5 * y).requires_grad_(), y


def _img(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 24, 32, generator=g) * 0.8 + 0.1


def test_each_loss_is_zero_on_the_target():
    y = _img()
    for fn in (tone_loss, colour_loss, edge_loss, lowpass_loss, black_loss, chroma_loss):
        assert float(fn(y, y)) < 1e-6


def test_tone_loss_sees_haze_that_keeps_the_mean():
    y = _img()
    hazy = y.mean() + 0.6 * (y - y.mean())  # same mean, lifted blacks, less contrast
    assert float(tone_loss(hazy, y)) > 0.05
    assert abs(float(hazy.mean() - y.mean())) < 1e-6


def test_colour_loss_ignores_exposure_but_sees_desaturation():
    y = _img()
    assert float(colour_loss(0.5 * y, y)) < 1e-4
    grey = y.mean(1, keepdim=True).expand_as(y)
    washed = 0.5 * y + 0.5 * grey
    assert float(colour_loss(washed, y)) > 5 * float(colour_loss(0.9 * y + 0.1 * grey, y)) > 0


def test_edge_loss_punishes_smearing():
    y = _img()
    blurred = torch.nn.functional.avg_pool2d(y, 3, 1, 1, count_include_pad=False)
    assert float(edge_loss(blurred, y)) > float(edge_loss(y + 0.01, y)) + 0.05


def test_lowpass_loss_sees_a_dark_blob_but_not_fine_detail():
    """A checkerboard of +-0.1 inside each 8x8 block averages away; a dark 8x16 blob of -0.1 (a
    sixth of the 24x32 frame) costs its share: 0.1 / 6 per pixel of the block means."""
    y = _img()
    checker = _checker(0.1)
    assert float(lowpass_loss(y + checker, y)) < 1e-6
    blob = y.clone()
    blob[..., 8:16, 8:24] -= 0.1
    assert abs(float(lowpass_loss(blob, y)) - 0.1 / 6) < 1e-5


def test_black_loss_sees_lifted_blacks_not_deeper_ones_or_noise():
    """Haze (blacks lifted, same mean) costs; darker blacks than the truth's cost nothing; and zero-mean
    noise that averages out over 4x4 blocks costs nothing, though it spreads the full-resolution
    percentiles."""
    y = torch.linspace(0.05, 0.85, 32).expand(2, 3, 24, 32)  # a smooth ramp: its blacks survive pooling
    hazy = y.mean() + 0.6 * (y - y.mean())
    assert float(black_loss(hazy, y)) > 0.1
    deeper = (y - 0.1).clamp_min(0.0)
    assert float(black_loss(deeper, y)) == 0.0
    flat = torch.full((1, 3, 24, 32), 0.2)
    checker = _checker(0.1)
    assert float(black_loss(flat, flat + checker)) < 1e-6  # the truth noisy, the output clean
    assert float(black_loss(flat + 0.05, flat + checker)) > 0.04  # a real lift still costs


def test_chroma_loss_sees_grey_shadows_that_colour_loss_barely_sees():
    """A dark green shadow turned grey (a third of the frame, luma kept) costs the chroma term a
    large share and the brightness-weighted colour term little; darkening the whole picture by 0.8
    (exposure) costs under a fifth of that (in the shadow only, whose mean is near ``eps``), and
    colour noise that averages out over 4x4 blocks costs nothing."""
    y = torch.full((1, 3, 24, 32), 0.7)
    y[:, :, :8] = torch.tensor([0.01, 0.06, 0.01]).view(1, 3, 1, 1)  # a dark green shadow
    grey = y.clone()
    grey[:, :, :8] = y[:, :, :8].mean(1, keepdim=True)
    greyed = float(chroma_loss(grey, y))
    assert greyed > 0.15 and float(colour_loss(grey, y)) < 0.01
    assert float(chroma_loss(0.8 * y, y)) < greyed / 5
    checker = _checker(0.05)
    noisy = y + torch.stack([checker, -checker, checker]).unsqueeze(0)
    assert float(chroma_loss(noisy, y)) < 1e-5


def test_gradients_flow():
    y = _img()
    x = _img(1).requires_grad_()
    (tone_loss(x, y) + colour_loss(x, y) + edge_loss(x, y) + lowpass_loss(x, y) + black_loss(0.5 * x, y)
     + chroma_loss(x, y)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_fit_affine_takes_out_gain_and_offset_per_channel_only():
    x, y = _img(), _img(1)
    gain, offset = torch.tensor([0.5, 0.8, 1.3]).view(1, 3, 1, 1), torch.tensor([0.3, 0.1, -0.05]).view(1, 3, 1, 1)
    assert torch.allclose(fit_affine(x, x * gain + offset), x * gain + offset, atol=1e-5)
    # what no gain and offset can explain (another picture) stays
    assert float((fit_affine(x, y) - y).abs().mean()) > 0.1
    # the fit is a constant for back-propagation: the gradient is the gain times the upstream one
    xg = x.clone().requires_grad_()
    fit_affine(xg, x * gain + offset).sum().backward()
    assert torch.allclose(xg.grad, gain.expand_as(x), atol=1e-4)


def test_temporal_coarse_loss_sees_coarse_changes_not_grain():
    """Block means of the temporal change: a per-pixel change that averages out (grain) weighs far
    less than a change of a region's tone, though per pixel the grain is the larger; blocks mostly
    hidden by the flow's mask are left out."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 32, 32, generator=g)
    b = a.clone()
    flow, valid = torch.zeros(1, 2, 32, 32), torch.ones(1, 1, 32, 32)
    same, blocks = temporal_coarse_loss(a, b, a, b, flow, valid)
    assert float(same) == 0 and int(blocks) == 16
    grain = (torch.rand(1, 3, 32, 32, generator=g) - 0.5) * 0.2
    tone = torch.zeros(1, 3, 32, 32)
    tone[..., :16, :] = 0.05
    assert temporal_loss(a + grain, b, a, b, flow, valid) > 1.5 * temporal_loss(a + tone, b, a, b, flow, valid)
    coarse_grain = temporal_coarse_loss(a + grain, b, a, b, flow, valid)[0]
    coarse_tone = temporal_coarse_loss(a + tone, b, a, b, flow, valid)[0]
    assert float(coarse_tone) == pytest.approx(0.025, rel=1e-5) and coarse_grain < 0.5 * coarse_tone
    half = valid.clone()
    half[..., :16, :] = 0
    hidden, blocks = temporal_coarse_loss(a + tone, b, a, b, flow, half)
    assert float(hidden) == 0 and int(blocks) == 8


def test_black_loss_along_colour_keeps_the_value_and_darkens_without_greying():
    """``along_colour``: the same figure, but one gradient step on a lifted dark green lowers R, G
    and B in proportion (its chromaticity stays), where luma's weights take green down most."""
    x, y = _lifted_dark_green()
    assert torch.allclose(black_loss(x, y, along_colour=1.0), black_loss(x, y))
    black_loss(x, y, along_colour=1.0).backward()
    g = x.grad[0, :, :, :4].mean((1, 2))  # the darkest blocks, those the quantiles pick
    assert g.min() > 0
    colour = x[0, :, :, :4].mean((1, 2)).detach()
    assert torch.allclose(g / g.sum(), colour / colour.sum(), atol=0.02)
    x.grad = None
    black_loss(x, y).backward()
    g = x.grad[0, :, :, :4].mean((1, 2))
    assert torch.allclose(g / g.sum(), torch.tensor([0.299, 0.587, 0.114]), atol=1e-3)


def test_black_loss_along_colour_share_blends_the_two_gradients():
    """``along_colour`` 0.5: the same figure, its gradient halfway between luma's and the colour's."""
    x, y = _lifted_dark_green()
    grads = []
    for share in (0.0, 1.0, 0.5):
        x.grad = None
        black_loss(x, y, along_colour=share).backward()
        grads.append(x.grad.clone())
    assert torch.allclose(grads[2], 0.5 * (grads[0] + grads[1]), atol=1e-6)
    assert torch.allclose(black_loss(x, y, along_colour=0.5), black_loss(x, y))
