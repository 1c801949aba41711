"""Small building blocks shared by the STPR sub-networks."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def cat_channels(tensors: list[torch.Tensor], like: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.cat(tensors, dim=1)`` of (B, C_i, H, W) maps, written channels-last when any input (or
    ``like``, features whose layout the result should follow) is channels-last features.

    Why: on a CPU the bf16 convolutions run channels-last (``stpr.hardware.cast_convolutions``), so
    their outputs are channels-last, while warps, masks and error maps come out in the default
    layout. A plain cat of the two kinds is written in the default layout and the convolution that
    reads it converts it back: two passes where one does (the propagation's confidence input at
    1080p, bf16, with its convolution: 28.6 -> 13.2 ms on this project's CPU). With autograd (training),
    under ONNX tracing, or when no input is channels-last features, this is the plain cat.
    """
    if (torch.jit.is_tracing() or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            or not any(_channels_last_features(t) for t in [*tensors, *([like] if like is not None else [])])):
        return torch.cat(tensors, dim=1)
    first = tensors[0]
    dtype = first.dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    shape = (first.shape[0], sum(t.shape[1] for t in tensors), *first.shape[2:])
    out = torch.empty(shape, dtype=dtype, device=first.device, memory_format=torch.channels_last)
    return torch.cat(tensors, dim=1, out=out)


def _channels_last_features(t: torch.Tensor) -> bool:
    """Multi-channel (B, C, H, W) stored channels-last (and not also in the default layout)."""
    return (t.dim() == 4 and t.shape[1] > 1 and t.is_contiguous(memory_format=torch.channels_last)
            and not t.is_contiguous())


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an RGB tensor. (B, 3, H, W) -> (B, 1, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 decoding (sRGB -> linear light), elementwise; x in [0, 1]."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 encoding (linear light -> sRGB), elementwise. Negative values map to 0; values
    above 1 follow the same power law rather than being clipped, so training gradients still flow
    through over-exposed pixels (the model clamps its output in eval mode)."""
    x = x.clamp(min=0.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def frame_stats(x: torch.Tensor, eps: float = 1e-3, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Global statistics of whole frames, computed once per frame so that tiles of one frame share
    them (no seams): log mean R, G, B, log mean luma, std of log luma (on a 1/8 thumbnail), and
    log mean luma in linear light.

    The linear-light mean is what exposure scales. It is taken before any pooling because sensor
    noise is zero-mean in linear light, while the sRGB curve turns it into an upward bias that
    grows as the frame gets darker; on every 4th row and column of frames of 64 pixels and more
    (an unbiased sample that keeps the cost at 4K to a few milliseconds).

    Args:
        x: (B, 3, H, W) in [0, 1].
        size: (h, w): the statistics of ``x[..., :h, :w]``, a frame that ``x`` pads at the bottom and
            right (the same figures; where h and w are multiples of 8 the pooling then reads the
            padded tensor whole, which costs half of pooling a view of it).

    Returns:
        (B, 6).
    """
    if size is not None:
        h, w = size
        if h % 8 or w % 8 or min(h, w) < 16:
            return frame_stats(x[..., :h, :w], eps)
        small = F.avg_pool2d(x, 8)[..., :h // 8, :w // 8]  # windows that never reach the padding
        x = x[..., :h, :w]
    else:
        small = F.avg_pool2d(x, 8, ceil_mode=True) if min(x.shape[-2:]) >= 16 else x
    step = 4 if min(x.shape[-2:]) >= 64 else 1
    return stats_from(small, luma(srgb_to_linear(x[..., ::step, ::step])).mean(dim=(2, 3)), eps)


def stats_from(small: torch.Tensor, lin_y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``frame_stats`` from its two full-resolution reductions: ``small`` (B, 3, h, w) the frame's
    1/8 thumbnail and ``lin_y`` (B, 1) its mean linear-light luma. Returns (B, 6)."""
    rgb = torch.log(small.mean(dim=(2, 3)) + eps)
    y = luma(small)
    ly = torch.log(y + eps)
    spread = ly.flatten(1).std(dim=1, keepdim=True, correction=0)
    return torch.cat([rgb, torch.log(y.mean(dim=(2, 3)) + eps), spread, torch.log(lin_y + 1e-5)], dim=1)


def normalize_brightness(x: torch.Tensor, stats: torch.Tensor, target: float = 0.45,
                         max_gain: float = 60.0) -> torch.Tensor:
    """Scale each frame so its mean luma is ``target``: dark, flickering frames then look alike to
    the flow and confidence estimators (brightness constancy holds again).

    Args:
        x: (B, 3, H, W) in [0, 1].
        stats: (B, 6) from ``frame_stats`` of the whole frame.

    Returns:
        (B, 3, H, W) in [0, 1].
    """
    return (x * brightness_gain(stats, target, max_gain)).clamp_(0.0, 1.0)  # in place: one pass fewer


def brightness_gain(stats: torch.Tensor, target: float = 0.45, max_gain: float = 60.0) -> torch.Tensor:
    """``normalize_brightness``'s factor: (B, 6) stats -> (B, 1, 1, 1)."""
    mean = torch.exp(stats[:, 3]).view(-1, 1, 1, 1)
    return (target / mean).clamp(max=max_gain)


def gaussian_blur3(x: torch.Tensor) -> torch.Tensor:
    """Separable 3x3 binomial blur [1 2 1]/4 x [1 2 1]/4 (a cheap low-pass), replicate-padded.
    Shape preserved. Written with slices rather than a depthwise conv so it exports to ONNX with
    any channel count and costs a few additions per pixel."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    v = (p[..., :-2, :] + p[..., 2:, :] + 2.0 * p[..., 1:-1, :]) * 0.25
    return (v[..., :-2] + v[..., 2:] + 2.0 * v[..., 1:-1]) * 0.25


def upsample2(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    if size is None:
        size = (x.shape[-2] * 2, x.shape[-1] * 2)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
