"""Spatio-temporal feature reconstruction subnet.

Fuses the propagated neighbour detail (temporal) with the pyramid features of the centre frame
(spatial) and rebuilds the enhanced full-resolution frame as

    out = base(x) * exp(g_base + g_global + g_local) + residual              (sRGB gain)
    out = srgb(lin(base(x)) * exp(2.2 * (g_base + g_global + g_local))) + residual  (linear light)

* ``g_base = log(target / mean luma(frame))`` lifts any frame, however dark, to a normal exposure;
  ``target`` is learned.
* ``g_global`` (per colour channel, from whole-frame statistics) corrects exposure and colour cast.
  It sees only statistics of the *whole* frame, so tiles of one frame get the same gain.
* ``g_local`` (a smooth map predicted at 1/4 resolution) lifts shadows more than highlights.
* ``base(x)`` is the centre frame itself or, with ``pixel_fusion``, a per-pixel blend of the centre
  and its aligned neighbours. The blend logits start from the propagation subnet's fusion weights and
  are corrected by a small head that sees the fused features and each frame's alignment error: static
  regions average T frames (noise down by up to sqrt(T)), moving or occluded ones keep the centre.
* ``residual`` (pixel-shuffled from 1/4-resolution features) removes noise and restores detail.
* ``recurrent`` (optional): the previous output frame's blended base image, aligned, stands in for
  the previous raw frame, and each frame's blend logit gets ``count_scale * log(n)``, n being the
  number of frames already averaged into it (1 for a raw frame). An inverse-variance prior
  (``count_scale`` starts at 1): static regions keep averaging the history (up to ``max_count``
  frames; every warp resamples it, a slight blur, so it must keep being refreshed) at the cost of
  one extra neighbour, misaligned ones fall back to the window.
* ``refine`` (optional, a 3-layer full-resolution head) corrects that output from the output itself
  and the brightened base image, so full-resolution detail of the (temporally blended) pixels can
  reach the output; the 1/4-resolution residual can only paint 4x4 blocks from features.

With ``linear_light`` the gain is applied in linear light, where exposure is a plain scale and
sensor noise is zero-mean; an sRGB-domain gain instead keeps the noise's upward bias in the shadows
(lifted blacks) and flattens contrast. The gains keep their sRGB-log scale (times ``GAMMA``), so a
model trained with sRGB gains is a close starting point. ``base(x)`` is then a linear-light image.

The last layers start at zero, so an untrained model returns the plainly brightened input.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import act, conv3x3, linear_to_srgb, srgb_to_linear

# Gains are predicted in sRGB-log units; linear light scales them by this display gamma.
GAMMA = 2.2


class STReconstruction(nn.Module):
    """Args:
        channels: C, feature channels at 1/4 resolution.
        target_mean: initial target mean brightness for the base gain.
        max_gain: upper bound of the base gain (keeps black frames from exploding).
        pixel_fusion: blend aligned neighbour frames into the base image.
        linear_light: apply the gain in linear light (base image and aligned frames are linear).
        refine_channels: width of the full-resolution refinement head (0: none).
        recurrent: weight each blended frame by the frames already averaged into it (see above).
        max_count: cap on that count.
    """

    def __init__(self, channels: int, target_mean: float = 0.4, max_gain: float = 60.0,
                 pixel_fusion: bool = False, linear_light: bool = False, refine_channels: int = 0,
                 recurrent: bool = False, max_count: float = 8.0):
        super().__init__()
        c = channels
        self.max_gain = max_gain
        self.linear_light = linear_light
        self.body = nn.Sequential(conv3x3(2 * c, c), act(), conv3x3(c, c), act())
        self.residual = conv3x3(c, 3 * 16)
        self.local_gain = conv3x3(c, 1)
        self.global_gain = nn.Sequential(nn.Linear(5, 32), act(), nn.Linear(32, 3))
        self.target_log = nn.Parameter(torch.tensor(math.log(target_mean)))
        zero_init = [self.residual, self.local_gain, self.global_gain[-1]]
        self.blend = None
        if pixel_fusion:
            # logit correction per frame from [fused features, log fusion weight, alignment error]
            self.blend = nn.Sequential(conv3x3(c + 2, 16), act(), conv3x3(16, 1))
            zero_init.append(self.blend[-1])
        self.count_scale = nn.Parameter(torch.tensor(1.0)) if recurrent and pixel_fusion else None
        self.max_count = max_count
        self.refine = None
        if refine_channels:
            # full-resolution correction from [output so far, brightened base image]
            r = refine_channels
            self.refine = nn.Sequential(nn.Conv2d(6, r, 3, padding=1), act(), conv3x3(r, r), act(), conv3x3(r, 3))
            zero_init.append(self.refine[-1])
        for layer in zero_init:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def blend_frames(self, feats: torch.Tensor, weights: torch.Tensor,
                     aligned: list[tuple[torch.Tensor, torch.Tensor]],
                     log_counts: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel blend of the centre and its aligned neighbours.

        Args:
            feats: (B, C, h, w) fused features.
            weights: (B, T, h, w) propagation fusion weights (centre first).
            aligned: T pairs (frame (B, 3, H, W), alignment error (B, 1, h, w)), centre first; the
                frames are linear light when ``linear_light``.
            log_counts: recurrent models: T maps (B, 1, h, w), log of the frames averaged into each.

        Returns:
            blend: (B, 3, H, W).
            log_count: recurrent models (None otherwise): (B, 1, h, w) log of the blend's effective
                frame count, 1 / sum(b_t^2 / n_t) for independent frames (capped at ``max_count``).
        """
        recurrent = self.count_scale is not None
        if len(aligned) == 1:
            return aligned[0][0], torch.zeros_like(weights) if recurrent else None
        logw = torch.log(weights + 1e-4)
        logits = torch.cat([logw[:, t:t + 1] + self.blend(torch.cat([feats, logw[:, t:t + 1], err], dim=1))
                            for t, (_, err) in enumerate(aligned)], dim=1)
        log_count = None
        if recurrent:
            counts = torch.cat(log_counts, dim=1)
            probs = torch.softmax(logits + self.count_scale * counts, dim=1)
            log_count = -torch.log((probs.square() * torch.exp(-counts)).sum(dim=1, keepdim=True))
            log_count = log_count.clamp(max=math.log(self.max_count))
        else:
            probs = torch.softmax(logits, dim=1)
        size = aligned[0][0].shape[-2:]
        b = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        return sum(b[:, t:t + 1] * frame for t, (frame, _) in enumerate(aligned)), log_count

    def forward(self, x: torch.Tensor, stats: torch.Tensor, propagated: torch.Tensor,
                pyramid: torch.Tensor, weights: torch.Tensor | None = None,
                aligned: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                log_counts: list[torch.Tensor] | None = None, return_base: bool = False):
        """Args:
            x: (B, 3, H, W) centre frame in [0, 1] (H, W divisible by 4).
            stats: (B, 6) whole-frame statistics (``frame_stats``).
            propagated: (B, C, H/4, W/4) from the feature propagation subnet.
            pyramid: (B, C, H/4, W/4) from the pyramid recursive residual dense subnet.
            weights: (B, T, H/4, W/4) propagation fusion weights; used with ``pixel_fusion``.
            aligned: see ``blend_frames``; with ``pixel_fusion`` the blend replaces ``x`` as base.
            log_counts: see ``blend_frames``.
            return_base: recurrent models: also return the base image (sRGB, the centre's
                exposure) and its log frame count, the state handed to the next frame.

        Returns:
            (B, 3, H, W) enhanced frame (not clamped); with ``return_base`` a tuple
            (frame, base (B, 3, H, W), log_count (B, 1, H/4, W/4)).
        """
        feats = self.body(torch.cat([propagated, pyramid], dim=1))
        log_count = None
        if self.blend is not None and aligned is not None:
            x, log_count = self.blend_frames(feats, weights, aligned, log_counts)
        elif self.linear_light:
            x = srgb_to_linear(x)
        if return_base:
            base_srgb = linear_to_srgb(x.clamp(min=0.0)) if self.linear_light else x
            return self._reconstruct(x, stats, feats), base_srgb, log_count
        return self._reconstruct(x, stats, feats)

    def _reconstruct(self, x: torch.Tensor, stats: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Gain and residual on the base image ``x`` (linear when ``linear_light``)."""
        # exposure: whole-frame mean luma (sRGB, or linear light brought to the same log scale)
        mean_log = stats[:, 5] / GAMMA if self.linear_light else stats[:, 3]
        base = (self.target_log - mean_log).clamp(max=math.log(self.max_gain)).view(-1, 1, 1, 1)
        g_global = self.global_gain(stats[:, :5])[:, :, None, None]
        g_local = F.interpolate(self.local_gain(feats), size=x.shape[-2:], mode="bilinear", align_corners=False)
        residual = F.pixel_shuffle(self.residual(feats), 4)
        out = self._apply_gain(x, base + g_global + g_local) + residual
        if self.refine is None:
            return out
        # The base image brightened by the whole-frame gains only: full-resolution detail (T-frame
        # averaged with pixel fusion) that the 1/4-resolution residual cannot carry.
        bright = self._apply_gain(x, base + g_global).clamp(0.0, 1.0)
        return out + self.refine(torch.cat([out, bright], dim=1))

    def _apply_gain(self, x: torch.Tensor, log_gain: torch.Tensor) -> torch.Tensor:
        """sRGB image of the base image ``x`` times ``exp(log_gain)`` (sRGB-log units), the gain
        taken in linear light (``x`` linear) or on the sRGB values."""
        if self.linear_light:
            return linear_to_srgb(x * torch.exp(GAMMA * log_gain))
        return x * torch.exp(log_gain)
