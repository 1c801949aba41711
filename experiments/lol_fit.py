"""Does a model overfit LOL? Mean PSNR / SSIM on training pairs against the held-out pairs.

For each weights file: ``stpr eval``'s LOL protocol (each low image as a static clip) on every
9th training pair (30 of the 270 by default) and on the held-out split, and the gap between them.
A run that widens the gap while its held-out figure falls has learned the training pairs rather
than the task.

    .venv/bin/python scripts/lol_fit.py WEIGHTS [WEIGHTS ...] [--lol ../shared/data/lol-train]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import lol_split
from stpr.evaluate import eval_lol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--lol", type=Path, default=Path("../shared/data/lol-train"))
    ap.add_argument("--every", type=int, default=9, help="take every N-th training pair (default 9)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, val = lol_split(args.lol)
    train = train[::args.every]
    print(f"| weights | train PSNR / SSIM ({len(train)} pairs) | held-out PSNR / SSIM ({len(val)}) | gap (dB) |")
    print("|---|---:|---:|---:|")
    for w in args.weights:
        model = load_model(w)
        with torch.no_grad():
            t, v = eval_lol(model, args.lol, train), eval_lol(model, args.lol, val)
        print(f"| {w} | {t['psnr']:.2f} / {t['ssim']:.3f} | {v['psnr']:.2f} / {v['ssim']:.3f} "
              f"| {t['psnr'] - v['psnr']:.2f} |")


if __name__ == "__main__":
    main()
