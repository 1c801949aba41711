"""``stpr batch``: a folder or list of videos, one corrupt, locally and on a local Ray instance."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from stpr.batch import find_inputs, format_table, run_batch
from stpr.cli import main
from stpr.errors import InputError, UsageError

from helpers import save_weights, tiny
from media import write_test_video

# Ray Data itself touches deprecated DataContext fields.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Overrides conftest's: an untrained tiny model (output heads still zero)."""
    return save_weights(tmp_path_factory, tiny())


def make_videos(folder: Path) -> Path:
    """Two small dark clips and a corrupt "video" (random bytes with an .mp4 name), plus non-videos."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.mp4", "b.mkv"):
        write_test_video(folder / name, rng.integers(0, 40, size=(6, 32, 48, 3), dtype=np.uint8), fps=25)
    (folder / "c.mp4").write_bytes(rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"")
    return folder


def read_summary(out: Path) -> list[dict]:
    with open(out / "batch_summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def check_first_run(out: Path, stdout: str):
    rows = read_summary(out)
    assert [Path(r["file"]).name for r in rows] == ["a.mp4", "b.mkv", "c.mp4"]
    assert [r["status"] for r in rows[:2]] == ["ok", "ok"]
    assert rows[2]["status"].startswith("failed: ") and "\n" not in rows[2]["status"]
    assert [r["frames"] for r in rows] == ["6", "6", ""]
    assert all(float(r["seconds"]) > 0 for r in rows[:2])
    assert sorted(p.name for p in out.iterdir()) == ["a_stpr.mp4", "b_stpr.mp4", "batch_summary.csv"]
    for line in ("a.mp4", "b.mkv", "c.mp4", "failed: ", "3 file(s): 2 ok, 0 skipped, 1 failed"):
        assert line in stdout


def check_rerun(out: Path, stdout: str, mtimes: dict):
    rows = read_summary(out)
    assert [r["status"] for r in rows[:2]] == ["skipped", "skipped"]
    assert [r["frames"] for r in rows[:2]] == ["6", "6"]  # carried over from the previous summary
    assert rows[2]["status"].startswith("failed: ")
    assert {p: p.stat().st_mtime_ns for p in out.glob("*_stpr.mp4")} == mtimes  # untouched
    assert "3 file(s): 0 ok, 2 skipped, 1 failed" in stdout


def test_local_batch_then_rerun_skips(tmp_path, weights, capsys):
    vids = make_videos(tmp_path / "videos")
    out = tmp_path / "out"
    args = ["batch", str(vids), str(out), "--model", str(weights), "--threads", "1"]
    assert main(args) == 1
    check_first_run(out, capsys.readouterr().out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*_stpr.mp4")}
    assert main(args) == 1
    check_rerun(out, capsys.readouterr().out, mtimes)
    # all good -> exit 0: a list file naming only the good videos (relative to the list's folder)
    lst = tmp_path / "list.txt"
    lst.write_text("# good ones\nvideos/a.mp4\n\n" + str(vids / "b.mkv") + "\n")
    assert main(["batch", str(lst), str(out), "--model", str(weights), "--threads", "1", "--overwrite",
                 "--quiet"]) == 0
    assert [r["status"] for r in read_summary(out)] == ["ok", "ok"]


def test_local_batch_caps_threads_at_the_cores(tmp_path, weights, capsys, monkeypatch):
    import torch

    import stpr._threads

    monkeypatch.setattr(stpr._threads, "cores_available", lambda: 2)
    vids = tmp_path / "videos"
    vids.mkdir()
    write_test_video(vids / "a.mp4", np.full((3, 32, 48, 3), 20, np.uint8), fps=25)
    assert main(["batch", str(vids), str(tmp_path / "out"), "--model", str(weights), "--threads", "9",
                 "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads 9 is more than the 2 cores" in err[0]
    assert torch.get_num_threads() == 2


def test_inputs_and_errors(tmp_path, weights):
    vids = make_videos(tmp_path / "videos")
    assert [p.name for p in find_inputs(vids)] == ["a.mp4", "b.mkv", "c.mp4"]
    # earlier outputs in the same folder are not inputs
    (vids / "a_stpr.mp4").write_bytes(b"x")
    assert [p.name for p in find_inputs(vids, out_dir=vids)] == ["a.mp4", "b.mkv", "c.mp4"]
    with pytest.raises(InputError):
        find_inputs(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError):
        find_inputs(empty)
    assert main(["batch", str(empty), str(tmp_path / "o")]) == InputError.exit_code
    assert main(["batch", str(vids), str(tmp_path / "o"), "--crf", "99"]) == UsageError.exit_code
    for bad in (["--device", "tpu"], ["--precision", "fp16", "--device", "cpu"], ["--ray", "--device", "cuda"]):
        assert main(["batch", str(vids), str(tmp_path / "o"), *bad]) == UsageError.exit_code
    assert not (tmp_path / "o").exists()  # refused before anything was written
    # two inputs with the same output name: the second fails, the first is enhanced
    lst = tmp_path / "dups.txt"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.mov").write_bytes(b"")
    lst.write_text(f"{vids / 'a.mp4'}\n{tmp_path / 'other' / 'a.mov'}\n{tmp_path / 'nope.mp4'}\n")
    res = run_batch(lst, tmp_path / "o2", model=str(weights), threads=1, quiet=True, device="cpu", precision="fp32")
    assert [r.status for r in res][0] == "ok"
    assert res[1].status.startswith("failed: same output name")
    assert res[2].status.startswith("failed: ") and "nope.mp4" in res[2].status
    assert "3 file(s): 1 ok, 0 skipped, 2 failed" in format_table(res)


@pytest.mark.parametrize("argv, expected", [
    (["IN", "OUT"], ("IN", "OUT", None)),
    (["IN", "OUT", "--ray"], ("IN", "OUT", "")),
    (["--ray", "IN", "OUT"], ("IN", "OUT", "")),
    (["IN", "--ray", "OUT"], ("IN", "OUT", "")),
    (["IN", "OUT", "--ray", "auto"], ("IN", "OUT", "auto")),
    (["--ray", "HEAD:6379", "IN", "OUT"], ("IN", "OUT", "HEAD:6379")),
    (["--ray=ray://HEAD:10001", "IN", "OUT"], ("IN", "OUT", "ray://HEAD:10001")),
])
def test_ray_option_and_positionals(argv, expected):
    from stpr.cli import _batch_paths, build_parser

    assert _batch_paths(build_parser().parse_args(["batch", *argv])) == expected


def test_missing_out_dir_is_a_usage_error(tmp_path):
    assert main(["batch", str(tmp_path), "--ray", "auto"]) == UsageError.exit_code
    assert main(["batch", str(tmp_path)]) == UsageError.exit_code


def test_ray_without_ray_installed_is_a_usage_error(tmp_path, weights, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    vids = make_videos(tmp_path / "videos")
    assert main(["batch", str(vids), str(tmp_path / "out"), "--model", str(weights), "--ray"]) == UsageError.exit_code
    err = capsys.readouterr().err.strip()
    assert "install stpr[ray]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert main(["batch", str(vids), str(tmp_path / "out"), "--workers", "2"]) == UsageError.exit_code


def test_ray_batch_two_workers(tmp_path, weights, capsys):
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'stpr[ray]' to run the Ray batch test")
    vids = make_videos(tmp_path / "videos")
    out = tmp_path / "out"
    # `--ray` right before the positionals: argparse takes INPUT as the address; the CLI sorts it out.
    args = ["batch", "--ray", str(vids), str(out), "--model", str(weights), "--workers", "2", "--threads", "1"]
    try:
        assert main(args) == 1
        captured = capsys.readouterr().out
        assert "ray: 2 worker(s)" in captured
        check_first_run(out, captured)
        assert not ray.is_initialized()  # the local instance started by the batch is shut down
        mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*_stpr.mp4")}
        assert main(args) == 1  # nothing left to enhance but the corrupt file
        check_rerun(out, capsys.readouterr().out, mtimes)
    finally:
        ray.shutdown()


def test_look_flow_and_temporal_filter_reach_every_video(tmp_path, tmp_path_factory, capsys):
    """--look/--flow/--temporal-filter give each video what ``stpr enhance`` with them gives; a look the
    model lacks or a strength out of range is refused (exit 2) before OUT_DIR exists."""
    from helpers import save_weights
    from test_models import _with_looks

    from stpr.io import open_input

    def frames(p: Path) -> np.ndarray:
        with open_input(p) as r:
            return np.stack([f.rgb for f in r])

    path = save_weights(tmp_path_factory, _with_looks())
    vids = tmp_path / "videos"
    vids.mkdir()
    # a smooth dark scene panning 1 px a frame: consecutive outputs agree, so the temporal filter
    # blends every frame (on noise its cut test sits at the threshold and rounding can flip it)
    import cv2

    field = cv2.resize(np.random.default_rng(1).random((4, 6, 3)).astype(np.float32), (64, 32),
                       interpolation=cv2.INTER_CUBIC)
    clip = np.stack([np.clip(field[:, k:k + 48] * 40, 0, 255).astype(np.uint8) for k in range(6)])
    write_test_video(vids / "a.mp4", clip, fps=25)
    opts = ["--model", str(path), "--look", "lol", "--flow", "dis", "--temporal-filter", "0.5", "--threads", "1"]
    assert main(["batch", str(vids), str(tmp_path / "out"), *opts, "--quiet"]) == 0
    ref = tmp_path / "ref.mp4"
    assert main(["enhance", str(vids / "a.mp4"), "-o", str(ref), *opts, "--quiet"]) == 0
    got = frames(tmp_path / "out" / "a_stpr.mp4").astype(int)
    assert np.abs(got - frames(ref)).max() <= 1
    other = tmp_path / "natural.mp4"
    assert main(["enhance", str(vids / "a.mp4"), "-o", str(other), *opts[:2], "--threads", "1", "--quiet"]) == 0
    assert np.abs(got - frames(other)).mean() > 5  # the options changed the picture
    capsys.readouterr()
    for bad in (["--look", "sepia"], ["--temporal-filter", "1.5"]):
        assert main(["batch", str(vids), str(tmp_path / "o2"), "--model", str(path), *bad]) == UsageError.exit_code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[0] in err[0]
    assert not (tmp_path / "o2").exists()
