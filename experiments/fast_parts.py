"""Time the STPR network's parts alone (bf16 autocast, one 640x384 frame), for a config given as JSON.

    .venv/bin/python experiments/fast_parts.py '{"channels": 16, "prrd_scales": 2, "prrd_growth": 8, "prrd_layers": 2}'

Untrained weights (speed does not depend on them); mean of 20 calls after one warm-up. Also times
the alternatives a faster design would use (a 4x4 stride-4 convolution in place of
``pixel_unshuffle`` + 3x3 convolution). Numbers move with this host's load: compare within a run.
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F

from stpr.models.common import frame_stats, normalize_brightness
from stpr.models.stpr_arch import STPR, STPRConfig, align_frame


def timed(name: str, fn, n: int = 20):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn()
        t0 = time.perf_counter()
        for _ in range(n):
            out = fn()
    print(f"| {name} | {1e3 * (time.perf_counter() - t0) / n:.2f} |")
    return out


def main() -> int:
    cfg = STPRConfig.from_dict(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
    m = STPR(cfg).eval()
    x = torch.rand(1, 3, 384, 640) * 0.15
    print("| part | ms |\n|---|---:|")
    st = timed("frame_stats", lambda: frame_stats(x))
    xn = timed("normalize_brightness", lambda: normalize_brightness(x, st))
    both = torch.cat([x, xn], 1)
    timed("encoder (pixel_unshuffle + 2 convs)", lambda: m.encoder(x, xn))
    timed("  pixel_unshuffle of frame + normalised copy", lambda: F.pixel_unshuffle(both, 4))
    u = F.pixel_unshuffle(both, 4)
    timed("  its first 3x3 convolution", lambda: m.encoder.body[0](u))
    w = torch.randn(cfg.channels, 6, 4, 4)
    timed("  instead: 4x4 stride-4 convolution", lambda: F.conv2d(both, w, stride=4))
    s = timed("encode_frame", lambda: m.encode_frame(x, st))
    if cfg.frames > 1 and cfg.flow_mode == "learned":
        timed("learned flow features (per frame)", lambda: m.flow_net.features(xn))
        f = timed("learned flow, one pair", lambda: m.estimate_flow(s, s))
        timed("full-resolution neighbour warp (pixel fusion)", lambda: align_frame(s, s, f))
    timed("PRRD pyramid", lambda: m.pyramid(s.feats))
    feats = timed("reconstruction body", lambda: m.reconstruction.body(torch.cat([s.feats, s.feats], 1)))
    timed("residual conv + pixel_shuffle", lambda: F.pixel_shuffle(m.reconstruction.residual(feats), 4).float())
    timed("decode (one window)", lambda: m.decode([s] * cfg.frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
