"""Synthetic motion and the training datasets (all data is generated here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import stpr.data.datasets as ds_mod
from stpr.data.datasets import (LOLClips, MixedClips, PairedVideoFolders, SharedArrays, SyntheticStillClips,
                                SyntheticVideoClips, lol_scene_groups, lol_sibling_split, lol_file, lol_split, read_stills)
from stpr.data.motion import affine_flow, line_kernel, motion_blur_clip, random_trajectory, warp_crop
from stpr.data.synthesis import srgb_to_linear
from stpr.models.warp import flow_warp, resize_flow

from helpers import make_lol, texture, write_rgb

pytestmark = pytest.mark.usefixtures("one_thread")


def check_sample(s: dict, n: int, crop: int) -> None:
    q = crop // 4
    assert set(s) == {"low", "high", "flow_fw", "flow_bw", "flow_valid", "stats", "lol", "lol_natural", "deferred",
                      "camera", "exposure_scales"}
    assert s["low"].shape == s["high"].shape == (n, 3, crop, crop)
    assert s["camera"].shape == (15,) and s["exposure_scales"].shape == (n,)
    assert s["stats"].shape == (n, 6)
    assert s["flow_fw"].shape == s["flow_bw"].shape == (n - 1, 2, q, q)
    assert s["flow_valid"].shape == (n - 1, 1, q, q)
    for k, v in s.items():
        assert v.dtype == torch.float32, k
        assert torch.isfinite(v).all(), k
    for k in ("low", "high", "flow_valid"):
        assert s[k].min() >= 0 and s[k].max() <= 1, k


def assert_teacher_flow_aligns(s: dict, crop: int, t_max: int) -> None:
    """Warping each clean frame with the sample's teacher flow (both directions) lands on its
    neighbour: far closer than not warping at all."""
    high, m = s["high"], 8
    for t in range(t_max):
        fw = resize_flow(s["flow_fw"][t:t + 1], (crop, crop))
        bw = resize_flow(s["flow_bw"][t:t + 1], (crop, crop))
        err_fw = (flow_warp(high[t + 1:t + 2], fw) - high[t:t + 1])[..., m:-m, m:-m].abs().mean()
        err_bw = (flow_warp(high[t:t + 1], bw) - high[t + 1:t + 2])[..., m:-m, m:-m].abs().mean()
        none = (high[t + 1] - high[t])[..., m:-m, m:-m].abs().mean()
        assert err_fw < 0.15 * none and err_bw < 0.15 * none, (t, err_fw, err_bw, none)


# ------------------------------------------------------------------------------------- motion


def test_affine_flow_is_exact():
    img = texture(160, 160, seed=1, sigma=3.0).astype(np.float32)
    rng = np.random.default_rng(3)
    crop = 48
    mats = random_trajectory(3, crop, img.shape[:2], rng)
    crops = [torch.from_numpy(warp_crop(img, m, crop)).permute(2, 0, 1)[None] for m in mats]
    for t in range(2):
        flow = torch.from_numpy(affine_flow(mats[t], mats[t + 1], crop))[None]
        assert flow.shape == (1, 2, crop, crop)
        assert flow.abs().max() > 1.0  # the crops really moved
        warped = flow_warp(crops[t + 1], flow)
        m = 10
        err = (warped - crops[t])[..., m:-m, m:-m].abs().mean().item()
        no_warp = (crops[t + 1] - crops[t])[..., m:-m, m:-m].abs().mean().item()
        assert err < 1.5, err  # only interpolation error (8-bit units)
        assert err < 0.1 * no_warp, (err, no_warp)
        # backward flow undoes the forward flow
        back = torch.from_numpy(affine_flow(mats[t + 1], mats[t], crop))[None]
        roundtrip = flow + flow_warp(back, flow)
        assert roundtrip[..., m:-m, m:-m].abs().max() < 1e-3


def test_affine_flow_quarter_resolution():
    rng = np.random.default_rng(4)
    mats = random_trajectory(2, 64, (200, 200), rng)
    full = torch.from_numpy(affine_flow(mats[0], mats[1], 64, 1.0))[None]
    small = torch.from_numpy(affine_flow(mats[0], mats[1], 64, 0.25))[None]
    assert small.shape == (1, 2, 16, 16)
    # the flow is affine in the pixel position: the 4x4 average of the full-resolution flow,
    # in 1/4-resolution pixels, is exactly the flow at the 1/4-resolution pixel centres
    pooled = torch.nn.functional.avg_pool2d(full, 4) * 0.25
    assert torch.allclose(small, pooled, atol=1e-4)
    assert torch.allclose(resize_flow(small, (64, 64))[..., 4:-4, 4:-4], full[..., 4:-4, 4:-4], atol=1e-3)


def test_random_trajectory_motion_bounds():
    rng = np.random.default_rng(0)
    mats = random_trajectory(5, 32, (300, 400), rng, max_shift=6.0)
    assert len(mats) == 5 and all(m.shape == (2, 3) for m in mats)
    centres = np.array([m @ np.array([15.5, 15.5, 1.0]) for m in mats])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 6.0 * np.sqrt(2) + 3.0
    assert (centres[:, 0] > 0).all() and (centres[:, 0] < 400).all()


# ------------------------------------------------------------------------------------- LOL


def test_lol_split_holds_out_highest_numbers(tmp_path):
    names = ["1", "2", "9", "10", "22", "100", "101"]
    root = tmp_path / "lol"
    (root / "low").mkdir(parents=True)
    for n in reversed(names):  # creation order must not matter
        (root / "low" / f"{n}.png").write_bytes(b"")
    (root / "low" / "notes.txt").write_text("not an image")
    train, val = lol_split(root, 2)
    assert val == ["100", "101"]
    assert train == ["1", "2", "9", "10", "22"]
    assert lol_split(root, 2) == (train, val)
    train3, val3 = lol_split(root, 3)
    assert val3 == ["22", "100", "101"] and not set(train3) & set(val3)


def test_lol_split_without_validation(tmp_path):
    make_lol(tmp_path / "lol", names=("1", "2"), h=16, w=16)
    assert lol_split(tmp_path / "lol", 0) == (["1", "2"], [])


def test_lol_clips_need_both_images_of_a_pair_and_room_for_the_crop(tmp_path, lol_root):
    root = make_lol(tmp_path / "lol", names=("a[1]", "b"))  # glob characters in a name are literal
    (root / "high" / "b.png").unlink()
    assert lol_file(root, "low", "a[1]").name == "a[1].png"
    with pytest.raises(ValueError, match="high/ has no image called b"):
        LOLClips(root, ["a[1]", "b"], frames=2, crop=32)
    with pytest.raises(ValueError, match="64x48, smaller than the crop 56"):  # it would be mostly border
        LOLClips(lol_root, ["1"], frames=2, crop=56)


def test_lol_clips_keys_shapes_and_seeding(lol_root):
    ds = LOLClips(lol_root, ["1", "2"], frames=4, crop=32, length=10, seed=0)
    assert len(ds) == 10
    a = ds[0]
    check_sample(a, 4, 32)
    assert a["low"].mean() < 0.5 * a["high"].mean()  # dark input, bright target
    assert a["flow_valid"].eq(1).all()
    assert a["lol"] == 1  # real pairs are marked (TrainConfig.lol_tone_free)
    b = ds[0]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    c = ds[1]
    assert not torch.equal(a["low"], c["low"])
    ds.epoch = 1
    assert not torch.equal(ds[0]["low"], a["low"])
    other_seed = LOLClips(lol_root, ["1", "2"], frames=4, crop=32, length=10, seed=1)
    assert not torch.equal(other_seed[0]["low"], a["low"])


def test_lol_clips_max_shift_sets_the_drift(lol_root, monkeypatch):
    """``max_shift`` reaches the trajectory; a larger one gives larger teacher flows."""
    seen = []

    def spy(*args, **kw):
        seen.append(kw["max_shift"])
        return random_trajectory(*args, **kw)

    monkeypatch.setattr(ds_mod, "random_trajectory", spy)
    mags = {}
    for shift in (1.0, 12.0):
        ds = LOLClips(lol_root, ["1", "2"], frames=3, crop=32, length=16, seed=0, max_shift=shift)
        mags[shift] = float(np.mean([ds[i]["flow_fw"].norm(dim=1).mean() for i in range(16)]))
    assert seen == [1.0] * 16 + [12.0] * 16
    assert mags[12.0] > 3 * mags[1.0]


def test_lol_clips_teacher_flow_aligns_frames(lol_root):
    ds = LOLClips(lol_root, ["1", "2", "3"], frames=3, crop=32, length=8, seed=2)
    for i in range(6):  # several samples: both flipped and unflipped clips
        assert_teacher_flow_aligns(ds[i], 32, 2)


def test_lol_clips_noise_differs_between_frames(lol_root, monkeypatch):
    """With a static trajectory all frames show the same content: the low frames must still carry
    independent noise (at most one frame keeps the real noisy image)."""
    def static(n, crop, img_hw, rng, **kw):
        m = np.array([[1.0, 0.0, 8.0], [0.0, 1.0, 6.0]])
        return [m.copy() for _ in range(n)]

    monkeypatch.setattr(ds_mod, "random_trajectory", static)
    ds = LOLClips(lol_root, ["1"], frames=4, crop=32, length=8, seed=0)
    for i in range(4):
        s = ds[i]
        assert s["flow_fw"].abs().max() < 1e-5 and s["flow_bw"].abs().max() < 1e-5
        high, low = s["high"], s["low"]
        assert all(torch.equal(high[0], high[t]) for t in range(1, 4))
        for t in range(3):
            diff = (low[t + 1] - low[t]) * 255
            assert not torch.equal(low[t], low[t + 1]), (i, t)
            assert diff.abs().mean() > 0.5, (i, t)  # fresh noise, not a few rounding flips
            assert diff.mean().abs() < 2.0  # but the same underlying image


# ------------------------------------------------------------------------------------- synthetic video


def test_synthetic_video_clips():
    rng = np.random.default_rng(0)
    base = texture(64, 72, seed=5)
    video = np.stack([np.roll(base, 2 * t, axis=1) for t in range(8)])  # content moves right
    video = np.clip(video.astype(np.int16) + rng.integers(-3, 4, video.shape), 0, 255).astype(np.uint8)
    ds = SyntheticVideoClips([video], frames=4, crop=48, length=6, seed=0, h264_prob=0.0)
    s = ds[0]
    check_sample(s, 4, 48)
    assert s["low"].mean() < 0.7 * s["high"].mean() and s["lol"] == 0
    # high frames are crops of the clean video
    hi = (s["high"][0].permute(1, 2, 0) * 255).round().byte().numpy()
    found = any(np.array_equal(hi, f[y:y + 48, x:x + 48]) or np.array_equal(hi, f[y:y + 48, x:x + 48][:, ::-1])
                for f in video for y in range(64 - 48 + 1) for x in range(72 - 48 + 1))
    assert found
    # DIS teacher sees the 2 px/frame motion: 0.5 px at 1/4 resolution, or 1.0 with a frame stride
    # of 2 (the sign depends on play direction and flip)
    for k in range(4):
        sk = ds[k]
        fx = sk["flow_fw"][:, 0][sk["flow_valid"][:, 0] > 0].abs().median().item()
        assert min(abs(fx - 0.5), abs(fx - 1.0)) < 0.15, (k, fx)
    b = ds[0]
    assert all(torch.equal(s[k], b[k]) for k in s)
    assert not torch.equal(ds[1]["low"], s["low"])


def test_synthetic_video_clips_exposure_jumps():
    """With jump_prob=1 every clip's frames get their own exposure (up to 3x either way), so the
    frame brightness ratios within a clip spread far beyond the camera flicker; with 0 they do not."""
    video = np.stack([texture(64, 64, seed=7)] * 6)

    def spread(ds) -> float:
        out = []
        for i in range(8):
            lin = ds[i]["low"].double().pow(2.2).mean(dim=(1, 2, 3))
            out.append(float((lin.max() / lin.min()).log()))
        return max(out)

    steady = SyntheticVideoClips([video], frames=4, crop=48, length=8, seed=3, h264_prob=0.0)
    jumpy = SyntheticVideoClips([video], frames=4, crop=48, length=8, seed=3, h264_prob=0.0, jump_prob=1.0)
    assert spread(steady) < 0.35  # flicker std <= 0.05 in log exposure
    assert spread(jumpy) > 0.8


def test_synthetic_video_clips_noise_scale():
    """noise_scale=0 gives noise-free dark clips: a static flat video stays flat; at 1 it is noisy."""
    video = np.full((6, 64, 64, 3), 170, np.uint8)
    noisy = SyntheticVideoClips([video], frames=2, crop=48, length=2, seed=5, h264_prob=0.0)
    clean = SyntheticVideoClips([video], frames=2, crop=48, length=2, seed=5, h264_prob=0.0, noise_scale=0.0)
    # per channel: the camera's white balance tints the channels differently
    assert noisy[0]["low"][0].std(dim=(1, 2)).min() > 0.005
    assert clean[0]["low"][0].std(dim=(1, 2)).max() < 1e-6


@pytest.mark.parametrize("cls", ["video", "still"])
def test_camera_degradation(cls):
    """degradation="camera" darkens through the phone pipeline: dark, noisy, seeded, with the same
    keys and shapes as the white synthesis, and the noise scale still reaches the sensor."""
    if cls == "video":
        video = np.stack([texture(64, 64, seed=7)] * 6)
        make = lambda **kw: SyntheticVideoClips([video], frames=3, crop=48, length=4, seed=2, **kw)  # noqa: E731
    else:
        img = texture(150, 170, seed=11, sigma=3.0)
        make = lambda **kw: SyntheticStillClips([img], frames=3, crop=48, length=4, seed=2, **kw)  # noqa: E731
    cam, white = make(degradation="camera"), make()
    s = cam[0]
    check_sample(s, 3, 48)
    assert s["low"].mean() < 0.7 * s["high"].mean()
    assert torch.equal(s["low"], cam[0]["low"]) and not torch.equal(s["low"], white[0]["low"])
    flat = np.full((6, 64, 64, 3), 170, np.uint8)
    if cls == "video":
        quiet = SyntheticVideoClips([flat], frames=2, crop=48, length=2, seed=5, h264_prob=0.0,
                                    degradation="camera", noise_scale=0.0)[0]["low"][0]
        noisy = SyntheticVideoClips([flat], frames=2, crop=48, length=2, seed=5, h264_prob=0.0,
                                    degradation="camera")[0]["low"][0]
        assert quiet.std(dim=(1, 2)).max() < noisy.std(dim=(1, 2)).min()
    with pytest.raises(ValueError, match="degradation"):
        make(degradation="raw")


@pytest.mark.parametrize("cls", ["video", "still"])
def test_deferred_camera_is_darkened_on_the_device(cls):
    """defer_camera: clips without a codec come out clean with their camera, and
    apply_deferred_camera darkens them (and takes their statistics from the dark frames) as the
    loader would have; clips that drew H.264 are darkened in the loader as before."""
    if cls == "video":
        video = np.stack([texture(64, 64, seed=7)] * 6)
        make = lambda **kw: SyntheticVideoClips([video], frames=3, crop=48, length=8, seed=2,  # noqa: E731
                                                degradation="camera", **kw)
    else:
        img = texture(150, 170, seed=11, sigma=3.0)
        make = lambda **kw: SyntheticStillClips([img], frames=3, crop=48, length=8, seed=2,  # noqa: E731
                                                degradation="camera", **kw)
    loader, deferred = make(h264_prob=0.0), make(h264_prob=0.0, defer_camera=True)
    a, d = loader[0], deferred[0]
    check_sample(d, 3, 48)
    assert a["deferred"] == 0 and d["deferred"] == 1 and a["camera"].abs().sum() == 0
    assert torch.equal(d["low"], d["high"])  # clean until the device darkens it
    assert torch.equal(a["high"], d["high"])  # same crop, motion and flip: the random stream is kept
    batch = torch.utils.data.default_collate([d, loader[1]])
    out = ds_mod.apply_deferred_camera(batch, torch.Generator().manual_seed(0))
    dark = out["low"][0]
    assert torch.equal(out["low"][1], batch["low"][1])  # a loader-darkened sample is left alone
    # the device's dark clip is as dark as the loader's with the same camera (noise differs)
    assert abs(float(dark.mean()) - float(a["low"].mean())) < 0.1 * float(a["low"].mean()) + 0.004
    assert dark.mean() < 0.7 * d["high"].mean()
    assert torch.allclose(out["stats"][0], ds_mod.frame_stats(dark))
    with_codec = make(h264_prob=1.0, defer_camera=True)[0]
    assert with_codec["deferred"] == 0 and not torch.equal(with_codec["low"], with_codec["high"])
    with pytest.raises(ValueError, match="defer_camera"):
        SyntheticVideoClips([np.stack([texture(64, 64, seed=7)] * 6)], frames=3, crop=48, defer_camera=True)


def test_synthetic_video_clips_rejects_small_videos():
    small = np.zeros((3, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError):
        SyntheticVideoClips([small], frames=4, crop=48)
    with pytest.raises(ValueError):
        SyntheticVideoClips([np.zeros((8, 40, 64, 3), np.uint8)], frames=4, crop=48)


# ------------------------------------------------------------------------------------- synthetic stills


def test_synthetic_still_clips_are_moving_dark_crops_with_exact_flow():
    img = texture(150, 170, seed=11, sigma=3.0)
    ds = SyntheticStillClips([img], frames=3, crop=40, length=8, seed=4, h264_prob=0.0, scale_range=(0.8, 1.0))
    for i in range(6):  # flipped and unflipped clips
        s = ds[i]
        check_sample(s, 3, 40)
        high, low = s["high"], s["low"]
        assert low.mean() < 0.6 * high.mean()
        assert not torch.equal(high[0], high[1])  # the camera moves
        assert_teacher_flow_aligns(s, 40, 2)
        assert (s["flow_valid"] == 1).all()
    a, b = ds[2], SyntheticStillClips([img], frames=3, crop=40, length=8, seed=4, h264_prob=0.0,
                                      scale_range=(0.8, 1.0))[2]
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded
    assert not torch.equal(ds[3]["low"], a["low"])


def test_synthetic_still_clips_scale_range_zooms_out(monkeypatch):
    """A scale of 0.5 shows twice the scene in the same crop; no scale may shrink the image below
    the span of the clip's trajectory (that would show reflected borders)."""
    seen = []
    real = ds_mod.random_trajectory

    def spy(n, crop, img_hw, rng, **kw):
        seen.append(img_hw)
        return real(n, crop, img_hw, rng, **kw)

    monkeypatch.setattr(ds_mod, "random_trajectory", spy)
    img = texture(200, 240, seed=2)
    SyntheticStillClips([img], frames=4, crop=32, seed=0, scale_range=(0.5, 0.5))[0]
    assert seen[-1] == (100, 120)
    SyntheticStillClips([img], frames=4, crop=32, seed=0, scale_range=(0.05, 0.05), max_shift=6.0)[0]
    span = 32 + 2 * (4 * 6.0 + 8)
    assert min(seen[-1]) >= span - 1 and min(seen[-1]) <= span + 1


def test_read_stills_files_folders_and_errors(tmp_path):
    write_rgb(tmp_path / "a" / "2.png", texture(20, 30, seed=1))
    write_rgb(tmp_path / "a" / "10.png", texture(24, 30, seed=2))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    write_rgb(tmp_path / "b.png", texture(28, 30, seed=3))
    ims = read_stills([str(tmp_path / "a"), str(tmp_path / "b.png")])
    assert [i.shape[0] for i in ims] == [20, 24, 28]  # natural order inside a folder, then the file
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        read_stills([str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError):
        read_stills([str(tmp_path / "missing.png")])
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot decode"):
        read_stills([str(tmp_path / "bad.jpg")])


# ------------------------------------------------------------------------------------- paired folders


def coded_frames(n: int, h: int, w: int, seed: int = 0):
    """Low/high frame pairs low_i = g + 5 i, high_i = 2 g + 50 + 10 i (g: a fixed texture), so that
    high_i - 2 low_i == 50 exactly when crops, frame order and flips agree."""
    yy, xx = np.mgrid[0:h, 0:w]
    g = ((xx * 37 + yy * 11) % 40).astype(np.int32)  # high stays <= 255 for i <= 11
    g = np.repeat(g[..., None], 3, axis=-1)
    lows = [(g + 5 * i).astype(np.uint8) for i in range(n)]
    highs = [(2 * g + 50 + 10 * i).astype(np.uint8) for i in range(n)]
    return lows, highs


def make_sdsd(root: Path, n: int = 6, h: int = 52, w: int = 60, single_gt: bool = False,
              dirs=("input", "GT")) -> Path:
    lows, highs = coded_frames(n, h, w)
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        write_rgb(root / dirs[0] / "scene1" / f"{i}.png", lo)
        if not single_gt:
            write_rgb(root / dirs[1] / "scene1" / f"{i}.png", hi)
    if single_gt:
        write_rgb(root / dirs[1] / "scene1" / "long.png", highs[0])
    return root


def test_paired_video_folders_sdsd(tmp_path):
    root = make_sdsd(tmp_path / "sdsd", n=12)
    ds = PairedVideoFolders(root, "sdsd", frames=4, crop=48, length=8, seed=0)
    assert len(ds.scenes) == 1 and len(ds.scenes[0][0]) == 12
    for i in range(6):
        s = ds[i]
        check_sample(s, 4, 48)
        low = (s["low"] * 255).round()
        high = (s["high"] * 255).round()
        # same crop, same frames, same flip for low and high
        assert torch.equal(high - 2 * low, torch.full_like(low, 50.0)), i
        # consecutive frames in natural order (0, 1, 2, ..., 10, 11 - not 0, 1, 10, 11, 2, ...)
        step = (low[1:] - low[:-1]).mean(dim=(1, 2, 3))
        assert torch.allclose(step, torch.full_like(step, 5.0)), step
        assert s["flow_fw"].abs().max() < 0.5  # static scene


def test_paired_video_folders_single_gt(tmp_path):
    root = make_sdsd(tmp_path / "smidlike", n=5, single_gt=True)
    ds = PairedVideoFolders(root, "sdsd", frames=3, crop=48, length=4, seed=0)
    s = ds[0]
    check_sample(s, 3, 48)
    assert all(torch.equal(s["high"][0], s["high"][t]) for t in range(1, 3))
    assert not torch.equal(s["low"][0], s["low"][1])


def test_paired_video_folders_custom_layout_scenes_and_errors(tmp_path):
    root = make_sdsd(tmp_path / "custom", n=5, dirs=("dark", "bright"))
    ds = PairedVideoFolders(root, "dark:bright", frames=3, crop=48, length=4)
    check_sample(ds[1], 3, 48)
    with pytest.raises(ValueError):
        PairedVideoFolders(root, "dark:bright", frames=3, crop=48, scenes=["other"])
    with pytest.raises(ValueError):  # scenes shorter than a clip are skipped -> nothing usable
        PairedVideoFolders(root, "dark:bright", frames=6, crop=48)


def test_paired_video_folders_npy(tmp_path):
    lows, highs = coded_frames(4, 48, 48)
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        for d, img in (("SMID_LQ_np", lo), ("SMID_Long_np", hi)):
            (tmp_path / d / "s0").mkdir(parents=True, exist_ok=True)
            np.save(tmp_path / d / "s0" / f"{i:04d}.npy", img.astype(np.float32) / 255.0)
    s = PairedVideoFolders(tmp_path, "smid", frames=3, crop=48, length=2)[0]
    check_sample(s, 3, 48)
    low = (s["low"] * 255).round()
    high = (s["high"] * 255).round()
    assert (high - 2 * low - 50).abs().max() <= 3  # float -> uint8 conversion truncates


# ------------------------------------------------------------------------------------- mixing


class Tagged(torch.utils.data.Dataset):
    def __init__(self, tag: str):
        self.tag, self.epoch = tag, 0

    def __len__(self):
        return 100

    def __getitem__(self, i):
        return {"tag": self.tag, "i": i, "epoch": self.epoch}


def test_mixed_clips():
    a, b = Tagged("a"), Tagged("b")
    only_b = MixedClips([a, b], [0.0, 1.0], length=50, seed=0)
    assert {only_b[i]["tag"] for i in range(50)} == {"b"}
    mixed = MixedClips([a, b], [3.0, 1.0], length=400, seed=0)
    tags = [mixed[i]["tag"] for i in range(400)]
    assert 0.65 < tags.count("a") / 400 < 0.85
    assert [mixed[i] for i in range(20)] == [mixed[i] for i in range(20)]  # deterministic
    mixed.set_epoch(3)
    assert a.epoch == b.epoch == 3 and mixed[0]["epoch"] == 3
    assert [mixed[i]["i"] for i in range(20)] != [MixedClips([a, b], [3.0, 1.0], 400, seed=0)[i]["i"]
                                                  for i in range(20)]  # epoch changes the draw


def test_synthetic_video_clips_small_crop():
    video = np.stack([texture(48, 48, seed=t) for t in range(6)])
    s = SyntheticVideoClips([video], frames=4, crop=32, length=2, h264_prob=0.0)[0]
    check_sample(s, 4, 32)


def test_lol_clip_stats_describe_the_whole_image(lol_root):
    """Crops carry the whole low image's exposure statistics, as tiles do at inference."""
    from stpr.data.datasets import read_rgb
    from stpr.models.common import frame_stats

    ds = LOLClips(lol_root, ["1"], frames=3, crop=32, length=4, seed=0)
    low = read_rgb(next((lol_root / "low").glob("1.*")))
    full = frame_stats(torch.from_numpy(low).permute(2, 0, 1)[None].float() / 255.0)[0]
    s = ds[0]
    assert torch.allclose(s["stats"], full.expand(3, -1))
    assert not torch.allclose(frame_stats(s["low"][:1])[0], full)  # a crop alone would differ


def test_shared_arrays_round_trip_any_shapes():
    arrays = [np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.full((5, 1), 7, np.uint8), np.zeros((0, 3), np.uint8)]
    sa = SharedArrays(arrays)
    assert len(sa) == 3 and not sa.block.is_shared()  # in-process use needs no shared memory
    for a, b in zip(arrays, sa):
        assert a.shape == b.shape and np.array_equal(a, b)
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.dumps(sa)  # what a worker start does
    assert sa.block.is_shared()
    for a, b in zip(arrays, sa):
        assert np.array_equal(a, b)


def test_many_lol_pairs_reach_forkserver_workers(tmp_path):
    """300 pairs (LOL's size): the dataset a worker receives holds a few shared blocks, not one per
    pair (a forkserver passes at most 256 file descriptors per process; a tensor per pair failed
    with "too many fds"), and the worker's samples are the in-process ones."""
    from stpr.train import worker_options

    root = make_lol(tmp_path, names=[str(k) for k in range(300)], h=16, w=16)
    ds = LOLClips(root, [str(k) for k in range(300)], frames=2, crop=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=[0, 1], **worker_options(1))
    for i, got in enumerate(loader):
        want = ds[i]
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_lol_sibling_split_holds_out_one_shot_of_scenes_that_still_train(tmp_path):
    """Scenes shot several times (near-identical truths) lose one shot each to validation; scenes shot
    once always train."""
    root = tmp_path / "lol"
    rng = np.random.default_rng(0)
    scenes = {"a": ["1", "2", "3"], "b": ["4"], "c": ["5", "6"], "d": ["7", "8"], "e": ["9"]}
    for k, (_, names) in enumerate(scenes.items()):
        base = texture(27, 40, seed=k).astype(np.float64)
        for n in names:
            shot = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
            write_rgb(root / "high" / f"{n}.png", shot)
            write_rgb(root / "low" / f"{n}.png", (shot // 10).astype(np.uint8))
    names = [str(i) for i in range(1, 10)]
    groups = lol_scene_groups(root, names)
    assert groups == list(scenes.values())
    train, held = lol_sibling_split(root, names, 2)
    assert len(held) == 2 and set(held) | set(train) == set(names) and not set(held) & set(train)
    for n in held:  # each held-out shot's scene still trains
        scene = next(g for g in groups if n in g)
        assert len(scene) >= 2 and set(scene) - {n} <= set(train)
    assert "4" in train and "9" in train
    assert lol_sibling_split(root, names, 0) == (names, [])
    with pytest.raises(ValueError, match="two or more shots"):
        lol_sibling_split(root, names, 4)


def _detail(frames: np.ndarray) -> np.ndarray:
    """Mean absolute horizontal and vertical difference of each frame."""
    f = frames.astype(np.float64)
    return (np.abs(np.diff(f, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(f, axis=2)).mean(axis=(1, 2, 3)))


def test_line_kernel_is_a_centred_normalised_line():
    assert line_kernel(0.5, 0.3).shape == (1, 1)
    k = line_kernel(9.0, 0.0)
    assert k.shape == (9, 9) and k.sum() == pytest.approx(1.0)
    assert np.count_nonzero(k.sum(axis=1)) == 1 and np.count_nonzero(k.sum(axis=0)) == 9  # one row, 9 columns
    ys, xs = np.mgrid[:9, :9]
    for angle in (0.0, 0.7, np.pi / 2):  # centred: the blur moves nothing
        k = line_kernel(7.3, angle)
        c = k.shape[0] // 2
        assert (k * xs[:k.shape[0], :k.shape[1]]).sum() == pytest.approx(c, abs=1e-5)
        assert (k * ys[:k.shape[0], :k.shape[1]]).sum() == pytest.approx(c, abs=1e-5)


def test_motion_blur_clip_blurs_each_frame_by_its_own_length():
    frames = np.stack([(texture(64, 64, seed=1) * 255).astype(np.uint8)] * 6)
    out = motion_blur_clip(frames, np.random.default_rng(0), 12.0)
    assert out.shape == frames.shape and out.dtype == np.uint8
    d_in, d_out = _detail(frames), _detail(out)
    assert np.all(d_out <= d_in + 1e-9) and d_out.min() < 0.8 * d_in.min()
    assert d_out.std() > 0.02 * d_out.mean()  # the lengths differ from frame to frame
    lin = lambda f: srgb_to_linear(f / 255.0).mean()  # noqa: E731 - the light is kept, in linear light
    assert lin(out) == pytest.approx(lin(frames), rel=0.02)
    assert np.array_equal(motion_blur_clip(frames, np.random.default_rng(0), 0.5), frames)  # < 1 px: none


def test_synthetic_clips_blur_only_when_asked(tmp_path):
    video = np.stack([(texture(80, 80, seed=k) * 255).astype(np.uint8) for k in range(6)])
    sharp = SyntheticVideoClips([video], frames=4, crop=48, length=6, seed=2, h264_prob=0.0)
    blurred = SyntheticVideoClips([video], frames=4, crop=48, length=6, seed=2, h264_prob=0.0, blur_prob=1.0)
    again = SyntheticVideoClips([video], frames=4, crop=48, length=6, seed=2, h264_prob=0.0, blur_prob=0.0)
    d_sharp = np.mean([_detail(sharp[i]["high"].permute(0, 2, 3, 1).numpy()).mean() for i in range(6)])
    d_blur = np.mean([_detail(blurred[i]["high"].permute(0, 2, 3, 1).numpy()).mean() for i in range(6)])
    assert d_blur < 0.9 * d_sharp
    for i in range(3):  # no blur: the random stream (and so every sample) is unchanged
        assert torch.equal(sharp[i]["high"], again[i]["high"]) and torch.equal(sharp[i]["low"], again[i]["low"])
    stills = SyntheticStillClips([video[0]], frames=4, crop=32, length=2, seed=1, h264_prob=0.0, blur_prob=1.0,
                                 scale_range=(1.0, 1.0), max_shift=2.0)
    assert stills[0]["high"].shape[0] == 4


def test_mixed_degradation_draws_both_cameras_per_clip(monkeypatch):
    """"mixed" darkens each clip with the white-noise chain or the camera pipeline, even odds, and
    a seeded draw repeats; deferring to the device stays the camera pipeline's alone."""
    clean = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    chosen = []
    real_white, real_camera = ds_mod.darken_clip, ds_mod.camera_clip
    monkeypatch.setattr(ds_mod, "darken_clip", lambda *a, **k: chosen.append("white") or real_white(*a, **k))
    monkeypatch.setattr(ds_mod, "camera_clip", lambda *a, **k: chosen.append("camera") or real_camera(*a, **k))
    outs = [ds_mod.darken(clean, np.random.default_rng(s), "mixed", (0.02, 0.1), 0.0, 1.0) for s in range(12)]
    again = ds_mod.darken(clean, np.random.default_rng(3), "mixed", (0.02, 0.1), 0.0, 1.0)
    assert set(chosen) == {"white", "camera"}
    assert all(o.shape == clean.shape and o.dtype == np.uint8 for o in outs)
    assert np.array_equal(again, outs[3])
    with pytest.raises(ValueError, match="defer_camera"):
        ds_mod._check_defer(True, "mixed")


def test_mixed_degradation_camera_share(monkeypatch):
    """``camera_share`` sets the odds of "mixed": 0 is white noise only, 1 the camera only, and
    out-of-range shares are refused by the datasets."""
    clean = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    chosen = []
    real_white, real_camera = ds_mod.darken_clip, ds_mod.camera_clip
    monkeypatch.setattr(ds_mod, "darken_clip", lambda *a, **k: chosen.append("white") or real_white(*a, **k))
    monkeypatch.setattr(ds_mod, "camera_clip", lambda *a, **k: chosen.append("camera") or real_camera(*a, **k))
    for share, expect in ((0.0, {"white"}), (1.0, {"camera"})):
        chosen.clear()
        for s in range(8):
            ds_mod.darken(clean, np.random.default_rng(s), "mixed", (0.02, 0.1), 0.0, 1.0, camera_share=share)
        assert set(chosen) == expect
    video = np.random.default_rng(1).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="camera_share"):
        SyntheticVideoClips([video], frames=4, crop=32, degradation="mixed", camera_share=1.5)
