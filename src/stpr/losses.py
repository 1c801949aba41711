"""Training losses for STPR."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stpr.metrics.image import ssim
from stpr.models.warp import flow_warp, resize_flow


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Smooth L1: mean of sqrt((x - y)^2 + eps^2)."""
    return torch.sqrt((x - y).pow(2) + eps * eps).mean()


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1.0 - ssim(x, y).mean()


def temporal_loss(out_a: torch.Tensor, out_b: torch.Tensor, gt_a: torch.Tensor, gt_b: torch.Tensor,
                  flow_ab: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Temporal consistency: the change between consecutive outputs (after motion compensation)
    should equal the change between the ground-truth frames.

    Args:
        out_a, out_b, gt_a, gt_b: (B, 3, H, W) frames a and b = a + 1.
        flow_ab: (B, 2, h, w) teacher flow a -> b at any resolution (resized to H, W here).
        valid: (B, 1, h, w) teacher validity mask.
    """
    size = out_a.shape[-2:]
    flow = resize_flow(flow_ab, size)
    mask = F.interpolate(valid, size=size, mode="nearest")
    d_out = out_a - flow_warp(out_b, flow)
    d_gt = gt_a - flow_warp(gt_b, flow)
    return ((d_out - d_gt).abs() * mask).sum() / (3 * mask.sum()).clamp_min(1.0)


def flow_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Masked end-point error between predicted and teacher flow (same resolution)."""
    epe = (pred - target).pow(2).sum(1, keepdim=True).add(1e-6).sqrt()
    return (epe * valid).sum() / valid.sum().clamp_min(1.0)
