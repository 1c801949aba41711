"""Test media: small generated videos for the tests (not part of the product).

``write_test_video`` encodes frames with the same encoder set-up and colour conversion as
stpr's video writer (:mod:`stpr.io.encoding`), with optional sine-tone audio, explicit
timestamps and a rotation tag.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from stpr.io.common import _default_colorspace
from stpr.io.encoding import _add_video_stream, _rgb_to_video_frame


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
    """Write uint8 RGB ``frames`` as a small video.

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
            pad_odd=False,  # odd sizes stay odd (4:4:4), as some cameras and tools write them
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
            packets += sine_packets(astream, audio_seconds)
        # Sort by time so the muxer sees the streams interleaved.
        packets.sort(key=lambda p: float((p.dts if p.dts is not None else 0) * p.time_base))
        for packet in packets:
            out.mux(packet)


def sine_packets(stream: av.audio.AudioStream, seconds: float) -> list[av.Packet]:
    """Packets of a quiet 440 Hz stereo tone ``seconds`` long, encoded for the audio ``stream``."""
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
