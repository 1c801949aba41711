"""How fast could a smaller STPR be? Model-only speed of untrained configs (weights do not change speed).

    .venv/bin/python experiments/fast_configs.py [--rounds 3] [--size 640x360]

Each config runs in its own process, the configs in turn for ``--rounds`` rounds (this host's speed
drifts by tens of percent within the hour, so only interleaved medians compare); the rate is
``Enhancer.enhance_frames`` on 16 in-memory frames after a warm-up, default precision (bf16 here).
"""

from __future__ import annotations

import argparse
import json
import sys

from ab_speed import print_rates, run_interleaved  # experiments/ is on sys.path when run as a script

SMALL = {"channels": 16, "flow_levels": 3, "flow_channels": [8, 12, 16], "flow_hidden": 16, "prrd_scales": 2,
         "prrd_growth": 8, "prrd_layers": 2}
CONFIGS = {
    "v7 (shipped architecture)": {},
    "16 ch, v7's flow net": {"channels": 16, "prrd_scales": 2, "prrd_growth": 8, "prrd_layers": 2},
    "16 ch, small flow": SMALL,
    "16 ch, small flow, no pixel fusion": {**SMALL, "pixel_fusion": False},
    "8 ch, small flow, no pixel fusion": {**SMALL, "channels": 8, "pixel_fusion": False},
    "16 ch, per frame (T = 1)": {**SMALL, "frames": 1, "pixel_fusion": False},
    # the shipped fast model's network (configs/fast.json): strided encoder, flow from 1/8 resolution
    "fast (the shipped fast model)": {"channels": 16, "encoder": "strided", "flow_stride": 8, "flow_levels": 3,
                                      "flow_channels": [16, 24, 32], "flow_hidden": 16, "prrd_scales": 2,
                                      "prrd_recursions": 1, "prrd_growth": 8, "prrd_layers": 2, "hf_split": False,
                                      "pixel_fusion": False},
}

CHILD = r"""
import json, sys, time
import numpy as np, torch
from stpr.enhance import Enhancer
from stpr.models.stpr_arch import STPR, STPRConfig
cfg = STPRConfig.from_dict(json.loads(sys.argv[1]))
w, h, n = int(sys.argv[2]), int(sys.argv[3]), 16
torch.manual_seed(0)
model = STPR(cfg).eval()
frames = list((np.random.default_rng(0).random((n, h, w, 3)) * 40).astype(np.uint8))
enh = Enhancer(model, tile=0, device="cpu")
list(enh.enhance_frames(frames[:4]))
t0 = time.perf_counter()
k = sum(1 for _ in enh.enhance_frames(frames))
print(json.dumps({"fps": k / (time.perf_counter() - t0), "params": sum(p.numel() for p in model.parameters())}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="640x360")
    args = ap.parse_args()
    w, h = args.size.split("x")
    cases = {name: ([sys.executable, "-c", CHILD, json.dumps(cfg), w, h], None) for name, cfg in CONFIGS.items()}
    results = run_interleaved(cases, args.rounds)
    print_rates({name: [r["fps"] for r in rs] for name, rs in results.items()},
                f"| config ({args.size}, model only, untrained) | parameters | median frames/s | range | vs v7 |",
                extra={name: f"{rs[0]['params']:,}" for name, rs in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
