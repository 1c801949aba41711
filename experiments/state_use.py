"""How much a recurrent model uses the state it hands from frame to frame: PSNR on the held-out
synthetic-dark videos with the state carried (every frame in order, as ``stpr enhance`` runs it)
and dropped (every window decoded on its own), and the mean output change between the two.

    .venv/bin/python scripts/state_use.py runs/exp/frec_s51/last.safetensors runs/exp/frec_s52/last.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import synthetic_eval_clip, to_tensor
from stpr.metrics.image import psnr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="weights files of recurrent models")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clips = {}
    for name in ("carphone_pristine.mp4", "tree.avi"):
        clean = read_video_frames(Path(args.videos) / name, 30)
        clips[name] = (clean, torch.cat([to_tensor(f) for f in synthetic_eval_clip(clean)])[None])
    for w in args.models:
        model = load_model(w).eval()
        if not model.is_recurrent:
            print(f"{w}: not a recurrent model")
            continue
        line = f"{w}:"
        if model.memory is not None:
            line += f" feature merge mean |w| {model.memory.weight.abs().mean().item():.4f}"
        print(line, flush=True)
        for name, (clean, clip) in clips.items():
            n = clip.shape[1]
            with torch.no_grad():
                carried, _ = model.forward_clip(clip, list(range(n)))
                dropped = [model.forward_clip(clip, [c])[0][0] for c in range(n)]
            score = [np.mean([psnr(o, to_tensor(c)).item() for o, c in zip(outs, clean)]) for outs in (carried, dropped)]
            change = np.mean([(a - b).abs().mean().item() * 255 for a, b in zip(carried, dropped)])
            print(f"  {name}: state carried {score[0]:.2f} dB, dropped {score[1]:.2f} dB, "
                  f"mean |change| {change:.2f} levels (0-255)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
