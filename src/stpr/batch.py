"""Enhance a whole archive of videos: ``stpr batch INPUT OUT_DIR``.

INPUT is a folder of videos (not recursive) or a text file listing video paths, one per line
(blank lines and lines starting with ``#`` are ignored; relative paths are taken from the list
file's folder). Each ``clip.ext`` becomes ``OUT_DIR/clip_stpr.mp4``.

- Local (default): one process, one video after the other, the model loaded once.
- Ray (``ray=True``): a Ray Data pipeline over the list of files; ``map_batches`` with a callable
  class, so each of the ``workers`` actors loads the model once, and ``batch_size=1``: every video
  is enhanced whole by one actor with ``Enhancer.enhance_video`` (never split into frames, since
  the network's temporal window needs the frames in order). Works on a local Ray instance started
  here or on a cluster (``address``); inputs and OUT_DIR must then be on storage every node sees.
  The weights travel to the actors with the task, so only the driver needs the weights file.

Every file ends with a status: ``ok``, ``skipped`` (its output already exists: outputs appear
under their final name only once complete, so a re-run picks up where a previous one stopped) or
``failed: <reason>``; a failure never stops the batch. The summary goes to the terminal and to
``OUT_DIR/batch_summary.csv``.
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from stpr.errors import InputError, OutputError, StprError, UsageError

# Video extensions taken without probing when INPUT is a folder; other files are probed (is_video_file).
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".flv",
                            ".wmv", ".mpg", ".mpeg", ".3gp", ".gif"})
SUMMARY_NAME = "batch_summary.csv"
OUTPUT_SUFFIX = "_stpr.mp4"
# Object store of a Ray instance started here: only file names, statuses and the weights pass through.
LOCAL_OBJECT_STORE_BYTES = 128 * 2 ** 20


@dataclass
class Job:
    index: int
    src: str
    dst: str


@dataclass
class Result:
    file: str
    output: str
    status: str  # "ok", "skipped" or "failed: <reason>"
    frames: int | None = None
    seconds: float | None = None

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")


# ----------------------------------------------------------------------------------------- planning


# Files a folder may hold beside its videos that are never probed (cheap to rule out, and FFmpeg
# would decode some of them, e.g. a PNG, as a one-frame "video").
_NOT_VIDEO = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".txt", ".csv", ".json", ".md",
                        ".srt", ".vtt", ".ass", ".xml", ".html", ".log", ".pdf", ".wav", ".mp3", ".aac", ".m4a",
                        ".flac", ".ogg", ".opus", ".zip", ".tar", ".gz", ".safetensors", ".partial"})


def is_video_file(path: Path) -> bool:
    """Whether ``stpr enhance`` would read ``path`` as a video: a known video extension, or any
    other non-image file in which FFmpeg (PyAV) finds a video stream (.gif, .m2ts, .3gp, ...)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in _NOT_VIDEO:
        return False
    from stpr.io import stream_counts

    counts = stream_counts(path)
    return counts is not None and counts[0] > 0


def output_for(src: Path, out_dir: Path) -> Path:
    return out_dir / (src.stem + OUTPUT_SUFFIX)


def find_inputs(spec: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """The videos named by INPUT: a folder's video files (sorted, hidden files and earlier
    ``*_stpr.mp4`` outputs in ``out_dir`` left out), a list file's entries, or one video."""
    spec = Path(spec)
    if not spec.exists():
        raise InputError(f"input not found: {spec}")
    if spec.is_dir():
        out_res = Path(out_dir).resolve() if out_dir is not None else None
        try:
            entries = sorted(spec.iterdir(), key=lambda p: p.name)
        except OSError as e:
            raise InputError(f"cannot list folder {spec}: {e}") from None
        vids = [p for p in entries if not p.name.startswith(".") and p.is_file()
                and not (out_res is not None and p.name.endswith(OUTPUT_SUFFIX) and p.parent.resolve() == out_res)
                and is_video_file(p)]
        if not vids:
            raise InputError(f"{spec}: no videos in this folder (files FFmpeg decodes as video, e.g. "
                             f"{', '.join(sorted(VIDEO_SUFFIXES))})")
        return vids
    if is_video_file(spec):
        return [spec]
    try:
        text = spec.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read list file {spec}: {e}") from None
    base = spec.parent
    vids = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        vids.append(p if p.is_absolute() else base / p)
    if not vids:
        raise InputError(f"list file {spec} names no videos")
    return vids


def _previous_frames(out_dir: Path) -> dict[str, int]:
    """Frame counts of outputs finished by an earlier run (from its summary), for skipped rows."""
    known: dict[str, int] = {}
    try:
        with open(out_dir / SUMMARY_NAME, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("frames") and row.get("output"):
                    known[row["output"]] = int(row["frames"])
    except (OSError, ValueError, csv.Error):
        pass
    return known


def plan(inputs: list[Path], out_dir: Path, overwrite: bool) -> tuple[list[Job], list[Result | None]]:
    """Jobs to run, and the results already known (skipped / name clash) by input position."""
    known = _previous_frames(out_dir)
    jobs: list[Job] = []
    results: list[Result | None] = [None] * len(inputs)
    claimed: dict[Path, Path] = {}
    for i, src in enumerate(inputs):
        dst = output_for(src, out_dir)
        if dst in claimed:
            results[i] = Result(str(src), str(dst), f"failed: same output name as {claimed[dst]}")
            continue
        claimed[dst] = src
        if dst.exists() and not overwrite:
            results[i] = Result(str(src), str(dst), "skipped", frames=known.get(str(dst)))
            continue
        jobs.append(Job(i, str(src), str(dst)))
    return jobs, results


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A one-line reason for a failure (library errors are already one line)."""
    msg = str(exc).strip()
    msg = msg.splitlines()[0] if msg else ""
    if not isinstance(exc, StprError):
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


def enhance_one(enhancer, job: Job, crf: int, overwrite: bool) -> Result:
    """Enhance one whole video; any error becomes a ``failed`` result."""
    try:
        res = enhancer.enhance_video(job.src, job.dst, crf=crf, overwrite=overwrite, progress=False)
        return Result(job.src, job.dst, "ok", frames=int(res["frames"]), seconds=float(res["seconds"]))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return Result(job.src, job.dst, f"failed: {one_line(e)}")


# ----------------------------------------------------------------------------------------- local


def run_local(jobs: list[Job], model: str | None, crf: int, threads: int | None, overwrite: bool,
              report: Callable[[Result], None], device: str = "auto", precision: str = "auto",
              options: dict | None = None) -> list[Result]:
    from stpr.enhance import Enhancer

    enhancer = Enhancer.from_pretrained(model, threads=threads, device=device, precision=precision, **(options or {}))
    out = []
    for job in jobs:
        res = enhance_one(enhancer, job, crf, overwrite)
        report(res)
        out.append(res)
    return out


# ----------------------------------------------------------------------------------------- Ray


class EnhanceWorker:
    """Ray Data UDF (a callable class, so Ray runs it in long-lived actors): loads the model once,
    then enhances one whole video per call."""

    def __init__(self, weights: bytes, name: str, crf: int, threads: int, overwrite: bool, device: str,
                 precision: str = "auto", options: dict | None = None):
        import torch

        from stpr.enhance import Enhancer

        torch.set_num_threads(max(1, threads))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / (Path(name).name or "weights.safetensors")
            path.write_bytes(weights)
            self.enhancer = Enhancer.from_pretrained(path, threads=threads, device=device, precision=precision,
                                                     **(options or {}))
        self.crf, self.overwrite = crf, overwrite

    def __call__(self, batch: dict) -> dict:
        idx, frames, secs, status = [], [], [], []
        for i, src, dst in zip(batch["index"], batch["src"], batch["dst"]):
            r = enhance_one(self.enhancer, Job(int(i), str(src), str(dst)), self.crf, self.overwrite)
            idx.append(int(i))
            frames.append(-1 if r.frames is None else r.frames)
            secs.append(float("nan") if r.seconds is None else r.seconds)
            status.append(r.status)
        return {"index": np.array(idx, dtype=np.int64), "frames": np.array(frames, dtype=np.int64),
                "seconds": np.array(secs, dtype=np.float64), "status": np.array(status, dtype=object)}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--ray needs Ray: install stpr[ray] (pip install 'stpr[ray]')") from None
    return ray


def run_ray(jobs: list[Job], model: str | None, crf: int, threads: int | None, overwrite: bool, *,
            address: str | None, workers: int | None, gpus_per_worker: float | None,
            log: Callable[[str], None], report: Callable[[Result], None], quiet: bool = False,
            precision: str = "auto", options: dict | None = None) -> list[Result]:
    ray = _import_ray()
    from stpr.checkpoint import load_model, resolve_weights

    weights_path = resolve_weights(model)
    options = options or {}
    # a bad file or look: one clear error here, not one per actor
    load_model(weights_path, look=options.get("look"), flow_mode=options.get("flow"))
    weights = weights_path.read_bytes()
    cpus = max(1, threads or 1)

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=not quiet)
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, cpus * (workers or 1)),
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=not quiet)
        started = True
    try:
        res = ray.cluster_resources()
        total_cpus, total_gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
        if gpus_per_worker is None:  # automatic: share the GPUs between the workers when there are any
            gpus = 0.0 if total_gpus == 0 else min(1.0, total_gpus / workers) if workers else 1.0
        elif gpus_per_worker > 0 and total_gpus == 0:
            log("note: the Ray cluster has no GPUs; --gpus-per-worker ignored")
            gpus = 0.0
        else:
            gpus = float(gpus_per_worker)
        if workers is None:
            workers = int(total_gpus / gpus) if gpus > 0 else int(total_cpus // cpus)
        workers = max(1, min(workers, len(jobs)))
        device = "cuda" if gpus > 0 else "cpu"  # each actor sees only the GPUs Ray gave it
        log(f"ray: {workers} worker(s), {cpus} CPU(s) and {gpus:g} GPU(s) each; {len(jobs)} video(s)")

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the per-file lines are the progress report
        if quiet:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        items = [{"index": j.index, "src": j.src, "dst": j.dst} for j in jobs]
        ds = _from_items(ray, items)
        ds = ds.map_batches(
            EnhanceWorker,
            batch_size=1,  # one whole video per call
            batch_format="numpy",
            compute=_actor_pool(ray, workers),
            fn_constructor_kwargs=dict(weights=weights, name=weights_path.name, crf=crf, threads=cpus,
                                       overwrite=overwrite, device=device, precision=precision,
                                       options=options),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        by_index = {j.index: j for j in jobs}
        out: dict[int, Result] = {}
        try:
            for row in ds.iter_rows():
                j = by_index[int(row["index"])]
                frames, secs = int(row["frames"]), float(row["seconds"])
                r = Result(j.src, j.dst, str(row["status"]), frames=None if frames < 0 else frames,
                           seconds=None if np.isnan(secs) else secs)
                out[j.index] = r
                report(r)
        except Exception as e:  # noqa: BLE001 - e.g. a worker process died: report the unfinished files
            reason = one_line(e)
            for j in jobs:
                if j.index not in out:
                    out[j.index] = Result(j.src, j.dst, f"failed: ray: {reason}")
        return [out[j.index] for j in jobs]
    finally:
        if started:
            ray.shutdown()


def _from_items(ray, items: list[dict]):
    """One block per video, so that every actor gets work (older Ray: ``parallelism``)."""
    import inspect

    params = inspect.signature(ray.data.from_items).parameters
    if "override_num_blocks" in params:
        return ray.data.from_items(items, override_num_blocks=len(items))
    return ray.data.from_items(items, parallelism=len(items))


def _actor_pool(ray, workers: int):
    """A fixed pool of ``workers`` actors, each handed one video at a time (so a long video does
    not hold others queued behind it while another actor is idle)."""
    import inspect

    strategy = ray.data.ActorPoolStrategy
    kwargs = {"size": workers}
    if "max_tasks_in_flight_per_actor" in inspect.signature(strategy.__init__).parameters:
        kwargs["max_tasks_in_flight_per_actor"] = 1
    return strategy(**kwargs)


# ----------------------------------------------------------------------------------------- summary


def _fmt_frames(r: Result) -> str:
    return "" if r.frames is None else str(r.frames)


def _fmt_seconds(r: Result) -> str:
    return "" if r.seconds is None else f"{r.seconds:.1f}"


def format_table(results: list[Result]) -> str:
    rows = [("file", "frames", "seconds", "status")]
    rows += [(r.file, _fmt_frames(r), _fmt_seconds(r), r.status) for r in results]
    w = [max(len(row[k]) for row in rows) for k in range(3)]
    lines = [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * min(sum(w) + 6 + max(len(row[3]) for row in rows), sum(w) + 6 + 40))
    ok = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    failed = sum(r.failed for r in results)
    frames = sum(r.frames or 0 for r in results if r.status == "ok")
    secs = sum(r.seconds or 0.0 for r in results if r.status == "ok")
    lines.append(f"{len(results)} file(s): {ok} ok, {skipped} skipped, {failed} failed; "
                 f"{frames} frames enhanced in {secs:.1f} s of worker time")
    return "\n".join(lines)


def write_summary(results: list[Result], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "output", "frames", "seconds", "status"])
        for r in results:
            w.writerow([r.file, r.output, _fmt_frames(r), "" if r.seconds is None else f"{r.seconds:.3f}",
                        r.status])
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- entry


def run_batch(input: str | Path, out_dir: str | Path, *, model: str | None = None, crf: int = 18,
              threads: int | None = None, overwrite: bool = False, ray: bool = False,
              address: str | None = None, workers: int | None = None, gpus_per_worker: float | None = None,
              quiet: bool = False, log: Callable[[str], None] | None = None, device: str = "auto",
              precision: str = "auto", flow: str | None = None, look: str | None = None,
              temporal_filter: float | None = None, tone_match: float | None = None) -> list[Result]:
    """Enhance every video named by ``input`` into ``out_dir``; returns one Result per input file
    (in input order) and writes ``out_dir/batch_summary.csv``. Raises only for problems with the
    batch as a whole (bad input list, weights, options); per-file problems become statuses.
    ``device`` applies to local runs; Ray actors use the GPUs Ray reserves for them, if any.
    ``flow``, ``look``, ``temporal_filter`` and ``tone_match`` are ``stpr enhance``'s (None: the
    model's flow and look, the default strengths)."""
    log = log or ((lambda s: None) if quiet else print)
    if crf < 0 or crf > 63:
        raise UsageError("--crf must be between 0 and 63")
    from stpr.io.encoding import check_encoder

    check_encoder("libx264", crf=crf, preset="medium")  # batch writes H.264: 0-51 (x264 would clamp)
    if threads is not None and threads < 1:
        raise UsageError("--threads must be >= 1")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be >= 1")
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise UsageError("--gpus-per-worker must be >= 0")
    options: dict = {"flow": flow, "look": look}
    if temporal_filter is not None:
        from stpr.temporal import check_strength

        options["temporal_filter"] = check_strength(temporal_filter)
    if tone_match is not None:
        from stpr.tone import check_tone_match

        options["tone_match"] = check_tone_match(tone_match)
    if not ray and (workers is not None or gpus_per_worker is not None or address):
        raise UsageError("--workers, --gpus-per-worker and a Ray address need --ray")
    from stpr.hardware import PRECISIONS, resolve_device, resolve_precision

    if ray and str(device).lower() != "auto":
        raise UsageError("with --ray the actors use the GPUs Ray reserves for them (--gpus-per-worker), not --device")
    if ray and precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not ray:
        resolve_precision(precision, resolve_device(device))  # bad values: one error, now
    if ray:
        _import_ray()  # fail before touching anything when Ray is missing
    if look is not None and not ray:  # a look the model lacks: refused before OUT_DIR is created
        from stpr.checkpoint import load_model

        load_model(model, look=look)
    out_dir = Path(out_dir)
    inputs = find_inputs(input, out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output folder {out_dir} is a file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out_dir}: {e}") from None

    jobs, results = plan(inputs, out_dir, overwrite)
    count = [0]

    def report(r: Result) -> None:
        count[0] += 1
        extra = f" ({r.frames} frames, {r.seconds:.1f} s)" if r.status == "ok" else ""
        log(f"[{count[0]}/{len(inputs)}] {r.file}: {r.status}{extra}")

    for r in results:
        if r is not None:
            report(r)
    t0 = time.perf_counter()
    if jobs:
        if ray:
            new = run_ray(jobs, model, crf, threads, overwrite, address=address or None, workers=workers,
                          gpus_per_worker=gpus_per_worker, log=log, report=report, quiet=quiet,
                          precision=precision, options=options)
        else:
            new = run_local(jobs, model, crf, threads, overwrite, report, device=device, precision=precision,
                            options=options)
        for j, r in zip(jobs, new):
            results[j.index] = r
    final = [r for r in results if r is not None]
    write_summary(final, out_dir / SUMMARY_NAME)
    if jobs:
        log(f"wall-clock {time.perf_counter() - t0:.1f} s")
    return final
