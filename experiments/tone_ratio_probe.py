"""Probe (real-footage §48): steady the network's coarse *tone* rather than its coarse picture.

The recursive filter (``stpr.temporal``) blends the output with its warped past where the two
agree, so a real change of light (a torch, headlights) is either smeared or, failing the
agreement test, not filtered at all, and a coarse shimmer of the network's tone that exceeds the
tolerance passes. Here the quantity blended over time is the log ratio of the output's coarse
picture to the input's, per channel, at a small work size: what the network did to the light,
which should change slowly even where the light itself changes. Each frame's coarse ratio is
blended with the previous blended ratio warped along the output's flow, where the two agree (in
log units), and the output is multiplied by exp(blended - own) upsampled.

Runs on the probe's cached network outputs (``experiments/temporal_filter_probe.py`` writes them to
``reports/temporal_probe_cache``), after the product's default filter:

    .venv/bin/python experiments/tone_ratio_probe.py --videos night_street_crossing --brightness 115
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import cv2
import numpy as np

from stpr.data.datasets import read_video_frames
from stpr.metrics.noref import black_levels, exposure_pumping, plain_brighten, saturation
from stpr.metrics.video import flicker_ratio, frame_brightness, lowpass_sigma, sequence_flows
from stpr.models.flow_arch import dis_flow, remap_backward
from stpr.temporal import CUT_AGREEMENT, TemporalFilter
from temporal_filter_probe import hf_energy  # (experiments/ is the script's own folder on sys.path)

WORK_SIDE = 160  # the coarse tone lives well below this size


class ToneRatioFilter:
    """Args:
        strength: weight of the warped past ratio where it agrees (0 off).
        tolerance: log-ratio difference (mean over channels, after a small blur) at which the
            weight has fallen to exp(-1) of ``strength``.
        sigma: Gaussian sigma (work-size pixels) of the coarse pictures.
    """

    def __init__(self, strength: float, tolerance: float, sigma: float = 2.0):
        self.strength, self.tolerance, self.sigma = strength, tolerance, sigma
        self._ratio = self._gray = None

    def _small(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        h, w = frame.shape[:2]
        s = min(1.0, WORK_SIDE / max(h, w))
        size = (max(16, round(w * s)), max(16, round(h * s)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(np.float32), size

    def __call__(self, out: np.ndarray, dark: np.ndarray) -> np.ndarray:
        o, size = self._small(out)
        i, _ = self._small(dark)
        eps_o = 2.0
        eps_i = 0.02 * float(i.mean()) + 0.25  # the dark input's own floor: a fraction of its level
        ratio = (np.log(cv2.GaussianBlur(o, (0, 0), self.sigma) + eps_o)
                 - np.log(cv2.GaussianBlur(i, (0, 0), self.sigma) + eps_i))
        gray = cv2.cvtColor(o, cv2.COLOR_RGB2GRAY).clip(0, 255).astype(np.uint8)
        if self._ratio is None or self._ratio.shape != ratio.shape or self.strength == 0:
            self._ratio, self._gray = ratio, gray
            return out
        flow = dis_flow(gray, self._gray, cv2.DISOPTICAL_FLOW_PRESET_FAST)
        past = remap_backward(self._ratio, flow)
        diff = np.abs(cv2.GaussianBlur(past - ratio, (0, 0), 1.0)).mean(axis=2)
        self._gray = gray
        if (diff < self.tolerance).mean() < CUT_AGREEMENT:  # a cut
            self._ratio = ratio
            return out
        weight = self.strength * np.exp(-np.square(diff / self.tolerance))
        fx = flow[..., 0] + np.arange(size[0], dtype=np.float32)
        fy = flow[..., 1] + np.arange(size[1], dtype=np.float32)[:, None]
        weight[(fx < 0) | (fy < 0) | (fx > size[0] - 1) | (fy > size[1] - 1)] = 0.0
        step = weight[..., None] * (past - ratio)
        self._ratio = ratio + step
        h, w = out.shape[:2]
        gain = cv2.resize(np.exp(step), (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(out.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="night_street_crossing", help="comma-separated names in --dir")
    ap.add_argument("--dir", type=Path, default=Path("data_cache/real-dark-val"))
    ap.add_argument("--cache", type=Path, default=Path("reports/temporal_probe_cache"))
    ap.add_argument("--brightness", type=float, default=None, help="the cached outputs held at this level")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--strengths", default="0,0.5,0.8,0.95")
    ap.add_argument("--tolerances", default="0.05,0.1,0.2")
    ap.add_argument("--base", choices=["default", "off"], default="default",
                    help="the product's default temporal filter before this one, or none")
    args = ap.parse_args()
    tag = "" if args.brightness is None else f"_b{args.brightness:g}"
    for name in args.videos.split(","):
        dark = list(read_video_frames(args.dir / f"{name}.mp4", args.frames))
        outs = list(np.load(args.cache / f"default_long_{name}_{len(dark)}{tag}.npy"))
        if args.base == "default":
            tf = TemporalFilter()
            outs = [tf(o) for o in outs]
        flows = sequence_flows(dark)
        base_hf = hf_energy(outs)
        plain = plain_brighten(dark, float(frame_brightness(outs).mean()))
        pb, ps = black_levels(plain)[0], saturation(plain)
        grid = [(0.0, 0.0)] + [p for p in itertools.product(
            [float(s) for s in args.strengths.split(",") if float(s) > 0],
            [float(t) for t in args.tolerances.split(",")])]
        for s, tol in grid:
            f = ToneRatioFilter(s, max(tol, 1e-6))
            y = [f(o, d) for o, d in zip(outs, dark)]
            r = {"flicker": flicker_ratio(y, dark, flows=flows),
                 "lowpass": flicker_ratio(y, dark, flows=flows, sigma=lowpass_sigma(y[0])),
                 "pumping": exposure_pumping(y, dark), "hf": hf_energy(y) / base_hf,
                 "blacks": black_levels(y)[0] - pb, "sat": saturation(y) / ps,
                 "Y": float(frame_brightness(y).mean())}
            print(f"{name} b={args.brightness} base={args.base} s={s:.2f} tol={tol:.3f}: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
