"""The network's full-resolution first and last steps as fused passes.

``STReconstruction`` ends at full resolution: the residual is pixel-shuffled up from 1/4
resolution, the local gain map upsampled and exponentiated, and ``out = residual + base * gain``;
``STPR.decode`` then clamps it and ``Enhancer`` scales it to 0-255, clamps again and converts it to
uint8. Run eagerly that is about ten passes over the full frame, a quarter of the `fast` model's
time at 1080p (docs/research/speed-and-memory.md). With ``decode(..., tail=True)`` the network
stops before that step and returns a :class:`Tail`; :meth:`Tail.to_uint8` then runs the whole step
and the conversion to uint8, under ``torch.compile`` where it is usable (one fused loop that reads
the base frame as the uint8 it was decoded as and writes uint8), else eagerly with the same
arithmetic.

The first step is the same kind of work: the uint8 frame converted to float, its statistics, its
brightness-normalised copy and three 1/4 or 1/8 averages (``STPR.encode_frame``). :func:`head` makes
them from the uint8 frame in two fused passes (one for the statistics, one for the normalised frame,
written straight in the convolutions' dtype and layout, and its average), for models whose encoder
reads only the normalised frame (``head_supported``).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stpr.models.common import brightness_gain, luma, srgb_to_linear, stats_from
from stpr.models.propagation_arch import log_brightness_pooled

log = logging.getLogger(__name__)


def compose(residual: torch.Tensor, base: torch.Tensor, gain: torch.Tensor,
            local: torch.Tensor | None) -> torch.Tensor:
    """The reconstruction's output (not clamped): ``pixel_shuffle(residual) + base * gain *
    exp(upsampled local)``; (B, 3, H, W) float32 from :class:`Tail`'s tensors."""
    if base.dtype == torch.uint8:
        base = base.float() / 255.0
    res = F.pixel_shuffle(residual, 4).float()
    if local is not None:
        # exp(g_local) (one channel) times the per-channel gain: two fewer passes over full-resolution colour
        gain = torch.exp(F.interpolate(local.float(), size=base.shape[-2:], mode="bilinear",
                                       align_corners=False)) * gain
    return torch.addcmul(res, base, gain)


def _eager(residual: torch.Tensor, base: torch.Tensor, gain: torch.Tensor, local: torch.Tensor | None,
           scale: torch.Tensor | None) -> torch.Tensor:
    """The tail's arithmetic, one pass at a time: (B, 3, H, W) float in [0, 1] when ``scale`` is
    None, else (B, H, W, 3) uint8 of ``clamp(out, 0, 1) * scale``, rounded half up."""
    out = compose(residual, base, gain, local).clamp(0.0, 1.0)
    if scale is None:
        return out
    # the conversion then truncates: + 0.5 rounds half up, the clamp keeps it in 0-255
    out = (out * scale + 0.5).clamp(0.5, 255.5)
    return out.permute(0, 2, 3, 1).to(torch.uint8).contiguous()


_compiled: dict = {}
_compile_lock = threading.Lock()
_compile_failed = False


def compile_usable() -> bool:
    """Whether ``torch.compile`` can build the fused passes here: Inductor's CPU code needs a C++
    compiler; ``STPR_COMPILE=0`` in the environment turns it off."""
    if os.environ.get("STPR_COMPILE", "1") == "0" or _compile_failed:
        return False
    return any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


def _call(fn, compile: bool, *args):
    """``fn(*args)``, compiled (once per input shape) when ``compile`` and Inductor is usable; if
    Inductor fails here, eagerly from then on (the eager function is the exact arithmetic)."""
    global _compile_failed
    if not (compile and compile_usable()):
        return fn(*args)
    with _compile_lock:
        if fn not in _compiled:
            _compiled[fn] = torch.compile(fn, dynamic=False)
    try:
        return _compiled[fn](*args)
    except Exception as exc:  # noqa: BLE001  (no working compiler, an Inductor bug)
        _compile_failed = True
        log.warning("torch.compile of a fused pass failed (%s); running it eagerly", str(exc).splitlines()[0])
        return fn(*args)


@dataclass
class Tail:
    """The network's output before its full-resolution last step: ``clamp(pixel_shuffle(residual)
    + base * gain * exp(upsampled local), 0, 1)``.

    Args:
        residual: (B, 48, H/4, W/4) the residual before its pixel shuffle.
        base: (B, 3, H, W) the frame (or the blend of the aligned frames) the gain multiplies,
            float in [0, 1] or the uint8 frame it was decoded as (any layout).
        gain: (B, 3, 1, 1) float32 per-channel gain.
        local: (B, 1, H/4, W/4) log local gain, or None.
    """

    residual: torch.Tensor
    base: torch.Tensor
    gain: torch.Tensor
    local: torch.Tensor | None

    def float(self) -> torch.Tensor:
        """(B, 3, H, W) float32 output in [0, 1], as ``decode`` returns it without ``tail``."""
        return _eager(self.residual, self.base, self.gain, self.local, None)

    def to_uint8(self, scale: float = 255.0, compile: bool = True) -> torch.Tensor:
        """(B, H, W, 3) uint8: the output times ``scale`` (255 times an exposure factor), rounded
        half up and clamped to 0-255, in one fused pass when ``compile`` and Inductor is usable."""
        s = torch.tensor(float(scale), device=self.base.device)  # a tensor: a new value compiles nothing
        return _call(_eager, compile, self.residual, self.base, self.gain, self.local, s)

    def sample(self, step: int, h: int, w: int) -> torch.Tensor:
        """(B, 3, ceil(h / step), ceil(w / step)) float output at every ``step``-th row and column of
        its top-left (h, w) corner: ``self.float()[..., :h:step, :w:step]`` without the full frame
        (what the steady exposure measures before the one pass sets its factor).

        Args:
            step: the sampling stride.
            h, w: the frame's size without its padding.
        """
        dev = self.base.device
        ys = torch.arange(0, h, step, device=dev)
        xs = torch.arange(0, w, step, device=dev)
        base = self.base[..., :h:step, :w:step]
        if base.dtype == torch.uint8:
            base = base.float() / 255.0
        # pixel_shuffle: out[c, 4y + i, 4x + j] = in[16c + 4i + j, y, x]; one gather of the samples
        # alone (the residual is channels-last: selecting whole rows first copied half of it)
        ch = (torch.arange(3, device=dev) * 16)[:, None, None] + ((ys % 4) * 4)[:, None] + (xs % 4)[None, :]
        res = self.residual[:, ch, (ys // 4)[:, None], (xs // 4)[None, :]].float()
        gain = self.gain
        if self.local is not None:
            gain = torch.exp(_bilinear_at(self.local.float(), ys, xs, *self.base.shape[-2:])) * gain
        return torch.addcmul(res, base, gain).clamp(0.0, 1.0)


def _bilinear_at(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)[..., ys][..., xs]``
    computed at those rows and columns only. x: (B, C, h, w) -> (B, C, len(ys), len(xs))."""

    def taps(pos: torch.Tensor, size_in: int, size_out: int):
        src = ((pos.to(torch.float32) + 0.5) * (size_in / size_out) - 0.5).clamp(min=0.0)
        i0 = src.floor().long().clamp(max=size_in - 1)
        i1 = (i0 + 1).clamp(max=size_in - 1)
        return i0, i1, (src - i0).clamp(0.0, 1.0)

    h, w = x.shape[-2:]
    y0, y1, wy = taps(ys, h, out_h)
    x0, x1, wx = taps(xs, w, out_w)
    rows = x[:, :, y0] * (1 - wy)[:, None] + x[:, :, y1] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


# ------------------------------------------------------------------------------------------ head


@dataclass
class Head:
    """What ``STPR.encode_frame`` makes of a frame at full resolution, made by :func:`head`.

    Args:
        x_norm: (B, 3, H, W) the brightness-normalised frame, in the convolutions' dtype and layout.
        norm_small: (B, 3, H/4, W/4) float32, its 1/4 average.
        logb: (B, 1, H/4, W/4) float32 local log brightness (``log_brightness`` of the frame).
    """

    x_norm: torch.Tensor
    norm_small: torch.Tensor
    logb: torch.Tensor


def head_supported(cfg) -> bool:
    """Whether a model (its ``STPRConfig``) reads a frame at full resolution only through its
    normalised copy, so that :func:`head` can stand in for that part of ``encode_frame`` and the
    state keep the uint8 frame: the strided encoder, no pixel fusion, no learned flow pyramid
    built from the full frame."""
    needs_full_pyr = cfg.flow_mode == "learned" and cfg.frames > 1 and cfg.flow_stride == 4
    return cfg.encoder == "strided" and not cfg.pixel_fusion and not needs_full_pyr


def head_usable(h: int, w: int) -> bool:
    """Whether :func:`head` gives ``frame_stats``'s figures for an (h, w) frame: its 1/8 thumbnail
    then tiles the frame exactly and its linear-light sample takes every 4th row and column."""
    return h % 8 == 0 and w % 8 == 0 and min(h, w) >= 64


def _pools(x_u8: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The padded uint8 frame's 1/4 average and the mean linear-light luma of every 4th row and
    column of its top-left (h, w) corner."""
    x = x_u8.float() / 255.0
    return F.avg_pool2d(x, 4), luma(srgb_to_linear(x[..., :h:4, :w:4])).mean(dim=(2, 3))


def _normalised(x_u8: torch.Tensor, gain: torch.Tensor, dtype: torch.dtype,
                channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``normalize_brightness`` of the uint8 frame, in ``dtype`` (and channels-last), and its
    float32 1/4 average."""
    x_norm = (x_u8.float() / 255.0 * gain).clamp(0.0, 1.0)
    small = F.avg_pool2d(x_norm, 4)
    x_norm = x_norm.to(dtype)
    if channels_last:
        x_norm = x_norm.contiguous(memory_format=torch.channels_last)
    return x_norm, small


def head(x_u8: torch.Tensor, size: tuple[int, int], dtype: torch.dtype = torch.float32,
         channels_last: bool = False, compile: bool = True) -> tuple[torch.Tensor, Head]:
    """A frame's statistics and full-resolution encoding inputs from its uint8 pixels, in two
    passes over the frame (fused by ``torch.compile`` when ``compile`` and usable).

    Args:
        x_u8: (B, 3, H, W) uint8 frame padded to the model's multiple (``padded_frame_u8``).
        size: (h, w) the frame without its padding (``head_usable``).
        dtype, channels_last: how the convolutions read the normalised frame (bf16 channels-last
            on a CPU with ``cast_convolutions``).

    Returns:
        stats: (B, 6) ``frame_stats`` of the frame; and its :class:`Head`.
    """
    h, w = size
    pool4, lin_y = _call(_pools, compile, x_u8, h, w)
    # the 1/8 thumbnail as the 1/4 one's 2x2 averages (the same blocks of the frame)
    stats = stats_from(F.avg_pool2d(pool4, 2)[..., :h // 8, :w // 8], lin_y)
    logb = log_brightness_pooled(pool4)
    x_norm, norm_small = _call(_normalised, compile, x_u8, brightness_gain(stats), dtype, channels_last)
    return stats, Head(x_norm, norm_small, logb)
