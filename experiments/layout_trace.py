"""Per-operator time of streaming enhancement, with each operator's memory layouts.

    .venv/bin/python experiments/layout_trace.py fast 1920x1080
    PYTHONPATH=/tmp/before/src .venv/bin/python experiments/layout_trace.py fast 1920x1080   # another tree

Runs ``Enhancer.enhance_frames`` (bf16, one frame at a time, as ``stpr enhance`` does) on a
generated dark clip under a ``TorchDispatchMode`` that times every ATen call and notes the memory
layout of its 4-D tensor inputs and output: C = contiguous (NCHW), L = channels-last, ? = neither.
Prints the 30 most expensive (operator, layouts, output shape) groups in ms a frame and the totals.
Timing each call from Python adds its own overhead (the total runs ~10-20 % over the untraced
rate), so compare groups between trees, not with frames/s. Why layouts: an operator whose inputs
mix C and L (a cat of convolution features with a warp's output, an element-wise op on a
channels-last three-channel frame) takes a slow path or makes the next convolution reorder.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from stpr.bench import make_clip
from stpr.enhance import Enhancer, tune_malloc
from stpr.io import open_input

FRAMES = 4


def layout(t) -> str:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        return ""
    if t.is_contiguous():
        return "C"
    return "L" if t.is_contiguous(memory_format=torch.channels_last) else "?"


class Timer(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ms = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        dt = time.perf_counter() - t0
        ins = list(args[0]) if args and isinstance(args[0], (list, tuple)) else [a for a in args if isinstance(a, torch.Tensor)]
        o = out[0] if isinstance(out, (list, tuple)) and out else out
        shape = tuple(o.shape) if isinstance(o, torch.Tensor) else ()
        key = (str(func).split(".")[1] if "." in str(func) else str(func), "".join(layout(a) for a in ins), layout(o), shape)
        self.ms[key] += dt * 1e3
        return out


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "fast"
    w, h = (int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "1920x1080").split("x"))
    tune_malloc()
    clip = str(Path(tempfile.mkdtemp()) / "clip.mp4")
    make_clip(clip, w, h, FRAMES + 4)
    with open_input(clip) as r:
        frames = [f.rgb for f in r]
    enh = Enhancer.from_pretrained(model, precision="bf16", device="cpu", batch=1)
    list(enh.enhance_frames(frames[:4]))  # warm-up
    timer = Timer()
    with timer:
        list(enh.enhance_frames(frames[:FRAMES]))
    per_frame = {k: v / FRAMES for k, v in timer.ms.items()}
    print(f"{model} {w}x{h}: ms a frame by (operator, input layouts, output layout, output shape)")
    for (op, ins, out, shape), ms in sorted(per_frame.items(), key=lambda kv: -kv[1])[:30]:
        print(f"{ms:7.2f}  {op:24s} {ins or '-':>6s} -> {out or '-':2s} {shape}")
    conv = sum(v for k, v in per_frame.items() if "conv" in k[0])
    full = sum(v for k, v in per_frame.items() if k[3][-2:] in ((h, w), (h + (-h) % 32, w + (-w) % 32)) or k[3][:2] == (h, w))
    print(f"total {sum(per_frame.values()):.1f} ms a frame; convolutions {conv:.1f}; full-resolution operators {full:.1f}")


if __name__ == "__main__":
    main()
