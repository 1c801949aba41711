"""LOL-v1's scenes: how many times each was shot, and how its test pairs relate to the training pairs.

Pairs whose ground truths, shrunk to 40x27 and normalised, correlate above 0.9 are counted as one
scene (``stpr.data.datasets.lol_scene_groups``). For every pair of ``--test`` the best correlation
with any training pair is printed: above 0.9, its scene was shot for the training split too.
Data only; no model runs.

    .venv/bin/python experiments/lol_scenes.py --train data_cache/lol-v1/train --test data_cache/lol-v1/eval15
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import lol_scene_groups, lol_sibling_split, lol_split, natural_key, read_rgb


def thumb(path: Path) -> np.ndarray:
    v = cv2.resize(read_rgb(path), (40, 27), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    return (v - v.mean()) / max(v.std(), 1e-6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="data_cache/lol-v1/train")
    ap.add_argument("--test", default=None, help="a test folder (low/, high/) to relate to the training pairs")
    args = ap.parse_args()
    root = Path(args.train)
    names = sorted((p.stem for p in (root / "high").iterdir()), key=lambda s: natural_key(Path(s)))
    groups = lol_scene_groups(root, names)
    sizes = np.array([len(g) for g in groups])
    print(f"{len(names)} training pairs in {len(groups)} scenes: {int((sizes == 1).sum())} shot once, "
          f"{int((sizes >= 2).sum())} shot 2-{sizes.max()} times ({int(sizes[sizes >= 2].sum())} pairs)")
    rest, block = lol_split(root, 30)
    block_scenes = [g for g in groups if set(g) & set(block)]
    print(f"lol_split's block {block[0]}-{block[-1]}: {len(block)} pairs of {len(block_scenes)} scenes, "
          f"{sum(1 for g in block_scenes if set(g) - set(block))} of them also shot among the training pairs")
    _, sib = lol_sibling_split(root, rest, 30)
    print(f"lol_sibling_split (30 of the rest): {' '.join(sib)}")
    if args.test:
        test = Path(args.test)
        t = np.stack([thumb(next((root / "high").glob(n + ".*"))) for n in names])
        rows = []
        for p in sorted((test / "high").iterdir(), key=natural_key):
            c = t @ thumb(p) / t.shape[1]
            rows.append((p.stem, float(c.max()), names[int(c.argmax())]))
        same = sum(1 for _, c, _ in rows if c > 0.9)
        print(f"{test}: {same} of {len(rows)} pairs are shots of a training scene (correlation > 0.9)")
        for n, c, best in rows:
            print(f"  {n}: best training match {best} ({c:.3f})")


if __name__ == "__main__":
    main()
