"""Make the bundled sample clip ``samples/dark_tree.mp4``.

Source: ``tree.avi`` from Debian's opencv-doc package (fetched by scripts/fetch_videos.sh), a
normal-light clip the default model never trains on. It is darkened with stpr's own synthesis
(fixed camera and seed) and given a quiet synthetic audio tone so the demo shows that audio is kept.

    python scripts/make_sample.py data_cache/videos/tree.avi samples/dark_tree.mp4  # 60 frames, 4 s
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stpr.data.datasets import read_video_frames
from stpr.data.synthesis import DarkParams, darken_clip
from stpr.io import write_test_video

SAMPLE_CAMERA = DarkParams(exposure=0.04, full_well=900.0, read_noise=2e-3, wb_gains=(1.04, 1.0, 0.94),
                           flicker=0.03, crf=None)


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
    write_test_video(args.output, dark, fps=fps, audio_seconds=len(dark) / fps, crf=args.crf)
    print(f"wrote {args.output}: {len(dark)} frames {dark.shape[2]}x{dark.shape[1]}, mean {dark.mean():.1f}/255 "
          f"(clean {clean.mean():.1f})")


if __name__ == "__main__":
    main()
