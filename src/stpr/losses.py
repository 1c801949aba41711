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
    diff, mask = _temporal_difference(out_a, out_b, gt_a, gt_b, flow_ab, valid)
    return (diff.abs() * mask).sum() / (3 * mask.sum()).clamp_min(1.0)


def _temporal_difference(out_a, out_b, gt_a, gt_b, flow_ab, valid) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs' motion-compensated change minus the truths' ((B, 3, H, W)), and the teacher
    mask at output size ((B, 1, H, W))."""
    size = out_a.shape[-2:]
    flow = resize_flow(flow_ab, size)
    mask = F.interpolate(valid, size=size, mode="nearest")
    return (out_a - flow_warp(out_b, flow)) - (gt_a - flow_warp(gt_b, flow)), mask


def temporal_coarse_loss(out_a: torch.Tensor, out_b: torch.Tensor, gt_a: torch.Tensor, gt_b: torch.Tensor,
                         flow_ab: torch.Tensor, valid: torch.Tensor, block: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`temporal_loss` on ``block`` x ``block`` means: the change of the coarse picture
    between consecutive outputs should equal the truth's. Per pixel, grain dominates the temporal
    term; on real video the output's coarse local tone changed ~2x as much as the input's from
    frame to frame (real-footage §48), which averaged over blocks stands alone.

    Args as :func:`temporal_loss`. Returns (loss, blocks): the mean |difference| over the channels
    of the blocks at least half visible, and their count (for a mean over several processes).
    """
    diff, mask = _temporal_difference(out_a, out_b, gt_a, gt_b, flow_ab, valid)
    diff = diff * mask
    seen = F.avg_pool2d(mask, block)  # visible share of each block
    keep = (seen >= 0.5).to(diff.dtype)
    coarse = F.avg_pool2d(diff, block) / seen.clamp_min(0.5)  # mean over the block's visible pixels
    blocks = keep.sum()
    return (coarse.abs() * keep).sum() / (3 * blocks).clamp_min(1.0), blocks


def flow_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Masked end-point error between predicted and teacher flow (same resolution)."""
    epe = (pred - target).pow(2).sum(1, keepdim=True).add(1e-6).sqrt()
    return (epe * valid).sum() / valid.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- what people see
_LUMA = (0.299, 0.587, 0.114)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H*W) BT.601 luma."""
    return (x[:, 0] * _LUMA[0] + x[:, 1] * _LUMA[1] + x[:, 2] * _LUMA[2]).flatten(1)


def tone_loss(x: torch.Tensor, y: torch.Tensor,
              quantiles: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)) -> torch.Tensor:
    """Tone and contrast: mean |difference| of the luma quantiles of each output and its ground
    truth, the darkest ones included, so lifted blacks (haze) and a compressed range cost even
    where the per-pixel losses average them away. (B, 3, H, W) each; differentiable through the
    sort that ``torch.quantile`` does."""
    q = torch.tensor(quantiles, device=x.device, dtype=x.dtype)
    return (torch.quantile(_luma(x), q, dim=1) - torch.quantile(_luma(y), q, dim=1)).abs().mean()


def colour_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Colour: 1 - cosine between the RGB vectors of output and ground truth per pixel, weighted by
    the ground truth's brightness (hue is meaningless in black pixels). Blind to exposure, so it
    asks for the right hue and saturation whatever the brightness guess."""
    cos = F.cosine_similarity(x + eps, y + eps, dim=1)
    w = y.mean(1)
    return ((1 - cos) * w).sum() / w.sum().clamp_min(1e-6)


def edge_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Edges: L1 of the difference of horizontal and vertical image gradients (against smearing)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]) - (y[..., :, 1:] - y[..., :, :-1])
    dy = (x[..., 1:, :] - x[..., :-1, :]) - (y[..., 1:, :] - y[..., :-1, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


def lowpass_loss(x: torch.Tensor, y: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Coarse tone: mean |difference| of the block means (``block`` x ``block`` pixels; a remainder
    at the right and bottom edges is left out) of output and ground truth. A spatially varying
    tone error (a dark blob in a flat sky) is small per pixel and hides among the noise and detail
    the per-pixel losses see; averaged over blocks it stands alone. (B, 3, H, W) each."""
    return (F.avg_pool2d(x, block) - F.avg_pool2d(y, block)).abs().mean()


def black_loss(x: torch.Tensor, y: torch.Tensor, quantiles: tuple[float, ...] = (0.01, 0.05),
               pool: int = 4, along_colour: float = 0.0) -> torch.Tensor:
    """Lifted blacks, one-sided: mean excess of the output's darkest luma quantiles over the
    ground truth's, both taken on ``pool`` x ``pool`` area means so that noise (whose low tail
    pulls a full-resolution percentile down) does not set them. Output blacks at or under the
    truth's cost nothing: the term takes haze out without asking for deeper shadows than the
    truth has. ``along_colour`` (0-1): the same value, but that share of its gradient darkens each
    block along its own colour (R, G and B scaled alike, so its saturation and hue stay) instead
    of along luma's weights, which take green down most and so grey a dark green. (B, 3, H, W) each."""
    q = torch.tensor(quantiles, device=x.device, dtype=x.dtype)
    px = F.avg_pool2d(x, pool)
    lx = _luma(px)
    if along_colour:
        norm = px.pow(2).sum(1).add(1e-8).sqrt().flatten(1)  # d norm / d px_c = px_c / norm
        along = lx.detach() * norm / norm.detach()  # luma's value, the gradient along the colour
        lx = torch.lerp(lx, along, along_colour)
    qx = torch.quantile(lx, q, dim=1)
    qy = torch.quantile(_luma(F.avg_pool2d(y, pool)), q, dim=1)
    return (qx - qy).clamp_min(0.0).mean()


def chroma_loss(x: torch.Tensor, y: torch.Tensor, pool: int = 4, eps: float = 0.02) -> torch.Tensor:
    """Colour in the shadows: mean |difference| of the chromaticities (each channel over the pixel's
    mean of R, G, B, plus ``eps``) of output and ground truth, both on ``pool`` x ``pool`` area
    means, every block weighted alike. ``colour_loss`` weighs pixels by the truth's brightness, so
    a dark green turned grey costs it almost nothing; here it costs as much as in the highlights.
    Pooling keeps noise (whose colour averages out) from setting the figure. Blind to exposure
    well above ``eps`` (0.02, ~5 levels of 255, where the truth's colour fades out of the term).
    (B, 3, H, W) each."""
    px, py = F.avg_pool2d(x, pool), F.avg_pool2d(y, pool)
    cx = px / (px.mean(1, keepdim=True) + eps)
    cy = py / (py.mean(1, keepdim=True) + eps)
    return (cx - cy).abs().mean()


def fit_affine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x`` mapped by the per-sample, per-channel gain and offset that best fit it to ``y``
    (least squares); the fit itself is not back-propagated, so a loss on the result scores
    ``x``'s structure and noise but not its tone. (B, C, H, W) each."""
    with torch.no_grad():
        xm, ym = x.mean((2, 3), keepdim=True), y.mean((2, 3), keepdim=True)
        cov = ((x - xm) * (y - ym)).mean((2, 3), keepdim=True)
        var = ((x - xm) ** 2).mean((2, 3), keepdim=True)
        a = cov / var.clamp_min(1e-6)
        b = ym - a * xm
    return x * a + b
