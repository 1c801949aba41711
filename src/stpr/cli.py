"""Command-line interface: ``stpr enhance | train | eval | bench | batch | export``."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from stpr.errors import InputError, StprError, UsageError
from stpr.evaluate import JUMP_LABEL
from stpr.models.stpr_arch import FLOW_MODES
from stpr.temporal import DEFAULT_STRENGTH
from stpr.tone import DEFAULT_STRENGTH as DEFAULT_TONE


def _add_model_options(p, flow_help: str = "flow estimator: the learned pyramid net (default), OpenCV DIS, or none",
                       look: bool = True):
    """--model, --flow and (``look``) --look, shared by the commands that run STPR."""
    p.add_argument("--model", help="a shipped model's name (quality, the default; fast) or a weights file "
                                   "(.safetensors)")
    p.add_argument("--flow", choices=list(FLOW_MODES), default=None, help=flow_help)
    if look:
        p.add_argument("--look", default=None, metavar="NAME",
                       help="tone look, for a model trained with several (e.g. lol: the look of the LOL "
                            "dataset's ground truths); default: the model's first")


def _add_hardware_options(p, precision: bool = True, batch: bool = True):
    """--device, --precision and --batch, shared by the commands that run STPR."""
    from stpr.hardware import DEVICES, PRECISIONS

    p.add_argument("--device", default="auto", metavar="|".join(DEVICES),
                   help="where the network runs: auto (a CUDA GPU when PyTorch sees one, else the CPU; default), "
                        "cpu, cuda or cuda:N")
    if precision:
        p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                       help="convolution precision: auto (bf16 on CPUs with AVX512-BF16/AMX and on GPUs, else "
                            "fp32; default), fp32, bf16, or fp16 (GPUs)")
    if batch:
        p.add_argument("--batch", type=int, default=None, metavar="N",
                       help="windows per network call (default: 1 on a CPU, 8 on a GPU, 2 at 4K)")
        p.add_argument("--workers", type=int, default=None, metavar="N",
                       help="CPU: frames enhanced at once, each in its own thread with one torch thread (whole "
                            "frames that fit the memory budget N times; default: one per core up to 1280x720, "
                            "else 1)")


def _add_output_filters(p):
    """--temporal-filter and --tone-match: what runs on the network's output frames."""
    p.add_argument("--temporal-filter", type=float, default=None, metavar="S",
                   help=f"strength of the recursive filter that steadies the output along optical flow where "
                        f"consecutive frames agree (0 to 1, 0 turns it off; default {DEFAULT_STRENGTH})")
    p.add_argument("--tone-match", type=float, default=None, metavar="S",
                   help=f"strength of the tone curve that brings the output's shadows and mid-tones to those of "
                        f"the input simply brightened: less haze, deeper blacks (0 to 1, 0 turns it off; "
                        f"default {DEFAULT_TONE:g})")


def _add_train(sub):
    # the config module is light; the training loop (stpr.train) is imported only to run
    from stpr.train_config import TRAIN_DESCRIPTION, TRAIN_HELP, add_train_arguments

    add_train_arguments(sub.add_parser("train", help=TRAIN_HELP, description=TRAIN_DESCRIPTION))


def _run_train(args) -> int:
    from stpr.train import run

    return run(args)


def default_output(src: Path) -> Path:
    """``clip.mp4`` -> ``clip_stpr.mp4``; ``frames/`` -> ``frames_stpr/``; ``a.jpg`` -> ``a_stpr.png``.

    The rule is ``open_input``'s: a folder is frames, a still-image extension an image, anything
    else a video (also .gif, .ts, .m2ts, .3gp ...), and a video gets an MP4."""
    from stpr.io import IMAGE_EXTENSIONS

    if src.is_dir():
        return src.with_name(src.name.rstrip("/") + "_stpr")
    if src.suffix.lower() in IMAGE_EXTENSIONS:
        return src.with_name(src.stem + "_stpr.png")
    return src.with_name(src.stem + "_stpr.mp4")


def _add_enhance(sub):
    p = sub.add_parser("enhance", help="enhance a dark video, frame folder or image",
                       description="Enhance a dark video (anything FFmpeg decodes), a folder of frames or an "
                                   "image. Audio and subtitle streams are copied unchanged, with their language, "
                                   "title and default/forced flags, and so are the file's tags (title, creation "
                                   "time, location; --strip-metadata leaves them out).")
    p.add_argument("input", help="video file, folder of frames, or image")
    p.add_argument("-o", "--output", help="output video (.mp4, .mkv, .mov, .avi, .webm), folder for PNG frames "
                                          "(a name without extension), or image (.png, .jpg, ...); default: "
                                          "INPUT_stpr.mp4 / INPUT_stpr/ / INPUT_stpr.png")
    _add_model_options(p)
    p.add_argument("--frames", type=int, default=None, metavar="T",
                   help="temporal window (odd; 1 = per-frame). Default: the model's")
    p.add_argument("--codec", default="libx264", help="video encoder (default libx264)")
    p.add_argument("--crf", type=int, default=18,
                   help="constant rate factor (x264/x265: 0-51, VP9/AV1: 0-63; default 18)")
    p.add_argument("--preset", default="medium",
                   help="encoder speed preset (x264/x265: ultrafast, superfast, veryfast, faster, fast, medium, "
                        "slow, slower, veryslow; default medium)")
    p.add_argument("--fps", default=None, metavar="F",
                   help="frame rate of a frame folder or image input in a video output, e.g. 30, 29.97 or "
                        "30000/1001 (default 25; a video input keeps its own timing)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in pixels for large frames, at least 32 (0 = never tile; default: automatic)")
    p.add_argument("--memory-mb", type=int, default=None,
                   help="working-memory budget of the network for automatic tiling (MB; default 1000 on a CPU, "
                        "half the free memory of a GPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the network (default: torch's, one per core)")
    p.add_argument("--engine", choices=["torch", "onnx"], default="torch",
                   help="run the network in PyTorch (default) or onnxruntime (needs stpr[onnx]; --model may then "
                        "be a folder made by stpr export --onnx)")
    _add_hardware_options(p)
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                   help="run the network's first and last full-resolution steps (with the conversion to 8 bits) "
                        "as passes built by torch.compile (needs a C++ compiler; the first frame waits 2-20 s "
                        "while they are built): auto (on a CPU, for whole frames of 1280x720 and more enhanced one "
                        "at a time; default), on (every whole-frame size), off. In the environment STPR_COMPILE=0 "
                        "turns it off and STPR_COMPILE=1 on for every command, stpr bench and stpr batch included")
    p.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)  # before --precision: = --precision bf16
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--strip-metadata", action="store_true",
                   help="leave out the input's tags (title, creation time, GPS location...) and track titles; "
                        "audio languages and default/forced flags are kept")
    p.add_argument("--resume", action="store_true",
                   help="resumable run (video output only): work in segments kept in a hidden folder beside "
                        "the output (.NAME.stpr-resume/); if interrupted, run the same command again to continue")
    p.add_argument("--segment-frames", type=int, default=None, metavar="N",
                   help="frames per segment with --resume (default 300)")
    p.add_argument("--exposure", type=float, default=0.0, metavar="EV",
                   help="stops added to the model's exposure guess, e.g. 0.5 or -1 (default 0)")
    p.add_argument("--brightness", type=float, default=None, metavar="Y",
                   help="hold every output frame at this mean brightness (luma 0-255, e.g. 110), so it does "
                        "not pump; with --exposure-per-frame the gain is smoothed over time instead "
                        "(default: the model's guess)")
    p.add_argument("--exposure-per-frame", action="store_true",
                   help="let the model set each frame's exposure on its own (default: the output's brightness is "
                        "smoothed over time, as auto-exposure settles, so it does not pump from frame to frame)")
    _add_output_filters(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--compare", action="store_true",
                   help="also write OUTPUT_compare.html, a before/after viewer for the browser (see stpr compare)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show full tracebacks (same as stpr --debug enhance ...)")


def _check_enhance_numbers(args) -> None:
    """Option values argparse cannot check by type alone (exit 2 before anything is loaded)."""
    for flag in ("frames", "crf", "tile", "memory_mb", "threads", "segment_frames", "batch", "workers"):
        value = getattr(args, flag)
        if value is not None and not isinstance(value, int):  # e.g. argparse turns "--crf=--" into []
            raise UsageError(f"--{flag.replace('_', '-')} needs a whole number, got {value!r}")
    if args.frames is not None and (args.frames < 1 or args.frames % 2 == 0):
        raise UsageError(f"--frames must be an odd number >= 1, got {args.frames}")
    from stpr.enhance import MIN_TILE

    if args.tile is not None and not (args.tile == 0 or args.tile >= MIN_TILE):
        raise UsageError(f"--tile must be 0 (never tile) or at least {MIN_TILE} pixels, got {args.tile}")
    if args.crf < 0 or args.crf > 63:
        raise UsageError(f"--crf must be between 0 and 63, got {args.crf}")
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.memory_mb is not None and args.memory_mb < 1:
        raise UsageError(f"--memory-mb must be >= 1, got {args.memory_mb}")
    _cap_threads(args)
    if args.segment_frames is not None:
        if args.segment_frames < 1:
            raise UsageError(f"--segment-frames must be >= 1, got {args.segment_frames}")
        if not args.resume:
            raise UsageError("--segment-frames only applies to resumable runs: add --resume")
    if args.bf16:
        if args.precision not in ("auto", "bf16"):
            raise UsageError(f"--bf16 and --precision {args.precision} contradict each other")
        args.precision = "bf16"
    if args.engine != "torch" and (args.precision not in ("auto", "fp32") or args.device not in ("auto", "cpu")):
        raise UsageError("--precision and --device apply to --engine torch only (onnx runs on the CPU in fp32)")
    from stpr.exposure import ExposureControl

    ExposureControl(ev=args.exposure, target=args.brightness)  # checks the ranges


def _cap_threads(args, local: bool = True) -> None:
    """Refuse ``--threads`` under 1; where the work runs here (``local``), lower it to the cores
    this process may use, with a warning: more OpenMP threads than cores only queue at every
    barrier (each waits for a time slice)."""
    from stpr._threads import cores_available

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if not local:
        return
    cores = cores_available()
    if args.threads is not None and args.threads > cores:
        import warnings

        warnings.warn(f"--threads {args.threads} is more than the {cores} cores this process may use; using {cores}",
                      stacklevel=1)
        args.threads = cores


def _parse_fps(args, src: Path):
    """``--fps`` as a Fraction (None when not given); a usage error for video inputs."""
    if args.fps is None:
        return None
    from fractions import Fraction

    from stpr.io import IMAGE_EXTENSIONS

    if not (src.is_dir() or src.suffix.lower() in IMAGE_EXTENSIONS):
        raise UsageError("--fps applies to frame folders and images; a video input keeps its own timing")
    try:
        fps = Fraction(args.fps).limit_denominator(1001000)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps needs a frame rate like 30, 29.97 or 30000/1001, got {args.fps!r}") from None
    if not 0 < fps <= 1000:
        raise UsageError(f"--fps must be above 0 and at most 1000, got {args.fps}")
    return fps


def _check_encoder_args(args, dst: Path) -> None:
    """--codec/--crf/--preset against the encoder the output will use (exit 2 before the model loads):
    not a video encoder, a crf outside its range, an unknown preset."""
    import warnings

    from stpr.errors import OutputError
    from stpr.io import VIDEO_EXTENSIONS, resolve_video_codec
    from stpr.io.encoding import check_encoder

    codec = args.codec
    if dst.suffix.lower() in VIDEO_EXTENSIONS:
        try:
            with warnings.catch_warnings():  # the fallback warning comes once, from the writer
                warnings.simplefilter("ignore")
                codec = resolve_video_codec(dst, args.codec)
        except OutputError:
            check_encoder(args.codec, crf=args.crf, preset=args.preset)  # a usage error first, if any
            raise
    check_encoder(codec, crf=args.crf, preset=args.preset)


def _run_enhance(args) -> int:
    from stpr.enhance import Enhancer
    from stpr.resume import check_leftover

    _check_enhance_numbers(args)
    src = Path(args.input)
    if not src.exists():
        raise InputError(f"input not found: {src}")
    fps = _parse_fps(args, src)
    dst = Path(args.output) if args.output else default_output(src)
    _check_encoder_args(args, dst)
    drops_audio = bool(args.output) and not dst.suffix and not dst.is_file() and _has_audio(src)
    if not args.resume:
        check_leftover(dst, args.overwrite)
    if args.compare:
        from stpr.compare import check_compare_target, default_compare_output

        check_compare_target(default_compare_output(dst), [src], args.overwrite)  # fail before enhancing
    enhancer = Enhancer.from_pretrained(args.model, flow=args.flow, frames=args.frames, engine=args.engine,
                                        look=args.look,
                                        tile=args.tile, memory_mb=args.memory_mb, threads=args.threads,
                                        precision=args.precision, device=args.device, batch=args.batch,
                                        workers=args.workers, exposure=args.exposure, brightness=args.brightness,
                                        compile={"auto": None, "on": True, "off": False}[args.compile],
                                        steady_exposure=not args.exposure_per_frame,
                                        **({} if args.temporal_filter is None else {"temporal_filter": args.temporal_filter}),
                                        **({} if args.tone_match is None else {"tone_match": args.tone_match}))
    res = enhancer.enhance_video(src, dst, codec=args.codec, crf=args.crf, preset=args.preset,
                                 overwrite=args.overwrite, progress=not args.quiet, resume=args.resume,
                                 segment_frames=args.segment_frames, strip_metadata=args.strip_metadata,
                                 **({"fps": fps} if fps else {}))
    if not args.quiet:
        print(f"wrote {dst} ({res['frames']} frames, {res['fps']:.2f} frames/s)")
    if args.compare:
        from stpr.compare import compare, default_compare_output

        page = compare(src, dst, default_compare_output(dst), overwrite=args.overwrite)
        if not args.quiet:
            print(f"wrote {page}: open it in a browser to compare the input and the output")
    if drops_audio:  # said once the run succeeded, so a failure still gets its one line
        import warnings

        warnings.warn(f"{dst} has no extension, so the frames went into the folder {dst}/ as PNGs and the audio "
                      f"was not kept (name it {dst.name}.mp4 for a video)", stacklevel=1)
    return 0


def _has_audio(src: Path) -> bool:
    """Whether a video file has an audio stream (False for folders, images and unreadable files)."""
    from stpr.io import stream_counts

    counts = stream_counts(src)
    return counts is not None and counts[1] > 0


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
    p.add_argument("--lol-split", choices=["block", "siblings"], default="block",
                   help="with --lol: block (default), the 30 highest-numbered pairs, scenes a model trained "
                        "with lol_val never saw; siblings, the 30 pairs lol_siblings holds out, shots of scenes "
                        "whose other shots train (as LOL-v1's test pairs relate to its training pairs)")
    p.add_argument("--synthetic", metavar="VIDEO", help="normal-light video, darkened with the fixed evaluation "
                                                        "camera and seed; the original is the ground truth")
    p.add_argument("--exposure-jumps", action="store_true",
                   help=f"with --synthetic: alternate the camera's exposure ({JUMP_LABEL}) frame to frame "
                        "(tests fusion from better-exposed neighbours)")
    p.add_argument("--clips", metavar="ROOT", help="folder of clip sub-folders of frames (unpaired)")
    p.add_argument("--methods", help="comma-separated, from stpr,stpr-perframe,gamma-clahe,"
                                     "gamma-clahe-temporal,lime (default: all)")
    _add_model_options(p, "flow estimator for the STPR methods (default: the model's)")
    p.add_argument("--out", default="eval_report", help="report folder (default eval_report/)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="use at most N frames per sequence (default: all; 30 for --synthetic)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate at most N sequences (LOL pairs or clips)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--brightness", type=float, default=None, metavar="Y",
                   help="hold the STPR methods' output at this mean brightness (luma 0-255), as stpr enhance "
                        "--brightness does (default: the model's guess); e.g. to score flicker at a chosen level")
    _add_output_filters(p)
    p.add_argument("--quiet", action="store_true", help="no progress or summary output")


def _run_eval(args) -> int:
    from stpr.report import run_eval

    _cap_threads(args)
    run_eval(args.input, gt=args.gt, lol=args.lol, synthetic=args.synthetic, clips=args.clips,
             methods=args.methods, model=args.model, flow=args.flow, look=args.look, lol_split=args.lol_split,
             out=args.out, max_frames=args.max_frames, limit=args.limit, threads=args.threads, exposure_jumps=args.exposure_jumps,
             temporal_filter=args.temporal_filter, tone_match=args.tone_match, brightness=args.brightness,
             log=(lambda s: None) if args.quiet else print)
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
    _add_model_options(p, "flow estimator for the STPR methods (default: the model's)", look=False)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--engines", default=None, metavar="E[,E]",
                   help="engines for the STPR methods: torch, onnx (default: both when onnxruntime is installed)")
    p.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported (default 3)")
    p.add_argument("--marginal", action="store_true",
                   help="also time each case on a clip a third as long and report the marginal rate, "
                        "(N_long - N_short) / (T_long - T_short), which start-up does not weigh on")
    p.add_argument("--no-io-threads", action="store_true",
                   help="decode and encode in the main thread (to measure what the reader/writer threads add)")
    p.add_argument("--durations", default=None, metavar="S[,S...]",
                   help="also enhance the same content at these lengths in seconds (25 frames/s), e.g. 10,60, "
                        "to show peak memory does not grow with length")
    p.add_argument("--duration-size", default="640x360", metavar="WxH", help="frame size for --durations")
    p.add_argument("--precisions", default="auto", metavar="P[,P...]",
                   help="precisions of the torch-engine cases, from auto, fp32, bf16, fp16 (GPU), e.g. fp32,bf16 "
                        "(default auto)")
    _add_output_filters(p)
    _add_hardware_options(p, precision=False)
    p.add_argument("--side-by-side", type=int, default=None, metavar="N",
                   help="instead: time stpr alone and N jobs at once, with stpr's OpenMP wait policy and with "
                        "libgomp's spinning default (sizes default 640x360; use --frames 60 or more)")
    p.add_argument("--preset", default="medium",
                   help="x264 speed preset of every case's encoder, as in stpr enhance (default medium; "
                        "veryfast encodes 1080p ~2.5x faster here)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="only print the table")


def _run_bench(args) -> int:
    from stpr.bench import format_durations, format_table, parse_sizes, run_bench

    _cap_threads(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
    durations = None
    if args.durations:
        try:
            durations = [float(v) for v in args.durations.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--durations needs seconds like 10,60, got {args.durations!r}") from None
        if not durations or min(durations) <= 0:
            raise UsageError("--durations must be positive numbers of seconds")
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    if args.json:  # a JSON path that cannot be written fails now, not after the measurements
        from stpr.io.writing import check_output_path

        check_output_path(Path(args.json), [])
    if args.side_by_side is not None:
        from stpr.bench import format_shared, run_shared

        rows = run_shared(args.side_by_side, parse_sizes(args.sizes or "640x360"), frames=args.frames,
                          repeat=args.repeat, model=args.model, threads=args.threads, log=log)
        print(format_shared(rows))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
        return 1 if any(r.get("error") for r in rows) else 0
    data = run_bench(parse_sizes(args.sizes), frames=args.frames, methods=methods, model=args.model,
                     flow=args.flow, threads=args.threads, json_path=args.json, log=log, engines=engines,
                     repeat=args.repeat, io_threads=not args.no_io_threads, durations=durations,
                     duration_size=parse_sizes(args.duration_size)[0],
                     precisions=[v.strip() for v in args.precisions.split(",") if v.strip()], device=args.device,
                     batch=args.batch, preset=args.preset, workers=args.workers, marginal=args.marginal,
                     temporal_filter=args.temporal_filter, tone_match=args.tone_match)
    for note in data["notes"]:
        print(f"note: {note}")
    print(format_table(data["results"], data["machine"]["matmul_peaks_gflops"], preset=args.preset))
    if data["durations"]:
        print()
        print(format_durations(data["durations"]))
    if args.json and not args.quiet:
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="export the network to ONNX for onnxruntime",
                       description="Export STPR to ONNX: writes DIR/encode.onnx (per frame), DIR/decode.onnx "
                                   "(per window) and DIR/stpr.json. Frame size is dynamic. Use the folder with "
                                   "stpr enhance --engine onnx --model DIR.")
    p.add_argument("--onnx", metavar="DIR", required=True, help="output folder")
    _add_model_options(p, "flow estimator baked into the export: learned (default) or zero (DIS cannot be exported)")
    p.add_argument("--frames", type=int, default=None, metavar="T", help="temporal window (odd; default: the model's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export in DIR")


def _run_export(args) -> int:
    from stpr.checkpoint import load_model, resolve_weights
    from stpr.onnx_engine import MANIFEST, export_onnx

    if args.frames is not None and (args.frames < 1 or args.frames % 2 == 0):
        raise UsageError(f"--frames must be an odd number >= 1, got {args.frames}")
    out = Path(args.onnx)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--onnx {out}: exists and is not a folder")
    if (out / MANIFEST).exists() and not args.overwrite:
        raise UsageError(f"{out} already holds an ONNX export (use --overwrite)")
    model = load_model(args.model or None, look=args.look, flow_mode=args.flow, frames=args.frames)
    export_onnx(model, out, weights=resolve_weights(args.model))
    print(f"wrote {out / 'encode.onnx'}, {out / 'decode.onnx'} and {out / MANIFEST}")
    return 0


class _RayOption(argparse.Action):
    """``--ray [ADDRESS]``; remembers whether it came before INPUT, so that ``--ray IN OUT`` (where
    argparse takes IN as the address) can be told from ``IN --ray OUT`` and from a real address."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.ray_before_input = getattr(namespace, "input", None) is None


def _looks_like_ray_address(value: str) -> bool:
    import re

    return value in ("auto", "local") or "://" in value or re.fullmatch(r"[\w.\-\[\]]+:\d+", value) is not None


def _add_batch(sub):
    p = sub.add_parser("batch", help="enhance every video of a folder or list, locally or on a Ray cluster",
                       usage="stpr batch INPUT OUT_DIR [--ray [ADDRESS]] [options]",
                       description="Enhance each video of INPUT (a folder, not recursive, or a text file listing "
                                   "video paths one per line) into OUT_DIR/<name>_stpr.mp4. Outputs that already "
                                   "exist are skipped, so a re-run resumes an interrupted batch; a file that fails "
                                   "is reported and the batch goes on. Prints a summary table and writes "
                                   "OUT_DIR/batch_summary.csv; exit status 1 if any file failed. With --ray the "
                                   "videos are spread over Ray actors (each video whole, on one actor).")
    p.add_argument("input", nargs="?", metavar="INPUT", help="folder of videos, or a text file of video paths")
    p.add_argument("out_dir", nargs="?", metavar="OUT_DIR", help="output folder (created if missing)")
    _add_model_options(p)
    p.add_argument("--crf", type=int, default=18, help="constant rate factor for x264 (default 18)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per video (local: torch's default; Ray: 1 per worker, and CPUs reserved)")
    p.add_argument("--overwrite", action="store_true", help="re-enhance videos whose output already exists")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", action=_RayOption,
                   help="run on Ray: a new local Ray instance, or the cluster at ADDRESS (e.g. auto, "
                        "HOST:6379, ray://HOST:10001). Needs stpr[ray]")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="Ray actors, each with its own model (default: as many as the cluster's CPUs / GPUs allow)")
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="F",
                   help="GPUs per Ray actor, fractions allowed (default: the cluster's GPUs shared by the "
                        "workers; 0 when it has none)")
    _add_hardware_options(p, batch=False)
    _add_output_filters(p)
    p.add_argument("--quiet", action="store_true", help="only print the summary table")


def _batch_paths(args) -> tuple[str, str, str | None]:
    """(INPUT, OUT_DIR, Ray address or "" for local Ray or None for no Ray) from parsed arguments."""
    inp, out, ray = args.input, args.out_dir, args.ray
    if out is None and ray and not _looks_like_ray_address(ray):
        # `--ray IN OUT` or `IN --ray OUT`: argparse took a path for the Ray address
        inp, out = (ray, inp) if getattr(args, "ray_before_input", False) else (inp, ray)
        ray = ""
    if inp is None or out is None:
        raise UsageError("stpr batch needs INPUT and OUT_DIR (give a Ray address as --ray=ADDRESS or after them)")
    return inp, out, ray


def _run_batch(args) -> int:
    from stpr.batch import format_table, run_batch

    inp, out, ray = _batch_paths(args)
    _cap_threads(args, local=ray is None)  # Ray workers may run on other machines, with their own cores
    results = run_batch(inp, out, model=args.model, crf=args.crf, threads=args.threads, overwrite=args.overwrite,
                        ray=ray is not None, address=ray or None, workers=args.workers,
                        gpus_per_worker=args.gpus_per_worker, quiet=args.quiet, device=args.device,
                        precision=args.precision, flow=args.flow, look=args.look,
                        temporal_filter=args.temporal_filter, tone_match=args.tone_match)
    print(format_table(results))
    return 1 if any(r.failed for r in results) else 0


def _add_compare(sub):
    p = sub.add_parser("compare", help="write a before/after viewer page for the browser",
                       description="Write a page that shows INPUT and OUTPUT (videos, frame folders or images) "
                                   "under a wipe, side by side or toggled, playing in sync, with frame stepping, "
                                   "shared zoom/pan and the mean luma of every frame of both. Both are re-encoded "
                                   "to H.264 MP4 (frames wider than --max-width become a smaller proxy). Works "
                                   "offline: nothing is loaded from the network.")
    p.add_argument("input", help="the original (video, folder of frames, or image)")
    p.add_argument("output", help="the enhanced version (same kinds)")
    p.add_argument("-o", "--out", metavar="PAGE",
                   help="NAME.html: one self-contained page (videos embedded); a name without extension: a "
                        "folder with index.html, input.mp4 and output.mp4. Default: OUTPUT_compare.html")
    p.add_argument("--max-width", type=int, default=1280, metavar="PX",
                   help="wider frames are shown as a proxy this wide (default 1280)")
    p.add_argument("--crf", type=int, default=18, help="x264 quality of the page's videos (default 18)")
    p.add_argument("--title", help="page title (default: INPUT vs OUTPUT)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing page")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _run_compare(args) -> int:
    from stpr.compare import compare

    page = compare(args.input, args.output, args.out, overwrite=args.overwrite, max_width=args.max_width,
                   crf=args.crf, title=args.title, log=(lambda s: None) if args.quiet else print)
    if not args.quiet:
        print(f"wrote {page}: open it in a browser")
    return 0


def _version() -> str:
    from stpr import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stpr", description="Low-light video enhancement with STPR.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--version", action="version", version=f"stpr {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_enhance(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_bench(sub)
    _add_batch(sub)
    _add_export(sub)
    _add_compare(sub)
    return parser


COMMANDS = {"enhance": _run_enhance, "train": _run_train, "eval": _run_eval, "bench": _run_bench,
            "batch": _run_batch, "export": _run_export, "compare": _run_compare}


class _Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler: unwinds like Ctrl-C (writers drop their partial output)."""

    exit_code = 143


def _install_sigterm():
    """Turn SIGTERM into ``_Terminated``; returns a function restoring the previous handler."""
    import signal

    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up finish
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line each, like the errors."""
    print(f"stpr: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    text = str(e).lower()  # torch: "DefaultCPUAllocator: can't allocate memory", "CUDA out of memory"
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _enhance_output(args) -> Path | None:
    try:
        return Path(args.output) if args.output else default_output(Path(args.input))
    except (OSError, ValueError, TypeError):
        return None


def _failure_message(e: BaseException, args) -> tuple[str, int]:
    """The one line (without "stpr: ") and the exit status for a command that raised ``e``."""
    enhancing = args.command == "enhance"
    if isinstance(e, StprError):
        return f"error: {_one_line(e)}", e.exit_code
    if isinstance(e, KeyboardInterrupt):
        code = getattr(e, "exit_code", 130)
        msg = "interrupted by SIGTERM" if code == 143 else "interrupted"
        dst = _enhance_output(args) if enhancing else None
        if dst is not None:
            from stpr.resume import work_dir_for

            work = work_dir_for(dst)
            if getattr(args, "resume", False) and work.is_dir():
                msg += f"; finished segments are kept in {work}: run the same command again to continue"
            else:
                msg += f"; nothing was written to {dst}"
        return msg, code
    if _is_out_of_memory(e):
        if enhancing:
            return (f"error: out of memory while enhancing {args.input}; use tiles, e.g. --tile 256, or a lower "
                    f"--memory-mb (now {args.memory_mb or 'automatic'}) or --batch", 1)
        return "error: out of memory", 1
    import av

    if isinstance(e, (OSError, av.FFmpegError)):
        from stpr.io import describe_os_error

        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        code = 5 if getattr(e, "errno", None) in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)) else 1
        return f"error: {where}{describe_os_error(e)}", code
    return f"internal error: {type(e).__name__}: {_one_line(e)} (run with --debug for details)", 1


def main(argv: list[str] | None = None) -> int:
    """Run ``stpr``; returns the exit status. Failures print one line on stderr ("stpr: error:
    ..."; a traceback only with --debug) and map to an exit status: 2 usage, 3 input, 4 model,
    5 output, 1 anything else, 130 Ctrl-C, 143 SIGTERM."""
    import traceback
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("enhance", "batch", "eval", "train"):
        from stpr.enhance import tune_malloc

        tune_malloc()
    debug = bool(getattr(args, "debug", False))
    restore_sigterm = _install_sigterm() if args.command == "enhance" else (lambda: None)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return COMMANDS[args.command](args)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - every failure becomes one line and an exit status
        if debug:
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        msg, code = _failure_message(e, args)
        print(f"stpr: {msg}", file=sys.stderr)
        return code
    finally:
        restore_sigterm()


if __name__ == "__main__":
    sys.exit(main())
