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

from stpr.models.common import act, cat_channels, conv3x3, gaussian_blur3, luma
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


class StridedFrameEncoder(nn.Module):
    """Per-frame features at 1/4 resolution for the ``fast`` model: a 4x4 stride-4 convolution of the
    brightness-normalised frame (no full-resolution rearrangement, which costs more here than the
    convolution itself), told how dark the frame was (its noise level) through a learned bias per
    channel times the frame's log mean luma.

    Args:
        channels: output channels.

    Input: x_norm (B, 3, H, W) brightness-normalised frame; level (B,) log mean luma of the raw frame.
    Output: (B, channels, H/4, W/4).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 4, stride=4)
        self.level = nn.Parameter(torch.zeros(channels))
        self.body = nn.Sequential(act(), conv3x3(channels, channels), act())

    def forward(self, x_norm: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        y = self.stem(x_norm)
        return self.body(y + self.level.view(1, -1, 1, 1) * level.view(-1, 1, 1, 1).to(y.dtype))


def log_brightness(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Local log-brightness at 1/4 resolution. (B, 3, H, W) -> (B, 1, H/4, W/4).
    Luma of the pooled frame (the same as pooled luma: both are linear), so the only full-resolution
    work is the pooling."""
    return log_brightness_pooled(F.avg_pool2d(x, 4), eps)


def log_brightness_pooled(pooled: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``log_brightness`` from the frame's 1/4 average (B, 3, H/4, W/4) -> (B, 1, H/4, W/4)."""
    return torch.log(luma(pooled) + eps)


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

    def _confidence(self, center_feats: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Confidence logits of K frames: ``self.confidence`` of [centre features, row] for each
        row, with the first convolution split in two so that its centre-features part, the same
        for every row, is computed once (the first layer's cost falls by almost half).

        Args:
            center_feats: (B, C, h, w).
            rows: (K * B, C + 2, h, w) [frame features, photometric error, validity] per frame.

        Returns:
            (K * B, 1, h, w).
        """
        first = self.confidence[0]
        c = center_feats.shape[1]
        shared = F.conv2d(center_feats, first.weight[:, :c], first.bias, padding=1)
        own = F.conv2d(rows, first.weight[:, c:], None, padding=1)
        k = rows.shape[0] // center_feats.shape[0]
        pre = (own.unflatten(0, (k, -1)) + shared).flatten(0, 1)
        return self.confidence[1:](pre)

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
        b, c = center_feats.shape[:2]
        n = len(nbr_feats)
        zero = center_norm_small.new_zeros(b, 1, *center_norm_small.shape[-2:])
        zero_f = center_feats.new_zeros(zero.shape)  # in the features' dtype, so the cat stays in it
        # the centre's row of the confidence net beside the shared centre features (``_confidence``):
        # its own features as the frame's, no error, valid
        centre_in = cat_channels([center_feats, zero_f, zero_f + 1])
        if n == 0:
            weights = torch.softmax(self._confidence(center_feats, centre_in), dim=1)
            return self.fuse(cat_channels([self.detail(center_feats), center_feats])), weights, [zero]
        # The N neighbours go through the network as one batch (N * B): one sampling grid and one
        # warp for their features, images and brightness, one call of the confidence net for all
        # N + 1 frames. Few large calls cost less here than many small ones.
        grid = flow_grid(torch.cat(flows).float())
        # (channels-last where the features are: grid_sample reads it faster on a CPU)
        src = cat_channels([torch.cat(nbr_feats).float(), torch.cat(nbr_norm_small).float(),
                            torch.cat(nbr_logb).float()])
        warped = flow_warp(src, grid=grid)
        # The features' own dtype from here on (bfloat16 under autocast): the confidence net's and the
        # fusion's inputs are built at half the bytes and reach the convolutions without a cast.
        dt = center_feats.dtype
        warped_feats, warped_img, warped_logb = warped[:, :c].to(dt), warped[:, c:c + 3], warped[:, c + 3:]
        err = (warped_img - center_norm_small.float().repeat(n, 1, 1, 1)).abs().mean(dim=1, keepdim=True)
        valid = grid_validity_mask(grid)
        nbr_in = cat_channels([warped_feats, err.to(dt), valid.to(dt)], like=center_feats)
        logit = self._confidence(center_feats, torch.cat([centre_in, nbr_in]))
        centre_logit, logit = logit[:b], logit[b:]
        if self.cfg.brightness_weight:
            logit = logit + self.brightness_gain * (warped_logb - center_logb.repeat(n, 1, 1, 1))
        # Samples from outside the neighbour carry nothing: push their weight to ~0.
        logit = logit - 20.0 * (1.0 - valid)
        # (N * B, 1, h, w) -> (B, N, h, w), neighbour order kept
        logits = torch.cat([centre_logit, logit.view(n, b, *logit.shape[-2:]).transpose(0, 1)], dim=1)
        weights = torch.softmax(logits, dim=1)
        errors = [zero, *err.chunk(n)]
        if self.cfg.feature_fusion:
            # whole features are the ones already warped for the confidence net
            nbr_detail = flow_warp(self.detail(torch.cat(nbr_feats)), grid=grid) if self.cfg.hf_split else warped_feats
            # sum_t weight_t * detail_t as multiply-adds, without a (B, T, C, h, w) product tensor
            w = weights.to(dt)
            # in the default layout, the warps' and weights': a channels-last product with a
            # one-channel weight map is ~5x slower on a CPU
            fused = self.detail(center_feats).contiguous() * w[:, :1]
            for k, d in enumerate(nbr_detail.to(dt).chunk(n)):
                fused = torch.addcmul(fused, d, w[:, 1 + k:2 + k])
        else:
            fused = self.detail(center_feats)
        return self.fuse(cat_channels([fused, center_feats])), weights, errors
