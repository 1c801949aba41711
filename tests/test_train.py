"""The training loop (stpr.train) on a tiny generated LOL-style folder: outputs, resume, determinism,
config overrides and the ``stpr train`` command."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import stpr.train as train_mod
from stpr.checkpoint import load_model, read_metadata
from stpr.cli import main
from stpr.data.datasets import LOLClips
from stpr.errors import InputError, ModelError, UsageError
from stpr.models.stpr_arch import STPR, STPRConfig
from stpr.train import TrainConfig, load_config, lr_at, train

from helpers import TINY, assert_close, make_lol, read_log, texture, tiny_model, write_rgb
from media import write_test_video

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(out: Path, lol_root: Path, steps: int, **kw) -> TrainConfig:
    base = dict(out_dir=str(out), lol_root=str(lol_root), lol_val=1, crop=32, batch=2, steps=steps,
                val_every=2, ckpt_every=1, log_every=1, workers=0, model=dict(TINY))
    return TrainConfig(**{**base, **kw})


def weights(run: Path) -> dict:
    return load_file(str(run / "last.safetensors"))


def assert_same_weights(a: dict, b: dict):
    assert_close(a, b, atol=1e-7)


def train_killed_at_step(cfg: TrainConfig, step: int) -> None:
    """Run ``cfg`` and interrupt it (KeyboardInterrupt) as training step ``step`` starts."""
    orig = train_mod.train_step
    calls = []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return orig(*a, **k)

    train_mod.train_step = dies
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, quiet=True)
    finally:
        train_mod.train_step = orig


# ------------------------------------------------------------------------------------- train / resume


def test_two_steps_then_resume(tmp_path, lol_root):
    run = tmp_path / "run"
    assert train(tiny_cfg(run, lol_root, 2), quiet=True) == run
    for name in ("last.safetensors", "last_state.pt", "config.json", "log.csv", "best.safetensors"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "config.json").read_text())
    assert saved["steps"] == 2 and saved["model"]["channels"] == 8 and saved["lol_val"] == 1
    rows = read_log(run)
    assert [r["step"] for r in rows] == ["1", "2"]
    assert rows[-1]["val_lol_psnr"] and float(rows[-1]["val_lol_psnr"]) > 5
    assert 0 < float(rows[-1]["val_lol_ssim"]) <= 1
    assert not rows[0]["val_lol_psnr"]  # no validation at step 1
    # the last checkpoint was validated: it carries the figures, as best.safetensors does
    meta = read_metadata(run / "last.safetensors")
    assert json.loads(meta["step"]) == 2
    assert json.loads(meta["val_lol_psnr"]) == pytest.approx(float(rows[-1]["val_lol_psnr"]), abs=1e-4)
    assert all(float(r["loss"]) > 0 for r in rows)
    state = torch.load(run / "last_state.pt", weights_only=False)
    assert state["step"] == 2
    assert json.loads(read_metadata(run / "last.safetensors")["step"]) == 2
    model = load_model(run / "last.safetensors")
    assert model.cfg.channels == 8 and model.cfg.frames == 3
    # training changed the weights
    torch.manual_seed(0)
    init = train_mod.STPR(train_mod.STPRConfig.from_dict(dict(TINY))).state_dict()
    w2 = weights(run)
    assert any(not torch.equal(init[k], w2[k]) for k in w2)

    # a second fresh run into the same folder is refused
    with pytest.raises(UsageError):
        train(tiny_cfg(run, lol_root, 2), quiet=True)

    # resume to 4 steps: continues from step 2
    calls = []
    orig = train_mod.train_step

    def counting(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    train_mod.train_step = counting
    try:
        train(tiny_cfg(run, lol_root, 4), resume=True, quiet=True)
    finally:
        train_mod.train_step = orig
    assert len(calls) == 2
    rows = read_log(run)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[-1]["val_lol_psnr"]
    assert torch.load(run / "last_state.pt", weights_only=False)["step"] == 4
    assert json.loads((run / "config.json").read_text())["steps"] == 4
    assert any(not torch.equal(w2[k], v) for k, v in weights(run).items())


def test_resume_without_checkpoint_is_a_usage_error(tmp_path, lol_root):
    with pytest.raises(UsageError):
        train(tiny_cfg(tmp_path / "empty", lol_root, 2), resume=True, quiet=True)


def test_no_data_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        train(TrainConfig(out_dir=str(tmp_path / "r"), steps=1, workers=0, model=dict(TINY)), quiet=True)
    assert not (tmp_path / "r").exists()  # a run that never started leaves nothing behind


def test_failed_start_keeps_what_was_there(tmp_path, lol_root):
    """A failed start in an existing folder removes only the config.json it wrote itself."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    bad = tiny_cfg(out, lol_root, 1, init=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError):
        train(bad, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "config.json").write_text('{"mine": 1}')
    with pytest.raises(ModelError):
        train(bad, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
    assert (out / "config.json").read_text() == '{"mine": 1}'


def test_resume_is_deterministic(tmp_path, lol_root):
    """4 uninterrupted steps == 2 steps + resume to 4 (during warm-up the learning rate does not
    depend on the total number of steps)."""
    full, split = tmp_path / "full", tmp_path / "split"
    train(tiny_cfg(full, lol_root, 4), quiet=True)
    train(tiny_cfg(split, lol_root, 2), quiet=True)
    train(tiny_cfg(split, lol_root, 4), resume=True, quiet=True)
    assert_same_weights(weights(full), weights(split))
    lf, ls = read_log(full), read_log(split)
    assert [r["loss"] for r in lf] == [r["loss"] for r in ls]
    assert lf[-1]["val_lol_psnr"] == ls[-1]["val_lol_psnr"]


def test_interrupted_run_resumes_deterministically(tmp_path, lol_root):
    """A run with a cosine schedule from step 0 that dies after its step-2 checkpoint and is resumed
    ends with the same weights as the uninterrupted run."""
    full, crash = tmp_path / "full", tmp_path / "crash"
    train(tiny_cfg(full, lol_root, 4, warmup=0), quiet=True)
    train_killed_at_step(tiny_cfg(crash, lol_root, 4, warmup=0), 3)
    assert torch.load(crash / "last_state.pt", weights_only=False)["step"] == 2
    train(tiny_cfg(crash, lol_root, 4, warmup=0), resume=True, quiet=True)
    assert_same_weights(weights(full), weights(crash))
    assert [r["step"] for r in read_log(crash)] == ["1", "2", "3", "4"]
    # killed mid-run and resumed: the same losses, step for step
    assert [r["loss"] for r in read_log(crash)] == [r["loss"] for r in read_log(full)]


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup=10, steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert lr_at(110, cfg) == pytest.approx(1e-5)
    assert lr_at(500, cfg) == pytest.approx(1e-5)
    # a time budget: the decay follows whichever of time and steps is further along
    assert lr_at(20, cfg, time_frac=0.5) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert lr_at(60, cfg, time_frac=0.1) == pytest.approx(lr_at(60, cfg))
    assert lr_at(20, cfg, time_frac=1.0) == pytest.approx(1e-5)
    lrs = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


# ------------------------------------------------------------------------------------- config


def test_load_config_overrides(tmp_path):
    cfg = load_config(None, ["steps=5", "model.channels=8", "lr=0.01", "weights=[1, 0, 0]",
                             "model.hf_split=false", "model.flow_channels=[4, 4, 4, 4]", "out_dir=x/y"])
    assert cfg.steps == 5 and isinstance(cfg.steps, int)
    assert cfg.model["channels"] == 8 and isinstance(cfg.model["channels"], int)
    assert cfg.lr == 0.01 and cfg.weights == [1, 0, 0] and cfg.out_dir == "x/y"
    assert cfg.model["hf_split"] is False and cfg.model["flow_channels"] == [4, 4, 4, 4]
    assert TrainConfig().steps == 20000 and TrainConfig().model == {}  # defaults untouched

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": 7, "crop": 64, "model": {"channels": 12}}))
    cfg = load_config(str(path), ["model.frames=5", "batch=3"])
    assert cfg.steps == 7 and cfg.crop == 64 and cfg.batch == 3
    assert cfg.model == {"channels": 12, "frames": 5}
    cfg = load_config(str(path), ["steps=9"])  # overrides win over the file
    assert cfg.steps == 9


@pytest.mark.parametrize("overrides", [["no_such_key=1"], ["model.no_such_key=1"], ["steps"], ["model.hf_split=maybe"],
                                       ["hf_split=true"]])
def test_load_config_rejects_bad_overrides(overrides):
    with pytest.raises(UsageError):
        load_config(None, overrides)


@pytest.mark.parametrize("overrides", [["video_exposure_range=[0.3, 0.01]"], ["video_exposure_range=[0, 0.3]"],
                                       ["video_exposure_range=[0.1]"], ["video_h264_prob=1.5"],
                                       ["video_noise_scale=-1"], ["clip_frames=1"], ["clip_frames=-3"],
                                       ["lol_max_shift=-1"], ["lol_siblings=-1"],
                                       ["lol_tone_free=true", 'model.looks=["natural", "lol"]'],
                                       ['model.looks=["one"]'], ["lol_natural=0.5"],
                                       ["lol_natural=1.5", 'model.looks=["natural", "lol"]'],
                                       ["motion_blur_prob=2"], ["motion_blur_max=0"],
                                       ["camera_share=1.5"], ["camera_share=-0.1"], ["w_lowpass=1", "crop=4"]])
def test_bad_synthesis_settings_are_usage_errors(overrides):
    with pytest.raises(UsageError):
        load_config(None, overrides)


@pytest.mark.parametrize("overrides", [["steps=0"], ["val_every=0"], ["ckpt_every=0"], ["log_every=0"],
                                       ["crop=11"], ["workers=-1"], ["threads=-1"], ["warmup=-1"], ["lol_val=-1"],
                                       ["lr=0"], ["min_lr=-1"], ["seed=-1"],
                                       ["seed=4294967296"], ["video_scale=0"], ["val_video_frames=-1"]])
def test_settings_no_run_can_use_are_usage_errors(overrides):
    """Each of these crashed (ZeroDivisionError, a kernel larger than the crop, ...) after the
    minutes it takes to load the data, or trained nothing."""
    with pytest.raises(UsageError):
        load_config(None, overrides)


def test_train_checks_a_config_built_in_python(tmp_path, lol_root):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="val_every"):
        train(tiny_cfg(out, lol_root, steps=2, val_every=0), quiet=True)
    assert not out.exists()


@pytest.mark.parametrize("kw, match", [(dict(lol_val=3), "no training pairs"), (dict(lol_siblings=2), "lol_siblings")])
def test_lol_splits_that_leave_nothing_are_usage_errors(tmp_path, lol_root, kw, match):
    """The three pairs of ``lol_root``: all of them held out, or siblings of scenes shot once."""
    out = tmp_path / "run"
    with pytest.raises(UsageError, match=match):
        train(tiny_cfg(out, lol_root, steps=2, **kw), quiet=True)
    assert not out.exists()


def test_training_data_that_cannot_make_clips_is_an_input_error(tmp_path):
    """Each of these crashed (StopIteration, ValueError, NaN sampling weights) or, for a crop larger
    than the images, ran out of memory."""
    root = make_lol(tmp_path / "lol", names=("1", "2", "3"))
    (root / "high" / "3.png").rename(root / "high" / "30.png")  # a held-out pair without its truth
    out = tmp_path / "run"
    with pytest.raises(InputError, match="no image called 3"):
        train(tiny_cfg(out, root, steps=1), quiet=True)
    (root / "high" / "30.png").rename(root / "high" / "3.png")
    with pytest.raises(InputError, match="smaller than the crop"):
        train(tiny_cfg(out, root, steps=1, crop=80), quiet=True)
    with pytest.raises(UsageError, match="all 0"):
        train(tiny_cfg(out, root, steps=1, weights=[0.0, 0.0, 0.0]), quiet=True)
    clip = tmp_path / "short.mp4"
    write_test_video(clip, np.stack([texture(48, 64, seed=k) for k in range(2)]), fps=25)
    with pytest.raises(InputError, match="no video has 4 frames"):
        train(tiny_cfg(out, "", steps=1, videos=[str(clip)], weights=[0.0, 1.0, 0.0]), quiet=True)
    assert not out.exists()


def test_synthesis_settings_reach_the_video_dataset(tmp_path):
    """video_exposure_range / video_h264_prob / video_noise_scale configure SyntheticVideoClips."""
    from stpr.data.datasets import SyntheticVideoClips
    from stpr.train import build_datasets

    video = tmp_path / "v.mp4"
    write_test_video(video, np.stack([texture(64, 64, seed=k) for k in range(6)]), fps=25)
    cfg = load_config(None, [f"videos=[\"{video}\"]", "crop=48", "video_exposure_range=[0.002, 0.05]",
                             "video_h264_prob=0.5", "video_noise_scale=0.5", "motion_blur_prob=0.25",
                             "motion_blur_max=6", "degradation=mixed", "camera_share=0.25"])
    data, _ = build_datasets(cfg, 2)
    ds = [d for d in data.datasets if isinstance(d, SyntheticVideoClips)][0]
    assert ds.exposure_range == (0.002, 0.05) and ds.h264_prob == 0.5 and ds.noise_scale == 0.5
    assert (ds.blur_prob, ds.blur_max) == (0.25, 6.0)
    assert (ds.degradation, ds.camera_share) == ("mixed", 0.25)


def test_lol_max_shift_reaches_the_lol_clips(lol_root):
    from stpr.data.datasets import LOLClips
    from stpr.train import build_datasets

    cfg = load_config(None, [f"lol_root={lol_root}", "lol_val=1", "crop=32", "lol_max_shift=11.5"])
    data, _ = build_datasets(cfg, 2)
    assert [d.max_shift for d in data.datasets if isinstance(d, LOLClips)] == [11.5]


def test_worker_processes_train_like_in_process_loading(tmp_path, lol_root):
    """DataLoader workers (started by a forkserver, see ``train._worker_context``) after the parent
    has decoded video with FFmpeg, on clips that all take an H.264 round trip: the run finishes,
    its logged losses are those of a run that loads in-process (sample i is a pure function of i),
    and the number of workers does not change the weights. (In-process batches live in ordinary
    memory, workers' in shared memory: the weights then differ by float rounding, which Adam's
    first steps amplify, so only the worker runs are compared bit for bit.)"""
    video = tmp_path / "v.mp4"
    write_test_video(video, np.stack([texture(64, 64, seed=k) for k in range(6)]), fps=25)
    kw = dict(videos=[str(video)], weights=[0.5, 0.5, 0.0], video_h264_prob=1.0, val_every=100, warmup=1)
    runs = [train(tiny_cfg(tmp_path / f"w{n}", lol_root, 2, workers=n, **kw), quiet=True) for n in (0, 1, 2)]
    losses = [[(r["step"], r["loss"], r["rec"], r["flow"]) for r in read_log(run)] for run in runs]
    assert losses[0] == losses[1] == losses[2] and len(losses[0]) == 2
    assert_same_weights(weights(runs[1]), weights(runs[2]))


def test_amp_trains_close_to_float32(tmp_path, lol_root, monkeypatch):
    """bfloat16 autocast of the forward pass (``amp``): losses stay float32 and finite, and the
    first step's loss (same batch, same initial weights) is within bfloat16 rounding of float32's.
    (Run as on a CPU with native bfloat16, whatever this one has: at TINY's width emulation is cheap.)"""
    monkeypatch.setattr(train_mod, "has_native_bf16", lambda device: True)
    runs = [train(tiny_cfg(tmp_path / f"amp{a}", lol_root, 2, amp=a, val_every=100), quiet=True) for a in (False, True)]
    fp32, bf16 = (read_log(r)[0] for r in runs)
    assert math.isfinite(float(bf16["loss"]))
    assert float(bf16["loss"]) == pytest.approx(float(fp32["loss"]), rel=0.02)
    wa, wb = (weights(r) for r in runs)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)  # autocast did change the arithmetic


def test_amp_on_a_cpu_without_native_bf16_trains_in_float32(tmp_path, lol_root, monkeypatch, capsys):
    """Where bfloat16 would be emulated (no AVX512-BF16 or AMX), ``amp`` is ignored with a one-line
    warning: the run is the float32 run bit for bit, and its saved config still says amp."""
    monkeypatch.setattr(train_mod, "has_native_bf16", lambda device: False)
    fp32 = train(tiny_cfg(tmp_path / "fp32", lol_root, 2, amp=False, val_every=100), quiet=True)
    capsys.readouterr()
    asked = train(tiny_cfg(tmp_path / "amp", lol_root, 2, amp=True, val_every=100))
    assert "no native bfloat16" in capsys.readouterr().err
    assert_close(weights(fp32), weights(asked), atol=0)
    assert json.loads((asked / "config.json").read_text())["amp"] is True


@pytest.mark.parametrize("overrides", [["steps=abc"], ["lr=fast"], ["weights=[1,"]])
def test_badly_typed_override_is_a_usage_error(overrides):
    with pytest.raises(UsageError):
        load_config(None, overrides)


def test_invalid_model_config_is_a_usage_error(tmp_path, lol_root):
    rc = main(["train", "--set", f"out_dir={tmp_path / 'r'}", "--set", f"lol_root={lol_root}", "--set", "workers=0",
               "--set", "model.frames=2", "--quiet"])
    assert rc == UsageError.exit_code


def test_load_config_unknown_keys_are_usage_errors(tmp_path):
    with pytest.raises(UsageError):
        load_config(None, ["no_such_key=1"])
    with pytest.raises(UsageError):
        load_config(None, ["model.no_such_key=1"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(UsageError):
        load_config(str(bad), [])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(UsageError):
        load_config(str(broken), [])
    with pytest.raises(UsageError):
        load_config(str(tmp_path / "missing.json"), [])


def test_cli_train(tmp_path, lol_root, capsys):
    cfg = tmp_path / "cfg.json"
    out = tmp_path / "cli_run"
    cfg.write_text(json.dumps({"out_dir": str(out), "lol_root": str(lol_root), "lol_val": 1, "crop": 32,
                               "batch": 2, "workers": 0, "val_every": 2, "model": dict(TINY)}))
    rc = main(["train", "--config", str(cfg), "--set", "steps=2", "--set", "model.prrd_recursions=1", "--quiet"])
    assert rc == 0
    assert (out / "last.safetensors").is_file()
    assert load_model(out / "last.safetensors").cfg.prrd_recursions == 1
    assert json.loads((out / "config.json").read_text())["steps"] == 2
    assert str(out) in capsys.readouterr().out
    # resume through the CLI
    assert main(["train", "--config", str(cfg), "--set", "steps=3", "--resume", "--quiet"]) == 0
    assert [r["step"] for r in read_log(out)][-1] == "3"
    # errors map to exit codes
    assert main(["train", "--config", str(cfg), "--set", "bogus=1", "--quiet"]) == UsageError.exit_code
    assert main(["train", "--config", str(cfg), "--set", "steps=3", "--quiet"]) == UsageError.exit_code  # run exists


def test_init_from_a_model_with_one_part_more_or_less(tmp_path, lol_root):
    """A run may start from weights of a model without a newer part (pixel fusion) and an ablation
    from weights with a part it removes: shared tensors are copied, the rest start fresh."""
    plain = tiny_cfg(tmp_path / "plain", lol_root, 1, model={**TINY, "pixel_fusion": False})
    train(plain, quiet=True)
    src = weights(tmp_path / "plain")
    fused = tiny_cfg(tmp_path / "fused", lol_root, 1, init=str(tmp_path / "plain" / "last.safetensors"),
                     model={**TINY, "pixel_fusion": True}, lr=1e-12)
    train(fused, quiet=True)
    got = weights(tmp_path / "fused")
    assert any(k.startswith("reconstruction.blend") for k in got)
    shared = [k for k in src if k in got]
    assert len(shared) == len(src)
    assert_close({k: got[k] for k in shared}, src, atol=1e-6)  # lr ~ 0: still the init's values
    back = tiny_cfg(tmp_path / "back", lol_root, 1, init=str(tmp_path / "fused" / "last.safetensors"),
                    model={**TINY, "pixel_fusion": False})
    train(back, quiet=True)
    assert not any(k.startswith("reconstruction.blend") for k in weights(tmp_path / "back"))


def test_resume_drops_log_rows_after_the_checkpoint(tmp_path, lol_root):
    """Steps logged after the last checkpoint are trained again on resume: the log keeps each step
    once, and its time column goes on from where it stopped."""
    run = tmp_path / "run"
    train_killed_at_step(tiny_cfg(run, lol_root, 4, ckpt_every=2, val_every=100), 4)
    assert [r["step"] for r in read_log(run)] == ["1", "2", "3"]  # step 3 logged, not checkpointed
    before = float(read_log(run)[1]["time"])
    train(tiny_cfg(run, lol_root, 4, ckpt_every=2, val_every=100), resume=True, quiet=True)
    rows = read_log(run)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times) and times[2] >= before


def test_clip_frames_sets_the_clip_length_and_the_two_middle_frames_are_enhanced(tmp_path, lol_root, monkeypatch):
    seen = []
    orig = train_mod.train_step

    def spy(model, batch, cfg, *a, **kw):
        seen.append(batch["low"].shape[1])
        inner = model.forward_clip

        def record(clip, centers, stats=None):
            seen.append(list(centers))
            return inner(clip, centers, stats)

        model.forward_clip = record
        try:
            return orig(model, batch, cfg, *a, **kw)
        finally:
            del model.forward_clip

    monkeypatch.setattr(train_mod, "train_step", spy)
    run = train(tiny_cfg(tmp_path / "clip6", lol_root, 1, clip_frames=6, val_every=100, model=TINY), quiet=True)
    assert seen[:2] == [6, [2, 3]]
    rows = read_log(run)
    assert len(rows) == 1 and math.isfinite(float(rows[0]["loss"]))


# ------------------------------------------------------------------------------- retired options


def test_config_drops_retired_options_at_their_off_values(tmp_path):
    """Configs written before the options were retired name them switched off: they load, without them."""
    off = {"linear_light": False, "refine_channels": 0, "recurrent": False, "recurrent_cap": 8.0,
           "feature_recurrent": False, "temporal_residual": False, "temporal_hidden": 0, "flow_corr_radius": 0}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"steps": 3, "train_only": "", "model": {"channels": 8, **off}}))
    cfg = load_config(str(path), ["model.recurrent=false", "model.flow_corr_radius=0"])
    assert cfg.model == {"channels": 8} and cfg.train_only == "" and cfg.steps == 3


@pytest.mark.parametrize("data, overrides, name", [
    ({"model": {"recurrent": True}}, [], "model.recurrent"),
    ({"model": {"refine_channels": 12}}, [], "model.refine_channels"),
    ({}, ["model.linear_light=true"], "model.linear_light"),
    ({}, ["model.temporal_residual=true"], "model.temporal_residual"),
    ({}, ["model.flow_corr_radius=2"], "model.flow_corr_radius"),
    ({"train_only": "temporal"}, [], "train_only"),
    ({}, ["train_only=temporal"], "train_only"),
])
def test_config_refuses_a_retired_option_turned_on(tmp_path, data, overrides, name):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=f"{name} = .*retired.*50d3f5c") as e:
        load_config(str(path), overrides)
    assert "\n" not in str(e.value)


def test_lol_tone_free_scores_lol_pairs_after_a_gain_and_offset():
    """``lol_tone_free``: a LOL ground truth that differs from the output only by a gain and offset
    per channel (LOL's tone) costs nothing in the reconstruction, SSIM, tone and colour terms; the
    same truth on a non-LOL clip still costs, and the flag changes nothing for non-LOL clips."""
    torch.manual_seed(0)
    model = STPR(STPRConfig(**TINY))
    g = torch.Generator().manual_seed(0)
    n = 4
    low = torch.rand(2, n, 3, 32, 32, generator=g) * 0.2
    with torch.no_grad():
        outs, _ = model.forward_clip(low, [n // 2 - 1, n // 2])
    high = torch.rand(2, n, 3, 32, 32, generator=g)
    for o, c in zip(outs, [n // 2 - 1, n // 2]):
        high[:, c] = 0.4 * o + torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)  # hazier, less saturated
    batch = {"low": low, "high": high, "flow_fw": torch.zeros(2, n - 1, 2, 8, 8),
             "flow_bw": torch.zeros(2, n - 1, 2, 8, 8), "flow_valid": torch.ones(2, n - 1, 1, 8, 8)}
    kw = dict(w_tone=1.0, w_colour=1.0, w_edge=0.5)
    tone_free = TrainConfig(lol_tone_free=True, **kw)
    _, lol = train_mod.train_step(model, {**batch, "lol": torch.ones(2)}, tone_free)
    _, other = train_mod.train_step(model, {**batch, "lol": torch.zeros(2)}, tone_free)
    _, off = train_mod.train_step(model, {**batch, "lol": torch.zeros(2)}, TrainConfig(**kw))
    assert lol["rec"] < 2e-3 and lol["ssim"] < 1e-3 and lol["tone"] == lol["colour"] == 0
    assert other["rec"] > 0.05 and other["tone"] > 0.05
    assert other == off
    mixed, parts = train_mod.train_step(model, {**batch, "lol": torch.tensor([1.0, 0.0])}, tone_free)
    mixed.backward()  # the fitted rows and the others train together
    assert lol["rec"] < parts["rec"] < other["rec"]


def test_lowpass_term_scores_the_synthetic_clips_only():
    """``w_lowpass``: the coarse-tone term is logged, zero on a batch of LOL pairs, the same on
    synthetic clips whatever their truth's fine detail, and on a mixed batch the synthetic row's
    term weighted by its share of the batch."""
    torch.manual_seed(0)
    model = STPR(STPRConfig(**TINY))
    g = torch.Generator().manual_seed(0)
    n = 4
    low = torch.rand(2, n, 3, 32, 32, generator=g) * 0.2
    high = torch.rand(2, n, 3, 32, 32, generator=g)
    batch = {"low": low, "high": high, "flow_fw": torch.zeros(2, n - 1, 2, 8, 8),
             "flow_bw": torch.zeros(2, n - 1, 2, 8, 8), "flow_valid": torch.ones(2, n - 1, 1, 8, 8)}
    cfg = TrainConfig(w_lowpass=1.0)
    _, lol = train_mod.train_step(model, {**batch, "lol": torch.ones(2)}, cfg)
    _, synth = train_mod.train_step(model, {**batch, "lol": torch.zeros(2)}, cfg)
    assert lol["lowpass"] == 0 and synth["lowpass"] > 0.05
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32)) % 2).float() * 0.02 - 0.01
    _, detail = train_mod.train_step(model, {**batch, "high": high + checker, "lol": torch.zeros(2)}, cfg)
    assert detail["lowpass"] == pytest.approx(synth["lowpass"], abs=1e-6)
    assert detail["rec"] != pytest.approx(synth["rec"], abs=1e-6)
    _, one = train_mod.train_step(model, {k: v[1:] for k, v in batch.items()} | {"lol": torch.zeros(1)}, cfg)
    loss, mixed = train_mod.train_step(model, {**batch, "lol": torch.tensor([1.0, 0.0])}, cfg)
    loss.backward()
    assert mixed["lowpass"] == pytest.approx(one["lowpass"] / 2, rel=1e-4)
    assert "lowpass" not in train_mod.train_step(model, {**batch, "lol": torch.zeros(2)}, TrainConfig())[1]


def _still_batch(seed: int, n: int = 4, dark: bool = False) -> dict:
    """Two random synthetic-video clips of ``n`` 32x32 frames (dark input, random truth) with zero,
    valid teacher flow: a batch for checking one loss term of ``train_step``. ``dark``: the truth
    to the 4th power, so an untrained output's blacks sit above it."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(2, n, 3, 32, 32, generator=g) * 0.2
    high = torch.rand(2, n, 3, 32, 32, generator=g)
    return {"low": low, "high": high ** 4 if dark else high,
            "flow_fw": torch.zeros(2, n - 1, 2, 8, 8), "flow_bw": torch.zeros(2, n - 1, 2, 8, 8),
            "flow_valid": torch.ones(2, n - 1, 1, 8, 8), "lol": torch.zeros(2)}


def test_coarse_temporal_term_is_logged_when_on():
    """``w_temporal_coarse``: the temporal term on block means is logged and back-propagates when on,
    absent when off."""
    torch.manual_seed(0)
    model = STPR(STPRConfig(**TINY))
    batch = _still_batch(1)
    loss, parts = train_mod.train_step(model, batch, TrainConfig(w_temporal_coarse=1.0))
    loss.backward()
    assert parts["temporal_coarse"] > 0
    assert "temporal_coarse" not in train_mod.train_step(model, batch, TrainConfig())[1]


@pytest.mark.parametrize("term", ["black", "chroma"])
def test_tone_row_terms_are_logged_and_skip_tone_free_rows(term):
    """``w_black`` (one-sided black level) and ``w_chroma`` (shadow colour): each is logged and
    back-propagates when on, absent when off, and zero on LOL pairs scored tone-free (they see the
    tone term's rows)."""
    torch.manual_seed(0)
    model = STPR(STPRConfig(**TINY))
    batch = _still_batch(2, dark=True)
    on = TrainConfig(**{f"w_{term}": 1.0})
    loss, parts = train_mod.train_step(model, batch, on)
    loss.backward()
    assert parts[term] > 0
    assert term not in train_mod.train_step(model, batch, TrainConfig())[1]
    _, free = train_mod.train_step(model, {**batch, "lol": torch.ones(2)}, replace(on, lol_tone_free=True))
    assert free[term] == 0


def test_black_term_along_colour_logs_the_same_figure():
    """``black_along_colour`` changes where the black-level term's gradient points, not its value."""
    torch.manual_seed(0)
    model = STPR(STPRConfig(**TINY))
    batch = _still_batch(2, dark=True)
    luma = train_mod.train_step(model, batch, TrainConfig(w_black=1.0))[1]["black"]
    along = train_mod.train_step(model, batch, TrainConfig(w_black=1.0, black_along_colour=1.0))[1]["black"]
    assert luma > 0 and along == pytest.approx(luma, rel=1e-4)


def test_teacher_term_pulls_the_synthetic_clips_towards_the_teacher():
    """``w_teacher``: zero when the teacher is the model itself, zero on a batch of LOL pairs, on a
    mixed batch the synthetic row's term weighted by its share; its gradient moves the output
    towards the teacher's (clamped) output, and the teacher gets none."""
    import copy

    torch.manual_seed(0)
    model = STPR(STPRConfig(**TINY))
    g = torch.Generator().manual_seed(0)
    n = 4
    low = torch.rand(2, n, 3, 32, 32, generator=g) * 0.2
    batch = {"low": low, "high": torch.rand(2, n, 3, 32, 32, generator=g), "flow_fw": torch.zeros(2, n - 1, 2, 8, 8),
             "flow_bw": torch.zeros(2, n - 1, 2, 8, 8), "flow_valid": torch.ones(2, n - 1, 1, 8, 8),
             "lol": torch.zeros(2)}
    cfg = TrainConfig(w_teacher=1.0, teacher="unused here")
    _, same = train_mod.train_step(model, batch, cfg, teacher=copy.deepcopy(model).eval())
    assert same["teacher"] == pytest.approx(1e-3, rel=1e-3)  # Charbonnier's floor: outputs equal
    teacher = STPR(STPRConfig(**TINY))
    with torch.no_grad():  # untrained, a model returns the input plainly brightened: this one twice as bright
        teacher.reconstruction.target_log += math.log(2.0)
    teacher.eval().requires_grad_(False)
    _, lol = train_mod.train_step(model, {**batch, "lol": torch.ones(2)}, cfg, teacher=teacher)
    assert lol["teacher"] == 0
    _, synth = train_mod.train_step(model, batch, cfg, teacher=teacher)
    assert synth["teacher"] > 0.05
    _, one = train_mod.train_step(model, {k: v[1:] for k, v in batch.items()}, cfg, teacher=teacher)
    _, mixed = train_mod.train_step(model, {**batch, "lol": torch.tensor([1.0, 0.0])}, cfg, teacher=teacher)
    assert mixed["teacher"] == pytest.approx(one["teacher"] / 2, rel=1e-4)
    grads = []
    for w in (0.0, 1.0):  # the teacher term's own gradient: with it less without it
        model.zero_grad()
        train_mod.train_step(model, batch, TrainConfig(w_teacher=w, teacher="x"), teacher=teacher)[0].backward()
        grads.append(model.reconstruction.target_log.grad.item())
    assert grads[1] - grads[0] < 0  # a step brightens, as the teacher does
    assert all(p.grad is None for p in teacher.parameters())
    assert "teacher" not in train_mod.train_step(model, batch, TrainConfig(), teacher=teacher)[1]
    with pytest.raises(UsageError):
        load_config(None, ["w_teacher=1"])


# ------------------------------------------------------------------------------- flow-only stage


def test_flow_stage_loss_is_the_end_point_error_of_every_pair():
    """``flow_train_step``: with the flow net at its zero initialisation every predicted flow is
    zero, so the loss is the mean teacher-flow magnitude over all pairs, both directions, masked."""
    model = STPR(STPRConfig(**TINY))
    g = torch.Generator().manual_seed(0)
    n = 3
    batch = {"low": torch.rand(2, n, 3, 32, 32, generator=g),
             "flow_fw": torch.randn(2, n - 1, 2, 8, 8, generator=g),
             "flow_bw": torch.randn(2, n - 1, 2, 8, 8, generator=g),
             "flow_valid": (torch.rand(2, n - 1, 1, 8, 8, generator=g) > 0.3).float()}
    loss, parts = train_mod.flow_train_step(model, batch)
    want = 0.0
    for i in range(n - 1):
        v = batch["flow_valid"][:, i]
        for k in ("flow_fw", "flow_bw"):
            want += float((batch[k][:, i].norm(dim=1, keepdim=True) * v).sum() / v.sum())
    assert loss.item() == pytest.approx(want / (2 * (n - 1)), rel=1e-4)
    assert parts == {"flow": loss.item()}
    loss.backward()
    assert all(p.grad is None for n_, p in model.named_parameters() if not n_.startswith("flow_net."))


def test_train_only_flow_changes_the_flow_net_alone(tmp_path, lol_root):
    """``train_only="flow"`` from trained weights: the flow net moves, every other tensor stays as
    the init had it, and the log's loss is the flow error."""
    train(tiny_cfg(tmp_path / "base", lol_root, 1, val_every=100), quiet=True)
    init = weights(tmp_path / "base")
    run = train(tiny_cfg(tmp_path / "flow", lol_root, 2, val_every=100, lr=1e-2, warmup=0,
                         init=str(tmp_path / "base" / "last.safetensors"), train_only="flow"), quiet=True)
    got = weights(run)
    moved = [k for k in init if not torch.equal(init[k], got[k])]
    assert moved and all(k.startswith("flow_net.") for k in moved)
    row = read_log(run)[-1]
    assert float(row["loss"]) == pytest.approx(float(row["flow"]), rel=1e-5) and row["rec"] == ""


@pytest.mark.parametrize("overrides", [["train_only=prrd"], ["train_only=flow", "model.frames=1"],
                                       ["train_only=flow", "model.flow_mode=zero"]])
def test_train_only_needs_a_learned_flow(overrides):
    with pytest.raises(UsageError, match="train_only"):
        load_config(None, overrides)


# ------------------------------------------------------------------------------------- stills


@pytest.mark.parametrize("overrides", [
    ["stills=[\"x.png\"]"],  # no fourth weight for them
    ["weights=[1, 0]"],
    ["weights=[1, 0, 0, 0, 1]"],
    ["weights=[1, -1, 0]"],
    ["stills_scale_range=[0.5]"],
    ["stills_scale_range=[0.8, 0.4]"],
])
def test_stills_config_errors_are_usage_errors(overrides):
    with pytest.raises(UsageError):
        load_config(None, overrides)


def test_training_on_stills_alone(tmp_path, capsys):
    """A photograph folder is a training source by itself: the run trains and is seeded (two runs,
    same weights), and an undecodable file is an input error (exit 3) that names it."""
    from helpers import write_rgb
    from stpr.errors import InputError

    for i in range(2):
        write_rgb(tmp_path / "stills" / f"{i}.png", texture(90, 100, seed=i))
    runs = []
    for name in ("a", "b"):
        cfg = TrainConfig(out_dir=str(tmp_path / name), stills=[str(tmp_path / "stills")], weights=[0, 0, 0, 1],
                          crop=32, batch=2, steps=2, val_every=100, ckpt_every=1, log_every=1, workers=0,
                          model=dict(TINY), stills_scale_range=[0.5, 1.0])
        train(cfg, quiet=True)
        runs.append(weights(tmp_path / name))
    assert_same_weights(*runs)
    assert [r["step"] for r in read_log(tmp_path / "a")] == ["1", "2"]
    (tmp_path / "stills" / "2.jpg").write_bytes(b"not a jpeg")
    rc = main(["train", "--set", f"out_dir={tmp_path / 'c'}", "--set", f"stills=[\"{tmp_path / 'stills'}\"]",
               "--set", "weights=[0,0,0,1]", "--set", "workers=0", "--set", "crop=32", "--set", "steps=1",
               "--quiet"])
    assert rc == InputError.exit_code
    assert "2.jpg" in capsys.readouterr().err


# ------------------------------------------------------------------------------- entry point


def test_python_m_stpr_train_has_its_own_entry(tmp_path, capsys):
    """``python -m stpr.train`` (torchrun's entry) parses the ``stpr train`` arguments itself: a usage
    error is one line and exit status 2, as from ``stpr train``."""
    assert train_mod.main(["--set", "bogus=1", "--quiet"]) == UsageError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("stpr: error: ") and "bogus" in err and err.count("\n") == 1


def test_no_module_imports_the_cli():
    """stpr.cli sits on top: nothing in the package imports it (train.py used to, for its entry),
    except ``python -m stpr`` (``__main__.py``), which is the command itself."""
    import ast

    import stpr

    root = Path(stpr.__file__).parent
    for path in root.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py") and path.parent == root:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "stpr.cli" or n.startswith("stpr.cli.") for n in names), path


def test_camera_degradation_and_perceptual_losses_train(tmp_path):
    """degradation="camera" and the tone / colour / edge / low-pass terms: a tiny run trains, logs the terms
    it uses (and only those), and bad values are usage errors."""
    videos = tmp_path / "v.mp4"
    write_test_video(videos, [texture(64, 64, seed=s) for s in range(6)], fps=25)
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), videos=[str(videos)], weights=[0.0, 1.0, 0.0], steps=2,
                      batch=2, crop=32, val_every=100, ckpt_every=100, log_every=1, workers=0, threads=1,
                      degradation="camera", w_tone=0.5, w_colour=0.5, w_edge=0.0, w_lowpass=0.5,
                      model=dict(TINY))
    out = train(cfg, quiet=True)
    rows = read_log(out)
    assert float(rows[-1]["tone"]) > 0 and float(rows[-1]["colour"]) > 0 and "edge" not in rows[-1]
    assert float(rows[-1]["lowpass"]) > 0
    for bad in ("degradation=raw", "w_tone=-1", "w_lowpass=-1", "w_temporal_coarse=-1", "w_black=-1", "w_chroma=-1",
                "black_along_colour=1.5"):
        with pytest.raises(UsageError):
            load_config(None, [bad])


def test_a_run_with_a_teacher_logs_its_term_and_a_missing_teacher_leaves_no_trace(tmp_path):
    from stpr.checkpoint import save_model

    videos = tmp_path / "v.mp4"
    write_test_video(videos, [texture(64, 64, seed=s) for s in range(6)], fps=25)
    teacher = STPR(STPRConfig(**TINY))
    with torch.no_grad():
        teacher.reconstruction.target_log += math.log(2.0)
    save_model(teacher, tmp_path / "teacher.safetensors")
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), videos=[str(videos)], weights=[0.0, 1.0, 0.0], steps=2,
                      batch=2, crop=32, val_every=100, ckpt_every=100, log_every=1, workers=0, threads=1,
                      teacher=str(tmp_path / "teacher.safetensors"), w_teacher=0.5, model=dict(TINY))
    rows = read_log(train(cfg, quiet=True))
    assert float(rows[-1]["teacher"]) > 0.05
    lost = TrainConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "run2"), "teacher": str(tmp_path / "gone")})
    with pytest.raises(ModelError):
        train(lost, quiet=True)
    assert not (tmp_path / "run2").exists()


def test_max_minutes_stops_the_run_with_a_checkpoint(tmp_path, lol_root):
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), lol_root=str(lol_root), steps=1000, batch=2, crop=32,
                      val_every=1000, ckpt_every=1000, log_every=1000, workers=0, threads=1, max_minutes=1e-4,
                      warmup=0, lol_val=2, model=dict(TINY))
    out = train(cfg, quiet=True)
    rows = read_log(out)
    assert 1 <= int(rows[-1]["step"]) < 1000  # stopped by the clock (6 ms), long before the steps
    assert rows[-1]["val_lol_psnr"] != ""  # validated and saved at the step it stopped
    assert (out / "last.safetensors").is_file()
    assert float(rows[-1]["lr"]) == pytest.approx(cfg.min_lr)  # the schedule followed the clock (no warm-up here)
    with pytest.raises(UsageError, match="max_minutes"):
        load_config(None, ["max_minutes=-1"])


def test_camera_on_device_trains_and_resumes_like_an_unbroken_run(tmp_path):
    """camera_on_device: the camera runs in the training loop, seeded per step, so a run stopped
    and resumed ends where an unbroken one does; it needs the camera degradation."""
    videos = tmp_path / "v.mp4"
    write_test_video(videos, [texture(64, 64, seed=s) for s in range(6)], fps=25)
    base = dict(videos=[str(videos)], weights=[0.0, 1.0, 0.0], batch=2, crop=32, val_every=100, ckpt_every=2,
                log_every=1, workers=0, threads=1, degradation="camera", camera_on_device=True,
                video_h264_prob=0.5, model=dict(TINY))
    whole = train(TrainConfig(out_dir=str(tmp_path / "whole"), steps=4, **base), quiet=True)
    part = train(TrainConfig(out_dir=str(tmp_path / "part"), steps=2, **base), quiet=True)
    part = train(TrainConfig(out_dir=str(tmp_path / "part"), steps=4, **base), resume=True, quiet=True)
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(part / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert float(read_log(whole)[-1]["loss"]) > 0
    with pytest.raises(UsageError, match="camera_on_device"):
        load_config(None, ["camera_on_device=true"])


def test_looks_train_lol_pairs_in_the_lol_look_and_validate_siblings(tmp_path):
    """A model with looks: real LOL pairs train the "lol" look, other sources the first; a run with
    lol_siblings validates the held-out shots of training scenes in their own columns."""
    from stpr.train import train_step

    root = tmp_path / "lol"
    for k, scene in enumerate((["1", "2"], ["3", "4"], ["5"], ["6"])):
        high = texture(48, 64, seed=k)
        for n in scene:
            write_rgb(root / "high" / f"{n}.png", high)
            write_rgb(root / "low" / f"{n}.png", (high // 10).astype(np.uint8))
    cfg = tiny_cfg(tmp_path / "run", root, 2, lol_siblings=1, model={**TINY, "looks": ["natural", "lol"]},
                   w_tone=1.0, w_colour=1.0)
    run = train(cfg, quiet=True)
    rows = read_log(run)
    assert float(rows[-1]["val_sib_psnr"]) > 5 and float(rows[-1]["val_lol_psnr"]) > 5
    model = tiny_model(looks=("natural", "lol")).train()  # random output heads: gradients reach the looks
    ds = LOLClips(root, ["1", "3"], frames=4, crop=32, seed=0)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}
    loss, _ = train_step(model, batch, cfg)
    loss.backward()
    grad = model.reconstruction.look_feats.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0  # every sample is a LOL pair


def test_lol_natural_trains_the_default_look_tone_free_on_its_share_of_lol_clips(tmp_path):
    """``lol_natural``: LOL clips marked ``lol_natural`` go to the default look and are scored
    tone-free (as lol_tone_free); the others keep the "lol" look and their tone. The marks do not
    change the clips themselves."""
    from stpr.train import train_step

    root = tmp_path / "lol"
    for k, n in enumerate("1234"):
        high = texture(48, 64, seed=k)
        write_rgb(root / "high" / f"{n}.png", high)
        write_rgb(root / "low" / f"{n}.png", (high // 10).astype(np.uint8))
    plain = LOLClips(root, list("1234"), frames=4, crop=32, seed=0)
    marked = LOLClips(root, list("1234"), frames=4, crop=32, seed=0, natural_share=0.5)
    marks = [float(marked[i]["lol_natural"]) for i in range(40)]
    assert 0 < sum(marks) < 40 and not any(float(plain[i]["lol_natural"]) for i in range(40))
    assert all(torch.equal(plain[i]["low"], marked[i]["low"]) for i in range(6))
    nat = next(i for i, m in enumerate(marks) if m)
    lol = next(i for i, m in enumerate(marks) if not m)
    cfg = load_config(None, ['model.looks=["natural", "lol"]', "lol_natural=0.5", "w_tone=1", "w_colour=1"])
    model = tiny_model(looks=("natural", "lol")).train()
    for i, look in ((nat, 0), (lol, 1)):
        model.zero_grad()
        batch = {k: v[None] for k, v in marked[i].items()}
        loss, parts = train_step(model, batch, cfg)
        loss.backward()
        grad = model.reconstruction.look_feats.grad
        assert grad[look].abs().sum() > 0 and grad[1 - look].abs().sum() == 0
        # tone-free clips stay out of the tone and colour terms
        assert (parts["tone"] == parts["colour"] == 0) == (look == 0)
