"""Training and validation data.

Every sample is a short clip of N frames: ``{"low": (N, 3, S, S), "high": (N, 3, S, S),
"flow_fw": (N-1, 2, S/4, S/4), "flow_bw": (N-1, 2, S/4, S/4), "flow_valid": (N-1, 1, S/4, S/4)}``
as float tensors in [0, 1], plus ``"stats": (N, 6)`` whole-frame exposure statistics (see
``STPR.forward_clip``); ``flow_fw[i]`` is the teacher flow frame i -> i+1 and ``flow_bw[i]``
frame i+1 -> i, at 1/4 resolution in 1/4-resolution pixels.

Sources:
* ``LOLClips``: real LOL low/normal pairs made into clips with synthetic motion (exact flow).
* ``SyntheticVideoClips``: normal-light video darkened by ``stpr.data.synthesis`` (DIS teacher
  flow computed on the clean frames).
* ``SyntheticStillClips``: normal-light photographs made into clips with synthetic motion (exact
  flow) and darkened by the same synthesis: scene variety that the few training videos lack.
* ``PairedVideoFolders``: per-scene folders of low and normal frames (SDSD / SMID / DID layouts).
"""

from __future__ import annotations

import errno
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.data.motion import affine_flow, motion_blur_clip, random_trajectory, warp_crop
from stpr.data.camera import camera_clip, sample_camera, scale_camera_noise
from stpr.data.camera_torch import CAMERA_VECTOR_SIZE, camera_clip_torch, camera_vector
from stpr.data.synthesis import darken_clip, sample_params, scale_noise
from stpr.models.common import frame_stats
from stpr.models.flow_arch import dis_flow, fb_consistent

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB (works with non-ASCII paths)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_video_frames(path: Path, max_frames: int | None = None, scale: float = 1.0) -> np.ndarray:
    """Decode a whole (short) video to (N, H, W, 3) uint8, optionally downscaled."""
    import av

    frames = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            if scale != 1.0:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            frames.append(img)
            if max_frames and len(frames) >= max_frames:
                break
    return np.stack(frames)


class SharedArrays:
    """A list of uint8 arrays held in one torch tensor that moves to shared memory when it is first
    pickled.

    DataLoader workers get the dataset pickled (they start from a forkserver, see
    ``stpr.train._worker_context``); a shared block pickles as a handle, so every worker reads the
    same memory instead of receiving its own copy of every decoded frame (14 workers, each sent
    the ~0.4 GB of decoded training video, took 105 s to start on a GPU machine). Until then the
    block is ordinary memory, so in-process loading (workers = 0) needs no /dev/shm (Docker gives
    containers 64 MB of it by default).

    Args:
        arrays: uint8 arrays of any shapes; copied once into the block.
    """

    def __init__(self, arrays: list[np.ndarray]):
        self.shapes = [a.shape for a in arrays]
        self.offsets = np.cumsum([0] + [a.size for a in arrays])
        self.block = torch.empty(int(self.offsets[-1]), dtype=torch.uint8)
        flat = self.block.numpy()
        for a, o in zip(arrays, self.offsets):
            flat[o:o + a.size] = np.asarray(a, np.uint8).ravel()

    def __getstate__(self) -> dict:
        if not self.block.is_shared():
            self.block.share_memory_()  # once, on the first hand-over to a worker
        return self.__dict__

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.block.numpy()[self.offsets[i]:self.offsets[i + 1]].reshape(self.shapes[i])


# --------------------------------------------------------------------------- LOL split
def lol_split(root: Path, num_val: int = 30) -> tuple[list[str], list[str]]:
    """Fixed split of a LOL-style folder: the ``num_val`` highest-numbered pairs are validation.

    A contiguous block (rather than every k-th pair) keeps near-duplicate neighbouring shots of a
    scene out of training as far as possible.
    """
    names = sorted((p.stem for p in (Path(root) / "low").iterdir() if p.suffix.lower() in IMAGE_EXTS),
                   key=lambda s: natural_key(Path(s)))
    k = len(names) - num_val
    return names[:k], names[k:]


def lol_file(root: Path, side: str, name: str) -> Path:
    """The image called ``name`` (any extension) in a LOL-style root's ``side`` ("low" or "high").

    Raises:
        ValueError: there is none: low/ and high/ pair their files by name.
    """
    path = next((Path(root) / side).glob(glob.escape(name) + ".*"), None)
    if path is None:
        raise ValueError(f"{root}: {side}/ has no image called {name} (low/ and high/ pair their files by name)")
    return path


def lol_scene_groups(root: Path, names: list[str], threshold: float = 0.9) -> list[list[str]]:
    """Group LOL pairs into scenes: pairs whose ground truths, shrunk to 40x27, correlate above
    ``threshold`` are one scene (linked transitively). LOL shot most scenes several times under
    consecutive numbers (and LOL-v1's test pairs are such shots of training scenes), so a
    validation pair whose scene also trains measures what the benchmark measures, and a pair of
    a scene that never trains measures generalisation. Groups in ``names`` order."""
    root = Path(root)
    thumbs = []
    for n in names:
        img = cv2.resize(read_rgb(lol_file(root, "high", n)), (40, 27), interpolation=cv2.INTER_AREA)
        v = img.astype(np.float64).ravel()
        thumbs.append((v - v.mean()) / max(v.std(), 1e-6))
    t = np.stack(thumbs)
    corr = t @ t.T / t.shape[1]
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(corr > threshold)):
        parent[find(int(i))] = find(int(j))
    groups: dict[int, list[str]] = {}
    for i, n in enumerate(names):
        groups.setdefault(find(i), []).append(n)
    return sorted(groups.values(), key=lambda g: names.index(g[0]))


def lol_sibling_split(root: Path, names: list[str], num_val: int) -> tuple[list[str], list[str]]:
    """Hold out ``num_val`` pairs of ``names``, one from each of ``num_val`` scenes shot two or
    more times (spread evenly over the numbering; the middle shot of each), so that every held-out
    pair's scene still trains: the benchmark's relation to its training pairs (``lol_scene_groups``).

    Returns:
        (training names, held-out names), each in ``names`` order.
    """
    if num_val <= 0:
        return list(names), []
    multi = [g for g in lol_scene_groups(root, names) if len(g) >= 2]
    if len(multi) < num_val:
        raise ValueError(f"only {len(multi)} scenes have two or more shots; {num_val} sibling pairs asked for")
    picks = np.unique(np.round(np.linspace(0, len(multi) - 1, num_val)).astype(int))
    held = {multi[k][len(multi[k]) // 2] for k in picks}
    return [n for n in names if n not in held], [n for n in names if n in held]


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def _dis_teacher(clean: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DIS flows between consecutive clean frames at 1/4 resolution, with a fw-bw validity mask."""
    small = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
             for f in clean]
    fw, bw, valid = [], [], []
    for a, b in zip(small[:-1], small[1:]):
        f = dis_flow(a, b, cv2.DISOPTICAL_FLOW_PRESET_FAST)
        g = dis_flow(b, a, cv2.DISOPTICAL_FLOW_PRESET_FAST)
        v = fb_consistent(f, g).astype(np.float32)
        fw.append(f.transpose(2, 0, 1))
        bw.append(g.transpose(2, 0, 1))
        valid.append(v[None])
    return np.stack(fw), np.stack(bw), np.stack(valid)


def _trajectory_teacher(mats: list[np.ndarray], crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact flows between consecutive crops of a synthetic trajectory at 1/4 resolution (fw, bw)
    and their validity (everywhere 1)."""
    n, q = len(mats), crop // 4
    fw = np.stack([affine_flow(mats[t], mats[t + 1], crop, 0.25) for t in range(n - 1)])
    bw = np.stack([affine_flow(mats[t + 1], mats[t], crop, 0.25) for t in range(n - 1)])
    return fw, bw, np.ones((n - 1, 1, q, q), np.float32)


def _flip(sample: dict, rng: np.random.Generator) -> dict:
    """Random horizontal flip of a whole clip (flows negate their x component)."""
    if rng.random() < 0.5:
        for k in ("low", "high"):
            sample[k] = np.ascontiguousarray(sample[k][:, :, ::-1])
        for k in ("flow_fw", "flow_bw"):
            f = np.ascontiguousarray(sample[k][..., ::-1])
            f[:, 0] *= -1
            sample[k] = f
        sample["flow_valid"] = np.ascontiguousarray(sample["flow_valid"][..., ::-1])
    return sample


def _finish(sample: dict) -> dict:
    """Arrays to tensors, and the keys every sample carries (so any mix of sources batches). A
    sample whose camera is deferred (``defer_camera``) has its clean frames as ``low``, ``deferred``
    1, its camera as ``camera`` (``camera_torch.camera_vector``) and per-frame ``exposure_scales``:
    ``apply_deferred_camera`` darkens it on the training device."""
    out = {"low": _to_tensor(sample["low"]), "high": _to_tensor(sample["high"])}
    n = out["low"].shape[0]
    deferred = sample.get("camera") is not None
    out["deferred"] = torch.tensor(1.0 if deferred else 0.0)
    out["camera"] = camera_vector(sample["camera"]).float() if deferred else torch.zeros(CAMERA_VECTOR_SIZE)
    scales = sample.get("exposure_scales")
    out["exposure_scales"] = torch.ones(n) if scales is None else torch.as_tensor(scales, dtype=torch.float32)
    for k in ("flow_fw", "flow_bw", "flow_valid"):
        out[k] = torch.from_numpy(np.ascontiguousarray(sample[k])).float()
    # Whole-frame exposure statistics (see STPR.forward_clip); from the crop when the source has no
    # larger frame to offer.
    # (a deferred sample's are the clean frames': apply_deferred_camera replaces them)
    out["stats"] = sample["stats"] if "stats" in sample else frame_stats(out["low"])
    out["lol"] = torch.tensor(1.0 if sample.get("lol") else 0.0)  # real LOL pair (lol_tone_free)
    out["lol_natural"] = torch.tensor(1.0 if sample.get("lol_natural") else 0.0)  # TrainConfig.lol_natural
    return out


# --------------------------------------------------------------------------- LOL clips
@dataclass
class NoiseModel:
    """Signal-dependent noise fitted on one real dark image: var = a * mean + b (8-bit units)."""

    a: float
    b: float


def denoise_nlm(img: np.ndarray) -> np.ndarray:
    """Non-local-means denoising of a dark (H, W, 3) uint8 image, strength fixed for dark frames; the
    residual ``img - denoise_nlm(img)`` is this project's estimate of a real image's noise."""
    return cv2.fastNlMeansDenoisingColored(img, None, 7, 7, 5, 15)


def fit_noise(low: np.ndarray) -> tuple[np.ndarray, NoiseModel]:
    """Denoise a real dark image and fit var(residual) = a * intensity + b.

    Returns the denoised image (uint8) and the fitted model; used to give every synthetic-motion
    frame fresh noise with the statistics of the real sensor noise.
    """
    den = denoise_nlm(low)
    r = low.astype(np.float32) - den.astype(np.float32)
    m = den.astype(np.float32).ravel()
    v = (r ** 2).ravel()
    bins = np.clip((m // 4).astype(int), 0, 63)
    cnt = np.bincount(bins, minlength=64)
    mv = np.bincount(bins, weights=m, minlength=64)
    vv = np.bincount(bins, weights=v, minlength=64)
    ok = cnt > 200
    if ok.sum() >= 2:
        a, b = np.polyfit(mv[ok] / cnt[ok], vv[ok] / cnt[ok], 1)
    else:
        a, b = 0.0, float(v.mean())
    return den, NoiseModel(max(float(a), 0.0), max(float(b), 0.1))


class LOLClips(torch.utils.data.Dataset):
    """Real LOL pairs as N-frame clips with synthetic motion.

    Noise never repeats across frames: at most one frame (chosen at random) keeps the real noisy
    low image; the others are the denoised low image plus fresh noise drawn from the noise model
    fitted on that same real image.

    Args:
        root: folder with ``low/`` and ``high/``.
        names: file stems to use (see ``lol_split``).
        frames: N, frames per clip.
        crop: square crop size (multiple of 4).
        length: nominal epoch length.
        seed: base seed; sample i of epoch e uses seed (seed, e, i).
        max_shift: largest drift per frame along each axis, in px (``random_trajectory``).
        natural_share: share of clips marked ``lol_natural`` (a model with looks trains its default
            look on them, tone-free: ``TrainConfig.lol_natural``); drawn last, and only when > 0,
            so other clips are those of a dataset without it.
    """

    def __init__(self, root: Path, names: list[str], frames: int = 4, crop: int = 96, length: int = 10000,
                 seed: int = 0, max_shift: float = 6.0, natural_share: float = 0.0):
        self.frames, self.crop, self.length, self.seed = frames, crop, length, seed
        self.max_shift = max_shift
        self.natural_share = natural_share
        self.epoch = 0
        root = Path(root)
        images, self.noise, self.stats = [], [], []
        for n in names:
            low = read_rgb(lol_file(root, "low", n))
            high = read_rgb(lol_file(root, "high", n))
            if min(high.shape[:2]) < crop:  # warp_crop would extrapolate a crop of mostly border
                raise ValueError(f"{root}: pair {n} is {high.shape[1]}x{high.shape[0]}, smaller than the crop {crop}")
            den, nm = fit_noise(low)
            images += [low, den, high]
            self.noise.append(nm)
            self.stats.append(frame_stats(_to_tensor(low[None]))[0])
        self.images = SharedArrays(images)  # pair k: low, denoised low, high at 3k, 3k + 1, 3k + 2
        self.stats = torch.stack(self.stats)  # one tensor, so workers get one shared block, not one per pair

    def __len__(self):
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i))
        k = int(rng.integers(len(self.noise)))
        low, den, high = (self.images[3 * k + j] for j in range(3))
        nm, stats = self.noise[k], self.stats[k]
        n, s = self.frames, self.crop
        mats = random_trajectory(n, s, low.shape[:2], rng, max_shift=self.max_shift)
        real_idx = rng.integers(n + 1)  # == n: no frame keeps the real noise
        lows, highs = [], []
        for t, m in enumerate(mats):
            highs.append(warp_crop(high, m, s))
            if t == real_idx:
                lows.append(warp_crop(low, m, s))
            else:
                base = warp_crop(den, m, s).astype(np.float32)
                std = np.sqrt(nm.a * base + nm.b)
                lows.append(np.clip(np.round(base + rng.normal(size=base.shape) * std), 0, 255).astype(np.uint8))
        fw, bw, valid = _trajectory_teacher(mats, s)
        sample = {"low": np.stack(lows), "high": np.stack(highs), "flow_fw": fw, "flow_bw": bw,
                  "flow_valid": valid, "stats": stats.expand(n, -1).clone(), "lol": True}
        sample = _flip(sample, rng)
        if self.natural_share > 0:
            sample["lol_natural"] = bool(rng.random() < self.natural_share)
        return _finish(sample)


# --------------------------------------------------------------------------- synthetic dark video
DEGRADATIONS = ("white", "camera", "mixed")


def check_degradation(degradation: str, camera_share: float = 0.5) -> str:
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {', '.join(DEGRADATIONS)}, got {degradation!r}")
    if not 0.0 <= camera_share <= 1.0:
        raise ValueError(f"camera_share must be in [0, 1], got {camera_share}")
    return degradation


def darken(clean: np.ndarray, rng: np.random.Generator, degradation: str, exposure_range, h264_prob: float,
           noise_scale: float, draw_scales=None, defer: bool = False,
           camera_share: float = 0.5) -> np.ndarray | dict:
    """Darken a clean clip (T, H, W, 3) with one sampled camera: "white" is ``synthesis.py``'s
    Poisson-Gaussian noise on sRGB pixels, "camera" the phone pipeline of ``camera.py``, "mixed"
    either of the two, drawn per clip: the camera with probability ``camera_share``.
    ``draw_scales(rng)``, if given, draws per-frame exposure scales after the camera (so a
    dataset's random stream stays what it was).

    ``defer`` (camera only): a clip that draws no H.264 round trip is not darkened here; the
    return value is then ``{"camera": CameraParams, "exposure_scales": (T,) or None}`` for
    ``apply_deferred_camera`` to run on the training device. Clips with a codec are darkened here
    (the encoder runs on the CPU)."""
    if check_degradation(degradation) == "mixed":
        degradation = "camera" if rng.random() < camera_share else "white"
    if degradation == "camera":
        params = scale_camera_noise(sample_camera(rng, exposure_range, h264_prob), noise_scale)
        scales = draw_scales(rng) if draw_scales else None
        if defer and params.crf is None:
            return {"camera": params, "exposure_scales": scales}
        return camera_clip(clean, params, rng, scales)
    params = scale_noise(sample_params(rng, exposure_range, h264_prob), noise_scale)
    return darken_clip(clean, params, rng, draw_scales(rng) if draw_scales else None)


def _check_defer(defer: bool, degradation: str) -> bool:
    if defer and degradation != "camera":
        raise ValueError('defer_camera needs degradation "camera"')
    return bool(defer)


def _low(dark: np.ndarray | dict, clean: np.ndarray) -> dict:
    """A sample's ``low`` entries: the dark clip, or for a deferred camera the clean clip (flipped
    with the rest, darkened on the device) and the camera."""
    if isinstance(dark, dict):
        return {"low": clean, **dark}
    return {"low": dark}


def apply_deferred_camera(batch: dict, generator: torch.Generator | None = None) -> dict:
    """Darken a batch's deferred samples where the batch lies (``camera_torch``), and take their
    whole-frame statistics from the dark frames. Other samples are left as they are."""
    rows = batch["deferred"] > 0.5
    if not bool(rows.any()):
        return batch
    idx = rows.nonzero().flatten()
    low = batch["low"].clone()
    dark = camera_clip_torch(batch["high"][idx], batch["camera"][idx], generator, batch["exposure_scales"][idx])
    low[idx] = dark.to(low.dtype)
    stats = batch["stats"].clone()
    b, n = dark.shape[:2]
    stats[idx] = frame_stats(dark.flatten(0, 1)).view(b, n, -1).to(stats.dtype)
    return {**batch, "low": low, "stats": stats}


def _maybe_blur(clean: np.ndarray, rng: np.random.Generator, prob: float, max_len: float) -> np.ndarray:
    """``motion_blur_clip`` for a share ``prob`` of clips. Draws nothing when ``prob`` is 0, so
    configs without blur keep their random streams."""
    if prob > 0 and rng.random() < prob:
        return motion_blur_clip(clean, rng, max_len)
    return clean


class SyntheticVideoClips(torch.utils.data.Dataset):
    """Normal-light videos darkened on the fly.

    Args:
        videos: list of (F, H, W, 3) uint8 arrays (decoded clean videos).
        frames: N, frames per clip.
        crop: square crop size (multiple of 4).
        length: nominal epoch length.
        seed: base seed.
        exposure_range: linear exposure range of the synthesis.
        h264_prob: probability of an H.264 round trip.
        jump_prob: probability that a clip's frames get independent exposures (log-uniform within
            a factor of ``jump_range`` either way), so that fusion learns to favour the
            better-exposed neighbours.
        noise_scale: multiplies the sensor noise std of every sampled camera (``scale_noise``);
            1 is the synthesis as is, 0 noise-free (for measuring what denoising is worth).
        degradation: "white" (``synthesis.py``), "camera" (``camera.py``) or "mixed" (either, per
            clip), see ``darken``.
        camera_share: with "mixed", the share of clips given the camera rather than white noise.
        defer_camera: leave the camera of clips without a codec to the training device (see
            ``darken``); needs ``degradation`` "camera".
        blur_prob: share of clips given a handheld pan's motion blur, of a length drawn per frame
            up to ``blur_max`` px (``motion_blur_clip``; target and input alike).
    """

    def __init__(self, videos: list[np.ndarray], frames: int = 4, crop: int = 96, length: int = 10000,
                 seed: int = 0, exposure_range=(0.01, 0.3), h264_prob: float = 0.2, jump_prob: float = 0.0,
                 jump_range: float = 3.0, noise_scale: float = 1.0, degradation: str = "white",
                 defer_camera: bool = False, blur_prob: float = 0.0, blur_max: float = 12.0,
                 camera_share: float = 0.5):
        self.degradation = check_degradation(degradation, camera_share)
        self.camera_share = camera_share
        self.defer_camera = _check_defer(defer_camera, degradation)
        self.videos = SharedArrays([v for v in videos if len(v) >= frames and min(v.shape[1:3]) >= crop])
        if not len(self.videos):
            raise ValueError(f"no video has {frames} frames of at least {crop}x{crop} px (a clip and its crop)")
        self.frames, self.crop, self.length, self.seed = frames, crop, length, seed
        self.exposure_range, self.h264_prob = exposure_range, h264_prob
        self.jump_prob, self.jump_range = jump_prob, jump_range
        self.noise_scale = noise_scale
        self.blur_prob, self.blur_max = blur_prob, blur_max
        self.epoch = 0

    def __len__(self):
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i, 1))
        v = self.videos[rng.integers(len(self.videos))]
        n, s = self.frames, self.crop
        stride = int(rng.integers(1, 3)) if len(v) >= 2 * n else 1
        t0 = rng.integers(0, len(v) - (n - 1) * stride)
        y0 = rng.integers(0, v.shape[1] - s + 1)
        x0 = rng.integers(0, v.shape[2] - s + 1)
        clean = v[t0:t0 + (n - 1) * stride + 1:stride, y0:y0 + s, x0:x0 + s]
        if rng.random() < 0.5:  # play backwards: motion in both directions
            clean = clean[::-1]
        clean = _maybe_blur(np.ascontiguousarray(clean), rng, self.blur_prob, self.blur_max)

        def jumps(rng):
            # Drawn only when jumps are on, so clips without them keep their old random stream.
            if self.jump_prob > 0 and rng.random() < self.jump_prob:
                lim = np.log(self.jump_range)
                return np.exp(rng.uniform(-lim, lim, size=len(clean)))
            return None

        dark = darken(clean, rng, self.degradation, self.exposure_range, self.h264_prob, self.noise_scale,
                      draw_scales=jumps, defer=self.defer_camera, camera_share=self.camera_share)
        fw, bw, valid = _dis_teacher(clean, s // 4)
        sample = {"high": clean, "flow_fw": fw, "flow_bw": bw, "flow_valid": valid, **_low(dark, clean)}
        return _finish(_flip(sample, rng))


# --------------------------------------------------------------------------- synthetic dark stills
def read_stills(paths: list[str]) -> list[np.ndarray]:
    """Decode image files, and every image directly inside each folder, as (H, W, 3) uint8 RGB."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted((f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS), key=natural_key)
            if not found:
                raise FileNotFoundError(errno.ENOENT, "no images in this folder", str(p))
            files += found
        elif not p.is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(p))
        else:
            files.append(p)
    return [read_rgb(f) for f in files]


class SyntheticStillClips(torch.utils.data.Dataset):
    """Normal-light photographs as N-frame clips with synthetic motion, darkened on the fly.

    The motion is ``LOLClips``' (so the flow teacher is exact); the darkening is
    ``SyntheticVideoClips``' (one camera per clip, fresh noise per frame). Each clip first rescales
    its image by a log-uniform factor in ``scale_range``, so the same photograph is seen as a
    close-up and as a wide shot.

    Args:
        images: list of (H, W, 3) uint8 arrays.
        frames: N, frames per clip.
        crop: square crop size (multiple of 4).
        length: nominal epoch length.
        seed: base seed.
        exposure_range, h264_prob, noise_scale, degradation, camera_share: as in ``SyntheticVideoClips``.
        max_shift: largest drift per frame along each axis, in px (``random_trajectory``).
        scale_range: (smallest, largest) rescaling of the image before cropping; never below what
            the clip's trajectory spans.
        defer_camera, blur_prob, blur_max: as in ``SyntheticVideoClips``.
    """

    def __init__(self, images: list[np.ndarray], frames: int = 4, crop: int = 96, length: int = 10000,
                 seed: int = 0, exposure_range=(0.01, 0.3), h264_prob: float = 0.2, noise_scale: float = 1.0,
                 max_shift: float = 6.0, scale_range=(0.4, 1.0), degradation: str = "white",
                 defer_camera: bool = False, blur_prob: float = 0.0, blur_max: float = 12.0,
                 camera_share: float = 0.5):
        self.degradation = check_degradation(degradation, camera_share)
        self.camera_share = camera_share
        self.defer_camera = _check_defer(defer_camera, degradation)
        if not images:
            raise ValueError("no still images")
        self.images = SharedArrays(images)
        self.frames, self.crop, self.length, self.seed = frames, crop, length, seed
        self.exposure_range, self.h264_prob, self.noise_scale = exposure_range, h264_prob, noise_scale
        self.max_shift, self.scale_range = max_shift, scale_range
        self.blur_prob, self.blur_max = blur_prob, blur_max
        self.epoch = 0

    def __len__(self):
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i, 4))
        img = self.images[rng.integers(len(self.images))]
        n, s = self.frames, self.crop
        lo, hi = np.log(self.scale_range[0]), np.log(self.scale_range[1])
        # No smaller than the trajectory's span, so no frame reaches past the image's border.
        span = s + 2 * (n * self.max_shift + 8)
        scale = max(float(np.exp(rng.uniform(lo, hi))), span / min(img.shape[:2]))
        if abs(scale - 1.0) > 1e-3:
            img = cv2.resize(img, None, fx=scale, fy=scale,
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        mats = random_trajectory(n, s, img.shape[:2], rng, max_shift=self.max_shift)
        clean = _maybe_blur(np.stack([warp_crop(img, m, s) for m in mats]), rng, self.blur_prob, self.blur_max)
        dark = darken(clean, rng, self.degradation, self.exposure_range, self.h264_prob, self.noise_scale,
                      defer=self.defer_camera, camera_share=self.camera_share)
        fw, bw, valid = _trajectory_teacher(mats, s)
        sample = {"high": clean, "flow_fw": fw, "flow_bw": bw, "flow_valid": valid, **_low(dark, clean)}
        return _finish(_flip(sample, rng))


# --------------------------------------------------------------------------- user datasets
LAYOUTS = {
    # layout name: (low sub-folder, normal-light sub-folder); each holds one folder per scene.
    "sdsd": ("input", "GT"),
    "did": ("input", "GT"),
    "smid": ("SMID_LQ_np", "SMID_Long_np"),
}


def _read_frame(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        a = np.load(path)
        if a.dtype != np.uint8:
            a = np.clip(a.astype(np.float32) * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return a
    return read_rgb(path)


class PairedVideoFolders(torch.utils.data.Dataset):
    """Paired low/normal-light video stored as per-scene frame folders.

    ``root/<low>/<scene>/*.png|*.npy`` and ``root/<high>/<scene>/...``; when a scene has a single
    normal-light frame (SMID's long exposure) it serves as ground truth for every low frame.

    Args:
        root: dataset root.
        layout: one of ``LAYOUTS`` or a "low_dir:high_dir" pair.
        frames, crop, length, seed: as in the other datasets.
        scenes: optional subset of scene names (for a validation split).
    """

    def __init__(self, root: Path, layout: str = "sdsd", frames: int = 4, crop: int = 96, length: int = 10000,
                 seed: int = 0, scenes: list[str] | None = None):
        low_dir, high_dir = LAYOUTS[layout] if layout in LAYOUTS else layout.split(":")
        root = Path(root)
        self.scenes = []
        for sd in sorted((root / low_dir).iterdir(), key=natural_key):
            if not sd.is_dir() or (scenes and sd.name not in scenes):
                continue
            lows = sorted((p for p in sd.iterdir() if p.suffix.lower() in IMAGE_EXTS | {".npy"}), key=natural_key)
            hd = root / high_dir / sd.name
            highs = sorted((p for p in hd.iterdir() if p.suffix.lower() in IMAGE_EXTS | {".npy"}), key=natural_key) \
                if hd.is_dir() else []
            if len(lows) >= frames and highs and (len(highs) == len(lows) or len(highs) == 1):
                self.scenes.append((lows, highs))
        if not self.scenes:
            raise ValueError(f"no usable scenes under {root} with layout {layout!r}")
        self.frames, self.crop, self.length, self.seed = frames, crop, length, seed
        self.epoch = 0

    def __len__(self):
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i, 2))
        lows, highs = self.scenes[rng.integers(len(self.scenes))]
        n, s = self.frames, self.crop
        t0 = int(rng.integers(0, len(lows) - n + 1))
        low = np.stack([_read_frame(p) for p in lows[t0:t0 + n]])
        high = np.stack([_read_frame(highs[0] if len(highs) == 1 else p) for p in highs[t0:t0 + n]]) \
            if len(highs) > 1 else np.repeat(_read_frame(highs[0])[None], n, axis=0)
        y0 = rng.integers(0, low.shape[1] - s + 1)
        x0 = rng.integers(0, low.shape[2] - s + 1)
        low, high = low[:, y0:y0 + s, x0:x0 + s], high[:, y0:y0 + s, x0:x0 + s]
        fw, bw, valid = _dis_teacher(np.ascontiguousarray(high), s // 4)
        sample = {"low": np.ascontiguousarray(low), "high": np.ascontiguousarray(high),
                  "flow_fw": fw, "flow_bw": bw, "flow_valid": valid}
        return _finish(_flip(sample, rng))


class MixedClips(torch.utils.data.Dataset):
    """Draw each sample from one of several datasets with fixed probabilities."""

    def __init__(self, datasets: list[torch.utils.data.Dataset], weights: list[float], length: int, seed: int = 0):
        self.datasets, self.length, self.seed = datasets, length, seed
        w = np.asarray(weights, np.float64)
        self.p = w / w.sum()
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch
        for d in self.datasets:
            d.epoch = epoch

    def __len__(self):
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i, 3))
        k = rng.choice(len(self.datasets), p=self.p)
        return self.datasets[k][int(rng.integers(1 << 30))]
