"""Flow estimation module: a learned coarse-to-fine pyramid flow network, plus OpenCV DIS.

The learned network works on brightness-normalised frames (see ``normalize_brightness``) so that
dark, noisy and flickering input still satisfies brightness constancy. Its per-frame feature
pyramid is computed once per frame (``features``) and reused by every window that contains the
frame; only the cheap per-pair refinement (``forward``) runs per neighbour.

Flow is produced at 1/4 of the input resolution, in 1/4-resolution pixels, from the reference
(centre) frame to the neighbour (see ``stpr.models.warp``). With ``stride`` 8 the pyramid starts
at 1/8 resolution from the frame's 1/4-resolution average (no full-resolution work) and the
finest flow is upsampled to 1/4: the cheaper choice of the ``fast`` model.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import act, cat_channels, conv3x3, upsample2
from stpr.models.warp import flow_warp


@dataclass
class FlowConfig:
    """Args:
        levels: pyramid levels; level 0 is 1/stride resolution, level k is 1/(stride*2^k).
        channels: feature channels at each level (len == levels).
        hidden: hidden channels of each per-level refinement head.
        stride: 4 (level 0 from the pixel-unshuffled full-resolution frame) or 8 (level 0 from the
            1/4-resolution frame by a stride-2 convolution; the flow is upsampled to 1/4).
    """

    levels: int = 4
    channels: tuple[int, ...] = (16, 24, 32, 32)
    hidden: int = 32
    stride: int = 4

    def __post_init__(self):
        if self.stride not in (4, 8):
            raise ValueError(f"flow stride must be 4 or 8, got {self.stride}")


class FlowFeaturePyramid(nn.Module):
    """Per-frame feature pyramid.

    Args:
        cfg: FlowConfig.

    Input: (B, 3, H, W) brightness-normalised frame, H and W divisible by 4 * 2^(levels-1); with
    ``stride`` 8 its 1/4-resolution average (B, 3, H/4, W/4), H and W divisible by 8 * 2^(levels-1).
    Output: list of ``levels`` tensors, level k: (B, channels[k], H / (s * 2^k), W / (s * 2^k)), s =
    ``stride``.
    """

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        chans = cfg.channels
        self.stride = cfg.stride
        first = nn.Conv2d(3 * 16, chans[0], 3, padding=1) if cfg.stride == 4 else conv3x3(3, chans[0], stride=2)
        self.stem = nn.Sequential(first, act(), conv3x3(chans[0], chans[0]), act())
        self.downs = nn.ModuleList(
            nn.Sequential(conv3x3(chans[k - 1], chans[k], stride=2), act(), conv3x3(chans[k], chans[k]), act())
            for k in range(1, cfg.levels)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(F.pixel_unshuffle(x, 4) if self.stride == 4 else x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class PyramidFlowNet(nn.Module):
    """Coarse-to-fine flow from per-frame feature pyramids (SPyNet/PWC-style residual refinement).

    Args:
        cfg: FlowConfig.
    """

    def __init__(self, cfg: FlowConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FlowConfig()
        assert len(cfg.channels) == cfg.levels >= 3
        self.pyramid = FlowFeaturePyramid(cfg)
        self.heads = nn.ModuleList()
        for c in cfg.channels:
            head = nn.Sequential(conv3x3(2 * c + 2, cfg.hidden), act(), conv3x3(cfg.hidden, cfg.hidden), act(),
                                 conv3x3(cfg.hidden, 2))
            # Start from zero flow: the untrained net then behaves like "no motion".
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)
            self.heads.append(head)

    @property
    def multiple(self) -> int:
        """Input H and W must be divisible by this."""
        return self.cfg.stride * 2 ** (self.cfg.levels - 1)

    def features(self, x_norm: torch.Tensor) -> list[torch.Tensor]:
        """Per-frame pyramid. (B, 3, H, W) (stride 4) or (B, 3, H/4, W/4) (stride 8) -> list of
        (B, C_k, H_k, W_k)."""
        return self.pyramid(x_norm)

    def forward(self, ref: list[torch.Tensor], nbr: list[torch.Tensor]) -> torch.Tensor:
        """Flow reference -> neighbour.

        Args:
            ref: pyramid of the reference frame (from ``features``).
            nbr: pyramid of the neighbour frame.

        Returns:
            (B, 2, H/4, W/4) flow in 1/4-resolution pixels.
        """
        flow = None
        for k in range(self.cfg.levels - 1, -1, -1):
            fr, fn = ref[k], nbr[k]
            if flow is None:
                flow = fr.new_zeros(fr.shape[0], 2, fr.shape[2], fr.shape[3])
            else:
                flow = upsample2(flow, fr.shape[-2:]) * 2.0
            warped = flow_warp(fn, flow)
            head = self.heads[k]
            flow = flow + head(cat_channels([fr, warped.to(fr.dtype), flow.to(fr.dtype)], like=fn))
        if self.cfg.stride == 8:
            flow = upsample2(flow) * 2.0
        return flow


MIN_DIS_SIDE = 32  # pixels: dis_flow upscales images with a shorter side


def dis_flow(ref: np.ndarray, nbr: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """Classical DIS optical flow (Kroeger et al. 2016) on two grayscale uint8 images.

    Args:
        ref, nbr: (H, W) uint8 grayscale, already brightness-normalised.

    Returns:
        (H, W, 2) float32 flow reference -> neighbour in pixels.
    """
    h, w = ref.shape[:2]
    # DIS needs a few patches per side, and OpenCV 5.1's fast presets crash (segfault) on images
    # under 32 rows and at least 80 columns: upscale small sides to 32, scale the flow back down.
    scale = int(np.ceil(MIN_DIS_SIDE / min(h, w))) if min(h, w) < MIN_DIS_SIDE else 1
    if scale > 1:
        size = (w * scale, h * scale)
        ref = cv2.resize(ref, size, interpolation=cv2.INTER_LINEAR)
        nbr = cv2.resize(nbr, size, interpolation=cv2.INTER_LINEAR)
    dis = cv2.DISOpticalFlow_create(preset)
    flow = dis.calc(ref, nbr, None)
    if scale > 1:
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / scale
    return flow


def remap_backward(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """NumPy/OpenCV counterpart of ``flow_warp``: sample ``img`` at ``p + flow(p)``, border
    replicated. img: (H, W[, C]); flow: (H, W, 2) reference -> img."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(img, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def fb_consistent(fw: np.ndarray, bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward consistency of (H, W, 2) flows, as ``warp.occlusion_mask`` without the
    in-bounds test: True where ``|fw + bw(p + fw)|^2 < alpha (|fw|^2 + |bw(p + fw)|^2) + beta``."""
    bw_at = remap_backward(bw, fw)
    err = ((fw + bw_at) ** 2).sum(-1)
    return err < alpha * ((fw ** 2).sum(-1) + (bw_at ** 2).sum(-1)) + beta


def dis_flow_torch(ref: torch.Tensor, nbr: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """DIS flow between batches of brightness-normalised RGB frames.

    Args:
        ref, nbr: (B, 3, H, W) in [0, 1].
        size: (h, w) to compute the flow at (e.g. 1/4 resolution); defaults to (H, W).

    Returns:
        (B, 2, h, w) float flow in pixels of the (h, w) grid.
    """
    out = []
    for r, n in zip(ref, nbr):
        imgs = []
        for t in (r, n):
            g = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).clamp(0, 1)
            g = (g.detach().cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
            if size is not None and g.shape != tuple(size):
                g = cv2.resize(g, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            imgs.append(g)
        out.append(torch.from_numpy(dis_flow(imgs[0], imgs[1])).permute(2, 0, 1))
    return torch.stack(out).to(device=ref.device, dtype=ref.dtype)
