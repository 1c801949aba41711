"""PSNR and SSIM on torch tensors (differentiable, so SSIM doubles as a training loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image.

    Args:
        x, y: (B, C, H, W) in [0, data_range].

    Returns:
        (B,) PSNR in dB.
    """
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    g = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(g ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) with a Gaussian window, averaged over channels and
    valid pixels (no padding, as scikit-image's ``gaussian_weights=True``, ``use_sample_covariance=False``).

    Args:
        x, y: (B, C, H, W) in [0, data_range]; H, W >= win_size.

    Returns:
        (B,) mean SSIM.
    """
    c = x.shape[1]
    w = _gaussian_window(win_size, sigma, c, x.device, x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mx * mx
    syy = F.conv2d(y * y, w, groups=c) - my * my
    sxy = F.conv2d(x * y, w, groups=c) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
