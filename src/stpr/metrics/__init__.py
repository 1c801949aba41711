"""Image and video quality metrics.

``psnr``/``ssim``: differentiable torch versions (training, validation). ``stpr.metrics.video``:
numpy-facing versions for evaluation (RGB and Y channel) and the temporal metrics.
"""

from stpr.metrics.image import psnr, ssim
from stpr.metrics.video import (
    flicker_ratio,
    lowpass_sigma,
    lpips_or_none,
    mabd,
    mabd_mse,
    mean_brightness,
    psnr_rgb,
    psnr_gt_mean,
    psnr_y,
    sequence_flows,
    ssim_rgb,
    ssim_y,
    warping_error,
)

__all__ = [
    "psnr",
    "ssim",
    "psnr_rgb",
    "psnr_gt_mean",
    "psnr_y",
    "ssim_rgb",
    "ssim_y",
    "warping_error",
    "flicker_ratio",
    "lowpass_sigma",
    "sequence_flows",
    "mabd",
    "mabd_mse",
    "mean_brightness",
    "lpips_or_none",
]
