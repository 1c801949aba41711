"""Tests for stpr.io: reading and writing frames (all media is generated here)."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stpr.errors import InputError, OutputError
from stpr.io import Frame, MediaInfo, open_input, open_output

from media import write_test_video


# ---------------------------------------------------------------------- helpers


def smooth_pattern(height: int, width: int, shift: int = 0) -> np.ndarray:
    """Saturated but smooth colours: a matrix mix-up would shift them visibly."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 30 + 200 * xx / max(width - 1, 1)
    g = 30 + 200 * yy / max(height - 1, 1)
    b = 230 - 100 * (xx / max(width - 1, 1) + yy / max(height - 1, 1)) + shift
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def clip_frames(n: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    return [smooth_pattern(height, width, shift=3 * i) for i in range(n)]


def read_all(path: Path) -> tuple[MediaInfo, list[Frame]]:
    with open_input(path) as reader:
        return reader.info, list(reader)


def copy_through(src: Path, dst: Path, **kwargs) -> MediaInfo:
    """Read src and write every frame unchanged to dst (the 'identity enhancer')."""
    with open_input(src) as reader, open_output(dst, reader.info, source=src, **kwargs) as writer:
        for frame in reader:
            writer.write(frame)
        return reader.info


def stream_times(path: Path) -> list[Fraction]:
    """Presentation times (seconds) of every decoded video frame."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [f.pts * stream.time_base for f in c.decode(stream)]


def audio_summary(path: Path) -> tuple[str, float] | None:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return stream.codec_context.name, samples / stream.codec_context.sample_rate


def save_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    buf.tofile(str(path))


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ---------------------------------------------------------------------- folders / images


def test_folder_reads_naturally_sorted_and_normalised(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    h, w = 21, 33  # odd on purpose
    colour = smooth_pattern(h, w)
    save_png(folder / "f1.png", colour[:, :, ::-1])  # OpenCV wants BGR
    save_png(folder / "f2.png", colour[:, :, 0])  # grayscale
    bgra = np.dstack([colour[:, :, ::-1], np.full((h, w), 7, np.uint8)])
    save_png(folder / "f10.png", bgra)  # RGBA: alpha dropped
    save_png(folder / "f11.png", colour[:, :, ::-1].astype(np.uint16) * 257)  # 16-bit
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"junk")

    info, frames = read_all(folder)
    assert info.kind == "folder"
    assert (info.width, info.height, info.num_frames) == (w, h, 4)
    assert info.fps == 25 and info.rotation == 0 and not info.has_audio
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for f in frames:
        assert f.rgb.shape == (h, w, 3) and f.rgb.dtype == np.uint8 and f.pts is None
    np.testing.assert_array_equal(frames[0].rgb, colour)
    np.testing.assert_array_equal(frames[1].rgb, np.repeat(colour[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(frames[2].rgb, colour)  # f10 sorts after f2
    np.testing.assert_array_equal(frames[3].rgb, colour)

    out = tmp_path / "out"  # no suffix -> PNG folder
    with open_output(out, info) as writer:
        for f in frames:
            writer.write(f)
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png", "00003.png"]
    _, again = read_all(out)
    for a, b in zip(frames, again):
        np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_folder_of_mixed_sizes_is_rejected(tmp_path: Path) -> None:
    for ext in (".png", ".bmp"):  # PNG headers are probed up front, BMP checked on decode
        folder = tmp_path / ext[1:]
        folder.mkdir()
        ok, a = cv2.imencode(ext, np.zeros((10, 12, 3), np.uint8))
        ok, b = cv2.imencode(ext, np.zeros((11, 12, 3), np.uint8))
        a.tofile(str(folder / "0001" f"{ext}"))
        b.tofile(str(folder / "0002" f"{ext}"))
        with pytest.raises(InputError, match="differ in size"):
            read_all(folder)


def test_single_image_round_trip(tmp_path: Path) -> None:
    img = smooth_pattern(30, 41)
    src = tmp_path / "photo.png"
    save_png(src, img[:, :, ::-1])
    info, frames = read_all(src)
    assert info.kind == "image" and info.num_frames == 1 and info.fps is None
    dst = tmp_path / "enhanced.png"
    with open_output(dst, info, source=src) as writer:
        writer.write(frames[0])
    _, again = read_all(dst)
    np.testing.assert_array_equal(again[0].rgb, img)


def test_empty_and_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        open_input(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_input(tmp_path / "empty")
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="bad.png"):
        open_input(bad_png)


def test_random_bytes_is_input_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="junk.mp4"):
        open_input(junk)


def test_audio_only_file_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("aac", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = 0
        for p in stream.encode(frame) + stream.encode(None):
            c.mux(p)
    with pytest.raises(InputError, match="no video stream"):
        open_input(path)


# ---------------------------------------------------------------------- video


def test_video_round_trip_keeps_frames_pts_and_audio(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_test_video(src, clip_frames(12), 25, audio_seconds=0.48)
    info = copy_through(src, tmp_path / "out.mp4", preset="ultrafast")
    assert info.kind == "video" and info.has_audio
    assert info.fps == 25 and info.num_frames == 12

    dst = tmp_path / "out.mp4"
    assert stream_times(dst) == stream_times(src)
    assert len(stream_times(dst)) == 12
    src_audio, dst_audio = audio_summary(src), audio_summary(dst)
    assert dst_audio is not None and dst_audio[0] == src_audio[0] == "aac"
    assert dst_audio[1] == pytest.approx(src_audio[1], abs=0.03)

    # Audio was interleaved with the video, not dumped after it.
    with av.open(str(dst)) as c:
        kinds = [p.stream.type for p in c.demux() if p.size]
    assert kinds.index("audio") < len(kinds) - kinds[::-1].index("video") - 1


def test_x264_leaves_out_avx512_only() -> None:
    from stpr.io.encoding import _x264_asm

    assert _x264_asm(frozenset({"sse", "sse2", "avx", "avx2"})) is None  # no AVX-512: x264 decides
    asm = _x264_asm(frozenset({"sse", "sse2", "pni", "ssse3", "avx", "avx2", "fma", "bmi2", "avx512f", "avx512bw"}))
    assert asm == "MMX2,SSE,SSE2,SSE3,SSSE3,AVX,FMA3,AVX2,BMI2"  # what the CPU has, nothing more


def test_same_frames_encode_to_the_same_file(tmp_path: Path) -> None:
    """x264 with its AVX-512 code gave 3-5 different files in 12-16 encodes of these frames
    (session 32); stpr's writer leaves that code out, so every encode is the same."""
    frames = [np.roll(smooth_pattern(128, 160), 2 * i, axis=1) for i in range(20)]
    info = MediaInfo(kind="video", width=160, height=128, fps=Fraction(25), num_frames=20, rotation=0,
                     time_base=Fraction(1, 25), colorspace="bt709", color_range="tv", has_audio=False,
                     path=tmp_path / "src.mp4")
    files = set()
    for run in range(6):
        out = tmp_path / f"{run}.mp4"
        with open_output(out, info) as writer:
            for i, rgb in enumerate(frames):
                writer.write(Frame(rgb=rgb, pts=i, time_base=Fraction(1, 25), index=i))
        files.add(out.read_bytes())
    assert len(files) == 1


def test_vfr_timestamps_are_carried(tmp_path: Path) -> None:
    src = tmp_path / "vfr.mkv"
    pts = [0, 1, 2, 4, 7, 8, 12, 13]
    write_test_video(src, clip_frames(len(pts)), 25, pts=pts)
    _, frames = read_all(src)
    expected = [Fraction(p, 25) for p in pts]
    assert [f.pts * f.time_base for f in frames] == expected
    dst = tmp_path / "vfr_out.mp4"
    copy_through(src, dst, preset="ultrafast")
    assert stream_times(dst) == expected


def test_avi_timestamps_are_regular(tmp_path: Path) -> None:
    # AVI keeps no presentation times; with B-frames PyAV reports shuffled ones.
    src = tmp_path / "in.mp4"
    write_test_video(src, clip_frames(10), 25, audio_seconds=0.4)
    avi = tmp_path / "out.avi"
    copy_through(src, avi)
    info, frames = read_all(avi)
    assert info.fps == 25 and info.has_audio and len(frames) == 10
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 25) for i in range(10)]
    back = tmp_path / "back.mp4"
    copy_through(avi, back, preset="ultrafast")
    assert stream_times(back) == stream_times(src)


def test_rotation_is_preserved(tmp_path: Path) -> None:
    src = tmp_path / "rot.mp4"
    frames = clip_frames(3, height=32, width=48)
    write_test_video(src, frames, 25, rotation=90)
    info, got = read_all(src)
    assert info.rotation == 90
    assert got[0].rgb.shape == (32, 48, 3)  # pixels stay as stored

    copy_through(src, tmp_path / "rot_out.mp4", preset="ultrafast")
    assert read_all(tmp_path / "rot_out.mp4")[0].rotation == 90

    # Image outputs cannot carry the tag, so the writer rotates the pixels.
    copy_through(src, tmp_path / "rot_pngs")
    _, pngs = read_all(tmp_path / "rot_pngs")
    assert pngs[0].rgb.shape == (48, 32, 3)
    np.testing.assert_array_equal(pngs[0].rgb, np.rot90(got[0].rgb))


@pytest.mark.parametrize(("height", "width", "matrix"), [(240, 320, "bt601"), (720, 1280, "bt709")])
def test_colour_round_trip(tmp_path: Path, height: int, width: int, matrix: str) -> None:
    frames = clip_frames(3, height, width)
    src = tmp_path / "c.mp4"
    write_test_video(src, frames, 25)
    info, first = read_all(src)
    assert (info.colorspace, info.color_range) == (matrix, "tv")
    for f, ref in zip(first, frames):
        assert mean_abs(f.rgb, ref) < 3

    dst = tmp_path / "c_out.mp4"
    copy_through(src, dst, preset="ultrafast")
    out_info, second = read_all(dst)
    assert (out_info.colorspace, out_info.color_range) == (matrix, "tv")
    for a, b in zip(first, second):
        assert mean_abs(a.rgb, b.rgb) < 3
    with av.open(str(dst)) as c:  # tagged explicitly, not left to the resolution rule
        frame = next(c.decode(video=0))
        assert frame.colorspace == (1 if matrix == "bt709" else 6)


def test_ten_bit_input_decodes_to_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "ten.mkv"
    ref = smooth_pattern(48, 64)
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=25, options={"crf": "10", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        frame = av.VideoFrame.from_ndarray(ref).reformat(format="yuv420p10le", dst_colorspace="ITU601")
        frame.pts = 0
        for p in stream.encode(frame) + stream.encode(None):
            c.mux(p)
    info, frames = read_all(path)
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == (48, 64, 3)
    assert mean_abs(frames[0].rgb, ref) < 3


def test_odd_size_video_and_folder_to_video(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    frames = clip_frames(4, height=21, width=33)
    for i, f in enumerate(frames):
        save_png(folder / f"{i}.png", f[:, :, ::-1])
    dst = tmp_path / "odd.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the padding note
        copy_through(folder, dst, preset="ultrafast")  # odd size -> padded by one pixel, yuv420p
    info, got = read_all(dst)
    assert (info.width, info.height, len(got)) == (34, 22, 4)
    assert stream_times(dst) == [Fraction(i, 25) for i in range(4)]  # pts made up from 25 fps
    for a, b in zip(frames, got):
        assert mean_abs(a, b.rgb[:21, :33]) < 3


def test_audio_reencoded_when_container_cannot_hold_it(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_test_video(src, clip_frames(5), 25, audio_seconds=0.2)
    dst = tmp_path / "out.webm"  # WebM holds neither H.264 nor AAC
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        copy_through(src, dst)
    messages = " | ".join(str(w.message) for w in caught)
    assert "encoding video as vp9" in messages and "re-encoding it to opus" in messages
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    name, seconds = audio_summary(dst)
    assert name == "opus" and seconds == pytest.approx(0.2, abs=0.03)
    assert len(read_all(dst)[1]) == 5


# ---------------------------------------------------------------------- output safety


def test_refuses_to_overwrite_or_replace_input(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_test_video(src, clip_frames(2), 25)
    info, frames = read_all(src)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        open_output(existing, info, source=src)
    with pytest.raises(OutputError, match="input"):
        open_output(src, info, source=src, overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        open_output(tmp_path / "missing" / "out.mp4", info, source=src)
    nonempty = tmp_path / "dir"
    nonempty.mkdir()
    (nonempty / "other.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        open_output(nonempty, info, source=src)
    with pytest.raises(OutputError, match="single image"):
        open_output(tmp_path / "one.png", info, source=src)
    with pytest.raises(OutputError, match="no video encoder"):
        open_output(tmp_path / "new.mp4", info, source=src, codec="no-such-codec")
    assert existing.read_bytes() == b"keep me"

    with open_output(existing, info, source=src, overwrite=True, preset="ultrafast") as writer:
        for f in frames:
            writer.write(f)
    assert len(read_all(existing)[1]) == 2


def test_abort_and_exception_leave_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_test_video(src, clip_frames(3), 25, audio_seconds=0.1)
    info, frames = read_all(src)
    before = sorted(tmp_path.iterdir())

    writer = open_output(tmp_path / "a.mp4", info, source=src)
    writer.write(frames[0])
    writer.abort()
    for target in (tmp_path / "b.mp4", tmp_path / "pngs"):
        with pytest.raises(RuntimeError):
            with open_output(target, info, source=src) as w:
                w.write(frames[0])
                raise RuntimeError("boom")
    assert sorted(tmp_path.iterdir()) == before

    # With overwrite, a failed run keeps the old file intact.
    old = tmp_path / "old.mp4"
    old.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with open_output(old, info, source=src, overwrite=True) as w:
            w.write(frames[0])
            raise RuntimeError("boom")
    assert old.read_bytes() == b"previous result"


def test_non_ascii_paths_with_spaces(tmp_path: Path) -> None:
    base = tmp_path / "vidéo ünï 測試"
    base.mkdir()
    src = base / "clip ß 1.mp4"
    write_test_video(src, clip_frames(3), 25, audio_seconds=0.1)
    copy_through(src, base / "sortie é.mkv", preset="ultrafast")
    assert len(read_all(base / "sortie é.mkv")[1]) == 3
    copy_through(src, base / "images ü")
    info, frames = read_all(base / "images ü")
    assert info.num_frames == 3 and len(frames) == 3
    save_png(base / "bild ö.png", frames[0].rgb[:, :, ::-1])
    assert read_all(base / "bild ö.png")[0].kind == "image"


def test_large_frames_use_the_low_memory_codec_settings(tmp_path: Path) -> None:
    """Above 2560x1440 the reader and x264 are set up for low memory; frames and timestamps still
    round-trip (a few frames of 2592x1472, just over the threshold)."""
    h, w = 1472, 2592
    rng = np.random.default_rng(0)
    frames = [np.full((h, w, 3), 40 + 30 * i, np.uint8) + rng.integers(0, 8, (h, w, 3), dtype=np.uint8)
              for i in range(3)]
    src = tmp_path / "big.mp4"
    write_test_video(src, frames, 25)
    copy_through(src, tmp_path / "out.mp4", preset="ultrafast")
    with open_input(tmp_path / "out.mp4") as r:
        assert r.info.width == w and r.info.height == h
        got = [f.rgb for f in r]
    assert len(got) == 3 and stream_times(tmp_path / "out.mp4") == stream_times(src)
    for a, b in zip(frames, got):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3
