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


def _add_eval(sub):
    p = sub.add_parser("eval", help="score STPR and baselines, write a report",
                       description="Evaluate STPR and classical baselines. Paired (INPUT --gt GT, --lol ROOT, "
                                   "--synthetic VIDEO): PSNR/SSIM (RGB and Y) per frame and mean, plus temporal "
                                   "metrics for multi-frame sequences. Unpaired (INPUT, --clips ROOT): flicker "
                                   "ratio, E_warp, MABD, mean brightness. Writes results.md/.csv/.json and "
                                   "pictures into --out.")
    p.add_argument("input", nargs="?", help="dark video, frame folder or image")
    p.add_argument("--gt", help="ground truth for INPUT (video, frame folder or image): paired mode")
    p.add_argument("--lol", metavar="ROOT", help="LOL-style root (low/, high/): its held-out split, each image "
                                                 "as a one-frame sequence")
    p.add_argument("--synthetic", metavar="VIDEO", help="normal-light video, darkened with the fixed evaluation "
                                                        "camera and seed; the original is the ground truth")
    p.add_argument("--clips", metavar="ROOT", help="folder of clip sub-folders of frames (unpaired)")
    p.add_argument("--methods", help="comma-separated, from stpr,stpr-perframe,gamma-clahe,"
                                     "gamma-clahe-temporal,lime (default: all)")
    p.add_argument("--model", help="weights file (.safetensors) for stpr / stpr-perframe; default: the shipped model")
    p.add_argument("--flow", choices=["learned", "dis", "zero"], default=None,
                   help="flow estimator for the STPR methods (default: the model's)")
    p.add_argument("--out", default="eval_report", help="report folder (default eval_report/)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="use at most N frames per sequence (default: all; 30 for --synthetic)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate at most N sequences (LOL pairs or clips)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary output")


def _run_eval(args) -> int:
    from stpr.report import run_eval

    run_eval(args.input, gt=args.gt, lol=args.lol, synthetic=args.synthetic, clips=args.clips,
             methods=args.methods, model=args.model, flow=args.flow, out=args.out, max_frames=args.max_frames,
             limit=args.limit, threads=args.threads, log=(lambda s: None) if args.quiet else print)
    return 0


def _add_bench(sub):
    p = sub.add_parser("bench", help="measure speed, peak memory and FLOPs of end-to-end enhancement",
                       description="Time end-to-end enhancement (decode + enhance + encode) of a generated dark "
                                   "clip per frame size and method, each case in a fresh process (its own peak "
                                   "RSS); report the model's GFLOPs/frame and the achieved fraction of this "
                                   "machine's fp32 matmul peak. Prints a Markdown table.")
    p.add_argument("--sizes", default=None, metavar="WxH[,WxH...]",
                   help="frame sizes (default 640x360,1280x720,1920x1080,3840x2160)")
    p.add_argument("--frames", type=int, default=10, help="frames in the generated clip (default 10)")
    p.add_argument("--methods", default=None,
                   help="comma-separated, from stpr,stpr-perframe,gamma-clahe,gamma-clahe-temporal,lime "
                        "(default: stpr and the three baselines)")
    p.add_argument("--model", help="weights file (.safetensors); default: the shipped model")
    p.add_argument("--flow", choices=["learned", "dis", "zero"], default=None,
                   help="flow estimator for the STPR methods (default: the model's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="only print the table")


def _run_bench(args) -> int:
    from stpr.bench import format_table, parse_sizes, run_bench

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    data = run_bench(parse_sizes(args.sizes), frames=args.frames, methods=methods, model=args.model,
                     flow=args.flow, threads=args.threads, json_path=args.json, log=log)
    for note in data["notes"]:
        print(f"note: {note}")
    print(format_table(data["results"], data["machine"]["matmul_peak_gflops"]))
    if args.json and not args.quiet:
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stpr", description="Low-light video enhancement with STPR.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_enhance(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_bench(sub)
    return parser


COMMANDS = {"enhance": _run_enhance, "train": _run_train, "eval": _run_eval, "bench": _run_bench}


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
