"""Distributed training (stpr.train under torchrun): two Gloo processes on CPU take the same steps as one
process on the same global batch, the ranks stay identical, and a distributed run resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stpr import distributed as D
from stpr.train import TrainConfig, _StepSampler, train

from helpers import TINY, assert_close, read_log

# Runs stpr.train exactly as `python -m stpr.train ARGS` does, and afterwards dumps this rank's own
# copy of the weights (non-zero ranks save nothing), so the test can compare ranks.
WORKER = textwrap.dedent("""
    import os, runpy, sys
    from safetensors.torch import save_file
    import stpr.train as T

    made = []
    _STPR = T.STPR

    def capture(cfg):
        made.append(_STPR(cfg))
        return made[-1]

    T.STPR = capture
    code = 0
    try:
        runpy.run_module("stpr.train", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code or 0
    if made:
        state = {k: v.detach().contiguous().cpu() for k, v in made[-1].state_dict().items()}
        save_file(state, os.path.join(os.environ["DUMP_DIR"], "rank%s.safetensors" % os.environ["RANK"]))
    sys.exit(code)
""")


def cfg_dict(out: Path, lol_root: Path, steps: int) -> dict:
    # batch 3 over 2 ranks: unequal shares (2 + 1), the hardest case for the loss scaling. During the
    # warm-up (3 steps) the learning rate does not depend on the total steps, so 2 steps + resume to 3
    # takes the same steps as 3 uninterrupted ones.
    # No pixel fusion: its blend adds paths where parameters get (near-)zero gradients, e.g. the
    # confidence net's output bias, which a softmax ignores; Adam turns the summation-order noise of
    # such gradients into updates of up to the learning rate, so one process and two ranks drift
    # apart by ~1e-3 in a few weights within 3 steps (measured), hiding what this test checks. The
    # DDP code path does not depend on the architecture.
    return dict(out_dir=str(out), lol_root=str(lol_root), lol_val=1, crop=32, batch=3, steps=steps, warmup=3,
                val_every=2, ckpt_every=1, log_every=1, workers=0, threads=1, device="cpu",
                model={**TINY, "pixel_fusion": False})


def torchrun(tmp_path: Path, cfg_path: Path, dump: Path, *extra: str) -> subprocess.CompletedProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    dump.mkdir(exist_ok=True)
    env = {**os.environ, "DUMP_DIR": str(dump), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
           "--config", str(cfg_path), "--quiet", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def test_shards_cover_the_global_batch():
    for batch, world in [(8, 2), (3, 2), (7, 3), (4, 4)]:
        got = []
        for r in range(world):
            idx = list(_StepSampler(5, 7, batch, r, world))
            assert len(idx) == 2
            got.append(idx)
        for k in range(2):
            union = sorted(i for r in range(world) for i in got[r][k])
            assert union == list(range((5 + k) * batch, (6 + k) * batch))
            sizes = [len(got[r][k]) for r in range(world)]
            assert max(sizes) - min(sizes) <= 1
    assert list(_StepSampler(0, 2, 3)) == [[0, 1, 2], [3, 4, 5]]  # one process: unchanged
    with pytest.raises(Exception):
        D.shard(1, 0, 2)


def test_no_torchrun_env_is_single_process(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    ctx = D.setup("cpu")
    assert not ctx.enabled and ctx.is_main and ctx.backend is None and ctx.device.type == "cpu"


def test_two_gloo_ranks_match_one_process_and_resume(tmp_path, lol_root):
    torch.set_num_threads(1)
    # reference: one process, 3 steps on the same global batches
    single = tmp_path / "single"
    train(TrainConfig(**cfg_dict(single, lol_root, 3)), quiet=True)

    # two processes: 2 steps, then --resume to 3 (all ranks restart from rank 0's checkpoint)
    run = tmp_path / "ddp"
    cfg_path = tmp_path / "ddp.json"
    cfg_path.write_text(json.dumps(cfg_dict(run, lol_root, 2)))
    dump2, dump3 = tmp_path / "dump2", tmp_path / "dump3"
    res = torchrun(tmp_path, cfg_path, dump2)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r0, r1 = load_file(str(dump2 / "rank0.safetensors")), load_file(str(dump2 / "rank1.safetensors"))
    assert_close(r0, r1, atol=0)  # DDP keeps the replicas bit-identical
    assert_close(load_file(str(run / "last.safetensors")), r0, atol=0)  # rank 0 saved its weights
    assert [r["step"] for r in read_log(run)] == ["1", "2"]  # one log row per step (rank 0 only)
    assert read_log(run)[-1]["val_lol_psnr"]

    res = torchrun(tmp_path, cfg_path, dump3, "--resume", "--set", "steps=3")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r0, r1 = load_file(str(dump3 / "rank0.safetensors")), load_file(str(dump3 / "rank1.safetensors"))
    assert_close(r0, r1, atol=0)
    assert_close(load_file(str(run / "last.safetensors")), r0, atol=0)
    assert torch.load(run / "last_state.pt", weights_only=False)["step"] == 3

    # same update as one process on the same global batch (only the summation order differs)
    ref = load_file(str(single / "last.safetensors"))
    assert_close(ref, r0, atol=1e-4)
    moved = max((ref[k] - v).abs().max().item() for k, v in load_file(str(dump2 / "rank0.safetensors")).items())
    assert moved > 1e-4  # step 3 changed the weights: the comparison above is not vacuous
    ls, ld = read_log(single), read_log(run)
    assert [r["step"] for r in ld] == ["1", "2", "3"]
    for a, b in zip(ls, ld):
        for col in ("loss", "rec", "ssim", "temporal", "flow"):
            assert float(a[col]) == pytest.approx(float(b[col]), abs=2e-5), (a["step"], col)
