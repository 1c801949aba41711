"""Exposure after the network: steady over time by default, and the user's choice on top.

The network guesses an exposure for every frame ("normal" brightness is not knowable from a dark
frame), and a guess made frame by frame pumps: the output's brightness changes more from frame to
frame than the input's does. ``ExposureControl`` works on each output frame:

* ``steady`` (default): the output's mean brightness is smoothed over time in log units and each
  frame rescaled to it, as a camera's auto-exposure settles: a lasting change (a light comes on,
  a cut) is followed within ~10 frames, a jump of the guess from one frame to the next is not.
* ``ev`` multiplies the light by 2**ev (in linear light, where exposure is a plain scale).
* ``target`` (mean BT.601 luma, 0-255) solves for the gain that brings each frame there. With
  ``steady`` (the default) every frame is held at the target, as a camera's auto-exposure would
  hold it (a light that comes on is compensated at once). Without ``steady`` the gain is smoothed
  over time instead, so a sudden change shows for a few frames, and so do the guess's jumps: on a
  real 5-luma phone clip held at 115 the output's frame-to-frame change was 2.1× the input's
  (real-footage §47).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from stpr.errors import UsageError
from stpr.models.common import linear_to_srgb, srgb_to_linear

_Y = torch.tensor([0.299, 0.587, 0.114])


def _mean_luma(srgb: torch.Tensor) -> float:
    """Mean BT.601 luma (0-255) of a (3, H, W) sRGB image in [0, 1]."""
    return float((srgb * _Y.to(srgb)[:, None, None]).sum(0).mean()) * 255.0


@dataclass
class ExposureControl:
    """Args:
        ev: stops added to the model's exposure (+1 doubles the light, -1 halves it).
        target: mean brightness (BT.601 luma, 0-255) to hold each output frame at, or None.
        smoothing: per-frame weight of the previous state when keeping the exposure steady (or,
            without ``steady``, the previous gain when following ``target``): 0 each frame on its
            own, 0.9 a time constant of about 10 frames.
        steady: smooth the output's mean brightness over time; with ``target``, hold every frame
            at it (see the module's docstring).
    """

    ev: float = 0.0
    target: float | None = None
    smoothing: float = 0.9
    steady: bool = True
    _log_gain: float | None = field(default=None, init=False, repr=False)
    # The smoothed gain a resumed run starts from (``--resume``: the end of its last segment).
    carry: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if not math.isfinite(self.ev) or abs(self.ev) > 8:
            raise UsageError(f"--exposure must be between -8 and 8 stops, got {self.ev}")
        if self.target is not None and not 1 <= self.target <= 254:
            raise UsageError(f"--brightness must be between 1 and 254 (mean luma, 0-255), got {self.target}")
        if self.target is not None and self.ev != 0:
            raise UsageError("--exposure and --brightness exclude each other: --brightness sets the exposure itself")
        if not 0 <= self.smoothing < 1:
            raise UsageError(f"exposure smoothing must be in [0, 1), got {self.smoothing}")

    @property
    def active(self) -> bool:
        return self.ev != 0 or self.target is not None or self.steady

    def reset(self) -> None:
        """Start a video: from ``carry`` if a resumed run set it, else with no smoothed gain."""
        self._log_gain, self.carry = self.carry, None

    @property
    def log_gain(self) -> float | None:
        """The smoothing's state (log2: the brightness when keeping the exposure steady, the gain
        when following ``target`` without ``steady``; None when holding ``target``), for a
        resumable run to store."""
        return self._log_gain

    def _gain_for(self, lin: torch.Tensor) -> float:
        """Linear gain that brings a (3, H, W) linear image to ``target`` mean luma (bisection on a
        subsample; clipping makes brightness sub-linear in the gain)."""
        sub = lin[:, ::4, ::4]
        lo, hi = -8.0, 8.0  # log2 gain
        for _ in range(18):
            mid = 0.5 * (lo + hi)
            if _mean_luma(linear_to_srgb((sub * 2.0 ** mid).clamp_(0, 1))) < self.target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def _steady_gain(self, img: torch.Tensor, sampled: bool = False) -> float:
        """The factor that brings ``img`` (sRGB) to its smoothed mean brightness (the smoothing's
        state moves on). ``sampled``: see ``plain_gain``."""
        if not sampled:
            step = self.sample_step(*img.shape[-2:])
            img = img[:, ::step, ::step]
        luma = _mean_luma(img.clamp(0, 1))
        if luma < 0.5:  # a black frame has no brightness to smooth
            return 1.0
        b = math.log2(luma)
        s = b if self._log_gain is None else self.smoothing * self._log_gain + (1 - self.smoothing) * b
        self._log_gain = s
        # at most two stops either way in one frame: a scene cut re-settles within a few frames
        return 2.0 ** max(-2.0, min(2.0, s - b))

    def _steady(self, img: torch.Tensor) -> torch.Tensor:
        """Rescale ``img`` (sRGB, in place) to its smoothed mean brightness."""
        gain = self._steady_gain(img)
        return img if gain == 1.0 else img.mul_(gain)

    def plain_gain(self, img: torch.Tensor, sampled: bool = False) -> float | None:
        """Where re-exposing ``img`` is one factor on its sRGB values (steady exposure alone, or
        nothing to do), that factor, taken as ``__call__`` would apply it (the smoothing moves on);
        None where it is more (``ev`` or ``target``): call the object then. Lets the caller fold
        the factor into its own pass over the frame.

        ``sampled``: ``img`` is already the frame's every ``sample_step(h, w)``-th row and column
        (a caller that has not made the whole frame yet)."""
        if self.ev != 0 or self.target is not None:
            return None
        return self._steady_gain(img, sampled) if self.steady else 1.0

    @staticmethod
    def sample_step(h: int, w: int) -> int:
        """The stride of the rows and columns the steady exposure measures an (h, w) frame on:
        at least 128 of each."""
        return max(1, min(h, w) // 128)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Re-expose one (3, H, W) sRGB output frame in [0, 1] (a frame of a video: ``steady`` and
        ``target`` smooth over the frames seen since ``reset``). May work in place."""
        if not self.active:
            return img
        if self.target is None:
            if self.steady:
                img = self._steady(img)
            if self.ev == 0:
                return img
        lin = srgb_to_linear(img.clamp(0, 1))
        log_gain = self.ev
        if self.target is not None:
            g = self._gain_for(lin)
            if not self.steady:  # the gain smoothed: the guess's jumps pass through, damped
                g = self._log_gain = g if self._log_gain is None else (
                    self.smoothing * self._log_gain + (1 - self.smoothing) * g)
            log_gain += g
        return linear_to_srgb((lin * 2.0 ** log_gain).clamp_(0, 1))
