"""Plain brightening's tone on a model's output: does matching the output's luma distribution to
plain brightening's (per frame, smoothed over time) take out the haze without costing steadiness?

For every clip of ``--clips`` (folders of frames) the model runs once; each variant then maps the
output frames through a tone curve fitted from the input (see ``curve``) and is scored with
``stpr eval``'s no-reference measures against plain brightening, and the flicker ratio.

    .venv/bin/python experiments/tone_match_probe.py --clips ../shared/data/real-lowlight-clips --model quality

The network runs with the temporal filter off (session 23's figures); ``--filter S`` adds rows
with ``stpr.temporal.TemporalFilter(S)`` after the network alone and after each curve (session 26).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from stpr.enhance import Enhancer
from stpr.metrics.video import flicker_ratio, lowpass_sigma, sequence_flows, luma
from stpr.report import _against_plain, clip_sequences
from stpr.temporal import TemporalFilter

LEVELS = np.linspace(0.0, 1.0, 65)


def small_luma(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    s = cv2.resize(frame, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    return luma(s)


def curve(inp: np.ndarray, out: np.ndarray, upto: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of the output's luma and of plain brightening's (the input times the gain to the
    output's mean), both at 1/4 size (area: noise averaged down). Above quantile ``upto`` the
    target fades to the output's own quantiles (highlights kept)."""
    yo, yi = small_luma(out), small_luma(inp)
    p = np.clip(yi * (yo.mean() / max(yi.mean(), 1e-6)), 0, 1)
    qo, qp = np.quantile(yo, LEVELS), np.quantile(p, LEVELS)
    w = np.clip((1.0 - LEVELS) / max(1.0 - upto, 1e-6), 0, 1) if upto < 1 else np.ones_like(LEVELS)
    return qo, w * qp + (1 - w) * qo


def cap_slope(lut: np.ndarray, slope: float) -> np.ndarray:
    """The LUT with its rise per level capped at ``slope`` times the identity's, anchored at the
    top: where the curve would stretch more steeply its shadows stay lighter."""
    rise = np.minimum(np.diff(lut), slope / 255.0)
    return lut[-1] - np.concatenate([np.cumsum(rise[::-1])[::-1], [0.0]])


def apply(out: np.ndarray, qo: np.ndarray, qt: np.ndarray, mode: str, slope: float | None = None) -> np.ndarray:
    qo = np.maximum.accumulate(qo + np.arange(len(qo)) * 1e-6)
    lut = np.interp(np.arange(256) / 255.0, qo, np.maximum.accumulate(qt))
    if slope:
        lut = np.clip(cap_slope(lut, slope), 0, 1)
    if mode == "channel":
        return np.clip(lut[out] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    y = luma(out)
    r = np.interp(y, np.arange(256) / 255.0, lut) / np.maximum(y, 1.0 / 255)
    return np.clip(out * r[..., None] + 0.5, 0, 255).astype(np.uint8)


def variant(inputs, outputs, upto: float, mode: str, smooth: float, slope: float | None = None):
    res, state = [], None
    for i, o in zip(inputs, outputs):
        qo, qt = curve(i, o, upto)
        d = qt - qo  # smooth the correction, not the levels: the output's own changes pass
        state = d if state is None else smooth * state + (1 - smooth) * d
        res.append(apply(o, qo, qo + state, mode, slope))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--model", default="quality")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--filter", type=float, default=0.0, metavar="S",
                    help="also score each variant followed by the temporal filter at strength S")
    ap.add_argument("--slopes", default="", help="comma-separated slope caps: adds half/channel variants with each")
    ap.add_argument("--only-new", action="store_true", help="only the model and the slope-capped variants")
    ap.add_argument("--filter-first", action="store_true",
                    help="with --filter, also rows with the filter before the curve, and before and after it")
    args = ap.parse_args()
    enh = Enhancer.from_pretrained(args.model, temporal_filter=0)
    variants = {"model": None, "full/channel": (1.0, "channel"), "full/luma": (1.0, "luma"),
                "half/channel": (0.5, "channel"), "0.8/channel": (0.8, "channel")}
    if args.only_new:
        variants = {"model": None, "half/channel": (0.5, "channel")}
    for k in filter(None, args.slopes.split(",")):
        variants[f"half/channel/slope{k}"] = (0.5, "channel", float(k))
    names = list(variants) + ([f"{k} + filter" for k in variants] if args.filter else [])
    if args.filter and args.filter_first:
        names += [f"filter + {k}" for k in variants if variants[k]] + [f"filter + {k} + filter" for k in variants if variants[k]]
    rows = {k: [] for k in names}
    for seq in clip_sequences(args.clips, args.max_frames):
        inputs = list(seq.frames)
        outputs = list(enh.enhance_frames(iter(inputs)))
        flows = sequence_flows(inputs)
        sig = lowpass_sigma(inputs[0])
        for name in names:
            v = variants[name.removeprefix("filter + ").removesuffix(" + filter")]
            outs = outputs
            if name.startswith("filter + "):
                filt = TemporalFilter(args.filter)
                outs = [filt(o) for o in outs]
            outs = outs if v is None else variant(inputs, outs, v[0], v[1], 0.9, *v[2:])
            if name.endswith(" + filter"):
                filt = TemporalFilter(args.filter)
                outs = [filt(o) for o in outs]
            m = _against_plain(outs, inputs)
            m["flicker"] = flicker_ratio(outs, inputs, flows=flows)
            m["flicker_lp"] = flicker_ratio(outs, inputs, flows=flows, sigma=sig)
            rows[name].append(m)
            print(seq.name, name, {k: round(float(x), 3) for k, x in m.items() if x is not None}, flush=True)
    keys = ["black_vs_plain", "saturation_vs_plain", "niqe_vs_plain", "flicker", "flicker_lp"]
    print("| variant | " + " | ".join(keys) + " |")
    for name, ms in rows.items():
        vals = [np.mean([m[k] for m in ms if m.get(k) is not None]) for k in keys]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")


if __name__ == "__main__":
    main()
