"""Command-line interface: ``stpr enhance | train | eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stpr.errors import InputError, StprError, UsageError


def _add_train(sub):
    p = sub.add_parser("train", help="train an STPR model",
                       description="Train STPR. Settings come from a JSON config plus key=value overrides.")
    p.add_argument("--config", help="JSON training config (see configs/default.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set steps=500 --set model.channels=24")
    p.add_argument("--resume", action="store_true", help="continue the run in out_dir from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_train(args) -> int:
    from stpr.train import load_config, train

    cfg = load_config(args.config, args.overrides)
    out = train(cfg, resume=args.resume, quiet=args.quiet)
    print(f"run saved in {out}")
    return 0


VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".flv", ".wmv", ".mpg", ".mpeg"}


def default_output(src: Path) -> Path:
    """``clip.mp4`` -> ``clip_stpr.mp4``; ``frames/`` -> ``frames_stpr/``; ``a.jpg`` -> ``a_stpr.png``."""
    if src.is_dir():
        return src.with_name(src.name.rstrip("/") + "_stpr")
    if src.suffix.lower() in VIDEO_EXTS:
        return src.with_name(src.stem + "_stpr.mp4")
    return src.with_name(src.stem + "_stpr.png")


def _add_enhance(sub):
    p = sub.add_parser("enhance", help="enhance a dark video, frame folder or image",
                       description="Enhance a dark video (anything FFmpeg decodes), a folder of frames or an "
                                   "image. Audio and other streams are copied unchanged.")
    p.add_argument("input", help="video file, folder of frames, or image")
    p.add_argument("-o", "--output", help="output video (.mp4/.mkv/.mov), folder for PNG frames, or image "
                                          "(default: INPUT_stpr.mp4 / INPUT_stpr/ / INPUT_stpr.png)")
    p.add_argument("--model", help="weights file (.safetensors); default: the shipped model")
    p.add_argument("--flow", choices=["learned", "dis", "zero"], default=None,
                   help="flow estimator: the learned pyramid net (default), OpenCV DIS, or none")
    p.add_argument("--frames", type=int, default=None, metavar="T",
                   help="temporal window (odd; 1 = per-frame). Default: the model's")
    p.add_argument("--codec", default="libx264", help="video encoder (default libx264)")
    p.add_argument("--crf", type=int, default=18, help="constant rate factor for x264/x265 (default 18)")
    p.add_argument("--preset", default="medium", help="encoder preset (default medium)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in pixels for large frames (0 = never tile; default: automatic)")
    p.add_argument("--memory-mb", type=int, default=1500, help="memory budget for automatic tiling (MB)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _run_enhance(args) -> int:
    from stpr.enhance import Enhancer

    src = Path(args.input)
    if not src.exists():
        raise InputError(f"input not found: {src}")
    if args.frames is not None and (args.frames < 1 or args.frames % 2 == 0):
        raise UsageError(f"--frames must be an odd number >= 1, got {args.frames}")
    if args.tile is not None and args.tile < 0:
        raise UsageError("--tile must be >= 0")
    if args.crf < 0 or args.crf > 63:
        raise UsageError("--crf must be between 0 and 63")
    dst = Path(args.output) if args.output else default_output(src)
    enhancer = Enhancer.from_pretrained(args.model, flow=args.flow, frames=args.frames, tile=args.tile,
                                        memory_mb=args.memory_mb, threads=args.threads)
    res = enhancer.enhance_video(src, dst, codec=args.codec, crf=args.crf, preset=args.preset,
                                 overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {dst} ({res['frames']} frames, {res['fps']:.2f} frames/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stpr", description="Low-light video enhancement with STPR.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_enhance(sub)
    _add_train(sub)
    return parser


COMMANDS = {"enhance": _run_enhance, "train": _run_train}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except StprError as e:
        if args.debug:
            raise
        print(f"stpr: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("stpr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
