"""Feature propagation subnet.

Every frame is encoded once (``FrameEncoder``) into features at 1/4 resolution. For a centre
frame, the high-frequency part of each neighbour's features (features minus their low-pass) is
warped to the centre along the flow and fused with a per-pixel softmax whose logits come from

* alignment confidence: a small net that sees the centre features, the warped neighbour features,
  the photometric error of the warped (brightness-normalised) neighbour and the flow validity mask;
* brightness: the difference in local log-brightness, so better-exposed neighbours give more detail.

The centre frame takes part in the softmax too, so with no useful neighbour the subnet falls back to
the centre's own detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import act, conv3x3, gaussian_blur3, luma
from stpr.models.warp import flow_grid, flow_warp, grid_validity_mask


@dataclass
class PropagationConfig:
    """Args:
        channels: feature channels at 1/4 resolution.
        hf_split: propagate only the high-frequency part of neighbour features (False: all of it).
        brightness_weight: add the brightness term to the fusion logits.
        feature_fusion: fuse the warped neighbour features into the propagated features (False:
            the fusion weights are still computed, for the pixel fusion, but the propagated
            features are the centre's own, as for T = 1).
    """

    channels: int = 32
    hf_split: bool = True
    brightness_weight: bool = True
    feature_fusion: bool = True


class FrameEncoder(nn.Module):
    """Per-frame features at 1/4 resolution.

    Args:
        channels: output channels.

    Input: x (B, 3, H, W) in [0, 1] and its brightness-normalised copy x_norm (B, 3, H, W).
    Output: (B, channels, H/4, W/4).
    """

    def __init__(self, channels: int):
        super().__init__()
        # pixel_unshuffle keeps every input pixel: detail survives the move to 1/4 resolution.
        self.body = nn.Sequential(nn.Conv2d(6 * 16, channels, 3, padding=1), act(),
                                  conv3x3(channels, channels), act())

    def forward(self, x: torch.Tensor, x_norm: torch.Tensor) -> torch.Tensor:
        return self.body(F.pixel_unshuffle(torch.cat([x, x_norm], dim=1), 4))


def log_brightness(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Local log-brightness at 1/4 resolution. (B, 3, H, W) -> (B, 1, H/4, W/4)."""
    return torch.log(F.avg_pool2d(luma(x), 4) + eps)


class FeaturePropagation(nn.Module):
    """Warp neighbour detail to the centre frame and fuse it.

    Args:
        cfg: PropagationConfig.
    """

    def __init__(self, cfg: PropagationConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PropagationConfig()
        c = cfg.channels
        # confidence logit from [centre feats, warped feats, photometric error, validity]
        self.confidence = nn.Sequential(conv3x3(2 * c + 2, 16), act(), conv3x3(16, 1))
        self.brightness_gain = nn.Parameter(torch.tensor(1.0))
        self.fuse = nn.Sequential(conv3x3(2 * c, c), act())

    def detail(self, feats: torch.Tensor) -> torch.Tensor:
        return feats - gaussian_blur3(feats) if self.cfg.hf_split else feats

    def forward(self, center_feats: torch.Tensor, center_norm_small: torch.Tensor, center_logb: torch.Tensor,
                nbr_feats: list[torch.Tensor], nbr_norm_small: list[torch.Tensor], nbr_logb: list[torch.Tensor],
                flows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Args:
            center_feats: (B, C, h, w) centre features (h, w = H/4, W/4).
            center_norm_small: (B, 3, h, w) brightness-normalised centre frame at 1/4 resolution.
            center_logb: (B, 1, h, w) centre local log-brightness.
            nbr_feats, nbr_norm_small, nbr_logb: the same for each of the N neighbours.
            flows: N flows (B, 2, h, w), centre -> neighbour.

        Returns:
            propagated: (B, C, h, w) fused features.
            weights: (B, N + 1, h, w) fusion weights (centre first).
            errors: N + 1 maps (B, 1, h, w), photometric error of each warped, brightness-normalised
                frame against the centre (centre first, zero), reused by pixel fusion.
        """
        details = [self.detail(center_feats)]
        zero = center_norm_small.new_zeros(center_norm_small.shape[0], 1, *center_norm_small.shape[-2:])
        logits = [self.confidence(torch.cat([center_feats, center_feats, zero, zero + 1], dim=1))]
        errors = [zero]
        c = center_feats.shape[1]
        for feats, norm_small, logb, flow in zip(nbr_feats, nbr_norm_small, nbr_logb, flows):
            # one sampling grid and one warp for the features, the image and the brightness
            grid = flow_grid(flow.float())
            warped = flow_warp(torch.cat([feats.float(), norm_small.float(), logb.float()], dim=1), grid=grid)
            warped_feats, warped_img, warped_logb = warped[:, :c], warped[:, c:c + 3], warped[:, c + 3:]
            err = (warped_img - center_norm_small).abs().mean(dim=1, keepdim=True)
            errors.append(err)
            valid = grid_validity_mask(grid)
            logit = self.confidence(torch.cat([center_feats, warped_feats, err, valid], dim=1))
            if self.cfg.brightness_weight:
                logit = logit + self.brightness_gain * (warped_logb - center_logb)
            # Samples from outside the neighbour carry nothing: push their weight to ~0.
            logits.append(logit - 20.0 * (1.0 - valid))
            if self.cfg.feature_fusion:
                # whole features are the ones already warped for the confidence net
                details.append(flow_warp(self.detail(feats), grid=grid) if self.cfg.hf_split else warped_feats)
        weights = torch.softmax(torch.cat(logits, dim=1), dim=1)
        if self.cfg.feature_fusion:
            fused = (torch.stack(details, dim=1) * weights.unsqueeze(2)).sum(dim=1)
        else:
            fused = details[0]
        return self.fuse(torch.cat([fused, center_feats], dim=1)), weights, errors
