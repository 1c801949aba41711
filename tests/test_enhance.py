"""Streaming enhancement: equivalence with the clip-level reference, tiling, and file round trips."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from stpr.enhance import Enhancer, _tile_starts, padded_frame
from stpr.errors import UsageError

from helpers import dark_clip, texture, tiny_model
from media import write_test_video

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kw", [{"pixel_fusion": False}, {"pixel_fusion": True}],
                         ids=["features", "pixel_fusion"])
def test_streaming_matches_clip_reference(kw):
    model = tiny_model(**kw)
    clip = dark_clip()
    streamed = list(Enhancer(model, tile=0, precision="fp32", temporal_filter=0).enhance_frames(list(clip)))
    assert len(streamed) == len(clip)
    x = torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float() / 255.0
    with torch.no_grad():
        ref, _ = model.forward_clip(x, list(range(len(clip))))
    for s, r in zip(streamed, ref):
        r8 = (r[0].clamp(0, 1).permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy()
        assert np.abs(s.astype(int) - r8.astype(int)).max() <= 1


@pytest.mark.parametrize("n", [1, 2, 3])
def test_short_sequences_give_one_output_per_frame(n):
    out = list(Enhancer(tiny_model(), tile=0).enhance_frames(list(dark_clip(n=n))))
    assert len(out) == n and out[0].shape == (40, 56, 3) and out[0].dtype == np.uint8


def _textured_dark_clip(n: int, h: int, w: int) -> np.ndarray:
    """A dark, smooth scene with mild noise: like real footage, unlike ``dark_clip``'s white noise,
    on which any change of a sub-pixel flow (tiles see less context) changes every blended pixel."""
    rng = np.random.default_rng(0)
    base = texture(h, w, seed=1).astype(float) * 0.2
    return np.stack([np.clip(base + rng.normal(0, 2, base.shape), 0, 255) for _ in range(n)]).astype(np.uint8)


@pytest.mark.parametrize("kw", [{"pixel_fusion": False}, {"pixel_fusion": True}],
                         ids=["features", "pixel_fusion"])
def test_tiled_output_close_to_whole_frame(kw):
    model = tiny_model(**kw)
    clip = _textured_dark_clip(n=3, h=150, w=200)
    whole = np.stack(list(Enhancer(model, tile=0, precision="fp32").enhance_frames(list(clip)))).astype(float)
    tiled = np.stack(list(Enhancer(model, tile=128, tile_overlap=48, precision="fp32").enhance_frames(list(clip)))).astype(float)
    assert whole.shape == tiled.shape
    # Tiles see less context at their borders; feathered blending keeps the difference small
    # (a misplaced or unblended tile costs tens of levels).
    mse = ((whole - tiled) ** 2).mean()
    assert 10 * np.log10(255.0 ** 2 / mse) > 35.0


def test_tile_starts_cover_everything():
    for size, tile, ov, mult in [(100, 64, 16, 1), (64, 64, 16, 32), (30, 64, 16, 32), (257, 96, 32, 32),
                                 (2160, 1440, 32, 32), (3840, 1440, 32, 32), (1000, 200, 50, 7)]:
        length, starts = _tile_starts(size, tile, ov, mult)
        assert length <= max(tile, 1) or length == size
        covered = np.zeros(size, int)
        for s in starts:
            covered[s:s + length] += 1
        assert covered.min() >= 1 and starts[0] == 0 and starts[-1] + length == size
        # neighbouring tiles overlap by at least the requested overlap
        assert all(b - a <= length - ov for a, b in zip(starts, starts[1:]))


def test_frame_size_change_is_an_input_error():
    from stpr.errors import InputError

    frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((32, 40, 3), np.uint8)]
    with pytest.raises(InputError):
        list(Enhancer(tiny_model(), tile=0).enhance_frames(frames))


def test_video_round_trip_keeps_audio_and_timestamps(tmp_path, weights):
    src = tmp_path / "dark clip é.mp4"
    frames = dark_clip(n=12, h=48, w=64)
    write_test_video(src, frames, fps=25, audio_seconds=12 / 25)
    dst = tmp_path / "out.mp4"
    res = Enhancer.from_pretrained(weights).enhance_video(src, dst, progress=False)
    assert res["frames"] == 12
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert [s.type for s in b.streams].count("audio") == 1
        assert b.streams.audio[0].codec_context.name == a.streams.audio[0].codec_context.name
        pts_a = [f.pts * f.time_base for f in a.decode(video=0)]
        pts_b = [f.pts * f.time_base for f in b.decode(video=0)]
    assert pts_a == pts_b
    assert not list(tmp_path.glob(".*partial*"))


def test_variable_frame_rate_timestamps_carried(tmp_path, weights):
    src = tmp_path / "vfr.mkv"
    pts = [0, 1, 2, 5, 6, 10, 11, 12]
    write_test_video(src, dark_clip(n=len(pts), h=32, w=32), fps=25, pts=pts)
    dst = tmp_path / "vfr_out.mkv"
    Enhancer.from_pretrained(weights).enhance_video(src, dst, progress=False)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        ta = [f.time for f in a.decode(video=0)]
        tb = [f.time for f in b.decode(video=0)]
    assert np.allclose(ta, tb, atol=1e-3)


def test_folder_and_image_outputs(tmp_path, weights):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(dark_clip(n=4, h=24, w=30)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f[..., ::-1])
    (folder / "notes.txt").write_text("not an image")
    enh = Enhancer.from_pretrained(weights)
    enh.enhance_video(folder, tmp_path / "frames_out", progress=False)
    outs = sorted((tmp_path / "frames_out").glob("*.png"))
    assert len(outs) == 4 and cv2.imread(str(outs[0])).shape == (24, 30, 3)
    enh.enhance_video(folder / "000.png", tmp_path / "one.png", progress=False)
    assert cv2.imread(str(tmp_path / "one.png")).shape == (24, 30, 3)


def test_failure_midway_leaves_no_output(tmp_path, weights):
    from stpr.errors import StprError

    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    for i, f in enumerate(dark_clip(n=3, h=24, w=30)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    (folder / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    dst = tmp_path / "out.mp4"
    with pytest.raises(StprError):
        Enhancer.from_pretrained(weights).enhance_video(folder, dst, progress=False)
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == [folder]


def test_fps_fraction_preserved(tmp_path, weights):
    src = tmp_path / "ntsc.mp4"
    write_test_video(src, dark_clip(n=5, h=32, w=32), fps=Fraction(30000, 1001))
    dst = tmp_path / "ntsc_out.mp4"
    Enhancer.from_pretrained(weights).enhance_video(src, dst, progress=False)
    with av.open(str(dst)) as c:
        assert abs(float(c.streams.video[0].average_rate) - 30000 / 1001) < 0.01


def test_half_precision_states_stay_close(tmp_path):
    """float16 storage of the cached per-frame states (used for tiled frames) changes outputs by at
    most a level or two."""
    model = tiny_model()
    clip = list(dark_clip(n=5, h=64, w=80, seed=4))
    ref = list(Enhancer(model, tile=0, half_states=False, precision="fp32", temporal_filter=0).enhance_frames(clip))
    half = list(Enhancer(model, tile=0, half_states=True, precision="fp32", temporal_filter=0).enhance_frames(clip))
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(ref, half)) <= 2


def test_io_threads_give_identical_video(tmp_path, weights):
    """The reader/writer threads change when work happens, not what is written."""
    src = tmp_path / "in.mp4"
    write_test_video(src, dark_clip(n=7, h=32, w=48), fps=25, audio_seconds=0.28)
    enh = Enhancer.from_pretrained(weights)
    outs = {}
    for io in (False, True):
        dst = tmp_path / f"out_{io}.mkv"
        enh.enhance_video(src, dst, codec="ffv1", progress=False, io_threads=io)
        with av.open(str(dst)) as c:
            outs[io] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(outs[True]) == 7 and all(np.array_equal(a, b) for a, b in zip(outs[False], outs[True]))


@pytest.mark.filterwarnings("ignore:--precision bf16")  # bf16 asked for on purpose, native or not
def test_bf16_stays_close():
    model = tiny_model()
    clip = list(dark_clip(n=4, h=48, w=64, seed=5))
    ref = np.stack(list(Enhancer(model, tile=0, precision="fp32").enhance_frames(clip))).astype(int)
    bf = np.stack(list(Enhancer(model, tile=0, precision="bf16").enhance_frames(clip))).astype(int)
    assert np.abs(ref - bf).mean() < 1.5 and bf.shape == ref.shape
    assert np.abs(ref - bf).max() > 0  # bf16 did run: it rounds differently


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_default_precision_follows_the_cpu(monkeypatch, has_bf16, expected):
    from stpr import hardware

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: has_bf16)
    enh = Enhancer(tiny_model(), device="cpu")
    assert enh.precision == expected and enh.device == torch.device("cpu")


@pytest.mark.parametrize("batch", [2, 3, 8])
@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_batched_windows_match_one_at_a_time(batch, n):
    """Several windows per network call (the GPU path's batching, run here on the CPU) give the
    same frames, in order, for clips shorter and longer than a batch."""
    model = tiny_model(pixel_fusion=True)
    clip = list(_textured_dark_clip(n=n, h=40, w=56))
    one = list(Enhancer(model, tile=0, precision="fp32", batch=1).enhance_frames(clip))
    many = list(Enhancer(model, tile=0, precision="fp32", batch=batch).enhance_frames(clip))
    assert len(many) == n
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(one, many)) <= 1


def test_batched_windows_with_tiles():
    model = tiny_model(pixel_fusion=True)
    clip = list(_textured_dark_clip(n=5, h=150, w=200))
    one = np.stack(list(Enhancer(model, tile=128, tile_overlap=48, precision="fp32").enhance_frames(clip)))
    many = np.stack(list(Enhancer(model, tile=128, tile_overlap=48, precision="fp32", batch=4).enhance_frames(clip)))
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1


def test_batch_divides_the_tiling_budget():
    enh = Enhancer(tiny_model(), memory_mb=100, device="cpu")
    assert enh.tile_size_for(1080, 1920) > 0 and enh.tile_size_for(360, 640) == 0
    assert Enhancer(tiny_model(), memory_mb=100, batch=8).tile_size_for(360, 640) > 0


def test_bad_device_or_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="fp16 is for GPUs"):
        Enhancer(tiny_model(), device="cpu", precision="fp16")
    with pytest.raises(UsageError, match="--device"):
        Enhancer(tiny_model(), device="tpu")
    with pytest.raises(UsageError, match="batch"):
        Enhancer(tiny_model(), batch=0)
    with pytest.raises(UsageError, match="at least 32"):
        Enhancer(tiny_model(), tile=8)


@pytest.mark.filterwarnings("ignore:--precision bf16")  # bf16 asked for on purpose, native or not
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_workers_enhance_frames_at_once_with_the_same_output(precision):
    """Two frames at once, each in its own thread: the same frames (to a level: one torch thread
    per call sums in another order), in order, for any length; torch's threads are restored."""
    model = tiny_model(seed=3)
    for n in (1, 2, 5, 6):
        clip = list(dark_clip(n=n, h=40, w=56, seed=n))
        ref = list(Enhancer(model, precision=precision, tile=0).enhance_frames(clip))
        before = torch.get_num_threads()
        enh = Enhancer(model, precision=precision, tile=0, workers=2)
        assert enh.workers_for(40, 56) == 2
        got = list(enh.enhance_frames(clip))
        assert torch.get_num_threads() == before
        assert len(got) == n
        assert max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(ref, got)) <= 1


def test_workers_fall_back_to_one_where_they_do_not_apply():
    model = tiny_model()
    assert Enhancer(model, tile=64, workers=2).workers_for(200, 300) == 1  # tiled
    assert Enhancer(model, tile=0, workers=2, batch=2).workers_for(40, 56) == 1  # several windows per call
    assert Enhancer(model, tile=0, workers=2, half_states=True).workers_for(40, 56) == 1
    assert Enhancer(model, workers=2, memory_mb=1).workers_for(40, 56) == 1  # not twice in the budget
    assert Enhancer(model, workers=1).workers_for(40, 56) == 1
    threads = torch.get_num_threads()
    assert Enhancer(model, tile=0).workers_for(40, 56) == (threads if threads > 1 else 1)  # small frames
    assert Enhancer(model, tile=0).workers_for(1080, 1920) == 1  # large frames: one at a time
    with pytest.raises(UsageError):
        Enhancer(model, workers=0)


def test_tune_malloc_leaves_a_users_malloc_settings_alone():
    from stpr.enhance import MALLOC_ENV_VARS, tune_malloc

    for var in MALLOC_ENV_VARS:
        assert tune_malloc(environ={var: "1"}) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_malloc_applies_on_glibc_in_a_fresh_process():
    # Its own process: the settings are process-wide and meant to be made once, early.
    from stpr.enhance import MALLOC_ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV_VARS}
    code = ("import numpy as np; from stpr.enhance import _glibc, tune_malloc; ok = tune_malloc(); "
            "[np.ones(8 << 20).sum() for _ in range(3)]; print(ok, _glibc() is not None)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    applied, glibc = out.split()
    assert applied == glibc  # applied exactly where glibc is present, and large blocks still allocate


class _BusyMachine:
    """OtherLoad stand-in: other processes keep ``cores`` busy."""

    def __init__(self, cores):
        self.cores = cores

    def busy(self):
        return self.cores


def test_one_frame_at_a_time_runs_on_the_cores_others_leave(monkeypatch):
    import stpr.enhance as E

    seen = []
    monkeypatch.setattr(E, "OtherLoad", lambda: _BusyMachine(16.0))
    monkeypatch.setattr(E, "LOAD_CHECK_SECONDS", 0.0)
    model = tiny_model()
    frames = [texture(40, 56, seed=i) for i in range(5)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        enh = Enhancer(model, tile=0, workers=1)
        for _ in enh.enhance_frames(frames):
            seen.append(torch.get_num_threads())
        assert seen[-1] == 1  # every core busy elsewhere: one thread
        assert torch.get_num_threads() == 2  # and the caller's setting back afterwards
        # an idle machine of 2 cores: both threads stay
        monkeypatch.setattr(E, "OtherLoad", lambda: _BusyMachine(0.0))
        monkeypatch.setattr(E, "cores_available", lambda: 2)
        seen.clear()
        for _ in Enhancer(model, tile=0, workers=1).enhance_frames(frames):
            seen.append(torch.get_num_threads())
        assert set(seen) == {2}
        # threads chosen by the caller stay as chosen
        seen.clear()
        for _ in Enhancer(model, tile=0, workers=1, threads=2).enhance_frames(frames):
            seen.append(torch.get_num_threads())
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("hw", [(37, 53), (64, 64), (70, 40)])
def test_padded_frame_is_the_models_padding(hw):
    multiple = tiny_model().multiple
    frame = torch.randint(0, 256, (*hw, 3), dtype=torch.uint8)
    x = padded_frame(frame, multiple)
    ref = frame.permute(2, 0, 1)[None].float().div_(255.0)
    ph, pw = (-hw[0]) % multiple, (-hw[1]) % multiple
    padded = torch.nn.functional.pad(ref, (0, pw, 0, ph), mode="replicate")
    assert torch.equal(x, padded) and torch.equal(x[:, :, :hw[0], :hw[1]], ref)
    assert x.is_contiguous()
