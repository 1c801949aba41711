"""Where the network runs and in which precision, chosen at run time from what the machine has.

* ``device``: "auto" (a CUDA GPU when PyTorch sees one, else the CPU), "cpu", "cuda" or "cuda:N".
* ``precision``: "auto", "fp32", "bf16" or "fp16". "auto" is bfloat16 on CPUs whose instruction
  set multiplies bfloat16 natively (AVX512-BF16 or AMX: 1.14-1.23x faster end to end on this
  project's CPU, within 0.03 dB; see docs/research/speed-and-memory.md), float32 on other CPUs
  (there bfloat16 is emulated and slower), and bfloat16 on GPUs that support it (fp16 on older ones).

Reduced precision applies to the convolutions (autocast); warps, statistics and the full-resolution
gain stay float32. For inference the convolutions' weights are cast once (``cast_convolutions``)
rather than by autocast on every call.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from stpr.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpuinfo_has_bf16(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo text lists a native bfloat16 multiply (``avx512_bf16`` or ``amx_bf16``)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool(set(line.split(":", 1)[-1].split()) & {"avx512_bf16", "amx_bf16"})
    return False


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX). False where
    /proc/cpuinfo cannot be read (other systems): float32 is the safe choice there."""
    try:
        return cpuinfo_has_bf16(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return False


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True on GPUs that multiply bfloat16 in hardware: NVIDIA compute capability 8.0 (Ampere) and
    newer, and AMD (ROCm). ``torch.cuda.is_bf16_supported()`` says True on older NVIDIA GPUs too
    (T4, V100), where bfloat16 is only emulated."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= (8, 0)


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` (a CPU or a CUDA GPU) multiplies bfloat16 in hardware."""
    return cuda_has_native_bf16(device) if device.type == "cuda" else cpu_has_fast_bf16()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for a ``--device`` value.

    Raises:
        UsageError: an unknown value, or CUDA asked for where PyTorch sees no CUDA GPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or "auto").strip().lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: PyTorch sees no CUDA GPU here (a CPU-only PyTorch, or no "
                             "driver); use --device cpu or auto")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: there are {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device(device)
    raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The precision ("fp32", "bf16" or "fp16") a ``--precision`` value means on ``device``.

    Raises:
        UsageError: an unknown value, or fp16 on a CPU (PyTorch runs it there far slower than fp32).
    """
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type == "cuda":
        if precision == "auto":
            return "bf16" if cuda_has_native_bf16(device) else "fp16"
        return precision
    if precision == "auto":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if precision == "fp16":
        raise UsageError("--precision fp16 is for GPUs; on a CPU use bf16 or fp32")
    if precision == "bf16" and not cpu_has_fast_bf16():
        warnings.warn("--precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so PyTorch "
                      "emulates it, far slower than fp32 (auto picks fp32 here)", stacklevel=2)
    return precision


def autocast(device: torch.device, precision: str):
    """Context that runs the convolutions in ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def cast_convolutions(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """A copy of ``model`` for inference whose convolution weights are already in ``precision``
    (the model itself is returned for fp32). Under :func:`autocast` the outputs are the same as the
    float32 model's (autocast rounds the weights the same way), without casting every weight on
    every call. On a CPU the weights are also stored channels-last, which oneDNN's bfloat16
    kernels prefer: their outputs, and the layers that follow, stay channels-last (a different
    summation order: outputs move by ~0.002 levels on average). Other layers (the small linear
    heads, learned scalars) stay float32.
    """
    if precision == "fp32":
        return model
    model = copy.deepcopy(model)  # the caller's model stays float32
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.to(dtype=_DTYPES[precision], memory_format=fmt)
    return model


def default_batch(device: torch.device, height: int, width: int) -> int:
    """Windows enhanced per network call: 1 on a CPU (a frame already fills both cores and bigger
    batches only add memory), 8 on a GPU, 2 at 4K and above (one window at a time leaves a GPU
    mostly idle between small kernel launches)."""
    if device.type != "cuda":
        return 1
    return 2 if height * width > 2560 * 1440 else 8


def free_memory_mb(device: torch.device) -> int | None:
    """Free memory of a CUDA device in MB (None on a CPU)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free // 2 ** 20)
