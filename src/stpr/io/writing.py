"""Writing: :func:`open_output` returns a :class:`FrameWriter` that encodes enhanced frames to a
video file, a folder of PNGs or a single image; :func:`check_output_target` makes its checks on
the output path (not an input, folder exists and is writable, no overwrite unless asked) early.

Everything is written under a hidden temporary name unique to the run (``_partial_path``:
``.STEM.partial-PID-HOST-TOKEN.SUFFIX``; ``.NAME.partial-PID-HOST-TOKEN`` for a folder) and only moved to
the final name in ``close()``, so an interrupted run never leaves a half-written file that looks
finished; without ``overwrite`` the move never replaces a file another run finished meanwhile
(``_commit_file``). Temporaries of killed runs (their process is gone) are deleted by the next
run to the same output on the same machine. Bytes go through ``_OutputFile`` so that a full disk
is noticed even where the FFmpeg muxer would not report it.

The video writer (``_VideoWriter``) sets up its encoder with :mod:`stpr.io.encoding`, keeps the
input's timestamps, colour matrix/range and rotation tag, and carries the source's audio and
subtitles over with :mod:`stpr.io.audio`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from stpr.errors import OutputError
from stpr.io.audio import _SourceStreams
from stpr.io.common import (
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    MediaInfo,
    _signals_deferred,
    describe_os_error,
)
from stpr.io.encoding import _add_video_stream, _choose_encoder, _even, _pick_pix_fmt, _rgb_to_video_frame

# ------------------------------------------------------------------- output files

class _OutputFile:
    """The file an output is written to, for FFmpeg to write through (``av.open(file)``).

    FFmpeg muxers do not all report failed writes (Matroska on a full disk finishes
    "successfully" with a truncated file), so every byte goes through Python here: the first
    OSError is raised into FFmpeg (PyAV re-raises it from the mux/close call) and also kept in
    ``error`` for the writer to check; later writes are dropped silently, as the output is
    discarded anyway and a second error inside one FFmpeg call could not be reported cleanly.
    """

    def __init__(self, path: Path) -> None:
        self.name = str(path)  # FFmpeg guesses the container format from it
        self.error: OSError | None = None
        # Unbuffered: FFmpeg buffers already, and a seek never has to flush (and fail) here.
        self._fh = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> int:
        if self.error is None:
            try:
                view = memoryview(data)
                while view:  # a short write means the disk is filling up: the retry says why
                    view = view[self._fh.write(view):]
            except OSError as exc:
                self.error = exc
                raise
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def check(self) -> None:
        """Raise the write error seen so far, if any."""
        if self.error is not None:
            raise self.error

    def close(self, sync: bool = False) -> None:
        """Close; with ``sync`` flush to disk first (errors, e.g. a full disk, propagate)."""
        if self._fh.closed:
            return
        try:
            if sync:
                self.check()
                os.fsync(self._fh.fileno())
        finally:
            self._fh.close()


def _open_output_file(path: Path) -> _OutputFile:
    """Open an output file (tests replace this to simulate a full disk)."""
    return _OutputFile(path)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _host_tag() -> str:
    """Six hex digits naming this machine, so a run never takes another machine's process (on a
    shared folder) for a dead one of its own."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def _run_tag() -> str:
    """``PID-HOST-RANDOM``: unique per run and per writer."""
    return f"{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}"


def _partial_path(path: Path) -> Path:
    """The hidden temporary name a file output is written under until ``close()`` renames it:
    ``.STEM.partial-PID-HOST-TOKEN.SUFFIX``, unique per run, so two runs to one output never
    write into the same file (the suffix is kept: FFmpeg picks the container from it)."""
    return path.with_name(f".{path.stem}.partial-{_run_tag()}{path.suffix}")


def _partial_folder(path: Path) -> Path:
    """The hidden temporary folder a frame-folder output is written into: ``.NAME.partial-PID-HOST-TOKEN``."""
    return path.with_name(f".{path.name}.partial-{_run_tag()}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError, OverflowError):
        return True  # someone else's process, or we cannot tell: leave its file alone
    return True


def _remove_stale_partials(path: Path, folder: bool = False) -> None:
    """Delete the temporaries of killed runs writing ``path`` (their process on this machine is
    gone); files of runs still going, or of other machines, are left alone. Old-style names
    without a process id are always stale."""
    tag = r"(?:-(\d+)-([0-9a-f]{6})-[0-9a-f]+)?"
    if folder:
        pattern = re.compile(re.escape(f".{path.name}.partial") + tag + "$")
    else:
        pattern = re.compile(re.escape(f".{path.stem}.partial") + tag + re.escape(path.suffix) + "$")
    host = _host_tag()
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry.name)
        if m and (m.group(1) is None or (m.group(2) == host and not _pid_alive(int(m.group(1))))):
            _remove(entry)


def _commit_file(temp: Path, final: Path, overwrite: bool) -> None:
    """Move the finished ``temp`` to ``final``. Without ``overwrite`` a file that appeared there
    meanwhile (another run's finished output) is never replaced: a hard link fails if ``final``
    exists, where a rename would silently replace it."""
    if overwrite:
        os.replace(temp, final)
        return
    try:
        os.link(temp, final)
    except FileExistsError:
        raise OutputError(
            f"{final} appeared while this run was working (another run?); it was left as it is and this run's "
            f"result was dropped (use --overwrite to replace it)"
        ) from None
    except OSError:  # no hard links here (FAT, some network shares): check, then rename
        if os.path.lexists(final):
            raise OutputError(
                f"{final} appeared while this run was working (another run?); it was left as it is and this "
                f"run's result was dropped (use --overwrite to replace it)"
            ) from None
        os.rename(temp, final)
        return
    os.unlink(temp)


# ------------------------------------------------------------------------ writers


class FrameWriter:
    """Writes frames to a temporary location, renamed into place by :meth:`close`.

    As a context manager it closes on success and aborts (removing the temporary
    output) when the block raises.
    """

    def __init__(self, final: Path, temp: Path, info: MediaInfo, overwrite: bool = False) -> None:
        self.path = final
        self._final = final
        self._temp = temp
        self._info = info
        self._overwrite = overwrite
        self._done = False
        self.frames_written = 0

    def write(self, frame: Frame) -> None:
        if self._done:
            raise OutputError(f"{self._final}: write() after close()/abort()")
        rgb = frame.rgb
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        try:
            self._write(frame)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self._final}: {describe_os_error(exc)}") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Finish the output and move it to its final name."""
        if self._done:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"{self._final}: no frames were written")
            self._finish()
            self._commit()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (av.FFmpegError, OSError)):
                raise OutputError(f"cannot finish {self._final}: {describe_os_error(exc)}") from exc
            raise
        self._done = True

    def abort(self) -> None:
        """Drop everything written so far; nothing is left under the final name."""
        if self._done:
            return
        self._done = True
        try:
            self._release()
        finally:
            _remove(self._temp)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # Subclass hooks.
    def _write(self, frame: Frame) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush everything into the temporary output."""

    def _release(self) -> None:
        """Close open handles without finishing (used by abort)."""

    def _commit(self) -> None:
        _commit_file(self._temp, self._final, self._overwrite)


class _ImageWriter(FrameWriter):
    """Exactly one frame to a single image file."""

    def _write(self, frame: Frame) -> None:
        if self.frames_written:
            raise OutputError(f"{self._final}: single-image output but the input has more than one frame")
        _save_image(self._temp, _rotate_for_display(frame.rgb, self._info.rotation), self._final.suffix)


class _FolderWriter(FrameWriter):
    """Numbered PNGs (00000.png, ...) in a temporary sibling folder."""

    _FRAME_NAME = re.compile(r"^\d{5,}\.png$")

    def __init__(self, final: Path, temp: Path, info: MediaInfo, overwrite: bool = False) -> None:
        super().__init__(final, temp, info, overwrite)
        _remove_stale_partials(final, folder=True)  # leftovers of killed runs
        temp.mkdir()

    def _write(self, frame: Frame) -> None:
        name = f"{self.frames_written:05d}.png"
        _save_image(self._temp / name, _rotate_for_display(frame.rgb, self._info.rotation), ".png")

    def _commit(self) -> None:
        if not self._final.exists():
            try:
                os.rename(self._temp, self._final)
                return
            except OSError:
                if not self._final.is_dir():
                    raise
        if not self._overwrite and any(self._FRAME_NAME.match(p.name) for p in self._final.iterdir()):
            raise OutputError(
                f"{self._final} got frames from another run while this run was working; they were left as "
                f"they are and this run's frames were dropped (use --overwrite to replace them)"
            )
        # Existing folder (empty, or --overwrite): swap in our frames, drop stale ones
        # from a previous longer run, and leave unrelated files alone.
        for old in self._final.iterdir():
            if self._FRAME_NAME.match(old.name):
                old.unlink()
        for new in sorted(self._temp.iterdir()):
            os.replace(new, self._final / new.name)
        self._temp.rmdir()


def _save_image(path: Path, rgb: np.ndarray, suffix: str) -> None:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix.lower(), bgr, params)
    if not ok:
        raise OutputError(f"OpenCV cannot encode {suffix} images")
    # Python file I/O instead of imwrite: works with non-ASCII paths and reports a full disk.
    fh = _open_output_file(path)
    try:
        fh.write(buf.tobytes())
        fh.check()
    finally:
        fh.close()


def _rotate_for_display(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation to pixels (for image outputs)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


class _VideoWriter(_SourceStreams, FrameWriter):
    """Encodes frames with PyAV and remuxes the source's audio/subtitle packets."""

    def __init__(
        self,
        final: Path,
        temp: Path,
        info: MediaInfo,
        *,
        source: Path | None,
        codec: str,
        crf: int,
        preset: str,
        overwrite: bool = False,
        keep_metadata: bool = True,
    ) -> None:
        super().__init__(final, temp, info, overwrite)
        self._keep_metadata = keep_metadata
        self._src: av.container.InputContainer | None = None
        self._out: av.container.OutputContainer | None = None
        self._fh: Any = None
        try:
            self._open_container(temp)
            self._setup(source, codec, crf, preset)
        except BaseException:
            self._release()
            _remove(temp)
            raise

    def _open_container(self, temp: Path) -> None:
        # FFmpeg writes through a Python file object (see _open_output_file); the format
        # is guessed from the temporary name, which keeps the final suffix.
        self._fh = _open_output_file(temp)
        self._out = av.open(self._fh, "w")

    def _setup(self, source: Path | None, codec: str, crf: int, preset: str) -> None:
        info = self._info
        codec = _choose_encoder(codec, self._out, self._final)
        self._fps = Fraction(info.fps) if info.fps else DEFAULT_FPS
        self._tb = Fraction(info.time_base) if info.time_base else 1 / self._fps
        if self._out.format.name == "avi":
            # AVI is constant-frame-rate: its time base *is* the frame rate, so a fine
            # source time base (e.g. 1/12800) would be misread as thousands of fps.
            self._tb = 1 / self._fps
            if info.rotation:
                warnings.warn(
                    f"{self._final.suffix} cannot store the rotation tag; output will play unrotated", stacklevel=3
                )
        self._vstream, self._pix_fmt = _add_video_stream(
            self._out,
            codec,
            width=info.width,
            height=info.height,
            fps=self._fps,
            time_base=self._tb,
            colorspace=info.colorspace,
            color_range=info.color_range,
            rotation=info.rotation,
            crf=crf,
            preset=preset,
        )
        self._reformatter = VideoReformatter()
        self._size: tuple[int, int] | None = None
        self._last_pts: int | None = None
        self._warned_pts = False
        self._warned_odd = False
        self._setup_carry(source)

    def _note_odd(self, w: int, h: int) -> None:
        if (w % 2 or h % 2) and not self._warned_odd:
            self._warned_odd = True
            warnings.warn(
                f"frame size {w}x{h} is odd: the video is padded to {_even(w)}x{_even(h)} (edge pixels repeated) "
                f"and encoded 4:2:0 so that every player can play it",
                stacklevel=4,
            )

    def _write(self, frame: Frame) -> None:
        h, w = frame.rgb.shape[:2]
        if self._size is None:
            if (_even(w), _even(h)) != (self._vstream.width, self._vstream.height):
                # Encoder is not open yet, so a different output size is still possible.
                self._vstream.width, self._vstream.height = _even(w), _even(h)
                self._vstream.pix_fmt = self._pix_fmt = _pick_pix_fmt(
                    self._vstream.codec_context.name, _even(w), _even(h)
                )
            self._note_odd(w, h)
            self._size = (w, h)
        elif (w, h) != self._size:
            first_w, first_h = self._size
            raise ValueError(f"frame {frame.index} is {w}x{h}, earlier frames were {first_w}x{first_h}")

        info = self._info
        rgb = frame.rgb
        if w % 2 or h % 2:  # 4:2:0 needs even sizes: repeat the last column/row, crop nothing
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = _rgb_to_video_frame(self._reformatter, rgb, self._pix_fmt, info.colorspace, info.color_range)
        vf.pts = self._next_pts(frame)
        vf.time_base = self._tb
        for packet in self._vstream.encode(vf):
            self._mux_video(packet)

    def _next_pts(self, frame: Frame) -> int:
        step = max(1, round(1 / (self._fps * self._tb)))
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + step
        elif frame.time_base is not None and frame.time_base != self._tb:
            pts = round(frame.pts * frame.time_base / self._tb)
        else:
            pts = int(frame.pts)
        if self._last_pts is not None and pts <= self._last_pts:
            # Encoders refuse repeated/backward timestamps; nudge forward instead.
            if not self._warned_pts:
                warnings.warn(f"{self._info.path}: non-increasing timestamps, adjusted", stacklevel=4)
                self._warned_pts = True
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _mux(self, packets: av.Packet | list[av.Packet]) -> None:
        with _signals_deferred():
            self._out.mux(packets)
        self._fh.check()

    def _mux_video(self, packet: av.Packet) -> None:
        self._mux(packet)
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is not None:
            self._copy_until(float(ts * self._vstream.time_base))

    def _finish(self) -> None:
        for packet in self._vstream.encode(None):
            self._mux_video(packet)
        self._finish_carry()
        self._close_output()
        self._release()

    def _close_output(self) -> None:
        """Write the trailer and flush everything to disk; unlike _release, errors propagate
        (a full disk at this point must not leave a truncated file that looks finished)."""
        out, fh = self._out, self._fh
        self._out = self._fh = None
        try:
            with _signals_deferred():
                out.close()
            fh.close(sync=True)
        finally:
            fh.close()

    def _release(self) -> None:
        with _signals_deferred():
            for closer in (self._out, self._src, self._fh):
                if closer is not None:
                    try:
                        closer.close()
                    except (av.FFmpegError, OSError, ValueError):
                        pass
        self._out = self._src = self._fh = None
        # A write error raised inside an FFmpeg callback while closing is parked by PyAV and
        # would surface in the next, unrelated call: collect it now.
        try:
            av.error.err_check(0)
        except Exception:  # noqa: BLE001 - anything parked belongs to this aborted output
            pass


# ----------------------------------------------------------------------- opening


def check_output_path(path: Path, inputs: list[Path]) -> None:
    for src in inputs:
        try:
            same = path.resolve() == src.resolve() or (path.exists() and path.samefile(src))
        except OSError:
            same = False
        if same:
            raise OutputError(f"output {path} is the input itself; choose another name")
    parent = path.parent
    if not parent.is_dir():
        # Name the first existing ancestor that is not a folder, if any: "a/file.txt/out.mp4".
        blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise OutputError(f"cannot write {path}: {blocker} is a file, not a folder")
        raise OutputError(f"cannot write {path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: output folder {parent} is not writable")


def check_folder_target(path: str | os.PathLike[str]) -> None:
    """OutputError unless ``path`` is a writable folder or can be made one (its nearest existing
    ancestor is a writable folder), for reports written after hours of work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write into {path}: it is a file, not a folder")
    here = next(p for p in [path.absolute(), *path.absolute().parents] if p.exists())
    if not here.is_dir():
        raise OutputError(f"cannot write into {path}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {path}: {here} is not writable")


def check_output_target(
    path: str | os.PathLike[str], inputs: list[Path], *, overwrite: bool = False
) -> None:
    """The checks :func:`open_output` makes before creating anything, for callers that want
    to fail early (before hours of work): raises OutputError if ``path`` is an input, its
    folder is missing/unwritable, or it exists and ``overwrite`` is false."""
    path = Path(path)
    check_output_path(path, inputs)
    if path.is_dir():
        if not overwrite and any(path.iterdir()):
            raise OutputError(f"output folder {path} is not empty (use --overwrite)")
    elif path.exists() and not overwrite:
        raise OutputError(f"output {path} already exists (use --overwrite)")


def open_output(
    path: str | os.PathLike[str],
    info: MediaInfo,
    *,
    source: Path | None = None,
    codec: str = "libx264",
    crf: int = 18,
    overwrite: bool = False,
    preset: str = "medium",
    keep_metadata: bool = True,
) -> FrameWriter:
    """Create a writer for ``path``; the output kind follows the path.

    A video output carries the source's audio/subtitle streams with their language, title and
    flags, and the file's tags (title, creation time, location...); ``keep_metadata=False``
    drops the tags, keeping only the streams' language and flags.

    Video extension -> video file; existing folder or no suffix -> folder of PNGs;
    image extension -> single image (only for a one-frame input).
    Raises OutputError when the output exists (and not ``overwrite``), would replace
    the input, or its folder is missing/unwritable.
    """
    path = Path(path)
    source = Path(source) if source is not None else None
    suffix = path.suffix.lower()
    check_output_path(path, [p for p in (source, info.path) if p is not None])

    if path.is_dir() or (suffix == "" and not path.exists()):
        # An empty existing folder is a natural target; a non-empty one needs overwrite.
        if path.is_dir() and not overwrite and any(path.iterdir()):
            raise OutputError(f"output folder {path} is not empty (use --overwrite)")
        return _FolderWriter(path, _partial_folder(path), info, overwrite)

    if path.exists() and not overwrite:
        raise OutputError(f"output {path} already exists (use --overwrite)")
    if path.is_dir():  # pragma: no cover - handled above
        raise OutputError(f"output {path} is a folder")
    _remove_stale_partials(path)  # temporaries of killed runs
    temp = _partial_path(path)

    if suffix in VIDEO_EXTENSIONS:
        try:
            return _VideoWriter(path, temp, info, source=source, codec=codec, crf=crf, preset=preset,
                                overwrite=overwrite, keep_metadata=keep_metadata)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"cannot create {path}: {describe_os_error(exc)}") from exc
    if suffix in IMAGE_EXTENSIONS:
        if info.num_frames is not None and info.num_frames > 1:
            raise OutputError(
                f"output {path} is a single image but the input has {info.num_frames} frames; "
                f"give a folder or a video name ({', '.join(sorted(VIDEO_EXTENSIONS))})"
            )
        return _ImageWriter(path, temp, info, overwrite)
    raise OutputError(
        f"unsupported output type {path.suffix!r} for {path}; use a video "
        f"({', '.join(sorted(VIDEO_EXTENSIONS))}), an image, or a folder"
    )
