"""How much could temporal fusion add at all? An upper bound from noise-reduced single frames.

Perfect fusion of k aligned frames leaves the sensor noise std divided by sqrt(k) and changes
nothing else. So a single-frame (T = 1) model trained and tested on the evaluation camera with its
noise std scaled by 1/sqrt(3) shows what ideal 3-frame fusion could score, and one on a noise-free
camera what ideal fusion of any number of frames could score. Against the same T = 1 model on the
real noise level, that is the most any fusion can add over the per-frame ablation here.

Every arm starts from the shipped weights and is fine-tuned for the same steps with the same seed
on the synthetic video only (``configs/ablation.json`` minus LOL): T = 3 and T = 1 on the
synthesis as is, T = 1 with noise x 1/sqrt(3), T = 1 noise-free. Each is then scored (PSNR,
``eval_video``) on carphone and tree, darkened by the evaluation camera with the arm's own noise
scale. Runs land in ``runs/fusion_bound/<arm>``; finished arms are skipped.

    .venv/bin/python scripts/fusion_bound.py                      # train what is missing, then the table
    .venv/bin/python scripts/fusion_bound.py --only t3,t1 &       # two arms side by side on 2 cores
    .venv/bin/python scripts/fusion_bound.py --only t1_avg3,t1_clean; wait
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import eval_video, synthetic_eval_clip
from stpr.train import last_logged_step

# arm -> (frames, noise scale, what it stands for)
ARMS = {
    "t3": (3, 1.0, "STPR, T = 3, the evaluation camera's noise"),
    "t1": (1, 1.0, "per-frame ablation, T = 1, the evaluation camera's noise"),
    "t1_avg3": (1, 1 / math.sqrt(3), "T = 1, noise / sqrt(3): ideal 3-frame fusion"),
    "t1_avg5": (1, 1 / math.sqrt(5), "T = 1, noise / sqrt(5): ideal 5-frame fusion"),
    "t1_avg9": (1, 1 / 3, "T = 1, noise / 3: ideal 9-frame fusion"),
    "t1_clean": (1, 0.0, "T = 1, noise-free: ideal fusion of any number of frames"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ablation.json")
    ap.add_argument("--runs", default="runs/fusion_bound")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--only", default="", help="comma-separated arms to train and score")
    ap.add_argument("--threads", type=int, default=2, help="threads for the scoring")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(ARMS)
    for n in names:
        if n not in ARMS:
            ap.error(f"unknown arm {n!r}; choose from {', '.join(ARMS)}")
    steps = json.loads(Path(args.config).read_text())["steps"]
    for n in names:
        frames, scale, _ = ARMS[n]
        run_dir = Path(args.runs) / n
        if last_logged_step(run_dir) < steps:
            cmd = [sys.executable, "-m", "stpr.cli", "train", "--config", args.config, "--quiet",
                   f"--set=out_dir={run_dir}", f"--set=model.frames={frames}", "--set=lol_root=",
                   "--set=weights=[0, 1, 0]", f"--set=video_noise_scale={scale}", "--set=val_video="]
            if (run_dir / "last_state.pt").is_file():
                cmd.append("--resume")
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    torch.set_num_threads(args.threads)
    clean = {v: read_video_frames(Path(args.videos) / f, 30)
             for v, f in (("carphone", "carphone_pristine.mp4"), ("tree", "tree.avi"))}
    print("| arm | what it stands for | noise scale | carphone PSNR | tree PSNR |")
    print("|---|---|---:|---:|---:|")
    for n in names:
        frames, scale, what = ARMS[n]
        model = load_model(str(Path(args.runs) / n / "last.safetensors"))
        cells = [f"{eval_video(model, c, synthetic_eval_clip(c, noise_scale=scale))['psnr']:.2f}"
                 for c in clean.values()]
        print(f"| {n} | {what} | {scale:.3f} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
