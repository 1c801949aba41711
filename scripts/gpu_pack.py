"""Pack the training data for a GPU lease into parts that each fit one device call (64 MiB a call
with the repository): ``.gpu_pack/media`` (the training videos, the validation video and the
photographs) and ``.gpu_pack/lol1`` ... (LOL pairs re-encoded as lossless WebP, which decodes to
the same pixels at ~0.8 of the PNGs' size; the validation pairs, the highest-numbered, in
``lol1``, so any number of parts keeps the same validation split). Used by ``scripts/gpu_train.sh
pack``; see docs/training.md#training-on-a-gpu.

    python scripts/gpu_pack.py --lol data_cache/lol-v1/train --videos data_cache/videos/{bikes.mp4,...}
        --val-video data_cache/videos/tree.avi --stills data_cache/stills --out .gpu_pack --part-mb 56
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import lol_split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lol", type=Path, required=True, help="LOL folder with low/ and high/")
    ap.add_argument("--lol-val", type=int, default=30, help="validation pairs (the training config's lol_val)")
    ap.add_argument("--videos", nargs="*", default=[], help="training videos")
    ap.add_argument("--val-video", default=None, help="the validation video")
    ap.add_argument("--stills", default=None, help="folder of photographs")
    ap.add_argument("--out", type=Path, default=Path(".gpu_pack"))
    ap.add_argument("--part-mb", type=float, default=56.0, help="largest LOL part, MiB")
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    media = args.out / "media"
    (media / "videos").mkdir(parents=True)
    for v in [*args.videos, *([args.val_video] if args.val_video else [])]:
        shutil.copy2(v, media / "videos" / Path(v).name)
    if args.stills:
        shutil.copytree(args.stills, media / "stills")
    size = sum(f.stat().st_size for f in media.rglob("*") if f.is_file())
    print(f"{media}: {size / 2**20:.1f} MiB")

    train, val = lol_split(args.lol, args.lol_val)
    part, used = 1, 0.0
    for name in [*val, *train]:  # validation first: it lands in lol1
        pair = {}
        for side in ("low", "high"):
            src = next((args.lol / side).glob(name + ".*"))
            img = cv2.imread(str(src), cv2.IMREAD_COLOR)
            ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
            if not ok or not np.array_equal(cv2.imdecode(buf, cv2.IMREAD_COLOR), img):
                raise SystemExit(f"{src}: lossless WebP did not round-trip")
            pair[side] = buf
        mb = sum(b.nbytes for b in pair.values()) / 2**20
        if used + mb > args.part_mb:
            print(f"{args.out / f'lol{part}'}: {used:.1f} MiB")
            part, used = part + 1, 0.0
        for side, buf in pair.items():
            d = args.out / f"lol{part}" / side
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{name}.webp").write_bytes(buf.tobytes())
        used += mb
    print(f"{args.out / f'lol{part}'}: {used:.1f} MiB")
    print(f"{len(train) + len(val)} LOL pairs in {part} parts (validation: {len(val)} pairs in lol1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
