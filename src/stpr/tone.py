"""Plain brightening's shadows on the enhanced video (``--tone-match``): takes out the haze.

The network lifts the blacks of real dark footage (its darkest percentiles sit 20–40 levels above
those of the input simply scaled to the same brightness) and flattens contrast there. Per frame,
``ToneMatch`` fits the curve that maps the output's luma distribution onto that of plain
brightening (the input times the gain to the output's mean brightness), both measured on 1/4-size
area-downscaled copies so that the input's noise averages down, and maps each colour channel of
the output through it. Only the shadows and mid-tones move: above the median the target fades back
to the output's own levels, so highlights stay. The curve's correction is smoothed over time, so
the curve does not pump with each frame's statistics; the output's own changes pass.

The curve is one monotone look-up table per frame: it stretches contrast, it adds no noise, but the
shadows' small frame-to-frame changes are stretched with them (run the temporal filter after it;
docs/research/real-footage.md §24).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stpr.errors import UsageError
from stpr.metrics.video import luma

# ``stpr enhance``'s default: off (docs/research/real-footage.md §24)
DEFAULT_STRENGTH = 0.0
# Quantile levels at which the two distributions are matched.
LEVELS = np.linspace(0.0, 1.0, 65)
_BINS = 1024  # histogram bins of the luma


def check_tone_match(strength: float) -> float:
    """The ``--tone-match`` value, or UsageError (exit 2) outside [0, 1]."""
    if not 0 <= strength <= 1:
        raise UsageError(f"--tone-match must be in [0, 1] (0 turns it off), got {strength}")
    return strength


def luma_quantiles(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantiles (at ``LEVELS``, 0-1 scale, to 1/1023) and mean of the luma of a 1/4-size
    area-downscaled copy of an (H, W, 3) uint8 RGB frame: its noise averaged down."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    y = luma(small).ravel() * (_BINS - 1)
    # a histogram, not a sort: ~10x cheaper at 1080p
    counts = np.bincount((y + 0.5).astype(np.int32), minlength=_BINS)
    cdf = np.cumsum(counts) / y.size
    idx = np.searchsorted(cdf, np.clip(LEVELS, 0.5 / y.size, 1.0 - 0.5 / y.size))
    return (idx / (_BINS - 1)).astype(np.float32), float(y.mean()) / (_BINS - 1)


@dataclass
class ToneMatch:
    """Maps enhanced frames onto plain brightening's shadows and mid-tones.

    Args:
        strength: fraction of the correction applied (0 off, 1 the whole way to plain brightening's
            levels up to ``upto``).
        upto: quantile above which the target fades linearly back to the output's own levels.
        smoothing: weight of the previous frames' correction in its running average (0: each
            frame's own curve).
    """

    strength: float = 1.0
    upto: float = 0.5
    smoothing: float = 0.9

    def __post_init__(self):
        check_tone_match(self.strength)
        # target weight per level: 1 up to ``upto``, then down to 0 at the brightest level
        self._weight = np.clip((1.0 - LEVELS) / max(1.0 - self.upto, 1e-6), 0, 1).astype(np.float32)
        self._lut = np.empty(256, dtype=np.uint8)
        self.carry: dict[str, np.ndarray] | None = None
        self.reset()

    @property
    def active(self) -> bool:
        return self.strength > 0

    def reset(self) -> None:
        """Start a video: from ``carry`` if a resumed run set it, else with no correction yet."""
        state, self.carry = self.carry or {}, None
        self._correction: np.ndarray | None = state.get("tone_correction")

    def state(self) -> dict[str, np.ndarray] | None:
        """What the next frame depends on, for a resumable run to store (None before any frame)."""
        return None if self._correction is None else {"tone_correction": self._correction}

    def curve(self, out_q: np.ndarray, out_mean: float, in_q: np.ndarray, in_mean: float) -> np.ndarray:
        """The 256-entry look-up table (0-1 scale) for one frame, from its output's and its input's
        ``luma_quantiles``; moves the running correction on."""
        # plain brightening's quantiles: scaling and clipping are monotone, so they are the input's scaled
        plain = np.clip(in_q * (out_mean / max(in_mean, 1e-6)), 0.0, 1.0)
        d = self._weight * (plain - out_q)
        s = self.smoothing
        self._correction = d if self._correction is None else s * self._correction + (1 - s) * d
        # knots at 0 and 1 too: a channel can go below the darkest luma or above the brightest
        # (saturated colours); strictly increasing knots for interpolation, a monotone target
        knots = np.concatenate([[0.0], out_q, [1.0]])
        knots = np.maximum.accumulate(knots + np.arange(len(knots)) * 1e-6)
        target = np.maximum.accumulate(np.concatenate([[0.0], out_q + self.strength * self._correction, [1.0]]))
        return np.interp(np.arange(256, dtype=np.float32) / 255.0, knots, target)

    def __call__(self, out: np.ndarray, in_stats: tuple[np.ndarray, float]) -> np.ndarray:
        """Map one (H, W, 3) uint8 output frame; ``in_stats`` is ``luma_quantiles`` of its input
        frame. Works in place where it can: use the returned frame."""
        if not self.active:
            return out
        lut = self.curve(*luma_quantiles(out), *in_stats)
        self._lut[:] = np.clip(lut * 255.0 + 0.5, 0, 255)
        # the same table for each channel; in place where the layout allows (the Enhancer's frames
        # come channel-strided from the network's output)
        return cv2.LUT(out, self._lut, dst=out) if out.flags.c_contiguous else cv2.LUT(out, self._lut)
