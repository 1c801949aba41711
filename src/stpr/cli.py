"""Command-line interface: ``stpr enhance | train | eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stpr.errors import StprError, UsageError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stpr", description="Low-light video enhancement with STPR.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    return parser


COMMANDS = {"train": _run_train}


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
