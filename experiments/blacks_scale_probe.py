"""Is a model's "blacks over plain brightening" haze, or plain brightening's noise floor?

``stpr eval``'s blacks figure is the output's 1st luma percentile minus plain brightening's, both at
full resolution (every 2nd pixel). Plain brightening keeps the dark input's noise, whose low tail
pulls its 1st percentile down; a model that removes the noise reads as "lifted" even where the
scene's blacks are where they were. Averaging both pictures down (area, ``--factors``) takes the
noise out of plain brightening's percentile and leaves the blacks of the scene: a lift that
survives there is haze, one that disappears was the noise floor. The same for saturation against
plain brightening (``--saturation``), whose colour noise counts as colour at full size.

    .venv/bin/python experiments/blacks_scale_probe.py --models v8=runs/v8.safetensors \
        q28=runs/q28_coarse_temporal_x2/last.safetensors

Each model runs with the temporal filter off, as ``stpr eval --temporal-filter 0`` (the bars'
setting). Prints per clip and model the blacks over plain at each factor, then the means.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from stpr.enhance import Enhancer
from stpr.metrics.noref import black_levels, frame_brightness, plain_brighten, saturation
from stpr.report import clip_sequences


def downscaled(frames: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """Each frame area-averaged by ``factor`` (1: unchanged)."""
    if factor == 1:
        return frames
    out = []
    for f in frames:
        h, w = f.shape[:2]
        out.append(cv2.resize(f, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--models", nargs="+", required=True, metavar="NAME=WEIGHTS",
                    help="models to compare, each a name and a shipped model's name or a weights file")
    ap.add_argument("--factors", default="1,2,4,8", help="area-downscale factors (1: eval's own figure)")
    ap.add_argument("--saturation", action="store_true",
                    help="saturation over plain brightening's (as stpr eval) instead of the blacks")
    args = ap.parse_args()
    what = "saturation vs plain" if args.saturation else "blacks vs plain"
    fmt = ".3f" if args.saturation else "+.1f"  # a ratio, or levels of 255

    def measure(outputs: list[np.ndarray], plain: list[np.ndarray]) -> float:
        if args.saturation:
            return saturation(outputs) / max(saturation(plain), 1e-9)
        return black_levels(outputs)[0] - black_levels(plain)[0]

    factors = [int(f) for f in args.factors.split(",")]
    seqs = clip_sequences(args.clips)
    table: dict[str, dict[int, list[float]]] = {}
    for spec in args.models:
        name, weights = spec.split("=", 1)
        enh = Enhancer.from_pretrained(weights, temporal_filter=0)
        table[name] = {f: [] for f in factors}
        for seq in seqs:
            inputs = list(seq.frames)
            outputs = list(enh.enhance_frames(iter(inputs)))
            plain = plain_brighten(inputs, float(frame_brightness(outputs).mean()))
            row = []
            for f in factors:
                d = measure(downscaled(outputs, f), downscaled(plain, f))
                table[name][f].append(d)
                row.append(f"x1/{f} {d:{fmt}}")
            print(f"{name} {seq.name}: " + ", ".join(row), flush=True)
    print("\n| model | " + " | ".join(f"{what} at 1/{f}" for f in factors) + " |")
    print("|---|" + "---:|" * len(factors))
    for name, cols in table.items():
        print(f"| {name} | " + " | ".join(f"{np.mean(cols[f]):{fmt}}" for f in factors) + " |")
    names = [s.name for s in seqs]
    print("\nper clip, " + ", ".join(names))
    for name, cols in table.items():
        for f in factors:
            print(f"{name} 1/{f}: " + " ".join(f"{v:{fmt}}" for v in cols[f]))


if __name__ == "__main__":
    main()
