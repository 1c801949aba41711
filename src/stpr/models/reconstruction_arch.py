"""Spatio-temporal feature reconstruction subnet.

Fuses the propagated neighbour detail (temporal) with the pyramid features of the centre frame
(spatial) and rebuilds the enhanced full-resolution frame as

    out = x * exp(g_base + g_global + g_local) + residual

* ``g_base = log(target / mean luma(frame))`` lifts any frame, however dark, to a normal exposure;
  ``target`` is learned.
* ``g_global`` (per colour channel, from whole-frame statistics) corrects exposure and colour cast.
  It sees only statistics of the *whole* frame, so tiles of one frame get the same gain.
* ``g_local`` (a smooth map predicted at 1/4 resolution) lifts shadows more than highlights.
* ``residual`` (pixel-shuffled from 1/4-resolution features) removes noise and restores detail.

The last layers start at zero, so an untrained model returns the plainly brightened input.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import act, conv3x3


class STReconstruction(nn.Module):
    """Args:
        channels: C, feature channels at 1/4 resolution.
        target_mean: initial target mean brightness for the base gain.
        max_gain: upper bound of the base gain (keeps black frames from exploding).
    """

    def __init__(self, channels: int, target_mean: float = 0.4, max_gain: float = 60.0):
        super().__init__()
        c = channels
        self.max_gain = max_gain
        self.body = nn.Sequential(conv3x3(2 * c, c), act(), conv3x3(c, c), act())
        self.residual = conv3x3(c, 3 * 16)
        self.local_gain = conv3x3(c, 1)
        self.global_gain = nn.Sequential(nn.Linear(5, 32), act(), nn.Linear(32, 3))
        self.target_log = nn.Parameter(torch.tensor(math.log(target_mean)))
        for layer in (self.residual, self.local_gain, self.global_gain[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, stats: torch.Tensor, propagated: torch.Tensor,
                pyramid: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, 3, H, W) centre frame in [0, 1] (H, W divisible by 4).
            stats: (B, 5) whole-frame statistics (``frame_stats``).
            propagated: (B, C, H/4, W/4) from the feature propagation subnet.
            pyramid: (B, C, H/4, W/4) from the pyramid recursive residual dense subnet.

        Returns:
            (B, 3, H, W) enhanced frame (not clamped).
        """
        feats = self.body(torch.cat([propagated, pyramid], dim=1))
        base = (self.target_log - stats[:, 3]).clamp(max=math.log(self.max_gain)).view(-1, 1, 1, 1)
        g_global = self.global_gain(stats)[:, :, None, None]
        g_local = F.interpolate(self.local_gain(feats), size=x.shape[-2:], mode="bilinear", align_corners=False)
        residual = F.pixel_shuffle(self.residual(feats), 4)
        return x * torch.exp(base + g_global + g_local) + residual
