"""Same weights, different windows: PSNR of a model on the synthetic-dark videos (carphone held
out; tree and city the validation videos) with T = 3 and T = 1 (its per-frame ablation), also
after a per-channel gain and offset fit each output frame to its original (the tone taken out:
``eval_video``'s ``psnr_affine``), and on carphone with exposure jumps also with the fusion's
brightness term switched off at inference.

Figures come from ``stpr.evaluate.eval_video`` (float output, before the 8-bit rounding that
``stpr eval`` applies) on frames decoded with PyAV's default YUV->RGB conversion (``stpr eval``
uses the accurate one), so on H.264 clips such as carphone they sit 0.07-0.15 dB below
``stpr eval``'s figures; tree.avi decodes identically both ways.

    .venv/bin/python scripts/window_compare.py default       # the shipped model
    .venv/bin/python scripts/window_compare.py default --cases tree,city   # the validation videos
    .venv/bin/python scripts/window_compare.py runs/exp/t5/last.safetensors --extra-windows 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import eval_video, synthetic_eval_clip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="weights files, or 'default' for the shipped model")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra-windows", default="",
                    help="comma-separated further window sizes to score, e.g. 5 (each model run with T = that)")
    ap.add_argument("--cases", default="",
                    help="comma-separated subset of: carphone, tree, city, 'carphone 0.5x/2x jumps'")
    args = ap.parse_args()
    extra = [int(t) for t in args.extra_windows.split(",") if t]
    torch.set_num_threads(args.threads)
    cases = [("carphone", "carphone_pristine.mp4", False), ("tree", "tree.avi", False),
             ("city", "city.mpg", False), ("carphone 0.5x/2x jumps", "carphone_pristine.mp4", True)]
    if args.cases:
        keep = args.cases.split(",")
        unknown = set(keep) - {c[0] for c in cases}
        if unknown:
            ap.error(f"unknown --cases {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c[0] in keep]
    clips = {}
    for name, video, jumps in cases:
        clean = read_video_frames(Path(args.videos) / video, 30)
        clips[name] = (clean, synthetic_eval_clip(clean, jumps=jumps), jumps)
    for w in args.models:
        path = None if w == "default" else w
        for name, (clean, dark, jumps) in clips.items():
            t3 = eval_video(load_model(path, frames=3), clean, dark)
            t1 = eval_video(load_model(path, frames=1), clean, dark)
            row = [f"T=3 {t3['psnr']:.2f}", f"T=1 {t1['psnr']:.2f}",
                   f"affine-fitted T=3 {t3['psnr_affine']:.2f}, T=1 {t1['psnr_affine']:.2f}"]
            row += [f"T={t} {eval_video(load_model(path, frames=t), clean, dark)['psnr']:.2f}" for t in extra]
            if jumps:
                off = load_model(path, brightness_weight=False)
                row.append(f"T={off.cfg.frames} without brightness term {eval_video(off, clean, dark)['psnr']:.2f}")
            print(f"{w} | {name}: " + ", ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
