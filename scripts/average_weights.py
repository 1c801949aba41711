"""Average two STPR weights files of the same architecture: OUT = (1 - alpha) * A + alpha * B.

    python scripts/average_weights.py A B --alpha 0.5 --out OUT [--set key=value ...]

How the shipped model was made from v2 and the GPU-trained v4 (see the README's model card).
``--set`` adds metadata (values parsed as JSON where they parse, e.g. the validation figures).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stpr.checkpoint import interpolate_weights, save_model
from stpr.errors import ModelError


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--alpha", type=float, default=0.5, help="B's share (default 0.5)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    extra = {"averaged": {"a": str(args.a), "b": str(args.b), "alpha": args.alpha}}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    if args.out.exists() and args.out.resolve() in (args.a.resolve(), args.b.resolve()):
        print("error: --out must not be one of the inputs", file=sys.stderr)
        return 2
    try:
        model = interpolate_weights(args.a, args.b, args.alpha)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out, extra=extra)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
