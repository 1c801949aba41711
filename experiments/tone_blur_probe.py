"""clip661 (a fast pan over fine texture, one of ../shared's real dark clips): flicker ratio and
low-pass flicker ratio of each model, and how much its local tone follows input blur (the first
frame blurred by a 5 and a 9 px horizontal box, one frame at a time: mean change of the low-pass
log gain, output luma over input luma, both blurred with sigma 4 px).

    .venv/bin/python experiments/tone_blur_probe.py quality fast runs/q5_blur/last.safetensors

docs/research/real-footage.md sections 13-14.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from stpr.enhance import Enhancer
from stpr.metrics.video import flicker_ratio, lowpass_sigma, sequence_flows

CLIP = "../shared/data/real-lowlight-clips/clip661"


def lum(x: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(x.astype(np.float64) @ [0.299, 0.587, 0.114], (0, 0), 4) + 1.0


def main() -> None:
    fr = [cv2.imread(f"{CLIP}/{i:05d}.png")[:, :, ::-1].copy() for i in range(4)]
    flows = sequence_flows(fr)
    blurred = [fr[0]] + [cv2.filter2D(fr[0], -1, np.ones((1, k)) / k) for k in (5, 9)]
    for m in sys.argv[1:]:
        name = None if m == "quality" else m
        out = list(Enhancer.from_pretrained(name, threads=2).enhance_frames(fr))
        single = Enhancer.from_pretrained(name, threads=2, frames=1)
        gains = [np.log(lum(single.enhance_image(v)) / lum(v))[16:-16, 16:-16] for v in blurred]
        print(f"{m}: clip661 flicker {flicker_ratio(out, fr, flows=flows):.3f}, low-pass "
              f"{flicker_ratio(out, fr, flows=flows, sigma=lowpass_sigma(fr[0])):.3f}; blur sensitivity 5 / 9 px "
              f"{np.abs(gains[1] - gains[0]).mean():.4f} / {np.abs(gains[2] - gains[0]).mean():.4f}")


if __name__ == "__main__":
    main()
