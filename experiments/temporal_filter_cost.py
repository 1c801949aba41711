"""Time and memory of the temporal filter alone (``stpr.temporal.TemporalFilter``) per frame size:
milliseconds per frame (median over frames after the first) and the peak extra memory of one call,
on a smooth random texture panning 2 px a frame with grain. Run with nothing else on the machine.

    .venv/bin/python experiments/temporal_filter_cost.py --sizes 640x360,1920x1080,3840x2160 --details 0,0.3
    .venv/bin/python experiments/temporal_filter_cost.py --flows fast/320,medium/480
"""

from __future__ import annotations

import argparse
import itertools
import time
import tracemalloc

import cv2
import numpy as np

from stpr.temporal import DEFAULT_DETAIL, TemporalFilter


def frames_for(w: int, h: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    big = cv2.resize(rng.uniform(30, 220, size=(h // 16 + 1, (w + 2 * n) // 16 + 1, 3)).astype(np.float32),
                     (w + 2 * n, h), interpolation=cv2.INTER_CUBIC)
    return [(big[:, 2 * k:2 * k + w] + rng.normal(0, 4, (h, w, 3))).clip(0, 255).astype(np.uint8) for k in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="640x360,1920x1080,3840x2160")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2, help="OpenCV threads")
    ap.add_argument("--details", default=str(DEFAULT_DETAIL), help="fine-detail shares to time (comma-separated)")
    ap.add_argument("--flows", default=None, help="the filter's flow as PRESET/SIDE pairs, e.g. fast/320,medium/480 "
                                                  "(default: the filter's)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    flows = [None] if args.flows is None else [(p, int(side)) for p, side in
                                               (f.split("/") for f in args.flows.split(","))]
    for size, detail, flow in itertools.product(args.sizes.split(","), [float(d) for d in args.details.split(",")], flows):
        w, h = (int(v) for v in size.split("x"))
        frames = frames_for(w, h, args.frames)
        filt = TemporalFilter(detail=detail) if flow is None else TemporalFilter(detail=detail, flow_preset=flow[0],
                                                                                 flow_side=flow[1])
        times = []
        for f in frames:
            t0 = time.perf_counter()
            filt(f)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        filt(frames[-2])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        ms = 1000 * float(np.median(times[1:]))
        print(f"{size} detail {detail:g} flow {filt.flow_preset}/{filt.flow_side}: {ms:.1f} ms a frame (range {1000 * min(times[1:]):.1f}-{1000 * max(times[1:]):.1f}), "
              f"peak extra memory of a call {peak / 2**20:.0f} MB, state kept {filt._prev.nbytes / 2**20:.0f} MB",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
