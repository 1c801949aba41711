"""Audio and subtitles: carrying the source's other streams into a video output.

``_SourceStreams`` is the part of the video writer (``writing._VideoWriter`` and the segment
join ``segments._ConcatWriter``) that reopens the source file and copies its audio and
subtitle packets into the output, interleaved with the video by timestamp. A stream the output
container can hold is copied as is; audio it cannot hold is re-encoded by
:class:`_AudioReencoder` (to AAC, or the container's default audio codec); anything else is
dropped with a warning.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from stpr.io.common import _one_line, ffmpeg_path


# Stream tags carried with a copied stream; container tags that describe the old file, not the content.
_STREAM_TAGS = ("language", "title", "comment")
_STALE_CONTAINER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "duration",
                                   "handler_name", "vendor_id"})


def _muxer_accepts(fmt: str, stream: av.stream.Stream) -> bool:
    """Whether the ``fmt`` muxer really takes a copy of ``stream``: writes a header in memory."""
    probe = av.open(io.BytesIO(), "w", format=fmt)
    try:
        probe.add_stream_from_template(stream)
        probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError, OSError):
        return False
    finally:
        try:
            probe.close()
        except (av.FFmpegError, ValueError, OSError):
            pass
        try:
            av.error.err_check(0)  # nothing parked for the next, unrelated call
        except Exception:  # noqa: BLE001
            pass


class _SourceStreams:
    """Copies (or re-encodes) the source's audio/subtitle streams; a mixin for the video writers.

    The writer provides ``_out`` (the output container), ``_src`` (set here to the reopened
    source, closed by the writer's ``_release``), ``_final`` (the output path, for messages) and
    ``_mux(packets)``; it calls :meth:`_setup_carry` once its video stream exists,
    :meth:`_copy_until` after each video packet and :meth:`_finish_carry` before closing.
    """

    _out: av.container.OutputContainer | None
    _src: av.container.InputContainer | None
    _final: Path

    def _setup_carry(self, source: Path | None) -> None:
        # Source streams we carry over: input index -> (output stream, re-encoder or None).
        self._carry: dict[int, tuple[av.stream.Stream, _AudioReencoder | None]] = {}
        self._pending: av.Packet | None = None
        self._src_packets: Iterator[av.Packet] | None = None
        # Seconds subtracted from every source timestamp (MediaInfo.start_time; the reader
        # subtracts the same from the video), so a late-starting input starts at 0 in sync.
        info = getattr(self, "_info", None)
        self._shift = Fraction(getattr(info, "start_time", 0) or 0)
        if source is not None and source.is_file():
            self._open_source(source)

    def _open_source(self, source: Path) -> None:
        try:
            self._src = av.open(ffmpeg_path(source), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            warnings.warn(
                f"cannot reopen {source} to copy its audio ({_one_line(exc)}); output has none", stacklevel=4
            )
            return
        if getattr(self, "_keep_metadata", True):
            self._copy_container_tags()
        supported = self._out.supported_codecs
        fmt = self._out.format.name
        for stream in self._src.streams:
            name = stream.codec_context.name if stream.codec_context else None
            if stream.type == "audio" and name:
                # "Can hold" for real: a muxer may list a codec it then refuses in its header
                # (Opus in .mov fails only when the first packet is written, after all the work).
                if name in supported and _muxer_accepts(fmt, stream):
                    out_stream = self._out.add_stream_from_template(stream)
                    self._carry[stream.index] = (out_stream, None)
                else:
                    target = "aac" if "aac" in supported else self._out.default_audio_codec
                    warnings.warn(
                        f"{self._final.suffix} cannot hold {name} audio; re-encoding it to {target}", stacklevel=4
                    )
                    reencoder = _AudioReencoder(self._out, stream, target)
                    out_stream = reencoder.stream
                    self._carry[stream.index] = (out_stream, reencoder)
                self._copy_stream_tags(stream, out_stream)
            elif stream.type == "subtitle" and name and name in supported and _muxer_accepts(fmt, stream):
                out_stream = self._out.add_stream_from_template(stream)
                self._carry[stream.index] = (out_stream, None)
                self._copy_stream_tags(stream, out_stream)
            elif stream.type in ("audio", "subtitle", "data"):
                # Data tracks (timecode, GPS...) rarely survive a container change.
                warnings.warn(
                    f"dropping {stream.type} stream #{stream.index} ({name or 'unknown codec'}): "
                    f"not supported in {self._final.suffix}",
                    stacklevel=4,
                )
            elif stream.type == "video" and stream.index == self._src_video_index():
                vstream = getattr(self, "_vstream", None)
                if vstream is not None:
                    self._copy_stream_tags(stream, vstream, disposition=False)
        if self._carry:
            streams = [s for s in self._src.streams if s.index in self._carry]
            self._src_packets = iter(self._src.demux(streams))
        else:
            self._src.close()
            self._src = None

    def _src_video_index(self) -> int | None:
        """Index of the source's picture stream (the one the reader decodes: cover art skipped)."""
        for s in self._src.streams.video:
            if not s.disposition & av.stream.Disposition.attached_pic:
                return s.index
        return None

    def _copy_stream_tags(self, src: av.stream.Stream, out: av.stream.Stream, disposition: bool = True) -> None:
        """A carried stream keeps its language, title and flags (default, forced...); with
        ``strip_metadata`` only the language and flags, which players need to pick a track."""
        keys = _STREAM_TAGS if getattr(self, "_keep_metadata", True) else ("language",)
        for key in keys:
            value = src.metadata.get(key)
            if value and not (key == "language" and value == "und"):
                out.metadata[key] = value
        if disposition:
            out.disposition = src.disposition

    def _copy_container_tags(self) -> None:
        """Keep the file's title, creation time, location, etc. (not what describes the old file)."""
        tags = {k: v for k, v in self._src.metadata.items() if k.lower() not in _STALE_CONTAINER_TAGS and v}
        # The MOV demuxer gives "location" also as "location-eng"; one is enough.
        tags = {k: v for k, v in tags.items() if not (k.endswith("-eng") and k[:-4] in tags)}
        if not tags:
            return
        self._out.metadata.update(tags)
        if self._out.format.name in ("mp4", "mov") and any("." in k for k in tags):
            # Apple keys (com.apple.quicktime.location.ISO6709, ...) are written only as mdta tags.
            self._out.container_options["movflags"] = "use_metadata_tags"

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
            if limit is not None and float(ts * packet.time_base - self._shift) > limit:
                self._pending = packet
                return
            self._pending = None
            out_stream, reencoder = self._carry[packet.stream.index]
            if reencoder is not None:
                self._mux(self._shifted(reencoder.encode(packet)))
            else:
                packet.stream = out_stream
                self._mux(self._shifted([packet]))

    def _shifted(self, packets: list[av.Packet]) -> list[av.Packet]:
        """``packets`` with the input's start time (``_shift``) subtracted from their timestamps."""
        if self._shift:
            for packet in packets:
                if packet.time_base is None:
                    continue
                ticks = round(self._shift / Fraction(packet.time_base))
                if packet.pts is not None:
                    packet.pts -= ticks
                if packet.dts is not None:
                    packet.dts -= ticks
        return packets

    def _finish_carry(self) -> None:
        self._copy_until(None)
        for out_stream, reencoder in self._carry.values():
            if reencoder is not None:
                self._mux(self._shifted(reencoder.flush()))


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


class _CarryPlan(_SourceStreams):
    """The carry set-up of a video writer, on an in-memory container: see :func:`plan_carry`."""

    def __init__(self, out: av.container.OutputContainer, final: Path, info, keep_metadata: bool) -> None:
        self._out, self._src, self._final, self._info = out, None, final, info
        self._keep_metadata = keep_metadata

    def _mux(self, packets) -> None:  # pragma: no cover - nothing is copied
        pass


# What the carry set-up warns about (a run that planned early hides the repeat at the join).
CARRY_SETUP_WARNINGS = r"(cannot reopen .* to copy its audio|\S+ cannot hold .* audio; re-encoding|dropping \w+ stream #)"


def plan_carry(path: Path, fmt: str, source: Path, info, keep_metadata: bool = True) -> None:
    """Decide now, before any frame is enhanced, what happens to ``source``'s audio/subtitle
    streams in the video output ``path`` (muxer ``fmt``): the same checks and warnings as the
    writer, on an in-memory container. For runs that open the real output only at the end
    (``stpr enhance --resume`` joins its segments last)."""
    out = av.open(io.BytesIO(), "w", format=fmt)
    plan = _CarryPlan(out, path, info, keep_metadata)
    try:
        plan._setup_carry(source)
    finally:
        for closer in (plan._src, out):
            if closer is not None:
                try:
                    closer.close()
                except (av.FFmpegError, OSError, ValueError):
                    pass
