"""Is the synthetic dark footage noisy the way real dark phone footage is?

Both syntheses (``stpr.data.synthesis``: white Poisson-Gaussian noise on sRGB pixels;
``stpr.data.camera``: the camera pipeline in reverse and forward, with H.264) are run on
normal-light LOL training images, and every set of dark frames is measured the same way as the
real dark clips of ``../shared/data/real-lowlight-clips``:

- flat patches: 32x32 patches whose content, smoothed (Gaussian sigma 4), varies by less than
  ``--flat`` levels and whose mean luma is 3-60 (0-255);
- each patch's residual after a fitted plane, in BT.601 Y / Cb / Cr (8-bit scale);
- its noise power spectrum (Hann window, radially averaged, as a fraction of the patch's noise
  power, so the curve's shape is the grain size), luma and chroma std, and the chroma/luma ratio;
- ``low-frequency share``: the fraction of the noise power below 0.125 cycles/px (a white noise
  has ~0.05, blotches 4-16 px wide push it up).

    .venv/bin/python experiments/camera_calibration.py --out docs/research/camera_calibration.png

Prints a table per set and writes the plot. Seeds are fixed.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import cv2
import numpy as np

from stpr.data.camera import camera_clip, sample_camera
from stpr.data.synthesis import darken_clip, sample_params

P = 32
BINS = np.linspace(0.0, 0.5 * np.sqrt(2), 12)
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def _radial_index() -> np.ndarray:
    f = np.fft.fftfreq(P)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    return np.clip(np.digitize(r, BINS) - 1, 0, len(BINS) - 2)


RADIAL = _radial_index()
FREQ = np.sqrt(np.fft.fftfreq(P)[:, None] ** 2 + np.fft.fftfreq(P)[None, :] ** 2)
HANN = np.outer(np.hanning(P), np.hanning(P)).astype(np.float32)
_YY, _XX = np.mgrid[0:P, 0:P].astype(np.float32)
_PLANE = np.stack([np.ones_like(_YY).ravel(), _YY.ravel(), _XX.ravel()], 1)


def flat_patches(rgb: np.ndarray, flat: float) -> list[np.ndarray]:
    """Residuals (3, P, P) in Y/Cb/Cr of the flat, dark patches of one uint8 RGB frame."""
    ycc = rgb.astype(np.float32) @ _YCC.T
    smooth = cv2.GaussianBlur(ycc, (0, 0), 4.0)
    out = []
    h, w = rgb.shape[:2]
    for y0 in range(0, h - P + 1, P):
        for x0 in range(0, w - P + 1, P):
            s = smooth[y0:y0 + P, x0:x0 + P]
            if not (3 <= s[..., 0].mean() <= 60) or s.std(axis=(0, 1)).max() > flat:
                continue
            patch = ycc[y0:y0 + P, x0:x0 + P].reshape(-1, 3)
            coef, *_ = np.linalg.lstsq(_PLANE, patch, rcond=None)
            out.append((patch - _PLANE @ coef).T.reshape(3, P, P))
    return out


def measure(frames: list[np.ndarray], flat: float) -> dict | None:
    """Noise statistics over the flat patches of a set of frames (None with fewer than 8)."""
    res = [r for f in frames for r in flat_patches(f, flat)]
    if len(res) < 8:
        return None
    res = np.stack(res)  # (N, 3, P, P)
    power = np.abs(np.fft.fft2(res * HANN)) ** 2  # (N, 3, P, P)
    keep = (power.sum(axis=(-1, -2)) > 0).all(1)  # clipped-black patches have no noise to measure
    res, power = res[keep], power[keep]
    if len(res) < 8:
        return None
    nps = np.stack([np.bincount(RADIAL.ravel(), weights=power[:, c].mean(0).ravel(), minlength=len(BINS) - 1)
                    / np.bincount(RADIAL.ravel(), minlength=len(BINS) - 1) for c in range(3)])
    nps /= nps.sum(axis=1, keepdims=True)
    low = power[..., FREQ < 0.125].sum(-1) / power.sum(axis=(-1, -2))  # (N, 3)
    std = res.std(axis=(-1, -2))  # (N, 3)
    luma, chroma = float(np.median(std[:, 0])), float(np.median(std[:, 1:].mean(1)))
    return {"patches": len(res), "luma_std": luma, "chroma_std": chroma, "chroma_luma": chroma / luma,
            "low_luma": float(low[:, 0].mean()), "low_chroma": float(low[:, 1:].mean()),
            "nps_luma": nps[0], "nps_chroma": nps[1:].mean(0)}


def real_sets(root: Path) -> dict[str, list[np.ndarray]]:
    sets = {}
    for d in sorted(root.glob("clip*")):
        sets[d.name] = [cv2.imread(f)[..., ::-1] for f in sorted(glob.glob(str(d / "*.png")))]
    return sets


def synthetic_sets(lol_high: Path, n: int, seed: int) -> dict[str, list[list[np.ndarray]]]:
    """Per synthesis, n single-camera sets: 4 frames of one LOL image with one camera each."""
    names = sorted(lol_high.glob("*.*"))[:n]
    out: dict[str, list[list[np.ndarray]]] = {"white (synthesis.py)": [], "camera (camera.py)": []}
    for i, path in enumerate(names):
        img = cv2.imread(str(path))[..., ::-1]
        clip = np.stack([img] * 4)
        rng = np.random.default_rng(seed + i)
        out["white (synthesis.py)"].append(list(darken_clip(clip, sample_params(rng), rng)))
        rng = np.random.default_rng(seed + i)
        out["camera (camera.py)"].append(list(camera_clip(clip, sample_camera(rng), rng)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--lol", default="../shared/data/lol-train/high", help="normal-light source images")
    ap.add_argument("--n", type=int, default=24, help="synthetic cameras per synthesis")
    ap.add_argument("--flat", type=float, default=1.5, help="max std (levels) of a flat patch's smoothed content")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None, help="PNG plot")
    args = ap.parse_args()

    rows = {}
    for name, frames in real_sets(Path(args.real)).items():
        m = measure(frames, args.flat)
        if m:
            rows.setdefault("real", []).append((name, m))
    for name, sets in synthetic_sets(Path(args.lol), args.n, args.seed).items():
        for k, frames in enumerate(sets):
            m = measure(frames, args.flat)
            if m:
                rows.setdefault(name, []).append((str(k), m))

    print("| set | clips/cameras measured | luma std | chroma std | chroma / luma | low-freq share luma | "
          "low-freq share chroma |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ms in rows.items():
        def med(key):
            return float(np.median([m[key] for _, m in ms]))
        print(f"| {name} | {len(ms)} | {med('luma_std'):.2f} | {med('chroma_std'):.2f} | {med('chroma_luma'):.2f} | "
              f"{med('low_luma'):.3f} | {med('low_chroma'):.3f} |")
    for _, (name, m) in enumerate(rows.get("real", [])):
        print(f"  real {name}: {m['patches']} patches, luma {m['luma_std']:.2f}, chroma/luma {m['chroma_luma']:.2f}, "
              f"low-freq chroma {m['low_chroma']:.3f}")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        centres = 0.5 * (BINS[1:] + BINS[:-1])
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        colours = {"real": "k", "white (synthesis.py)": "tab:blue", "camera (camera.py)": "tab:orange"}
        for name, ms in rows.items():
            for j, key in enumerate(("nps_luma", "nps_chroma")):
                curves = np.stack([m[key] for _, m in ms])
                ax[j].plot(centres, np.median(curves, 0), color=colours[name], label=name, lw=2)
                ax[j].fill_between(centres, np.percentile(curves, 25, 0), np.percentile(curves, 75, 0),
                                   color=colours[name], alpha=0.15)
            ax[2].scatter([m["luma_std"] for _, m in ms], [m["chroma_luma"] for _, m in ms],
                          color=colours[name], label=name, s=18)
        for j, t in enumerate(("luma", "chroma (Cb, Cr)")):
            ax[j].set(title=f"{t} noise power spectrum (flat dark patches)", xlabel="cycles / px",
                      ylabel="share of the noise power", yscale="log")
        ax[2].set(title="chroma / luma noise std", xlabel="luma noise std (levels)", ylabel="chroma / luma", xscale="log")
        ax[0].legend()
        fig.tight_layout()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=80)
        print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
