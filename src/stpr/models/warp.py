"""Warping helpers shared by every user of optical flow (flow net, propagation, losses, metrics).

Flow convention everywhere in stpr: ``flow[:, 0]`` is the horizontal (x) and ``flow[:, 1]`` the
vertical (y) displacement in pixels *of the tensor it is applied to*, pointing from the reference
(centre) frame to the neighbour. ``flow_warp(neighbour, flow)`` therefore samples the neighbour at
``p + flow(p)`` and returns it aligned to the reference frame (backward warping).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def _base_grid(h: int, w: int, device, dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=0)  # (2, H, W)


@functools.lru_cache(maxsize=16)
def _unit_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, H, W, 2) pixel centres in grid_sample's [-1, 1] coordinates (align_corners=True), cached:
    streaming warps the same few sizes thousands of times. Made outside inference mode, so that
    training after an inference-mode validation can use it too."""
    with torch.inference_mode(False), torch.no_grad():
        base = _base_grid(h, w, device, dtype)
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=device, dtype=dtype)
        return (base.permute(1, 2, 0) * scale - 1.0).unsqueeze(0).contiguous()


def flow_grid(flow: torch.Tensor, flow_scale: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """grid_sample's sampling grid for a flow: where ``p + flow(p)`` lies, in [-1, 1] coordinates.

    Args:
        flow: (B, 2, H, W) displacement in pixels, reference -> neighbour.
        flow_scale: factors (x, y) applied to the flow first (a flow computed on a coarser grid and
            resized to this one without rescaling its vectors, as ``align_frame`` does).

    Returns:
        (B, H, W, 2), computed in one pass over the flow (one grid serves every tensor warped with it).
    """
    _, _, h, w = flow.shape
    if torch.jit.is_tracing():
        # ONNX export: sizes are traced values here, so nothing may be cached or made a constant
        base = _base_grid(h, w, flow.device, flow.dtype)
        gx = 2.0 * (base[0] + flow[:, 0] * flow_scale[0]) / max(w - 1, 1) - 1.0
        gy = 2.0 * (base[1] + flow[:, 1] * flow_scale[1]) / max(h - 1, 1) - 1.0
        return torch.stack((gx, gy), dim=-1)
    unit = _unit_grid(h, w, flow.device, flow.dtype)
    per_px = torch.tensor([2.0 * flow_scale[0] / max(w - 1, 1), 2.0 * flow_scale[1] / max(h - 1, 1)],
                          device=flow.device, dtype=flow.dtype)
    return torch.addcmul(unit, flow.permute(0, 2, 3, 1), per_px)


def flow_warp(x: torch.Tensor, flow: torch.Tensor | None = None, mode: str = "bilinear",
              padding_mode: str = "border", grid: torch.Tensor | None = None) -> torch.Tensor:
    """Backward-warp ``x`` with ``flow``.

    Args:
        x: (B, C, H, W) tensor to sample from (the neighbour).
        flow: (B, 2, H, W) displacement in pixels, reference -> neighbour.
        mode: grid_sample interpolation mode.
        padding_mode: grid_sample padding for samples that fall outside ``x``.
        grid: the flow's ``flow_grid`` instead of ``flow``, when several tensors share one flow.

    Returns:
        (B, C, H, W): ``x`` resampled onto the reference frame's grid.
    """
    if grid is None:
        # the wider of the two dtypes: a bfloat16 grid would misplace samples by up to ~0.4 px
        dtype = torch.promote_types(x.dtype, flow.dtype)
        grid = flow_grid(flow.to(dtype))
    if x.dtype != grid.dtype:
        x = x.to(grid.dtype)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def grid_validity_mask(grid: torch.Tensor) -> torch.Tensor:
    """1 where a ``flow_grid`` sample lands inside the image, else 0. (B, H, W, 2) -> (B, 1, H, W)."""
    return (grid.abs() <= 1.0).all(dim=-1).unsqueeze(1).to(grid.dtype)


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
