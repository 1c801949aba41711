"""What reading and writing share: the :class:`Frame` and :class:`MediaInfo` records, the
file extensions stpr treats as video or image, FFmpeg's colour enum values and swscale
settings, and small helpers (one-line error text, the default colour matrix, deferring
Ctrl-C while FFmpeg runs Python callbacks).

Rotation convention: ``MediaInfo.rotation`` is the counter-clockwise angle of the display
matrix (FFmpeg's convention, normalised to 0/90/180/270). A phone video whose legacy
``rotate`` tag says 90 (clockwise) therefore reports 270.
"""

from __future__ import annotations

import os

import errno
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

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
_AVCOL_BT2020 = 9  # AVCOL_SPC_BT2020_NCL and AVCOL_PRI_BT2020
_AVCOL_SPC_BT2020_CL = 10
_AVCOL_TRC_BT2020_10 = 14  # the BT.709 curve, for 10-bit BT.2020
_AVCOL_TRC_SMPTE2084 = 16  # PQ (HDR10, Dolby Vision base layers)
_AVCOL_TRC_ARIB_STD_B67 = 18  # HLG (phones' HDR video, broadcast HDR)
# Transfer curves stpr cannot treat as SDR: name for messages.
_HDR_TRANSFERS = {_AVCOL_TRC_SMPTE2084: "PQ", _AVCOL_TRC_ARIB_STD_B67: "HLG"}

# swscale names for the conversion matrix and range.
_SWS_COLORSPACE = {"bt709": "ITU709", "bt601": "ITU601", "bt2020": "BT2020"}
_SWS_RANGE = {"tv": "MPEG", "pc": "JPEG"}
# Accurate rounding and full-resolution chroma keep a round trip within a level or two.
_SWS_FLAGS = int(
    av.video.reformatter.Interpolation.BICUBIC
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INT
)

# Above this many pixels per frame (about 2560x1440) the decoder and x264 are set up for low
# memory (see reading._VideoReader._setup and encoding._add_video_stream).
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
    colorspace: str  # "bt709" | "bt601" | "bt2020" (SDR only): matrix used for YUV<->RGB
    color_range: str  # "tv" | "pc"
    has_audio: bool
    path: Path
    # Seconds that become time 0 in the output: the input's start time when it is positive
    # (MPEG-TS from cameras and broadcasts starts at 1.4 s or hours in), as FFmpeg's own remux
    # does. Frame timestamps from the reader already have it subtracted; the audio copy
    # subtracts it too, so sync is kept.
    start_time: Fraction = Fraction(0)


# ------------------------------------------------------------------------ helpers


def _default_colorspace(height: int) -> str:
    # Same rule FFmpeg-based players use for untagged material: HD means BT.709.
    return "bt709" if height >= 720 else "bt601"


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


def ffmpeg_path(path) -> str:
    """A local file's name as FFmpeg must get it: absolute, so that a name such as ``pipe:0`` or
    ``concat:a|b`` is a file, not a protocol (FFmpeg parses ``name:`` prefixes as URLs)."""
    return os.path.abspath(os.fspath(path))
