"""Segments of a resumable run (``stpr enhance --resume``, see :mod:`stpr.resume`).

:func:`open_segment_writer` writes one video-only segment (a normal video writer, under a
temporary name until closed), in the container :func:`segment_container_suffix` picks for the
codec; :func:`concat_segments` joins the finished segments into the final output without
re-encoding (``_ConcatWriter``), shifting timestamps per segment and copying the source's
audio/subtitles around them.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from fractions import Fraction
from pathlib import Path

import av

from stpr.errors import OutputError
from stpr.io.common import DEFAULT_FPS, Frame, MediaInfo, describe_os_error, ffmpeg_path
from stpr.io.encoding import _ANNEXB_FORMATS
from stpr.io.writing import (
    FrameWriter,
    _partial_path,
    _remove_stale_partials,
    _VideoWriter,
    check_output_target,
)

class _ConcatWriter(_VideoWriter):
    """Joins finished video-only segment files into one output without re-encoding, and
    copies the source's audio/subtitle streams around them (as ``_VideoWriter`` does).

    Packets keep their timestamps (segments are written with the source's presentation
    times), so the result has the same video pts as a single-pass run.
    """

    def __init__(self, final: Path, temp: Path, info: MediaInfo, *, source: Path | None, template: Path,
                 overwrite: bool = False, keep_metadata: bool = True) -> None:
        self._template = template
        super().__init__(final, temp, info, source=source, codec="", crf=0, preset="", overwrite=overwrite,
                         keep_metadata=keep_metadata)

    def _setup(self, source: Path | None, codec: str, crf: int, preset: str) -> None:
        with av.open(ffmpeg_path(self._template)) as seg:
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
        with av.open(ffmpeg_path(path)) as seg:
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
            with av.open(ffmpeg_path(path)) as seg:
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
    temp = _partial_path(path)  # unique per run; stale ones are cleared by stpr.resume
    try:
        # A segment replaces a leftover of the same name (the resume manifest decides what is kept).
        return _VideoWriter(path, temp, info, source=None, codec=codec, crf=crf, preset=preset, overwrite=True)
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
    keep_metadata: bool = True,
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
    _remove_stale_partials(path)
    temp = _partial_path(path)
    try:
        writer = _ConcatWriter(path, temp, info, source=source, template=segments[0], overwrite=overwrite,
                               keep_metadata=keep_metadata)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise OutputError(f"cannot create {path}: {describe_os_error(exc)}") from exc
    with writer:
        writer.set_delay(max(writer._segment_delay(seg) for seg in segments))
        for seg, offset in zip(segments, offsets or [Fraction(0)] * len(segments)):
            writer.add_segment(seg, offset)
    return writer.frames_written
