"""Chroma smoothed along luma after the network: does it take out the colour blotches of
compressed dark footage without costing the validation scores?

The filter (``smooth_chroma``) replaces each output frame's chroma (Cr, Cb) by a fast guided filter
of it (He & Sun 2015) with the frame's own luma as the guide, at 1/4 size: where luma is flat the
chroma is averaged over ~36 px, across a luma edge it follows the edge, so colour does not bleed
over object boundaries. Luma is not touched. One setting, fixed before any figure (``--eps``
default: an 8-level luma step counts as an edge); ``--strength`` blends it in.

Validation data only (real-footage.md §30's sets): the LOL block in the ``lol`` look (GT-mean PSNR),
``tree`` and ``city`` under the evaluation camera (affine-fitted PSNR, as window_compare.py), and
the six shared real clips (no truth: blacks and saturation against plain brightening, and the
chroma left in flat regions, ``flat_chroma``). The model runs as shipped (temporal filter on); the
filter runs on its uint8 output frames.

    .venv/bin/python experiments/chroma_probe.py --lol data_cache/lol-v1/train \\
        --videos data_cache/videos --clips ../shared/data/real-lowlight-clips --strip /tmp/chroma_strip.png
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from stpr.enhance import Enhancer
from stpr.evaluate import to_tensor
from stpr.losses import fit_affine
from stpr.metrics.image import psnr
from stpr.metrics.video import frame_brightness, psnr_gt_mean
from stpr.report import _against_plain, clip_sequences, lol_sequences, synthetic_sequences

EPS = (8 / 255) ** 2


def smooth_chroma(frame: np.ndarray, strength: float = 1.0, scale: int = 4, radius: int = 4,
                  eps: float = EPS) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same with its chroma guided-filtered by its luma."""
    h, w = frame.shape[:2]
    ycc = cv2.cvtColor(frame.astype(np.float32) * (1 / 255), cv2.COLOR_RGB2YCrCb)
    small = cv2.resize(ycc, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    g, p = small[..., 0], small[..., 1:]
    mg = box(g)
    var = box(g * g) - mg * mg
    mp = box(p)
    cov = box(p * g[..., None]) - mp * mg[..., None]
    a = cov / (var + eps)[..., None]
    b = mp - a * mg[..., None]
    ab = cv2.resize(np.concatenate([box(a), box(b)], axis=2), (w, h), interpolation=cv2.INTER_LINEAR)
    q = ab[..., :2] * ycc[..., :1] + ab[..., 2:]
    ycc[..., 1:] += strength * (q - ycc[..., 1:])
    rgb = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def flat_chroma(frames: list[np.ndarray]) -> float:
    """Std of the chroma (Cr, Cb; levels) after a σ = 2 px blur, over pixels whose luma is flat
    (7×7 std under 2 levels): coarse colour variation where the scene shows no structure."""
    vals = []
    for f in frames:
        ycc = cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb).astype(np.float32)
        y = ycc[..., 0]
        m = cv2.blur(y, (7, 7))
        sd = np.sqrt(np.maximum(cv2.blur(y * y, (7, 7)) - m * m, 0))
        flat = sd < 2.0
        if flat.sum() < 100:
            continue
        c = cv2.GaussianBlur(ycc[..., 1:], (0, 0), 2.0)
        vals.append(float(np.mean([c[..., i][flat].std() for i in range(2)])))
    return float(np.mean(vals)) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="quality")
    ap.add_argument("--lol", default="data_cache/lol-v1/train")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--clips", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=EPS)
    ap.add_argument("--strip", default="", help="write input / plain / model / model + filter rows of the clips here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    filt = lambda f: smooth_chroma(f, args.strength, eps=args.eps)  # noqa: E731

    enh = Enhancer.from_pretrained(args.model, look="lol")
    a, b = [], []
    for seq in lol_sequences(args.lol):
        out = list(enh.enhance_frames(iter(seq.frames)))[0]
        a.append(psnr_gt_mean(out, seq.gt[0]))
        b.append(psnr_gt_mean(filt(out), seq.gt[0]))
    print(f"LOL block, lol look, GT-mean PSNR: model {np.mean(a):.3f}, + chroma {np.mean(b):.3f}", flush=True)

    enh = Enhancer.from_pretrained(args.model)
    for name in ("tree.avi", "city.mpg"):
        seq = synthetic_sequences(f"{args.videos}/{name}", 30)[0]
        outs = list(enh.enhance_frames(iter(seq.frames)))
        row = []
        for variant in (outs, [filt(o) for o in outs]):
            row.append(np.mean([psnr(fit_affine(to_tensor(o), to_tensor(g)).clamp(0, 1), to_tensor(g)).item()
                                for o, g in zip(variant, seq.gt)]))
        print(f"{name}, affine-fitted PSNR: model {row[0]:.3f}, + chroma {row[1]:.3f}", flush=True)

    keys = ["black_vs_plain", "saturation_vs_plain", "flat_chroma"]
    rows = {"model": [], "+ chroma": []}
    strip = []
    for seq in clip_sequences(args.clips):
        outs = list(enh.enhance_frames(iter(seq.frames)))
        smoothed = [filt(o) for o in outs]
        for name, v in (("model", outs), ("+ chroma", smoothed)):
            m = _against_plain(v, seq.frames)
            m["flat_chroma"] = flat_chroma(v)
            rows[name].append(m)
            print(seq.name, name, {k: round(float(m[k]), 3) for k in keys}, flush=True)
        if args.strip:
            from stpr.metrics.noref import plain_brighten

            plain = plain_brighten(seq.frames[:1], float(frame_brightness(outs[:1]).mean()))[0]
            strip.append(np.concatenate([seq.frames[0], plain, outs[0], smoothed[0]], axis=0))
    print("| variant | " + " | ".join(keys) + " |")
    for name, ms in rows.items():
        print(f"| {name} | " + " | ".join(f"{np.mean([m[k] for m in ms]):.3f}" for k in keys) + " |")
    if strip:
        hmin = min(s.shape[0] for s in strip)
        tiles = [cv2.resize(s, (round(s.shape[1] * hmin / s.shape[0]), hmin)) for s in strip]
        cv2.imwrite(args.strip, cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
