"""Quality of the fast inference paths against the reference path, on held-out data.

Reference: ``STPR.forward_clip`` on whole frames in float32 (what ``stpr eval`` scores, before
8-bit quantisation). Fast paths, each through the streaming ``Enhancer`` (8-bit output):
whole frames (PyTorch), forced tiling with float16 state storage, onnxruntime whole frames, and
onnxruntime tiled. Prints mean PSNR against the ground truth per path and its difference from the
reference, on the held-out LOL split and the held-out synthetic-dark video.

    .venv/bin/python scripts/check_fast_paths.py --lol ../shared/data/lol-train \
        --synthetic data_cache/videos/tree.avi [--model fast]

The LOL split scored is the one ``lol_split`` holds out of training: use the folder the model was
trained from (``data_cache/lol-v1/train`` for the fast model).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import load_model, resolve_weights
from stpr.data.datasets import lol_split, read_rgb, read_video_frames
from stpr.enhance import Enhancer
from stpr.evaluate import enhance_sequence, synthetic_eval_clip, to_tensor
from stpr.metrics.image import psnr


def _psnr8(out: np.ndarray, gt: np.ndarray) -> float:
    return psnr(to_tensor(out), to_tensor(gt)).item()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lol", default="../shared/data/lol-train")
    ap.add_argument("--synthetic", default="data_cache/videos/tree.avi")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--tile", type=int, default=256, help="tile size for the tiled paths")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None, help="a shipped model's name or a weights file (default: quality)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from stpr.onnx_engine import OnnxSTPR, export_onnx

    model = load_model(args.model)
    tmp = tempfile.TemporaryDirectory(prefix="stpr_onnx_")
    export_onnx(model, tmp.name, weights=resolve_weights(args.model))
    onnx_model = OnnxSTPR(tmp.name, threads=args.threads)
    paths = {
        "torch fp32, whole frame": Enhancer(model, tile=0, precision="fp32", device="cpu"),
        f"torch fp32, tiles {args.tile} + fp16 states": Enhancer(model, tile=args.tile, precision="fp32", device="cpu"),
        "torch bf16, whole frame": Enhancer(model, tile=0, precision="bf16", device="cpu"),
        f"torch bf16, tiles {args.tile} + fp16 states": Enhancer(model, tile=args.tile, precision="bf16", device="cpu"),
        "torch bf16, 4 windows per call": Enhancer(model, tile=0, precision="bf16", device="cpu", batch=4),
        "torch bf16, 2 frames at once (workers)": Enhancer(model, tile=0, precision="bf16", device="cpu", workers=2),
        "onnxruntime, whole frame": Enhancer(onnx_model, tile=0),
        f"onnxruntime, tiles {args.tile} + fp16 states": Enhancer(onnx_model, tile=args.tile),
    }

    sequences = []  # (name, dark frames, ground-truth frames)
    if Path(args.lol).is_dir():
        root = Path(args.lol)
        for n in lol_split(root)[1]:
            low = read_rgb(next((root / "low").glob(n + ".*")))
            high = read_rgb(next((root / "high").glob(n + ".*")))
            sequences.append(("lol", [low], [high]))
    if Path(args.synthetic).is_file():
        clean = read_video_frames(args.synthetic, max_frames=args.frames)
        sequences.append(("synthetic", list(synthetic_eval_clip(clean)), list(clean)))

    scores: dict[tuple[str, str], list[float]] = {}
    for kind, dark, gt in sequences:
        ref = enhance_sequence(model, dark)
        scores.setdefault((kind, "reference (float32 forward_clip)"), []).extend(
            psnr(r, to_tensor(g)).item() for r, g in zip(ref, gt))
        for name, enh in paths.items():
            outs = list(enh.enhance_frames(dark))
            scores.setdefault((kind, name), []).extend(_psnr8(o, g) for o, g in zip(outs, gt))

    print("| data | path | PSNR (dB) | vs reference (dB) |")
    print("|---|---|---:|---:|")
    for kind in dict.fromkeys(k for k, _ in scores):
        ref = float(np.mean(scores[(kind, "reference (float32 forward_clip)")]))
        for (k, name), vals in scores.items():
            if k == kind:
                m = float(np.mean(vals))
                print(f"| {kind} | {name} | {m:.3f} | {m - ref:+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
