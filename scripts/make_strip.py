"""Before/after strip for the README: first frame of each clip, input on top, STPR below.

Each clip is enhanced as a whole sequence (so temporal propagation is used), with the given model;
``--model`` again adds a row per model, ``--plain`` a row of plain brightening (the input times one
gain, to the first model's mean brightness: ``metrics.noref.plain_brighten``) under the input.

    python scripts/make_strip.py ../shared/data/real-lowlight-clips docs/real_clips.png
    python scripts/make_strip.py ../shared/data/real-lowlight-clips docs/research/real_clips_models.png \
        --plain --model quality --model fast
    python scripts/make_strip.py ../shared/data/real-lowlight-clips docs/research/real_clips_tone.jpg \
        --plain --tone-match 1

``--tone-match S`` adds a row of the first model with ``--tone-match S`` (each model row keeps the
default, off).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import IMAGE_EXTS, natural_key, read_rgb
from stpr.enhance import Enhancer
from stpr.metrics.noref import plain_brighten
from stpr.metrics.video import frame_brightness


def fit_height(img: np.ndarray, h: int) -> np.ndarray:
    return cv2.resize(img, (max(1, round(img.shape[1] * h / img.shape[0])), h), interpolation=cv2.INTER_AREA)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", type=Path, help="folder of clip folders (each a sequence of frames)")
    ap.add_argument("output", type=Path)
    ap.add_argument("--model", action="append", default=None,
                    help="a shipped model's name or weights file; again for another row (default: quality)")
    ap.add_argument("--plain", action="store_true", help="add a row of plain brightening under the input")
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--gap", type=int, default=4)
    ap.add_argument("--tone-match", type=float, default=None, metavar="S",
                    help="add a row of the first model with the tone curve at strength S")
    args = ap.parse_args()
    enhancers = [Enhancer.from_pretrained(m) for m in (args.model or [None])]
    if args.tone_match is not None:
        enhancers.append(Enhancer.from_pretrained((args.model or [None])[0], tone_match=args.tone_match))
    cols = []
    for clip in sorted((p for p in args.clips.iterdir() if p.is_dir()), key=natural_key):
        files = sorted((p for p in clip.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=natural_key)
        frames = [read_rgb(p) for p in files]
        outs = [list(enh.enhance_frames(frames)) for enh in enhancers]
        rows = [frames[0]]
        if args.plain:  # the whole clip scaled to the first model's mean brightness, as stpr eval does
            rows.append(plain_brighten(frames, float(frame_brightness(outs[0]).mean()))[0])
        rows += [o[0] for o in outs]
        rows = [fit_height(r, args.height) for r in rows]
        gap = np.full((args.gap, rows[0].shape[1], 3), 255, np.uint8)
        cols.append(np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=0))
        print(f"{clip.name}: mean brightness {frames[0].mean():.1f} -> "
              + ", ".join(f"{o[0].mean():.1f}" for o in outs))
    sep = np.full((cols[0].shape[0], args.gap, 3), 255, np.uint8)
    strip = np.concatenate([c for col in cols for c in (col, sep)][:-1], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # quality 85 keeps a .jpg strip for the docs under ~200 KB (PNG takes no such option)
    jpeg = args.output.suffix.lower() in (".jpg", ".jpeg")
    cv2.imwrite(str(args.output), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85] if jpeg else [])
    print(f"wrote {args.output} ({strip.shape[1]}x{strip.shape[0]})")


if __name__ == "__main__":
    main()
