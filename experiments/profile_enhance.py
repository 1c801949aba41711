"""Op-level profile of streaming enhancement with the shipped model (torch.profiler).

    .venv/bin/python experiments/profile_enhance.py fp32
    .venv/bin/python experiments/profile_enhance.py bf16

Generates a 24-frame 640x360 dark clip (``stpr.bench.make_clip``), times ``Enhancer.enhance_frames``
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
from stpr.enhance import Enhancer
from stpr.io import open_input

bf16 = len(sys.argv) > 1 and sys.argv[1] == "bf16"
CLIP = str(Path(tempfile.mkdtemp()) / "clip.mp4")
W, H = 640, 360
make_clip(CLIP, W, H, 24)
with open_input(CLIP) as r:
    frames = [f.rgb for f in r]
enh = Enhancer.from_pretrained(bf16=bf16)
list(enh.enhance_frames(frames[:6]))  # warm-up
t0 = time.perf_counter()
n = len(list(enh.enhance_frames(frames)))
dt = time.perf_counter() - t0
print(f"{'bf16' if bf16 else 'fp32'}: {n / dt:.2f} frames/s (model only, {n} frames)")
with profile(activities=[ProfilerActivity.CPU]) as prof:
    list(enh.enhance_frames(frames[:12]))
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40))
