"""Spatio-temporal feature reconstruction subnet.

Fuses the propagated neighbour detail (temporal) with the pyramid features of the centre frame
(spatial) and rebuilds the enhanced full-resolution frame as

    out = base(x) * exp(g_base + g_global + g_local) + residual

* ``g_base = log(target / mean luma(frame))`` lifts any frame, however dark, to a normal exposure;
  ``target`` is learned.
* ``g_global`` (per colour channel, from whole-frame statistics) corrects exposure and colour cast.
  It sees only statistics of the *whole* frame, so tiles of one frame get the same gain.
* ``g_local`` (a smooth map predicted at 1/4 resolution) lifts shadows more than highlights.
  Optional (``local_gain``; without it the gain is one per colour channel), so that a study can
  take it away (docs/research/real-footage.md sections 34-35).
* ``base(x)`` is the centre frame itself or, with ``pixel_fusion``, a per-pixel blend of the centre
  and its aligned neighbours. The blend logits start from the propagation subnet's fusion weights and
  are corrected by a small head that sees the fused features and each frame's alignment error: static
  regions average T frames (noise down by up to sqrt(T)), moving or occluded ones keep the centre.
* ``residual`` (pixel-shuffled from 1/4-resolution features) removes noise and restores detail.
* With ``looks`` > 1 the model has several tone "looks" (e.g. natural footage and LOL's ground
  truths): a learned vector per look is added to the fused features and a learned log gain per
  look and colour channel to ``g_global``, so one trunk restores and the look picks the tone.

The last layers start at zero, so an untrained model returns the plainly brightened input.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import act, cat_channels, conv3x3
from stpr.models.fused import Tail, compose


class STReconstruction(nn.Module):
    """Args:
        channels: C, feature channels at 1/4 resolution.
        target_mean: initial target mean brightness for the base gain.
        max_gain: upper bound of the base gain (keeps black frames from exploding).
        pixel_fusion: blend aligned neighbour frames into the base image.
        looks: number of tone looks (0 or 1: one look, no look inputs).
        local_gain: predict the local gain map ``g_local`` (False: ``g_local = 0``).
    """

    def __init__(self, channels: int, target_mean: float = 0.4, max_gain: float = 60.0,
                 pixel_fusion: bool = False, looks: int = 0, local_gain: bool = True):
        super().__init__()
        c = channels
        self.max_gain = max_gain
        self.body = nn.Sequential(conv3x3(2 * c, c), act(), conv3x3(c, c), act())
        self.residual = conv3x3(c, 3 * 16)
        self.local_gain = conv3x3(c, 1) if local_gain else None
        self.global_gain = nn.Sequential(nn.Linear(5, 32), act(), nn.Linear(32, 3))
        self.target_log = nn.Parameter(torch.tensor(math.log(target_mean)))
        zero_init = [self.residual, self.global_gain[-1]] + ([self.local_gain] if local_gain else [])
        self.blend = None
        if pixel_fusion:
            # logit correction per frame from [fused features, log fusion weight, alignment error]
            self.blend = nn.Sequential(conv3x3(c + 2, 16), act(), conv3x3(16, 1))
            zero_init.append(self.blend[-1])
        for layer in zero_init:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.look_feats = self.look_gain = None
        if looks > 1:  # zero: every look starts as the same tone
            self.look_feats = nn.Parameter(torch.zeros(looks, 2 * c))
            self.look_gain = nn.Parameter(torch.zeros(looks, 3))

    def blend_frames(self, feats: torch.Tensor, weights: torch.Tensor,
                     aligned: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Per-pixel blend of the centre and its aligned neighbours.

        Args:
            feats: (B, C, h, w) fused features.
            weights: (B, T, h, w) propagation fusion weights (centre first).
            aligned: T pairs (frame (B, 3, H, W), alignment error (B, 1, h, w)), centre first.

        Returns:
            (B, 3, H, W) the blend.
        """
        if len(aligned) == 1:
            return aligned[0][0]
        logw = torch.log(weights + 1e-4)
        logits = torch.cat([logw[:, t:t + 1] + self.blend(cat_channels([feats, logw[:, t:t + 1], err]))
                            for t, (_, err) in enumerate(aligned)], dim=1)
        probs = torch.softmax(logits, dim=1)
        size = aligned[0][0].shape[-2:]
        b = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        return sum(b[:, t:t + 1] * frame for t, (frame, _) in enumerate(aligned))

    def forward(self, x: torch.Tensor, stats: torch.Tensor, propagated: torch.Tensor,
                pyramid: torch.Tensor, weights: torch.Tensor | None = None,
                aligned: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                look: torch.Tensor | None = None, tail: bool = False) -> torch.Tensor | Tail:
        """Args:
            x: (B, 3, H, W) centre frame in [0, 1] (H, W divisible by 4).
            stats: (B, 6) whole-frame statistics (``frame_stats``).
            propagated: (B, C, H/4, W/4) from the feature propagation subnet.
            pyramid: (B, C, H/4, W/4) from the pyramid recursive residual dense subnet.
            weights: (B, T, H/4, W/4) propagation fusion weights; used with ``pixel_fusion``.
            aligned: see ``blend_frames``; with ``pixel_fusion`` the blend replaces ``x`` as base.
            look: (B,) int64 look index per sample, with ``looks`` > 1 (None: look 0).
            tail: stop before the full-resolution step and return it as a :class:`Tail` (whose
                ``float()`` is this output clamped to [0, 1]); ``x`` may then be uint8.

        Returns:
            (B, 3, H, W) enhanced frame (not clamped), or its ``Tail``.
        """
        fused = cat_channels([propagated, pyramid])
        if self.look_feats is not None:
            if look is None:
                look = torch.zeros(fused.shape[0], dtype=torch.long, device=fused.device)
            fused = fused + self.look_feats[look][:, :, None, None].to(fused.dtype)
        feats = self.body(fused)
        if self.blend is not None and aligned is not None:
            x = self.blend_frames(feats, weights, aligned)
        base = (self.target_log - stats[:, 3]).clamp(max=math.log(self.max_gain)).view(-1, 1, 1, 1)
        g_global = self.global_gain(stats[:, :5])
        if self.look_gain is not None:
            g_global = g_global + self.look_gain[look]
        g_global = g_global[:, :, None, None]
        gain = torch.exp(base + g_global).float()
        local = self.local_gain(feats) if self.local_gain is not None else None
        if tail:
            return Tail(self.residual(feats), x, gain, local)
        return compose(self.residual(feats), x, gain, local)
