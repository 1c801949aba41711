"""Pyramid recursive residual dense subnet.

Multi-scale features of the centre frame (1/4, 1/8, 1/16 of the input by default). At each scale a
residual dense block is applied ``recursions`` times with the *same* weights (recursion buys depth
and receptive field without parameters); scales are fused coarse to fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stpr.models.common import act, cat_channels, conv3x3, upsample2


@dataclass
class PRRDConfig:
    """Args:
        channels: feature channels (same at every scale).
        scales: pyramid scales (>= 3 for the default model).
        recursions: R, how many times each scale's block is applied.
        growth: dense growth rate inside a block.
        layers: dense layers per block.
    """

    channels: int = 32
    scales: int = 3
    recursions: int = 2
    growth: int = 16
    layers: int = 3


class ResidualDenseBlock(nn.Module):
    """Residual dense block (Zhang et al. 2018): densely connected 3x3 convs, 1x1 local fusion,
    local residual. (B, C, H, W) -> (B, C, H, W).

    Args:
        channels: C.
        growth: channels added by each dense layer.
        layers: number of dense layers.
    """

    def __init__(self, channels: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv3x3(channels + i * growth, growth), act()) for i in range(layers)
        )
        self.local_fusion = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(cat_channels(feats)))
        return x + self.local_fusion(cat_channels(feats))


class PyramidRecursiveRDN(nn.Module):
    """Args:
        cfg: PRRDConfig.

    Input: (B, C, h, w) with h, w divisible by 2^(scales-1).
    Output: (B, C, h, w).
    """

    def __init__(self, cfg: PRRDConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PRRDConfig()
        c = cfg.channels
        self.downs = nn.ModuleList(nn.Sequential(conv3x3(c, c, stride=2), act()) for _ in range(cfg.scales - 1))
        self.blocks = nn.ModuleList(ResidualDenseBlock(c, cfg.growth, cfg.layers) for _ in range(cfg.scales))
        self.fusions = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for _ in range(cfg.scales - 1))

    def recurse(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.cfg.recursions):
            x = block(x)  # shared weights across recursions
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = [x]
        for down in self.downs:
            enc.append(down(enc[-1]))
        out = self.recurse(self.blocks[-1], enc[-1])
        for k in range(self.cfg.scales - 2, -1, -1):
            merged = self.fusions[k](cat_channels([enc[k], upsample2(out, enc[k].shape[-2:])]))
            out = self.recurse(self.blocks[k], merged)
        return out
