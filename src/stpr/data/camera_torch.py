"""The phone camera of ``camera.py`` in PyTorch: batched, on the device the network trains on.

``camera.py`` runs one clip at a time in NumPy and OpenCV inside the DataLoader workers: ~17 ms
for a 4-frame 128² clip on one core here, so a 16-core GPU host makes ~100 four-frame 256² clips
a second, a fraction of the 500 a second a batch of 64 at 8 steps/s needs. This module runs the
same chain on a whole batch at once with the same ``CameraParams`` (one per clip)::

    sRGB -> linear -> camera RGB -> / white balance -> exposure x flicker -> RGGB mosaic
         -> shot + read + row noise -> ADC -> bilinear demosaic -> white balance (with its error)
         -> CCM -> sRGB x tone gamma -> YCbCr -> luma bilateral denoise, unsharp mask,
         chroma blur -> 8 bit

Not here: the H.264 round trip (it needs a CPU encoder: clips that draw one stay with
``camera.camera_clip`` in the loader; ``crf`` is ignored). Where it differs from ``camera.py``:
both of its demosaic methods are bilinear here, borders are reflected (OpenCV's default) in every
filter, and the random numbers are torch's; ``tests/test_camera_torch.py`` bounds the difference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stpr.data.camera import _BT601, CameraParams
from stpr.models.common import linear_to_srgb, srgb_to_linear

# bilinear demosaicing of an RGGB mosaic as convolutions of the zero-filled colour planes
_K_GREEN = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4.0
_K_RED_BLUE = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4.0


# the numeric fields of CameraParams as one vector per clip (a DataLoader batches it as (B, 15))
_SCALARS = ("exposure", "full_well", "read_noise", "row_noise", "bits", "mix", "tone_gamma", "luma_denoise",
            "chroma_blur", "sharpen", "flicker")
CAMERA_VECTOR_SIZE = len(_SCALARS) + 4


def camera_vector(p: CameraParams) -> torch.Tensor:
    """(15,) float64 vector of a camera (its ``demosaic`` and ``crf`` are not in it: bilinear, no codec)."""
    return torch.tensor([float(getattr(p, n)) for n in _SCALARS] + list(p.wb_gains) + list(p.wb_error),
                        dtype=torch.float64)


def params_to_tensors(params: list[CameraParams] | torch.Tensor, device: torch.device | str = "cpu"
                      ) -> dict[str, torch.Tensor]:
    """Cameras (a list, or their ``camera_vector`` rows (B, 15)) as one row per clip: each scalar
    field (B,), ``wb_gains`` and ``wb_error`` (B, 2), float32."""
    if not torch.is_tensor(params):
        params = torch.stack([camera_vector(p) for p in params]) if params else torch.zeros(0, CAMERA_VECTOR_SIZE)
    v = params.to(device=device, dtype=torch.float32)
    k = len(_SCALARS)
    out = {name: v[:, i] for i, name in enumerate(_SCALARS)}
    out["wb_gains"], out["wb_error"] = v[:, k:k + 2], v[:, k + 2:k + 4]
    return out


def _bayer_masks(h: int, w: int, device) -> torch.Tensor:
    """(3, H, W) one-hot colour of each RGGB mosaic site."""
    m = torch.zeros(3, h, w, device=device)
    m[0, 0::2, 0::2] = 1.0
    m[1, 0::2, 1::2] = 1.0
    m[1, 1::2, 0::2] = 1.0
    m[2, 1::2, 1::2] = 1.0
    return m


def demosaic_bilinear(raw: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) RGGB mosaic -> (N, 3, H, W) RGB, H and W even; borders reflected (a reflection
    about the edge pixel keeps the mosaic's pattern)."""
    masks = _bayer_masks(*raw.shape[-2:], raw.device)
    planes = F.pad(raw * masks, (1, 1, 1, 1), mode="reflect")
    k = torch.stack([_K_RED_BLUE, _K_GREEN, _K_RED_BLUE]).unsqueeze(1).to(raw)
    return F.conv2d(planes, k, groups=3)


def _cam_from_srgb(mix: torch.Tensor) -> torch.Tensor:
    """(B,) crosstalk -> (B, 3, 3) camera RGB <- linear sRGB matrices, as ``camera._cam_from_srgb``."""
    eye = torch.eye(3, device=mix.device)
    return (1.0 - mix).view(-1, 1, 1) * eye + (mix / 3.0).view(-1, 1, 1)


def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(N,) sigmas -> (N, 2 radius + 1) normalised 1-D Gaussians."""
    x = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma.clamp(min=1e-3).unsqueeze(1)) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def blur_per_sample(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable blur of each sample with its own kernel, borders reflected.

    Args:
        x: (N, C, H, W).
        kernels: (N, K) 1-D kernels, K odd and at most 2 min(H, W) - 1.
    """
    n, c, h, w = x.shape
    r = kernels.shape[1] // 2
    k = kernels.repeat_interleave(c, dim=0)  # (N * C, K): one kernel per channel of each sample
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def bilateral5(y: torch.Tensor, sigma_color: torch.Tensor, sigma_space: float = 2.0) -> torch.Tensor:
    """``cv2.bilateralFilter(y, 5, sigma_color, sigma_space)`` per sample: the 5x5 disc of radius 2,
    borders reflected. y: (N, 1, H, W); sigma_color: (N,), in y's units; 0 leaves a sample as is."""
    n, _, h, w = y.shape
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy * dy + dx * dx <= 4]
    p = F.pad(y, (2, 2, 2, 2), mode="reflect")
    num = torch.zeros_like(y)
    den = torch.zeros_like(y)
    inv = (-0.5 / sigma_color.clamp(min=1e-6) ** 2).view(-1, 1, 1, 1)
    for dy, dx in offsets:
        q = p[..., 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]
        wgt = math.exp(-(dy * dy + dx * dx) / (2.0 * sigma_space ** 2)) * torch.exp(inv * (q - y) ** 2)
        num = num + wgt * q
        den = den + wgt
    out = num / den
    return torch.where((sigma_color > 0).view(-1, 1, 1, 1), out, y)


def camera_clip_torch(frames: torch.Tensor, params: list[CameraParams] | torch.Tensor,
                      generator: torch.Generator | None = None,
                      exposure_scales: torch.Tensor | None = None) -> torch.Tensor:
    """A batch of clips through their cameras: fresh noise and flicker per frame, no codec.

    Args:
        frames: (B, T, 3, H, W) normal-light sRGB in [0, 1] (any float dtype; computed in float32).
        params: B cameras (``camera.sample_camera``), one per clip, or their ``camera_vector``
            rows (B, 15).
        generator: torch generator on ``frames``' device (None: the global one).
        exposure_scales: optional (B, T) per-frame exposure multipliers on top of the flicker.

    Returns:
        (B, T, 3, H, W) float32 dark frames, multiples of 1/255 in [0, 1].
    """
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
    b, t, _, h, w = frames.shape
    if len(params) != b:
        raise ValueError(f"{len(params)} cameras for {b} clips")
    dev = frames.device
    p = params_to_tensors(params, dev)
    x = frames.float().reshape(b * t, 3, h, w)
    ph, pw = h % 2, w % 2
    if ph or pw:  # the mosaic needs even sizes: edge-pad, crop back at the end
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    hh, ww = x.shape[-2:]

    def per_frame(v: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (B * T, ...)
        return v.repeat_interleave(t, dim=0)

    def randn(*shape) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=dev)

    # reverse: sRGB -> linear -> camera RGB -> / white balance -> exposure -> mosaic
    cam_m = _cam_from_srgb(p["mix"])
    lin = torch.einsum("nij,njhw->nihw", per_frame(cam_m), srgb_to_linear(x))
    wb = torch.stack([p["wb_gains"][:, 0], torch.ones(b, device=dev), p["wb_gains"][:, 1]], dim=1)
    lin = lin / per_frame(wb).view(-1, 3, 1, 1)
    flicker = torch.exp(randn(b, t) * p["flicker"].view(b, 1))
    scale = p["exposure"].view(b, 1) * flicker
    if exposure_scales is not None:
        scale = scale * exposure_scales.to(dev, torch.float32).view(b, t)
    raw = (lin.clamp(min=0.0) * _bayer_masks(hh, ww, dev)).sum(dim=1, keepdim=True) * scale.view(-1, 1, 1, 1)
    # sensor: shot, read and row noise, black-level clipping, the ADC
    full_well = per_frame(p["full_well"]).view(-1, 1, 1, 1)
    noisy = torch.poisson(raw.clamp(min=0.0) * full_well, generator=generator) / full_well
    noisy = noisy + randn(b * t, 1, hh, ww) * per_frame(p["read_noise"]).view(-1, 1, 1, 1)
    noisy = noisy + randn(b * t, 1, hh, 1) * per_frame(p["row_noise"]).view(-1, 1, 1, 1)
    levels = per_frame(2.0 ** p["bits"] - 1.0).view(-1, 1, 1, 1)
    raw = torch.round(noisy.clamp(0.0, 1.0) * levels) / levels
    # forward: demosaic -> white balance with its error -> CCM -> sRGB, tone gamma
    rgb = demosaic_bilinear(raw)
    gains = torch.stack([p["wb_gains"][:, 0] * (1 + p["wb_error"][:, 0]), torch.ones(b, device=dev),
                         p["wb_gains"][:, 1] * (1 + p["wb_error"][:, 1])], dim=1)
    rgb = (rgb * per_frame(gains).view(-1, 3, 1, 1)).clamp(0.0, 1.0)
    lin = torch.einsum("nij,njhw->nihw", per_frame(torch.linalg.inv(cam_m)), rgb).clamp(0.0, 1.0)
    srgb = linear_to_srgb(lin) ** per_frame(p["tone_gamma"]).view(-1, 1, 1, 1)
    # in-camera processing in YCbCr: luma denoise and sharpening, chroma smoothing
    m = torch.from_numpy(_BT601).to(dev)
    ycc = torch.einsum("ij,njhw->nihw", m, srgb)
    y = bilateral5(ycc[:, :1], per_frame(p["luma_denoise"]) / 255.0)
    sharpen = per_frame(p["sharpen"])
    # OpenCV's GaussianBlur(sigma 1) on float images uses 9 taps
    y = y + sharpen.view(-1, 1, 1, 1) * (y - blur_per_sample(y, _gaussian_kernels(torch.ones_like(sharpen), 4)))
    sigma_c = per_frame(p["chroma_blur"])
    radius = max(1, int(math.ceil(4.0 * float(sigma_c.max()))))
    radius = min(radius, min(hh, ww) - 1)
    chroma = blur_per_sample(ycc[:, 1:], _gaussian_kernels(sigma_c, radius))
    chroma = torch.where((sigma_c > 0).view(-1, 1, 1, 1), chroma, ycc[:, 1:])
    out = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), torch.cat([y, chroma], dim=1))
    out = torch.round(out.clamp(0.0, 1.0) * 255.0) / 255.0
    return out[..., :h, :w].reshape(b, t, 3, h, w)
