"""Where a model loses on `city` (real-footage section 34): affine-fitted PSNR (T = 3) of each
model on the validation video's first 30 frames darkened by the evaluation camera as is, without
its noise, without noise at a 3x brighter exposure (0.15), and as is with the reconstruction's
local gain map zeroed at inference (``g_local = 0``). One line per model and case.

    .venv/bin/python experiments/city_local_gain_probe.py default runs/q16_white/last.safetensors

``--zeroed OUT`` also writes the last model with its local gain map zeroed (how q16-nl was made).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model, save_model
from stpr.data.datasets import read_video_frames
from stpr.data.synthesis import darken_clip, scale_noise
from stpr.evaluate import EVAL_DARK_PARAMS, eval_video


def zero_local_gain(model) -> None:
    lg = model.reconstruction.local_gain
    if lg is not None:
        with torch.no_grad():
            lg.weight.zero_()
            lg.bias.zero_()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="weights files, or 'default' for the shipped model")
    ap.add_argument("--video", default="data_cache/videos/city.mpg")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--zeroed", type=Path, help="write the last model with its local gain zeroed here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clean = read_video_frames(Path(args.video), 30)
    cameras = {"evaluation camera": EVAL_DARK_PARAMS,
               "no noise": scale_noise(EVAL_DARK_PARAMS, 0.0),
               "no noise, exposure 0.15": scale_noise(dataclasses.replace(EVAL_DARK_PARAMS, exposure=0.15), 0.0)}
    # the evaluation camera's seed, as synthetic_eval_clip uses it
    darks = {k: darken_clip(clean, p, np.random.default_rng(1234)) for k, p in cameras.items()}
    for w in args.models:
        model = load_model(None if w == "default" else w, frames=3)
        for name, dark in darks.items():
            r = eval_video(model, clean, dark)
            print(f"{w} | {name} | affine-fitted {r['psnr_affine']:.2f}", flush=True)
        zero_local_gain(model)  # last: the cases above score the model as trained
        r = eval_video(model, clean, darks["evaluation camera"])
        print(f"{w} | evaluation camera, local gain zeroed | affine-fitted {r['psnr_affine']:.2f}", flush=True)
    if args.zeroed:
        model = load_model(None if args.models[-1] == "default" else args.models[-1])
        zero_local_gain(model)
        save_model(model, args.zeroed, extra={"local_gain_zeroed_from": args.models[-1]})
        print(f"wrote {args.zeroed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
