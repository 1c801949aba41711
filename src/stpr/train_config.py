"""Training configuration: ``TrainConfig``, loading it from JSON plus ``key=value`` overrides, and
the ``stpr train`` command-line arguments (shared by ``stpr train`` and ``python -m stpr.train``).

Kept apart from the training loop (``stpr.train``) so the command line can build its parser without
importing the loop.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from stpr.errors import UsageError
from stpr.models.stpr_arch import RETIRED, RETIRED_AT, RetiredOptionError, STPRConfig, drop_retired


@dataclass
class TrainConfig:
    """Args:
        out_dir: run directory.
        lol_root: LOL-style folder with low/ and high/ ("" to skip).
        lol_val: number of highest-numbered LOL pairs held out for validation (scenes that never
            train: generalisation).
        lol_siblings: further LOL pairs held out for validation, each a shot of a scene whose other
            shots train (``lol_sibling_split``: how LOL-v1's test pairs relate to its training pairs).
        videos: normal-light videos to darken synthetically.
        video_scale: downscale factor applied when decoding those videos.
        lol_max_shift: largest drift per frame (px, each axis) of the synthetic motion that turns
            LOL pairs (and ``stills``) into clips; with exact flow, these clips are what teaches the
            flow large motion.
        paired_root / paired_layout: optional SDSD/SMID/DID-style dataset (see PairedVideoFolders).
        val_video: held-out normal-light video for synthetic-dark validation ("" to skip).
        val_video_frames: frames of it to use.
        stills: normal-light photographs (files, or folders of them) to make into moving clips and
            darken synthetically (``SyntheticStillClips``; the same synthesis as ``videos``).
        stills_scale_range: (smallest, largest) rescaling of a photograph before it is cropped.
        weights: sampling weights of (LOL, synthetic video, paired[, stills]) sources; the fourth
            is needed only with ``stills``.
        exposure_jump_prob: share of synthetic-video clips whose frames get independent exposures
            (within 3x either way; see SyntheticVideoClips).
        video_exposure_range: (lowest, highest) linear exposure of the synthetic dark video
            (log-uniform; 0.01 is 6.6 stops under).
        video_h264_prob: share of synthetic clips given an H.264 round trip (block artefacts).
        motion_blur_prob: share of synthetic video and photograph clips given a handheld pan's
            motion blur, of a length drawn per frame up to ``motion_blur_max`` px (at the clips'
            scale; target and input alike: ``stpr.data.motion.motion_blur_clip``).
        degradation: how the synthetic video and photograph clips are darkened: "white"
            (``data/synthesis.py``, Poisson-Gaussian noise on sRGB pixels; every model up to v7) or
            "camera" (``data/camera.py``, a phone pipeline with mosaic, in-camera processing and
            H.264, calibrated on real dark clips) or "mixed" (either, per clip).
        camera_share: with "mixed", the share of clips darkened by the camera rather than white
            noise (0.5, even odds, in every run before q16).
        video_noise_scale: multiplies the synthetic sensor noise std (1 = as synthesised, 0 =
            noise-free; ``scripts/fusion_bound.py`` uses it to bound what fusion can add).
        camera_on_device: with the "camera" degradation, darken the clips that draw no H.264
            round trip on the training device, a batch at once (``data/camera_torch.py``), instead
            of one by one in the loader workers (which cannot feed a GPU's batches of 64 × 256²).
        steps, batch, crop, lr, min_lr, warmup: optimisation (crop at least ``MIN_CROP`` px).
        max_minutes: stop after this many minutes of training steps (0: no limit), validating and
            saving at the step it stops; the learning rate then decays by whichever of the time and
            the steps is further along, so a time-boxed run (a GPU lease) still ends at min_lr.
            The clock starts afresh when a run is resumed. One process only (not under torchrun).
        w_ssim, w_temporal, w_flow: loss weights (Charbonnier has weight 1).
        w_tone, w_colour, w_edge: weights of ``losses.tone_loss`` (luma quantiles: blacks and
            contrast), ``colour_loss`` (hue and saturation) and ``edge_loss`` (image gradients);
            0 (off) in every model up to v7.
        w_temporal_coarse: weight of ``losses.temporal_coarse_loss`` (the temporal term on 8x8
            block means), on the clips the temporal term sees; 0 (off) in every model up to v8,
            2.0 in v9's first stage.
        w_black: weight of ``losses.black_loss`` (one-sided: the output's darkest luma quantiles,
            on 4x4 area means, above the truth's), on the clips the tone term sees. 0 (off) in
            every model up to v8, 1.0 in v9's three fine-tunes.
        black_along_colour: the share (0-1; true is 1) of the black-level term's gradient that
            darkens along each block's own colour (R, G, B scaled alike) rather than along luma's
            weights (``losses.black_loss``); v9 averages fine-tunes at 1.0, 1.0 and 0.5.
        w_chroma: weight of ``losses.chroma_loss`` (chromaticity on 4x4 area means, every block
            weighted alike, so colour in the shadows counts), on the clips the tone term sees. 0
            (off) in every model up to v8.
        w_lowpass: weight of ``losses.lowpass_loss`` (8x8 block means: the coarse, spatially
            varying tone) on the synthetic clips only: a LOL pair's truth is not a global
            transform of its input, a synthetic clip's is (docs/research/real-footage.md sections
            36-37). 0 (off) in every model up to v8.
        teacher, w_teacher: a frozen model (weights file or shipped name) run on the same dark
            clips, and the weight of a Charbonnier term between the output and its (clamped)
            output on the synthetic clips only (not LOL pairs): keeps what the teacher does on
            video (e.g. v8's rendering of very dark frames, docs/research/real-footage.md §44)
            while the truth terms train restoration, or distils a small model from a large one.
            0 (off) in every model up to v8.
        lol_tone_free: LOL pairs teach restoration, not tone: their reconstruction, SSIM and edge
            losses score the output after the per-sample, per-channel gain and offset that best
            fit it to the ground truth (least squares, not back-propagated), and the tone and
            colour losses skip them, so LOL's lifted blacks and lower saturation are not learned
            (docs/research/real-footage.md section 7).
        lol_natural: with the looks "lol" and a default one, the share of LOL clips that train the
            default look, tone-free as above, instead of the "lol" look with their tone: the default
            look then learns LOL's restoration of deep shadows but not its tone.
        val_every, ckpt_every, log_every: in steps.
        seed: everything random derives from it.
        workers: DataLoader worker processes (per training process), started by a forkserver (see
            ``_worker_context``): a script that calls ``train`` with workers > 0 needs the
            ``if __name__ == "__main__":`` guard. threads: torch intra-op threads (0 = default).
        device: "auto" (the process's GPU when CUDA is available, else CPU), "cpu" or "cuda".
        amp: run the network's forward pass under bfloat16 autocast (convolutions in bfloat16; the
            losses stay float32). For GPUs and for CPUs that multiply bfloat16 natively
            (AVX512-BF16 or AMX); on other CPUs it is ignored with a warning and the run
            trains in float32 (emulated bfloat16 steps ran ~11x slower on an AVX2-only CPU).
        clip_frames: frames per training clip (0: T + 1); the two middle frames are enhanced.
        model: STPRConfig fields.
        init: optional weights file to start from.
        train_only: "" (the whole model) or "flow": only the learned flow net trains, on its
            end-point error against the teacher flows of every consecutive pair of each clip, both
            directions; the rest of the model is frozen and not run (a cheap flow stage for a
            trained model whose flow is weak; one process only).
    """

    out_dir: str = "runs/default"
    lol_root: str = ""
    lol_val: int = 30
    lol_siblings: int = 0
    videos: list[str] = field(default_factory=list)
    video_scale: float = 1.0
    lol_max_shift: float = 6.0
    paired_root: str = ""
    paired_layout: str = "sdsd"
    val_video: str = ""
    val_video_frames: int = 30
    stills: list[str] = field(default_factory=list)
    stills_scale_range: list[float] = field(default_factory=lambda: [0.4, 1.0])
    weights: list[float] = field(default_factory=lambda: [0.6, 0.4, 0.0])
    exposure_jump_prob: float = 0.0
    video_exposure_range: list[float] = field(default_factory=lambda: [0.01, 0.3])
    video_h264_prob: float = 0.2
    motion_blur_prob: float = 0.0
    motion_blur_max: float = 12.0
    video_noise_scale: float = 1.0
    degradation: str = "white"
    camera_share: float = 0.5
    camera_on_device: bool = False
    steps: int = 20000
    max_minutes: float = 0.0
    batch: int = 8
    crop: int = 96
    lr: float = 2e-3
    min_lr: float = 2e-5
    warmup: int = 200
    w_ssim: float = 0.2
    w_temporal: float = 0.2
    w_flow: float = 0.05
    w_tone: float = 0.0
    w_colour: float = 0.0
    w_edge: float = 0.0
    w_lowpass: float = 0.0
    w_black: float = 0.0
    black_along_colour: float = 0.0
    w_chroma: float = 0.0
    w_temporal_coarse: float = 0.0
    teacher: str = ""
    w_teacher: float = 0.0
    lol_tone_free: bool = False
    lol_natural: float = 0.0
    val_every: int = 1000
    ckpt_every: int = 250
    log_every: int = 25
    seed: int = 0
    workers: int = 1
    threads: int = 0
    device: str = "auto"
    amp: bool = False
    clip_frames: int = 0
    model: dict = field(default_factory=dict)
    init: str = ""
    train_only: str = ""


def _coerce(value: str, current):
    """Parse a CLI override string to the type of the current value."""
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"expected true/false, got {value!r}")
    try:
        if isinstance(current, (list, tuple, dict)):
            return json.loads(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError:
        raise UsageError(f"cannot parse {value!r} as {type(current).__name__}") from None
    return value


def load_config(path: str | None, overrides: list[str]) -> TrainConfig:
    """TrainConfig from an optional JSON file plus ``key=value`` overrides (``model.channels=24``).

    Retired options (``stpr.models.stpr_arch.RETIRED``, ``train_only="temporal"``) at their off
    values are dropped; turned on, they are a UsageError that names them."""
    cfg = TrainConfig()
    data = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read config {path}: {e}") from None
    known = {f.name for f in fields(TrainConfig)}
    for k in data:
        if k not in known:
            raise UsageError(f"unknown training config key {k!r} in {path}")
    cfg = TrainConfig(**{**asdict(cfg), **data})
    model_defaults = STPRConfig().to_dict()
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"override must look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        if key.startswith("model."):
            sub = key[6:]
            if sub in RETIRED:  # refused (or dropped, when off) below
                off = RETIRED[sub]
                cfg.model[sub] = _coerce(value, 8.0 if off is None else off)
                continue
            if sub not in model_defaults:
                raise UsageError(f"unknown model config key {sub!r}")
            cfg.model[sub] = _coerce(value, cfg.model.get(sub, model_defaults[sub]))
        elif key in known:
            setattr(cfg, key, _coerce(value, getattr(cfg, key)))
        else:
            raise UsageError(f"unknown training config key {key!r}")
    check_retired(cfg, path)
    check_config(cfg)
    return cfg


# Crops of 8 px failed in SSIM's 11x11 window and 11 px in the flow pyramid; 12 and 13 trained.
MIN_CROP = 16


def check_config(cfg: TrainConfig) -> None:
    """UsageError for a setting no run can use, before any data is read (loading LOL's pairs
    alone takes minutes). ``load_config`` and ``train`` both call it."""
    for name in ("steps", "val_every", "ckpt_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.crop < MIN_CROP:
        raise UsageError(f"crop must be >= {MIN_CROP} px, got {cfg.crop}")
    for name in ("workers", "threads", "warmup", "lol_val", "val_video_frames"):
        if getattr(cfg, name) < 0:
            raise UsageError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not cfg.lr > 0 or not cfg.min_lr >= 0:
        raise UsageError(f"need lr > 0 and min_lr >= 0, got lr {cfg.lr}, min_lr {cfg.min_lr}")
    if not 0 <= cfg.seed < 2 ** 32:
        raise UsageError(f"seed must be in [0, 2**32), got {cfg.seed}")
    if not cfg.video_scale > 0:
        raise UsageError(f"video_scale must be > 0, got {cfg.video_scale}")
    try:
        STPRConfig.from_dict(cfg.model)
    except (ValueError, TypeError) as e:
        raise UsageError(f"bad model config: {e}") from None
    lo_hi = cfg.video_exposure_range
    if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
        raise UsageError(f"video_exposure_range must be [lowest, highest] with 0 < lowest <= highest, got {lo_hi}")
    if not 0 <= cfg.video_h264_prob <= 1:
        raise UsageError(f"video_h264_prob must be in [0, 1], got {cfg.video_h264_prob}")
    if not 0 <= cfg.motion_blur_prob <= 1:
        raise UsageError(f"motion_blur_prob must be in [0, 1], got {cfg.motion_blur_prob}")
    if not 0 < cfg.motion_blur_max <= 64:
        raise UsageError(f"motion_blur_max must be in (0, 64] px, got {cfg.motion_blur_max}")
    if cfg.clip_frames != 0 and cfg.clip_frames < 2:
        raise UsageError(f"clip_frames must be 0 (T + 1) or at least 2, got {cfg.clip_frames}")
    if not cfg.lol_max_shift >= 0:
        raise UsageError(f"lol_max_shift must be >= 0, got {cfg.lol_max_shift}")
    if not cfg.video_noise_scale >= 0:
        raise UsageError(f"video_noise_scale must be >= 0, got {cfg.video_noise_scale}")
    from stpr.data.datasets import DEGRADATIONS

    if cfg.degradation not in DEGRADATIONS:
        raise UsageError(f"degradation must be one of {', '.join(DEGRADATIONS)}, got {cfg.degradation!r}")
    if not cfg.max_minutes >= 0:
        raise UsageError(f"max_minutes must be >= 0, got {cfg.max_minutes}")
    if not 0.0 <= cfg.camera_share <= 1.0:
        raise UsageError(f"camera_share must be in [0, 1], got {cfg.camera_share}")
    if cfg.camera_on_device and cfg.degradation != "camera":
        raise UsageError('camera_on_device needs degradation "camera"')
    for name in ("w_ssim", "w_temporal", "w_flow", "w_tone", "w_colour", "w_edge", "w_lowpass", "w_teacher",
                 "w_temporal_coarse", "w_black", "w_chroma"):
        if not getattr(cfg, name) >= 0:
            raise UsageError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not 0.0 <= float(cfg.black_along_colour) <= 1.0:
        raise UsageError(f"black_along_colour must be in [0, 1], got {cfg.black_along_colour}")
    if cfg.w_teacher > 0 and not cfg.teacher:
        raise UsageError("w_teacher > 0 needs a teacher (a weights file or a shipped model's name)")
    if len(cfg.weights) not in (3, 4) or min(cfg.weights) < 0:
        raise UsageError(f"weights must be 3 or 4 non-negative numbers (LOL, video, paired[, stills]), "
                         f"got {cfg.weights}")
    if cfg.stills and len(cfg.weights) < 4:
        raise UsageError(f"stills need a fourth entry in weights (LOL, video, paired, stills), got {cfg.weights}")
    sr = cfg.stills_scale_range
    if len(sr) != 2 or not 0 < sr[0] <= sr[1]:
        raise UsageError(f"stills_scale_range must be [smallest, largest] with 0 < smallest <= largest, got {sr}")
    if cfg.lol_tone_free and "lol" in cfg.model.get("looks", ()):
        raise UsageError('lol_tone_free keeps LOL\'s tone out of the model, and the look "lol" is there to learn '
                         "it: use one or the other")
    if not 0.0 <= cfg.lol_natural <= 1.0:
        raise UsageError(f"lol_natural must be in [0, 1], got {cfg.lol_natural}")
    if cfg.lol_natural > 0 and "lol" not in cfg.model.get("looks", ()):
        raise UsageError('lol_natural sends some LOL clips to the default look instead of the look "lol": '
                         'the model needs "looks" with "lol" in them')
    if cfg.lol_siblings < 0:
        raise UsageError(f"lol_siblings must be >= 0, got {cfg.lol_siblings}")
    check_train_only(cfg)


def check_retired(cfg: TrainConfig, where: str | None = None) -> None:
    """Drop the retired options ``cfg`` names at their off values (in place); refuse them turned on."""
    prefix = f"{where}: " if where else ""
    if cfg.train_only == "temporal":
        raise UsageError(f'{prefix}train_only = "temporal": this training stage was retired; the last commit '
                         f"that has it is {RETIRED_AT}")
    if not isinstance(cfg.model, dict):
        return  # load_config's model check reports it
    try:
        cfg.model = drop_retired(cfg.model, prefix="model.")
    except RetiredOptionError as e:
        raise UsageError(f"{prefix}{e}") from None


def check_train_only(cfg: TrainConfig) -> None:
    """``train_only`` must name a part that the model has and that can train on its own."""
    if cfg.train_only not in ("", "flow"):
        raise UsageError(f'train_only must be "" (the whole model) or "flow", got {cfg.train_only!r}')
    mc = STPRConfig.from_dict(cfg.model)
    if cfg.train_only == "flow" and (mc.flow_mode != "learned" or mc.frames < 2):
        raise UsageError('train_only="flow" needs the learned flow (flow_mode "learned", frames > 1)')


# ------------------------------------------------------------------------------ command line
TRAIN_HELP = "train an STPR model"
TRAIN_DESCRIPTION = ("Train STPR. Settings come from a JSON config plus key=value overrides. "
                     "Started by torchrun (torchrun --nproc-per-node=N -m stpr.train ...), "
                     "it trains with DistributedDataParallel, splitting the global batch "
                     "across the processes.")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The training arguments, for ``stpr train`` and ``python -m stpr.train``."""
    p.add_argument("--config", help="JSON training config (see configs/default.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set steps=500 --set model.channels=24")
    p.add_argument("--resume", action="store_true", help="continue the run in out_dir from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
