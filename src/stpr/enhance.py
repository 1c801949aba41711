"""Streaming enhancement: frames in, enhanced frames out, memory independent of video length.

``Enhancer.enhance_frames`` keeps only the T // 2 frames of look-ahead plus the encoded state of
the frames the current window needs; each frame is encoded once (features, flow pyramid) and
reused by the T windows that contain it. Frames too large for the memory budget are split into
overlapping tiles, each tile streamed on its own and blended back with feathered weights; tiles
share the whole frame's brightness statistics, so they agree on exposure.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from stpr._threads import OtherLoad, cores_available
from stpr.checkpoint import MODELS, load_model, resolve_weights
from stpr.errors import InputError, ModelError, UsageError
from stpr.exposure import ExposureControl
from stpr.hardware import autocast, cast_convolutions, default_batch, free_memory_mb, resolve_device, resolve_precision
from stpr.models.common import frame_stats
from stpr.models.stpr_arch import STPR, FrameState, window_indices
from stpr.models.fused import Head, Tail, compile_usable, head, head_supported, head_usable
from stpr.pipeline import BackgroundWriter, Prefetch
from stpr.temporal import DEFAULT_STRENGTH, TemporalFilter, check_strength, flow_settings
from stpr.tone import DEFAULT_STRENGTH as DEFAULT_TONE
from stpr.tone import ToneMatch, luma_quantiles

# Peak working memory of the default network per input pixel (bytes): measured 275-380 B/px as the
# growth of peak RSS when enhancing 640x360 to 1920x1080 frames untiled; used to pick a tile size
# that keeps a frame within the memory budget.
BYTES_PER_PIXEL = 400

ENGINES = ("torch", "onnx")

# Largest frame (pixels) enhanced several frames at once by default on a CPU (``Enhancer.workers``):
# at 640x360 two frames at once ran 1.25-1.4x faster end to end here, at 1280x720 level, at 1080p
# slower (docs/research/speed-and-memory.md).
AUTO_WORKERS_MAX_PIXELS = 1280 * 720

# Smallest frame (pixels) whose full-resolution passes are compiled by default on a CPU
# (``Enhancer.compile``), where frames go one at a time: end to end 1.07x at 1080p, while building
# them costs the first frame 2-4 s (about 20 s with Inductor's cache cold), which only frames this
# large repay within a short video (docs/research/speed-and-memory.md, "Fused first and last steps").
AUTO_COMPILE_MIN_PIXELS = 1280 * 720

# How often (seconds) one-frame-at-a-time enhancement on a CPU looks at the other processes' load
# and sets its torch threads to the cores they leave (``stpr._threads.OtherLoad``).
LOAD_CHECK_SECONDS = 1.0


@functools.lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (Linux), else None: used for two memory tunings below."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc has both; musl lacks malloc_trim
        return libc
    except (OSError, AttributeError):
        return None


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``; no-op elsewhere).

    At 4K the tiles' large temporaries are served from the heap once glibc's dynamic mmap
    threshold has grown, and the holes they leave between long-lived buffers made peak RSS creep
    up over the first hundred frames; trimming after each (multi-second) tiled frame stops that."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


# glibc's environment variables for the settings ``tune_malloc`` makes: one set by the user means
# they chose (and glibc read it at start-up), so none is changed.
MALLOC_ENV_VARS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                   "MALLOC_TOP_PAD_")


def tune_malloc(arenas: int = 2, environ: dict | None = None) -> bool:
    """Set glibc's malloc for a process that allocates and frees large tensors every frame (call
    early, before threads start); returns whether it applied. No-op off glibc, and when the user
    set any of ``MALLOC_ENV_VARS``.

    - At most ``arenas`` arenas: glibc gives threads their own heaps (up to 8 per core); frames
      decoded in the reader thread, tensors in the main thread and encoder buffers in the writer
      thread then fragment separate heaps. Two arenas cut 4K peak RSS by ~0.1 GB.
    - Freed memory is kept, not handed back: by default every block over glibc's mmap threshold
      (128 KB, growing to at most 32 MB) is a fresh ``mmap`` and every large ``free`` shrinks the
      heap, so each frame's temporaries were new pages, faulted in and zeroed by the kernel, again
      each frame. No mmap for blocks, a 1 GB trim threshold and a 256 MB top pad made the fast
      model 1.11-1.23x faster (model only, 640x360 to 1080p; docs/research/speed-and-memory.md).
      Tiled frames (4K) still hand memory back explicitly after each frame (``_trim_heap``).
    """
    env = os.environ if environ is None else environ
    libc = _glibc()
    if libc is None or any(v in env for v in MALLOC_ENV_VARS):
        return False
    # mallopt parameters: M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_MAX -4, M_ARENA_MAX -8.
    settings = ((-8, int(arenas)), (-4, 0), (-1, 1 << 30), (-2, 256 << 20))
    return all(bool(libc.mallopt(param, value)) for param, value in settings)


_HALF = torch.tensor(0.5)


def padded_frame(frame_u8: torch.Tensor, multiple: int) -> torch.Tensor:
    """An (H, W, 3) uint8 frame as the network's input: (1, 3, H', W') float in [0, 1], its last row
    and column repeated up to multiples of ``multiple`` (as ``STPR.pad`` does).

    Written in the default layout in one pass: the (H, W, 3) frame's own layout is channels-last,
    and converting it as it is left the padding, pooling and statistics that follow working on
    channels-last three-channel maps, their slow case (13-16 ms against 7 ms a 1080p frame here).
    """
    h, w = frame_u8.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = torch.empty(1, 3, h + ph, w + pw, device=frame_u8.device)
    x[0, :, :h, :w].copy_(frame_u8.permute(2, 0, 1))  # (a division on this transposing read is slower)
    if ph:
        x[0, :, h:, :w] = x[0, :, h - 1:h, :w]
    if pw:
        x[0, :, :, w:] = x[0, :, :, w - 1:w]
    return x.div_(255.0)


def padded_frame_u8(frame_u8: torch.Tensor, multiple: int) -> torch.Tensor:
    """An (H, W, 3) uint8 frame as (1, 3, H', W') uint8, padded as ``padded_frame`` pads it.

    In the default layout: the fused output step (``stpr.models.fused``) reading the frame in its own
    channels-last layout ran 31 ms a 1080p frame here against 9 ms, and this copy costs about 1 ms.
    """
    h, w = frame_u8.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = frame_u8.new_empty(1, 3, h + ph, w + pw)
    x[0, :, :h, :w].copy_(frame_u8.permute(2, 0, 1))
    if ph:
        x[0, :, h:, :w] = x[0, :, h - 1:h, :w]
    if pw:
        x[0, :, :, w:] = x[0, :, :, w - 1:w]
    return x


class _WindowStream:
    """Sliding-window enhancement of one stream of (tiles of) frames.

    ``push`` takes a frame and returns the outputs that became ready (centre frames whose
    look-ahead has arrived); ``finish`` flushes the rest, reflecting the window at the end.

    With ``batch`` > 1 frames are encoded ``batch`` at a time and windows decoded ``batch`` at a
    time (one network call for several frames: what keeps a GPU busy); outputs then come in bursts.
    With a ``pool`` of W threads (CPU), frames are encoded and windows decoded W at a time, each in
    its own thread (one network call per frame, W calls at once; ``Enhancer.workers``).

    With ``half_states`` (tiled frames) kept states hold their input frame as uint8 (it came from
    uint8, so ``/ 255`` restores it bit for bit): a quarter of the float32 copy, which matters at 4K
    where T + 1 states are alive. Whole frames keep it as float32 and spare the two conversions.

    With ``tail`` (one window per call) outputs are :class:`~stpr.models.fused.Tail` objects, the
    network's full-resolution last step left for the caller to run fused with the conversion to
    uint8; a model without pixel fusion then keeps each frame as the uint8 it was pushed with
    (``push``'s ``x_u8``), which the tail reads instead of a float copy. A frame pushed with a
    ``head`` (:func:`stpr.models.fused.head`) is encoded from it.
    """

    def __init__(self, model: STPR, half_states: bool = False, precision: str = "fp32", batch: int = 1,
                 device: torch.device = torch.device("cpu"), pool: ThreadPoolExecutor | None = None,
                 tail: bool = False, fused_head: bool = False):
        self.model = model
        self.tail = tail
        # the decoder reads a frame's pixels only as the tail's base when it does not blend frames
        self.u8_base = tail and not model.cfg.pixel_fusion
        self.fused_head = fused_head  # frames come with a ``head``
        self.half_states = half_states
        self.device = device
        self.precision = precision
        self.pool = pool
        self.batch = max(1, int(batch))  # with a pool: its number of threads
        self.half = model.cfg.frames // 2
        self.states: dict[int, FrameState] = {}
        self.pending: list[tuple] = []  # (x, stats, x_u8 or None, head or None)
        self.count = 0
        self.next = 0

    def push(self, x: torch.Tensor, stats: torch.Tensor, x_u8: torch.Tensor | None = None,
             head: Head | None = None) -> list:
        """x: (1, 3, H, W) padded frame in [0, 1]; stats: (1, 6) of the whole frame; x_u8: the same
        frame as uint8 (``padded_frame_u8``), kept in its state instead of ``x`` with a ``tail``;
        head: its full-resolution encoding inputs, made from ``x_u8`` (``x`` is then ``x_u8``)."""
        self.pending.append((x, stats, x_u8 if self.u8_base else None, head))
        if len(self.pending) < self.batch:
            return []
        self._encode_pending()
        return self._emit(final=False)

    def finish(self) -> list[torch.Tensor]:
        self._encode_pending()
        return self._emit(final=True)

    def _encode_pending(self) -> None:
        if not self.pending:
            return
        if self.pool is not None and len(self.pending) > 1:
            pending, self.pending = self.pending, []
            encode = self.model.encode_frame
            for state, (_, _, x_u8, _) in zip(self.pool.map(
                    lambda p: self._run(encode, *p[:2], **({"head": p[3]} if p[3] is not None else {})), pending),
                    pending):
                self.states[self.count] = state if x_u8 is None else replace(state, x=x_u8)
                self.count += 1
            return
        xs, stats, u8s, heads = zip(*self.pending)
        self.pending = []
        x = xs[0] if len(xs) == 1 else torch.cat(xs)
        fused = {"head": heads[0]} if heads[0] is not None else {}  # (one frame a call with heads)
        with autocast(self.device, self.precision):
            state = self.model.encode_frame(x, stats[0] if len(stats) == 1 else torch.cat(stats), **fused)
        if self.half_states:
            # tiled (large) frames: kept states hold their pixels as uint8, their features as fp16
            state.x = x.mul(255.0).round_().to(torch.uint8)
            state = _map_state(state, lambda t: t.to(torch.float16))
        elif u8s[0] is not None:  # the tail reads the frame as uint8: the float copy goes
            state.x = u8s[0] if len(u8s) == 1 else torch.cat(u8s)
        for k in range(len(xs)):
            self.states[self.count] = state if len(xs) == 1 else _index_state(state, k)
            self.count += 1

    def _emit(self, final: bool) -> list[torch.Tensor]:
        ready = []
        while self.next < self.count and (final or self.next + self.half < self.count):
            ready.append(self.next)
            self.next += 1
        outs = []
        for i in range(0, len(ready), self.batch):
            centres = ready[i:i + self.batch]
            windows = [[self.states[k] for k in window_indices(c, self.count, self.model.cfg.frames)]
                       for c in centres]
            if self.pool is not None:  # whole float32 frames: each window as it is, in its own thread
                kw = {"tail": True} if self.tail else {}
                decoded = self.pool.map(lambda w: self._run(self.model.decode, w, **kw)[0], windows)
                outs.extend(o if self.tail else o.float() for o in decoded)
                continue
            window = windows[0] if len(windows) == 1 else [_cat_states(col) for col in zip(*windows)]
            if self.half_states:
                window = [_map_state(st, lambda t: t.float()) for st in window]
            # decode reads the centre's pixels, and with pixel fusion the neighbours' too
            pixels = range(len(window)) if self.model.cfg.pixel_fusion else [len(window) // 2]
            for j in pixels:
                if window[j].x.dtype == torch.uint8 and not self.u8_base:
                    window[j] = replace(window[j], x=window[j].x.float().div_(255.0))
            with autocast(self.device, self.precision):
                out, _ = self.model.decode(window, **({"tail": True} if self.tail else {}))
            if self.tail:  # one window per call
                outs.append(out)
                continue
            out = out.float()
            outs.extend(out[k:k + 1] for k in range(out.shape[0]))
        keep_from = max(0, self.next - self.half)
        for k in [k for k in self.states if k < keep_from]:
            del self.states[k]
        return outs

    def _run(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` as the caller runs it, in a pool thread (inference mode and
        autocast are per thread)."""
        with torch.inference_mode(), autocast(self.device, self.precision):
            return fn(*args, **kwargs)


def _index_state(s: FrameState, k: int) -> FrameState:
    """Frame ``k`` of a batched state (views, batch dimension kept)."""
    return replace(_map_state(s, lambda t: t[k:k + 1]), x=s.x[k:k + 1], stats=s.stats[k:k + 1])


def _cat_states(states: tuple[FrameState, ...]) -> FrameState:
    """One batched state from single-frame states."""
    pyr = None
    if states[0].flow_pyr is not None:
        pyr = [torch.cat(level) for level in zip(*(s.flow_pyr for s in states))]
    return FrameState(x=torch.cat([s.x for s in states]), stats=torch.cat([s.stats for s in states]),
                      norm_small=torch.cat([s.norm_small for s in states]),
                      logb=torch.cat([s.logb for s in states]), feats=torch.cat([s.feats for s in states]),
                      flow_pyr=pyr)


def _map_state(s: FrameState, fn) -> FrameState:
    """Apply ``fn`` to the feature tensors of a state (not x, not stats)."""
    return replace(s, norm_small=fn(s.norm_small), logb=fn(s.logb), feats=fn(s.feats),
                   flow_pyr=[fn(t) for t in s.flow_pyr] if s.flow_pyr is not None else None)


@dataclass
class _Tile:
    y0: int
    x0: int
    h: int
    w: int
    stream: _WindowStream
    weight: torch.Tensor  # (1, 1, h, w) feathering weight, normalised so overlapping tiles sum to 1


# Smaller tiles hand the network almost no context and multiply the calls: --tile 1 on a 320x240
# clip made 76,800 one-pixel tiles a frame and ran for minutes on the first frame.
MIN_TILE = 32


def _tile_starts(size: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, list[int]]:
    """Split one axis of ``size`` pixels into as few tiles of at most ``tile`` pixels as an overlap
    of at least ``overlap`` allows, spread evenly. Tiles are shrunk to the smallest multiple of
    ``multiple`` that still covers the axis, so little work goes into padding and double overlaps.

    Returns (tile length, start offsets).
    """
    if tile >= size:
        return size, [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    length = min(tile, math.ceil((size + (n - 1) * overlap) / n / multiple) * multiple)
    length = max(length, math.ceil((size + (n - 1) * overlap) / n))
    return length, [round(i * (size - length) / (n - 1)) for i in range(n)]


def _feather(h: int, w: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> torch.Tensor:
    """Blend weights: ramps across the overlap on sides that touch another tile, flat elsewhere."""
    def ramp(n, lo, hi):
        r = torch.ones(n)
        k = min(overlap, n)
        if k > 0:
            edge = (torch.arange(k, dtype=torch.float32) + 1) / (k + 1)
            if lo:
                r[:k] = torch.minimum(r[:k], edge)
            if hi:
                r[n - k:] = torch.minimum(r[n - k:], edge.flip(0))
        return r

    return (ramp(h, top, bottom)[:, None] * ramp(w, left, right)[None, :])[None, None]


class Enhancer:
    """Enhance images and videos with an STPR model.

    Args:
        model: an STPR network (eval mode is set here), or an :class:`~stpr.onnx_engine.OnnxSTPR`.
        tile: tile size in pixels (at least ``MIN_TILE``); 0 disables tiling, None picks one from ``memory_mb``.
        tile_overlap: overlap between neighbouring tiles in pixels.
        threads: torch intra-op threads (None: torch's default, lowered while other processes keep
            cores busy when frames go one at a time: ``LOAD_CHECK_SECONDS``; a number: fixed).
        half_states: keep the per-frame features between windows in float16 (half the memory of
            the T + 1 frames' states; computation stays float32). None: only for tiled frames,
            where those states, spanning the whole frame, dominate memory.
        precision: "auto", "fp32", "bf16" or "fp16" (GPU only): the convolutions' precision.
            "auto" is bf16 on CPUs with AVX512-BF16 or AMX and on GPUs, else fp32
            (:func:`stpr.hardware.resolve_precision`). bf16 changes outputs by a fraction of a level.
        device: "auto" (a CUDA GPU when there is one), "cpu", "cuda" or "cuda:N".
        batch: windows per network call; None: 1 on a CPU, 8 on a GPU (2 at 4K).
        exposure: stops added to the model's exposure guess (``ExposureControl.ev``).
        brightness: mean output brightness (luma 0-255) to hold every frame at (smoothed over time
            instead without ``steady_exposure``), or None for the model's guess
            (``ExposureControl.target``).
        steady_exposure: smooth the output's brightness over time, as auto-exposure settles, so it
            does not pump with the model's per-frame guess (``ExposureControl.steady``); False:
            each frame's own guess.
        memory_mb: working-memory budget used when ``tile`` is None; None: 1000 MB on a CPU,
            half the free memory of a GPU.
        workers: on a CPU, frames enhanced at once, each in its own thread with one torch thread,
            for whole (untiled) frames that fit the memory budget ``workers`` times; None: torch's
            thread count for frames up to 1280x720 (``AUTO_WORKERS_MAX_PIXELS``), else one (one frame
            at a time on torch's threads). Tiled frames, GPUs and the onnx engine use one.
            Several frames at once keep the cores busy without the per-operation hand-offs of
            torch's threads (docs/research/speed-and-memory.md).
        temporal_filter: strength of the recursive flow-guided filter over the output frames
            (:class:`~stpr.temporal.TemporalFilter`: steadies what changes more slowly than the
            window); 0 turns it off.
        tone_match: strength of the tone curve that maps the output's shadows and mid-tones onto
            plain brightening's (:class:`~stpr.tone.ToneMatch`: takes out the haze), applied
            before the temporal filter; 0 turns it off.
        temporal_flow: the filter's flow and tolerance, one of ``stpr.temporal.FLOW_SETTINGS``
            ("medium"; :meth:`from_pretrained` picks "fast" for the shipped fast model).
        compile: run the network's full-resolution last step with the conversion to uint8, and
            for models that read a frame only through its normalised copy (``fast``) the first
            step, as passes built by ``torch.compile`` (:mod:`stpr.models.fused`) that read the
            frame as uint8: the same output within one level; the first frame waits 2-20 s while
            they are built. None: on a CPU, for whole (untiled) frames of at least
            ``AUTO_COMPILE_MIN_PIXELS`` enhanced one at a time (``workers`` 1), where Inductor is
            usable (a C++ compiler); ``STPR_COMPILE=0`` in the environment turns it off,
            ``STPR_COMPILE=1`` on for every size (``stpr bench``, ``stpr batch``). False: never.
            True: whole frames of every size, one window per call (where the passes cannot be
            built, the same arithmetic runs eagerly). The torch engine only.
    """

    def __init__(self, model: STPR, tile: int | None = None, tile_overlap: int = 32, memory_mb: int | None = None,
                 threads: int | None = None, half_states: bool | None = None, precision: str = "auto",
                 device: str = "auto", batch: int | None = None, exposure: float = 0.0,
                 brightness: float | None = None, steady_exposure: bool = True, workers: int | None = None,
                 temporal_filter: float = DEFAULT_STRENGTH, tone_match: float = DEFAULT_TONE,
                 temporal_flow: str = "medium", compile: bool | None = None):
        self.compile = compile
        self.exposure = ExposureControl(ev=exposure, target=brightness, steady=steady_exposure)
        self.temporal = TemporalFilter(strength=check_strength(temporal_filter), **flow_settings(temporal_flow))
        self.tone = ToneMatch(strength=tone_match)
        if not isinstance(model, STPR):  # onnxruntime: CPU, float32
            if str(device).lower() not in ("auto", "cpu") or str(precision).lower() not in ("auto", "fp32"):
                raise UsageError("--device and --precision apply to the PyTorch engine only (onnx runs on the "
                                 "CPU in fp32)")
            self.device, self.precision = torch.device("cpu"), "fp32"
        else:
            self.device = resolve_device(device)
            self.precision = resolve_precision(precision, self.device)
            model = model.to(self.device)
        if batch is not None and batch < 1:
            raise UsageError(f"batch must be >= 1, got {batch}")
        if tile is not None and not (tile == 0 or tile >= MIN_TILE):
            raise UsageError(f"tile must be 0 (never tile) or at least {MIN_TILE} pixels, got {tile}")
        self.model = model.eval()
        # what runs: convolution weights cast once (self.model, which identifies the weights, stays;
        # an onnxruntime model runs in fp32, where the model itself is returned)
        self._net = cast_convolutions(self.model, self.precision, self.device)
        self.batch = batch
        self.half_states = half_states
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.memory_mb = memory_mb
        if threads:
            torch.set_num_threads(threads)
        # threads not chosen: one frame at a time on a CPU runs on the cores other processes leave
        self.adapt_threads = not threads
        if workers is not None and workers < 1:
            raise UsageError(f"workers must be >= 1, got {workers}")
        self.workers = workers  # None: automatic (workers_for)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, flow: str | None = None, frames: int | None = None,
                        engine: str = "torch", look: str | None = None, **kwargs) -> "Enhancer":
        """Load weights (default: the shipped model). ``flow`` ("learned", "dis", "zero") and
        ``frames`` (e.g. 1 for per-frame enhancement) override the model's inference settings;
        ``look`` picks one of the tone looks of a model trained with several (``STPR.set_look``).

        ``engine`` "onnx" runs the network in onnxruntime: ``path`` may then be an export folder
        (``stpr export --onnx``) or a weights file, exported on the fly (about a second).
        """
        if engine not in ENGINES:
            raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if "temporal_flow" not in kwargs and resolve_weights(path).resolve() == MODELS["fast"].resolve():
            kwargs["temporal_flow"] = "fast"  # the speed tier keeps the filter's cheaper flow (§49)
        if engine == "onnx":
            from stpr.onnx_engine import OnnxSTPR, export_onnx, is_onnx_export

            if path and is_onnx_export(path):
                if flow is not None or frames is not None:
                    raise UsageError("--flow/--frames cannot change an ONNX export; export again with them")
                onnx_model = OnnxSTPR(path, threads=kwargs.get("threads"))
                if look is not None and look != onnx_model.look:
                    raise UsageError(f"this ONNX export has the look {onnx_model.look!r}, not {look!r}; "
                                     "export again with --look")
                return cls(onnx_model, **kwargs)
            model = cls._load(path, flow, frames, look)
            with tempfile.TemporaryDirectory(prefix="stpr_onnx_") as tmp:
                export_onnx(model, tmp, weights=resolve_weights(path))  # a shipped model's name: its file
                onnx_model = OnnxSTPR(tmp, threads=kwargs.get("threads"))  # sessions hold the graphs
            return cls(onnx_model, **kwargs)
        return cls(cls._load(path, flow, frames, look), **kwargs)

    @staticmethod
    def _load(path, flow, frames, look=None) -> STPR:
        if path and Path(path).is_dir():
            raise ModelError(f"{path} is a folder, not a weights file (an ONNX export needs --engine onnx)")
        return load_model(path or None, look=look, flow_mode=flow, frames=frames)

    # ------------------------------------------------------------------ tiling
    def batch_for(self, h: int, w: int) -> int:
        """Windows per network call for (h, w) frames (``batch``, or the device's default)."""
        return self.batch or default_batch(self.device, h, w)

    def budget_mb(self) -> int:
        """Working-memory budget for tiling: ``memory_mb``, else 1000 MB on a CPU and half the free
        memory of a GPU."""
        if self.memory_mb is not None:
            return self.memory_mb
        free = free_memory_mb(self.device)
        return 1000 if free is None else max(1000, free // 2)

    def tile_size_for(self, h: int, w: int) -> int:
        """Tile size used for an (h, w) frame; 0 means the whole frame at once."""
        if self.tile is not None:
            return self.tile if 0 < self.tile < max(h, w) else 0
        # every window of a batch is alive at once
        budget = self.budget_mb() * 2 ** 20 / self.batch_for(h, w)
        if h * w * BYTES_PER_PIXEL <= budget:
            return 0
        side = int((budget / BYTES_PER_PIXEL) ** 0.5)
        return max(128, side // 32 * 32)

    def workers_for(self, h: int, w: int) -> int:
        """Frames enhanced at once for (h, w) frames (``workers``): one unless on a CPU, with the
        torch engine, one window per call and float32 states, the whole frame fits the memory
        budget that many times over."""
        workers = self.workers
        if workers is None:  # measured: 1.25-1.4x end to end at 640x360, level at 720p, slower at 1080p
            workers = torch.get_num_threads() if h * w <= AUTO_WORKERS_MAX_PIXELS else 1
        if (workers < 2 or self.device.type != "cpu" or not isinstance(self.model, STPR)
                or self.batch_for(h, w) > 1 or self.half_states or self.tile_size_for(h, w) != 0):
            return 1
        fits = self.tile is not None or h * w * BYTES_PER_PIXEL * workers <= self.budget_mb() * 2 ** 20
        return workers if fits else 1

    def compiles_for(self, h: int, w: int, tile: int | None = None) -> bool:
        """Whether (h, w) frames get the fused passes (``compile``): whole frames, the torch engine,
        one window per call, and where left to choose a CPU, one frame at a time, Inductor usable
        and frames of at least ``AUTO_COMPILE_MIN_PIXELS``. ``tile``: ``tile_size_for(h, w)``
        when the caller has it."""
        tile = self.tile_size_for(h, w) if tile is None else tile
        if (self.compile is False or not isinstance(self.model, STPR) or tile != 0
                or self.batch_for(h, w) > 1 or self.half_states):
            return False
        if self.compile or os.environ.get("STPR_COMPILE") == "1":
            return True
        # several frames at once (``workers``) the passes ran slower end to end (0.92x at 640x360)
        return (self.device.type == "cpu" and h * w >= AUTO_COMPILE_MIN_PIXELS and self.workers_for(h, w) == 1
                and compile_usable())

    @property
    def _head_format(self) -> tuple[torch.dtype, bool]:
        """(dtype, channels-last) in which the convolutions read a frame (``cast_convolutions``)."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        return dtype, dtype != torch.float32 and self.device.type == "cpu"

    def _stream(self, half: bool, batch: int, pool: ThreadPoolExecutor | None = None,
                tail: bool = False, fused_head: bool = False) -> _WindowStream:
        return _WindowStream(self._net, half, self.precision, batch, self.device, pool, tail, fused_head)

    def _make_tiles(self, h: int, w: int, pool: ThreadPoolExecutor | None = None, workers: int = 1) -> list[_Tile]:
        t = self.tile_size_for(h, w)
        batch = self.batch_for(h, w) if pool is None else workers
        dev = self.device
        if t == 0:
            tail = self.compiles_for(h, w, t)
            # the first step fused too where the model reads the frame only through its normalised copy
            fused_head = tail and head_supported(self.model.cfg) and head_usable(h, w)
            return [_Tile(0, 0, h, w, self._stream(bool(self.half_states), batch, pool, tail, fused_head),
                          torch.ones(1, 1, h, w, device=dev))]
        ov = min(self.tile_overlap, t // 2)
        th, ys = _tile_starts(h, t, ov, self.model.multiple)
        tw, xs = _tile_starts(w, t, ov, self.model.multiple)
        tiles = []
        norm = torch.zeros(1, 1, h, w)
        for y0 in ys:
            for x0 in xs:
                wgt = _feather(th, tw, ov, y0 > 0, y0 + th < h, x0 > 0, x0 + tw < w)
                norm[..., y0:y0 + th, x0:x0 + tw] += wgt
                half = self.half_states is None or self.half_states
                tiles.append(_Tile(y0, x0, th, tw, self._stream(half, batch), wgt))
        for t in tiles:  # normalise once, so blending is one multiply-add per tile
            t.weight = (t.weight / norm[..., t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]).to(dev)
        return tiles

    # ------------------------------------------------------------------ streaming
    @torch.inference_mode()
    def enhance_frames(self, frames: Iterable[np.ndarray], context: int = 0) -> Iterator[np.ndarray]:
        """Enhance a stream of frames.

        Args:
            frames: iterable of (H, W, 3) uint8 RGB frames, all the same size.
            context: the first ``context`` frames only lend the temporal window their content (a
                resumed run re-reads the frames before its start): no output is made for them and
                they do not move the exposure smoothing.

        Yields:
            (H, W, 3) uint8 enhanced frames, one per input frame after the first ``context``, in order
            (lagging T // 2 frames).
        """
        tiles: list[_Tile] | None = None
        shape = None
        # Output frames being assembled: tile outputs are blended in as soon as they come, so at
        # most one full-frame accumulator per pending frame is alive, not every tile's output.
        acc: dict[int, torch.Tensor] = {}

        self.exposure.reset()
        self.temporal.reset()
        self.tone.reset()
        in_stats: dict[int, tuple] = {}  # frame index -> its input's luma quantiles (tone match)
        pushed = 0

        def to_uint8(img: torch.Tensor | Tail) -> np.ndarray:
            if isinstance(img, Tail):  # the network's last step, not run yet (``compile``)
                h, w = shape
                step = self.exposure.sample_step(h, w)
                gain = self.exposure.plain_gain(img.sample(step, h, w)[0], sampled=True)
                if gain is not None:  # the step, the factor and the conversion in one pass
                    return img.to_uint8(255.0 * gain)[0, :h, :w].cpu().numpy()
                img = img.float()[0, :, :h, :w]
            gain = self.exposure.plain_gain(img)  # steady over time
            if gain is None:  # the user's exposure choice
                img, gain = self.exposure(img), 1.0
            # clamp(gain * img, 0, 1) * 255 + 0.5 in two passes, in place (at 4K a float frame is
            # 100 MB); the conversion then truncates to the nearest level
            img = torch.add(_HALF.to(img.device), img, alpha=255.0 * gain, out=img).clamp_(0.5, 255.5)
            return img.permute(1, 2, 0).to(torch.uint8).cpu().numpy()  # uint8 crosses the bus

        def blend(t: _Tile, outs: list[torch.Tensor | Tail], first: int) -> None:
            for k, o in enumerate(outs):
                if isinstance(o, Tail):  # one whole frame: cropped when it is run
                    acc[first + k] = o
                    continue
                o = o[0, :, :t.h, :t.w]
                if len(tiles) == 1:
                    acc[first + k] = o
                    continue
                if first + k not in acc:
                    acc[first + k] = torch.zeros(3, *shape, device=self.device)
                # tile weights are normalised so the overlapping tiles sum to 1
                acc[first + k][:, t.y0:t.y0 + t.h, t.x0:t.x0 + t.w].addcmul_(o, t.weight[0])

        def ready(upto: int):
            for k in sorted(k for k in acc if k < upto):
                img = acc.pop(k)
                stats_k = in_stats.pop(k, None)
                if k >= context:
                    out = to_uint8(img)
                    if stats_k is not None:
                        out = self.tone(out, stats_k)
                    yield self.temporal(out)

        emitted = 0  # tiles run in lockstep: output k of every tile belongs to frame k
        threads_before = torch.get_num_threads()
        pool = None
        load = None  # OtherLoad, when the thread count follows the machine's load
        next_check = 0.0
        try:
            for frame in frames:
                if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                    raise InputError(f"frames must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
                if shape is None:
                    shape = frame.shape[:2]
                    workers = self.workers_for(*shape)
                    if workers > 1:
                        # each worker thread runs its frame's operations itself, one torch thread each
                        pool = ThreadPoolExecutor(workers, thread_name_prefix="stpr")
                        torch.set_num_threads(1)
                    tiles = self._make_tiles(*shape, pool, workers)
                    if (workers == 1 and self.adapt_threads and threads_before > 1 and self.device.type == "cpu"
                            and isinstance(self.model, STPR)):
                        load = OtherLoad()
                        next_check = time.monotonic() + LOAD_CHECK_SECONDS / 4  # the first look soon
                elif frame.shape[:2] != shape:
                    raise InputError(f"frame size changed from {shape[1]}x{shape[0]} to {frame.shape[1]}x{frame.shape[0]}")
                if self.tone.active and pushed >= context:
                    in_stats[pushed] = luma_quantiles(frame)
                pushed += 1
                # uint8 crosses the bus (a quarter of float32) and is converted on the device
                frame_u8 = torch.from_numpy(frame).to(self.device)
                padded_u8 = frame_head = None
                if len(tiles) > 1:  # each tile converted on its own: no full-frame float copy stays alive
                    stats = frame_stats(frame_u8.permute(2, 0, 1)[None].float().div_(255.0))
                    padded = None
                elif tiles[0].stream.fused_head:  # the first step from the uint8 frame, fused
                    padded = padded_u8 = padded_frame_u8(frame_u8, self.model.multiple)
                    stats, frame_head = head(padded_u8, shape, *self._head_format)
                else:  # one tile: the frame converted once, padded, for the statistics and the network
                    padded = padded_frame(frame_u8, self.model.multiple)
                    stats = frame_stats(padded, size=shape)
                    if tiles[0].stream.u8_base:
                        padded_u8 = padded_frame_u8(frame_u8, self.model.multiple)
                n_out = 0
                for t in tiles:
                    if padded is None:
                        crop = frame_u8[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]
                        xt, _ = self.model.pad(crop.permute(2, 0, 1)[None].float().div_(255.0))
                    else:
                        xt = padded
                    outs = t.stream.push(xt, stats, padded_u8, frame_head)
                    blend(t, outs, emitted)
                    n_out = len(outs)
                emitted += n_out
                yield from ready(emitted)
                if len(tiles) > 1:
                    _trim_heap()
                if load is not None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + LOAD_CHECK_SECONDS
                    others = load.busy()
                    if others is not None:
                        torch.set_num_threads(max(1, min(threads_before, cores_available() - round(others))))
            if tiles is not None:
                n_out = 0
                for t in tiles:
                    outs = t.stream.finish()
                    blend(t, outs, emitted)
                    n_out = len(outs)
                emitted += n_out
                yield from ready(emitted)
        finally:
            if pool is not None:
                pool.shutdown()
            if torch.get_num_threads() != threads_before:
                torch.set_num_threads(threads_before)

    def enhance_image(self, img: np.ndarray) -> np.ndarray:
        """Enhance one (H, W, 3) uint8 image (as a static clip)."""
        return next(iter(self.enhance_frames([img])))

    def enhance_video(self, src: str | Path, dst: str | Path, *, codec: str = "libx264", crf: int = 18,
                      preset: str = "medium", overwrite: bool = False, progress: bool = True,
                      resume: bool = False, segment_frames: int | None = None, on_segment=None,
                      io_threads: bool = True, fps=None, strip_metadata: bool = False) -> dict:
        """Enhance a video file, a folder of frames or an image into ``dst`` (video, PNG folder or image).

        Audio and other streams are copied, timestamps, rotation and colour tags carried over;
        the output appears under its final name only once complete.

        With ``resume`` (video outputs only) the run is resumable: it works in segments of
        ``segment_frames`` frames kept in a hidden folder beside ``dst`` and continues an
        interrupted run of the same job (see :mod:`stpr.resume`).

        ``fps`` (frames/s) times a frame folder or image input in a video output (default 25);
        video inputs keep their own timing. ``strip_metadata`` drops the file's tags (title,
        creation time, location...) and track titles from a video output.

        With ``io_threads`` decoding and encoding run in their own threads, overlapped with the
        network (see :mod:`stpr.pipeline`).

        Returns:
            {"frames": int, "seconds": float, "fps": float}
        """
        import time

        if resume:
            from stpr.resume import DEFAULT_SEGMENT_FRAMES, enhance_resumable

            return enhance_resumable(self, src, dst, codec=codec, crf=crf, preset=preset, overwrite=overwrite,
                                     segment_frames=segment_frames or DEFAULT_SEGMENT_FRAMES, progress=progress,
                                     on_segment=on_segment, fps=fps, keep_metadata=not strip_metadata)

        from tqdm import tqdm

        from stpr.io import Frame, open_input, open_output

        t0 = time.perf_counter()
        with open_input(src, fps=fps) as reader:
            info = reader.info
            with open_output(dst, info, source=Path(src) if info.kind == "video" else None, codec=codec, crf=crf,
                             overwrite=overwrite, preset=preset, keep_metadata=not strip_metadata) as writer:
                meta: deque[Frame] = deque()
                n = 0
                # Threads are stopped (writer first: finished, or dropped on error) before the
                # reader and writer themselves are closed.
                with contextlib.ExitStack() as threads:
                    decoded = threads.enter_context(Prefetch(reader, depth=2)) if io_threads else reader
                    put = threads.enter_context(BackgroundWriter(writer.write, depth=2)).put if io_threads \
                        else writer.write

                    def frames():
                        for f in decoded:
                            meta.append(f)
                            yield f.rgb

                    with tqdm(total=info.num_frames, unit="frame", disable=not progress, desc="enhance",
                              dynamic_ncols=True) as bar:
                        for out in self.enhance_frames(frames()):
                            m = meta.popleft()
                            put(Frame(rgb=out, pts=m.pts, time_base=m.time_base, index=m.index))
                            n += 1
                            bar.update(1)
                if n == 0:
                    raise InputError(f"{src}: no video frames to enhance")
        secs = time.perf_counter() - t0
        return {"frames": n, "seconds": secs, "fps": n / secs if secs > 0 else 0.0}


def enhance_array(model: STPR, frames: np.ndarray, tile: int = 0) -> np.ndarray:
    """Convenience: enhance an in-memory clip (N, H, W, 3) uint8 -> (N, H, W, 3) uint8."""
    if frames.ndim != 4:
        raise UsageError("expected (N, H, W, 3) frames")
    return np.stack(list(Enhancer(model, tile=tile).enhance_frames(list(frames))))
