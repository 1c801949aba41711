"""Frame input/output for ``stpr enhance``.

Reading: :func:`open_input` turns a video file, a folder of images or a single image
into a :class:`FrameReader` that yields :class:`Frame` objects holding 8-bit RGB
pixels *as stored* (no rotation applied) plus their presentation timestamps.

Writing: :func:`open_output` returns a :class:`FrameWriter` that encodes enhanced
frames to a video file, a folder of PNGs or a single image.  Everything is written
under a hidden temporary name and only renamed to the final name in ``close()``, so
an interrupted run never leaves a half-written file that looks finished.

Colour handling: YUV video is converted to RGB with the matrix the stream declares
(BT.709 or BT.601; untagged streams use BT.709 from 720 lines up) and the writer
converts back with the same matrix and range and tags the output accordingly, so a
pass-through round trip does not shift colours.

Rotation convention: ``MediaInfo.rotation`` is the counter-clockwise angle of the
display matrix (FFmpeg's convention, normalised to 0/90/180/270).  A phone video
whose legacy ``rotate`` tag says 90 (clockwise) therefore reports 270.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import shutil
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from stpr.errors import InputError, OutputError

__all__ = [
    "Frame",
    "MediaInfo",
    "FrameReader",
    "FrameWriter",
    "open_input",
    "open_output",
    "write_test_video",
    "check_output_target",
    "resolve_video_codec",
    "open_segment_writer",
    "concat_segments",
    "segment_container_suffix",
    "describe_os_error",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

DEFAULT_FPS = Fraction(25)

# FFmpeg enum values (AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic
# share the numbering for these entries; AVColorRange: 1 = tv/MPEG, 2 = pc/JPEG).
_AVCOL_BT709 = 1
_AVCOL_BT470BG = 5
_AVCOL_SMPTE170M = 6
_AVCOL_RANGE_MPEG = 1
_AVCOL_RANGE_JPEG = 2

# swscale names for the conversion matrix and range.
_SWS_COLORSPACE = {"bt709": "ITU709", "bt601": "ITU601"}
_SWS_RANGE = {"tv": "MPEG", "pc": "JPEG"}
# Accurate rounding and full-resolution chroma keep a round trip within a level or two.
_SWS_FLAGS = int(
    av.video.reformatter.Interpolation.BICUBIC
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INT
)

# Codecs whose quality is set with a "crf" option, and those taking a "preset" name.
_CRF_CODECS = {"libx264", "libx265", "libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265"}
# Above this many pixels per frame (about 2560x1440) x264 is set up for low memory (see _add_video_stream).
_LARGE_FRAME_PIXELS = 2560 * 1440


# --------------------------------------------------------------------------- data


@dataclass
class Frame:
    """One decoded picture.

    ``rgb`` is (H, W, 3) uint8 RGB exactly as stored in the source; if
    ``MediaInfo.rotation`` is non-zero the picture still needs that rotation for
    display (the video writer keeps it as metadata, image writers apply it).
    """

    rgb: np.ndarray
    pts: int | None  # presentation timestamp in ``time_base`` units; None for images
    time_base: Fraction | None
    index: int  # 0-based decode-order index


@dataclass
class MediaInfo:
    """What we know about an input, and what the writer needs to mirror it."""

    kind: str  # "video" | "folder" | "image"
    width: int
    height: int
    fps: Fraction | None  # average frame rate; None for a single image
    num_frames: int | None  # best estimate; None if unknown
    rotation: int  # counter-clockwise display rotation: 0, 90, 180 or 270
    time_base: Fraction | None
    colorspace: str  # "bt709" | "bt601": matrix used for YUV<->RGB
    color_range: str  # "tv" | "pc"
    has_audio: bool
    path: Path


# ------------------------------------------------------------------------ helpers


def _natural_key(name: str) -> list[Any]:
    """Sort key so that frame2.png comes before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _default_colorspace(height: int) -> str:
    # Same rule FFmpeg-based players use for untagged material: HD means BT.709.
    return "bt709" if height >= 720 else "bt601"


def _normalise_rotation(degrees: float) -> int:
    """Snap an angle to the nearest multiple of 90 in [0, 360)."""
    if not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) % 4 * 90


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def describe_os_error(exc: BaseException) -> str:
    """One-line reason for an OS/FFmpeg error, without the file name (callers name the file).

    "No space left on device" and quota errors read "disk full"; other errors give their
    strerror ("Permission denied", "Invalid data found when processing input", ...).
    """
    code = getattr(exc, "errno", None)
    if code in _DISK_FULL:
        return "disk full (no space left on device)"
    if code == errno.EROFS:
        return "read-only file system"
    reason = getattr(exc, "strerror", None)
    return " ".join(str(reason).split()) if reason else _one_line(exc)


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


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while FFmpeg runs our Python write callbacks.

    A KeyboardInterrupt raised inside such a callback cannot cross FFmpeg and would be lost
    (the run would carry on with a hole in the file). The signal is delivered to the
    previous handler as soon as the FFmpeg call returns.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved: dict[int, Any] = {}
    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        if sig is None:
            continue
        try:
            saved[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in pending:
            handler = saved.get(sig)
            if callable(handler):
                handler(sig, None)
            elif handler is None or handler == signal.SIG_DFL:
                signal.raise_signal(sig)


def _decode_image(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raise InputError if impossible."""
    try:
        # np.fromfile + imdecode instead of imread: imread cannot open non-ASCII paths
        # on every platform.
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {_one_line(exc)}") from exc
    # ANYCOLOR|ANYDEPTH keeps grey/16-bit as they are, drops alpha and applies the
    # EXIF orientation (which IMREAD_UNCHANGED would ignore; images have no other
    # way to carry rotation to the output).
    img = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if img is None:
        raise InputError(f"cannot decode image {path}: not a supported image or corrupt")
    return _to_rgb8(img)


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    """Convert an OpenCV image (grey/BGR/BGRA, any depth) to uint8 RGB."""
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64, np.float16):
        img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if channels == 2:  # grey + alpha
        return np.ascontiguousarray(np.repeat(img[:, :, :1], 3, axis=2))
    return np.ascontiguousarray(img[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped


def _probe_image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None if unknown.

    Used to reject a folder of mixed sizes before any frame is processed.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head[:2] != b"\xff\xd8":
                return None
            fh.seek(2)
            while True:  # walk JPEG segments up to the start-of-frame marker
                marker = fh.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                code = marker[1]
                if code == 0xFF:  # fill byte
                    fh.seek(-1, os.SEEK_CUR)
                    continue
                if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
                    continue  # markers without a length field
                length = int.from_bytes(fh.read(2), "big")
                if code in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    sof = fh.read(5)
                    if len(sof) < 5:
                        return None
                    return int.from_bytes(sof[3:5], "big"), int.from_bytes(sof[1:3], "big")
                if length < 2:
                    return None
                fh.seek(length - 2, os.SEEK_CUR)
    except OSError:
        return None


def _rotate_for_display(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation to pixels (for image outputs)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


# ------------------------------------------------------------------------- reading


class FrameReader:
    """Iterator of :class:`Frame` over one input; use as a context manager."""

    info: MediaInfo

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file handles (safe to call twice)."""

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ImageReader(FrameReader):
    """A sorted list of image files (a folder, or a single image)."""

    def __init__(self, files: list[Path], info_path: Path, kind: str) -> None:
        self._files = files
        first = _decode_image(files[0])
        self._first: np.ndarray | None = first
        height, width = first.shape[:2]
        if kind == "folder":
            for f in files[1:]:
                size = _probe_image_size(f)
                if size is not None and size != (width, height):
                    raise InputError(
                        f"{info_path}: frames differ in size: {files[0].name} is {width}x{height}, "
                        f"{f.name} is {size[0]}x{size[1]}"
                    )
        self.info = MediaInfo(
            kind=kind,
            width=width,
            height=height,
            fps=None if kind == "image" else DEFAULT_FPS,
            num_frames=len(files),
            rotation=0,
            time_base=None,
            colorspace=_default_colorspace(height),
            color_range="tv",
            has_audio=False,
            path=info_path,
        )

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._files):
            if index == 0 and self._first is not None:
                rgb, self._first = self._first, None
            else:
                rgb = _decode_image(path)
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise InputError(
                    f"{self.info.path}: frames differ in size: {path.name} is "
                    f"{rgb.shape[1]}x{rgb.shape[0]}, expected {self.info.width}x{self.info.height}"
                )
            yield Frame(rgb=rgb, pts=None, time_base=None, index=index)


class _VideoReader(FrameReader):
    """Decodes the first real video stream of a container with PyAV."""

    def __init__(self, path: Path) -> None:
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"cannot open {path}: not a readable video or image, or damaged/truncated ({describe_os_error(exc)})"
            ) from exc
        self._container = container
        try:
            self._setup(path)
        except BaseException:
            container.close()
            raise

    def _setup(self, path: Path) -> None:
        container = self._container
        # Cover art in audio files shows up as a one-picture "video" stream; skip it.
        streams = [
            s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
        ]
        if not streams:
            raise InputError(f"{path}: no video stream (audio-only or not a video file)")
        stream = streams[0]
        stream.thread_type = "AUTO"  # frame+slice threads; decoding order is unchanged
        cc = stream.codec_context
        if (cc.width or 0) * (cc.height or 0) > _LARGE_FRAME_PIXELS:
            # Each frame thread holds its own frames (~0.2 GB at 4K with the default count);
            # two are plenty where the network takes seconds per frame.
            cc.thread_count = 2
        self._stream = stream
        self._reformatter = VideoReformatter()
        self._warned_decode = False
        self._frames = self._decode()

        first = next(self._frames, None)
        if first is None:
            raise InputError(f"{path}: contains no decodable video frames")
        self._first: av.VideoFrame | None = first

        colorspace, color_range = self._colour_of(first)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = Fraction(fps) if fps else None
        self.info = MediaInfo(
            kind="video",
            width=first.width,
            height=first.height,
            fps=fps,
            num_frames=self._estimate_frames(fps),
            rotation=self._rotation_of(first),
            time_base=Fraction(stream.time_base) if stream.time_base else None,
            colorspace=colorspace,
            color_range=color_range,
            has_audio=bool(container.streams.audio),
            path=path,
        )

    @staticmethod
    def _colour_of(frame: av.VideoFrame) -> tuple[str, str]:
        if frame.colorspace == _AVCOL_BT709:
            colorspace = "bt709"
        elif frame.colorspace in (_AVCOL_BT470BG, _AVCOL_SMPTE170M):
            colorspace = "bt601"
        else:  # unspecified (or exotic): follow the usual resolution rule
            colorspace = _default_colorspace(frame.height)
        full = frame.color_range == _AVCOL_RANGE_JPEG or frame.format.name.startswith("yuvj")
        return colorspace, "pc" if full else "tv"

    def _rotation_of(self, frame: av.VideoFrame) -> int:
        # FFmpeg attaches the stream's display matrix to every decoded frame.
        try:
            angle = float(frame.rotation)
        except (AttributeError, TypeError, ValueError):
            angle = 0.0
        if angle == 0.0:
            # Legacy "rotate" tag (clockwise degrees) some muxers leave as metadata.
            tag = self._stream.metadata.get("rotate")
            if tag and tag.lstrip("-").isdigit():
                angle = -float(tag)
        return _normalise_rotation(angle)

    def _estimate_frames(self, fps: Fraction | None) -> int | None:
        stream = self._stream
        if stream.frames:
            return int(stream.frames)
        if fps:
            if stream.duration and stream.time_base:
                return max(1, round(stream.duration * stream.time_base * fps))
            if self._container.duration:
                return max(1, round(Fraction(self._container.duration, av.time_base) * fps))
        return None

    def _decode(self) -> Iterator[av.VideoFrame]:
        path = self._container.name
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    # A damaged packet costs a frame or two, not the whole run.
                    if not self._warned_decode:
                        warnings.warn(f"{path}: skipping undecodable data ({_one_line(exc)})", stacklevel=2)
                        self._warned_decode = True
                    continue
                yield from frames
        except av.FFmpegError as exc:
            raise InputError(f"{path}: read error while demuxing ({_one_line(exc)})") from exc

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        info = self.info
        rgb = self._reformatter.reformat(
            frame,
            width=info.width,  # a mid-stream size change is scaled back to the first size
            height=info.height,
            format="rgb24",
            src_colorspace=_SWS_COLORSPACE[info.colorspace],
            src_color_range=_SWS_RANGE[info.color_range],
            interpolation=_SWS_FLAGS,
        )
        return np.ascontiguousarray(rgb.to_ndarray())

    def __iter__(self) -> Iterator[Frame]:
        time_base = self.info.time_base
        synth_step = self._synthetic_pts_step()
        start = self._stream.start_time or 0
        index = 0
        while True:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                frame = next(self._frames, None)
                if frame is None:
                    return
            pts = frame.pts if synth_step is None else start + index * synth_step
            yield Frame(rgb=self._to_rgb(frame), pts=pts, time_base=time_base, index=index)
            index += 1

    def _synthetic_pts_step(self) -> int | None:
        """Ticks per frame when timestamps must be made up from the frame rate, else None.

        AVI stores no presentation times; with B-frames the decoder hands back
        shuffled packet times.  AVI is constant-frame-rate, so index * step is exact.
        """
        fps, tb = self.info.fps, self.info.time_base
        if self._container.format.name != "avi" or not fps or not tb:
            return None
        return max(1, round(1 / (fps * tb)))

    def close(self) -> None:
        self._container.close()


def open_input(path: str | os.PathLike[str]) -> FrameReader:
    """Open a video file, a folder of images or a single image for reading.

    Raises InputError (one line, naming the path) if the input is missing,
    unreadable, not media, or holds no video frames.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        try:
            entries = list(path.iterdir())
        except OSError as exc:
            raise InputError(f"cannot list folder {path}: {_one_line(exc)}") from exc
        files = sorted(
            (
                p
                for p in entries
                if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
            ),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise InputError(f"{path}: folder contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return _ImageReader(files, path, "folder")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _ImageReader([path], path, "image")
    return _VideoReader(path)


# ------------------------------------------------------------------------- writing


class FrameWriter:
    """Writes frames to a temporary location, renamed into place by :meth:`close`.

    As a context manager it closes on success and aborts (removing the temporary
    output) when the block raises.
    """

    def __init__(self, final: Path, temp: Path, info: MediaInfo) -> None:
        self.path = final
        self._final = final
        self._temp = temp
        self._info = info
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
        os.replace(self._temp, self._final)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


class _ImageWriter(FrameWriter):
    """Exactly one frame to a single image file."""

    def _write(self, frame: Frame) -> None:
        if self.frames_written:
            raise OutputError(f"{self._final}: single-image output but the input has more than one frame")
        _save_image(self._temp, _rotate_for_display(frame.rgb, self._info.rotation), self._final.suffix)


class _FolderWriter(FrameWriter):
    """Numbered PNGs (00000.png, ...) in a temporary sibling folder."""

    _FRAME_NAME = re.compile(r"^\d{5,}\.png$")

    def __init__(self, final: Path, temp: Path, info: MediaInfo) -> None:
        super().__init__(final, temp, info)
        _remove(temp)  # leftovers of a killed run
        temp.mkdir()

    def _write(self, frame: Frame) -> None:
        name = f"{self.frames_written:05d}.png"
        _save_image(self._temp / name, _rotate_for_display(frame.rgb, self._info.rotation), ".png")

    def _commit(self) -> None:
        if not self._final.exists():
            os.replace(self._temp, self._final)
            return
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


def _pick_pix_fmt(codec: str, width: int, height: int) -> str:
    formats = {f.name for f in (av.Codec(codec, "w").video_formats or [])}
    if width % 2 == 0 and height % 2 == 0 and (not formats or "yuv420p" in formats):
        return "yuv420p"
    if "yuv444p" in formats:
        return "yuv444p"  # 4:2:0 needs even dimensions; 4:4:4 keeps every pixel
    if width % 2 or height % 2:
        raise OutputError(f"codec {codec} cannot encode odd frame size {width}x{height}; use libx264")
    raise OutputError(f"codec {codec} supports none of yuv420p/yuv444p")


def _add_video_stream(
    container: av.container.OutputContainer,
    codec: str,
    *,
    width: int,
    height: int,
    fps: Fraction,
    time_base: Fraction,
    colorspace: str,
    color_range: str,
    rotation: int,
    crf: int,
    preset: str,
) -> tuple[av.VideoStream, str]:
    """Add and configure an encoder stream; returns it and its pixel format."""
    options: dict[str, str] = {}
    if codec in _CRF_CODECS:
        options["crf"] = str(crf)
        if codec.startswith("libvpx"):
            options["b"] = "0"  # constant-quality mode
    if codec in _PRESET_CODECS:
        options["preset"] = preset
    if codec == "libx264" and width * height > _LARGE_FRAME_PIXELS:
        # x264 keeps rc-lookahead (40 with preset medium) frames plus some per frame thread in
        # memory: ~1.7 GB at 4K. Without lookahead/B-frames (tune zerolatency) and with one thread
        # it needs ~0.3 GB (measured, 60 4K frames); encoding (~0.5 s per 4K frame) stays far
        # faster than enhancing at these sizes and runs beside it in the writer thread.
        options["tune"] = "zerolatency"
        options["threads"] = "1"
    stream = container.add_stream(codec, rate=fps, options=options)
    pix_fmt = _pick_pix_fmt(codec, width, height)
    stream.width = width
    stream.height = height
    stream.pix_fmt = pix_fmt
    stream.time_base = time_base
    stream.thread_type = "AUTO"
    cc = stream.codec_context
    cc.time_base = time_base
    tag = _AVCOL_BT709 if colorspace == "bt709" else _AVCOL_SMPTE170M
    cc.colorspace = tag
    cc.color_primaries = tag
    cc.color_trc = tag
    cc.color_range = _AVCOL_RANGE_JPEG if color_range == "pc" else _AVCOL_RANGE_MPEG
    if rotation:
        stream.set_display_rotation(rotation)
    return stream, pix_fmt


def _rgb_to_video_frame(
    reformatter: VideoReformatter, rgb: np.ndarray, pix_fmt: str, colorspace: str, color_range: str
) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return reformatter.reformat(
        frame,
        format=pix_fmt,
        src_colorspace=_SWS_COLORSPACE[colorspace],  # ignored for RGB input, keeps sws happy
        dst_colorspace=_SWS_COLORSPACE[colorspace],
        src_color_range="JPEG",
        dst_color_range=_SWS_RANGE[color_range],
        interpolation=_SWS_FLAGS,
    )


# FFmpeg muxer for each video output extension.
_FORMAT_OF_SUFFIX = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi", ".webm": "webm"}
# Muxers that take H.264/HEVC as an Annex B byte stream rather than MP4-style length prefixes.
_ANNEXB_FORMATS = {"avi", "mpegts", "h264", "hevc"}


def _choose_encoder(codec: str, out: av.container.OutputContainer, final: Path) -> str:
    """The encoder to use for ``codec`` in ``out``: the default H.264 falls back to the
    container's own codec (e.g. VP9 for .webm); any other codec it cannot hold is an error."""
    try:
        encoder_name = av.Codec(codec, "w").name
    except ValueError as exc:  # av.codec.codec.UnknownCodecError
        raise OutputError(f"no video encoder named {codec!r} in this FFmpeg build") from exc
    supported = out.supported_codecs
    if codec not in supported and encoder_name not in supported:
        if codec == "libx264":  # the default: let e.g. .webm use its own codec
            fallback = out.default_video_codec
            warnings.warn(f"{final.suffix} cannot hold H.264; encoding video as {fallback}", stacklevel=4)
            return av.Codec(fallback, "w").name  # encoder name, e.g. libvpx-vp9, so crf applies
        raise OutputError(f"{final}: a {final.suffix} file cannot hold {codec} video")
    return codec


def resolve_video_codec(path: str | os.PathLike[str], codec: str) -> str:
    """The encoder a video output at ``path`` will use when asked for ``codec`` (see
    :func:`_choose_encoder`), decided without creating the file."""
    path = Path(path)
    fmt = _FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path} is not a video output ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    out = av.open(io.BytesIO(), "w", format=fmt)
    try:
        return _choose_encoder(codec, out, path)
    finally:
        out.close()


class _VideoWriter(FrameWriter):
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
    ) -> None:
        super().__init__(final, temp, info)
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
        self._setup_carry(source)

    def _setup_carry(self, source: Path | None) -> None:
        # Source streams we carry over: input index -> (output stream, re-encoder or None).
        self._carry: dict[int, tuple[av.stream.Stream, _AudioReencoder | None]] = {}
        self._pending: av.Packet | None = None
        self._src_packets: Iterator[av.Packet] | None = None
        if source is not None and source.is_file():
            self._open_source(source)

    # ---- source streams

    def _open_source(self, source: Path) -> None:
        try:
            self._src = av.open(str(source), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            warnings.warn(
                f"cannot reopen {source} to copy its audio ({_one_line(exc)}); output has none", stacklevel=4
            )
            return
        supported = self._out.supported_codecs
        for stream in self._src.streams:
            name = stream.codec_context.name if stream.codec_context else None
            if stream.type == "audio" and name:
                if name in supported:
                    self._carry[stream.index] = (self._out.add_stream_from_template(stream), None)
                else:
                    target = "aac" if "aac" in supported else self._out.default_audio_codec
                    warnings.warn(
                        f"{self._final.suffix} cannot hold {name} audio; re-encoding it to {target}", stacklevel=4
                    )
                    reencoder = _AudioReencoder(self._out, stream, target)
                    self._carry[stream.index] = (reencoder.stream, reencoder)
            elif stream.type == "subtitle" and name and name in supported:
                self._carry[stream.index] = (self._out.add_stream_from_template(stream), None)
            elif stream.type in ("audio", "subtitle", "data"):
                # Data tracks (timecode, GPS...) rarely survive a container change.
                warnings.warn(
                    f"dropping {stream.type} stream #{stream.index} ({name or 'unknown codec'}): "
                    f"not supported in {self._final.suffix}",
                    stacklevel=4,
                )
        if self._carry:
            streams = [s for s in self._src.streams if s.index in self._carry]
            self._src_packets = iter(self._src.demux(streams))
        else:
            self._src.close()
            self._src = None

    def _copy_until(self, limit: float | None) -> None:
        """Mux source packets up to ``limit`` seconds (all if None) to interleave them."""
        if self._src_packets is None:
            return
        while True:
            packet = self._pending
            if packet is None:
                try:
                    packet = next(self._src_packets, None)
                except av.FFmpegError as exc:
                    warnings.warn(f"stopped copying audio early: {_one_line(exc)}", stacklevel=3)
                    packet = None
                if packet is None:
                    self._src_packets = None
                    return
            ts = packet.dts if packet.dts is not None else packet.pts
            if ts is None:  # demuxer flush packet: nothing to write
                self._pending = None
                continue
            if limit is not None and float(ts * packet.time_base) > limit:
                self._pending = packet
                return
            self._pending = None
            out_stream, reencoder = self._carry[packet.stream.index]
            if reencoder is not None:
                self._mux(reencoder.encode(packet))
            else:
                packet.stream = out_stream
                self._mux(packet)

    # ---- video

    def _write(self, frame: Frame) -> None:
        h, w = frame.rgb.shape[:2]
        if self._size is None:
            if (w, h) != (self._vstream.width, self._vstream.height):
                # Encoder is not open yet, so a different output size is still possible.
                self._vstream.width, self._vstream.height = w, h
                self._vstream.pix_fmt = self._pix_fmt = _pick_pix_fmt(self._vstream.codec_context.name, w, h)
            self._size = (w, h)
        elif (w, h) != self._size:
            first_w, first_h = self._size
            raise ValueError(f"frame {frame.index} is {w}x{h}, earlier frames were {first_w}x{first_h}")

        info = self._info
        vf = _rgb_to_video_frame(self._reformatter, frame.rgb, self._pix_fmt, info.colorspace, info.color_range)
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

    def _finish_carry(self) -> None:
        self._copy_until(None)
        for out_stream, reencoder in self._carry.values():
            if reencoder is not None:
                self._mux(reencoder.flush())

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


class _ConcatWriter(_VideoWriter):
    """Joins finished video-only segment files into one output without re-encoding, and
    copies the source's audio/subtitle streams around them (as ``_VideoWriter`` does).

    Packets keep their timestamps (segments are written with the source's presentation
    times), so the result has the same video pts as a single-pass run.
    """

    def __init__(self, final: Path, temp: Path, info: MediaInfo, *, source: Path | None, template: Path) -> None:
        self._template = template
        super().__init__(final, temp, info, source=source, codec="", crf=0, preset="")

    def _setup(self, source: Path | None, codec: str, crf: int, preset: str) -> None:
        with av.open(str(self._template)) as seg:
            tmpl = seg.streams.video[0]
            if tmpl.codec_context.name not in self._out.supported_codecs:
                raise OutputError(f"{self._final}: a {self._final.suffix} file cannot hold {tmpl.codec_context.name}")
            self._vstream = self._out.add_stream_from_template(tmpl)
            # Segments hold H.264/HEVC as in MP4 (length-prefixed); AVI and friends want Annex B.
            self._bsf = None
            name = tmpl.codec_context.name
            if self._out.format.name in _ANNEXB_FORMATS and name in ("h264", "hevc"):
                self._bsf = av.bitstream.BitStreamFilterContext(f"{name}_mp4toannexb", tmpl, self._vstream)
        fps = Fraction(self._info.fps) if self._info.fps else DEFAULT_FPS
        self._vstream.codec_context.framerate = fps  # not the template's (one short segment's) rate
        if self._out.format.name == "avi":  # constant frame rate: see _VideoWriter._setup
            self._vstream.time_base = 1 / fps
            if self._info.rotation:
                warnings.warn(
                    f"{self._final.suffix} cannot store the rotation tag; output will play unrotated", stacklevel=4
                )
        elif self._info.rotation:
            self._vstream.set_display_rotation(self._info.rotation)
        self._last_dts: Fraction | None = None
        self._delay: Fraction | None = None  # the stream's decode delay, see _segment_delay
        self._setup_carry(source)

    @staticmethod
    def _segment_delay(path: Path) -> Fraction:
        """How far (seconds) decoding runs ahead of presentation at the start of a segment: the
        encoder's reorder delay, which is shorter in a segment too short for B-frames."""
        with av.open(str(path)) as seg:
            for packet in seg.demux(seg.streams.video[0]):
                if packet.size and packet.pts is not None and packet.dts is not None:
                    return max(Fraction(0), (packet.pts - packet.dts) * Fraction(packet.time_base))
        return Fraction(0)

    def set_delay(self, delay: Fraction) -> None:
        """Decode delay (seconds) to give every segment: decode timestamps of a segment with a
        shorter delay are moved earlier by the difference, so they continue smoothly from the
        previous segment instead of jumping (which MP4 would turn into a long frame)."""
        self._delay = Fraction(delay)

    def _write(self, frame: Frame) -> None:  # pragma: no cover - segments only
        raise OutputError(f"{self._final}: frames cannot be written to a segment join")

    def add_segment(self, path: Path, offset: Fraction = Fraction(0)) -> int:
        """Append every video packet of one segment file, ``offset`` seconds later than stored;
        returns the number of packets."""
        if self._done:
            raise OutputError(f"{self._final}: add_segment() after close()/abort()")
        count = 0
        try:
            dts_back = 0
            if self._delay is not None:
                dts_back = self._delay - self._segment_delay(path)
            with av.open(str(path)) as seg:
                stream = seg.streams.video[0]
                tb = Fraction(stream.time_base)
                shift = round(Fraction(offset) / tb)
                dts_shift = shift - max(0, round(dts_back / tb))
                for packet in seg.demux(stream):
                    if packet.size == 0:  # demuxer flush packet
                        continue
                    if packet.pts is not None:
                        packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += dts_shift
                    for out in self._bsf.filter(packet) if self._bsf is not None else [packet]:
                        self._keep_dts_increasing(out)
                        out.stream = self._vstream
                        self._mux_video(out)
                    count += 1
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self._final} from segment {path.name}: {describe_os_error(exc)}") from exc
        self.frames_written += count
        return count

    def _keep_dts_increasing(self, packet: av.Packet) -> None:
        # Each segment's encoder starts with its own reorder delay; at a join the first
        # decode timestamps may not exceed the previous segment's last one. Nudge them
        # forward (presentation times are untouched, so the pictures are unchanged).
        if packet.dts is None or packet.time_base is None:
            return
        tb = Fraction(packet.time_base)
        dts = packet.dts * tb
        if self._last_dts is not None and dts <= self._last_dts:
            new = math.floor(self._last_dts / tb) + 1
            if packet.pts is None or new <= packet.pts:
                packet.dts = new
                dts = new * tb
        self._last_dts = dts

    def _finish(self) -> None:
        self._finish_carry()
        self._close_output()
        self._release()


def segment_container_suffix(codec: str) -> str:
    """Container for resumable-run segments: MP4 keeps exact timestamps (in the stream's time
    base, with edit lists for the encoder delay); MOV or Matroska for codecs MP4 cannot hold."""
    for suffix, fmt in ((".mp4", "mp4"), (".mov", "mov"), (".mkv", "matroska")):
        out = av.open(io.BytesIO(), "w", format=fmt)
        try:
            supported = out.supported_codecs
        finally:
            out.close()
        if codec in supported or av.Codec(codec, "w").name in supported:
            return suffix
    raise OutputError(f"no segment container can hold {codec} video")


def open_segment_writer(
    path: str | os.PathLike[str], info: MediaInfo, *, codec: str, crf: int = 18, preset: str = "medium"
) -> FrameWriter:
    """A video-only writer for one segment of a resumable run (``stpr enhance --resume``).

    Written like any output: under a temporary name, renamed to ``path`` when closed.
    ``codec`` should come from :func:`resolve_video_codec` for the final output.
    """
    path = Path(path)
    temp = path.with_name(f".{path.stem}.partial{path.suffix}")
    _remove(temp)
    try:
        return _VideoWriter(path, temp, info, source=None, codec=codec, crf=crf, preset=preset)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise OutputError(f"cannot create {path}: {describe_os_error(exc)}") from exc


def concat_segments(
    segments: list[Path],
    path: str | os.PathLike[str],
    info: MediaInfo,
    *,
    source: Path | None = None,
    overwrite: bool = False,
    offsets: list[Fraction] | None = None,
) -> int:
    """Join segment files (from :func:`open_segment_writer`) into the video ``path`` without
    re-encoding, copying audio/subtitles from ``source``; returns the number of frames.

    ``offsets`` (seconds, one per segment) are added to each segment's timestamps: segments
    are written starting at time 0, which MP4 stores exactly.

    The output appears under its final name only once complete, like :func:`open_output`.
    """
    path = Path(path)
    if not segments:
        raise OutputError(f"{path}: no segments to join")
    check_output_target(path, [p for p in (source, info.path) if p is not None], overwrite=overwrite)
    temp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        writer = _ConcatWriter(path, temp, info, source=source, template=segments[0])
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise OutputError(f"cannot create {path}: {describe_os_error(exc)}") from exc
    with writer:
        writer.set_delay(max(writer._segment_delay(seg) for seg in segments))
        for seg, offset in zip(segments, offsets or [Fraction(0)] * len(segments)):
            writer.add_segment(seg, offset)
    return writer.frames_written


class _AudioReencoder:
    """Decodes one source audio stream and encodes it for a container that cannot hold it."""

    def __init__(self, out: av.container.OutputContainer, src: av.audio.AudioStream, codec: str) -> None:
        self._decoder = src.codec_context
        enc = av.Codec(codec, "w")
        rate = src.codec_context.sample_rate or 48000
        if enc.audio_rates and rate not in enc.audio_rates:
            rate = 48000 if 48000 in enc.audio_rates else max(enc.audio_rates)
        self.stream = out.add_stream(codec, rate=rate)
        layout = src.codec_context.layout
        if layout is not None and layout.nb_channels <= 2:
            self.stream.layout = layout
        else:  # keep it simple for exotic layouts
            self.stream.layout = "stereo"
        fmt = enc.audio_formats[0].name if enc.audio_formats else "fltp"
        self.stream.format = fmt
        self._resampler: av.AudioResampler | None = None
        self._rate, self._fmt = rate, fmt

    def _resample(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if self._resampler is None:
            # frame_size makes the resampler hand out exactly what the encoder wants.
            self._resampler = av.AudioResampler(
                format=self._fmt,
                layout=self.stream.layout,
                rate=self._rate,
                frame_size=self.stream.codec_context.frame_size or None,
            )
        return self._resampler.resample(frame)

    def encode(self, packet: av.Packet) -> list[av.Packet]:
        packets: list[av.Packet] = []
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            return packets  # a damaged audio packet: skip it
        for frame in frames:
            for out_frame in self._resample(frame):
                packets += self.stream.encode(out_frame)
        return packets

    def flush(self) -> list[av.Packet]:
        packets: list[av.Packet] = []
        for frame in self._decoder.decode(None):
            for out_frame in self._resample(frame):
                packets += self.stream.encode(out_frame)
        if self._resampler is not None:
            for out_frame in self._resampler.resample(None):
                packets += self.stream.encode(out_frame)
        packets += self.stream.encode(None)
        return packets


def _check_output_path(path: Path, inputs: list[Path]) -> None:
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


def check_output_target(
    path: str | os.PathLike[str], inputs: list[Path], *, overwrite: bool = False
) -> None:
    """The checks :func:`open_output` makes before creating anything, for callers that want
    to fail early (before hours of work): raises OutputError if ``path`` is an input, its
    folder is missing/unwritable, or it exists and ``overwrite`` is false."""
    path = Path(path)
    _check_output_path(path, inputs)
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
) -> FrameWriter:
    """Create a writer for ``path``; the output kind follows the path.

    Video extension -> video file; existing folder or no suffix -> folder of PNGs;
    image extension -> single image (only for a one-frame input).
    Raises OutputError when the output exists (and not ``overwrite``), would replace
    the input, or its folder is missing/unwritable.
    """
    path = Path(path)
    source = Path(source) if source is not None else None
    suffix = path.suffix.lower()
    _check_output_path(path, [p for p in (source, info.path) if p is not None])

    if path.is_dir() or (suffix == "" and not path.exists()):
        # An empty existing folder is a natural target; a non-empty one needs overwrite.
        if path.is_dir() and not overwrite and any(path.iterdir()):
            raise OutputError(f"output folder {path} is not empty (use --overwrite)")
        temp = path.with_name(f".{path.name}.partial")
        return _FolderWriter(path, temp, info)

    if path.exists() and not overwrite:
        raise OutputError(f"output {path} already exists (use --overwrite)")
    if path.is_dir():  # pragma: no cover - handled above
        raise OutputError(f"output {path} is a folder")
    temp = path.with_name(f".{path.stem}.partial{path.suffix}")

    if suffix in VIDEO_EXTENSIONS:
        try:
            return _VideoWriter(path, temp, info, source=source, codec=codec, crf=crf, preset=preset)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"cannot create {path}: {describe_os_error(exc)}") from exc
    if suffix in IMAGE_EXTENSIONS:
        if info.num_frames is not None and info.num_frames > 1:
            raise OutputError(
                f"output {path} is a single image but the input has {info.num_frames} frames; "
                f"give a folder or a video name ({', '.join(sorted(VIDEO_EXTENSIONS))})"
            )
        return _ImageWriter(path, temp, info)
    raise OutputError(
        f"unsupported output type {path.suffix!r} for {path}; use a video "
        f"({', '.join(sorted(VIDEO_EXTENSIONS))}), an image, or a folder"
    )


# ----------------------------------------------------------------------- test media


def write_test_video(
    path: str | os.PathLike[str],
    frames: list[np.ndarray] | np.ndarray,
    fps: float | Fraction = 25,
    *,
    audio_seconds: float | None = None,
    codec: str = "libx264",
    pts: list[int] | None = None,
    rotation: int = 0,
    time_base: Fraction | None = None,
    crf: int = 18,
) -> None:
    """Write uint8 RGB ``frames`` as a small video (for tests and sample clips).

    ``audio_seconds`` adds a 440 Hz sine AAC track (Opus for .webm) of that length.
    ``pts`` gives explicit timestamps in ``time_base`` units (default 1/fps) for
    variable-frame-rate clips.  ``rotation`` is stored as a counter-clockwise
    display-matrix rotation.  Colours are tagged and converted like the writer does
    (BT.709 from 720 lines up, BT.601 below; limited range).
    """
    path = Path(path)
    frames = [np.asarray(f, dtype=np.uint8) for f in frames]
    if not frames:
        raise ValueError("write_test_video needs at least one frame")
    height, width = frames[0].shape[:2]
    fps = Fraction(fps).limit_denominator(1001000)
    tb = Fraction(time_base) if time_base is not None else 1 / fps
    if pts is not None and len(pts) != len(frames):
        raise ValueError("pts must have one entry per frame")
    colorspace = _default_colorspace(height)

    with av.open(str(path), "w") as out:
        vstream, pix_fmt = _add_video_stream(
            out,
            codec,
            width=width,
            height=height,
            fps=fps,
            time_base=tb,
            colorspace=colorspace,
            color_range="tv",
            rotation=rotation,
            crf=crf,
            preset="veryfast",
        )
        astream = None
        if audio_seconds:
            acodec = "aac" if "aac" in out.supported_codecs else "libopus"
            rate = 48000
            astream = out.add_stream(acodec, rate=rate)
            astream.layout = "stereo"
        reformatter = VideoReformatter()
        packets: list[av.Packet] = []
        for i, rgb in enumerate(frames):
            vf = _rgb_to_video_frame(reformatter, rgb, pix_fmt, colorspace, "tv")
            vf.pts = pts[i] if pts is not None else i
            vf.time_base = tb
            packets += vstream.encode(vf)
        packets += vstream.encode(None)
        if astream is not None:
            packets += _sine_packets(astream, audio_seconds)
        # Sort by time so the muxer sees the streams interleaved.
        packets.sort(key=lambda p: float((p.dts if p.dts is not None else 0) * p.time_base))
        for packet in packets:
            out.mux(packet)


def _sine_packets(stream: av.audio.AudioStream, seconds: float) -> list[av.Packet]:
    rate = stream.codec_context.sample_rate
    total = int(round(seconds * rate))
    chunk = 1024
    resampler = av.AudioResampler(
        format=stream.codec_context.format.name,
        layout="stereo",
        rate=rate,
        frame_size=stream.codec_context.frame_size or None,
    )
    packets: list[av.Packet] = []
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for out_frame in resampler.resample(frame):
            packets += stream.encode(out_frame)
    for out_frame in resampler.resample(None):
        packets += stream.encode(out_frame)
    packets += stream.encode(None)
    return packets
