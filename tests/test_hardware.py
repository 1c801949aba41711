"""Device and precision choices (stpr.hardware), on CPU-only machines."""

from __future__ import annotations

import warnings

import pytest
import torch

from stpr import hardware
from stpr.errors import UsageError
from stpr.hardware import (autocast, cast_convolutions, cpuinfo_has_bf16, default_batch, has_native_bf16, resolve_device,
                           resolve_precision)

CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f {}\nbugs\t\t: none\n"


def test_cpuinfo_flags():
    assert cpuinfo_has_bf16(CPUINFO.format("avx512_bf16 avx512_vnni"))
    assert cpuinfo_has_bf16(CPUINFO.format("amx_bf16 amx_tile"))
    assert not cpuinfo_has_bf16(CPUINFO.format("avx512_vnni"))
    assert not cpuinfo_has_bf16("no flags here")


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "gpu", ""])
def test_resolve_device_rejects_unknown(bad):
    if bad == "":  # empty means auto
        assert resolve_device(bad).type in ("cpu", "cuda")
        return
    with pytest.raises(UsageError, match="--device"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_usage_error():
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_the_instruction_set(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: has_bf16)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # asked for: honoured, even if slow
    # ... with a warning where it would be emulated
    assert [str(w.message) for w in caught if "no native bfloat16" in str(w.message)] == ([] if has_bf16 else [
        "--precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so PyTorch emulates it, far "
        "slower than fp32 (auto picks fp32 here)"])


def test_auto_precision_on_gpu(monkeypatch):
    """bf16 where the GPU multiplies it natively (Ampere and newer), fp16 on a T4 or V100, where
    ``torch.cuda.is_bf16_supported()`` still says True (it counts emulation)."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for capability, auto in (((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"), ((7, 0), "fp16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert resolve_precision("auto", torch.device("cuda")) == auto
        assert has_native_bf16(torch.device("cuda")) is (auto == "bf16")
        assert resolve_precision("fp16", torch.device("cuda")) == "fp16"
    monkeypatch.setattr(torch.version, "hip", "6.2")  # AMD GPUs under ROCm: bf16
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"


def test_bad_precisions():
    with pytest.raises(UsageError, match="fp16 is for GPUs"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(UsageError, match="--precision must be one of"):
        resolve_precision("int8", torch.device("cpu"))


def test_default_batch():
    assert default_batch(torch.device("cpu"), 2160, 3840) == 1
    assert default_batch(torch.device("cuda"), 1080, 1920) == 8
    assert default_batch(torch.device("cuda"), 2160, 3840) == 2


def test_autocast_runs_convolutions_in_the_precision():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with autocast(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16


def test_cast_convolutions_matches_autocast_and_leaves_the_model_alone():
    from stpr.models import STPR, STPRConfig
    torch.manual_seed(0)
    model = STPR(STPRConfig(channels=8, flow_channels=(4, 6, 8, 8), flow_hidden=8, prrd_growth=4)).eval()
    for p in model.parameters():  # the zero-initialised last layers too, so every path counts
        p.data.add_(0.05 * torch.randn_like(p))
    cpu = torch.device("cpu")
    assert cast_convolutions(model, "fp32", cpu) is model
    net = cast_convolutions(model, "bf16", cpu)
    assert net is not model
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the caller's model is untouched
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert net.reconstruction.global_gain[0].weight.dtype == torch.float32  # small heads stay float32
    x = torch.rand(1, 3, 3, 32, 48) * 0.2
    with torch.no_grad(), autocast(cpu, "bf16"):
        ref, out = model(x).float(), net(x).float()
    # the same rounded weights; only the summation order differs (channels-last)
    assert (out - ref).abs().max() < 2e-2 and (out - ref).abs().mean() < 1e-3
