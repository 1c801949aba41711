"""What the recursive temporal filter (``stpr.temporal.TemporalFilter``) does to a model's video:
PSNR against the truth on the validation videos darkened by the evaluation camera (tree, city;
city also re-encoded with H.264 so that the dark frames carry macroblocks), and flicker, low-pass
flicker, blacks and saturation on the shared real clips, for a grid of strengths and tolerances;
with ``--long DIR`` also on long real dark videos (the validation set of ``scripts/fetch_dark_videos.sh
--val``: flicker, low-pass flicker, exposure pumping, blacks, saturation, detail kept), optionally
held at one output brightness (``--long-brightness``: issue 25 scores flicker at 90-140).

The model runs once per case through ``Enhancer.enhance_frames`` (the product's path, steady
exposure included, the filter off) and its outputs are cached; the filter runs on them afterwards.

    .venv/bin/python experiments/temporal_filter_probe.py --strengths 0,0.6,0.8,0.9 --tolerances 0.04,0.08,0.12 --details 0,0.3,0.5
    .venv/bin/python experiments/temporal_filter_probe.py --long data_cache/real-dark-val --long-brightness 115
    .venv/bin/python experiments/temporal_filter_probe.py --strengths 0.8 --details 0.3 --flows fast/320,medium/320
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.data.datasets import read_video_frames
from stpr.data.synthesis import darken_clip
from stpr.enhance import Enhancer
from stpr.evaluate import EVAL_DARK_PARAMS, synthetic_eval_clip, to_tensor
from stpr.losses import fit_affine
from stpr.metrics.image import psnr
from stpr.metrics.noref import black_levels, exposure_pumping, plain_brighten, saturation
from stpr.metrics.video import flicker_ratio, frame_brightness, lowpass_sigma, psnr_rgb, sequence_flows
from stpr.report import clip_sequences
from stpr.temporal import TemporalFilter

# Settings scored in full under --quick-long: the filter off, and the default before §47.
FULL_METRICS = ((0.0, 0.0, 0.0), (0.8, 0.08, 0.0))


def cases(videos: Path, clips: Path | None, frames: int, long: Path | None = None,
          long_frames: int = 90) -> dict[str, tuple[list, list | None]]:
    out = {}
    for name, file, crf in (("tree", "tree.avi", None), ("city", "city.mpg", None), ("city h264", "city.mpg", 30)):
        clean = read_video_frames(videos / file, frames)
        if crf is None:
            dark = synthetic_eval_clip(clean)
        else:
            dark = darken_clip(clean, dataclasses.replace(EVAL_DARK_PARAMS, crf=crf), np.random.default_rng(1234))
        out[name] = (list(dark), list(clean))
    if clips is not None and clips.is_dir():
        for seq in clip_sequences(clips):
            out[f"clip {seq.name}"] = (seq.frames, None)
    if long is not None:
        for f in sorted(long.glob("*.mp4")):
            out[f"long {f.stem}"] = (list(read_video_frames(f, long_frames)), None)
    return out


def hf_energy(frames: list[np.ndarray]) -> float:
    """Mean |Laplacian| of the luma: how much fine detail is left."""
    return float(np.mean([np.abs(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean()
                          for f in frames]))


def affine_psnr(out: np.ndarray, truth: np.ndarray) -> float:
    """PSNR after a per-channel gain and offset fit of the output to the truth (tone taken out)."""
    o, t = to_tensor(out), to_tensor(truth)
    return float(psnr(fit_affine(o, t).clamp(0, 1), t))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="weights file (default: the shipped model)")
    ap.add_argument("--videos", type=Path, default=Path("data_cache/videos"))
    ap.add_argument("--clips", type=Path, default=Path("../shared/data/real-lowlight-clips"))
    ap.add_argument("--frames", type=int, default=30, help="frames of each synthetic video")
    ap.add_argument("--long", type=Path, default=None,
                    help="folder of long real dark videos (validation: scripts/fetch_dark_videos.sh --val)")
    ap.add_argument("--long-frames", type=int, default=90, help="first frames of each long video")
    ap.add_argument("--long-brightness", type=float, default=None,
                    help="output brightness (luma 0-255) held on the long videos (default: the model's guess)")
    ap.add_argument("--only-long", action="store_true", help="skip the synthetic videos and the short clips")
    ap.add_argument("--quick-long", action="store_true",
                    help="on the long videos score only flicker and detail kept, except with the filter off and "
                         "at 0.8 / 0.08 / 0 (the other metrics take most of the time at 1080p)")
    ap.add_argument("--strengths", default="0,0.6,0.8")
    ap.add_argument("--tolerances", default="0.08")
    ap.add_argument("--details", default="0.3", help="fractions of the strength for the fine detail")
    ap.add_argument("--flows", default=None,
                    help="the filter's flow as PRESET/SIDE pairs, e.g. fast/320,medium/320 (default: the filter's; "
                         "when given, each printed setting names its flow)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path("reports/temporal_probe_cache"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    strengths = [float(s) for s in args.strengths.split(",")]
    tolerances = [float(t) for t in args.tolerances.split(",")]
    details = [float(d) for d in args.details.split(",")]
    flow_settings = [None] if args.flows is None else [(p, int(side)) for p, side in
                                                       (f.split("/") for f in args.flows.split(","))]
    # the network's outputs as the product makes them, before the filter (applied below)
    enh = Enhancer.from_pretrained(args.model, threads=args.threads, workers=1, temporal_filter=0)
    enh_long = enh if args.long_brightness is None else Enhancer.from_pretrained(
        args.model, threads=args.threads, workers=1, temporal_filter=0, brightness=args.long_brightness)
    tag = Path(args.model).parent.name if args.model else "default"
    long_tag = "" if args.long_brightness is None else f"_b{args.long_brightness:g}"
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = {}
    all_cases = cases(args.videos, args.clips, args.frames, args.long, args.long_frames)
    if args.only_long:
        all_cases = {n: c for n, c in all_cases.items() if n.startswith("long")}
    for name, (dark, clean) in all_cases.items():
        is_long = name.startswith("long")
        f = args.cache / f"{tag}_{name.replace(' ', '_')}_{len(dark)}{long_tag if is_long else ''}.npy"
        if f.is_file():
            outs = list(np.load(f))
        else:
            outs = list((enh_long if is_long else enh).enhance_frames(dark))
            np.save(f, np.stack(outs))
        flows = sequence_flows(dark)
        base_hf = hf_energy(outs)
        for s in strengths:
            for tol, det, flow in itertools.product(tolerances, details, flow_settings) if s > 0 else [(0.0, 0.0, None)]:
                flow_kw = {} if flow is None else {"flow_preset": flow[0], "flow_side": flow[1]}
                filt = TemporalFilter(strength=s, tolerance=max(tol, 1e-6), detail=det, **flow_kw)
                y = [filt(o) for o in outs]
                quick = is_long and args.quick_long and (s, tol, det) not in FULL_METRICS
                r = {"flicker": flicker_ratio(y, dark, flows=flows), "hf": hf_energy(y) / base_hf}
                if not quick:
                    r["lowpass"] = flicker_ratio(y, dark, flows=flows, sigma=lowpass_sigma(y[0]))
                if clean is not None:
                    r["psnr"] = float(np.mean([psnr_rgb(a, b) for a, b in zip(y, clean)]))
                    r["psnr_affine"] = float(np.mean([affine_psnr(a, b) for a, b in zip(y, clean)]))
                    r["hf_vs_truth"] = hf_energy(y) / hf_energy(clean)
                elif not quick:
                    plain = plain_brighten(dark, float(frame_brightness(y).mean()))
                    r["blacks"] = black_levels(y)[0] - black_levels(plain)[0]
                    r["sat"] = saturation(y) / saturation(plain)
                    if is_long:
                        r["pumping"] = exposure_pumping(y, dark)
                        r["brightness"] = float(frame_brightness(y).mean())
                flow_tag = "" if flow is None or s == 0 else f" flow={flow[0]}/{flow[1]}"
                rows.setdefault((s, tol, det, flow_tag), {})[name] = r
                print(f"{name:12s} s={s:.2f} tol={tol:.3f} detail={det}{flow_tag}: "
                      + ", ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
    print("\nmeans over the real clips / per video:")
    for (s, tol, det, flow_tag), per in rows.items():
        real = [r for n, r in per.items() if n.startswith("clip")]
        msg = f"s={s:.2f} tol={tol:.3f} detail={det}{flow_tag}:"
        for n, r in per.items():
            if n.startswith("long") and "blacks" not in r:  # --quick-long
                msg += f" {n[5:]} flicker {r['flicker']:.3f} hf {r['hf']:.3f};"
            elif n.startswith("long"):
                msg += (f" {n[5:]} flicker {r['flicker']:.3f} low-pass {r['lowpass']:.3f} pumping {r['pumping'] if r['pumping'] is None else round(r['pumping'], 2)}"
                        f" blacks {r['blacks']:+.1f} sat {r['sat']:.2f} hf {r['hf']:.3f} Y {r['brightness']:.0f};")
            elif not n.startswith("clip"):
                msg += f" {n} PSNR {r['psnr']:.2f} affine {r['psnr_affine']:.2f} flicker {r['flicker']:.3f} hf/truth {r['hf_vs_truth']:.3f};"
        if real:
            msg += (f" clips flicker {np.mean([r['flicker'] for r in real]):.3f}"
                    f" low-pass {np.mean([r['lowpass'] for r in real]):.3f}"
                    f" blacks {np.mean([r['blacks'] for r in real]):+.1f} sat {np.mean([r['sat'] for r in real]):.3f}"
                    f" hf {np.mean([r['hf'] for r in real]):.3f}")
        print(msg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
