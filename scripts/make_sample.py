"""Make the bundled sample clip ``samples/dark_tree.mp4``.

Source: ``tree.avi`` from Debian's opencv-doc package (fetched by scripts/fetch_videos.sh), a
normal-light clip the default model never trains on. It is darkened with stpr's own synthesis
(fixed camera and seed) and given a quiet synthetic audio tone so the demo shows that audio is kept.

    python scripts/make_sample.py data_cache/videos/tree.avi samples/dark_tree.mp4  # 60 frames, 4 s
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stpr.bench import write_clip
from stpr.data.datasets import read_video_frames
from stpr.data.synthesis import DarkParams, darken_clip

SAMPLE_CAMERA = DarkParams(exposure=0.04, full_well=900.0, read_noise=2e-3, wb_gains=(1.04, 1.0, 0.94),
                           flicker=0.03, crf=None)


def write_tone(path: Path, seconds: float, rate: int = 48000) -> None:
    """A quiet 440 Hz stereo AAC tone ``seconds`` long (the sample's audio track)."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="stereo", rate=rate,
                                      frame_size=stream.codec_context.frame_size or None)
        total = int(round(seconds * rate))
        for start in range(0, total, 1024):
            t = (np.arange(start, min(start + 1024, total)) / rate).astype(np.float32)
            tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--crf", type=int, default=26)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    clean = read_video_frames(args.source, max_frames=args.start + args.frames)[args.start:]
    dark = darken_clip(clean, SAMPLE_CAMERA, np.random.default_rng(args.seed))
    fps = 15
    with tempfile.TemporaryDirectory() as tmp:
        tone = Path(tmp) / "tone.m4a"
        write_tone(tone, len(dark) / fps)
        write_clip(args.output, dark, fps=fps, crf=args.crf, audio_from=tone)
    print(f"wrote {args.output}: {len(dark)} frames {dark.shape[2]}x{dark.shape[1]}, mean {dark.mean():.1f}/255 "
          f"(clean {clean.mean():.1f})")


if __name__ == "__main__":
    main()
