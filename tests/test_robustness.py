"""Robustness of ``stpr enhance``: a corpus of bad and unusual inputs, all generated here.

Every case goes through ``stpr.cli.main``. A refused input must give exactly one stderr line
naming the problem (no traceback), the exit status of its class (2 usage, 3 input, 4 model,
5 output, 1 other, 130/143 interrupted), nothing new on disk (no output under the final name, no
temporary files) and an untouched input. Valid-but-unusual inputs must be enhanced: right frame
count, size and rotation tag. Also: --debug tracebacks, Ctrl-C / SIGTERM, and --resume.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import stpr.io.writing as sio_writing
import stpr.resume as sresume
from stpr.checkpoint import save_model
from stpr.cli import main
from stpr.enhance import Enhancer
from stpr.io import open_input
from stpr.models.stpr_arch import STPR
from stpr.resume import work_dir_for

from helpers import dark_clip, tiny_model
from media import sine_packets, write_test_video

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------- helpers


def digest(path: Path) -> str:
    """Hash of a file, or of a folder's names and contents."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            h.update(str(p.relative_to(path)).encode())
            if p.is_file():
                h.update(p.read_bytes())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def listing(folder: Path) -> list[str]:
    """Everything under ``folder``, hidden files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def cli(capsys, src: Path, dst: Path | None, weights: Path | None, *extra: str) -> tuple[int, list[str]]:
    args = ["enhance", str(src)]
    if dst is not None:
        args += ["-o", str(dst)]
    if weights is not None:
        args += ["--model", str(weights)]
    rc = main([*args, "--quiet", "--threads", "1", *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err.strip().splitlines()


class Refusal:
    """Snapshot of a folder and an input, to check that a refused run changed nothing."""

    def __init__(self, folder: Path, src: Path):
        self.folder, self.src = folder, src
        self.before = listing(folder)
        self.hash = digest(src) if src.exists() else None

    def check(self, rc: int, err: list[str], code: int, *words: str) -> str:
        assert rc == code, (rc, err)
        assert len(err) == 1, err
        line = err[0]
        assert line.startswith("stpr: "), line
        for w in words:
            assert w.lower() in line.lower(), (w, line)
        assert listing(self.folder) == self.before, "files appeared or vanished"
        if self.hash is not None:
            assert digest(self.src) == self.hash, "input modified"
        return line


def decoded(path: Path) -> tuple[list[np.ndarray], list[Fraction]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), f.pts * s.time_base) for f in c.decode(s)]
    return [f for f, _ in frames], [t for _, t in frames]


def audio_packets(path: Path) -> list[tuple[Fraction, Fraction]]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [(p.pts * s.time_base, p.duration * s.time_base) for p in c.demux(s) if p.size]


def out_info(path: Path):
    with open_input(path) as r:
        return r.info, len(list(r))


def enhanced_ok(capsys, src: Path, dst: Path, weights: Path):
    """Run ``stpr enhance`` expecting success with nothing on stderr; returns the output's
    (MediaInfo, frame count)."""
    rc, err = cli(capsys, src, dst, weights)
    assert rc == 0 and err == []
    return out_info(dst)


def write_pngs(folder: Path, images, names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        ok, buf = cv2.imencode(".png", img)
        assert ok
        (folder / (names[i] if names else f"{i:04d}.png")).write_bytes(buf.tobytes())
    return folder


@pytest.fixture()
def clip(tmp_path) -> Path:
    src = tmp_path / "clip.mp4"
    write_test_video(src, dark_clip(n=6, h=32, w=48), fps=25, audio_seconds=6 / 25)
    return src


# ----------------------------------------------------------------------------------- bad inputs (3)


@pytest.mark.parametrize("name", ["noise.mp4", "noise.png", "noise"])
def test_random_bytes_is_not_a_video(tmp_path, weights, capsys, name):
    src = tmp_path / name
    src.write_bytes(np.random.default_rng(1).bytes(5000))
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    line = snap.check(rc, err, 3, str(src))
    assert "not a" in line or "cannot decode" in line


def test_truncated_mp4(tmp_path, weights, capsys):
    full = tmp_path / "full.mp4"
    write_test_video(full, dark_clip(n=10, h=32, w=48), audio_seconds=0.4)
    src = tmp_path / "cut.mp4"
    data = full.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # MP4 keeps its index at the end: cut, it is unreadable
    full.unlink()
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, str(src), "truncated")


def test_container_with_zero_video_frames(tmp_path, weights, capsys):
    src = tmp_path / "empty_video.mkv"
    with av.open(str(src), "w") as c:  # a video stream that never gets a packet, next to real audio
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for p in sine_packets(a, 0.2):
            c.mux(p)
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, str(src), "no decodable video frames")


def test_audio_only_file(tmp_path, weights, capsys):
    src = tmp_path / "song.m4a"
    with av.open(str(src), "w", format="mp4") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for p in sine_packets(a, 0.2):
            c.mux(p)
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, str(src), "no video stream")


def test_missing_input(tmp_path, weights, capsys):
    snap = Refusal(tmp_path, tmp_path / "nope.mp4")
    rc, err = cli(capsys, tmp_path / "nope.mp4", tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, "not found", "nope.mp4")


def test_folder_with_mixed_frame_sizes(tmp_path, weights, capsys):
    frames = list(dark_clip(n=3, h=24, w=32))
    frames.append(dark_clip(n=1, h=24, w=40)[0])
    src = write_pngs(tmp_path / "frames", frames)
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, "differ in size", "0003.png")


def test_frame_folder_without_images(tmp_path, weights, capsys):
    src = tmp_path / "frames"
    src.mkdir()
    (src / "notes.txt").write_text("not a frame")
    (src / "clip.json").write_text("{}")
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, "contains no images", str(src))


def test_frame_folder_with_a_fake_image_fails_cleanly(tmp_path, weights, capsys):
    src = write_pngs(tmp_path / "frames", list(dark_clip(n=3, h=24, w=32)))
    (src / "0003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 30)  # fails mid-run
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 3, "0003.png", "cannot decode")


def test_frame_folder_with_non_image_files_is_enhanced(tmp_path, weights, capsys):
    src = write_pngs(tmp_path / "frames", list(dark_clip(n=4, h=24, w=32)))
    (src / "readme.txt").write_text("shot on a phone")
    (src / ".DS_Store").write_bytes(b"\0\1")
    (src / "sub").mkdir()
    info, n = enhanced_ok(capsys, src, tmp_path / "out.mp4", weights)
    assert n == 4 and (info.width, info.height) == (32, 24)


# ------------------------------------------------------------------------- valid but unusual (0)


def test_one_frame_video(tmp_path, weights, capsys):
    src = tmp_path / "one.mp4"
    write_test_video(src, dark_clip(n=1, h=32, w=48))
    info, n = enhanced_ok(capsys, src, tmp_path / "out.mp4", weights)
    assert n == 1 and (info.width, info.height) == (48, 32)


@pytest.mark.parametrize("w,h", [(1, 1), (3, 5), (17, 9)])
def test_odd_and_tiny_sizes(tmp_path, weights, capsys, w, h):
    src = tmp_path / f"tiny_{w}x{h}.mp4"
    write_test_video(src, dark_clip(n=3, h=h, w=w))  # odd sizes are stored 4:4:4
    rc, err = cli(capsys, src, tmp_path / "out.mp4", weights)
    # a video output is padded by one pixel to even and encoded 4:2:0, with a one-line note
    assert rc == 0 and err == [f"stpr: warning: frame size {w}x{h} is odd: the video is padded to "
                               f"{w + w % 2}x{h + h % 2} (edge pixels repeated) and encoded 4:2:0 so that every "
                               f"player can play it"]
    info, n = out_info(tmp_path / "out.mp4")
    assert n == 3 and (info.width, info.height) == (w + w % 2, h + h % 2)
    # and as a single image
    img = tmp_path / f"tiny_{w}x{h}.png"
    write_pngs(tmp_path, [dark_clip(n=1, h=h, w=w)[0]], names=[img.name])
    rc, err = cli(capsys, img, tmp_path / "out.png", weights)
    assert rc == 0 and cv2.imread(str(tmp_path / "out.png")).shape == (h, w, 3)


def test_grayscale_png_frames(tmp_path, weights, capsys):
    src = write_pngs(tmp_path / "gray", [f[..., 0] for f in dark_clip(n=4, h=24, w=30)])
    info, n = enhanced_ok(capsys, src, tmp_path / "out.mp4", weights)
    assert n == 4 and (info.width, info.height) == (30, 24)


def test_16bit_png_frames(tmp_path, weights, capsys):
    frames = [f.astype(np.uint16) * 257 for f in dark_clip(n=3, h=24, w=30)]
    src = write_pngs(tmp_path / "deep", frames)
    dst = tmp_path / "deep_out"
    rc, err = cli(capsys, src, dst, weights)
    assert rc == 0 and err == []
    outs = sorted(dst.glob("*.png"))
    assert len(outs) == 3
    img = cv2.imread(str(outs[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (24, 30, 3) and img.dtype == np.uint8


def test_rgba_frames(tmp_path, weights, capsys):
    rgba = np.concatenate([dark_clip(n=1, h=20, w=26)[0], np.full((20, 26, 1), 128, np.uint8)], axis=2)
    src = tmp_path / "alpha.png"
    write_pngs(tmp_path, [rgba], names=[src.name])
    rc, err = cli(capsys, src, tmp_path / "out.png", weights)
    assert rc == 0 and err == []
    assert cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).shape == (20, 26, 3)


def test_variable_frame_rate(tmp_path, weights, capsys):
    src = tmp_path / "vfr.mkv"
    pts = [0, 1, 2, 5, 6, 10, 11, 15]
    write_test_video(src, dark_clip(n=len(pts), h=32, w=32), fps=25, pts=pts)
    rc, err = cli(capsys, src, tmp_path / "out.mkv", weights)
    assert rc == 0 and err == []
    _, t_in = decoded(src)
    _, t_out = decoded(tmp_path / "out.mkv")
    assert np.allclose([float(t) for t in t_in], [float(t) for t in t_out], atol=1e-3)


def test_rotation_metadata_is_kept(tmp_path, weights, capsys):
    src = tmp_path / "phone.mp4"
    write_test_video(src, dark_clip(n=4, h=32, w=48), rotation=90, audio_seconds=0.16)
    info, n = enhanced_ok(capsys, src, tmp_path / "out.mp4", weights)
    assert n == 4 and info.rotation == 90 and (info.width, info.height) == (48, 32)


def _ten_bit_codec() -> str | None:
    for codec in ("libx264", "libx265", "ffv1"):
        try:
            if "yuv420p10le" in {f.name for f in av.Codec(codec, "w").video_formats or []}:
                return codec
        except ValueError:
            continue
    return None


def test_10bit_input(tmp_path, weights, capsys):
    codec = _ten_bit_codec()
    if codec is None:
        pytest.skip("this FFmpeg build has no 10-bit encoder (libx264 high10, libx265 or ffv1)")
    src = tmp_path / "ten.mkv"
    yy, xx = np.mgrid[0:24, 0:32]
    clip = [np.stack([10 + xx + i, 8 + yy, 30 - yy // 2], axis=-1).astype(np.uint8) for i in range(4)]  # smooth
    with av.open(str(src), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p10le"
        for i, rgb in enumerate(clip):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p10le")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    with open_input(src) as r:  # decoded to 8-bit RGB close to what was encoded
        first = next(iter(r)).rgb
    assert np.abs(first.astype(int) - clip[0].astype(int)).mean() < 4
    info, n = enhanced_ok(capsys, src, tmp_path / "out.mp4", weights)
    assert n == 4 and (info.width, info.height) == (32, 24)


def test_non_ascii_and_space_paths(tmp_path, weights, capsys):
    folder = tmp_path / "вход ü 目录"
    folder.mkdir()
    src = folder / "clip é 1.mp4"
    write_test_video(src, dark_clip(n=3, h=32, w=32), audio_seconds=0.12)
    w = folder / "модель é.safetensors"
    w.write_bytes(weights.read_bytes())
    out_dir = tmp_path / "выход ü"
    out_dir.mkdir()
    dst = out_dir / "out put é.mp4"
    rc, err = cli(capsys, src, dst, w)
    assert rc == 0 and err == []
    assert out_info(dst)[1] == 3
    # the default output name is derived from the non-ASCII name, next to the input
    rc, err = cli(capsys, src, None, w)
    assert rc == 0 and (folder / "clip é 1_stpr.mp4").is_file()
    # and a refusal names the path intact, on one line
    rc, err = cli(capsys, src, dst, w)
    assert rc == 5 and err == [f"stpr: error: output {dst} already exists (use --overwrite)"]


def test_large_image_is_tiled_under_a_small_memory_budget(tmp_path, weights, capsys, monkeypatch):
    img = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 60, (150, 200, 3)).astype(np.uint8), (5, 5), 0)
    src = tmp_path / "big.png"
    write_pngs(tmp_path, [img], names=[src.name])
    chosen = []
    orig = Enhancer.tile_size_for
    monkeypatch.setattr(Enhancer, "tile_size_for", lambda self, h, w: chosen.append(orig(self, h, w)) or chosen[-1])
    rc, err = cli(capsys, src, tmp_path / "tiled.png", weights, "--memory-mb", "1")
    assert rc == 0 and err == []
    assert chosen and 0 < chosen[0] < 200  # 150x200 needs ~20 MB untiled: tiles it is
    tiled = cv2.imread(str(tmp_path / "tiled.png"))
    assert tiled.shape == (150, 200, 3)
    assert np.abs(tiled.astype(int) - img.astype(int)).mean() > 1  # it was enhanced (both BGR here)
    # tiles agree with the whole-frame result
    whole = Enhancer.from_pretrained(weights, tile=0).enhance_image(np.ascontiguousarray(img[..., ::-1]))
    mse = ((tiled[..., ::-1].astype(float) - whole.astype(float)) ** 2).mean()
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 30


def test_tile_0_ignores_the_memory_budget(tmp_path, weights, capsys, monkeypatch):
    """Documented choice: --tile 0 means "never tile"; the budget only steers automatic tiling.
    If the frame then does not fit, the run fails with the out-of-memory message (next test)."""
    img = dark_clip(n=1, h=150, w=200)[0]
    src = tmp_path / "big.png"
    write_pngs(tmp_path, [img], names=[src.name])
    chosen = []
    orig = Enhancer.tile_size_for
    monkeypatch.setattr(Enhancer, "tile_size_for", lambda self, h, w: chosen.append(orig(self, h, w)) or chosen[-1])
    rc, err = cli(capsys, src, tmp_path / "whole.png", weights, "--memory-mb", "1", "--tile", "0")
    assert rc == 0 and err == [] and chosen == [0]
    assert cv2.imread(str(tmp_path / "whole.png")).shape == (150, 200, 3)


def test_out_of_memory_suggests_tiling(tmp_path, weights, capsys, monkeypatch, clip):
    def no_memory(self, x, stats=None):
        raise MemoryError()

    monkeypatch.setattr(STPR, "encode_frame", no_memory)
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 1, "out of memory", "--tile", "--memory-mb")
    # torch's allocator failure is a RuntimeError: same message
    monkeypatch.setattr(STPR, "encode_frame", lambda self, x, stats=None: (_ for _ in ()).throw(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")))
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 1, "out of memory", "--tile")


# ------------------------------------------------------------------------------------- weights (4)


def test_missing_weights(tmp_path, capsys, clip):
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", tmp_path / "nope.safetensors")
    snap.check(rc, err, 4, "not found", "nope.safetensors")


def test_corrupt_weights(tmp_path, capsys, clip):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", bad)
    snap.check(rc, err, 4, "bad.safetensors")


def test_truncated_weights(tmp_path, weights, capsys, clip):
    cut = tmp_path / "cut.safetensors"
    data = weights.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", cut)
    snap.check(rc, err, 4, "cut.safetensors")


def test_wrong_architecture_weights(tmp_path, weights, capsys, clip):
    other = tmp_path / "other.safetensors"
    save_model(tiny_model(channels=12), other)
    wrong = tmp_path / "wrong.safetensors"
    # the tiny model's config in the metadata, tensors of a 12-channel model
    save_file(load_file(str(other)), str(wrong), metadata=sio_meta(weights))
    other.unlink()
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", wrong)
    snap.check(rc, err, 4, "wrong.safetensors", "does not match")


def sio_meta(path: Path) -> dict:
    from stpr.checkpoint import read_metadata

    return read_metadata(path)


def test_weights_without_stpr_metadata(tmp_path, capsys, clip):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(foreign))
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", foreign)
    snap.check(rc, err, 4, "foreign.safetensors", "not an stpr weights file")


# -------------------------------------------------------------------------------------- output (5)


def test_output_folder_is_a_regular_file(tmp_path, weights, capsys, clip):
    (tmp_path / "afile").write_text("x")
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "afile" / "out.mp4", weights)
    snap.check(rc, err, 5, "afile", "is a file, not a folder")


def test_output_folder_does_not_exist(tmp_path, weights, capsys, clip):
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "no" / "such" / "out.mp4", weights)
    snap.check(rc, err, 5, "does not exist", str(tmp_path / "no" / "such"))


def test_existing_output_is_untouched(tmp_path, weights, capsys, clip):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"precious")
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, dst, weights)
    snap.check(rc, err, 5, "already exists", "--overwrite")
    assert dst.read_bytes() == b"precious"


def test_output_is_the_input(tmp_path, weights, capsys, clip):
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, clip, weights, "--overwrite")
    snap.check(rc, err, 5, "is the input")


def test_unsupported_output_type(tmp_path, weights, capsys, clip):
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.xyz", weights)
    snap.check(rc, err, 5, "unsupported output type", "out.xyz")


class _FullDisk:
    """Raw file stand-in that fails with ENOSPC once ``room`` bytes are written."""

    def __init__(self, raw, room: int):
        self.raw, self.room = raw, room

    def write(self, data) -> int:
        n = len(data)
        if n > self.room:
            if self.room:
                k, self.room = self.room, 0
                return self.raw.write(bytes(data[:k]))  # short write, then the error on retry
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.raw.name)
        self.room -= n
        return self.raw.write(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def fill_disk_after(monkeypatch, room: int) -> None:
    class Full(sio_writing._OutputFile):
        def __init__(self, path):
            super().__init__(path)
            self._fh = _FullDisk(self._fh, room)

    monkeypatch.setattr(sio_writing, "_open_output_file", Full)


@pytest.mark.parametrize("out", ["out.mp4", "out.mkv", "frames_out"])
def test_full_disk(tmp_path, weights, capsys, monkeypatch, out):
    src = tmp_path / "clip.mp4"
    write_test_video(src, np.random.default_rng(0).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8),
                     audio_seconds=0.48)
    fill_disk_after(monkeypatch, 6000)  # a few frames fit, then the disk is full
    snap = Refusal(tmp_path, src)
    rc, err = cli(capsys, src, tmp_path / out, weights, "--crf", "0")
    snap.check(rc, err, 5, "disk full", out)


# ----------------------------------------------------------------------- failures: one line, --debug


def test_unexpected_exception_is_one_line(tmp_path, weights, capsys, monkeypatch, clip):
    def boom(*a, **k):
        raise ValueError("something broke\nbadly")

    monkeypatch.setattr(Enhancer, "enhance_video", boom)
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", weights)
    line = snap.check(rc, err, 1)
    assert line == "stpr: internal error: ValueError: something broke badly (run with --debug for details)"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, weights, capsys, monkeypatch, clip, where):
    monkeypatch.setattr(Enhancer, "enhance_video", lambda *a, **k: 1 / 0)
    args = ["enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(weights), "--quiet"]
    rc = main(["--debug", *args] if where == "before" else [*args, "--debug"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1].startswith("stpr: internal error: ZeroDivisionError")
    # a known error class keeps its exit status under --debug, with the traceback
    rc = main(["--debug", "enhance", str(clip), "--model", str(tmp_path / "nope.safetensors")])
    err = capsys.readouterr().err
    assert rc == 4 and "Traceback" in err and "ModelError" in err


def test_os_error_during_enhance_is_one_line(tmp_path, weights, capsys, monkeypatch, clip):
    def io_error(self, x, stats=None):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/dev/sdz")

    monkeypatch.setattr(STPR, "encode_frame", io_error)
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / "out.mp4", weights)
    snap.check(rc, err, 1, "/dev/sdz", "input/output error")


@pytest.mark.parametrize("out", ["out.mp4", "frames_out"])
def test_ctrl_c_mid_run_leaves_nothing(tmp_path, weights, capsys, monkeypatch, clip, out):
    calls = []
    orig = sio_writing.FrameWriter.write

    def write(self, frame):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return orig(self, frame)

    monkeypatch.setattr(sio_writing.FrameWriter, "write", write)
    snap = Refusal(tmp_path, clip)
    rc, err = cli(capsys, clip, tmp_path / out, weights)
    snap.check(rc, err, 130, "interrupted", "nothing was written")


def _start(args: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """Run ``python -m stpr.cli ARGS``; stderr (tqdm progress) collected by a thread."""
    proc = subprocess.Popen([sys.executable, "-m", "stpr.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    chunks: list[str] = []

    def pump():
        while True:
            b = proc.stderr.read1(4096)
            if not b:
                return
            chunks.append(b.decode(errors="replace"))

    threading.Thread(target=pump, daemon=True).start()
    return proc, chunks


def _terminate_when_started(proc, chunks, min_frames: int, timeout: float = 60.0) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = [int(m) for m in re.findall(r"(\d+)/\d+ \[", "".join(chunks))]
        if done and max(done) >= min_frames:
            proc.send_signal(signal.SIGTERM)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    time.sleep(0.05)
    return "".join(chunks)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_mid_run_leaves_nothing(tmp_path, weights):
    src = tmp_path / "long.mp4"
    write_test_video(src, dark_clip(n=600, h=32, w=48, seed=3), fps=25, audio_seconds=24)
    snap = Refusal(tmp_path, src)
    proc, chunks = _start(["enhance", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(weights),
                           "--threads", "1"])
    err = _terminate_when_started(proc, chunks, min_frames=10)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    lines = [ln for ln in re.split(r"[\r\n]+", err) if ln.startswith("stpr:")]
    snap.check(proc.returncode, lines, 143, "interrupted by SIGTERM", "nothing was written")


# ------------------------------------------------------------------------------------------ resume


@pytest.fixture()
def long_clip(tmp_path) -> Path:
    src = tmp_path / "long clip.mp4"
    # 30 fps: 5-frame segments start at times that are not whole milliseconds
    write_test_video(src, dark_clip(n=23, h=32, w=48, seed=5), fps=30, audio_seconds=23 / 30, rotation=90)
    return src


def interrupt_after_segments(monkeypatch, k: int) -> None:
    orig = sresume.enhance_resumable

    def interrupted(*a, **kw):
        def hook(done, frames):
            if done == k:
                raise KeyboardInterrupt

        return orig(*a, **{**kw, "on_segment": hook})

    monkeypatch.setattr(sresume, "enhance_resumable", interrupted)


def count_encoded_frames(monkeypatch) -> list:
    calls = []
    orig = STPR.encode_frame
    monkeypatch.setattr(STPR, "encode_frame", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    return calls


def test_resume_reproduces_an_uninterrupted_run(tmp_path, weights, capsys, monkeypatch, long_clip):
    seg = ["--resume", "--segment-frames", "5"]
    full = tmp_path / "full.mp4"
    assert cli(capsys, long_clip, full, weights, *seg) == (0, [])
    assert not work_dir_for(full).exists()

    dst = tmp_path / "resumed.mp4"
    with monkeypatch.context() as m:
        interrupt_after_segments(m, 2)
        rc, err = cli(capsys, long_clip, dst, weights, *seg)
    assert rc == 130 and len(err) == 1 and "run the same command again" in err[0]
    work = work_dir_for(dst)
    assert not dst.exists()
    # the temporal filter's state is kept for the last finished segment only
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json", "seg_00000.mp4", "seg_00001.filter.npz",
                                                      "seg_00001.mp4"]
    manifest = json.loads((work / "manifest.json").read_text())
    assert [(s["start"], s["frames"]) for s in manifest["segments"]] == [(0, 5), (5, 5)]

    with monkeypatch.context() as m:
        encoded = count_encoded_frames(m)
        assert cli(capsys, long_clip, dst, weights, *seg) == (0, [])
    assert len(encoded) == 13 + 1  # frames 10..22, plus one frame of context for the temporal window
    assert not work.exists() and listing(tmp_path) == sorted(["full.mp4", "long clip.mp4", "resumed.mp4"])

    frames_a, pts_a = decoded(full)
    frames_b, pts_b = decoded(dst)
    assert len(frames_b) == 23 and pts_a == pts_b == decoded(long_clip)[1]
    for a, b in zip(frames_a, frames_b):
        assert np.array_equal(a, b)
    assert audio_packets(dst) == audio_packets(full) == audio_packets(long_clip)
    info = out_info(dst)[0]
    assert info.rotation == 90 and info.fps == 30
    with av.open(str(dst)) as a, av.open(str(long_clip)) as b:  # no long frame at a segment join
        assert a.streams.video[0].duration * a.streams.video[0].time_base == \
            b.streams.video[0].duration * b.streams.video[0].time_base
    # and close to a single-pass run (segment joins only change where key frames are)
    single = tmp_path / "single.mp4"
    assert cli(capsys, long_clip, single, weights)[0] == 0
    mse = np.mean([((a.astype(float) - b.astype(float)) ** 2).mean() for a, b in zip(decoded(single)[0], frames_b)])
    assert 10 * np.log10(255**2 / mse) > 30


def test_a_damaged_temporal_filter_state_is_a_usage_error_and_overwrite_recovers(tmp_path, weights, capsys,
                                                                                 monkeypatch, long_clip):
    seg = ["--resume", "--segment-frames", "5"]
    dst = tmp_path / "resumed.mp4"
    with monkeypatch.context() as m:
        interrupt_after_segments(m, 2)
        assert cli(capsys, long_clip, dst, weights, *seg)[0] == 130
    state = work_dir_for(dst) / "seg_00001.filter.npz"
    state.write_bytes(b"not an npz")
    rc, err = cli(capsys, long_clip, dst, weights, *seg)
    assert rc == 2 and len(err) == 1 and "temporal filter's state" in err[0] and "--overwrite" in err[0], err
    assert not dst.exists()
    assert cli(capsys, long_clip, dst, weights, *seg, "--overwrite") == (0, [])
    assert dst.exists() and not work_dir_for(dst).exists()


@pytest.mark.parametrize("extra", [[], ["--tone-match", "1"]], ids=["default", "tone-match"])
def test_resume_from_a_frame_folder(tmp_path, weights, capsys, monkeypatch, extra):
    """Frame for frame what an uninterrupted run gives (with the tone curve: its running
    correction goes on from the last segment's). Encoded losslessly (FFV1), as docs/resume.md
    advises where decoded frames must match (x264 and x265 are not bit-exact everywhere)."""
    src = write_pngs(tmp_path / "frames", list(dark_clip(n=7, h=24, w=32, seed=6)))
    full, dst = tmp_path / "full.mkv", tmp_path / "resumed.mkv"
    seg = ["--resume", "--segment-frames", "3", "--codec", "ffv1", *extra]
    assert cli(capsys, src, full, weights, *seg)[0] == 0
    with monkeypatch.context() as m:
        interrupt_after_segments(m, 1)
        assert cli(capsys, src, dst, weights, *seg)[0] == 130
    assert cli(capsys, src, dst, weights, *seg)[0] == 0
    frames_a, pts_a = decoded(full)
    frames_b, pts_b = decoded(dst)
    assert len(frames_b) == 7 and pts_a == pts_b
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b))


@pytest.mark.parametrize("extra,key", [(["--brightness", "100"], "exposure_hold"), ([], "temporal_detail"),
                                       ([], "temporal_flow")],
                         ids=["brightness", "filter-detail", "filter-flow"])
def test_resume_refuses_segments_an_earlier_version_made_otherwise(tmp_path, weights, capsys, monkeypatch,
                                                                   long_clip, extra, key):
    """Since real-footage §47 --brightness holds every frame (it smoothed its gain) and the temporal
    filter blends 0.3 of the fine detail (it blended none), and since §49 the filter's flow is
    DIS medium at 480 with tolerance 0.12 (fast at 320, 0.08): segments an older version made, whose
    job lacks the new key, are not continued with the new settings."""
    dst = tmp_path / "out.mp4"
    seg = ["--resume", "--segment-frames", "5", *extra]
    with monkeypatch.context() as m:
        interrupt_after_segments(m, 1)
        assert cli(capsys, long_clip, dst, weights, *seg)[0] == 130
    manifest = work_dir_for(dst) / sresume.MANIFEST
    data = json.loads(manifest.read_text())
    assert data["options"].pop(key) in (True, 0.3, "medium/480/0.12")
    manifest.write_text(json.dumps(data))
    snap = Refusal(tmp_path, long_clip)
    rc, err = cli(capsys, long_clip, dst, weights, *seg)
    snap.check(rc, err, 2, "cannot resume", key)


def test_resume_refuses_a_different_job(tmp_path, weights, capsys, monkeypatch, long_clip):
    dst = tmp_path / "out.mp4"
    seg = ["--resume", "--segment-frames", "5"]
    with monkeypatch.context() as m:
        interrupt_after_segments(m, 1)
        assert cli(capsys, long_clip, dst, weights, *seg)[0] == 130
    snap = Refusal(tmp_path, long_clip)
    rc, err = cli(capsys, long_clip, dst, weights, *seg, "--crf", "20")
    snap.check(rc, err, 2, "cannot resume", "crf", "--overwrite")
    other = tmp_path / "other.safetensors"
    save_model(tiny_model(seed=1), other)
    snap = Refusal(tmp_path, long_clip)
    rc, err = cli(capsys, long_clip, dst, other, *seg)
    snap.check(rc, err, 2, "cannot resume", "another model")
    os.utime(long_clip, ns=(0, 0))  # the input "changed"
    snap = Refusal(tmp_path, long_clip)
    rc, err = cli(capsys, long_clip, dst, weights, *seg)
    snap.check(rc, err, 2, "input changed")
    # --overwrite discards the old segments and starts over
    assert cli(capsys, long_clip, dst, weights, *seg, "--overwrite")[0] == 0
    assert out_info(dst)[1] == 23 and not work_dir_for(dst).exists()


def test_leftover_resume_data_needs_resume_or_overwrite(tmp_path, weights, capsys, monkeypatch, long_clip):
    dst = tmp_path / "out.mp4"
    with monkeypatch.context() as m:
        interrupt_after_segments(m, 1)
        assert cli(capsys, long_clip, dst, weights, "--resume", "--segment-frames", "5")[0] == 130
    snap = Refusal(tmp_path, long_clip)
    rc, err = cli(capsys, long_clip, dst, weights)
    snap.check(rc, err, 2, "--resume", "--overwrite", str(work_dir_for(dst)))
    rc, err = cli(capsys, long_clip, dst, weights, "--overwrite")
    assert rc == 0 and not work_dir_for(dst).exists() and out_info(dst)[1] == 23


def test_resume_needs_a_video_output(tmp_path, weights, capsys, long_clip):
    snap = Refusal(tmp_path, long_clip)
    rc, err = cli(capsys, long_clip, tmp_path / "frames_out", weights, "--resume")
    snap.check(rc, err, 2, "--resume needs a video output")
    rc, err = cli(capsys, long_clip, tmp_path / "o.mp4", weights, "--segment-frames", "5")
    snap.check(rc, err, 2, "add --resume")


def test_full_disk_during_a_resumable_run_keeps_finished_segments(tmp_path, weights, capsys, monkeypatch):
    src = tmp_path / "clip.mp4"
    write_test_video(src, np.random.default_rng(0).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8))
    dst = tmp_path / "out.mp4"
    seg = ["--resume", "--segment-frames", "3", "--crf", "0"]
    with monkeypatch.context() as m:
        fill_disk_after(m, 40000)
        rc, err = cli(capsys, src, dst, weights, *seg)
    assert rc == 5 and len(err) == 1 and "disk full" in err[0] and "--resume" in err[0], err
    assert not dst.exists()
    kept = sorted(p.name for p in work_dir_for(dst).iterdir())
    assert kept[0] == "manifest.json" and kept[1:] and all(k.startswith("seg_") for k in kept[1:])
    assert cli(capsys, src, dst, weights, *seg) == (0, [])  # space freed: continue
    assert out_info(dst)[1] == 12


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_during_a_resumable_run_then_resume(tmp_path, weights, capsys):
    src = tmp_path / "long.mp4"
    write_test_video(src, dark_clip(n=400, h=32, w=48, seed=4), fps=25, audio_seconds=16)
    dst = tmp_path / "out.mp4"
    seg = ["--resume", "--segment-frames", "40"]
    proc, chunks = _start(["enhance", str(src), "-o", str(dst), "--model", str(weights), "--threads", "1", *seg])
    err = _terminate_when_started(proc, chunks, min_frames=90)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "finished segments are kept" in err
    work = work_dir_for(dst)
    assert not dst.exists() and work.is_dir()
    names = sorted(p.name for p in work.iterdir())
    assert names[0] == "manifest.json" and len(names) >= 3 and not any("partial" in n for n in names), names
    assert cli(capsys, src, dst, weights, *seg) == (0, [])
    frames, pts = decoded(dst)
    assert len(frames) == 400 and pts == decoded(src)[1]
    assert audio_packets(dst) == audio_packets(src)
