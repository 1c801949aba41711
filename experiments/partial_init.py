"""A start file for a model of another width: fresh weights, with some parts copied from a trained model.

    python experiments/partial_init.py SRC --config CONFIG --out OUT [--prefix flow_net.] [--seed N]

Builds the network that the training config CONFIG describes (its ``model`` section), initialised as
``stpr train`` would from that seed, copies from SRC every tensor whose name starts with one of the
prefixes (default: the flow net, whose shapes do not depend on ``channels``) and whose shape matches,
and writes OUT, to be used as the config's ``init``. A prefix whose tensors do not all match is an
error: a part is copied whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from stpr.checkpoint import load_model, save_model
from stpr.models.stpr_arch import STPR, STPRConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="trained weights to copy parts from")
    ap.add_argument("--config", type=Path, required=True, help="training config of the new model")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prefix", action="append", default=None, help="tensor name prefix to copy (repeatable)")
    ap.add_argument("--seed", type=int, default=None, help="initialisation seed (default: the config's)")
    args = ap.parse_args()
    cfg = json.loads(args.config.read_text())
    torch.manual_seed(cfg.get("seed", 0) if args.seed is None else args.seed)
    model = STPR(STPRConfig.from_dict(cfg.get("model", {})))
    src = load_model(args.src).state_dict()
    state = model.state_dict()
    prefixes = args.prefix or ["flow_net."]
    for prefix in prefixes:
        names = [n for n in state if n.startswith(prefix)]
        if not names:
            print(f"error: no tensor of the new model starts with {prefix!r}", file=sys.stderr)
            return 2
        bad = [n for n in names if n not in src or src[n].shape != state[n].shape]
        if bad:
            print(f"error: {len(bad)} tensors under {prefix!r} differ from SRC (first: {bad[0]})", file=sys.stderr)
            return 2
        for n in names:
            state[n] = src[n].clone()
        print(f"{prefix}: {len(names)} tensors copied from {args.src}")
    model.load_state_dict(state)
    save_model(model, args.out, extra={"partial_init": {"src": str(args.src), "prefixes": prefixes}})
    print(f"wrote {args.out}: {sum(p.numel() for p in model.parameters()):,} parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
