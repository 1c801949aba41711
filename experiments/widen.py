"""A wider STPR that computes exactly what a trained narrower one does: a start file that keeps
what the narrow model learnt (docs/research/real-footage.md §31).

    python experiments/widen.py SRC --config CONFIG --out OUT

Builds the network that the training config CONFIG describes (its ``model`` section, which may
differ from SRC's only in ``channels`` and ``prrd_growth``), initialised as ``stpr train`` would
from the config's seed, then copies SRC into it channel by channel:

* every old weight goes to the same input and output channel of its (wider) tensor;
* the new channels keep their fresh initialisation on their *input* side (so they compute
  something and receive gradients), and every weight that *reads* a new channel into an old one
  is set to zero, so nothing the old channels compute changes ("zero outgoing" widening).

The result is then checked: the wide and the narrow model enhance the same random clips (float32)
and must agree to 1e-4; OUT is written only if they do.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from stpr.checkpoint import load_model, save_model
from stpr.models.stpr_arch import STPR, STPRConfig

C, G = "C", "G"  # a block of feature channels (cfg.channels), of dense growth (cfg.prrd_growth)


def layout(name: str, shape: tuple[int, ...], layers: int) -> list[list] | None:
    """The channel layout of each of a tensor's first two dimensions (output, input): a list of
    blocks, each C, G or a fixed count. None for a tensor whose shape does not depend on the width.
    """
    m = re.fullmatch(r"(.*)\.(weight|bias)", name)
    base = m.group(1) if m else name
    d0, d1 = (tuple(shape) + (0, 0))[:2]  # sizes of the fixed blocks (a scalar has neither)
    rules: list[tuple[str, list, list]] = [
        (r"encoder\.body\.0", [C], [d1]),
        (r"encoder\.body\.2", [C], [C]),
        (r"propagation\.confidence\.0", [16], [C, C, 2]),  # [centre feats, warped feats, error, validity]
        (r"propagation\.fuse\.0", [C], [C, C]),
        (r"pyramid\.blocks\.\d+\.local_fusion", [C], [C] + [G] * layers),
        (r"pyramid\.downs\.\d+\.0", [C], [C]),
        (r"pyramid\.fusions\.\d+", [C], [C, C]),
        (r"reconstruction\.blend\.0", [16], [C, 1, 1]),  # [feats, log weight, error]
        (r"reconstruction\.body\.0", [C], [C, C]),  # [propagated, pyramid]
        (r"reconstruction\.body\.2", [C], [C]),
        (r"reconstruction\.local_gain", [1], [C]),
        (r"reconstruction\.residual", [48], [C]),
        (r"reconstruction\.look_feats", [d0], [C, C]),  # added to [propagated, pyramid]
    ]
    dense = re.fullmatch(r"pyramid\.blocks\.\d+\.layers\.(\d+)\.0", base)
    if dense:
        return [[G], [C] + [G] * int(dense.group(1))]
    for pattern, out, inp in rules:
        if re.fullmatch(pattern, base):
            return [out, inp]
    return None


def index_map(blocks: list, old: dict, new: dict) -> tuple[torch.Tensor, int, int]:
    """Positions in the new dimension of each old channel, and the old and new sizes."""
    pos, o, n = [], 0, 0
    for b in blocks:
        so, sn = (old[b], new[b]) if isinstance(b, str) else (b, b)
        pos.extend(range(n, n + so))
        o, n = o + so, n + sn
    return torch.tensor(pos, dtype=torch.long), o, n


def widen_state(src: dict, dst: dict, old: dict, new: dict, layers: int) -> dict:
    out = {}
    for name, w_new in dst.items():
        w_old = src[name]
        lay = layout(name, tuple(w_old.shape), layers)
        if lay is None:
            if w_old.shape != w_new.shape:
                raise ValueError(f"{name}: no layout known for a width-dependent tensor {tuple(w_old.shape)}")
            out[name] = w_old.clone()
            continue
        w = w_new.clone()
        dims = lay[:w.dim()]  # a bias has the output dimension only
        maps = []
        for d, blocks in enumerate(dims):
            pos, so, sn = index_map(blocks, old, new)
            if (so, sn) != (w_old.shape[d], w_new.shape[d]):
                raise ValueError(f"{name}: dim {d} layout {blocks} gives {so}->{sn}, tensors have "
                                 f"{w_old.shape[d]}->{w_new.shape[d]}")
            maps.append(pos)
        if len(maps) == 2:
            # old outputs read nothing from new inputs; new outputs keep their fresh weights
            w[maps[0]] = 0
            w[maps[0][:, None], maps[1][None, :]] = w_old
        else:
            w[maps[0]] = w_old
        out[name] = w
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="trained narrower weights")
    ap.add_argument("--config", type=Path, required=True, help="training config of the wider model")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = json.loads(args.config.read_text())
    torch.manual_seed(cfg.get("seed", 0))
    narrow = load_model(args.src).float().eval()
    wide = STPR(STPRConfig.from_dict(cfg.get("model", {}))).float().eval()
    a, b = asdict(narrow.cfg), asdict(wide.cfg)
    differ = sorted(k for k in a if a[k] != b[k] and k not in ("channels", "prrd_growth"))
    if differ:
        print(f"error: the configs differ in more than the width: {differ}", file=sys.stderr)
        return 2
    old = {C: narrow.cfg.channels, G: narrow.cfg.prrd_growth}
    new = {C: wide.cfg.channels, G: wide.cfg.prrd_growth}
    if new[C] < old[C] or new[G] < old[G]:
        print("error: the new model is narrower", file=sys.stderr)
        return 2
    wide.load_state_dict(widen_state(narrow.state_dict(), wide.state_dict(), old, new, narrow.cfg.prrd_layers))
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        for h, w in ((64, 96), (72, 40)):
            clip = torch.rand(2, narrow.cfg.frames, 3, h, w, generator=gen) * 0.3
            worst = max(worst, float((wide(clip) - narrow(clip)).abs().max()))
    print(f"largest difference wide - narrow on random clips: {worst:.2e}")
    if worst > 1e-4:
        print("error: the widened model does not compute what the narrow one does", file=sys.stderr)
        return 1
    save_model(wide, args.out, extra={"widened_from": str(args.src)})
    print(f"wrote {args.out}: {sum(p.numel() for p in wide.parameters()):,} parameters "
          f"({sum(p.numel() for p in narrow.parameters()):,} before)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
