"""Would a long temporal window pay? A classical probe, before building a recurrent STPR.

The dark frames of the held-out synthetic videos (evaluation camera) are averaged recursively along
OpenCV DIS flow, forward and backward in time, in linear light: each pixel keeps a running count of
the frames averaged into it (capped), which is cut where the aligned history disagrees with the
current frame by more than its noise explains. The filtered clip (an effective window of up to
2 x cap - 1 frames) is then enhanced by the single-frame models of ``scripts/fusion_bound.py``
(trained on the evaluation camera's noise scaled to what ideal 1-, 5- and 9-frame averaging
leaves) and scored against the per-frame model on the unfiltered clip.

Needs the ``t1``, ``t1_avg5`` and ``t1_avg9`` runs of ``scripts/fusion_bound.py``.

    .venv/bin/python scripts/recursive_fusion_probe.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.data.synthesis import linear_to_srgb, srgb_to_linear
from stpr.evaluate import eval_video, synthetic_eval_clip
from stpr.models.flow_arch import dis_flow, remap_backward


def _grey_u8(lin: np.ndarray) -> np.ndarray:
    """Smoothed, contrast-stretched grey image for DIS (dark noisy frames are too flat otherwise)."""
    g = cv2.GaussianBlur(linear_to_srgb(lin).mean(-1).astype(np.float32), (0, 0), 1.5)
    return np.clip(g * (0.8 / max(np.percentile(g, 99), 1e-3)) * 255, 0, 255).astype(np.uint8)


def recursive_average(lin: list[np.ndarray], cap: float, tau: float, reverse: bool = False
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One direction of the recursive average. lin: (H, W, 3) linear-light frames.
    Returns per frame the running average and the per-pixel count of frames in it."""
    order = list(range(len(lin)))[::-1] if reverse else list(range(len(lin)))
    avg: list = [None] * len(lin)
    cnt: list = [None] * len(lin)
    prev = None
    for t in order:
        if prev is None:
            avg[t], cnt[t] = lin[t], np.ones(lin[t].shape[:2], np.float32)
        else:
            flow = dis_flow(_grey_u8(lin[t]), _grey_u8(lin[prev]))
            hist, n = remap_backward(avg[prev], flow), remap_backward(cnt[prev], flow)
            a, b = linear_to_srgb(hist) * 255, linear_to_srgb(lin[t]) * 255
            diff = cv2.blur(np.abs(a - b).mean(-1).astype(np.float32), (5, 5))
            noise = cv2.blur(np.abs(b - cv2.GaussianBlur(b, (0, 0), 1.0)).mean(-1).astype(np.float32), (9, 9)) + 0.5
            keep = np.minimum(n * np.exp(-(np.maximum(diff / noise - 1.0, 0.0) / tau) ** 2), cap)
            avg[t] = (keep[..., None] * hist + lin[t]) / (keep[..., None] + 1)
            cnt[t] = keep + 1
        prev = t
    return avg, cnt


def bidirectional(dark: np.ndarray, cap: float, tau: float) -> tuple[np.ndarray, float]:
    """Forward and backward averages merged (the current frame is in both: counted once).
    Returns the filtered (N, H, W, 3) uint8 clip and the mean effective window."""
    lin = [srgb_to_linear(d.astype(np.float32) / 255.0) for d in dark]
    fa, fc = recursive_average(lin, cap, tau)
    ba, bc = recursive_average(lin, cap, tau, reverse=True)
    out, eff = [], []
    for t, x in enumerate(lin):
        n1, n2 = fc[t][..., None], bc[t][..., None]
        out.append((fa[t] * n1 + ba[t] * n2 - x) / (n1 + n2 - 1))
        eff.append(float((n1 + n2 - 1).mean()))
    u8 = np.stack([np.clip(np.round(linear_to_srgb(o) * 255), 0, 255).astype(np.uint8) for o in out])
    return u8, float(np.mean(eff))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/fusion_bound")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {a: load_model(str(Path(args.runs) / a / "last.safetensors")) for a in ("t1", "t1_avg5", "t1_avg9")}
    print("| video | input | mean effective window | t1 model | t1_avg5 model | t1_avg9 model |")
    print("|---|---|---:|---:|---:|---:|")
    for name in ("carphone_pristine.mp4", "tree.avi"):
        clean = read_video_frames(Path(args.videos) / name, 30)
        dark = synthetic_eval_clip(clean)
        print(f"| {name} | dark clip (per frame) | 1 | {eval_video(models['t1'], clean, dark)['psnr']:.2f} | | |",
              flush=True)
        for cap, tau in ((4, 0.25), (8, 0.25), (8, 2.0)):
            filt, eff = bidirectional(dark, cap, tau)
            cells = [f"{eval_video(m, clean, filt)['psnr']:.2f}" for m in models.values()]
            print(f"| {name} | recursive, cap {cap}, tau {tau} | {eff:.1f} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
