"""Reading: :func:`open_input` turns a video file, a folder of images or a single image into a
:class:`FrameReader` that yields :class:`Frame` objects holding 8-bit RGB pixels *as stored*
(no rotation applied) plus their presentation timestamps, and describes the input in a
:class:`MediaInfo`.

Videos are decoded with PyAV (first real video stream; cover art is skipped). YUV is converted
to RGB with the matrix the stream declares (BT.709, BT.601 or BT.2020; untagged streams use
BT.709 from 720 lines up) so that the writer can convert back with the same one. HDR video (PQ
or HLG transfer) is refused with an InputError: stpr does not tone-map. Images are decoded with
OpenCV (EXIF orientation applied, 16-bit and grey converted to 8-bit RGB).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from stpr.errors import InputError
from stpr.io.common import (
    _AVCOL_BT2020,
    _AVCOL_BT470BG,
    _AVCOL_BT709,
    _AVCOL_RANGE_JPEG,
    _AVCOL_SMPTE170M,
    _AVCOL_SPC_BT2020_CL,
    _HDR_TRANSFERS,
    _LARGE_FRAME_PIXELS,
    _SWS_COLORSPACE,
    _SWS_FLAGS,
    _SWS_RANGE,
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    Frame,
    MediaInfo,
    _default_colorspace,
    _one_line,
    describe_os_error,
    ffmpeg_path,
)


def _natural_key(name: str) -> list[Any]:
    """Sort key so that frame2.png comes before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _normalise_rotation(degrees: float) -> int:
    """Snap an angle to the nearest multiple of 90 in [0, 360)."""
    if not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) % 4 * 90


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


# ------------------------------------------------------------------------- readers


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

    def __init__(self, files: list[Path], info_path: Path, kind: str, fps: Fraction | None = None) -> None:
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
            fps=Fraction(fps) if fps else (None if kind == "image" else DEFAULT_FPS),
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
            container = av.open(ffmpeg_path(path), metadata_errors="ignore")
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

        hdr = _HDR_TRANSFERS.get(first.color_trc) or _HDR_TRANSFERS.get(stream.codec_context.color_trc)
        if hdr:
            # An HDR picture squeezed into 8-bit SDR and tagged BT.709 would look washed out and
            # wrong everywhere; stpr does not tone-map, so it says so instead of mislabelling.
            raise InputError(
                f"{path}: HDR video ({hdr} transfer) is not supported: stpr enhances SDR video; convert it to SDR "
                f"BT.709 first (see docs/troubleshooting.md)"
            )
        colorspace, color_range = self._colour_of(first)
        tb = Fraction(stream.time_base) if stream.time_base else None
        # A late start (MPEG-TS: 1.4 s, broadcast captures hours) would become a blank lead-in
        # in the output: shift everything back to 0 as FFmpeg's remux does (never forward).
        start_time = Fraction(container.start_time, av.time_base) if container.start_time else Fraction(0)
        if start_time < 0 or tb is None:
            start_time = Fraction(0)
        self._pts_shift = round(start_time / tb) if tb else 0
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
            start_time=start_time,
        )

    @staticmethod
    def _colour_of(frame: av.VideoFrame) -> tuple[str, str]:
        if frame.colorspace == _AVCOL_BT709:
            colorspace = "bt709"
        elif frame.colorspace in (_AVCOL_BT470BG, _AVCOL_SMPTE170M):
            colorspace = "bt601"
        elif frame.colorspace in (_AVCOL_BT2020, _AVCOL_SPC_BT2020_CL):
            colorspace = "bt2020"  # constant-luminance is rare; the non-constant matrix is close
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
        start = (self._stream.start_time or 0) - self._pts_shift
        index = 0
        while True:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                frame = next(self._frames, None)
                if frame is None:
                    return
            if synth_step is not None:
                pts = start + index * synth_step
            else:
                pts = frame.pts - self._pts_shift if frame.pts is not None else None
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


# FFmpeg demuxers of single still images (JPEG, PNG, HEIC, camera thumbnails, ...): their one
# "video stream" is a photo, not a video.
_STILL_DEMUXERS = ("image2", "_pipe")


def stream_counts(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(video streams, audio streams) FFmpeg finds in a file, or None when it cannot open it as
    media (a folder, text, a damaged file). A still image counts as no video stream."""
    if Path(path).is_dir():
        return None
    try:
        with av.open(ffmpeg_path(path)) as c:
            still = any(part in c.format.name for part in _STILL_DEMUXERS)
            return (0 if still else len(c.streams.video)), len(c.streams.audio)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None


def open_input(path: str | os.PathLike[str], fps: Fraction | float | None = None) -> FrameReader:
    """Open a video file, a folder of images or a single image for reading.

    ``fps`` is the frame rate of a folder or image input (default 25 frames/s for a folder);
    a video keeps its own timing and ignores it.

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
        return _ImageReader(files, path, "folder", fps)
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _ImageReader([path], path, "image", fps)
    return _VideoReader(path)
