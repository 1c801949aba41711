"""int8 trial: onnxruntime's statically quantised convolutions against fp32 and PyTorch bf16.

    .venv/bin/python experiments/int8_trial.py --lol ../shared/data/lol-train \
        --synthetic data_cache/videos/tree.avi

1. Export the shipped model to ONNX (``stpr.onnx_engine.export_onnx``).
2. Calibrate on *training* data (the first ``--calib`` LOL training pairs' low images, as static
   clips; never the held-out split) by recording every input the two graphs receive.
3. Quantise both graphs (QDQ, int8 per-channel weights, uint8 activations; onnxruntime's
   ``quantize_static``) and run them through the same streaming Enhancer.
4. Score PSNR on the held-out LOL split and the held-out synthetic-dark video, and time
   model-only enhancement of 640x360 frames (median of interleaved rounds), for: PyTorch fp32,
   PyTorch bf16, onnxruntime fp32, onnxruntime int8.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stpr.checkpoint import DEFAULT_WEIGHTS, load_model
from stpr.data.datasets import lol_split, read_rgb, read_video_frames
from stpr.enhance import Enhancer
from stpr.evaluate import synthetic_eval_clip, to_tensor
from stpr.metrics.image import psnr
from stpr.onnx_engine import OnnxSTPR, export_onnx


class _Recorder:
    """Wraps an onnxruntime session and keeps every feed it runs (the calibration set)."""

    def __init__(self, session):
        self.session, self.feeds = session, []

    def run(self, names, feed):
        self.feeds.append({k: v.copy() for k, v in feed.items()})
        return self.session.run(names, feed)

    def __getattr__(self, name):
        return getattr(self.session, name)


def quantise(fp32_dir: Path, int8_dir: Path, calib_frames: list[list[np.ndarray]]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, feeds):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    rec = OnnxSTPR(fp32_dir, threads=2)
    rec.enc, rec.dec = _Recorder(rec.enc), _Recorder(rec.dec)
    enh = Enhancer(rec, tile=0)
    for clip in calib_frames:
        list(enh.enhance_frames(clip))
    int8_dir.mkdir(parents=True, exist_ok=True)
    for f in fp32_dir.iterdir():
        if f.suffix != ".onnx":
            shutil.copy(f, int8_dir / f.name)
    for name, feeds in (("encode.onnx", rec.enc.feeds), ("decode.onnx", rec.dec.feeds)):
        quantize_static(str(fp32_dir / name), str(int8_dir / name), Reader(feeds), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)


def score(enh: Enhancer, sequences) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for kind, dark, gt in sequences:
        for o, g in zip(enh.enhance_frames(dark), gt):
            out.setdefault(kind, []).append(psnr(to_tensor(o), to_tensor(g)).item())
    return {k: float(np.mean(v)) for k, v in out.items()}


def rate(enh: Enhancer, frames: list[np.ndarray]) -> float:
    list(enh.enhance_frames(frames[:4]))
    t0 = time.perf_counter()
    n = sum(1 for _ in enh.enhance_frames(frames))
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lol", default="../shared/data/lol-train")
    ap.add_argument("--synthetic", default="data_cache/videos/tree.avi")
    ap.add_argument("--calib", type=int, default=8, help="LOL training pairs to calibrate on")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.lol)
    train, held = lol_split(root)
    calib = [[read_rgb(next((root / "low").glob(n + ".*")))] for n in train[: args.calib]]
    sequences = []
    for n in held:
        sequences.append(("lol", [read_rgb(next((root / "low").glob(n + ".*")))],
                          [read_rgb(next((root / "high").glob(n + ".*")))]))
    if Path(args.synthetic).is_file():
        clean = read_video_frames(args.synthetic, max_frames=args.frames)
        sequences.append(("synthetic", list(synthetic_eval_clip(clean)), list(clean)))

    model = load_model()
    tmp = Path(tempfile.mkdtemp(prefix="stpr_int8_"))
    export_onnx(model, tmp / "fp32", weights=DEFAULT_WEIGHTS)
    t0 = time.perf_counter()
    quantise(tmp / "fp32", tmp / "int8", calib)
    print(f"calibrated and quantised in {time.perf_counter() - t0:.0f} s")
    paths = {
        "torch fp32": Enhancer(model, tile=0, precision="fp32", device="cpu"),
        "torch bf16": Enhancer(model, tile=0, precision="bf16", device="cpu"),
        "onnxruntime fp32": Enhancer(OnnxSTPR(tmp / "fp32", threads=2), tile=0),
        "onnxruntime int8 (QDQ, static)": Enhancer(OnnxSTPR(tmp / "int8", threads=2), tile=0),
    }
    frames = list((np.random.default_rng(0).random((16, 360, 640, 3)) * 40).astype(np.uint8))
    rates: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(args.rounds):
        for k, enh in paths.items():
            rates[k].append(rate(enh, frames))
    print("| path | held-out LOL PSNR | synthetic PSNR | model frames/s, 640x360 (median) |")
    print("|---|---:|---:|---:|")
    for k, enh in paths.items():
        s = score(enh, sequences)
        print(f"| {k} | {s.get('lol', float('nan')):.3f} | {s.get('synthetic', float('nan')):.3f} | "
              f"{statistics.median(rates[k]):.2f} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
