"""The reconstruction's full-resolution last step, held back so that it runs as one pass.

``STReconstruction`` ends at full resolution: the residual is pixel-shuffled up from 1/4
resolution, the local gain map upsampled and exponentiated, and ``out = residual + base * gain``;
``STPR.decode`` then clamps it and ``Enhancer`` scales it to 0-255, clamps again and converts it to
uint8. Run eagerly that is about ten passes over the full frame, a quarter of the `fast` model's
time at 1080p (docs/research/speed-and-memory.md). With ``decode(..., tail=True)`` the network
stops before that step and returns a :class:`Tail`; :meth:`Tail.to_uint8` then runs the whole step
and the conversion to uint8, under ``torch.compile`` where it is usable (one fused loop that reads
the base frame as the uint8 it was decoded as and writes uint8), else eagerly with the same
arithmetic.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def _eager(residual: torch.Tensor, base: torch.Tensor, gain: torch.Tensor, local: torch.Tensor | None,
           scale: torch.Tensor | None) -> torch.Tensor:
    """The tail's arithmetic, as ``STReconstruction`` and ``Enhancer`` did it one pass at a time.

    Returns (B, 3, H, W) float in [0, 1] when ``scale`` is None, else (B, H, W, 3) uint8 of
    ``clamp(out, 0, 1) * scale``, rounded half up."""
    if base.dtype == torch.uint8:
        base = base.float() / 255.0
    res = F.pixel_shuffle(residual, 4).float()
    if local is not None:
        gain = torch.exp(F.interpolate(local.float(), size=base.shape[-2:], mode="bilinear",
                                       align_corners=False)) * gain
    out = torch.addcmul(res, base, gain).clamp(0.0, 1.0)
    if scale is None:
        return out
    # the conversion then truncates: + 0.5 rounds half up, the clamp keeps it in 0-255
    out = (out * scale + 0.5).clamp(0.5, 255.5)
    return out.permute(0, 2, 3, 1).to(torch.uint8).contiguous()


_compiled = None
_compile_lock = threading.Lock()
_compile_failed = False


def compile_usable() -> bool:
    """Whether ``torch.compile`` can build the fused tail here: Inductor's CPU code needs a C++
    compiler; ``STPR_COMPILE=0`` in the environment turns it off."""
    if os.environ.get("STPR_COMPILE", "1") == "0" or _compile_failed:
        return False
    return any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


def _fused(residual, base, gain, local, scale) -> torch.Tensor:
    """``_eager`` compiled (once per frame size), falling back to ``_eager`` for good if Inductor
    fails here."""
    global _compiled, _compile_failed
    if not compile_usable():
        return _eager(residual, base, gain, local, scale)
    with _compile_lock:
        if _compiled is None:
            _compiled = torch.compile(_eager, dynamic=False)
    try:
        return _compiled(residual, base, gain, local, scale)
    except Exception as exc:  # noqa: BLE001  (no working compiler, an Inductor bug: the eager path is exact)
        _compile_failed = True
        log.warning("torch.compile of the output step failed (%s); running it eagerly", str(exc).splitlines()[0])
        return _eager(residual, base, gain, local, scale)


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

    @property
    def shape(self) -> torch.Size:
        """(B, 3, H, W), the output's shape."""
        return self.base.shape

    def float(self) -> torch.Tensor:
        """(B, 3, H, W) float32 output in [0, 1], as ``decode`` returns it without ``tail``."""
        return _eager(self.residual, self.base, self.gain, self.local, None)

    def to_uint8(self, scale: float = 255.0, compile: bool = True) -> torch.Tensor:
        """(B, H, W, 3) uint8: the output times ``scale`` (255 times an exposure factor), rounded
        half up and clamped to 0-255, in one fused pass when ``compile`` and Inductor is usable."""
        s = torch.tensor(float(scale), device=self.base.device)  # a tensor: a new value compiles nothing
        fn = _fused if compile else _eager
        return fn(self.residual, self.base, self.gain, self.local, s)

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
