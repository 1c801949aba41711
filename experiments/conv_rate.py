"""What this CPU's convolutions and matrix products reach, in fp32 and bf16, NCHW and channels-last.

    .venv/bin/python experiments/conv_rate.py

The shipped network's convolutions are 3x3, 16-96 channels, at 1/4 of the frame's resolution
(90x160 for 640x360); the matrix product is the 2048² one ``stpr bench`` uses for its peak.
Prints one line per case: milliseconds per call (mean of 50 after 5 warm-ups) and GFLOP/s.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def conv_rate(cin: int, cout: int, h: int, w: int, dtype: torch.dtype, channels_last: bool, n: int = 50):
    x = torch.randn(1, cin, h, w).to(dtype)
    wt = torch.randn(cout, cin, 3, 3).to(dtype)
    b = torch.randn(cout).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        wt = wt.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(5):
            F.conv2d(x, wt, b, padding=1)
        t0 = time.perf_counter()
        for _ in range(n):
            F.conv2d(x, wt, b, padding=1)
        secs = (time.perf_counter() - t0) / n
    return secs * 1e3, 2 * cin * cout * 9 * h * w / secs / 1e9


def matmul_rate(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 / ((time.perf_counter() - t0) / reps) / 1e9


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
    for dtype in (torch.float32, torch.bfloat16):
        print(f"matmul 2048² {str(dtype)[6:]}: {matmul_rate(dtype):.0f} GFLOP/s")
    for cin, cout, h, w in [(32, 32, 90, 160), (32, 32, 360, 640), (64, 64, 90, 160), (128, 128, 90, 160)]:
        for dtype in (torch.float32, torch.bfloat16):
            for cl in (False, True):
                ms, g = conv_rate(cin, cout, h, w, dtype, cl)
                print(f"conv3x3 {cin}->{cout} {h}x{w} {str(dtype)[6:]:8s} {'channels-last' if cl else 'NCHW':13s} "
                      f"{ms:7.3f} ms  {g:5.0f} GFLOP/s")


if __name__ == "__main__":
    main()
