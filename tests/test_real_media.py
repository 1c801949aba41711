"""Real-world media the generated clips of the other tests did not cover: late-starting MPEG-TS,
Opus in MOV, two runs to one output, encoder options, BT.2020 / HDR, stream metadata, odd sizes.

All media is made here with PyAV (tiny: 64x48, a few frames)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from stpr.errors import InputError, OutputError
from stpr.io import open_input, open_output
from stpr.io.encoding import _add_video_stream, _rgb_to_video_frame

from media import sine_packets, write_test_video

W, H = 64, 48


def ramp(n: int, h: int = H, w: int = W) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return [np.clip(np.stack([30 + 150 * xx / w + 5 * i, 30 + 150 * yy / h, 120 + 0 * xx], -1), 0, 255)
            .astype(np.uint8) for i in range(n)]


def copy_through(src: Path, dst: Path, **kwargs) -> None:
    """Read ``src`` and write every frame unchanged to ``dst`` (the identity enhancer)."""
    with open_input(src) as reader, open_output(dst, reader.info, source=src, **kwargs) as writer:
        for frame in reader:
            writer.write(frame)


def write_av(path: Path, frames: list[np.ndarray], *, fmt: str | None = None, codec: str = "libx264",
             audio: list[dict] | None = None, container_options: dict | None = None,
             metadata: dict | None = None, fps: int = 25) -> None:
    """A small video with PyAV: ``audio`` is a list of tracks, each {"codec", "language", "title",
    "default"}; ``metadata`` goes on the container."""
    with av.open(str(path), "w", format=fmt, container_options=container_options or {}) as out:
        if metadata:
            out.metadata.update(metadata)
        v, pix_fmt = _add_video_stream(out, codec, width=frames[0].shape[1], height=frames[0].shape[0],
                                       fps=Fraction(fps), time_base=Fraction(1, fps), colorspace="bt601",
                                       color_range="tv", rotation=0, crf=23, preset="ultrafast")
        tracks = []
        for spec in audio or []:
            a = out.add_stream(spec.get("codec", "aac"), rate=48000)
            a.layout = "stereo"
            if "language" in spec:
                a.metadata["language"] = spec["language"]
            if "title" in spec:
                a.metadata["title"] = spec["title"]
            a.disposition = av.stream.Disposition.default if spec.get("default") else av.stream.Disposition(0)
            tracks.append(a)
        reformatter = VideoReformatter()
        packets = []
        for i, rgb in enumerate(frames):
            vf = _rgb_to_video_frame(reformatter, rgb, pix_fmt, "bt601", "tv")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            packets += v.encode(vf)
        packets += v.encode(None)
        for a in tracks:
            packets += sine_packets(a, len(frames) / fps)
        packets.sort(key=lambda p: float((p.dts if p.dts is not None else 0) * p.time_base))
        for p in packets:
            out.mux(p)


# ------------------------------------------------------------------------ 2. late start (MPEG-TS)


def test_late_start_mpegts_starts_at_zero_with_audio_in_sync(tmp_path: Path) -> None:
    src = tmp_path / "broadcast.ts"
    write_av(src, ramp(10), fmt="mpegts", audio=[{}], container_options={"output_ts_offset": "3600"})
    with av.open(str(src)) as c:
        assert c.start_time / av.time_base > 3599  # an hour in, as a broadcast capture
        v, a = c.streams.video[0], c.streams.audio[0]
        lag = float(v.start_time * v.time_base - a.start_time * a.time_base)  # video after audio (s)
    dst = tmp_path / "out.mp4"
    copy_through(src, dst)
    with av.open(str(dst)) as c:
        assert c.duration / av.time_base < 1.0  # 0.4 s of content, not 3,600 s of blank lead-in
        v, a = c.streams.video[0], c.streams.audio[0]
        vstart = float(v.start_time * v.time_base)
        astart = float(a.start_time * a.time_base)
        assert abs(min(vstart, astart)) < 0.05
        assert vstart - astart == pytest.approx(lag, abs=0.03)  # still in sync
        assert len(list(c.decode(v))) == 10


# ------------------------------------------------------------------------ 3. Opus into .mov


def test_opus_into_mov_is_reencoded_before_any_frame(tmp_path: Path) -> None:
    src = tmp_path / "in.webm"
    write_test_video(src, ramp(4), 25, audio_seconds=0.2, codec="libvpx-vp9")  # VP9 + Opus
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.name == "opus"
    dst = tmp_path / "out.mov"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_input(src) as reader:
            writer = open_output(dst, reader.info, source=src, codec="libx264", preset="ultrafast")
            # decided when the output is opened, before any frame is enhanced
            assert any("cannot hold opus audio; re-encoding it to aac" in str(w.message) for w in caught)
            with writer:
                for frame in reader:
                    writer.write(frame)
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert len(list(c.decode(c.streams.video[0]))) == 4


# ------------------------------------------------------------------------ 8. stream and file metadata


def _tracks(path: Path) -> list[tuple[str | None, str | None, bool]]:
    with av.open(str(path)) as c:
        return [(s.metadata.get("language"), s.metadata.get("title"),
                 bool(s.disposition & av.stream.Disposition.default)) for s in c.streams.audio]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_audio_language_title_default_and_file_tags_kept(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "in.mkv"
    write_av(src, ramp(4), audio=[{"language": "eng", "title": "English"},
                                  {"language": "fra", "title": "Français", "default": True}],
             metadata={"title": "Night walk", "creation_time": "2024-05-01T20:00:00.000000Z"})
    assert _tracks(src) == [("eng", "English", False), ("fra", "Français", True)]
    dst = tmp_path / f"out{suffix}"
    copy_through(src, dst, preset="ultrafast")
    got = _tracks(dst)
    assert [(lang, default) for lang, _, default in got] == [("eng", False), ("fra", True)]
    if suffix == ".mkv":  # MP4 has no per-track title of its own
        assert [t for _, t, _ in got] == ["English", "Français"]
    with av.open(str(dst)) as c:
        assert c.metadata.get("title") == "Night walk"
        assert c.metadata.get("creation_time", "").startswith("2024-05-01T20:00:00")


def test_phone_location_tag_kept(tmp_path: Path) -> None:
    src = tmp_path / "phone.mov"
    iso = "+48.8577+002.2950+035.000/"
    write_av(src, ramp(3), audio=[{}], container_options={"movflags": "use_metadata_tags"},
             metadata={"com.apple.quicktime.location.ISO6709": iso, "title": "Eiffel"})
    dst = tmp_path / "out.mov"
    copy_through(src, dst, preset="ultrafast")
    with av.open(str(dst)) as c:
        assert c.metadata.get("com.apple.quicktime.location.ISO6709") == iso
        assert c.metadata.get("title") == "Eiffel"


# ------------------------------------------------------------------------ 6. two runs, one output


def _frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return len(list(c.decode(c.streams.video[0])))


def test_two_runs_to_one_output_never_share_a_temporary_or_replace_a_finished_file(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_test_video(src, ramp(6), 25)
    dst = tmp_path / "same.mp4"
    with open_input(src) as reader:
        info, frames = reader.info, list(reader)
    first = open_output(dst, info, source=src, preset="ultrafast")
    second = open_output(dst, info, source=src, preset="ultrafast")  # started before the first finished
    assert first._temp != second._temp
    for f in frames:
        first.write(f)
    for f in frames[:3]:
        second.write(f)
    first.close()
    assert _frames_in(dst) == 6
    with pytest.raises(OutputError, match="appeared while this run was working"):
        second.close()
    assert _frames_in(dst) == 6  # the finished file of the first run, untouched
    assert not list(tmp_path.glob(".*partial*"))


def test_stale_temporaries_of_killed_runs_are_cleaned_up(tmp_path: Path) -> None:
    from stpr.io.writing import _host_tag

    src = tmp_path / "in.mp4"
    write_test_video(src, ramp(2), 25)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale_old = tmp_path / ".out.partial.mp4"  # name used before runs had their own
    host = _host_tag()
    stale_dead = tmp_path / f".out.partial-{dead_pid}-{host}-0badcafe.mp4"
    running = tmp_path / f".out.partial-{os.getppid()}-{host}-12345678.mp4"  # a live process's run
    elsewhere = tmp_path / f".out.partial-{dead_pid}-{'0' if host != '000000' else '1'}00000-12345678.mp4"
    other = tmp_path / f".other.partial-{dead_pid}-{host}-00000000.mp4"
    for p in (stale_old, stale_dead, running, elsewhere, other):
        p.write_bytes(b"half")
    copy_through(src, tmp_path / "out.mp4", preset="ultrafast")
    assert not stale_old.exists() and not stale_dead.exists()
    assert running.exists() and other.exists()
    assert elsewhere.exists()  # another machine's run on a shared folder: cannot tell, left alone
    # frame-folder outputs: the same for their temporary folders
    stale_dirs = [tmp_path / ".frames.partial", tmp_path / f".frames.partial-{dead_pid}-{host}-0badcafe"]
    live_dir = tmp_path / f".frames.partial-{os.getppid()}-{host}-12345678"
    for d in (*stale_dirs, live_dir):
        d.mkdir()
        (d / "00000.png").write_bytes(b"half")
    copy_through(src, tmp_path / "frames")
    assert not any(d.exists() for d in stale_dirs) and live_dir.exists()
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["00000.png", "00001.png"]


def test_two_resumable_runs_of_one_output_do_not_mix(tmp_path: Path) -> None:
    from stpr.resume import _lock_work_dir

    work = tmp_path / ".out.mp4.stpr-resume"
    work.mkdir()
    held = _lock_work_dir(work, tmp_path / "out.mp4")
    try:
        with pytest.raises(OutputError, match="another stpr run is writing"):
            _lock_work_dir(work, tmp_path / "out.mp4")
    finally:
        held.close()
    _lock_work_dir(work, tmp_path / "out.mp4").close()  # free again once the first run ends


# ------------------------------------------------------------------------ 5. encoder options


def _cli(capsys, *args: str) -> tuple[int, str]:
    from stpr.cli import main

    rc = main(["enhance", *args, "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err.strip()


@pytest.mark.parametrize("extra,needle", [
    (["--codec", "aac"], "--codec aac is an audio encoder, not a video encoder"),
    (["--codec", "no-such-codec"], "--codec no-such-codec: no video encoder of that name"),
    (["--preset", "nosuch"], "--preset 'nosuch' is not a libx264 preset; choose from ultrafast"),
    (["--crf", "60"], "--crf for libx264 must be between 0 and 51, got 60"),
    (["--codec", "libx265", "--crf", "52"], "--crf for libx265 must be between 0 and 51, got 52"),
])
def test_bad_encoder_options_are_usage_errors_before_the_model_loads(tmp_path, capsys, extra, needle):
    src = tmp_path / "in.mp4"
    write_test_video(src, ramp(2), 25)
    # the weights file does not exist: reaching the model would be exit 4
    rc, err = _cli(capsys, str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tmp_path / "none.safetensors"),
                   *extra)
    assert rc == 2, err
    assert needle in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*out*")) and not list(tmp_path.glob(".*partial*"))


def test_vp9_takes_crf_up_to_63(tmp_path, capsys):
    src = tmp_path / "in.mp4"
    write_test_video(src, ramp(2), 25)
    rc, err = _cli(capsys, str(src), "-o", str(tmp_path / "out.webm"), "--model", str(tmp_path / "none.safetensors"),
                   "--crf", "63")
    assert rc == 4, err  # the options were fine: it got as far as the (missing) model
    rc, err = _cli(capsys, str(src), "-o", str(tmp_path / "out.webm"), "--model", str(tmp_path / "none.safetensors"),
                   "--codec", "libvpx-vp9", "--crf", "64")
    assert rc == 2 and "--crf must be between 0 and 63" in err


def test_x265_is_quiet(tmp_path, capfd):
    src = tmp_path / "in.mp4"
    write_test_video(src, ramp(3), 25)
    capfd.readouterr()
    copy_through(src, tmp_path / "out.mp4", codec="libx265", preset="ultrafast")
    assert "x265 [info]" not in capfd.readouterr().err
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"


# ------------------------------------------------------------------------ --fps for frame folders


def test_fps_for_a_frame_folder(tmp_path, capsys, weights):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, img in enumerate(ramp(3)):
        assert cv2.imwrite(str(folder / f"{i:03d}.png"), img[:, :, ::-1])
    dst = tmp_path / "out.mp4"
    rc, err = _cli(capsys, str(folder), "-o", str(dst), "--model", str(weights), "--threads", "1", "--fps", "30000/1001")
    assert rc == 0, err
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        times = [float(f.pts * v.time_base) for f in c.decode(v)]
    assert times == pytest.approx([0, 1001 / 30000, 2002 / 30000], abs=1e-4)
    # a video keeps its own timing
    src = tmp_path / "in.mp4"
    write_test_video(src, ramp(2), 25)
    rc, err = _cli(capsys, str(src), "-o", str(tmp_path / "v.mp4"), "--model", str(weights), "--fps", "30")
    assert rc == 2 and "--fps applies to frame folders and images" in err
    rc, err = _cli(capsys, str(folder), "-o", str(tmp_path / "z.mp4"), "--model", str(weights), "--fps", "0")
    assert rc == 2 and "--fps must be above 0" in err


# ------------------------------------------------------------------------ 7. BT.2020 and HDR


def _write_tagged(path: Path, frames_yuv: list[av.VideoFrame], codec: str, pix_fmt: str, trc: int) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25, options={"x265-params": "log-level=error"} if codec == "libx265" else {})
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        cc = s.codec_context
        cc.colorspace = cc.color_primaries = 9  # bt2020nc, bt2020
        cc.color_trc = trc
        cc.color_range = 1
        packets = []
        for i, vf in enumerate(frames_yuv):
            vf.pts = i
            packets += s.encode(vf)
        packets += s.encode(None)
        for p in packets:
            out.mux(p)


def _bt2020_yuv420(rgb: tuple[int, int, int]) -> av.VideoFrame:
    """A flat frame of ``rgb`` converted with the BT.2020 (non-constant luminance) matrix, limited range."""
    kr, kb = 0.2627, 0.0593
    r, g, b = (float(v) for v in rgb)
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    planes = np.zeros((H * 3 // 2, W), np.uint8)
    planes[:H] = round(16 + 219 * y / 255)
    planes[H:H + H // 4] = round(128 + 224 * cb / 255)
    planes[H + H // 4:] = round(128 + 224 * cr / 255)
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def test_bt2020_sdr_decoded_with_its_matrix_and_kept_bt2020(tmp_path: Path) -> None:
    colour = (200, 60, 40)
    src = tmp_path / "bt2020.mp4"
    _write_tagged(src, [_bt2020_yuv420(colour) for _ in range(3)], "libx264", "yuv420p", trc=14)
    with open_input(src) as reader:
        assert reader.info.colorspace == "bt2020"
        got = next(iter(reader)).rgb
    assert np.abs(got.reshape(-1, 3).mean(0) - colour).max() < 3  # BT.601/709 would be 10+ levels off
    dst = tmp_path / "out.mp4"
    copy_through(src, dst, preset="ultrafast")
    with av.open(str(dst)) as c:
        f = next(c.decode(c.streams.video[0]))
        assert (f.colorspace, f.color_primaries, f.color_trc) == (9, 9, 14)  # not re-tagged BT.709/601
    with open_input(dst) as reader:
        assert np.abs(next(iter(reader)).rgb.reshape(-1, 3).mean(0) - colour).max() < 3


def test_hlg_hdr_is_refused_with_one_line(tmp_path: Path, capsys, weights) -> None:
    src = tmp_path / "phone_hlg.mkv"
    reformatter = VideoReformatter()
    frames = [reformatter.reformat(av.VideoFrame.from_ndarray(f, format="rgb24"), format="yuv420p10le",
                                   dst_colorspace="BT2020", dst_color_range="MPEG") for f in ramp(2)]
    _write_tagged(src, frames, "libx265", "yuv420p10le", trc=18)  # arib-std-b67
    with pytest.raises(InputError, match=r"HDR video \(HLG transfer\) is not supported"):
        open_input(src)
    rc, err = _cli(capsys, str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(weights), "--threads", "1")
    assert rc == 3 and "HLG" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------ odd frame sizes


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".webm", "libvpx-vp9")])
def test_odd_size_is_padded_to_even_and_encoded_420(tmp_path: Path, suffix: str, codec: str) -> None:
    import cv2

    folder = tmp_path / "odd"
    folder.mkdir()
    frames = ramp(3, h=21, w=33)
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i}.png"), f[:, :, ::-1])
    dst = tmp_path / f"out{suffix}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        copy_through(folder, dst, codec=codec, preset="ultrafast")
    notes = [str(w.message) for w in caught if "odd" in str(w.message)]
    assert notes == ["frame size 33x21 is odd: the video is padded to 34x22 (edge pixels repeated) and encoded "
                     "4:2:0 so that every player can play it"]
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.pix_fmt, v.width, v.height) == ("yuv420p", 34, 22)
    with open_input(dst) as reader:
        got = [f.rgb for f in reader]
    assert len(got) == 3
    for a, b in zip(frames, got):
        assert np.abs(a.astype(int) - b[:21, :33].astype(int)).mean() < 4  # nothing cropped
        assert np.abs(b[:21, 33].astype(int) - b[:21, 32].astype(int)).mean() < 4  # the repeated edge


# ------------------------------------------------------------------------ the same through stpr enhance


def test_enhance_and_resume_late_start_opus_mov_and_tags(tmp_path: Path, capsys, weights) -> None:
    """Through the CLI, single pass and --resume (segments joined at the end): a late-starting
    MPEG-TS starts at 0 with its audio in sync and its tracks' tags; Opus into .mov is re-encoded."""
    src = tmp_path / "cam.ts"
    write_av(src, ramp(10), fmt="mpegts", container_options={"output_ts_offset": "600"},
             audio=[{"language": "fra"}, {"language": "eng"}])
    for extra in ([], ["--resume", "--segment-frames", "4"]):
        dst = tmp_path / f"out{len(extra)}.mp4"
        rc, err = _cli(capsys, str(src), "-o", str(dst), "--model", str(weights), "--threads", "1", "--preset",
                       "ultrafast", *extra)
        assert rc == 0, err
        with av.open(str(dst)) as c:
            assert c.duration / av.time_base < 1.0
            starts = [float(s.start_time * s.time_base) for s in c.streams]
            assert max(starts) < 0.1, starts  # not 600 s in
            assert [s.metadata.get("language") for s in c.streams.audio] == ["fra", "eng"]
            assert len(list(c.decode(c.streams.video[0]))) == 10
    webm = tmp_path / "in.webm"
    write_test_video(webm, ramp(4), 25, audio_seconds=0.2, codec="libvpx-vp9")
    rc, err = _cli(capsys, str(webm), "-o", str(tmp_path / "out.mov"), "--model", str(weights), "--threads", "1",
                   "--resume", "--segment-frames", "2")
    assert rc == 0, err
    assert "re-encoding it to aac" in err
    with av.open(str(tmp_path / "out.mov")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"


def test_strip_metadata(tmp_path: Path, capsys, weights) -> None:
    src = tmp_path / "in.mkv"
    write_av(src, ramp(3), audio=[{"language": "eng", "title": "Commentary", "default": True}],
             metadata={"title": "Home", "location": "+48.8577+002.2950/"})
    dst = tmp_path / "out.mkv"
    rc, err = _cli(capsys, str(src), "-o", str(dst), "--model", str(weights), "--threads", "1", "--strip-metadata")
    assert rc == 0, err
    with av.open(str(dst)) as c:
        assert "title" not in c.metadata and "location" not in c.metadata
        a = c.streams.audio[0]
        assert a.metadata.get("language") == "eng" and "title" not in a.metadata
        assert a.disposition & av.stream.Disposition.default


def test_batch_crf_range_is_x264s(tmp_path: Path, capsys) -> None:
    from stpr.cli import main

    vids = tmp_path / "v"
    vids.mkdir()
    write_test_video(vids / "a.mp4", ramp(2), 25)
    assert main(["batch", str(vids), str(tmp_path / "o"), "--crf", "52", "--quiet"]) == 2
    assert "--crf for libx264 must be between 0 and 51, got 52" in capsys.readouterr().err


def test_resume_decides_the_audio_before_the_first_segment(tmp_path: Path, weights) -> None:
    from stpr.enhance import Enhancer

    src = tmp_path / "in.webm"
    write_test_video(src, ramp(4), 25, audio_seconds=0.2, codec="libvpx-vp9")  # VP9 + Opus
    enhancer = Enhancer.from_pretrained(str(weights), threads=1)
    said_by_first_segment: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def reencode_notes() -> int:
            return sum("cannot hold opus audio; re-encoding it to aac" in str(w.message) for w in caught)

        enhancer.enhance_video(src, tmp_path / "out.mov", preset="ultrafast", progress=False, resume=True,
                               segment_frames=2, on_segment=lambda k, n: said_by_first_segment.append(reencode_notes()))
        assert said_by_first_segment[0] == 1 and reencode_notes() == 1  # said once, before the work
    with av.open(str(tmp_path / "out.mov")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
