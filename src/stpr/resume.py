"""Resumable enhancement: ``stpr enhance --resume``.

A resumable run writes its video in segments of ``segment_frames`` frames, each a complete,
separately encoded video-only file, into a hidden work folder next to the output::

    clip_stpr.mp4                       <- appears only at the very end
    .clip_stpr.mp4.stpr-resume/
        manifest.json                   <- input, model, options, finished segments
        seg_00000.mp4  seg_00001.mp4 ...

A segment file appears under its name only once complete (temporary name + rename) and is then
recorded in the manifest (written atomically). When every frame is done, the segments are joined
without re-encoding into the output, the source's audio and other streams are copied around
them with their timestamps, and the work folder is removed.

Running the same command again after an interruption keeps the finished segments and restarts
at the first missing one. The network's temporal window needs T // 2 frames of context before
a segment's first frame: the run decodes from that many frames earlier and drops their outputs,
so every segment holds exactly the frames an uninterrupted run produces, encoded the same way
(one encoder per segment in both cases): the result is frame-for-frame identical.

The manifest ties the work folder to its job: the input (path, size, modification time; for a
frame folder, every image's), the model (a hash of its config and weights), and the options that
change the pixels or the encoding. If any differs, the run refuses to mix old and new segments
(UsageError, exit 2) unless ``overwrite`` is set, which discards the old segments.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from stpr.errors import InputError, OutputError, UsageError
from stpr.io import (
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    MediaInfo,
    check_output_target,
    concat_segments,
    describe_os_error,
    open_input,
    open_segment_writer,
    resolve_video_codec,
    segment_container_suffix,
)
from stpr.io.audio import CARRY_SETUP_WARNINGS, plan_carry
from stpr.io.encoding import _FORMAT_OF_SUFFIX

MANIFEST = "manifest.json"
FORMAT = "stpr-resume-1"
DEFAULT_SEGMENT_FRAMES = 300


def work_dir_for(dst: str | os.PathLike[str]) -> Path:
    """Hidden work folder of a resumable run writing ``dst``: ``.NAME.stpr-resume`` beside it."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.stpr-resume")


def model_fingerprint(model) -> str:
    """SHA-256 of the model's config and weights (a different model gives different frames).
    An onnxruntime model (``OnnxSTPR``) carries the digest of the graphs it runs."""
    if not hasattr(model, "state_dict"):
        return model.fingerprint
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def input_fingerprint(src: Path) -> dict:
    """What identifies the input: resolved path plus size/mtime (of each image, for a folder)."""
    src = Path(src)
    if src.is_dir():
        h = hashlib.sha256()
        count = 0
        for p in sorted(src.iterdir()):
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file():
                st = p.stat()
                h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                count += 1
        return {"path": str(src.resolve()), "kind": "folder", "images": count, "hash": h.hexdigest()}
    st = src.stat()
    return {"path": str(src.resolve()), "kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _save_filter_state(work: Path, segment: Path, state: dict | None) -> str | None:
    """Store the temporal filter's and the tone curve's state at a segment's end beside it (the
    last filtered frame, which the next segment blends with; the curve's running correction);
    returns the file's name, None without a state."""
    if state is None:
        return None
    path = work / (segment.stem + ".filter.npz")
    tmp = path.with_name(path.stem + ".tmp.npz")
    try:
        np.savez(tmp, **state)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from exc
    return path.name


def _load_filter_state(work: Path, segment: dict) -> dict | None:
    name = segment.get("filter_state")
    if not name:
        return None
    try:
        with np.load(work / name) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{work / name}: the temporal filter's state is unreadable ({e})") from None


def _mismatch(old: dict, new: dict) -> str | None:
    """First difference between a stored job description and the current one, in words."""
    if old.get("format") != FORMAT:
        return f"it has an unknown format ({old.get('format')!r})"
    if old.get("input", {}).get("path") != new["input"]["path"]:
        return f"it belongs to another input ({old.get('input', {}).get('path')})"
    if old.get("input") != new["input"]:
        return "the input changed since the interrupted run (size or modification time differ)"
    if old.get("model") != new["model"]:
        return "it was made with another model or --flow/--frames setting"
    old_opts, new_opts = dict(old.get("options", {})), new["options"]
    if "bf16" in old_opts:  # written before --precision: bf16 on or off
        old_opts["precision"] = "bf16" if old_opts.pop("bf16") else "fp32"
    if "tone_match" in new_opts:  # written before --tone-match: off
        old_opts.setdefault("tone_match", 0.0)
    for key in list(new_opts) + [k for k in old_opts if k not in new_opts]:  # keys of either run
        if old_opts.get(key) != new_opts.get(key):
            return f"it was made with {key}={old_opts.get(key)!r}, now {key}={new_opts.get(key)!r}"
    return None


def _load_manifest(work: Path) -> dict | None:
    try:
        data = json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
        return None
    return data


def _finished_segments(work: Path, manifest: dict, segment_frames: int) -> list[dict]:
    """Recorded segments that are contiguous from frame 0 and still on disk."""
    kept, start = [], 0
    for seg in manifest["segments"]:
        try:
            ok = (seg["start"] == start and seg["frames"] >= 1 and (work / seg["file"]).is_file()
                  and (work / seg["file"]).stat().st_size > 0 and Fraction(seg["pts_offset"]) >= 0)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OSError):
            ok = False
        if not ok:
            break
        kept.append(seg)
        start += seg["frames"]
        if seg["frames"] != segment_frames:  # only the last segment may be short
            break
    return kept


class _DirLock:
    """An exclusive flock on the work folder itself (no lock file to list or leave behind)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _lock_work_dir(work: Path, dst: Path) -> _DirLock | None:
    """Hold an exclusive, non-blocking flock on ``work`` for the run: a second run resuming the
    same output at the same time stops at once instead of deleting this run's segment in
    progress or mixing segments. None where flock is unavailable; the lock goes with the
    process, so a killed run never leaves it held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    try:
        fd = os.open(work, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(f"another stpr run is writing {dst} (its resume folder {work} is in use); wait for it "
                          f"to finish") from None
    return _DirLock(fd)


def _prepare_work_dir(work: Path, job: dict, dst: Path, overwrite: bool, locks: list | None = None) -> dict:
    """Load and check the manifest of an interrupted run, or start a new one. The work folder's
    lock (see :func:`_lock_work_dir`) is appended to ``locks``."""
    if locks is None:
        locks = []
    if work.exists() and not work.is_dir():
        raise OutputError(f"cannot resume {dst}: {work} is a file, not the resume folder; remove it")
    if work.is_dir():
        locks.append(_lock_work_dir(work, dst))
        old = _load_manifest(work)
        problem = "its manifest is missing or damaged" if old is None else _mismatch(old, job)
        if problem is None:
            segments = _finished_segments(work, old, job["options"]["segment_frames"])
            if segments and segments[-1].get("filter_state"):
                try:
                    _load_filter_state(work, segments[-1])
                except InputError:
                    problem = "the temporal filter's state after its last segment is missing or damaged"
        if problem is None:
            complete = bool(old.get("complete")) and len(segments) == len(old["segments"])
            manifest = {**job, "segments": segments, "complete": complete}
            keep = {MANIFEST} | {s["file"] for s in segments}
            if segments and segments[-1].get("filter_state"):  # the last segment's is the one a resume needs
                keep.add(segments[-1]["filter_state"])
            for p in work.iterdir():  # partial segment of the killed run, stale temp files
                if p.name not in keep:
                    _remove(p)
            _write_json(work / MANIFEST, manifest)
            return manifest
        if not overwrite:
            raise UsageError(f"cannot resume {dst} from {work}: {problem}; use --overwrite to discard it and "
                             f"start over")
        shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir()
        locks.append(_lock_work_dir(work, dst))
        manifest = {**job, "segments": [], "complete": False}
        _write_json(work / MANIFEST, manifest)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise OutputError(f"cannot create resume folder {work}: {describe_os_error(exc)}") from exc
    return manifest


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except OSError:
            pass


def check_leftover(dst: str | os.PathLike[str], overwrite: bool) -> None:
    """For a run *without* resume: refuse to silently ignore an interrupted resumable run of the
    same output (UsageError) unless ``overwrite``, which discards it."""
    work = work_dir_for(dst)
    if not work.exists():
        return
    if overwrite:
        _remove(work)
        return
    raise UsageError(f"{dst}: an interrupted --resume run left its segments in {work}; add --resume to "
                     f"continue it, or --overwrite to discard it")


def enhance_resumable(enhancer, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                      codec: str = "libx264", crf: int = 18, preset: str = "medium", overwrite: bool = False,
                      segment_frames: int = DEFAULT_SEGMENT_FRAMES, progress: bool = True,
                      on_segment: Callable[[int, int], None] | None = None, fps=None,
                      keep_metadata: bool = True) -> dict:
    """Enhance ``src`` into the video ``dst`` in resumable segments (see the module docstring).

    Args:
        enhancer: a :class:`stpr.enhance.Enhancer`.
        overwrite: replace an existing ``dst``, and discard resume data that does not match.
        segment_frames: frames per segment.
        on_segment: called as ``on_segment(segments_done, frames_done)`` after each segment is
            safely on disk (progress reporting; tests use it to interrupt a run).

    Returns:
        {"frames", "seconds", "fps" (frames enhanced by this call per second), "resumed_from"
        (first frame enhanced by this call), "segments"}
    """
    src, dst = Path(src), Path(dst)
    if segment_frames < 1:
        raise UsageError(f"--segment-frames must be >= 1, got {segment_frames}")
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise UsageError(f"--resume needs a video output ({', '.join(sorted(VIDEO_EXTENSIONS))}), got {dst}")
    t0 = time.perf_counter()
    work = work_dir_for(dst)
    locks: list = []  # the work folder's lock, held until this function returns
    try:
        return _enhance_resumable(enhancer, src, dst, work, locks, t0, codec=codec, crf=crf, preset=preset,
                                  overwrite=overwrite, segment_frames=segment_frames, progress=progress,
                                  on_segment=on_segment, fps=fps, keep_metadata=keep_metadata)
    finally:
        for fh in locks:
            if fh is not None:
                fh.close()


def _enhance_resumable(enhancer, src: Path, dst: Path, work: Path, locks: list, t0: float, *, codec: str,
                       crf: int, preset: str, overwrite: bool, segment_frames: int, progress: bool,
                       on_segment, fps=None, keep_metadata: bool = True) -> dict:
    with open_input(src, fps=fps) as reader:
        info = reader.info
        check_output_target(dst, [src, info.path], overwrite=overwrite)
        codec = resolve_video_codec(dst, codec)
        if info.kind == "video":  # the audio's fate is decided (and said) now, not after the work
            plan_carry(dst, _FORMAT_OF_SUFFIX[dst.suffix.lower()], src, info, keep_metadata)
        suffix = segment_container_suffix(codec)
        job = {
            "format": FORMAT,
            "output": str(dst.resolve()),
            "input": input_fingerprint(src),
            "model": model_fingerprint(enhancer.model),
            # The tile size actually used for these frames (from --tile or --memory-mb): tiles
            # change the pixels slightly, a budget that does not change them does not matter.
            "options": {"codec": codec, "crf": crf, "preset": preset, "segment_frames": segment_frames,
                        "tile": enhancer.tile_size_for(info.height, info.width),
                        "tile_overlap": enhancer.tile_overlap,
                        # numerics that change the pixels slightly
                        "precision": enhancer.precision, "half_states": enhancer.half_states,
                        # the user's exposure choice changes every pixel
                        "exposure": enhancer.exposure.ev, "brightness": enhancer.exposure.target,
                        "steady_exposure": enhancer.exposure.steady,
                        # --brightness holds every frame (since real-footage §47; before, a smoothed
                        # gain): segments of the older kind are not continued
                        **({"exposure_hold": True} if enhancer.exposure.target is not None
                           and enhancer.exposure.steady else {}),
                        "temporal_filter": enhancer.temporal.strength, "tone_match": enhancer.tone.strength,
                        # the filter's fine-detail share (0 before real-footage §47; recorded since)
                        **({"temporal_detail": enhancer.temporal.detail} if enhancer.temporal.strength > 0 else {}),
                        # its flow and tolerance (fast/320 and 0.08 before real-footage §49; recorded since)
                        **({"temporal_flow": f"{enhancer.temporal.flow_preset}/{enhancer.temporal.flow_side}"
                                             f"/{enhancer.temporal.tolerance:g}"} if enhancer.temporal.strength > 0 else {}),
                        # frame folders and images: the frame rate (--fps or the default) times them
                        **({"fps": str(info.fps)} if info.kind != "video" else {})},
        }
        manifest = _prepare_work_dir(work, job, dst, overwrite, locks)
        segments: list[dict] = manifest["segments"]
        start = sum(s["frames"] for s in segments)
        total = start
        if not manifest["complete"]:
            try:
                total = _enhance_segments(
                    enhancer, reader, info, work, manifest, segment_frames, progress, on_segment,
                    lambda k: open_segment_writer(work / f"seg_{k:05d}{suffix}", info, codec=codec, crf=crf,
                                                  preset=preset),
                )
            except BaseException:
                if not segments:  # nothing worth keeping
                    shutil.rmtree(work, ignore_errors=True)
                raise
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=CARRY_SETUP_WARNINGS)  # said before the work
            frames = concat_segments([work / s["file"] for s in segments], dst, info,
                                     source=src if info.kind == "video" else None, overwrite=overwrite,
                                     offsets=[Fraction(s["pts_offset"]) for s in segments],
                                     keep_metadata=keep_metadata)
    except OutputError as exc:
        raise OutputError(f"{exc}; the finished segments are kept in {work}: run again with --resume") from exc
    if frames != total:  # pragma: no cover - a segment file lost packets
        raise OutputError(f"{dst}: joined {frames} frames from the segments, expected {total}")
    shutil.rmtree(work, ignore_errors=True)
    secs = time.perf_counter() - t0
    return {"frames": total, "seconds": secs, "fps": (total - start) / secs if secs > 0 else 0.0,
            "resumed_from": start, "segments": len(segments)}


def _enhance_segments(enhancer, reader, info: MediaInfo, work: Path, manifest: dict, segment_frames: int,
                      progress: bool, on_segment, open_writer) -> int:
    """Enhance the frames after the finished segments into new segment files (``open_writer(k)``
    opens segment k); returns the total number of frames of the input."""
    segments: list[dict] = manifest["segments"]
    start = sum(s["frames"] for s in segments)
    # Context for the first frame: the temporal window reaches T // 2 frames back.
    warm = min(enhancer.model.cfg.frames // 2, start)
    first = start - warm
    fps = Fraction(info.fps) if info.fps else DEFAULT_FPS
    meta: deque = deque()

    def frames():
        for f in reader:
            if f.index < first:
                continue  # decoded (to find the position) but not enhanced
            meta.append(f)
            yield f.rgb

    if segments:  # a resumed run: the exposure smoothing (steady or --brightness) goes on from the last segment
        enhancer.exposure.carry = segments[-1].get("exposure_log_gain")
        # one file holds the temporal filter's and the tone curve's states (each takes its own keys)
        enhancer.temporal.carry = enhancer.tone.carry = _load_filter_state(work, segments[-1])
    writer = None
    offset: tuple[int, Fraction] = (0, Fraction(0))  # first pts of the segment being written, its time base
    n = start

    def finish_segment():
        nonlocal writer
        w, writer = writer, None
        count = w.frames_written
        w.close()
        state = {**(enhancer.temporal.state() or {}), **(enhancer.tone.state() or {})}
        state_file = _save_filter_state(work, w.path, state or None)
        segments.append({"file": w.path.name, "start": n - count, "frames": count, "filter_state": state_file,
                         "pts_offset": str(offset[0] * offset[1]),
                         # the smoothed exposure gain goes on from here after a resume
                         "exposure_log_gain": enhancer.exposure.log_gain})
        _write_json(work / MANIFEST, manifest)
        if len(segments) > 1 and segments[-2].get("filter_state"):  # only the last state is needed
            _remove(work / segments[-2]["filter_state"])
        if on_segment is not None:
            on_segment(len(segments), n)

    try:
        with tqdm(total=info.num_frames, initial=start, unit="frame", disable=not progress, desc="enhance",
                  dynamic_ncols=True) as bar:
            for out in enhancer.enhance_frames(frames(), context=warm):
                while meta[0].index < start:  # the context frames make no output
                    meta.popleft()
                m = meta.popleft()
                if m.pts is None or m.time_base is None:  # images: numbered, as the single-pass writer does
                    pts, tb = m.index, 1 / fps
                else:
                    pts, tb = m.pts, Fraction(m.time_base)
                if writer is None:
                    writer = open_writer(len(segments))
                    offset = (pts, tb)
                # Each segment file starts at time 0 and the join adds the offset back: MP4 would
                # store a late start as an edit list in milliseconds, which rounds timestamps.
                writer.write(Frame(rgb=out, pts=pts - offset[0], time_base=tb, index=m.index))
                n += 1
                bar.update(1)
                if writer.frames_written == segment_frames:
                    finish_segment()
            if writer is not None:
                finish_segment()
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if isinstance(exc, OutputError) and segments:
            raise OutputError(f"{exc}; {len(segments)} finished segment(s) kept in {work}: run again with "
                              f"--resume to continue") from exc
        raise
    if n == 0:
        raise InputError(f"{info.path}: no video frames to enhance")
    manifest["complete"] = True
    _write_json(work / MANIFEST, manifest)
    return n
