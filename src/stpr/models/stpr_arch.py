"""STPR: spatio-temporal propagation and reconstruction for low-light video enhancement.

Pipeline for one output frame (centre of a T-frame window)::

    every frame  ──► FrameEncoder ─► features (1/4 res)      ┐ computed once per frame
                └──► FlowFeaturePyramid ─► flow pyramid       ┘ (``encode_frame``)
    centre, nbr ──► PyramidFlowNet ─► flow centre->nbr        ┐
    features    ──► FeaturePropagation ─► propagated detail   │ per window (``decode``)
    centre feat ──► PyramidRecursiveRDN ─► pyramid features   │
    both        ──► STReconstruction ─► enhanced frame        ┘
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import frame_stats, normalize_brightness
from stpr.models.flow_arch import FlowConfig, PyramidFlowNet, dis_flow_torch
from stpr.models.prrd_arch import PRRDConfig, PyramidRecursiveRDN
from stpr.models.propagation_arch import (FeaturePropagation, FrameEncoder, PropagationConfig, StridedFrameEncoder,
                                          log_brightness)
from stpr.models.reconstruction_arch import STReconstruction
from stpr.models.fused import Head, Tail, head_supported
from stpr.models.warp import flow_grid, flow_warp

FLOW_MODES = ("learned", "dis", "zero")
ENCODERS = ("unshuffle", "strided")

# Options that measurements retired and no shipped model used, each with the value that turned it
# off (None: any value, a setting of another retired option). Configs written before their removal
# name them; at these values they are dropped, at any other they are refused.
RETIRED_AT = "50d3f5c"
RETIRED = {"flow_corr_radius": 0, "temporal_residual": False, "temporal_hidden": 0, "linear_light": False,
           "refine_channels": 0, "recurrent": False, "recurrent_cap": None, "feature_recurrent": False}


class RetiredOptionError(ValueError):
    """A config turns on an option that has been removed from the code."""


def drop_retired(d: dict, prefix: str = "") -> dict:
    """``d`` without the retired options it names at their off values.

    Raises:
        RetiredOptionError: one is on (the message names it, and the last commit that had it).
    """
    out = dict(d)
    for name, off in RETIRED.items():
        if name in out:
            value = out.pop(name)
            if off is not None and value != off:
                raise RetiredOptionError(
                    f"{prefix}{name} = {json.dumps(value)}: this option was retired (it stayed off in every "
                    f"shipped model); the last commit that has it is {RETIRED_AT}")
    return out


@dataclass
class STPRConfig:
    """Args:
        frames: T, temporal window (odd). T = 1 disables propagation from neighbours.
        channels: feature width at 1/4 resolution.
        flow_mode: "learned" (pyramid flow net), "dis" (OpenCV DIS, inference only) or "zero".
        flow_levels: levels of the learned flow pyramid.
        flow_channels: flow feature channels per level.
        flow_hidden: hidden width of the flow refinement heads.
        hf_split: propagate only high-frequency neighbour features.
        brightness_weight: brightness term in the propagation fusion weights.
        feature_fusion: fuse warped neighbour features in the propagation (False: neighbours reach
            the output only through the pixel fusion, weighted by the propagation's weights).
        prrd_scales: scales of the pyramid recursive residual dense subnet.
        prrd_recursions: R, recursions of each shared residual dense block.
        prrd_growth: dense growth rate.
        prrd_layers: dense layers per block.
        pixel_fusion: also blend the aligned full-resolution neighbour frames into the centre frame
            before the gain (temporal denoising of the pixels themselves, not only of features).
        encoder: "unshuffle" (pixel_unshuffle of the frame and its normalised copy, then a 3x3
            convolution) or "strided" (a 4x4 stride-4 convolution of the normalised frame: the
            ``fast`` model's, no full-resolution rearrangement).
        flow_stride: 4 (the flow pyramid starts at 1/4 resolution from the full frame) or 8 (at 1/8,
            from the frame's 1/4-resolution average; the ``fast`` model's).
        looks: names of the tone looks the model was trained with, the default first (e.g.
            ("natural", "lol"): footage's own tone and LOL's ground truths'); empty: one look.
        local_gain: the reconstruction's local gain map (False: one gain per colour channel).
    """

    frames: int = 3
    channels: int = 32
    flow_mode: str = "learned"
    flow_levels: int = 4
    flow_channels: tuple[int, ...] = (16, 24, 32, 32)
    flow_hidden: int = 32
    hf_split: bool = False
    brightness_weight: bool = True
    feature_fusion: bool = True
    prrd_scales: int = 3
    prrd_recursions: int = 1
    prrd_growth: int = 16
    prrd_layers: int = 3
    pixel_fusion: bool = True
    encoder: str = "unshuffle"
    flow_stride: int = 4
    looks: tuple[str, ...] = ()
    local_gain: bool = True

    def __post_init__(self):
        self.flow_channels = tuple(int(c) for c in self.flow_channels)
        self.looks = tuple(str(n) for n in self.looks)
        if len(self.looks) == 1 or len(set(self.looks)) != len(self.looks):
            raise ValueError(f"looks must name two or more different looks (or none), got {list(self.looks)}")
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"frames must be odd and >= 1, got {self.frames}")
        if self.flow_mode not in FLOW_MODES:
            raise ValueError(f"flow_mode must be one of {FLOW_MODES}, got {self.flow_mode!r}")
        if len(self.flow_channels) != self.flow_levels:
            raise ValueError("flow_channels needs one entry per flow level")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.flow_stride not in (4, 8):
            raise ValueError(f"flow_stride must be 4 or 8, got {self.flow_stride}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flow_channels"] = list(self.flow_channels)
        d["looks"] = list(self.looks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "STPRConfig":
        """The config of ``d``; retired options (``RETIRED``) at their off values are dropped.

        Raises:
            RetiredOptionError: ``d`` turns a retired option on.
            ValueError: unknown keys or bad values.
        """
        d = drop_retired(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown STPR config keys: {sorted(unknown)}")
        return cls(**d)


@dataclass
class FrameState:
    """Everything STPR needs from one frame, computed once and shared by all windows using it.

    Shapes for a padded (B, 3, H, W) frame: x (B, 3, H, W); stats (B, 6); norm_small (B, 3, H/4, W/4);
    logb (B, 1, H/4, W/4); feats (B, C, H/4, W/4); flow_pyr: list of (B, C_k, H/4/2^k, W/4/2^k).
    """

    x: torch.Tensor
    stats: torch.Tensor
    norm_small: torch.Tensor
    logb: torch.Tensor
    feats: torch.Tensor
    flow_pyr: list[torch.Tensor] | None


def window_indices(center: int, length: int, frames: int) -> list[int]:
    """Indices of the T-frame window around ``center`` in a sequence of ``length`` frames, edges
    reflected (…, 2, 1, [0], 1, 2, …). Works for any length >= 1."""
    half = frames // 2
    out = []
    for i in range(center - half, center + half + 1):
        if length == 1:
            out.append(0)
            continue
        period = 2 * (length - 1)
        i = i % period
        out.append(i if i < length else period - i)
    return out


def align_frame(nbr: FrameState, center: FrameState, flow: torch.Tensor) -> torch.Tensor:
    """Warp a neighbour frame to the centre at full resolution and match its exposure.

    Args:
        nbr, center: encoded frames (x (B, 3, H, W)).
        flow: (B, 2, H/4, W/4) flow centre -> neighbour.

    Returns:
        (B, 3, H, W) the neighbour's pixels on the centre's grid, scaled by the ratio of the frames'
        mean luma (so exposure flicker does not leak into the blend).
    """
    h, w = center.x.shape[-2:]
    # the flow's vectors are rescaled inside the grid, not in a separate full-resolution pass
    up = F.interpolate(flow.float(), size=(h, w), mode="bilinear", align_corners=False)
    warped = flow_warp(nbr.x, grid=flow_grid(up, (w / flow.shape[-1], h / flow.shape[-2])))
    ratio = torch.exp(center.stats[:, 3] - nbr.stats[:, 3]).clamp(0.5, 2.0).view(-1, 1, 1, 1)
    return warped * ratio


class STPR(nn.Module):
    """The STPR network.

    Args:
        cfg: STPRConfig.

    ``forward`` input: (B, T, 3, H, W) in [0, 1], any H, W; output: (B, 3, H, W) enhanced centre
    frame (clamped to [0, 1] in eval mode).
    """

    def __init__(self, cfg: STPRConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or STPRConfig()
        c = cfg.channels
        self.encoder = FrameEncoder(c) if cfg.encoder == "unshuffle" else StridedFrameEncoder(c)
        self.flow_net = PyramidFlowNet(FlowConfig(cfg.flow_levels, cfg.flow_channels, cfg.flow_hidden,
                                                  cfg.flow_stride))
        self.propagation = FeaturePropagation(PropagationConfig(c, cfg.hf_split, cfg.brightness_weight,
                                                                cfg.feature_fusion))
        self.pyramid = PyramidRecursiveRDN(PRRDConfig(c, cfg.prrd_scales, cfg.prrd_recursions,
                                                      cfg.prrd_growth, cfg.prrd_layers))
        self.reconstruction = STReconstruction(c, pixel_fusion=cfg.pixel_fusion, looks=len(cfg.looks),
                                               local_gain=cfg.local_gain)
        self.look = 0  # the look decode uses when given none (``set_look``); not a weight

    def set_look(self, name: str | None) -> None:
        """Make ``name`` (one of ``cfg.looks``) the look used by default; None: the model's default.

        Raises:
            ValueError: the model has no look of that name (the message lists those it has).
        """
        if name is None:
            self.look = 0
            return
        if name not in self.cfg.looks:
            have = (f"its looks are {', '.join(self.cfg.looks)}" if self.cfg.looks
                    else "it was trained with one look only")
            raise ValueError(f"this model has no look {name!r}: {have}")
        self.look = self.cfg.looks.index(name)

    # ---------------------------------------------------------------- padding
    @property
    def multiple(self) -> int:
        """Padded H and W are multiples of this."""
        return math.lcm(self.flow_net.multiple, 4 * 2 ** (self.cfg.prrd_scales - 1))

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Replicate-pad the last two dims up to ``multiple``. Returns padded tensor and (H, W)."""
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            shape = x.shape
            x = F.pad(x.reshape(-1, *shape[-3:]), (0, pw, 0, ph), mode="replicate")
            x = x.reshape(*shape[:-2], h + ph, w + pw)
        return x, (h, w)

    # ---------------------------------------------------------------- per frame
    def encode_frame(self, x: torch.Tensor, stats: torch.Tensor | None = None,
                     head: Head | None = None) -> FrameState:
        """Per-frame work.

        Args:
            x: (B, 3, H, W) in [0, 1], H, W multiples of ``multiple`` (a whole frame or a tile); with
                ``head``, the uint8 frame it was made from (only kept, for the output step).
            stats: (B, 6) ``frame_stats`` of the whole frame; computed from ``x`` when None.
            head: the full-resolution part of this work already done from the uint8 frame
                (:func:`stpr.models.fused.head`; models where ``head_supported``).
        """
        if head is not None:
            if not head_supported(self.cfg):
                raise ValueError("this model reads the full frame beyond its normalised copy: no fused head")
            x_norm, norm_small, logb = head.x_norm, head.norm_small, head.logb
        else:
            if stats is None:
                stats = frame_stats(x)
            x_norm = normalize_brightness(x, stats)
            norm_small = F.avg_pool2d(x_norm, 4)
            logb = log_brightness(x)
        needs_pyr = self.cfg.flow_mode == "learned" and self.cfg.frames > 1
        if self.cfg.encoder == "unshuffle":
            feats = self.encoder(x, x_norm)
        else:
            feats = self.encoder(x_norm, stats[:, 3])
        return FrameState(
            x=x,
            stats=stats,
            norm_small=norm_small,
            logb=logb,
            feats=feats,
            flow_pyr=self._flow_pyramid(x_norm, norm_small) if needs_pyr else None,
        )

    def _flow_pyramid(self, x_norm: torch.Tensor, norm_small: torch.Tensor) -> list[torch.Tensor]:
        return self.flow_net.features(x_norm if self.cfg.flow_stride == 4 else norm_small)

    def flow_features(self, x: torch.Tensor, stats: torch.Tensor) -> list[torch.Tensor]:
        """The learned flow's per-frame pyramid alone (as ``encode_frame`` makes it), for training
        the flow net on its own. x: (B, 3, H, W) padded as in ``encode_frame``; stats: (B, 6)."""
        x_norm = normalize_brightness(x, stats)
        return self._flow_pyramid(x_norm, F.avg_pool2d(x_norm, 4))

    # ---------------------------------------------------------------- per window
    def estimate_flow(self, ref: FrameState, nbr: FrameState) -> torch.Tensor:
        """Flow centre -> neighbour at 1/4 resolution. Returns (B, 2, H/4, W/4)."""
        mode = self.cfg.flow_mode
        if mode == "learned":
            return self.flow_net(ref.flow_pyr, nbr.flow_pyr)
        if mode == "dis":
            return dis_flow_torch(ref.norm_small, nbr.norm_small)
        return ref.norm_small.new_zeros(ref.norm_small.shape[0], 2, *ref.norm_small.shape[-2:])

    def estimate_flows(self, ref: FrameState, nbrs: list[FrameState]) -> list[torch.Tensor]:
        """Flows centre -> each neighbour, (B, 2, H/4, W/4) each; the learned net takes all the
        neighbours in one batch (few large calls cost less than many small ones)."""
        if self.cfg.flow_mode != "learned" or len(nbrs) < 2:
            return [self.estimate_flow(ref, n) for n in nbrs]
        k = len(nbrs)
        flow = self.flow_net([level.repeat(k, 1, 1, 1) for level in ref.flow_pyr],
                             [torch.cat(levels) for levels in zip(*(n.flow_pyr for n in nbrs))])
        return list(flow.chunk(k))

    def decode(self, window: list[FrameState], flows: list[torch.Tensor] | None = None,
               look: torch.Tensor | None = None, tail: bool = False) -> tuple[torch.Tensor | Tail, dict]:
        """Enhance the centre frame of a window of encoded frames.

        Args:
            window: T FrameStates; the centre is ``window[T // 2]``.
            flows: optional precomputed flows centre -> each neighbour (in window order, centre
                skipped), each (B, 2, H/4, W/4).
            look: optional (B,) int64 look per sample (models with ``cfg.looks``; None: ``self.look``).
            tail: return the full-resolution last step unrun, as a :class:`~stpr.models.fused.Tail`
                (inference: ``Enhancer`` runs it fused with the conversion to uint8). Without pixel
                fusion the centre state's ``x`` may then be the uint8 frame.

        Returns:
            out: (B, 3, H, W) enhanced centre frame (padded size; clamped in eval mode), or its ``Tail``.
            aux: {"flows": list of flows, "weights": (B, T, H/4, W/4) fusion weights}.
        """
        mid = len(window) // 2
        center = window[mid]
        nbrs = [s for i, s in enumerate(window) if i != mid]
        if flows is None:
            flows = self.estimate_flows(center, nbrs)
        propagated, weights, errors = self.propagation(
            center.feats, center.norm_small, center.logb,
            [n.feats for n in nbrs], [n.norm_small for n in nbrs], [n.logb for n in nbrs], flows)
        pyramid = self.pyramid(center.feats)
        aligned = None
        if self.cfg.pixel_fusion:
            frames = [center.x] + [align_frame(n, center, f) for n, f in zip(nbrs, flows)]
            aligned = list(zip(frames, errors))
        if look is None and self.cfg.looks:
            look = torch.full((center.x.shape[0],), self.look, dtype=torch.long, device=center.x.device)
        out = self.reconstruction(center.x, center.stats, propagated, pyramid, weights, aligned, look, tail=tail)
        if tail:
            return out, {"flows": flows, "weights": weights}
        if not self.training:
            out = out.clamp(0.0, 1.0)
        return out, {"flows": flows, "weights": weights}

    # ---------------------------------------------------------------- whole clips
    def forward_clip(self, clip: torch.Tensor, centers: list[int], stats: torch.Tensor | None = None,
                     look: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[dict]]:
        """Enhance several centre frames of one clip, encoding each frame once.

        Args:
            clip: (B, N, 3, H, W) in [0, 1], any H, W.
            centers: indices of the frames to enhance; windows are reflected at the clip edges.
            stats: optional (B, N, 6) ``frame_stats`` of the whole frames when ``clip`` is a crop
                (training), so crops see the exposure statistics a full frame would give.
            look: optional (B,) int64 look per clip (see ``decode``).

        Returns:
            outputs: list of (B, 3, H, W); aux: list of dicts (flows at padded 1/4 resolution).
        """
        b, n = clip.shape[:2]
        padded, (h, w) = self.pad(clip)
        states: dict[int, FrameState] = {}
        outs, auxes = [], []
        for c in centers:
            idx = window_indices(c, n, self.cfg.frames)
            for i in idx:
                if i not in states:
                    # statistics of the real frame, not of its padding
                    st = stats[:, i] if stats is not None else frame_stats(clip[:, i])
                    states[i] = self.encode_frame(padded[:, i], st)
            out, aux = self.decode([states[i] for i in idx], look=look)
            outs.append(out[..., :h, :w])
            auxes.append(aux)
        return outs, auxes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, 3, H, W) in [0, 1] -> (B, 3, H, W) enhanced centre frame."""
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"expected (B, T, 3, H, W), got {tuple(x.shape)}")
        t = x.shape[1]
        outs, _ = self.forward_clip(x, [t // 2])
        return outs[0]
