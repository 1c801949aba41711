"""Encoding: which video encoder an output gets and how its stream is set up.

:func:`resolve_video_codec` / ``_choose_encoder`` pick the encoder a container can hold (the
default H.264 falls back to the container's own codec, e.g. VP9 for .webm); ``_add_video_stream``
sets the encoder options (crf, preset, low-memory x264 for large frames), the pixel format
(``_pick_pix_fmt``: 4:2:0; odd sizes are padded by one pixel to even) and the colour tags (matrix, primaries,
transfer, range); ``_rgb_to_video_frame`` converts RGB back to YUV with the input's matrix and
range, so a pass-through round trip does not shift colours.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from stpr.errors import OutputError, UsageError
from stpr.io.common import (
    _AVCOL_BT709,
    _AVCOL_BT2020,
    _AVCOL_TRC_BT2020_10,
    _AVCOL_RANGE_JPEG,
    _AVCOL_RANGE_MPEG,
    _AVCOL_SMPTE170M,
    _LARGE_FRAME_PIXELS,
    _SWS_COLORSPACE,
    _SWS_FLAGS,
    _SWS_RANGE,
    VIDEO_EXTENSIONS,
)

# Codecs whose quality is set with a "crf" option, and those taking a "preset" name.
_CRF_CODECS = {"libx264", "libx265", "libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265"}
# The quality range each encoder's crf takes (x264/x265 clamp anything above 51 silently).
_CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx": (0, 63), "libvpx-vp9": (0, 63),
              "libsvtav1": (0, 63), "libaom-av1": (0, 63)}
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


# x264's names (its --asm list) for the SIMD sets Linux reports in /proc/cpuinfo, AVX-512 left out.
_X264_ASM_OF_CPUINFO = {"sse": "MMX2,SSE", "sse2": "SSE2", "pni": "SSE3", "ssse3": "SSSE3", "sse4_1": "SSE4.1",
                        "sse4_2": "SSE4.2", "avx": "AVX", "fma": "FMA3", "avx2": "AVX2", "abm": "LZCNT",
                        "bmi1": "BMI1", "bmi2": "BMI2"}


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; empty where /proc/cpuinfo is not there."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def _x264_asm(flags: frozenset[str]) -> str | None:
    """x264's SIMD list for a CPU with ``flags``: every set it has but AVX-512, or None (x264's own
    choice) on a CPU without AVX-512. With its AVX-512 code x264 encodes the same frames to a
    different bitstream from run to run, with one thread as with several (docs/resume.md); without
    it the output is the same every time."""
    if "avx512f" not in flags:
        return None
    return ",".join(name for flag, name in _X264_ASM_OF_CPUINFO.items() if flag in flags)


def _encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    options: dict[str, str] = {}
    if codec == "libx264" and (asm := _x264_asm(_cpu_flags())):
        options["x264-params"] = f"asm={asm}"
    if codec in _CRF_CODECS:
        options["crf"] = str(crf)
        if codec.startswith("libvpx"):
            options["b"] = "0"  # constant-quality mode
    if codec in _PRESET_CODECS:
        options["preset"] = preset
    if codec == "libx265":
        options["x265-params"] = "log-level=error"  # x265 prints its info lines on stderr otherwise
    return options


def check_encoder(codec: str, *, crf: int, preset: str) -> str:
    """Check that ``codec`` is a video encoder of this FFmpeg build and that ``crf`` and ``preset``
    suit it, by opening a tiny encoder with them; returns the encoder's name. Raises
    :class:`stpr.errors.UsageError` (one line naming the option) otherwise, so a bad option
    stops a run before the model is loaded or any frame is processed."""
    try:
        enc = av.Codec(codec, "w")
    except ValueError:  # av.codec.codec.UnknownCodecError
        raise UsageError(f"--codec {codec}: no video encoder of that name in this FFmpeg build") from None
    if enc.type != "video":
        raise UsageError(f"--codec {codec} is an {enc.type} encoder, not a video encoder (e.g. libx264, libx265, "
                         f"libvpx-vp9)")
    name = enc.name
    low, high = _CRF_RANGE.get(name, (0, 63))
    if name in _CRF_CODECS and not low <= crf <= high:
        raise UsageError(f"--crf for {name} must be between {low} and {high}, got {crf}")
    if name in _PRESET_CODECS and preset not in _PRESETS + ("placebo",):
        raise UsageError(f"--preset {preset!r} is not a {name} preset; choose from {', '.join(_PRESETS)}")
    cc = av.CodecContext.create(name, "w")
    cc.width, cc.height = 64, 48
    cc.pix_fmt = _pick_pix_fmt(name, 64, 48)
    cc.time_base = Fraction(1, 25)
    cc.framerate = Fraction(25)
    cc.options = _encoder_options(name, crf, preset)
    try:
        cc.open()
    except (av.FFmpegError, ValueError) as exc:
        what = f"--preset {preset!r}, " if name in _PRESET_CODECS else ""
        raise UsageError(f"--codec {name} does not open with {what}--crf {crf}: {' '.join(str(exc).split())}") from None
    finally:
        try:
            cc.close()
        except (AttributeError, av.FFmpegError, ValueError):
            pass
    return name


def _even(n: int) -> int:
    """``n`` rounded up to even: odd frames are padded by one pixel for 4:2:0."""
    return n + n % 2


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
    pad_odd: bool = True,
) -> tuple[av.VideoStream, str]:
    """Add and configure an encoder stream; returns it and its pixel format. With ``pad_odd`` an
    odd width or height is rounded up to even (the caller pads the frames) so the video is 4:2:0,
    which every player plays (4:4:4 H.264 or VP9 profile 1 many cannot); without it odd sizes
    are encoded 4:4:4 (test media)."""
    if pad_odd:
        width, height = _even(width), _even(height)
    options = _encoder_options(codec, crf, preset)
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
    if colorspace == "bt2020":  # SDR BT.2020 (HDR inputs are refused by the reader)
        cc.colorspace = cc.color_primaries = _AVCOL_BT2020
        cc.color_trc = _AVCOL_TRC_BT2020_10
    else:
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
    if av.Codec(codec, "w").type != "video":
        raise OutputError(f"{codec!r} is not a video encoder")
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
