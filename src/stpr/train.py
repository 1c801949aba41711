"""Training loop for STPR (``stpr train``).

A run directory holds everything needed to continue or reuse the run:
``config.json`` (the full TrainConfig), ``last.safetensors`` (model weights with config metadata),
``last_state.pt`` (optimiser, scheduler, step), ``best.safetensors`` (best validation PSNR) and
``log.csv`` (one row per logged step / validation).

The configuration (``TrainConfig``, ``load_config``) and the command-line arguments live in
``stpr.train_config``; ``main`` here is ``python -m stpr.train``, which ``stpr train`` runs too.

Distributed training: started by ``torchrun`` (``torchrun --nproc-per-node=N -m stpr.train ...`` or
``torchrun --nproc-per-node=N --no-python stpr train ...``), every process runs ``train`` with the
same config; the model is wrapped in DistributedDataParallel and each step's global batch of
``cfg.batch`` samples is split across the processes (see ``_StepSampler``), so N processes take
exactly the optimisation steps one process would take with the same config. Only rank 0 shows
progress, writes ``log.csv``, validates and saves checkpoints; the others wait for it at a barrier.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stpr import distributed as D
from stpr.checkpoint import save_model
from stpr.data.datasets import LOLClips, MixedClips, PairedVideoFolders, SyntheticStillClips, \
    SyntheticVideoClips, apply_deferred_camera, lol_file, lol_sibling_split, lol_split, read_stills, read_video_frames
from stpr.errors import InputError, StprError, UsageError
from stpr.evaluate import eval_lol, eval_video, synthetic_eval_clip
from stpr.hardware import has_native_bf16
from stpr.losses import (black_loss, charbonnier, chroma_loss, colour_loss, edge_loss, fit_affine, flow_loss,
                         lowpass_loss, ssim_loss, temporal_coarse_loss, temporal_loss, tone_loss)
from stpr.models.common import frame_stats
from stpr.models.stpr_arch import STPR, STPRConfig
from stpr.train_config import (TRAIN_DESCRIPTION, TrainConfig, add_train_arguments, check_config, check_retired,  # noqa: F401
                               check_train_only, load_config)


def lr_at(step: int, cfg: TrainConfig, time_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to min_lr. ``time_frac``: the share of ``max_minutes``
    spent; the decay follows whichever of it and the share of the steps is further along."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = max((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup), time_frac)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


class _StepSampler(torch.utils.data.Sampler):
    """Sample indices for steps [start, steps): step k always gets the same indices, so a resumed
    run sees exactly the batches the uninterrupted run would have.

    Step k's global batch is the samples [k * batch, (k + 1) * batch) of an infinite, seeded index
    space (sample i is a pure function of (seed, i)). With ``world`` processes, rank r takes its
    contiguous share of those indices (``distributed.shard``: sizes differ by at most one), so the
    union over ranks is exactly the global batch a single process would use at step k, whatever
    the number of processes. This is what DistributedSampler + set_epoch(epoch) provides for
    finite epoch-based datasets, but keyed by step instead of epoch: DistributedSampler strides
    over a shuffled epoch (the global batch then depends on the number of processes, and the
    epoch's tail is padded with repeats) and can only restart at epoch boundaries, whereas here a
    resumed or re-scaled run (e.g. resumed on a different number of processes) continues with
    the very same batches.
    """

    def __init__(self, start: int, steps: int, batch: int, rank: int = 0, world: int = 1):
        self.start, self.steps, self.batch = start, steps, batch
        self.offset, self.count = D.shard(batch, rank, world)

    def __iter__(self):
        for k in range(self.start, self.steps):
            first = k * self.batch + self.offset
            yield list(range(first, first + self.count))

    def __len__(self):
        return self.steps - self.start


class _InfiniteIndex(torch.utils.data.Dataset):
    """Maps a global sample index to (epoch, index) of a finite dataset."""

    def __init__(self, ds: MixedClips):
        self.ds = ds

    def __len__(self):
        return 1 << 40

    def __getitem__(self, i):
        self.ds.set_epoch(i // len(self.ds))
        return self.ds[i % len(self.ds)]


def _worker_context(workers: int):
    """Start method of the DataLoader workers: "forkserver" where the platform has it.

    Plain fork copies whatever state the parent's libraries hold, and the parent has already used
    FFmpeg (decoding the training videos): with PyAV 19 a worker forked after that hangs at its
    first H.264 round trip (seen on a CUDA machine; parent decoding with OpenCV instead, or a
    forkserver, does not hang). A forkserver child starts from a clean interpreter, at the price of
    a few seconds of start-up and the datasets pickled for every worker (their decoded frames go as
    handles to one shared-memory block, see ``stpr.data.datasets.SharedArrays``).
    """
    import multiprocessing as mp

    if workers == 0 or "forkserver" not in mp.get_all_start_methods():
        return None
    return mp.get_context("forkserver")


def _worker_init(_: int) -> None:
    """Workers are the parallelism here: OpenCV runs single-threaded inside each of them."""
    cv2.setNumThreads(1)


def worker_options(workers: int) -> dict:
    """DataLoader keyword arguments for ``workers`` training-data workers (forkserver start,
    single-threaded OpenCV); anything loading the training datasets in workers should use them."""
    return {"num_workers": workers, "worker_init_fn": _worker_init,
            "multiprocessing_context": _worker_context(workers)}


def make_loader(data: MixedClips, cfg: TrainConfig, start: int = 0, rank: int = 0, world: int = 1,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The training loader: this rank's share of the global batch of every step in [start, steps)."""
    return torch.utils.data.DataLoader(
        _InfiniteIndex(data), batch_sampler=_StepSampler(start, cfg.steps, cfg.batch, rank, world),
        persistent_workers=False, pin_memory=pin_memory, **worker_options(cfg.workers))


def build_datasets(cfg: TrainConfig, frames: int):
    """The training mixture and the validation data ``cfg`` names. A data set that cannot make
    clips (a LOL image without its pair, images or videos smaller than the crop, videos shorter
    than a clip) is an InputError here, before any step."""
    try:
        return _build_datasets(cfg, frames)
    except ValueError as e:  # the data sets' own checks, each naming what is wrong
        raise InputError(str(e)) from None


def _build_datasets(cfg: TrainConfig, frames: int):
    srcs, weights = [], []
    val = {}
    if cfg.lol_root:
        tr, va = lol_split(Path(cfg.lol_root), cfg.lol_val)
        if not tr:
            raise UsageError(f"lol_val {cfg.lol_val} leaves no training pairs: {cfg.lol_root} has {len(va)}")
        # Held-out pairs (and siblings, taken from tr) are first read at a validation, perhaps hours in.
        for n in tr + va:
            for side in ("low", "high"):
                lol_file(Path(cfg.lol_root), side, n)
        if cfg.lol_siblings:
            try:
                tr, sib = lol_sibling_split(Path(cfg.lol_root), tr, cfg.lol_siblings)
            except ValueError as e:  # fewer scenes shot twice than siblings asked for
                raise UsageError(f"lol_siblings: {e}") from None
            val["lol_siblings"] = sib
        srcs.append(LOLClips(Path(cfg.lol_root), tr, frames, cfg.crop, seed=cfg.seed, max_shift=cfg.lol_max_shift,
                             natural_share=cfg.lol_natural))
        weights.append(cfg.weights[0])
        if va:  # lol_val = 0: every pair trains, nothing to validate on
            val["lol"] = va
    if cfg.videos:
        vids = [read_video_frames(Path(v), scale=cfg.video_scale) for v in cfg.videos]
        srcs.append(SyntheticVideoClips(vids, frames, cfg.crop, seed=cfg.seed, jump_prob=cfg.exposure_jump_prob,
                                        noise_scale=cfg.video_noise_scale,
                                        exposure_range=tuple(cfg.video_exposure_range),
                                        h264_prob=cfg.video_h264_prob, degradation=cfg.degradation,
                                        defer_camera=cfg.camera_on_device, blur_prob=cfg.motion_blur_prob,
                                        blur_max=cfg.motion_blur_max, camera_share=cfg.camera_share))
        weights.append(cfg.weights[1])
    if cfg.paired_root:
        srcs.append(PairedVideoFolders(Path(cfg.paired_root), cfg.paired_layout, frames, cfg.crop, seed=cfg.seed))
        weights.append(cfg.weights[2])
    if cfg.stills:
        stills = read_stills(cfg.stills)
        srcs.append(SyntheticStillClips(stills, frames, cfg.crop, seed=cfg.seed,
                                        exposure_range=tuple(cfg.video_exposure_range),
                                        h264_prob=cfg.video_h264_prob, noise_scale=cfg.video_noise_scale,
                                        max_shift=cfg.lol_max_shift,
                                        scale_range=tuple(cfg.stills_scale_range), degradation=cfg.degradation,
                                        defer_camera=cfg.camera_on_device, blur_prob=cfg.motion_blur_prob,
                                        blur_max=cfg.motion_blur_max, camera_share=cfg.camera_share))
        weights.append(cfg.weights[3])
    if not srcs:
        raise UsageError("no training data: set lol_root, videos, paired_root or stills")
    if not sum(weights) > 0:
        raise UsageError(f"the weights of the sources in use are all 0: {cfg.weights} (LOL, video, paired, stills)")
    if cfg.val_video:
        clean = read_video_frames(Path(cfg.val_video), max_frames=cfg.val_video_frames)
        val["video"] = (clean, synthetic_eval_clip(clean))
    return MixedClips(srcs, weights, length=100000, seed=cfg.seed), val


def validate(model: STPR, cfg: TrainConfig, val: dict) -> dict:
    res = {}
    default_look = model.look
    for key, col in (("lol", "val_lol"), ("lol_siblings", "val_sib")):
        if key in val:
            if "lol" in model.cfg.looks:  # LOL pairs are scored in LOL's look
                model.set_look("lol")
            r = eval_lol(model, Path(cfg.lol_root), val[key])
            model.look = default_look
            res[f"{col}_psnr"], res[f"{col}_ssim"] = r["psnr"], r["ssim"]
    if "video" in val:
        r = eval_video(model, *val["video"])
        res["val_video_psnr"], res["val_video_ssim"] = r["psnr"], r["ssim"]
    model.train()
    return res


class _GlobalMean:
    """Turns loss terms computed on this rank's share of the batch into the rank's contribution to
    the loss of the whole global batch.

    DDP averages gradients over the W ranks, so the update equals the single-process update on the
    global batch iff the average over ranks of the per-rank losses equals the global-batch loss:
    - plain means (Charbonnier, SSIM: every sample has the same number of pixels): a mean over the
      rank's n_r samples is scaled by n_r * W / B; the average over ranks is then
      sum_r n_r * mean_r / B, the global mean (the scale is 1 when the shares are equal);
    - masked means (temporal, flow: sum(err * mask) / sum(mask)): the denominator is summed over
      ranks first (one tiny all-reduce, no gradient through it), and each rank contributes
      W * its numerator / global denominator.
    With one process both are the identity, so single-process training is unchanged.
    """

    def __init__(self, ctx: D.DistContext | None = None, share: int = 1, batch: int = 1):
        self.ctx = ctx or D.DistContext()
        self.scale = share * self.ctx.world_size / batch

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return x if not self.ctx.enabled else x * self.scale

    def masked(self, ratio: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        """``ratio`` = local_num / max(local_den, 1), as returned by the masked losses."""
        if not self.ctx.enabled:
            return ratio
        num = ratio * den.detach().clamp_min(1.0)
        total = D.all_reduce_sum(den, self.ctx)
        return num / total.clamp_min(1.0) * self.ctx.world_size


def _rows_term(fn, outs: list[torch.Tensor], targets: list[torch.Tensor], reduce: _GlobalMean,
               rows: torch.Tensor | None) -> torch.Tensor:
    """``fn(output, target)`` over the centre frames' outputs and targets (one (B, 3, H, W) each),
    averaged like the reconstruction loss; with ``rows`` ((B,) bool) over those samples only,
    weighted by their share of the batch (0 when there are none), so per-sample statistics stay
    per sample."""
    if rows is None:
        return reduce.mean(sum(fn(o, t) for o, t in zip(outs, targets)) / len(outs))
    if not bool(rows.any()):
        return outs[0].new_zeros(())
    return reduce.mean(sum(fn(o[rows], t[rows]) for o, t in zip(outs, targets)) / len(outs)) * rows.float().mean()


def train_step(model: STPR, batch: dict, cfg: TrainConfig, forward=None,
               reduce: _GlobalMean | None = None, teacher: STPR | None = None) -> tuple[torch.Tensor, dict]:
    """One forward/backward-ready loss on a batch of N-frame clips (N = T + 1 by default).

    The two middle frames are enhanced (sharing per-frame work); both get reconstruction losses, the last two the temporal loss, and every
    learned flow is compared with the teacher flow.

    ``forward`` replaces ``model.forward_clip`` (the DDP-wrapped model in distributed training);
    ``reduce`` turns this process's loss terms into its share of the global-batch loss (see
    ``_GlobalMean``; identity by default). ``teacher`` (frozen) gives the targets of the
    ``w_teacher`` term.
    """
    if cfg.train_only == "flow":
        return flow_train_step(model, batch)
    forward = forward or model.forward_clip
    reduce = reduce or _GlobalMean()
    low, high = batch["low"], batch["high"]
    n = low.shape[1]
    centers = [n // 2 - 1, n // 2] if n >= 2 else [0]
    # LOL clips scored tone-free: all of them (lol_tone_free), or those marked lol_natural
    lol = batch.get("lol")
    natural = None if lol is None else lol * batch.get("lol_natural", torch.zeros_like(lol))
    tone_free = lol if cfg.lol_tone_free else natural
    with torch.autocast(device_type=low.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        if model.cfg.looks:  # real LOL pairs train the look named "lol", every other source the default
            lol_look = model.cfg.looks.index("lol") if "lol" in model.cfg.looks else 0
            in_lol_look = (batch["lol"] > 0.5) & ~(natural > 0.5)  # lol_natural clips: the default look
            outs, auxes = forward(low, centers, batch.get("stats"), in_lol_look.long() * lol_look)
        else:
            outs, auxes = forward(low, centers, batch.get("stats"))
    if cfg.amp:  # losses in float32: SSIM's variances and the flow error lose too much in bfloat16
        outs = [o.float() for o in outs]
        auxes = [{k: [f.float() for f in v] if k == "flows" else v for k, v in a.items()} for a in auxes]
    scored, tone_rows = outs, None
    if tone_free is not None and bool(tone_free.any()):
        # those LOL pairs: scored after the best gain and offset per channel; kept out of tone and colour
        free = tone_free.to(outs[0].dtype).view(-1, 1, 1, 1)
        scored = [o + free * (fit_affine(o, high[:, c]) - o) for o, c in zip(outs, centers)]
        tone_rows = tone_free < 0.5
    rec = reduce.mean(sum(charbonnier(o, high[:, c]) for o, c in zip(scored, centers)) / len(centers))
    sl = reduce.mean(sum(ssim_loss(o, high[:, c]) for o, c in zip(scored, centers)) / len(centers))
    loss = rec + cfg.w_ssim * sl
    parts = {"rec": rec.item(), "ssim": sl.item()}
    synthetic = None if lol is None else lol < 0.5  # the low-pass and teacher terms' rows (TrainConfig)
    truths = [high[:, c] for c in centers]
    black = partial(black_loss, along_colour=float(cfg.black_along_colour))  # a JSON true is 1.0
    for name, weight, fn, src, rows in (("tone", cfg.w_tone, tone_loss, outs, tone_rows),
                                        ("colour", cfg.w_colour, colour_loss, outs, tone_rows),
                                        ("edge", cfg.w_edge, edge_loss, scored, None),
                                        ("lowpass", cfg.w_lowpass, lowpass_loss, outs, synthetic),
                                        ("black", cfg.w_black, black, outs, tone_rows),
                                        ("chroma", cfg.w_chroma, chroma_loss, outs, tone_rows)):
        if weight > 0:
            term = _rows_term(fn, src, truths, reduce, rows)
            loss = loss + weight * term
            parts[name] = term.item()
    if teacher is not None and cfg.w_teacher > 0:
        with torch.no_grad(), torch.autocast(device_type=low.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            taught, _ = teacher.forward_clip(low, centers, batch.get("stats"))
        term = _rows_term(charbonnier, outs, [t.float().clamp(0, 1) for t in taught], reduce, synthetic)
        loss = loss + cfg.w_teacher * term
        parts["teacher"] = term.item()
    if len(centers) >= 2 and cfg.w_temporal > 0:
        a = centers[-2]
        tl = temporal_loss(outs[-2], outs[-1], high[:, a], high[:, a + 1], batch["flow_fw"][:, a],
                           batch["flow_valid"][:, a])
        if reduce.ctx.enabled:  # temporal_loss's denominator: 3 * mask pixels at output size
            mask = F.interpolate(batch["flow_valid"][:, a], size=outs[0].shape[-2:], mode="nearest")
            tl = reduce.masked(tl, 3 * mask.sum())
        loss = loss + cfg.w_temporal * tl
        parts["temporal"] = tl.item()
    if len(centers) >= 2 and cfg.w_temporal_coarse > 0:
        a = centers[-2]
        tc, blocks = temporal_coarse_loss(outs[-2], outs[-1], high[:, a], high[:, a + 1], batch["flow_fw"][:, a],
                                          batch["flow_valid"][:, a])
        tc = reduce.masked(tc, 3 * blocks)
        loss = loss + cfg.w_temporal_coarse * tc
        parts["temporal_coarse"] = tc.item()
    if model.cfg.flow_mode == "learned" and model.cfg.frames > 1 and cfg.w_flow > 0:
        fl, cnt = 0.0, 0
        from stpr.models.stpr_arch import window_indices
        for c, aux in zip(centers, auxes):
            nbrs = [i for k, i in enumerate(window_indices(c, n, model.cfg.frames)) if k != model.cfg.frames // 2]
            for i, pred in zip(nbrs, aux["flows"]):
                if abs(i - c) != 1:
                    continue  # teacher flows exist between consecutive frames only
                tgt = batch["flow_fw"][:, c] if i == c + 1 else batch["flow_bw"][:, i]
                valid = batch["flow_valid"][:, min(c, i)]
                h, w = tgt.shape[-2:]
                fl = fl + reduce.masked(flow_loss(pred[..., :h, :w], tgt, valid), valid.sum())
                cnt += 1
        if cnt:
            fl = fl / cnt
            loss = loss + cfg.w_flow * fl
            parts["flow"] = fl.item()
    return loss, parts


def flow_train_step(model: STPR, batch: dict) -> tuple[torch.Tensor, dict]:
    """``train_only="flow"``: the mean end-point error of the learned flow against the teacher
    flows, every consecutive pair of the clip in both directions. Only the flow net runs."""
    low = batch["low"]
    n = low.shape[1]
    padded, _ = model.pad(low)
    stats = batch.get("stats")
    pyr = [model.flow_features(padded[:, i], stats[:, i] if stats is not None else frame_stats(low[:, i]))
           for i in range(n)]
    fl = 0.0
    for i in range(n - 1):
        valid = batch["flow_valid"][:, i]
        h, w = valid.shape[-2:]
        fw = model.flow_net(pyr[i], pyr[i + 1])[..., :h, :w]
        bw = model.flow_net(pyr[i + 1], pyr[i])[..., :h, :w]
        fl = fl + flow_loss(fw, batch["flow_fw"][:, i], valid) + flow_loss(bw, batch["flow_bw"][:, i], valid)
    fl = fl / (2 * (n - 1))
    return fl, {"flow": fl.item()}


class _ClipForward(torch.nn.Module):
    """Makes ``forward_clip`` the module's forward, so DDP sees (and hooks) the training pass."""

    def __init__(self, model: STPR):
        super().__init__()
        self.model = model

    def forward(self, low: torch.Tensor, centers: list[int], stats: torch.Tensor | None = None,
                look: torch.Tensor | None = None):
        return self.model.forward_clip(low, centers, stats, look)


def _has_unused_parameters(model: STPR, crop: int) -> bool:
    """Whether a training pass leaves some parameters without gradient (e.g. the flow network
    with flow_mode "dis"/"zero" or frames=1): DDP must then be told to look for them. Probed with
    one tiny forward/backward on a constant clip (no randomness consumed)."""
    n = model.cfg.frames + 1
    x = torch.full((1, n, 3, crop, crop), 0.5, device=next(model.parameters()).device)
    outs, auxes = model.forward_clip(x, [n // 2 - 1, n // 2] if n >= 2 else [0])
    probe = sum(o.sum() for o in outs) + sum(f.sum() for a in auxes for f in a.get("flows", []))
    probe.backward()
    unused = any(p.requires_grad and p.grad is None for p in model.parameters())
    model.zero_grad(set_to_none=True)
    return unused


RESUME_OVERRIDABLE = ("steps", "threads", "workers", "val_every", "ckpt_every", "log_every")


def _prepare_run(cfg: TrainConfig, out: Path, resume: bool) -> TrainConfig:
    """Rank 0's checks on the run directory; returns the config to train with (the saved one on
    resume) after writing it to config.json."""
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last_state.pt"
    if resume:
        if not state_path.is_file():
            raise UsageError(f"--resume: no checkpoint in {out}")
        saved = json.loads((out / "config.json").read_text())
        # The saved run defines what is learned; only the length of the run and settings that do not
        # change the maths (threads, workers, logging cadence) follow the new command line.
        for key in RESUME_OVERRIDABLE:
            saved[key] = getattr(cfg, key)
        cfg = TrainConfig(**saved)
        check_retired(cfg, str(out / "config.json"))  # a run saved before options were retired
    elif state_path.is_file():
        raise UsageError(f"{out} already holds a run: use --resume or another out_dir")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    return cfg


def last_logged_step(run_dir: str | Path) -> int:
    """Last step a run directory's ``log.csv`` records, or -1 when it holds no resumable run
    (no ``last_state.pt`` or no log). Scripts use it to skip or resume finished runs."""
    run_dir = Path(run_dir)
    if not (run_dir / "last_state.pt").is_file() or not (run_dir / "log.csv").is_file():
        return -1
    with open(run_dir / "log.csv", newline="") as f:
        return max((int(r["step"]) for r in csv.DictReader(f)), default=0)


def _truncate_log(path: Path, step: int) -> float:
    """Drop log rows written after the checkpoint at ``step`` (a resumed run writes them again) and
    return the training time logged up to it."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)
    return float(kept[-1][1]) if len(kept) > 1 else 0.0


def _load_resume_state(out: Path) -> dict:
    st = torch.load(out / "last_state.pt", weights_only=False, map_location="cpu")
    from safetensors.torch import load_file
    st["model"] = load_file(str(out / "last.safetensors"))
    return st


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> Path:
    """Run (or continue) training. Returns the run directory.

    Under torchrun (WORLD_SIZE > 1 in the environment) this joins the process group and trains
    with DistributedDataParallel; see the module docstring.
    """
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    had_dir = out.is_dir()
    had_config = (out / "config.json").read_bytes() if (out / "config.json").is_file() else None
    ctx = D.setup(cfg.device)
    try:
        return _train(cfg, ctx, resume, quiet)
    except BaseException:
        if ctx.is_main and not resume:
            _undo_failed_start(out, had_dir, had_config)
        raise
    finally:
        D.teardown(ctx)


def _undo_failed_start(out: Path, had_dir: bool, had_config: bytes | None) -> None:
    """A run that failed before it logged or saved anything (bad data, a bad init file) leaves no
    trace: the config.json it wrote goes (or the one that was there comes back), and so does
    out_dir if this run created it and it is empty. Anything a run has logged or saved stays (it
    can be resumed or inspected)."""
    if any((out / n).exists() for n in ("log.csv", "last.safetensors", "last_state.pt")):
        return
    if had_config is not None:
        (out / "config.json").write_bytes(had_config)
    else:
        (out / "config.json").unlink(missing_ok=True)
    if not had_dir and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _train(cfg: TrainConfig, ctx: D.DistContext, resume: bool, quiet: bool) -> Path:
    out = Path(cfg.out_dir)
    state_path = out / "last_state.pt"
    main = ctx.is_main
    D.shard(cfg.batch, ctx.rank, ctx.world_size)  # a batch too small to split is a usage error
    # Rank 0 owns the run directory: it checks it, reads the saved config on resume and tells the
    # other ranks (which may run on machines that do not see out_dir at all) what to do.
    msg: dict = {}
    if main:
        try:
            cfg = _prepare_run(cfg, out, resume)
            msg = {"cfg": asdict(cfg)}
        except UsageError as e:
            msg = {"error": str(e)}
    msg = D.broadcast_object(msg, ctx)
    if "error" in msg:
        raise UsageError(msg["error"])
    cfg = TrainConfig(**msg["cfg"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = ctx.device
    if cfg.amp and not has_native_bf16(dev):
        # Without AVX512-BF16 or AMX (or on a GPU older than Ampere), bfloat16 is emulated: on an
        # AVX2-only CPU a training step was ~11x slower than float32's (a lone convolution ~150x).
        # The saved config keeps amp.
        if main and not quiet:
            what = "GPU has no native bfloat16 (compute capability below 8.0)" if dev.type == "cuda" else \
                "CPU has no native bfloat16 (AVX512-BF16 or AMX)"
            print(f"amp: this {what}; training in float32", file=sys.stderr)
        cfg = replace(cfg, amp=False)

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = STPR(STPRConfig.from_dict(cfg.model))
    if cfg.init and not resume:
        from stpr.checkpoint import load_model
        # The init may come from a model with a part more or less (a module added since, or an
        # ablation that removes one): shared tensors are copied, new ones keep their initialisation.
        # A shape mismatch on a shared name still fails.
        missing, unexpected = model.load_state_dict(load_model(Path(cfg.init)).state_dict(), strict=False)
        if (missing or unexpected) and main and not quiet:
            print(f"init from {cfg.init}: {len(missing)} tensors start fresh, {len(unexpected)} unused",
                  file=sys.stderr)
    if cfg.max_minutes and ctx.enabled:
        raise UsageError("max_minutes runs in one process (not under torchrun): ranks would stop at different steps")
    if cfg.train_only == "flow":
        if ctx.enabled:
            raise UsageError('train_only="flow" runs in one process (not under torchrun)')
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("flow_net."))
    teacher = None
    if cfg.w_teacher > 0:
        from stpr.checkpoint import load_model

        teacher = load_model(cfg.teacher).to(dev).eval().requires_grad_(False)
    model.to(dev)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=1e-4)
    start, best = 0, -1.0
    if resume:
        # Every rank resumes from the same checkpoint: rank 0 reads it and broadcasts it.
        st = D.broadcast_object(_load_resume_state(out) if main else None, ctx)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        start, best = st["step"], st["best"]
        torch.set_rng_state(st["torch_rng"])

    fwd, reduce = None, None
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        _, share = D.shard(cfg.batch, ctx.rank, ctx.world_size)
        # DDP broadcasts rank 0's parameters at construction and averages gradients in backward.
        fwd = DDP(_ClipForward(model), device_ids=[dev.index] if dev.type == "cuda" else None,
                  find_unused_parameters=_has_unused_parameters(model, cfg.crop))
        reduce = _GlobalMean(ctx, share, cfg.batch)

    frames = cfg.clip_frames or model.cfg.frames + 1
    data, val = build_datasets(cfg, frames)
    loader = make_loader(data, cfg, start, ctx.rank, ctx.world_size, pin_memory=dev.type == "cuda")

    cols = ["step", "time", "lr", "loss", "rec", "ssim", "temporal", "flow", "val_lol_psnr", "val_lol_ssim",
            "val_video_psnr", "val_video_ssim"]
    if cfg.lol_siblings:
        cols[10:10] = ["val_sib_psnr", "val_sib_ssim"]
    # the perceptual terms only when on, so the logs of runs without them keep their columns
    cols += [n for n, w in (("tone", cfg.w_tone), ("colour", cfg.w_colour), ("edge", cfg.w_edge),
                            ("lowpass", cfg.w_lowpass), ("teacher", cfg.w_teacher),
                            ("temporal_coarse", cfg.w_temporal_coarse), ("black", cfg.w_black),
                            ("chroma", cfg.w_chroma)) if w > 0]
    log_f = writer = None
    elapsed = 0.0
    if main:
        log_path = out / "log.csv"
        if resume and log_path.exists():
            elapsed = _truncate_log(log_path, start)
        new_log = not log_path.exists()
        log_f = open(log_path, "a", newline="")
        writer = csv.writer(log_f)
        if new_log:
            writer.writerow(cols)

    def checkpoint(step: int, figures: dict | None = None):
        # A step that was also validated records its figures, so a last checkpoint can ship as is.
        save_model(model, out / "last.safetensors", extra={"step": step, **(figures or {})})
        tmp = out / ".last_state.pt.tmp"
        torch.save({"optim": opt.state_dict(), "step": step, "best": best, "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, state_path)

    def run_validation():
        if dev.type == "cpu":
            return validate(model, cfg, val)
        # The evaluation helpers work on CPU tensors: validate a CPU copy of the weights.
        return validate(copy.deepcopy(model).cpu(), cfg, val)

    t0 = time.time() - elapsed  # the time column goes on across resumes
    t_loop = time.time()  # max_minutes counts from here (a resumed run gets them afresh)
    avg: dict = {}
    bar = tqdm(total=cfg.steps, initial=start, disable=quiet or not main, desc="train", unit="step")
    gen = torch.Generator(device=dev) if cfg.camera_on_device else None
    step = start
    try:
        for step, batch in enumerate(loader, start=start):
            if dev.type != "cpu":
                batch = {k: v.to(dev, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            if cfg.camera_on_device:
                # one generator per step: a resumed run draws the same noise as an unbroken one
                gen.manual_seed(cfg.seed * 1_000_003 + step)
                batch = apply_deferred_camera(batch, gen)
            time_frac = (time.time() - t_loop) / (60.0 * cfg.max_minutes) if cfg.max_minutes else 0.0
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg, time_frac)
            if ctx.enabled:
                loss, parts = train_step(model, batch, cfg, forward=fwd, reduce=reduce, teacher=teacher)
            else:
                loss, parts = train_step(model, batch, cfg, teacher=teacher)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            parts["loss"] = loss.item()
            # Each rank's parts are its contributions; their mean is the global-batch value.
            parts = D.mean_over_ranks(parts, ctx)
            for k, v in parts.items():
                avg[k] = avg.get(k, 0.0) + v
            avg["n"] = avg.get("n", 0) + 1
            done = step + 1
            bar.update(1)
            out_of_time = time_frac >= 1.0  # max_minutes spent: this step is the last
            is_log = done % cfg.log_every == 0 or done == cfg.steps or out_of_time
            is_val = done % cfg.val_every == 0 or done == cfg.steps or out_of_time
            is_ckpt = done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time
            row, res = None, None
            if is_log:
                row = {k: v / avg["n"] for k, v in avg.items() if k != "n"}
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                avg = {}
            if main and is_val:
                res = run_validation()
                row = {**(row or {}), **res}
                line = " ".join(f"{k}={v:.4f}" for k, v in res.items())
                tqdm.write(f"step {done}: {line}")
                score = res.get("val_lol_psnr", res.get("val_video_psnr", -1.0))
                if score > best:
                    best = score
                    save_model(model, out / "best.safetensors", extra={"step": done, **res})
            if main and row is not None:
                writer.writerow([done, f"{time.time() - t0:.1f}", f"{lr_at(step, cfg, time_frac):.2e}"]
                                + [f"{row[c]:.5f}" if c in row else "" for c in cols[3:]])
                log_f.flush()
            if main and is_ckpt:
                checkpoint(done, res)
            if is_val or is_ckpt:
                D.barrier(ctx)  # the other ranks wait while rank 0 validates / saves
            if out_of_time:
                break
    finally:
        bar.close()
        if log_f is not None:
            log_f.close()
    D.barrier(ctx)
    return out


def run(args: argparse.Namespace) -> int:
    """Train with the arguments of ``add_train_arguments``; returns the exit status."""
    cfg = load_config(args.config, args.overrides)
    out = train(cfg, resume=args.resume, quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"run saved in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m stpr.train ARGS`` (the entry for ``torchrun --nproc-per-node=N -m stpr.train
    --config ...``): the arguments of ``stpr train``; a usage, input or model error prints one
    line, "stpr: error: ...", and gives its exit status (a traceback with --debug)."""
    parser = argparse.ArgumentParser(prog="python -m stpr.train", description=TRAIN_DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except StprError as e:
        if args.debug:
            raise
        print(f"stpr: error: {' '.join(str(e).split())}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    # ``python -m`` runs this file as a second module, ``__main__``: run the importable
    # ``stpr.train``'s ``main``, so that the classes data-loader workers unpickle, and anything that
    # patches ``stpr.train``, are the ones this run uses.
    from stpr.train import main as _main

    sys.exit(_main())
