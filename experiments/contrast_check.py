"""Is the model's contrast calibrated? A global contrast stretch, scored on training and held-out data.

Every output frame is stretched about its own mean, ``mean + k * (out - mean)``, for a few k, and
scored against its ground truth (PSNR, dB). Where the best k is 1 the model's contrast fits that
data. Rows:

- LOL pairs it trained on (every 9th) and the held-out LOL pairs (static clips, T = 3);
- its four training videos at half scale, 3 random cameras each (``sample_params``, seed 5), T = 3;
- the held-out evaluation clips (the fixed evaluation camera of ``stpr eval --synthetic``), with
  T = 3 and with the same weights per frame (T = 1).

Then, on the evaluation clips, the mean output level per ground-truth brightness band, T = 3
against T = 1: where a 3-frame output is flatter than the per-frame one.

A k picked on the held-out rows would be tuned on the test data; the training rows say which k the
training data supports.

    .venv/bin/python scripts/contrast_check.py                       # shipped model, ~4 min
    .venv/bin/python scripts/contrast_check.py --model runs/exp/RUN/last.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import lol_split, read_rgb, read_video_frames
from stpr.data.synthesis import darken_clip, sample_params
from stpr.evaluate import enhance_sequence, synthetic_eval_clip

KS = (0.96, 1.0, 1.02, 1.04, 1.06, 1.08, 1.10)
TRAIN_VIDEOS = ("bikes.mp4", "vtest.avi", "bigbuckbunny.mp4", "Megamind.avi")
EVAL_VIDEOS = (("carphone", "carphone_pristine.mp4"), ("tree", "tree.avi"))
BANDS = (0, 30, 60, 100, 150, 200, 256)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def stretch(out: np.ndarray, k: float) -> np.ndarray:
    m = out.mean()
    return np.clip(m + k * (out - m), 0.0, 1.0)


def outputs(model, frames) -> list[np.ndarray]:
    """(H, W, 3) float64 outputs in [0, 1] of a list of uint8 frames."""
    return [o[0].permute(1, 2, 0).numpy().astype(np.float64) for o in enhance_sequence(model, list(frames))]


def sweep(outs: list[np.ndarray], gts: list[np.ndarray]) -> list[float]:
    return [float(np.mean([psnr(stretch(o, k), g) for o, g in zip(outs, gts)])) for k in KS]


def row(label: str, scores: list[float]) -> str:
    best = KS[int(np.argmax(scores))]
    return f"| {label} | " + " | ".join(f"{s:.2f}" for s in scores) + f" | {best:g} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="weights file (default: the shipped model)")
    ap.add_argument("--lol", type=Path, default=Path("../shared/data/lol-train"))
    ap.add_argument("--videos", type=Path, default=Path("data_cache/videos"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m3, m1 = load_model(args.model, frames=3), load_model(args.model, frames=1)

    print("| data | " + " | ".join(f"k = {k:g}" for k in KS) + " | best k |")
    print("|---|" + "---:|" * (len(KS) + 1))
    train_names, val_names = lol_split(args.lol)
    for label, names in (("LOL, trained on (every 9th)", train_names[::9]), ("LOL, held out", val_names)):
        outs, gts = [], []
        for n in names:
            outs += outputs(m3, [read_rgb(next((args.lol / "low").glob(n + ".*")))])
            gts.append(read_rgb(next((args.lol / "high").glob(n + ".*"))) / 255.0)
        print(row(label, sweep(outs, gts)), flush=True)
    rng = np.random.default_rng(5)
    for name in TRAIN_VIDEOS:
        frames = read_video_frames(args.videos / name, 120, scale=0.5)
        outs, gts = [], []
        for _ in range(3):
            s = int(rng.integers(0, len(frames) - 7))
            clean = frames[s:s + 7]
            dark = darken_clip(clean, sample_params(rng), rng)
            outs += outputs(m3, dark)[1:-1]  # edge frames see reflected windows
            gts += [c / 255.0 for c in clean[1:-1]]
        print(row(f"{name} (trained on, random cameras)", sweep(outs, gts)), flush=True)
    levels = {}
    for label, name in EVAL_VIDEOS:
        clean = read_video_frames(args.videos / name, 30)
        dark = synthetic_eval_clip(clean)
        gts = [c / 255.0 for c in clean]
        o3, o1 = outputs(m3, dark), outputs(m1, dark)
        print(row(f"{label} (held out), T = 3", sweep(o3, gts)), flush=True)
        print(row(f"{label} (held out), T = 1", sweep(o1, gts)), flush=True)
        levels[label] = (np.stack(gts) * 255, np.stack(o3) * 255, np.stack(o1) * 255)

    print("\n| clip | ground-truth band | share of pixels | ground truth | T = 3 | T = 1 |")
    print("|---|---|---:|---:|---:|---:|")
    for label, (g, o3, o1) in levels.items():
        for lo, hi in zip(BANDS[:-1], BANDS[1:]):
            m = (g >= lo) & (g < hi)
            if m.mean() < 0.01:
                continue
            print(f"| {label} | {lo}–{hi - 1} | {m.mean():.1%} | {g[m].mean():.1f} | {o3[m].mean():.1f} "
                  f"| {o1[m].mean():.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
