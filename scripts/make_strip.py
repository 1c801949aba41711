"""Before/after strip for the README: first frame of each clip, input on top, STPR below.

Each clip is enhanced as a whole sequence (so temporal propagation is used), with the given model.

    python scripts/make_strip.py ../shared/data/real-lowlight-clips docs/real_clips.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import IMAGE_EXTS, natural_key, read_rgb
from stpr.enhance import Enhancer


def fit_height(img: np.ndarray, h: int) -> np.ndarray:
    return cv2.resize(img, (max(1, round(img.shape[1] * h / img.shape[0])), h), interpolation=cv2.INTER_AREA)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", type=Path, help="folder of clip folders (each a sequence of frames)")
    ap.add_argument("output", type=Path)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--gap", type=int, default=4)
    args = ap.parse_args()
    enh = Enhancer.from_pretrained(args.model)
    cols = []
    for clip in sorted((p for p in args.clips.iterdir() if p.is_dir()), key=natural_key):
        files = sorted((p for p in clip.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=natural_key)
        frames = [read_rgb(p) for p in files]
        out = next(iter(enh.enhance_frames(frames)))
        before, after = fit_height(frames[0], args.height), fit_height(out, args.height)
        gap = np.full((args.gap, before.shape[1], 3), 255, np.uint8)
        cols.append(np.concatenate([before, gap, after], axis=0))
        print(f"{clip.name}: mean brightness {frames[0].mean():.1f} -> {out.mean():.1f}")
    sep = np.full((cols[0].shape[0], args.gap, 3), 255, np.uint8)
    strip = np.concatenate([c for col in cols for c in (col, sep)][:-1], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output} ({strip.shape[1]}x{strip.shape[0]})")


if __name__ == "__main__":
    main()
