"""Warping helpers shared by every user of optical flow (flow net, propagation, losses, metrics).

Flow convention everywhere in stpr: ``flow[:, 0]`` is the horizontal (x) and ``flow[:, 1]`` the
vertical (y) displacement in pixels *of the tensor it is applied to*, pointing from the reference
(centre) frame to the neighbour. ``flow_warp(neighbour, flow)`` therefore samples the neighbour at
``p + flow(p)`` and returns it aligned to the reference frame (backward warping).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _base_grid(h: int, w: int, device, dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=0)  # (2, H, W)


def flow_warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear",
              padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp ``x`` with ``flow``.

    Args:
        x: (B, C, H, W) tensor to sample from (the neighbour).
        flow: (B, 2, H, W) displacement in pixels, reference -> neighbour.
        mode: grid_sample interpolation mode.
        padding_mode: grid_sample padding for samples that fall outside ``x``.

    Returns:
        (B, C, H, W): ``x`` resampled onto the reference frame's grid.
    """
    b, _, h, w = x.shape
    coords = _base_grid(h, w, x.device, x.dtype).unsqueeze(0) + flow
    # Normalise to [-1, 1] with align_corners=True semantics (pixel centres at the ends).
    gx = 2.0 * coords[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * coords[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def flow_validity_mask(flow: torch.Tensor) -> torch.Tensor:
    """1 where ``p + flow(p)`` lands inside the image, else 0.

    Args:
        flow: (B, 2, H, W).

    Returns:
        (B, 1, H, W) float mask.
    """
    _, _, h, w = flow.shape
    coords = _base_grid(h, w, flow.device, flow.dtype).unsqueeze(0) + flow
    inside = (coords[:, 0] >= 0) & (coords[:, 0] <= w - 1) & (coords[:, 1] >= 0) & (coords[:, 1] <= h - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def occlusion_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01,
                   beta: float = 0.5) -> torch.Tensor:
    """Forward-backward consistency check (Sundaram et al. 2010), combined with the in-bounds test.

    Args:
        flow_fw: (B, 2, H, W) flow reference -> neighbour.
        flow_bw: (B, 2, H, W) flow neighbour -> reference.
        alpha, beta: tolerance ``|fw + bw(warped)|^2 < alpha (|fw|^2 + |bw|^2) + beta``.

    Returns:
        (B, 1, H, W) float mask, 1 = visible in both frames and consistent.
    """
    bw_warped = flow_warp(flow_bw, flow_fw)
    diff = (flow_fw + bw_warped).pow(2).sum(1, keepdim=True)
    mag = flow_fw.pow(2).sum(1, keepdim=True) + bw_warped.pow(2).sum(1, keepdim=True)
    consistent = (diff < alpha * mag + beta).to(flow_fw.dtype)
    return consistent * flow_validity_mask(flow_fw)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a flow field to ``size`` = (H, W) and rescale its vectors accordingly.

    Args:
        flow: (B, 2, h, w).

    Returns:
        (B, 2, H, W).
    """
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], device=flow.device, dtype=flow.dtype)
    return out * scale.view(1, 2, 1, 1)
