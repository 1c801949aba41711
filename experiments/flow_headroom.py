"""How much would better alignment be worth? The same weights on the held-out synthetic-dark
videos with the flows fed to ``STPR.decode`` taken from different sources:

- learned: the model's own flow net on the dark frames (what ships);
- dis-dark: OpenCV DIS on the dark frames' brightness-normalised 1/4-resolution images (``flow_mode="dis"``);
- dis-clean: DIS on the *clean* frames at 1/4 resolution, the same estimator without the noise;
- dis-clean-full: DIS on the clean frames at full resolution, resized to 1/4 (the best flow
  available here: an oracle no real input has);
- zero: no alignment;
and T = 1 (per frame) as the floor; also on carphone with the exposure alternating 0.5x / 2x, and
on tree.avi (nearly static: 0.1 px per frame) turned into a camera pan of 4 px right and 2 px down
per frame (a 192x144 window), where the flow's end-point error is measured against the known
motion. Then longer windows without retraining: the k dark frames
around each frame averaged (unaligned "box", or warped to it along DIS flow of the clean frames,
"oracle") and the average enhanced with T = 1 and T = 3. PSNR against the clean frames,
PyAV-default decode as in ``scripts/window_compare.py``.

    .venv/bin/python scripts/flow_headroom.py                 # the shipped model
    .venv/bin/python scripts/flow_headroom.py runs/v2/last.safetensors --no-averages
    .venv/bin/python scripts/flow_headroom.py --no-averages --pans 2x4,4x8 --pan-only   # a faster pan too
    .venv/bin/python scripts/flow_headroom.py --real-motion ../shared/data/real-lowlight-clips  # how real clips move
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stpr.checkpoint import load_model
from stpr.data.datasets import read_video_frames
from stpr.evaluate import eval_video, synthetic_eval_clip, to_tensor
from stpr.metrics import psnr
from stpr.models.common import frame_stats, normalize_brightness
from stpr.models.flow_arch import dis_flow, dis_flow_torch
from stpr.models.stpr_arch import STPR, window_indices
from stpr.models.warp import resize_flow
from stpr.report import clip_sequences


@torch.no_grad()
def encode_clip(model: STPR, frames: np.ndarray) -> tuple[list, torch.Tensor, tuple[int, int]]:
    """Every frame encoded once, as ``forward_clip`` does (statistics of the real frames, not of
    their padding). Returns the FrameStates, the padded (1, N, 3, H', W') clip and the real (H, W)."""
    x = torch.cat([to_tensor(f) for f in frames])[None]
    xp, hw = model.pad(x)
    return [model.encode_frame(xp[:, i], frame_stats(x[:, i])) for i in range(x.shape[1])], xp, hw


@torch.no_grad()
def run(model: STPR, clean: np.ndarray, dark: np.ndarray, sources: list[str]) -> dict:
    """Mean PSNR over the clip for each flow source (see the module docstring); the dark frames
    are encoded once for all of them."""
    model.eval()
    c = torch.cat([to_tensor(f) for f in clean])[None]
    n = c.shape[1]
    enc, _, (h, w) = encode_clip(model, dark)
    cp, _ = model.pad(c)
    # the flow estimator's input for the clean frames: brightness-normalised, 1/4 resolution
    clean_small = [F.avg_pool2d(normalize_brightness(cp[:, i], frame_stats(c[:, i])), 4) for i in range(n)]
    res = {}
    for source in sources:
        scores = []
        for t in range(n):
            idx = window_indices(t, n, model.cfg.frames)
            mid = len(idx) // 2
            nb = [i for k, i in enumerate(idx) if k != mid]
            if source == "learned":
                flows = None
            elif source == "dis-dark":
                flows = [dis_flow_torch(enc[t].norm_small, enc[i].norm_small) for i in nb]
            elif source == "dis-clean":
                flows = [dis_flow_torch(clean_small[t], clean_small[i]) for i in nb]
            elif source == "dis-clean-full":
                flows = [resize_flow(dis_flow_torch(cp[:, t], cp[:, i]), clean_small[t].shape[-2:]) for i in nb]
            elif source == "zero":
                flows = [clean_small[t].new_zeros(1, 2, *clean_small[t].shape[-2:]) for _ in nb]
            else:
                raise ValueError(source)
            out, _ = model.decode([enc[i] for i in idx], flows=flows)
            scores.append(psnr(out[..., :h, :w], c[:, t]).item())
        res[source] = float(np.mean(scores))
    return res


def preaverage(dark: np.ndarray, clean: np.ndarray, k: int, aligned: bool) -> np.ndarray:
    """(N, H, W, 3) uint8: each frame replaced by the mean of the k dark frames around it (edges
    clamped), warped to it along DIS flow of the clean frames when ``aligned``."""
    n, h, w = dark.shape[:3]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gray = [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in clean]
    out = []
    for t in range(n):
        acc = []
        for j in range(t - k // 2, t + k // 2 + 1):
            j = min(max(j, 0), n - 1)
            f = dark[j].astype(np.float32)
            if aligned and j != t:
                fl = dis_flow(gray[t], gray[j])
                f = cv2.remap(f, gx + fl[..., 0], gy + fl[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            acc.append(f)
        out.append(np.clip(np.mean(acc, axis=0) + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def pan(clean: np.ndarray, crop_hw: tuple[int, int] = (144, 192), step: tuple[int, int] = (2, 4)) -> np.ndarray:
    """A camera pan over a nearly static clip: frame t is the crop_hw window at offset t * step
    (y, x) px, integer shifts so the ground truth is not resampled."""
    h, w = crop_hw
    n = len(clean)
    if clean.shape[1] < h + step[0] * (n - 1) or clean.shape[2] < w + step[1] * (n - 1):
        raise ValueError("clip too small for that pan")
    return np.stack([f[t * step[0]:t * step[0] + h, t * step[1]:t * step[1] + w] for t, f in enumerate(clean)])


@torch.no_grad()
def pan_epe(model: STPR, dark: np.ndarray, step: tuple[int, int] = (2, 4)) -> dict:
    """Mean end-point error (1/4-resolution px) of the learned and the DIS flow on a ``pan`` clip,
    whose true flow is known: centre -> next frame is -step / 4 everywhere (+step / 4 to the
    previous one). A 2-cell margin (content entering or leaving the window) is left out."""
    model.eval()
    enc, _, (h, w) = encode_clip(model, dark)
    n = len(enc)
    sl = (slice(None), slice(None), slice(2, h // 4 - 2), slice(2, w // 4 - 2))
    errs: dict = {"learned": [], "dis-dark": []}
    mean_next = []  # the learned flow towards the next frame, averaged: how much of the motion it sees
    for t in range(1, n - 1):
        for j, sign in ((t + 1, -1.0), (t - 1, 1.0)):
            true = torch.tensor([sign * step[1] / 4, sign * step[0] / 4]).view(1, 2, 1, 1)
            for name, f in (("learned", model.estimate_flow(enc[t], enc[j])),
                            ("dis-dark", dis_flow_torch(enc[t].norm_small, enc[j].norm_small))):
                errs[name].append((f - true)[sl].norm(dim=1).mean().item())
                if name == "learned" and sign < 0:
                    mean_next.append(f[sl].mean(dim=(0, 2, 3)).numpy())
    out = {k: float(np.mean(v)) for k, v in errs.items()}
    mx, my = np.mean(mean_next, axis=0)
    out["learned mean flow to next (x, y)"] = f"({mx:.2f}, {my:.2f})"
    return out


def motion_magnitudes(gray: list[np.ndarray]) -> np.ndarray:
    """DIS flow magnitude (px) between consecutive (H, W) uint8 grey frames: (N - 1, H, W)."""
    return np.stack([np.linalg.norm(dis_flow(a, b), axis=2) for a, b in zip(gray[:-1], gray[1:])])


def mean_motion(clean: np.ndarray) -> tuple[float, float]:
    """Mean DIS flow magnitude between consecutive clean frames (full-resolution px) and the share
    of pixels moving more than 1 px."""
    mag = motion_magnitudes([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in clean])
    return float(mag.mean()), float((mag > 1).mean())


def real_motion(root: Path) -> None:
    """Mean DIS motion (full-resolution px per frame, and its 95th percentile) of each real clip
    (read as ``stpr eval --clips`` reads them), on its min-max-normalised grey frames (the dark
    frames' own noise inflates it a little)."""
    for seq in clip_sequences(root):
        gray = [cv2.normalize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), None, 0, 255, cv2.NORM_MINMAX)
                for f in seq.frames]
        mag = motion_magnitudes(gray)
        print(f"{seq.name} ({gray[0].shape[1]}x{gray[0].shape[0]}): motion {mag.mean():.2f} px per frame, "
              f"95th percentile {np.percentile(mag, 95):.2f}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None, help="weights file (default: the shipped model)")
    ap.add_argument("--videos", default="data_cache/videos")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-averages", action="store_true", help="flow sources only (skip the pre-averaged windows)")
    ap.add_argument("--pans", default="2x4",
                    help="comma-separated pan steps YxX in px per frame (a faster pan keeps fewer frames, as many as fit)")
    ap.add_argument("--pan-only", action="store_true", help="only the panned tree.avi cases")
    ap.add_argument("--real-motion", metavar="CLIPS", default=None,
                    help="only print how much each real clip (a folder of frame folders) moves")
    args = ap.parse_args()
    if args.real_motion:
        real_motion(Path(args.real_motion))
        return 0
    torch.set_num_threads(args.threads)
    m3, m1 = load_model(args.model, frames=3), load_model(args.model, frames=1)
    pans = [tuple(int(v) for v in p.split("x")) for p in args.pans.split(",") if p]
    cases = [] if args.pan_only else [("carphone_pristine.mp4", "", None), ("tree.avi", "", None),
                                      ("carphone_pristine.mp4", "jumps", None)]
    cases += [("tree.avi", "pan", step) for step in pans]
    for video, variant, step in cases:
        clean = read_video_frames(Path(args.videos) / video, 30)
        name = video + {"": "", "jumps": " 0.5x/2x jumps", "pan": ""}[variant]
        if variant == "pan":
            h, w = 144, 192
            fit = min(len(clean), 1 + (clean.shape[1] - h) // step[0], 1 + (clean.shape[2] - w) // step[1])
            clean = pan(clean[:fit], (h, w), step)
            name += f" panned {np.hypot(*step):.1f} px/frame ({step[1]} right, {step[0]} down, {fit} frames)"
        dark = synthetic_eval_clip(clean, jumps=variant == "jumps")
        row = run(m3, clean, dark, ["learned", "dis-dark", "dis-clean", "dis-clean-full", "zero"])
        row["T=1"] = run(m1, clean, dark, ["learned"])["learned"]
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
        if variant == "pan":
            epe = pan_epe(m3, dark, step)
            print(f"{name}: flow end-point error (1/4-resolution px; true motion "
                  f"({-step[1] / 4:g}, {-step[0] / 4:g}) to the next frame) "
                  + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in epe.items()),
                  flush=True)
        elif not variant:
            mag, share = mean_motion(clean)
            print(f"{name}: clean-frame motion {mag:.2f} px per frame, {share:.0%} of pixels over 1 px", flush=True)
        if variant or args.no_averages:
            continue  # the averages below would mix exposures
        for aligned in (False, True):
            row = {}
            for k in (3, 5, 9):
                avg = preaverage(dark, clean, k, aligned)
                row[f"k={k}"] = f"{eval_video(m1, clean, avg)['psnr']:.2f} / {eval_video(m3, clean, avg)['psnr']:.2f}"
            label = "oracle-aligned" if aligned else "box"
            print(f"{name}, {label} average of k frames, then T = 1 / T = 3: "
                  + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
