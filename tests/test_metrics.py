"""PSNR / SSIM against scikit-image, and the losses built on them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stpr.losses import charbonnier, flow_loss, ssim_loss, temporal_loss
from stpr.metrics import psnr, ssim


def pair(seed: int, h: int = 40, w: int = 52, noise: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """A structured image in [0, 1] (H, W, 3) and a degraded copy (noise, blur, gain)."""
    rng = np.random.default_rng(seed)
    a = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)), (0, 0), 1.5)
    a = np.clip((a - a.mean()) * 6 + 0.5, 0, 1)
    b = 0.9 * cv2.GaussianBlur(a, (0, 0), 0.8) + rng.normal(0, noise, a.shape) + 0.03
    return a, np.clip(b, 0, 1)


def t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_matches_skimage(seed):
    a, b = pair(seed)
    ref = peak_signal_noise_ratio(a, b, data_range=1.0)
    got = psnr(t(a), t(b)).item()
    assert got == pytest.approx(ref, abs=1e-3)
    # float32 as used in training, and data_range = 255
    assert psnr(t(a).float(), t(b).float()).item() == pytest.approx(ref, abs=1e-3)
    assert psnr(t(a) * 255, t(b) * 255, data_range=255.0).item() == pytest.approx(ref, abs=1e-3)


@pytest.mark.parametrize("seed,noise", [(0, 0.08), (1, 0.02), (2, 0.3)])
def test_ssim_matches_skimage(seed, noise):
    a, b = pair(seed, noise=noise)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1.0, channel_axis=-1)
    got = ssim(t(a), t(b)).item()
    assert got == pytest.approx(ref, abs=1e-3)
    assert ssim(t(a).float(), t(b).float()).item() == pytest.approx(ref, abs=1e-3)


def test_metrics_are_per_image():
    a0, b0 = pair(0)
    a1, b1 = pair(1, noise=0.2)
    x = torch.cat([t(a0), t(a1)])
    y = torch.cat([t(b0), t(b1)])
    p, s = psnr(x, y), ssim(x, y)
    assert p.shape == s.shape == (2,)
    assert p[0].item() == pytest.approx(psnr(t(a0), t(b0)).item())
    assert s[1].item() == pytest.approx(ssim(t(a1), t(b1)).item())
    assert p[0] > p[1] and s[0] > s[1]


def test_identical_images():
    a, _ = pair(3)
    assert ssim(t(a), t(a)).item() == pytest.approx(1.0, abs=1e-6)
    assert psnr(t(a), t(a)).item() > 100  # mse clamped, no inf / nan
    assert torch.isfinite(psnr(t(a), t(a))).all()


def test_ssim_and_psnr_order_degradations():
    a, _ = pair(4)
    rng = np.random.default_rng(0)
    mild = np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)
    strong = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(t(a), t(mild)) > ssim(t(a), t(strong))
    assert psnr(t(a), t(mild)) > psnr(t(a), t(strong)) + 10


def test_ssim_is_differentiable():
    a, b = pair(5)
    x = t(b).float().requires_grad_(True)
    loss = ssim_loss(x, t(a).float())
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(1 - ssim(t(b), t(a)).item(), abs=1e-4)


def test_charbonnier():
    x = torch.zeros(2, 3, 4, 4)
    assert charbonnier(x, x).item() == pytest.approx(1e-3)
    assert charbonnier(x, x + 0.5).item() == pytest.approx(float(np.sqrt(0.25 + 1e-6)), rel=1e-6)


def test_temporal_loss_zero_for_matching_motion_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    gt_a = torch.rand(1, 3, 16, 16, generator=g)
    gt_b = torch.roll(gt_a, shifts=1, dims=3)  # content moves 1 px right from a to b
    flow = torch.zeros(1, 2, 4, 4)
    flow[:, 0] = 0.25  # 1/4-resolution flow: 1 px at full resolution
    valid = torch.ones(1, 1, 4, 4)
    # outputs that change exactly like the ground truth (here: a constant offset) -> no temporal loss
    assert temporal_loss(gt_a + 0.05, gt_b + 0.05, gt_a, gt_b, flow, valid).item() == pytest.approx(0.0, abs=1e-5)
    # without motion compensation the same pair would be penalised -> the flow is really used
    assert temporal_loss(gt_a + 0.05, gt_b + 0.05, gt_a, gt_b * 0 + gt_a, flow * 0, valid).item() > 0.05
    # flicker (b brighter than a while the ground truth is not) -> penalised
    assert temporal_loss(gt_a, gt_b * 1.3, gt_a, gt_b, flow, valid).item() > 0.05
    # nothing valid -> nothing counted
    assert temporal_loss(gt_a, gt_b * 1.3, gt_a, gt_b, flow, valid * 0).item() == 0.0


def test_flow_loss_masked_epe():
    pred = torch.zeros(1, 2, 3, 3)
    tgt = torch.zeros(1, 2, 3, 3)
    tgt[:, 0] = 3.0
    tgt[:, 1] = 4.0
    valid = torch.ones(1, 1, 3, 3)
    assert flow_loss(pred, tgt, valid).item() == pytest.approx(5.0, abs=1e-4)
    valid[..., 0, :] = 0
    pred[..., 0, :] = 100.0  # masked-out errors do not count
    assert flow_loss(pred, tgt, valid).item() == pytest.approx(5.0, abs=1e-4)
