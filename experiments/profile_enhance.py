"""Op-level profile of streaming enhancement with a shipped model (torch.profiler; default quality).

    .venv/bin/python experiments/profile_enhance.py fp32
    .venv/bin/python experiments/profile_enhance.py bf16
    .venv/bin/python experiments/profile_enhance.py bf16 4   # 4 windows per network call
    .venv/bin/python experiments/profile_enhance.py bf16 1 fast   # the fast model
    .venv/bin/python experiments/profile_enhance.py bf16 1 fast 1920x1080   # another frame size

Generates a 24-frame 640x360 (or WxH) dark clip (``stpr.bench.make_clip``), times ``Enhancer.enhance_frames``
on it after a warm-up (model only: no decode or encode), then profiles 12 frames and prints the
25 most expensive operators by self CPU time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from stpr.bench import make_clip
from stpr.enhance import Enhancer, tune_malloc
from stpr.io import open_input

precision = sys.argv[1] if len(sys.argv) > 1 else "fp32"
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
model = sys.argv[3] if len(sys.argv) > 3 else None  # a shipped model's name or a weights file
W, H = (int(v) for v in (sys.argv[4] if len(sys.argv) > 4 else "640x360").split("x"))
CLIP = str(Path(tempfile.mkdtemp()) / "clip.mp4")
tune_malloc()  # as `stpr enhance` does
make_clip(CLIP, W, H, 24)
with open_input(CLIP) as r:
    frames = [f.rgb for f in r]
# One frame at a time: with several (the automatic choice at 640x360 on 2 cores) the network runs
# on pool threads, which torch.profiler does not record (12 frames showed 75 ms of ops).
enh = Enhancer.from_pretrained(model, precision=precision, device="cpu", batch=batch, workers=1)
list(enh.enhance_frames(frames[:6]))  # warm-up
t0 = time.perf_counter()
n = len(list(enh.enhance_frames(frames)))
dt = time.perf_counter() - t0
print(f"{model or 'quality'}, {precision}, batch {batch}: {n / dt:.2f} frames/s (model only, {n} frames)")
with profile(activities=[ProfilerActivity.CPU]) as prof:
    list(enh.enhance_frames(frames[:12]))
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40))
