"""Plain brightening's tone on a model's output: does matching the output's luma distribution to
plain brightening's (per frame, smoothed over time) take out the haze without costing steadiness?

For every clip of ``--clips`` (folders of frames) the model runs once; each variant then maps the
output frames through a tone curve fitted from the input (see ``curve``) and is scored with
``stpr eval``'s no-reference measures against plain brightening, and the flicker ratio.

    .venv/bin/python experiments/tone_match_probe.py --clips ../shared/data/real-lowlight-clips --model quality
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from stpr.enhance import Enhancer
from stpr.metrics.video import flicker_ratio, lowpass_sigma, sequence_flows, luma
from stpr.report import _against_plain, clip_sequences

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


def apply(out: np.ndarray, qo: np.ndarray, qt: np.ndarray, mode: str) -> np.ndarray:
    qo = np.maximum.accumulate(qo + np.arange(len(qo)) * 1e-6)
    lut = np.interp(np.arange(256) / 255.0, qo, np.maximum.accumulate(qt))
    if mode == "channel":
        return np.clip(lut[out] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    y = luma(out)
    r = np.interp(y, np.arange(256) / 255.0, lut) / np.maximum(y, 1.0 / 255)
    return np.clip(out * r[..., None] + 0.5, 0, 255).astype(np.uint8)


def variant(inputs, outputs, upto: float, mode: str, smooth: float):
    res, state = [], None
    for i, o in zip(inputs, outputs):
        qo, qt = curve(i, o, upto)
        d = qt - qo  # smooth the correction, not the levels: the output's own changes pass
        state = d if state is None else smooth * state + (1 - smooth) * d
        res.append(apply(o, qo, qo + state, mode))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--model", default="quality")
    ap.add_argument("--max-frames", type=int, default=None)
    args = ap.parse_args()
    enh = Enhancer.from_pretrained(args.model)
    variants = {"model": None, "full/channel": (1.0, "channel"), "full/luma": (1.0, "luma"),
                "half/channel": (0.5, "channel"), "0.8/channel": (0.8, "channel")}
    rows = {k: [] for k in variants}
    for seq in clip_sequences(args.clips, args.max_frames):
        inputs = list(seq.frames)
        outputs = list(enh.enhance_frames(iter(inputs)))
        flows = sequence_flows(inputs)
        sig = lowpass_sigma(inputs[0])
        for name, v in variants.items():
            outs = outputs if v is None else variant(inputs, outputs, v[0], v[1], 0.9)
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
