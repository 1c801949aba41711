"""Multi-process training support: torchrun environment, process group, small collectives.

``stpr train`` (and ``python -m stpr.train``) run distributed when started by ``torchrun``, which
sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process. Without those
variables (or with WORLD_SIZE=1) everything here degrades to no-ops and training is the plain
single-process loop.

Backend: NCCL when the process trains on a GPU (one GPU per process: ``cuda:LOCAL_RANK``), Gloo on
CPU. Collectives other than DDP's gradient all-reduce are tiny (a few floats per step, one pickled
payload at start-up), so they are not tuned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from stpr.errors import UsageError

# Rank 0 validates and writes checkpoints while the other ranks wait at a barrier; a long validation
# must not trip the collective timeout (Gloo's and NCCL's default is 10-30 min).
DEFAULT_TIMEOUT_MIN = 120


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the number of processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def enabled(self) -> bool:
        """True when there is more than one process (collectives are needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not an integer") from None


def env_world() -> tuple[int, int, int]:
    """(world_size, rank, local_rank) from the torchrun environment; (1, 0, 0) when absent."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UsageError(f"inconsistent torchrun environment: WORLD_SIZE={world} RANK={rank} LOCAL_RANK={local}")
    return world, rank, local


def pick_device(preference: str, local_rank: int) -> torch.device:
    """``auto``: this process's GPU (cuda:LOCAL_RANK) when CUDA is available, else CPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise UsageError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("device=cuda but CUDA is not available")
    n = torch.cuda.device_count()
    if local_rank >= n:
        raise UsageError(f"LOCAL_RANK={local_rank} but this machine has {n} GPU(s): start at most {n} "
                         f"processes per node (torchrun --nproc-per-node={n})")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def setup(device: str = "auto") -> DistContext:
    """Join the process group if torchrun started us (or reuse one the caller initialised)."""
    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        local = _env_int("LOCAL_RANK", rank)
        dev = pick_device(device, local)
        return DistContext(rank, world, local, dev, dist.get_backend(), owns_group=False)
    world, rank, local = env_world()
    dev = pick_device(device, local)
    if world == 1:
        return DistContext(0, 1, local, dev)
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed support")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = timedelta(minutes=_env_int("STPR_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MIN))
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timeout}
    if dev.type == "cuda":
        kwargs["device_id"] = dev  # binds NCCL to this GPU (and lets barrier() know which one)
    try:
        dist.init_process_group(**kwargs)
    except TypeError:  # older torch without device_id
        kwargs.pop("device_id", None)
        dist.init_process_group(**kwargs)
    return DistContext(rank, world, local, dev, backend, owns_group=True)


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(obj: Any, ctx: DistContext, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled; tensors inside should be on CPU)."""
    if not ctx.enabled:
        return obj
    box = [obj if ctx.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``t`` over ranks (a new tensor; ``t`` is left untouched)."""
    out = t.detach().clone()
    if ctx.enabled:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def mean_over_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average a dict of floats over ranks (same keys on every rank, as for per-step loss parts)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= ctx.world_size
    return dict(zip(keys, t.cpu().tolist()))


def shard(batch: int, rank: int, world: int) -> tuple[int, int]:
    """(offset, count) of rank's contiguous share of a global batch of ``batch`` samples.

    Shares differ by at most one sample (the first ``batch % world`` ranks take one more).
    """
    if batch < world:
        raise UsageError(f"global batch {batch} is smaller than the number of processes {world}: "
                         f"every process needs at least one sample (raise batch or use fewer processes)")
    base, extra = divmod(batch, world)
    count = base + (1 if rank < extra else 0)
    offset = rank * base + min(rank, extra)
    return offset, count
