"""Image and video quality metrics."""

from stpr.metrics.image import psnr, ssim

__all__ = ["psnr", "ssim"]
