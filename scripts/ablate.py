"""Ablation study: what each STPR part adds.

Every variant starts from the same weights (the shipped model by default), has one part removed
or replaced, and is fine-tuned for the same number of steps on the same data with the same seed
(``configs/ablation.json``), so the network can adapt to the missing part. The "full" row gets
the same fine-tuning with nothing removed. Each run's *last* checkpoint is then evaluated (no
checkpoint picking on the validation split) with ``stpr eval`` on:

- the held-out LOL split (PSNR / SSIM),
- held-out synthetic-dark tree.avi and carphone_pristine.mp4 (PSNR, carphone also with the GT-mean
  protocol, and the flicker ratio), and carphone again with the exposure alternating 0.5x / 2x
  frame to frame (``stpr eval --exposure-jumps``: what fusion from better-exposed neighbours is for),
- synthetic-dark city.mpg (large motion at night, a validation video; PSNR), where present,
- the real dark clips (flicker ratio, mean brightness).

The parts study scores the network alone (``--temporal-filter 0``) and its LOL column in the
model's ``lol`` look.

Runs and reports land in ``runs/ablation/<variant>`` and ``reports/ablation/<variant>``; a finished
variant is skipped, so an interrupted study continues where it stopped. The table is printed and
written to ``reports/ablation/ablation.md``.

    .venv/bin/python scripts/ablate.py                 # all variants
    .venv/bin/python scripts/ablate.py --only full,t1  # some
    # two halves side by side on a 2-core machine, then the table of all of them:
    .venv/bin/python scripts/ablate.py --threads 1 --only full,zero_flow,dis_flow,no_brightness &
    .venv/bin/python scripts/ablate.py --threads 1 --only no_pixel_fusion,hf_split,r2,t1; wait
    .venv/bin/python scripts/ablate.py
    .venv/bin/python scripts/ablate.py --study fast    # the fast model's study (runs/ablation_fast)
    .venv/bin/python scripts/ablate.py --study v7      # v7's (needs runs/v7.safetensors: experiments/README.md)

(The "additions" study of v3's linear light and refine head on top of v2 used options that were
retired; run it from commit 50d3f5c: docs/research/ablations.md.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stpr.train import last_logged_step

# name -> (model overrides relative to the shipped model, what the row changes). The shipped model
# propagates whole features (no HF split), runs PRRD once per scale (R = 1) and blends pixels.
VARIANTS: dict[str, tuple[dict, str]] = {
    "full": ({}, "shipped STPR (learned flow, T = 3, R = 1, pixel fusion)"),
    "zero_flow": ({"flow_mode": "zero"}, "no flow: neighbours fused unaligned"),
    "dis_flow": ({"flow_mode": "dis"}, "OpenCV DIS flow instead of the learned flow"),
    "no_brightness": ({"brightness_weight": False}, "no brightness term in the fusion weights"),
    "no_local_gain": ({"local_gain": False}, "no local gain map: one gain per colour channel"),
    "no_pixel_fusion": ({"pixel_fusion": False}, "no pixel fusion: neighbours reach the output only as features"),
    "hf_split": ({"hf_split": True}, "only the high-frequency part of neighbour features propagated"),
    "r2": ({"prrd_recursions": 2}, "PRRD blocks applied R = 2 times (recursion)"),
    "t1": ({"frames": 1}, "T = 1: single frame, no propagation"),
}

# The same study for the ``fast`` model, from its weights with its recipe: it has no pixel fusion, so
# that row adds it (the blend starts from the propagation's weights) instead of removing it.
FAST_VARIANTS: dict[str, tuple[dict, str]] = {
    "full": ({}, "fast STPR (learned flow from 1/8, T = 3, R = 1, no pixel fusion)"),
    **{k: v for k, v in VARIANTS.items() if k in ("zero_flow", "dis_flow", "no_brightness")},
    "pixel_fusion": ({"pixel_fusion": True}, "pixel fusion added: aligned neighbour frames blended into the base"),
    **{k: v for k, v in VARIANTS.items() if k in ("hf_split", "r2", "t1")},
}


@dataclass
class Study:
    variants: dict[str, tuple[dict, str]]
    runs: str
    reports: str
    config: str
    lol: str  # an eval --lol folder the model never trained on (stpr eval scores its held-out split)
    look: str = ""  # the look the LOL column is scored in, for a model trained with several
    # Extra ``stpr eval`` options for every evaluation. The parts study scores the network alone:
    # the output's temporal filter (on by default in the product) would hide what a part adds.
    eval_args: tuple[str, ...] = ()


STUDIES = {
    "parts": Study(VARIANTS, "runs/ablation", "reports/ablation", "configs/ablation.json",
                   "data_cache/lol-v1/train", look="lol",
                   eval_args=("--temporal-filter", "0")),
    # v7's study (made before the temporal filter existed; v7 has one look)
    "v7": Study(VARIANTS, "runs/ablation_v7", "reports/ablation_v7", "experiments/configs/ablation_v7.json",
                "../shared/data/lol-train", eval_args=("--temporal-filter", "0")),
    "fast": Study(FAST_VARIANTS, "runs/ablation_fast", "reports/ablation_fast",
                  "experiments/configs/ablation_fast.json", "data_cache/lol-v1/train"),
}


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def summary(path: Path) -> dict:
    return json.loads(path.read_text())["summary"]["stpr"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="training config (default per study)")
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--lol", default=None, help="LOL folder for stpr eval (default per study)")
    ap.add_argument("--synthetic", default="data_cache/videos/tree.avi")
    ap.add_argument("--synthetic2", default="data_cache/videos/carphone_pristine.mp4",
                    help="second held-out video (normal exposure, so PSNR is not all exposure)")
    ap.add_argument("--synthetic3", default="data_cache/videos/city.mpg",
                    help="third video (large motion, night scene; validation); skipped when absent")
    ap.add_argument("--clips", default="../shared/data/real-lowlight-clips")
    ap.add_argument("--study", choices=list(STUDIES), default="parts",
                    help="parts: remove one part of the quality model; fast: the same for the fast model; "
                         "v7: the parts study of the previous quality model")
    ap.add_argument("--runs", default=None, help="run folder (default per study)")
    ap.add_argument("--reports", default=None, help="report folder (default per study)")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads for the evaluations (training uses the config's); 1 when two studies share 2 cores")
    args = ap.parse_args()

    study = STUDIES[args.study]
    variants = study.variants
    args.runs = args.runs or study.runs
    args.reports = args.reports or study.reports
    args.config = args.config or study.config
    args.lol = args.lol or study.lol
    names = [n for n in args.only.split(",") if n] or list(variants)
    for n in names:
        if n not in variants:
            ap.error(f"unknown variant {n!r}; choose from {', '.join(variants)}")
    stpr = [sys.executable, "-m", "stpr.cli"]
    steps = json.loads(Path(args.config).read_text())["steps"]
    for name in names:
        overrides, _ = variants[name]
        run_dir = Path(args.runs) / name
        rep = Path(args.reports) / name
        if last_logged_step(run_dir) < steps:
            cmd = stpr + ["train", "--config", args.config, "--quiet", "--set", f"out_dir={run_dir}"]
            cmd += [f"--set=model.{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
            if (run_dir / "last_state.pt").is_file():
                cmd.append("--resume")
            run(cmd)
        weights = str(run_dir / "last.safetensors")
        for kind, flag, value, extra in (
                ("lol", "--lol", args.lol, ["--look", study.look] if study.look else []), ("synthetic", "--synthetic", args.synthetic, []),
                ("synthetic2", "--synthetic", args.synthetic2, []),
                *([("city", "--synthetic", args.synthetic3, [])] if Path(args.synthetic3).is_file() else []),
                ("jumps", "--synthetic", args.synthetic2, ["--exposure-jumps"]), ("real", "--clips", args.clips, [])):
            if not (rep / kind / "results.json").is_file():
                run(stpr + ["eval", flag, value, *extra, *study.eval_args, "--methods", "stpr", "--model", weights,
                            "--out", str(rep / kind), "--quiet", "--threads", str(args.threads)])
    table = make_table(names, Path(args.reports), variants)
    print(table)
    (Path(args.reports) / "ablation.md").write_text(table + "\n")
    return 0


def make_table(names: list[str], reports: Path, variants: dict) -> str:
    lines = ["| variant | what changes | LOL PSNR | LOL SSIM | LOL PSNR (GT mean) | tree PSNR | tree PSNR (GT mean) | tree flicker "
             "| carphone PSNR | carphone PSNR (GT mean) | carphone flicker | carphone 0.5x/2x jumps PSNR "
             "| city PSNR | city PSNR (GT mean) | real flicker | real brightness |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        try:
            lol = summary(reports / name / "lol" / "results.json")
            syn = summary(reports / name / "synthetic" / "results.json")
            syn2 = summary(reports / name / "synthetic2" / "results.json")
            jumps = summary(reports / name / "jumps" / "results.json")
            real = summary(reports / name / "real" / "results.json")
        except FileNotFoundError:
            continue
        city_path = reports / name / "city" / "results.json"
        city_sum = summary(city_path) if city_path.is_file() else None
        city = f"{city_sum['psnr']:.2f} | {city_sum['psnr_gtmean']:.2f}" if city_sum else "– | –"
        lines.append(f"| {name} | {variants[name][1]} | {lol['psnr']:.2f} | {lol['ssim']:.3f} | {lol['psnr_gtmean']:.2f} | "
                     f"{syn['psnr']:.2f} | {syn['psnr_gtmean']:.2f} | {syn['flicker_ratio']:.3f} | {syn2['psnr']:.2f} | "
                     f"{syn2['psnr_gtmean']:.2f} | {syn2['flicker_ratio']:.3f} | {jumps['psnr']:.2f} | {city} | "
                     f"{real['flicker_ratio']:.3f} | "
                     f"{real['brightness']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
