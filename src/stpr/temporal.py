"""Recursive temporal filter for enhanced video: each output frame is blended with the previous
filtered frame warped onto it along optical flow, where the two agree.

The network sees a window of T frames (3 by default), so whatever changes more slowly than the
window lets it see (grain it could not remove, a local tone that follows each frame's blur,
compression blotches that move from frame to frame) reaches the output as flicker. A recursive
blend reaches back over many frames for the price of one small optical flow, one warp and a few
element-wise passes per frame. Where the warped previous frame disagrees with the current one
(motion the flow missed, occlusion, a cut) the weight falls to zero, so moving content is not
smeared. The coarse picture (above ``detail_sigma``) is blended with the full weight, the fine
detail with 0.3 of it: every warp interpolates, and a recursion of warps at the full weight would
blur the fine detail.

Measured in docs/research/real-footage.md §21 and, on long real footage, §47 and §49
(``experiments/temporal_filter_probe.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stpr.errors import UsageError
from stpr.models.flow_arch import dis_flow, remap_backward

# Work size of the flow and of the agreement test (the longer side in pixels), and the flow's DIS
# preset: `medium` at 480 follows motion of several pixels a frame that `fast` at 320 missed, and
# with it a wider tolerance holds `city` (real-footage §49; the whole filter then takes ~28 ms a
# frame at 640x360 and ~41 ms at 1080p on a 2-core Xeon, against ~9 and ~35 before).
FLOW_SIDE = 480
FLOW_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
DEFAULT_FLOW_PRESET = "medium"
DEFAULT_TOLERANCE = 0.12
# Named settings of the flow and the tolerance that goes with it (a wider tolerance needs a flow
# that follows the motion, §49): "medium" is the default; "fast" is §47's, which the shipped fast
# model keeps, where speed comes first (~9 ms a frame at 640x360 against ~28).
FLOW_SETTINGS = {"medium": {"flow_preset": "medium", "flow_side": FLOW_SIDE, "tolerance": DEFAULT_TOLERANCE},
                 "fast": {"flow_preset": "fast", "flow_side": 320, "tolerance": 0.08}}
# Pixels of the full-resolution blend done at once: frames up to 1080p in one go, larger ones in
# stripes, which bounds the float copies (at 4K a whole frame's blend fields would take 200 MB).
STRIPE_PIXELS = 1920 * 1088
DEFAULT_STRENGTH = 0.8
DEFAULT_DETAIL = 0.3
# Below this fraction of agreeing pixels the frame is taken for a new shot and passes unfiltered.
CUT_AGREEMENT = 0.25


def flow_settings(name: str) -> dict:
    """The ``TemporalFilter`` keyword arguments of one of ``FLOW_SETTINGS``."""
    if name not in FLOW_SETTINGS:
        raise UsageError(f"temporal filter flow must be one of {', '.join(FLOW_SETTINGS)}, got {name!r}")
    return dict(FLOW_SETTINGS[name])


def check_strength(strength: float) -> float:
    """The ``--temporal-filter`` value, or UsageError (exit 2) outside [0, 1)."""
    if not 0 <= strength < 1:
        raise UsageError(f"--temporal-filter must be in [0, 1) (0 turns it off), got {strength}")
    return strength


@dataclass
class TemporalFilter:
    """Flow-guided recursive filter over a stream of enhanced (H, W, 3) uint8 frames.

    Args:
        strength: weight of the previous filtered frame where the two frames agree, for the coarse
            picture (0 turns the filter off).
        detail: the weight of the fine detail (below ``detail_sigma``) as a fraction of the coarse
            picture's; 0 leaves the detail to the current frame and skips the full-resolution warp
            (about half the filter's time at 1080p). The default 0.3 was chosen on long real dark
            videos (real-footage §47), where the fine grain is most of the remaining flicker.
        tolerance: mean difference of the two frames (0-1 scale, blurred, at the work size) at which
            the weight has fallen to 1/e: larger differences are taken for motion, not flicker.
        detail_sigma: Gaussian sigma (pixels of the frame) that splits coarse from fine.
        flow_side: longer side (pixels) of the copies the flow and the agreement test run on.
        flow_preset: OpenCV DIS preset of that flow, one of ``FLOW_PRESETS``.
    """

    strength: float = DEFAULT_STRENGTH
    detail: float = DEFAULT_DETAIL
    tolerance: float = DEFAULT_TOLERANCE
    detail_sigma: float = 2.0
    flow_side: int = FLOW_SIDE
    flow_preset: str = DEFAULT_FLOW_PRESET

    def __post_init__(self):
        check_strength(self.strength)
        if not 0.0 <= self.detail <= 1.0:
            raise ValueError(f"temporal filter detail must be in [0, 1], got {self.detail}")
        if not self.tolerance > 0:
            raise ValueError(f"temporal filter tolerance must be > 0, got {self.tolerance}")
        if self.flow_preset not in FLOW_PRESETS:
            raise ValueError(f"temporal filter flow preset must be one of {', '.join(FLOW_PRESETS)}, got {self.flow_preset!r}")
        self._buffers: dict = {}
        # The state a resumed run starts from (``--resume``: the end of its last segment).
        self.carry: dict[str, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        """Start a video: from ``carry`` if a resumed run set it, else with no previous frame."""
        state, self.carry = self.carry or {}, None
        self._prev: np.ndarray | None = state.get("prev")    # (H, W, 3) uint8: the last filtered frame
        self._prev_gray: np.ndarray | None = state.get("gray")  # the last *unfiltered* frame's gray, work size
        # the last filtered frame at the work size (derived from ``prev``)
        self._prev_small = None if self._prev is None else self._shrink(self._prev)

    def state(self) -> dict[str, np.ndarray] | None:
        """What the next frame depends on, for a resumable run to store (None before any frame)."""
        if self._prev is None:
            return None
        return {"prev": self._prev, "gray": self._prev_gray}

    def _shrink(self, frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, self._small_size(*frame.shape[:2]), interpolation=cv2.INTER_AREA).astype(np.float32)

    @property
    def active(self) -> bool:
        return self.strength > 0

    def _small_size(self, h: int, w: int) -> tuple[int, int]:
        s = min(1.0, self.flow_side / max(h, w))
        return max(16, round(w * s)), max(16, round(h * s))

    def _buffer(self, key, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A scratch array kept between frames (reallocated when the shape changes)."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Filter the next frame of the stream: (H, W, 3) uint8 in, (H, W, 3) uint8 out."""
        if not self.active:
            return frame
        frame = np.ascontiguousarray(frame)  # (the network's output may come as a strided view)
        h, w = frame.shape[:2]
        size = self._small_size(h, w)
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).clip(0, 255).astype(np.uint8)
        if self._prev is None or self._prev.shape != frame.shape:
            out = frame
        else:
            out = self._blend(frame, small, gray, size)
        self._prev = out
        self._prev_small = self._shrink(out)
        self._prev_gray = gray
        return out

    def _blend(self, frame: np.ndarray, small: np.ndarray, gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = frame.shape[:2]
        # current -> previous, at the work size
        flow = dis_flow(gray, self._prev_gray, FLOW_PRESETS[self.flow_preset])
        delta = remap_backward(self._prev_small, flow)
        delta -= small  # warped previous minus current, at the work size
        # agreement, blurred so that leftover grain does not read as motion
        diff = np.abs(cv2.GaussianBlur(delta, (0, 0), 1.0)).mean(axis=2) * (1.0 / 255.0)
        agree = diff < self.tolerance
        if agree.mean() < CUT_AGREEMENT:  # a cut: nothing of the last shot carries over
            return frame
        weight = self.strength * np.exp(-np.square(diff * (1.0 / self.tolerance)))
        # pixels whose flow points outside the frame have nothing to blend with
        fx = flow[..., 0] + np.arange(size[0], dtype=np.float32)
        fy = flow[..., 1] + np.arange(size[1], dtype=np.float32)[:, None]
        weight[(fx < 0) | (fy < 0) | (fx > size[0] - 1) | (fy > size[1] - 1)] = 0.0
        sx, sy = w / size[0], h / size[1]
        # out = cur + weight * (coarse + detail * (warped - cur - coarse))
        #     = blend(cur, warped; weight * detail) + weight * (1 - detail) * coarse,
        # the coarse difference taken at the work size (no full-resolution blur)
        coarse = cv2.GaussianBlur(delta, (0, 0), max(self.detail_sigma / sx, 0.5))
        coarse *= (weight * (1.0 - self.detail))[..., None]
        fields = (coarse,)
        if self.detail > 0:  # the fine part needs the full-resolution warp
            fields += (np.ascontiguousarray(flow[..., 0] * sx), np.ascontiguousarray(flow[..., 1] * sy),
                       np.ascontiguousarray(weight * self.detail, dtype=np.float32))
        xs = np.arange(w, dtype=np.float32)[None, :]
        stripe = h if h * w <= STRIPE_PIXELS else max(1, STRIPE_PIXELS // w)
        col = np.broadcast_to((xs + 0.5) / sx - 0.5, (stripe, w))  # the work-size grid's x of each pixel
        out = np.empty(frame.shape, np.uint8)
        for r0 in range(0, h, stripe):
            r1 = min(h, r0 + stripe)
            n = r1 - r0
            ys = np.arange(r0, r1, dtype=np.float32)[:, None]
            # the fields at full resolution, into buffers kept between frames (fresh large arrays
            # cost more in page faults than the resizes themselves)
            up = [self._buffer(k, (stripe, w) + f.shape[2:], np.float32)[:n] for k, f in enumerate(fields)]
            if stripe == h:  # the whole frame at once: plain resizes
                for f, u in zip(fields, up):
                    cv2.resize(f, (w, h), dst=u, interpolation=cv2.INTER_LINEAR)
            else:
                row = np.broadcast_to((ys + 0.5) / sy - 0.5, (n, w))
                for f, u in zip(fields, up):
                    cv2.remap(f, col[:n], row, cv2.INTER_LINEAR, dst=u, borderMode=cv2.BORDER_REPLICATE)
            if self.detail == 0:
                cv2.add(frame[r0:r1], up[0], dst=out[r0:r1], dtype=cv2.CV_8U)  # rounds and saturates
                continue
            b, mx, my, a = up
            mx += xs  # where each pixel's previous position lies: (x + dx, y + dy)
            my += ys
            warped = cv2.remap(self._prev, mx, my, cv2.INTER_LINEAR, dst=self._buffer("warped", (stripe, w, 3), np.uint8)[:n],
                               borderMode=cv2.BORDER_REPLICATE)
            keep = np.subtract(1.0, a, out=self._buffer("keep", (stripe, w), np.float32)[:n])
            blended = cv2.blendLinear(frame[r0:r1], warped, keep, a, dst=self._buffer("blend", (stripe, w, 3), np.uint8)[:n])
            cv2.add(blended, b, dst=out[r0:r1], dtype=cv2.CV_8U)  # rounds and saturates
        return out
