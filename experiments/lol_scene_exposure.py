"""Can a LOL pair's normal-light brightness be told from the other shots of its scene?

For each sibling pair (``lol_sibling_split``: one shot held out of each of 30 scenes shot several
times, the other shots training) the ground truth's mean brightness is predicted three ways and
the rms of log(prediction / truth) printed: one constant (the training pairs' geometric mean),
the geometric mean of the other shots' ground truths (a model that recognised the scene), and the
other shots' ground-truth-to-dark ratio applied to this dark image. Data only; no model runs.

    .venv/bin/python experiments/lol_scene_exposure.py --train data_cache/lol-v1/train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stpr.data.datasets import lol_scene_groups, lol_sibling_split, lol_split, read_rgb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="data_cache/lol-v1/train")
    args = ap.parse_args()
    root = Path(args.train)
    rest, _ = lol_split(root, 30)
    train, sib = lol_sibling_split(root, rest, 30)
    group = {n: g for g in lol_scene_groups(root, rest) for n in g}

    def mean(n: str, kind: str) -> float:
        return float(read_rgb(next((root / kind).glob(n + ".*"))).mean())

    gt = {n: mean(n, "high") for n in rest}
    low = {n: mean(n, "low") for n in rest}
    const = np.exp(np.mean([np.log(gt[n]) for n in train]))
    errs = {"constant": [], "scene's other shots": [], "their ratio x this dark image": []}
    for n in sib:
        others = [m for m in group[n] if m != n]
        scene = np.exp(np.mean([np.log(gt[m]) for m in others]))
        ratio = np.exp(np.mean([np.log(gt[m] / low[m]) for m in others]))
        for key, pred in zip(errs, (const, scene, ratio * low[n])):
            errs[key].append(np.log(pred / gt[n]))
    for key, e in errs.items():
        e = np.array(e)
        print(f"{key}: rms log error {np.sqrt((e ** 2).mean()):.3f}, bias {e.mean():+.3f} ({len(e)} sibling pairs)")


if __name__ == "__main__":
    main()
