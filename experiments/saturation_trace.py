"""Where do the output's saturation and blacks come from? Trace the reconstruction on paired and real data.

    .venv/bin/python experiments/saturation_trace.py --lol data_cache/lol-v1/train --first 752 \
        --synthetic data_cache/videos/vtest.avi --clips ../shared/data/real-lowlight-clips [--model WEIGHTS]

The reconstruction makes ``out = base(x) * exp(g_base + g_global + g_local) + residual``. For each
source this prints, per stage, the mean HSV saturation (``stpr.metrics.noref.saturation``) and the
1st-percentile luma (0-255, ``black_levels``) after a 4x area downscale (so the noise of the
plainly brightened input does not set its darkest pixels) at one brightness (the ground truth's
where there is one, else the output's):
  gt        the ground truth (LOL, synthetic),
  plain     the input times one gain,
  gain      base(x) * exp(g_base + g_global + g_local): the network's gain alone, no residual,
  out       the network's output (+ residual, clamped).
LOL images run as static clips (as ``stpr eval --lol`` scores them); ``--synthetic`` darkens the
first 20 frames of a video at half size with ``stpr eval``'s camera (seed 7); real clips run whole.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.checkpoint import load_model
from stpr.data.datasets import read_rgb, read_video_frames
from stpr.evaluate import synthetic_eval_clip, to_tensor
from stpr.metrics.noref import black_levels, plain_brighten, saturation
from stpr.metrics.video import mean_brightness
from stpr.models.reconstruction_arch import STReconstruction

STAGES = ("gt", "plain", "gain", "out")


def traced(model, frames: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Run the model on a clip of (H, W, 3) uint8 RGB frames; return the "gain" and "out" stages."""
    rec: STReconstruction = model.reconstruction
    gains: list[torch.Tensor] = []
    orig = rec.forward

    def forward(xc, stats, propagated, pyramid, weights=None, aligned=None):
        feats = rec.body(torch.cat([propagated, pyramid], dim=1))
        base_img = rec.blend_frames(feats, weights, aligned) if rec.blend is not None and aligned else xc
        base = (rec.target_log - stats[:, 3]).clamp(max=np.log(rec.max_gain)).view(-1, 1, 1, 1)
        g_global = rec.global_gain(stats[:, :5])[:, :, None, None]
        g_local = torch.nn.functional.interpolate(rec.local_gain(feats), size=xc.shape[-2:], mode="bilinear",
                                                  align_corners=False)
        gains.append(base_img * torch.exp(base + g_global + g_local))
        return orig(xc, stats, propagated, pyramid, weights, aligned)

    rec.forward = forward
    try:
        clip = torch.cat([to_tensor(f) for f in frames])[None]
        if len(frames) == 1:
            clip = clip.repeat(1, model.cfg.frames, 1, 1, 1)
        with torch.no_grad():
            outs, _ = model.forward_clip(clip, list(range(len(frames))))
    finally:
        rec.forward = orig
    h, w = frames[0].shape[:2]
    gains = gains[len(gains) - len(outs):]

    def u8(t):
        return (t[0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return {"gain": [u8(g) for g in gains], "out": [u8(o) for o in outs]}


def measure(stages: dict[str, list[np.ndarray]]) -> dict[str, tuple[float, float]]:
    """(saturation, 1st-percentile luma of the 4x-downscaled frames at the reference brightness)."""
    ref = mean_brightness(stages["gt"] if "gt" in stages else stages["out"])
    res = {}
    for k, frames in stages.items():
        g = ref / max(mean_brightness(frames), 1e-6)
        small = [cv2.resize(f, (f.shape[1] // 4, f.shape[0] // 4), interpolation=cv2.INTER_AREA) for f in frames]
        res[k] = (saturation(frames), black_levels(small)[0] * g)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lol", help="LOL folder with low/ and high/")
    ap.add_argument("--first", type=int, default=1, help="first LOL pair number scored")
    ap.add_argument("--last", type=int, default=10 ** 9, help="last LOL pair number scored")
    ap.add_argument("--synthetic", nargs="*", default=[], help="clean videos to darken")
    ap.add_argument("--clips", help="folder of real clips (one folder of frames each)")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    model = load_model(args.model).eval()
    groups: dict[str, list[dict]] = {}
    if args.lol:
        root = Path(args.lol)
        for p in sorted((root / "low").glob("*.png"), key=lambda q: int(q.stem)):
            if args.first <= int(p.stem) <= args.last:
                x = read_rgb(p)
                st = traced(model, [x])
                st["gt"] = [read_rgb(root / "high" / p.name)]
                st["plain"] = plain_brighten([x], mean_brightness(st["gt"]))
                label = f"LOL pairs {args.first}–{args.last}" if args.last < 10 ** 9 else f"LOL pairs ≥ {args.first}"
                groups.setdefault(label, []).append(measure(st))
    for v in args.synthetic:
        clean = read_video_frames(Path(v), max_frames=20, scale=0.5)
        dark = list(synthetic_eval_clip(clean, seed=7))
        st = traced(model, dark)
        st["gt"] = list(clean)
        st["plain"] = plain_brighten(dark, mean_brightness(st["gt"]))
        groups[Path(v).name + " (synthetic dark)"] = [measure(st)]
    if args.clips:
        clips = []
        for d in sorted(Path(args.clips).iterdir()):
            frames = [read_rgb(f) for f in sorted(d.iterdir()) if f.suffix.lower() in (".png", ".jpg")]
            if frames:
                st = traced(model, frames)
                st["plain"] = plain_brighten(frames, mean_brightness(st["out"]))
                groups[d.name] = [measure(st)]
                clips.append(groups[d.name][0])
        groups[f"real clips (mean of {len(clips)})"] = clips
    print("| data | n | " + " | ".join(f"saturation: {s}" for s in STAGES) + " | "
          + " | ".join(f"blacks: {s}" for s in STAGES) + " |")
    print("|---|---:|" + "---:|" * (2 * len(STAGES)))
    for name, rs in groups.items():
        cells = []
        for i in (0, 1):
            for s in STAGES:
                vals = [r[s][i] for r in rs if s in r]
                cells.append(f"{np.mean(vals):.{3 - 2 * i}f}" if vals else "–")
        print(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
