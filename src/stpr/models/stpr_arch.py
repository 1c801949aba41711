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

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from stpr.models.common import conv3x3, frame_stats, normalize_brightness, srgb_to_linear
from stpr.models.flow_arch import FlowConfig, PyramidFlowNet, dis_flow_torch
from stpr.models.prrd_arch import PRRDConfig, PyramidRecursiveRDN
from stpr.models.propagation_arch import FeaturePropagation, FrameEncoder, PropagationConfig, log_brightness
from stpr.models.reconstruction_arch import STReconstruction
from stpr.models.warp import flow_warp, resize_flow

FLOW_MODES = ("learned", "dis", "zero")


@dataclass
class STPRConfig:
    """Args:
        frames: T, temporal window (odd). T = 1 disables propagation from neighbours.
        channels: feature width at 1/4 resolution.
        flow_mode: "learned" (pyramid flow net), "dis" (OpenCV DIS, inference only) or "zero".
        flow_levels: levels of the learned flow pyramid.
        flow_channels: flow feature channels per level.
        flow_hidden: hidden width of the flow refinement heads.
        flow_corr_radius: radius of the flow heads' local cost volume (0: none; see ``FlowConfig``).
        hf_split: propagate only high-frequency neighbour features.
        brightness_weight: brightness term in the propagation fusion weights.
        temporal_residual: a zero-initialised correction of the propagated features from what the
            neighbours changed (``PropagationConfig.temporal_residual``; zero for T = 1).
        temporal_hidden: 0, or the hidden width of that correction (two convs instead of one).
        feature_fusion: fuse warped neighbour features in the propagation (False: neighbours reach
            the output only through the pixel fusion, weighted by the propagation's weights).
        prrd_scales: scales of the pyramid recursive residual dense subnet.
        prrd_recursions: R, recursions of each shared residual dense block.
        prrd_growth: dense growth rate.
        prrd_layers: dense layers per block.
        pixel_fusion: also blend the aligned full-resolution neighbour frames into the centre frame
            before the gain (temporal denoising of the pixels themselves, not only of features).
        linear_light: apply the exposure gain, and blend the aligned frames, in linear light.
        refine_channels: width of the full-resolution refinement head of the reconstruction (0: none).
        recurrent: hand each output frame's blended base image (and how many frames it averages) to
            the next frame, where it replaces the previous raw frame in the pixel fusion, so static
            regions keep averaging their history (up to ``recurrent_cap`` frames) at the cost of
            a T-frame window (needs ``pixel_fusion`` and T >= 3; frames must come in order, see
            ``forward_clip``).
        recurrent_cap: most frames a recurrent blend counts as averaged (inference may change it).
        feature_recurrent: hand each output frame's propagated features (a hidden state, as in
            BasicVSR) to the next frame, where a zero-initialised 3x3 conv merges them into the
            previous frame's features before propagation, so fused detail can build up over more
            than T frames (frames must come in order, see ``forward_clip``).
    """

    frames: int = 3
    channels: int = 32
    flow_mode: str = "learned"
    flow_levels: int = 4
    flow_channels: tuple[int, ...] = (16, 24, 32, 32)
    flow_hidden: int = 32
    flow_corr_radius: int = 0
    hf_split: bool = False
    brightness_weight: bool = True
    temporal_residual: bool = False
    temporal_hidden: int = 0
    feature_fusion: bool = True
    prrd_scales: int = 3
    prrd_recursions: int = 1
    prrd_growth: int = 16
    prrd_layers: int = 3
    pixel_fusion: bool = True
    linear_light: bool = False
    refine_channels: int = 0
    recurrent: bool = False
    recurrent_cap: float = 8.0
    feature_recurrent: bool = False

    def __post_init__(self):
        self.flow_channels = tuple(int(c) for c in self.flow_channels)
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"frames must be odd and >= 1, got {self.frames}")
        if self.flow_mode not in FLOW_MODES:
            raise ValueError(f"flow_mode must be one of {FLOW_MODES}, got {self.flow_mode!r}")
        if len(self.flow_channels) != self.flow_levels:
            raise ValueError("flow_channels needs one entry per flow level")
        if self.recurrent and not self.pixel_fusion:
            raise ValueError("recurrent needs pixel_fusion")
        if self.temporal_residual and not self.feature_fusion:
            raise ValueError("temporal_residual needs feature_fusion (without it the neighbours change no feature)")
        if self.flow_corr_radius < 0:
            raise ValueError(f"flow_corr_radius must be >= 0, got {self.flow_corr_radius}")
        if self.recurrent_cap < 1:
            raise ValueError(f"recurrent_cap must be >= 1, got {self.recurrent_cap}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flow_channels"] = list(self.flow_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "STPRConfig":
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


@dataclass
class RecurrentState:
    """What a recurrent STPR hands from one output frame to the next (padded size).

    Shapes: base (B, 3, H, W) the blended base image in sRGB, at its frame's exposure; log_count
    (B, 1, H/4, W/4) log of the frames averaged into each pixel of it (both None unless
    ``recurrent``); feats (B, C, H/4, W/4) the frame's propagated features (None unless
    ``feature_recurrent``).
    """

    base: torch.Tensor | None
    log_count: torch.Tensor | None
    feats: torch.Tensor | None = None


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


def follows_previous(idx: list[int], center: int) -> bool:
    """Whether the window ``idx`` (from ``window_indices``) of frame ``center`` has the previous
    frame in the slot before its centre, the slot a recurrent state stands in for (not so for
    frame 0, whose reflected window has frame 1 there, nor for T = 1)."""
    return len(idx) > 1 and idx[len(idx) // 2 - 1] == center - 1


def align_frame(nbr: FrameState, center: FrameState, flow: torch.Tensor, linear: bool = False
                ) -> torch.Tensor:
    """Warp a neighbour frame to the centre at full resolution and match its exposure.

    Args:
        nbr, center: encoded frames (x (B, 3, H, W)).
        flow: (B, 2, H/4, W/4) flow centre -> neighbour.
        linear: return linear light (exposure matched with the linear-light means).

    Returns:
        (B, 3, H, W) the neighbour's pixels on the centre's grid, scaled by the ratio of the frames'
        mean luma (so exposure flicker does not leak into the blend).
    """
    warped = flow_warp(nbr.x, resize_flow(flow, center.x.shape[-2:]))
    if linear:
        ratio = torch.exp(center.stats[:, 5] - nbr.stats[:, 5]).clamp(0.25, 4.0).view(-1, 1, 1, 1)
        return srgb_to_linear(warped) * ratio
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
        self.encoder = FrameEncoder(c)
        self.flow_net = PyramidFlowNet(FlowConfig(cfg.flow_levels, cfg.flow_channels, cfg.flow_hidden,
                                                  cfg.flow_corr_radius))
        self.propagation = FeaturePropagation(PropagationConfig(c, cfg.hf_split, cfg.brightness_weight,
                                                                cfg.temporal_residual, cfg.temporal_hidden,
                                                                cfg.feature_fusion))
        self.pyramid = PyramidRecursiveRDN(PRRDConfig(c, cfg.prrd_scales, cfg.prrd_recursions,
                                                      cfg.prrd_growth, cfg.prrd_layers))
        self.reconstruction = STReconstruction(c, pixel_fusion=cfg.pixel_fusion, linear_light=cfg.linear_light,
                                               refine_channels=cfg.refine_channels, recurrent=cfg.recurrent,
                                               max_count=cfg.recurrent_cap)
        self.memory = None
        if cfg.feature_recurrent:
            # merges the previous frame's hidden state into its features; zero at the start, so a
            # model initialised from a non-recurrent one starts out as that model
            self.memory = conv3x3(2 * c, c)
            nn.init.zeros_(self.memory.weight)
            nn.init.zeros_(self.memory.bias)

    @property
    def is_recurrent(self) -> bool:
        """Whether decode hands a state from each output frame to the next."""
        return self.cfg.recurrent or self.cfg.feature_recurrent

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
    def encode_frame(self, x: torch.Tensor, stats: torch.Tensor | None = None) -> FrameState:
        """Per-frame work.

        Args:
            x: (B, 3, H, W) in [0, 1], H, W multiples of ``multiple`` (a whole frame or a tile).
            stats: (B, 6) ``frame_stats`` of the whole frame; computed from ``x`` when None.
        """
        if stats is None:
            stats = frame_stats(x)
        x_norm = normalize_brightness(x, stats)
        needs_pyr = self.cfg.flow_mode == "learned" and self.cfg.frames > 1
        return FrameState(
            x=x,
            stats=stats,
            norm_small=F.avg_pool2d(x_norm, 4),
            logb=log_brightness(x),
            feats=self.encoder(x, x_norm),
            flow_pyr=self.flow_net.features(x_norm) if needs_pyr else None,
        )

    def flow_features(self, x: torch.Tensor, stats: torch.Tensor) -> list[torch.Tensor]:
        """The learned flow's per-frame pyramid alone (as ``encode_frame`` makes it), for training
        the flow net on its own. x: (B, 3, H, W) padded as in ``encode_frame``; stats: (B, 6)."""
        return self.flow_net.features(normalize_brightness(x, stats))

    # ---------------------------------------------------------------- per window
    def estimate_flow(self, ref: FrameState, nbr: FrameState) -> torch.Tensor:
        """Flow centre -> neighbour at 1/4 resolution. Returns (B, 2, H/4, W/4)."""
        mode = self.cfg.flow_mode
        if mode == "learned":
            return self.flow_net(ref.flow_pyr, nbr.flow_pyr)
        if mode == "dis":
            return dis_flow_torch(ref.norm_small, nbr.norm_small)
        return ref.norm_small.new_zeros(ref.norm_small.shape[0], 2, *ref.norm_small.shape[-2:])

    def decode(self, window: list[FrameState], flows: list[torch.Tensor] | None = None,
               state: RecurrentState | None = None) -> tuple[torch.Tensor, dict]:
        """Enhance the centre frame of a window of encoded frames.

        Args:
            window: T FrameStates; the centre is ``window[T // 2]``.
            flows: optional precomputed flows centre -> each neighbour (in window order, centre
                skipped), each (B, 2, H/4, W/4).
            state: recurrent models (``is_recurrent``) only: the previous frame's ``aux["state"]``, when
                ``window[T // 2 - 1]`` is that previous frame (None: its raw pixels are used).

        Returns:
            out: (B, 3, H, W) enhanced centre frame (padded size; clamped in eval mode).
            aux: {"flows": list of flows, "weights": (B, T, H/4, W/4) fusion weights} and, for
                recurrent models (``is_recurrent``), "state": the RecurrentState for the next frame.
        """
        mid = len(window) // 2
        center = window[mid]
        nbrs = [s for i, s in enumerate(window) if i != mid]
        if flows is None:
            flows = [self.estimate_flow(center, n) for n in nbrs]
        if self.memory is not None and state is not None and state.feats is not None and mid > 0:
            # the previous frame's hidden state is on its own grid, like its features: merge them
            # there, and propagation warps the result to the centre with the same flow
            prev = nbrs[mid - 1]
            nbrs[mid - 1] = replace(prev, feats=prev.feats + self.memory(torch.cat([prev.feats, state.feats], dim=1)))
        propagated, weights, errors = self.propagation(
            center.feats, center.norm_small, center.logb,
            [n.feats for n in nbrs], [n.norm_small for n in nbrs], [n.logb for n in nbrs], flows)
        pyramid = self.pyramid(center.feats)
        aligned = log_counts = None
        if self.cfg.pixel_fusion:
            lin = self.cfg.linear_light
            if self.cfg.recurrent:
                log_counts = [errors[0]] * len(window)  # the centre's error map is zeros: count 1 each
                if state is not None and state.base is not None and mid > 0:
                    # the previous frame's blend stands in for its raw pixels (same frame, same
                    # exposure); in aligned / log_counts (centre first) window[mid - 1] is entry mid
                    nbrs[mid - 1] = replace(nbrs[mid - 1], x=state.base)
                    log_counts[mid] = flow_warp(state.log_count, flows[mid - 1])
            frames = [srgb_to_linear(center.x) if lin else center.x]
            frames += [align_frame(n, center, f, lin) for n, f in zip(nbrs, flows)]
            aligned = list(zip(frames, errors))
        aux = {"flows": flows, "weights": weights}
        base = log_count = None
        if self.cfg.recurrent:
            out, base, log_count = self.reconstruction(center.x, center.stats, propagated, pyramid, weights,
                                                       aligned, log_counts, return_base=True)
        else:
            out = self.reconstruction(center.x, center.stats, propagated, pyramid, weights, aligned)
        if self.is_recurrent:
            aux["state"] = RecurrentState(base, log_count, propagated if self.memory is not None else None)
        if not self.training:
            out = out.clamp(0.0, 1.0)
        return out, aux

    # ---------------------------------------------------------------- whole clips
    def forward_clip(self, clip: torch.Tensor, centers: list[int], stats: torch.Tensor | None = None
                     ) -> tuple[list[torch.Tensor], list[dict]]:
        """Enhance several centre frames of one clip, encoding each frame once.

        Args:
            clip: (B, N, 3, H, W) in [0, 1], any H, W.
            centers: indices of the frames to enhance; windows are reflected at the clip edges. A
                recurrent model hands its state from each centre to the next when they are
                consecutive frames (c, c + 1), so give them in order.
            stats: optional (B, N, 6) ``frame_stats`` of the whole frames when ``clip`` is a crop
                (training), so crops see the exposure statistics a full frame would give.

        Returns:
            outputs: list of (B, 3, H, W); aux: list of dicts (flows at padded 1/4 resolution).
        """
        b, n = clip.shape[:2]
        padded, (h, w) = self.pad(clip)
        states: dict[int, FrameState] = {}
        outs, auxes = [], []
        prev_center, carried = None, None
        for c in centers:
            idx = window_indices(c, n, self.cfg.frames)
            for i in idx:
                if i not in states:
                    # statistics of the real frame, not of its padding
                    st = stats[:, i] if stats is not None else frame_stats(clip[:, i])
                    states[i] = self.encode_frame(padded[:, i], st)
            use = carried if prev_center == c - 1 and follows_previous(idx, c) else None
            out, aux = self.decode([states[i] for i in idx], state=use)
            prev_center, carried = c, aux.get("state")
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
