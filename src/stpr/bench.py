"""``stpr bench``: speed, peak memory and compute efficiency of end-to-end enhancement.

For every frame size and method, a generated dark clip is enhanced end to end (decode + enhance +
encode, as ``stpr enhance`` does: same reader, writer, Enhancer and encoder defaults) in a fresh
Python process, so each case's peak resident memory (VmHWM, see ``_rss_mb``) is its own. The child reports
its timings split into decode, enhancement and encode+rest, and its peak RSS both after start-up
(imports, model load) and at the end.

For STPR it also counts the network's FLOPs per frame (``torch.utils.flop_counter`` on one
``encode_frame`` + one ``decode``, i.e. the streaming cost per output frame; over all tiles when the
frame is tiled) and relates the achieved GFLOP/s (FLOPs/frame x model-only frames/s) to this
machine's fp32 matmul peak, measured with a few large ``torch.matmul`` calls.

Nothing here asserts anything about time; numbers depend on the machine and its load.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from stpr.errors import UsageError
from stpr.temporal import DEFAULT_STRENGTH, check_strength
from stpr.tone import DEFAULT_STRENGTH as DEFAULT_TONE
from stpr.tone import check_tone_match

DEFAULT_SIZES = ((640, 360), (1280, 720), (1920, 1080), (3840, 2160))
DEFAULT_METHODS = ("stpr", "gamma-clahe", "gamma-clahe-temporal", "lime")


# ----------------------------------------------------------------------------- inputs
def parse_sizes(spec: str | None) -> list[tuple[int, int]]:
    """``"640x360,1920x1080"`` -> [(640, 360), (1920, 1080)] (width x height, even numbers)."""
    if spec is None:
        return list(DEFAULT_SIZES)
    sizes = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            w, h = (int(v) for v in part.split("x"))
        except ValueError:
            raise UsageError(f"bad size {part!r}; use WIDTHxHEIGHT, e.g. 1280x720") from None
        if w < 16 or h < 16 or w % 2 or h % 2:
            raise UsageError(f"size {part}: width and height must be even and >= 16")
        sizes.append((w, h))
    if not sizes:
        raise UsageError("--sizes is empty")
    return sizes


def write_clip(path: str | Path, frames: Sequence[np.ndarray], fps: float | Fraction = 25, *, crf: int = 18,
               audio_from: Path | None = None) -> int:
    """Encode uint8 RGB ``frames`` to the video ``path`` (replacing it) with stpr's own writer, as
    ``stpr enhance`` writes video: H.264 at a constant ``fps``, BT.601 below 720 lines and BT.709
    from 720 up, limited range; preset veryfast. ``audio_from``: a media file whose audio is
    copied in. Returns the number of frames."""
    from stpr.io import Frame, MediaInfo, open_output

    height, width = frames[0].shape[:2]
    fps = Fraction(fps).limit_denominator(1001000)
    info = MediaInfo(kind="video", width=width, height=height, fps=fps, num_frames=len(frames), rotation=0,
                     time_base=1 / fps, colorspace="bt709" if height >= 720 else "bt601", color_range="tv",
                     has_audio=audio_from is not None, path=Path(audio_from or "<generated>"))
    with open_output(path, info, source=audio_from, crf=crf, preset="veryfast", overwrite=True) as writer:
        for i, rgb in enumerate(frames):
            writer.write(Frame(rgb=np.asarray(rgb, dtype=np.uint8), pts=i, time_base=1 / fps, index=i))
    return writer.frames_written


def make_clip(path: str | Path, width: int, height: int, frames: int, seed: int = 0) -> None:
    """Write a dark, noisy clip with a moving texture (and a small exposure flicker) as H.264."""
    rng = np.random.default_rng(seed)
    step = max(1, width // 160)
    small = rng.random((height // 8 + 2, (width + step * frames) // 8 + 2)).astype(np.float32)
    import cv2

    tex = cv2.resize(small, ((width + step * frames) // 8 * 8 + 16, height // 8 * 8 + 16),
                     interpolation=cv2.INTER_CUBIC)
    tex = np.clip(tex, 0, 1)
    yy = np.linspace(0.4, 1.0, height, dtype=np.float32)[:, None]
    out = []
    for i in range(frames):
        t = tex[:height, i * step:i * step + width] * yy
        gain = 0.12 * (1.0 + 0.05 * np.sin(i))
        img = np.stack([t, t * 0.9, t * 0.75], axis=-1) * gain
        img += rng.normal(0.0, 0.01, img.shape).astype(np.float32)
        out.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    write_clip(path, out, fps=25)


# ----------------------------------------------------------------------------- machine peak
def matmul_peak_gflops(n: int = 2048, reps: int = 3, threads: int | None = None, dtype: str = "fp32",
                       budget_s: float = 0.1) -> float:
    """Best CPU GFLOP/s of ``reps`` square torch.matmul calls after one warm-up, in ``dtype``
    ("fp32" or "bf16"). The size doubles from 256 up to ``n`` while one product takes under
    ``budget_s``: a CPU that emulates bfloat16 (~1 GFLOP/s, no AVX512-BF16 or AMX) is measured in
    about a second, where 2048² would take minutes."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        dt = torch.bfloat16 if dtype == "bf16" else torch.float32
        size = min(256, n)
        while True:
            a = torch.randn(size, size).to(dt)
            b = torch.randn(size, size).to(dt)
            t0 = time.perf_counter()
            torch.matmul(a, b)  # also the warm-up of the size that is kept
            if size >= n or time.perf_counter() - t0 > budget_s:
                break
            size = min(2 * size, n)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2.0 * size ** 3 / best / 1e9


# ----------------------------------------------------------------------------- FLOPs
def model_gflops(weights: str | Path | None, width: int, height: int, frames: int | None = None,
                 flow: str | None = None) -> tuple[float, str]:
    """GFLOPs per output frame of the STPR network at ``width`` x ``height``: one ``encode_frame``
    plus one ``decode`` of a T-frame window per tile (padded tile sizes, tiling as ``Enhancer``
    picks it). Counted on the meta device, so nothing is computed. Returns (GFLOPs, note)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from stpr.checkpoint import load_model
    from stpr.enhance import Enhancer
    from stpr.models.common import frame_stats
    from stpr.models.stpr_arch import STPR, STPRConfig

    cpu_model = load_model(weights or None, frames=frames, flow_mode=flow)
    note = ""
    cfg_d = cpu_model.cfg.to_dict()
    if cfg_d["flow_mode"] == "dis":
        cfg_d["flow_mode"] = "zero"
        note = "DIS flow (OpenCV) not counted"
    tiles = Enhancer(cpu_model)._make_tiles(height, width)
    with torch.device("meta"):
        model = STPR(STPRConfig.from_dict(cfg_d)).eval()
    shapes: dict[tuple[int, int], int] = {}
    for t in tiles:
        shapes[(t.h, t.w)] = shapes.get((t.h, t.w), 0) + 1
    total = 0
    for (th, tw), count in shapes.items():
        x, _ = model.pad(torch.zeros(1, 3, th, tw, device="meta"))
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            state = model.encode_frame(x, frame_stats(x))
            model.decode([state] * model.cfg.frames)
        total += counter.get_total_flops() * count
    if len(tiles) > 1:
        note = (note + "; " if note else "") + f"{len(tiles)} tiles"
    return total / 1e9, note


# ----------------------------------------------------------------------------- worker (child process)
def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    On Linux this is VmHWM of /proc/self/status: ``ru_maxrss`` would also count the parent's
    peak, because the kernel carries it over the fork + exec that started this worker (a bench
    parent that generated 4K clips would inflate every child's figure)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (2 ** 20 if sys.platform == "darwin" else 1024)


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _worker(spec: dict) -> dict:
    """Enhance ``spec["clip"]`` end to end with one method; runs in its own process."""
    method, clip, dst = spec["method"], spec["clip"], spec["output"]
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    t_load = time.perf_counter()
    if method in ("stpr", "stpr-perframe"):
        from stpr.enhance import Enhancer

        enhancer = Enhancer.from_pretrained(spec.get("model"), frames=1 if method == "stpr-perframe" else None,
                                            flow=spec.get("flow"), engine=spec.get("engine", "torch"),
                                            threads=spec.get("threads"), precision=spec.get("precision", "auto"),
                                            device=spec.get("device", "auto"), batch=spec.get("batch"),
                                            workers=spec.get("workers"),
                                            # the per-frame variant: no temporal processing at all, as in stpr eval
                                            temporal_filter=0.0 if method == "stpr-perframe" else
                                            spec.get("temporal_filter", DEFAULT_STRENGTH),
                                            tone_match=0.0 if method == "stpr-perframe" else
                                            spec.get("tone_match", DEFAULT_TONE))
        load_s = time.perf_counter() - t_load
        rss_start = _rss_mb()
        dec, enh = [0.0], [0.0]
        orig = enhancer.enhance_frames

        def timed(it, acc):
            it = iter(it)
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    acc[0] += time.perf_counter() - t0
                    return
                acc[0] += time.perf_counter() - t0
                yield item

        # enhance_video pulls decoded frames through enhance_frames: time both, subtract decode.
        enhancer.enhance_frames = lambda frames: timed(orig(timed(frames, dec)), enh)
        res = enhancer.enhance_video(clip, dst, overwrite=True, progress=False, preset=spec.get("preset", "medium"),
                                     io_threads=spec.get("io_threads", True))
        n, total = res["frames"], res["seconds"]
        decode_s, model_s = dec[0], enh[0] - dec[0]
        resolved = {"precision": enhancer.precision, "device": str(enhancer.device)}
    else:
        from stpr.baselines import METHODS
        from stpr.io import Frame, open_input, open_output

        fn = METHODS[method]
        load_s = time.perf_counter() - t_load
        rss_start = _rss_mb()
        t0 = time.perf_counter()
        with open_input(clip) as reader:
            info = reader.info
            src = list(reader)
        t1 = time.perf_counter()
        outs = fn([f.rgb for f in src])
        t2 = time.perf_counter()
        with open_output(dst, info, source=Path(clip), overwrite=True, preset=spec.get("preset", "medium")) as writer:
            for f, o in zip(src, outs):
                writer.write(Frame(rgb=o, pts=f.pts, time_base=f.time_base, index=f.index))
        t3 = time.perf_counter()
        n, total, decode_s, model_s = len(src), t3 - t0, t1 - t0, t2 - t1
        resolved = {}
    return {**resolved, "frames": n, "seconds": total, "decode_seconds": decode_s, "model_seconds": model_s,
            "encode_seconds": total - decode_s - model_s, "load_seconds": load_s,
            "rss_start_mb": rss_start, "peak_rss_mb": _rss_mb(), "cpu_seconds": _cpu_seconds()}


def _worker_main(argv: list[str]) -> int:
    from stpr.enhance import tune_malloc

    tune_malloc()  # as `stpr enhance` does
    spec = json.loads(argv[1])
    try:
        out = _worker(spec)
    except Exception as e:  # noqa: BLE001 - reported back to the parent as the case's error
        out = {"error": f"{type(e).__name__}: {e}"}
    print("STPR_BENCH_RESULT " + json.dumps(out), flush=True)
    return 0


def _start_case(clip: Path, method: str, out_dir: Path, model: str | None = None, flow: str | None = None,
                threads: int | None = None, engine: str = "torch", io_threads: bool = True,
                precision: str = "auto", device: str = "auto", batch: int | None = None,
                preset: str = "medium", env: dict | None = None, tag: str = "",
                workers: int | None = None, temporal_filter: float | None = None,
                tone_match: float | None = None) -> tuple[subprocess.Popen, Path]:
    """Start one (clip, method) case in a fresh Python process (``env``: extra environment)."""
    spec = {"clip": str(clip), "method": method, "output": str(out_dir / f"{clip.stem}_{method}{tag}.mp4"),
            "model": str(model) if model else None, "flow": flow, "threads": threads, "engine": engine,
            "io_threads": io_threads, "precision": precision, "device": device, "batch": batch, "preset": preset,
            "workers": workers,
            **({} if temporal_filter is None else {"temporal_filter": temporal_filter}),
            **({} if tone_match is None else {"tone_match": tone_match})}
    proc = subprocess.Popen([sys.executable, "-m", "stpr.bench", "--worker", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    return proc, Path(spec["output"])


def _finish_case(proc: subprocess.Popen, output: Path) -> dict:
    """Wait for a case started by ``_start_case``; returns its timing/memory dict."""
    stdout, stderr = proc.communicate()
    for line in reversed(stdout.splitlines()):
        if line.startswith("STPR_BENCH_RESULT "):
            res = json.loads(line[len("STPR_BENCH_RESULT "):])
            break
    else:
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        res = {"error": f"worker exited with {proc.returncode}: {tail[0]}"}
    output.unlink(missing_ok=True)
    return res


def run_case(clip: Path, method: str, out_dir: Path, **kwargs) -> dict:
    """Run one (clip, method) case in a fresh Python process; returns its timing/memory dict.
    Keyword arguments as ``_start_case``."""
    return _finish_case(*_start_case(clip, method, out_dir, **kwargs))


def run_side_by_side(jobs: int, clip: Path, out_dir: Path, env: dict | None = None, **kwargs) -> list[dict]:
    """``jobs`` copies of the stpr case at once, as two users or a batch sharing the machine would.
    Returns each job's dict (``cpu_seconds`` tells spinning from working)."""
    started = [_start_case(clip, "stpr", out_dir, env=env, tag=f"_{i}", **kwargs) for i in range(jobs)]
    return [_finish_case(*s) for s in started]


def run_repeated(repeat: int, *args, **kwargs) -> dict:
    """``run_case`` ``repeat`` times; the run with the median end-to-end time is reported, with
    every run's frames/s in ``fps_runs`` and the largest peak RSS of all runs."""
    runs = [run_case(*args, **kwargs) for _ in range(max(1, repeat))]
    errors = [r for r in runs if r.get("error")]
    if errors:
        return errors[0]
    return _median_run(runs)


def run_marginal(repeat: int, clip: Path, short_clip: Path, *args, **kwargs) -> dict:
    """``run_repeated`` on ``clip``, with each run followed by one on ``short_clip`` (the same
    content, fewer frames), plus ``marginal_fps``: (frames of the long clip - frames of the short)
    / (median seconds of the long - median seconds of the short). Start-up costs inside the timed
    part (the first frames' allocations, the encoder's set-up and final flush) are the same in
    both and cancel."""
    longs, shorts = [], []
    for _ in range(max(1, repeat)):
        longs.append(run_case(clip, *args, **kwargs))
        shorts.append(run_case(short_clip, *args, **kwargs))
    errors = [r for r in longs + shorts if r.get("error")]
    if errors:
        return errors[0]
    med = _median_run(longs)
    t_short = sorted(r["seconds"] for r in shorts)[len(shorts) // 2]
    dt = med["seconds"] - t_short
    med["marginal_fps"] = (med["frames"] - shorts[0]["frames"]) / dt if dt > 0 else None
    med["marginal_frames"] = (shorts[0]["frames"], med["frames"])
    return med


def _median_run(runs: list[dict]) -> dict:
    """The run with the median end-to-end time, with every run's frames/s (``fps_runs``) and the
    largest peak RSS of all."""
    runs = sorted(runs, key=lambda r: r["seconds"])
    med = dict(runs[len(runs) // 2])
    med["fps_runs"] = [r["frames"] / r["seconds"] for r in runs]
    med["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    med["repeat"] = len(runs)
    return med


# ----------------------------------------------------------------------------- driver
# One FLOP count per (weights, size, T, flow): every engine and length of a size shares it.
_model_gflops_cached = functools.lru_cache(maxsize=None)(model_gflops)


def _has_onnx() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def _add_rates(r: dict, method: str, model, flow, w: int, h: int, peaks: dict[str, float]) -> None:
    """frames/s, and for STPR GFLOPs/frame and the achieved fraction of the CPU's matmul peak in
    the case's precision (none for GPU cases)."""
    from stpr.baselines import STPR_METHODS
    from stpr.checkpoint import resolve_weights

    if r.get("error"):
        return
    r["fps"] = r["frames"] / r["seconds"] if r["seconds"] > 0 else None
    r["model_fps"] = r["frames"] / r["model_seconds"] if r["model_seconds"] > 0 else None
    if method in STPR_METHODS:
        g, note = _model_gflops_cached(str(resolve_weights(model)), w, h,
                                       1 if method == "stpr-perframe" else None, flow)
        r["gflops_per_frame"] = g
        if note:
            r["flops_note"] = note
        if r["model_fps"]:
            r["achieved_gflops"] = g * r["model_fps"]
            peak = peaks.get(r.get("precision", "fp32")) if r.get("device", "cpu") == "cpu" else None
            if peak:
                r["peak_fraction"] = r["achieved_gflops"] / peak


def format_durations(rows: list[dict]) -> str:
    """Peak memory against video length (same content, same size)."""
    if not rows:
        return ""
    lines = ["| size | video length | frames | end-to-end frames/s | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['size']} | {r['seconds_of_video']:g} s | – | error: {r['error']} | |")
            continue
        lines.append(f"| {r['size']} | {r['seconds_of_video']:g} s | {r['frames']} | {_fmt(r['fps'], '.2f')} | "
                     f"{_fmt(r['peak_rss_mb'], '.0f')} |")
    return "\n".join(lines)


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _spread(r: dict) -> str:
    runs = r.get("fps_runs") or []
    return f" ({min(runs):.2f}–{max(runs):.2f})" if len(runs) > 1 else ""


def format_table(results: list[dict], peaks: dict[str, float] | None, preset: str = "medium") -> str:
    lines = []
    if peaks:
        lines.append("CPU matmul peak of this machine (square products up to 2048², the % column's reference): " +
                     ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
        lines.append("")
    lines.append(f"end-to-end: decode + enhance + encode (H.264, crf 18, preset {preset}), median of the runs "
                 "(range in brackets); model: enhancement only; RSS: per-case process (largest of the runs), "
                 "start-up = after imports and model load.")
    marginal = any("marginal_fps" in r for r in results)
    if marginal:
        lines.append("marginal: (frames of the clip - frames of one a third as long) / (the difference of their "
                     "median end-to-end times): start-up and the encoder's flush cancel.")
    lines.append("")
    lines.append("| size | method | engine | device | precision | frames | end-to-end frames/s (median) | "
                 + ("marginal frames/s | " if marginal else "") +
                 "model frames/s | peak RSS (MB) | start-up RSS (MB) | GFLOPs/frame | achieved GFLOP/s | "
                 "% of matmul peak |")
    lines.append("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if marginal else ""))
    for r in results:
        engine = r.get("engine") or "–"
        where = f"{engine} | {r.get('device', '–')} | {r.get('precision', '–')}"
        if r.get("error"):
            lines.append(f"| {r['size']} | {r['method']} | {where} | – | error: {r['error']} | | | | | | |"
                         + (" |" if marginal else ""))
            continue
        lines.append(
            f"| {r['size']} | {r['method']} | {where} | {r['frames']} | {_fmt(r['fps'], '.2f')}{_spread(r)} | "
            + (f"{_fmt(r.get('marginal_fps'), '.2f')} | " if marginal else "") +
            f"{_fmt(r['model_fps'], '.2f')} | {_fmt(r['peak_rss_mb'], '.0f')} | {_fmt(r['rss_start_mb'], '.0f')} | "
            f"{_fmt(r.get('gflops_per_frame'), '.2f')} | "
            f"{_fmt(r.get('achieved_gflops'), '.1f')} | {_fmt(r.get('peak_fraction') and 100 * r['peak_fraction'], '.1f')} |")
    return "\n".join(lines)


def run_bench(sizes: list[tuple[int, int]] | None = None, frames: int = 10, methods: list[str] | None = None,
              model: str | None = None, flow: str | None = None, threads: int | None = None,
              json_path: str | Path | None = None, log: Callable[[str], None] = lambda s: None,
              engines: list[str] | None = None, repeat: int = 3, io_threads: bool = True,
              durations: list[float] | None = None, duration_size: tuple[int, int] = (640, 360),
              precisions: list[str] | None = None, device: str = "auto", batch: int | None = None,
              preset: str = "medium", workers: int | None = None, marginal: bool = False,
              temporal_filter: float | None = None, tone_match: float | None = None) -> dict:
    """Benchmark every (size, method, engine, precision) case, each ``repeat`` times (median
    reported). ``engines`` apply to the STPR methods (default: torch, plus onnx when onnxruntime is
    installed); ``precisions`` (default ["auto"]), ``device``, ``batch`` and ``workers`` to the torch engine;
    ``preset`` is the x264 preset of every case's encoder. ``durations`` (seconds at 25 frames/s,
    ``duration_size``) adds runs of the same content at several lengths, to show peak memory does
    not grow with the video's length. ``marginal`` also times every case on a clip a third as long
    (``run_marginal``): the marginal rate, which start-up does not weigh on.
    Returns {"machine": ..., "results": [...], "durations": [...]}."""
    from stpr.baselines import ALL_METHODS, STPR_METHODS
    from stpr.checkpoint import DEFAULT_WEIGHTS, resolve_weights

    sizes = sizes or list(DEFAULT_SIZES)
    notes = []
    if methods is None and model is None and not DEFAULT_WEIGHTS.is_file():
        methods = [m for m in DEFAULT_METHODS if m not in STPR_METHODS]
        notes.append(f"stpr skipped: no default weights at {DEFAULT_WEIGHTS} (give --model)")
    methods = list(methods or DEFAULT_METHODS)
    if frames < 1:
        raise UsageError("--frames must be >= 1")
    if repeat < 1:
        raise UsageError("--repeat must be >= 1")
    if temporal_filter is not None:
        check_strength(temporal_filter)
    if tone_match is not None:
        check_tone_match(tone_match)
    if engines is None:
        engines = ["torch"] + (["onnx"] if _has_onnx() else [])
    from stpr.enhance import ENGINES

    bad_engines = [e for e in engines if e not in ENGINES]
    if bad_engines or not engines:
        raise UsageError(f"unknown engine(s) {', '.join(bad_engines) or '(none)'}; choose from {', '.join(ENGINES)}")
    if "onnx" in engines and not _has_onnx():
        raise UsageError("--engines onnx needs onnx and onnxruntime: pip install 'stpr[onnx]'")
    if threads is not None and threads < 1:
        raise UsageError("--threads must be >= 1")
    from stpr.io.encoding import check_encoder

    check_encoder("libx264", crf=18, preset=preset)  # a bad --preset: one usage error, before any case
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad:
        raise UsageError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(ALL_METHODS)}")
    uses_model = any(m in STPR_METHODS for m in methods)
    if uses_model:
        from stpr.checkpoint import load_model

        load_model(Path(model) if model else None)  # fail early (ModelError) on a bad/missing model
    from stpr.hardware import PRECISIONS, cpu_has_fast_bf16, resolve_device, resolve_precision

    precisions = list(precisions or ["auto"])
    if any(p not in PRECISIONS for p in precisions):
        raise UsageError(f"--precisions: choose from {', '.join(PRECISIONS)}, got {','.join(precisions)}")
    dev = resolve_device(device)
    resolved = [resolve_precision(p, dev) for p in precisions]  # fp16 on a CPU: a usage error now, not one per case
    log("measuring the CPU's matmul peak ...")
    peaks = {"fp32": matmul_peak_gflops(threads=threads)}
    if "bf16" in resolved and dev.type == "cpu":
        peaks["bf16"] = matmul_peak_gflops(threads=threads, dtype="bf16")
    peak = peaks["fp32"]
    import torch

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_native_bf16": cpu_has_fast_bf16(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": threads or torch.get_num_threads(),
               "matmul_peak_gflops": peak, "matmul_peaks_gflops": peaks,
               "cuda": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None, "preset": preset}
    results = []
    with tempfile.TemporaryDirectory(prefix="stpr_bench_") as tmp:
        tmp = Path(tmp)
        for w, h in sizes:
            clip = tmp / f"clip_{w}x{h}.mp4"
            log(f"{w}x{h}: generating a {frames}-frame clip")
            make_clip(clip, w, h, frames)
            short_clip = None
            if marginal:
                short_clip = tmp / f"clip_{w}x{h}_short.mp4"
                make_clip(short_clip, w, h, max(1, frames // 3))
            for m in methods:
                cases = [(None, "fp32")]  # the classical baselines: NumPy/OpenCV on the CPU
                if m in STPR_METHODS:
                    cases = [(e, p) for e in engines for p in (precisions if e == "torch" else ["fp32"])]
                for engine, prec in cases:
                    log(f"{w}x{h}: {m}" + (f" ({engine}, {prec})" if engine else ""))
                    r = {"size": f"{w}x{h}", "width": w, "height": h, "method": m, "engine": engine}
                    if engine is None:
                        r.update(device="cpu", precision="–")
                    case = dict(model=model, flow=flow, threads=threads, engine=engine or "torch",
                                io_threads=io_threads, precision=prec, device=device if engine == "torch" else "cpu",
                                batch=batch, preset=preset, workers=workers if engine == "torch" else None,
                                temporal_filter=temporal_filter, tone_match=tone_match)
                    if short_clip is None:
                        r.update(run_repeated(repeat, clip, m, tmp, **case))
                    else:
                        r.update(run_marginal(repeat, clip, short_clip, m, tmp, **case))
                    _add_rates(r, m, model, flow, w, h, peaks)
                    results.append(r)
            clip.unlink()
            if short_clip is not None:
                short_clip.unlink()
        dur_results = []
        for secs in durations or []:
            w, h = duration_size
            n = max(1, round(secs * 25))
            clip = tmp / f"clip_{w}x{h}_{n}.mp4"
            log(f"{w}x{h}: {secs:g} s ({n} frames)")
            make_clip(clip, w, h, n)
            r = {"size": f"{w}x{h}", "width": w, "height": h, "method": "stpr", "engine": "torch", "seconds_of_video": secs}
            r.update(run_case(clip, "stpr", tmp, model=model, flow=flow, threads=threads, io_threads=io_threads,
                              precision=precisions[0], device=device, batch=batch, preset=preset,
                              workers=workers, temporal_filter=temporal_filter, tone_match=tone_match))
            _add_rates(r, "stpr", model, flow, w, h, peaks)
            dur_results.append(r)
            clip.unlink()
    data = {"machine": machine, "frames": frames,
            "model": str(resolve_weights(model)) if uses_model else None,
            "notes": notes, "repeat": repeat, "marginal": marginal, "io_threads": io_threads, "precisions": precisions,
            "device": device, "batch": batch, "workers": workers,
            "temporal_filter": DEFAULT_STRENGTH if temporal_filter is None else temporal_filter,
            "tone_match": DEFAULT_TONE if tone_match is None else tone_match,
            "results": results,
            "durations": dur_results}
    if json_path:
        Path(json_path).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data


# ----------------------------------------------------------------------------- sharing the machine
# libgomp's own default (no OMP_WAIT_POLICY): spin ~300,000 iterations before sleeping. GOMP_SPINCOUNT
# overrides the passive policy stpr sets, so this row shows what stpr did before it set one.
SPIN_ENV = {"GOMP_SPINCOUNT": "300000", "KMP_BLOCKTIME": "200"}


def run_shared(jobs: int, sizes: list[tuple[int, int]], frames: int = 60, repeat: int = 1,
               model: str | None = None, threads: int | None = None,
               log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Solo against ``jobs`` stpr jobs side by side, under stpr's OpenMP wait policy and under
    libgomp's spinning default. One row per (size, policy): median wall and CPU seconds per job,
    and ``slowdown`` = side-by-side wall / solo wall (``jobs`` = each job gets exactly its share)."""
    if jobs < 2:
        raise UsageError("--side-by-side needs at least 2 jobs")
    if frames < 1 or repeat < 1:
        raise UsageError("--frames and --repeat must be >= 1")
    policies = [("stpr (OMP_WAIT_POLICY=" + os.environ.get("OMP_WAIT_POLICY", "unset") + ")", {}),
                ("spinning (GOMP_SPINCOUNT=300000)", SPIN_ENV)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stpr_bench_") as tmp:
        tmp = Path(tmp)
        for w, h in sizes:
            clip = tmp / f"clip_{w}x{h}.mp4"
            make_clip(clip, w, h, frames)
            for label, env in policies:
                log(f"{w}x{h}, {label}: solo x{repeat}, then {jobs} side by side x{repeat}")
                solo = [run_case(clip, "stpr", tmp, model=model, threads=threads, env=env) for _ in range(repeat)]
                shared = [r for _ in range(repeat)
                          for r in run_side_by_side(jobs, clip, tmp, env=env, model=model, threads=threads)]
                errors = [r["error"] for r in solo + shared if r.get("error")]
                row = {"size": f"{w}x{h}", "policy": label, "jobs": jobs, "frames": frames}
                if errors:
                    row["error"] = errors[0]
                else:
                    row.update(solo_seconds=float(np.median([r["seconds"] for r in solo])),
                               solo_cpu=float(np.median([r["cpu_seconds"] for r in solo])),
                               shared_seconds=float(np.median([r["seconds"] for r in shared])),
                               shared_cpu=float(np.median([r["cpu_seconds"] for r in shared])))
                    row["slowdown"] = row["shared_seconds"] / row["solo_seconds"]
                rows.append(row)
    return rows


def format_shared(rows: list[dict]) -> str:
    """Markdown table of ``run_shared``'s rows."""
    lines = ["seconds: enhancement of the clip (decode + enhance + encode, after start-up), median per job; "
             "CPU: user + system seconds of the whole process; slowdown: side by side / solo "
             "(N jobs on a machine each would use alone: N = exactly its share).", "",
             "| size | OpenMP wait | frames | solo s | solo CPU s | jobs | side by side s per job | CPU s per job | "
             "slowdown |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['size']} | {r['policy']} | {r['frames']} | error: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['size']} | {r['policy']} | {r['frames']} | {r['solo_seconds']:.2f} | {r['solo_cpu']:.1f} | "
                     f"{r['jobs']} | {r['shared_seconds']:.2f} | {r['shared_cpu']:.1f} | {r['slowdown']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[1:]))
    print("usage: stpr bench [options] (this module's own entry point is internal)", file=sys.stderr)
    sys.exit(2)
