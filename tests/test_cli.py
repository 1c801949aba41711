"""The ``stpr`` command line: outputs, refusals and exit codes."""

from __future__ import annotations

import numpy as np
import pytest

from stpr.cli import default_output, main

from helpers import dark_clip
from media import write_test_video

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def video(tmp_path):
    path = tmp_path / "in put.mp4"
    write_test_video(path, dark_clip(n=5, h=32, w=48), fps=25, audio_seconds=0.2)
    return path


def test_enhance_writes_output(video, weights, tmp_path, capsys):
    dst = tmp_path / "out.mp4"
    assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--quiet"]) == 0
    assert dst.stat().st_size > 0


def test_default_output_names(tmp_path):
    assert default_output(tmp_path / "a.mp4").name == "a_stpr.mp4"
    assert default_output(tmp_path / "b.JPG").name == "b_stpr.png"
    assert default_output(tmp_path).name == tmp_path.name + "_stpr"


def test_existing_output_is_refused_and_untouched(video, weights, tmp_path, capsys):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"precious")
    assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--quiet"]) == 5
    assert dst.read_bytes() == b"precious"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--quiet", "--overwrite"]) == 0
    assert dst.read_bytes() != b"precious"


@pytest.mark.parametrize("content", [b"", b"\x00\x01 definitely not a video" * 50])
def test_unreadable_input_exit_3(tmp_path, weights, capsys, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    assert main(["enhance", str(bad), "-o", str(tmp_path / "o.mp4"), "--model", str(weights), "--quiet"]) == 3
    assert not (tmp_path / "o.mp4").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_missing_input_and_model(tmp_path, video, capsys):
    assert main(["enhance", str(tmp_path / "nope.mp4")]) == 3
    assert main(["enhance", str(video), "--model", str(tmp_path / "nope.safetensors"),
                 "-o", str(tmp_path / "o.mp4")]) == 4
    corrupt = tmp_path / "c.safetensors"
    corrupt.write_bytes(np.random.default_rng(0).bytes(300))
    assert main(["enhance", str(video), "--model", str(corrupt), "-o", str(tmp_path / "o.mp4")]) == 4
    assert not (tmp_path / "o.mp4").exists()


def test_usage_errors(video, weights, tmp_path):
    assert main(["enhance", str(video), "--frames", "2", "--model", str(weights)]) == 2
    assert main(["bench", "--sizes", "64x48", "--methods", "stpr", "--temporal-filter", "2"]) == 2
    assert main(["enhance", str(video), "--tile", "-5", "--model", str(weights)]) == 2
    with pytest.raises(SystemExit) as e:
        main(["enhance"])
    assert e.value.code == 2


def test_more_threads_than_cores_are_capped_with_one_line(video, weights, tmp_path, capsys, monkeypatch):
    import torch

    import stpr._threads

    monkeypatch.setattr(stpr._threads, "cores_available", lambda: 2)
    assert main(["enhance", str(video), "-o", str(tmp_path / "o.mp4"), "--model", str(weights), "--threads", "50",
                 "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads 50 is more than the 2 cores" in err[0]
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("command", ["eval", "bench", "batch"])
def test_threads_are_checked_and_capped_in_every_command(video, tmp_path, capsys, monkeypatch, command):
    import stpr._threads
    import stpr.batch
    import stpr.bench
    import stpr.report

    seen = {}

    def record(*args, **kwargs):
        seen["threads"] = kwargs["threads"]
        return [] if command == "batch" else {}

    monkeypatch.setattr(stpr._threads, "cores_available", lambda: 2)
    monkeypatch.setattr(stpr.report, "run_eval", record)
    monkeypatch.setattr(stpr.bench, "run_bench", record)
    monkeypatch.setattr(stpr.bench, "format_table", lambda *a, **k: "")
    monkeypatch.setattr(stpr.batch, "run_batch", record)
    monkeypatch.setattr(stpr.batch, "format_table", lambda *a, **k: "")
    args = {"eval": ["eval", str(video), "--quiet"], "bench": ["bench", "--quiet"],
            "batch": ["batch", str(video.parent), str(tmp_path / "out"), "--quiet"]}[command]
    assert main([*args, "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads must be >= 1, got 0" in err[0]
    assert "threads" not in seen
    main([*args, "--threads", "50"])
    assert seen["threads"] == 2
    assert "--threads 50 is more than the 2 cores" in capsys.readouterr().err


def test_per_frame_and_dis_options(video, weights, tmp_path):
    for extra in (["--frames", "1"], ["--flow", "dis"], ["--flow", "zero"], ["--tile", "32"]):
        dst = tmp_path / f"o{extra[1]}.mp4"
        assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--quiet", *extra]) == 0
        assert dst.exists()


@pytest.mark.parametrize("flags, message", [
    (["--precision", "fp16", "--device", "cpu"], "fp16 is for GPUs"),
    (["--device", "tpu"], "--device must be"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--tile", "1"], "--tile must be 0 (never tile) or at least 32"),  # once 76,800 tiles a frame
    (["--bf16", "--precision", "fp32"], "contradict"),
    (["--engine", "onnx", "--precision", "bf16"], "apply to --engine torch only"),
    (["--temporal-filter", "1"], "--temporal-filter must be in [0, 1)"),
    (["--temporal-filter", "-0.5"], "--temporal-filter must be in [0, 1)"),
])
def test_device_and_precision_refusals(video, weights, tmp_path, capsys, flags, message):
    dst = tmp_path / "out.mp4"
    assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not dst.exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_only_machine_is_one_line(video, weights, tmp_path, capsys):
    assert main(["enhance", str(video), "-o", str(tmp_path / "o.mp4"), "--model", str(weights), "--device", "cuda",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0]


def test_precision_and_batch_options_enhance(video, weights, tmp_path):
    outs = {}
    for name, flags in (("fp32", ["--precision", "fp32"]), ("bf16", ["--bf16"]),
                        ("batched", ["--precision", "fp32", "--batch", "3", "--device", "cpu"])):
        dst = tmp_path / f"{name}.mkv"
        assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--quiet", "--codec", "ffv1",
                     *flags]) == 0
        from stpr.io import open_input

        with open_input(dst) as r:
            outs[name] = np.stack([f.rgb for f in r]).astype(int)
    assert outs["fp32"].shape == outs["batched"].shape == outs["bf16"].shape
    assert np.abs(outs["fp32"] - outs["batched"]).max() <= 1
    assert 0 < np.abs(outs["fp32"] - outs["bf16"]).mean() < 1.5


def test_look_of_a_model_without_looks_is_a_usage_error(video, weights, tmp_path, capsys):
    dst = tmp_path / "out.mp4"
    assert main(["enhance", str(video), "-o", str(dst), "--model", str(weights), "--look", "lol"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--look lol" in err[0] and "one look only" in err[0]
    assert not dst.exists()


def test_enhance_and_export_with_a_look(video, tmp_path_factory, tmp_path, capsys):
    from helpers import save_weights
    from test_models import _with_looks

    path = save_weights(tmp_path_factory, _with_looks())
    outs = {}
    for look in ("natural", "lol"):
        dst = tmp_path / f"{look}.mp4"
        assert main(["enhance", str(video), "-o", str(dst), "--model", str(path), "--look", look, "--quiet"]) == 0
        outs[look] = dst.read_bytes()
    assert outs["natural"] != outs["lol"]
    assert main(["enhance", str(video), "-o", str(tmp_path / "x.mp4"), "--model", str(path), "--look", "sepia"]) == 2
    assert "its looks are natural, lol" in capsys.readouterr().err
