"""Inputs of the less common kinds that FFmpeg decodes as video (GIF, MPEG-TS/.m2ts, 3GP): the
default output name is a video, and ``stpr batch`` takes them from a folder."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stpr.batch import find_inputs
from stpr.cli import default_output, main
from stpr.io import open_input

from helpers import dark_clip

pytestmark = pytest.mark.usefixtures("one_thread")

# suffix -> (container format, video codec, pixel format)
KINDS = {".gif": ("gif", "gif", "rgb8"), ".m2ts": ("mpegts", "libx264", "yuv420p"),
         ".3gp": ("3gp", "libx264", "yuv420p")}


def write_kind(path: Path, frames: list[np.ndarray]) -> Path:
    fmt, codec, pix = KINDS[path.suffix]
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


@pytest.mark.parametrize("suffix", [".gif", ".m2ts", ".3gp", ".mts", ".m4v", ".ts"])
def test_default_output_of_a_video_is_a_video(tmp_path, suffix):
    assert default_output(tmp_path / f"anim{suffix}").name == "anim_stpr.mp4"


@pytest.mark.parametrize("suffix", list(KINDS))
def test_enhance_without_o_writes_a_video_with_every_frame(tmp_path, weights, suffix):
    src = write_kind(tmp_path / f"anim{suffix}", dark_clip(n=5, h=32, w=48))
    assert main(["enhance", str(src), "--model", str(weights), "--quiet"]) == 0
    dst = tmp_path / "anim_stpr.mp4"
    with open_input(dst) as r:
        assert len(list(r)) == 5


def test_batch_takes_every_video_in_a_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for suffix in KINDS:
        write_kind(folder / f"v{suffix}", dark_clip(n=3, h=32, w=48))
    write_kind(folder / "noext.m2ts", dark_clip(n=3, h=32, w=48)).rename(folder / "camera_dump")
    (folder / "notes.txt").write_text("not a video")
    (folder / "frame.png").write_bytes(b"\x89PNG")
    (folder / "garbage.bin").write_bytes(b"\x00" * 100)
    assert sorted(p.name for p in find_inputs(folder)) == ["camera_dump", "v.3gp", "v.gif", "v.m2ts"]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("stpr ")


def test_output_without_extension_says_the_audio_is_dropped(tmp_path, weights, capsys):
    from media import write_test_video

    src = tmp_path / "clip.mp4"
    write_test_video(src, dark_clip(n=3, h=32, w=48), fps=25, audio_seconds=0.2)
    assert main(["enhance", str(src), "-o", str(tmp_path / "clip_out"), "--model", str(weights), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "no extension" in err and "clip_out.mp4" in err
    assert len(list((tmp_path / "clip_out").glob("*.png"))) == 3
    # no audio, nothing dropped, nothing said
    silent = write_kind(tmp_path / "mute.m2ts", dark_clip(n=3, h=32, w=48))
    assert main(["enhance", str(silent), "-o", str(tmp_path / "mute_out"), "--model", str(weights), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_batch_skips_photos_and_opens_odd_names_as_files(tmp_path, monkeypatch):
    """A camera folder: a JPEG thumbnail with a video-like name is a photo, not a video; a file
    named like an FFmpeg protocol (``pipe:0``) is read as a file, not as standard input."""
    import cv2

    folder = tmp_path / "card"
    folder.mkdir()
    write_kind(folder / "G1.m2ts", dark_clip(n=3, h=32, w=48))
    cv2.imwrite(str(folder / "G1.jpg"), np.zeros((32, 48, 3), np.uint8))
    (folder / "G1.jpg").rename(folder / "G1.THM")
    write_kind(folder / "tmp.m2ts", dark_clip(n=3, h=32, w=48)).rename(folder / "pipe:0")
    monkeypatch.chdir(folder)
    assert sorted(p.name for p in find_inputs(Path("."))) == ["G1.m2ts", "pipe:0"]
    with open_input(Path("pipe:0")) as r:
        assert len(list(r)) == 3
