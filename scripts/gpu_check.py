"""GPU check: the device path's output against the CPU reference, and its speed, in one short call.

    python scripts/gpu_check.py --out $OUT                       # on a CUDA machine (~3-5 min)
    python scripts/gpu_check.py --device cpu --sizes 320x180 --frames 8 --bench-frames 8   # dry run

1. Equality: a generated 640x360 dark clip (``stpr.bench.make_clip``) enhanced on the CPU in float32,
   one window at a time (the reference), and on ``--device`` in fp32 and in its automatic precision
   (bf16 on recent GPUs) with the device's default batch of windows. Pass: PSNR against the
   reference >= 40 dB in fp32 (cuDNN may use TF32) and >= 35 dB in reduced precision, and every
   frame present.
2. Model-only rate per size (frames already decoded, in memory: what the network and the transfers
   sustain), for each precision and for batch 1 against the default batch.
3. End to end (decode + enhance + encode, ``stpr bench``) per size, unless ``--no-end-to-end``.

Prints Markdown tables and writes gpu_check.json (and gpu_check.md) under ``--out``. Exit status 1
when the equality check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stpr.bench import make_clip, parse_sizes
from stpr.enhance import Enhancer
from stpr.hardware import default_batch, resolve_device
from stpr.io import open_input


def _frames(w: int, h: int, n: int, tmp: Path) -> list[np.ndarray]:
    clip = tmp / f"clip_{w}x{h}.mp4"
    make_clip(clip, w, h, n)
    with open_input(clip) as r:
        return [f.rgb for f in r]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def equality(dev: torch.device, frames: list[np.ndarray], model: str | None = None) -> list[dict]:
    ref = np.stack(list(Enhancer.from_pretrained(model, device="cpu", precision="fp32", batch=1, tile=0)
                        .enhance_frames(frames)))
    rows = []
    for precision, floor in (("fp32", 40.0), ("auto", 35.0)):
        enh = Enhancer.from_pretrained(model, device=str(dev), precision=precision, tile=0)
        out = np.stack(list(enh.enhance_frames(frames)))
        diff = np.abs(out.astype(int) - ref.astype(int))
        psnr = _psnr(out, ref)
        rows.append({"device": str(dev), "precision": enh.precision, "batch": enh.batch_for(*frames[0].shape[:2]),
                     "frames": len(out), "psnr_vs_cpu_fp32": psnr, "mean_abs_levels": float(diff.mean()),
                     "max_abs_levels": int(diff.max()), "floor_db": floor,
                     "ok": bool(len(out) == len(frames) and psnr >= floor)})
    return rows


def model_rate(dev: torch.device, frames: list[np.ndarray], precision: str, batch: int | None,
               model: str | None = None) -> dict:
    enh = Enhancer.from_pretrained(model, device=str(dev), precision=precision, batch=batch, tile=None)
    h, w = frames[0].shape[:2]
    list(enh.enhance_frames(frames[: max(4, enh.batch_for(h, w) + 2)]))  # warm-up: kernels, allocator
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    t0 = time.perf_counter()
    n = sum(1 for _ in enh.enhance_frames(frames))
    _sync(dev)
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda" else None
    return {"size": f"{w}x{h}", "precision": enh.precision, "batch": enh.batch_for(h, w),
            "tile": enh.tile_size_for(h, w), "frames": n, "fps": n / secs, "peak_gpu_mb": peak}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", default="640x360,1920x1080,3840x2160")
    ap.add_argument("--frames", type=int, default=12, help="frames of the equality clip")
    ap.add_argument("--bench-frames", type=int, default=48, help="frames per size for the rates")
    ap.add_argument("--no-end-to-end", action="store_true")
    ap.add_argument("--out", default=".")
    ap.add_argument("--model", default=None, help="a shipped model's name (quality, the default; fast) or weights")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {"torch": torch.__version__, "device": str(dev),
           "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "cpu_threads": torch.get_num_threads()}
    print("environment:", json.dumps(env))
    report: dict = {"environment": env}
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="stpr_gpu_check_") as tmp:
        tmp = Path(tmp)
        rows = equality(dev, _frames(640, 360, args.frames, tmp), args.model)
        report["equality"] = rows
        lines += ["| device | precision | windows per call | frames | PSNR vs CPU fp32 (dB) | mean / max abs "
                  "(levels) | floor (dB) | ok |", "|---|---|---:|---:|---:|---|---:|---|"]
        lines += [f"| {r['device']} | {r['precision']} | {r['batch']} | {r['frames']} | {r['psnr_vs_cpu_fp32']:.2f} | "
                  f"{r['mean_abs_levels']:.3f} / {r['max_abs_levels']} | {r['floor_db']:.0f} | "
                  f"{'yes' if r['ok'] else 'NO'} |" for r in rows]
        print("\n".join(lines), flush=True)
        rates = []
        for w, h in parse_sizes(args.sizes):
            frames = _frames(w, h, args.bench_frames, tmp)
            cases = [("auto", None), ("fp32", None), ("auto", 1)]
            if default_batch(dev, h, w) == 1:
                cases = cases[:2]
            for precision, batch in cases:
                r = model_rate(dev, frames, precision, batch, args.model)
                rates.append(r)
                print(json.dumps(r), flush=True)
            del frames
        report["model_rates"] = rates
        lines += ["", "model only (frames in memory; uint8 to and from the device included):", "",
                  "| size | precision | windows per call | tile | frames | frames/s | peak GPU memory (MB) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['size']} | {r['precision']} | {r['batch']} | {r['tile'] or 'whole'} | {r['frames']} | "
                  f"{r['fps']:.1f} | {'–' if r['peak_gpu_mb'] is None else format(r['peak_gpu_mb'], '.0f')} |"
                  for r in rates]
    if not args.no_end_to_end:
        js = out / "gpu_check_bench.json"
        cmd = [sys.executable, "-m", "stpr", "bench", "--sizes", args.sizes, "--frames", str(args.bench_frames),
               "--methods", "stpr", "--engines", "torch", "--precisions", "auto,fp32", "--device", str(dev),
               "--repeat", "1", "--json", str(js), "--quiet"] + (["--model", args.model] if args.model else [])
        print("$", " ".join(cmd), flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True)
        print(res.stdout, res.stderr[-2000:], flush=True)
        lines += ["", "end to end (`" + " ".join(cmd[2:]) + "`):", "", res.stdout.strip()]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print("\n".join(lines))
    return 0 if all(r["ok"] for r in report["equality"]) else 1


if __name__ == "__main__":
    sys.exit(main())
