"""What fusing the full-resolution tail would buy (issue 24's 1080p target; speed-and-memory.md).

The network's last steps run at full resolution, one pass each: the residual's pixel shuffle from
1/4 resolution, the local gain upsampled and exponentiated, ``residual + x * gain``, then
``Enhancer``'s scale to 0-255, clamp and uint8. This times that tail on tensors of the shapes the
model makes (random values), eagerly and under ``torch.compile`` (Inductor, which fuses the passes
into one loop; needs a C++ compiler), with the frame ``x`` as float32 (as today) or as the uint8
it was decoded as:

    .venv/bin/python experiments/compile_tail_probe.py --size 1920x1080 --threads 2

Prints milliseconds a frame for each variant and the largest difference in output levels.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def tail(residual: torch.Tensor, local_gain: torch.Tensor, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """(1, 48, H/4, W/4) bf16, (1, 1, H/4, W/4) bf16, (1, 3, H, W) float32 in [0, 1] or uint8,
    (1, 3, 1, 1) -> (H, W, 3) uint8, as the reconstruction's end and ``Enhancer``'s to_uint8."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    res = F.pixel_shuffle(residual, 4).float()
    g = torch.exp(F.interpolate(local_gain.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)) * gain
    out = torch.addcmul(res, x, g)
    return out.mul(255.0).add_(0.5).clamp_(0.5, 255.5)[0].permute(1, 2, 0).to(torch.uint8)


def timed(fn, args, repeat: int) -> tuple[float, torch.Tensor]:
    fn(*args)  # warm-up (and compilation)
    t = time.perf_counter()
    for _ in range(repeat):
        y = fn(*args)
    return (time.perf_counter() - t) / repeat * 1000, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x1080", help="WxH (padded up to multiples of 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    h, w = -(-h // 4) * 4, -(-w // 4) * 4
    g = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    residual = (torch.rand(1, 48, h // 4, w // 4, generator=g) * 0.1).to(torch.bfloat16).contiguous(memory_format=cl)
    local_gain = torch.rand(1, 1, h // 4, w // 4, generator=g).to(torch.bfloat16).contiguous(memory_format=cl)
    x = torch.rand(1, 3, h, w, generator=g)
    x_u8 = (x * 255).round().to(torch.uint8)
    gain = torch.rand(1, 3, 1, 1, generator=g) + 0.5
    compiled = torch.compile(tail)
    ref = None
    for name, fn, frame in (("eager, float32 frame", tail, x), ("eager, uint8 frame", tail, x_u8),
                            ("compiled, float32 frame", compiled, x), ("compiled, uint8 frame", compiled, x_u8)):
        t0 = time.perf_counter()
        ms, y = timed(fn, (residual, local_gain, frame, gain), args.repeat)
        first = time.perf_counter() - t0 - ms * args.repeat / 1000
        ref = y if ref is None else ref
        diff = int((y.int() - ref.int()).abs().max())
        print(f"{w}x{h} {name}: {ms:.1f} ms a frame (first call {first:.1f} s); max difference {diff} levels",
              flush=True)


if __name__ == "__main__":
    main()
