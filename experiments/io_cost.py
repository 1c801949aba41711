"""CPU time of the work around the network, per 1080p frame: decoding, swscale's YUV -> RGB and
RGB -> YUV with stpr's flags, and x264 (crf 18) at veryfast and medium.

    .venv/bin/python experiments/io_cost.py

Decodes a generated 40-frame dark clip (``stpr.bench.make_clip``); times are process CPU time
(all threads), so they add up against the 2 cores' budget.
"""

from __future__ import annotations

import os
import tempfile
import time

import av
from av.video.reformatter import VideoReformatter

from stpr.bench import make_clip
from stpr.io.common import _SWS_FLAGS

CLIP = os.path.join(tempfile.gettempdir(), "stpr_io_cost_1080p.mp4")


def main() -> None:
    if not os.path.exists(CLIP):
        make_clip(CLIP, 1920, 1080, 40)
    with av.open(CLIP) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        t0 = time.process_time()
        frames = list(c.decode(stream))
        n = len(frames)
        print(f"decode {1e3 * (time.process_time() - t0) / n:.1f} CPU ms a frame")
    rf = VideoReformatter()
    t0 = time.process_time()
    rgbs = [rf.reformat(f, format="rgb24", interpolation=_SWS_FLAGS).to_ndarray() for f in frames]
    print(f"YUV -> RGB {1e3 * (time.process_time() - t0) / n:.1f} CPU ms a frame")
    t0 = time.process_time()
    yuvs = [av.VideoFrame.from_ndarray(r, format="rgb24").reformat(format="yuv420p", interpolation=_SWS_FLAGS)
            for r in rgbs]
    print(f"RGB -> YUV {1e3 * (time.process_time() - t0) / n:.1f} CPU ms a frame")
    for preset in ("veryfast", "medium"):
        path = os.path.join(tempfile.gettempdir(), f"stpr_io_cost_{preset}.mp4")
        with av.open(path, "w") as out:
            vs = out.add_stream("libx264", rate=25, options={"crf": "18", "preset": preset})
            vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
            t0, w0 = time.process_time(), time.perf_counter()
            for i, f in enumerate(yuvs):
                f.pts = i
                for p in vs.encode(f):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
            print(f"x264 {preset} {1e3 * (time.process_time() - t0) / n:.1f} CPU ms a frame "
                  f"({1e3 * (time.perf_counter() - w0) / n:.1f} ms wall)")
        os.remove(path)


if __name__ == "__main__":
    main()
