"""Where a long real video's flicker comes from (real-footage §48): the warping error of the
product's output split by motion (the metric's own flow, pixels per frame), by blur scale, and
against two references: the input times one gain (what ``stpr eval``'s flicker ratio divides by)
and the input through the output's own global tone curve (per channel, the output's mean value
for each input level over the clip), which takes the tone curve's contrast out of the comparison.

Runs on the cached network outputs of ``experiments/temporal_filter_probe.py --long DIR``
(``reports/temporal_probe_cache``), with the product's default temporal filter applied:

    .venv/bin/python experiments/flicker_breakdown.py --videos night_street_crossing,phone_night_crowd --brightness 115

``--model`` picks another model's cached outputs (the cache's prefix: the weights file's folder name
for a training run's ``last.safetensors``, e.g. ``q28_coarse_temporal_x2``; "default": the shipped model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.data.datasets import read_video_frames
from stpr.metrics.video import FramePairFlow, luma, sequence_flows, to_float
from stpr.models.warp import flow_warp
from stpr.temporal import TemporalFilter

MOTION_BANDS = ((0.0, 1.0), (1.0, 3.0), (3.0, float("inf")))
SIGMAS = (0.0, 1.4, 4.0)


def error_maps(frames: list[np.ndarray], flows: list[FramePairFlow]) -> np.ndarray:
    """Per-pixel squared warping error (mean over channels, 0 where occluded). (N-1, H, W)."""
    out = []
    for pair, a, b in zip(flows, frames[:-1], frames[1:]):
        ta = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
        tb = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None]
        out.append((((tb - flow_warp(ta, pair.flow)) ** 2).mean(1) * pair.mask[:, 0])[0].numpy())
    return np.stack(out)


def tone_matched(dark: list[np.ndarray], outs: list[np.ndarray]) -> list[np.ndarray]:
    """The input through the output's global per-channel curve (mean output value per input level)."""
    d, o = np.stack(dark), np.stack(outs).astype(np.float32) / 255.0
    levels = np.arange(256)
    luts = []
    for c in range(3):
        n = np.bincount(d[..., c].ravel(), minlength=256)
        s = np.bincount(d[..., c].ravel(), weights=o[..., c].ravel(), minlength=256)
        luts.append(np.interp(levels, levels[n > 0], s[n > 0] / n[n > 0]).astype(np.float32))
    return [np.stack([luts[c][f[..., c]] for c in range(3)], -1) for f in dark]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="night_street_crossing,phone_night_crowd,phone_night_skyline")
    ap.add_argument("--dir", type=Path, default=Path("data_cache/real-dark-val"))
    ap.add_argument("--cache", type=Path, default=Path("reports/temporal_probe_cache"))
    ap.add_argument("--brightness", type=float, default=None, help="the cached outputs held at this level")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--model", default="default", help="whose cached outputs (the cache files' prefix)")
    args = ap.parse_args()
    tag = "" if args.brightness is None else f"_b{args.brightness:g}"
    for name in args.videos.split(","):
        dark = list(read_video_frames(args.dir / f"{name}.mp4", args.frames))
        filt = TemporalFilter()
        outs = [filt(o) for o in np.load(args.cache / f"{args.model}_long_{name}_{len(dark)}{tag}.npy")]
        flows = sequence_flows(dark)
        motion = np.stack([np.hypot(*p.flow[0].numpy()) for p in flows])
        gain = np.mean([luma(f).mean() for f in outs]) / np.mean([luma(f).mean() for f in dark])
        refs = {"gain": [np.clip(to_float(f) * gain, 0, 1).astype(np.float32) for f in dark],
                "tone": tone_matched(dark, outs)}
        out = [to_float(f).astype(np.float32) for f in outs]
        bands = [(lo, hi, (motion >= lo) & (motion < hi)) for lo, hi in MOTION_BANDS]
        print(f"{name} (brightness {args.brightness or 'own'}): pixels by motion "
              + ", ".join(f"{lo:g}-{hi:g} px {m.mean():.2f}" for lo, hi, m in bands), flush=True)
        for sigma in SIGMAS:
            blur = (lambda fr: [cv2.GaussianBlur(f, (0, 0), sigma) for f in fr]) if sigma else (lambda fr: fr)
            e_out = error_maps(blur(out), flows)
            share = ", ".join(f"{e_out[m].sum() / e_out.sum():.2f}" for _, _, m in bands)
            for ref_name, ref in refs.items():
                e_ref = error_maps(blur(ref), flows)
                by_band = ", ".join(f"{e_out[m].mean() / e_ref[m].mean():.2f}" for _, _, m in bands)
                print(f"  sigma {sigma:g} vs {ref_name}: ratio {e_out.mean() / e_ref.mean():.2f}; by motion band "
                      f"{by_band}; output error's share by band {share}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
