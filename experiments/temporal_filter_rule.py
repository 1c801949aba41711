"""Apply real-footage §47's rule to the logs of ``temporal_filter_probe.py`` (one or more runs of
the same grid, e.g. the short cases from one and the long videos from others): for each setting the
score (mean flicker ratio of the long videos), the constraints against the base setting (``tree``,
``city``, ``city`` H.264 affine-fitted PSNR at most 0.05 dB lower; detail kept >= 0.95 on each long
video and on the short clips' mean; the short clips' mean flicker no higher), best score first.
§47's base was 0.8 / 0.08 / 0 with the flow fast/320; §49's is 0.8 / 0.08 / 0.3 with that flow.

    python experiments/temporal_filter_rule.py reports/s37/tf_grid_short_cases.log reports/s37/tf_grid_long*.log
    python experiments/temporal_filter_rule.py --base 0.8,0.08,0.3,fast/320 reports/s38/tf_flow*.log
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

LINE = re.compile(r"^(tree|city h264|city|clip \S+|long \S+)\s+s=([\d.]+) tol=([\d.]+) detail=([\d.]+)"
                  r"(?: flow=(\w+/\d+))?: (.*)$")
DEFAULT_FLOW = "fast/320"  # the filter's flow when a log names none
SYNTHETIC = ("tree", "city", "city h264")


def read(paths: list[str]) -> dict[tuple, dict[str, dict[str, float]]]:
    rows: dict[tuple, dict] = defaultdict(dict)
    for path in paths:
        for line in open(path, encoding="utf-8"):
            m = LINE.match(line.strip())
            if m:
                name, s, t, d, flow, rest = m.groups()
                key = (float(s), float(t), float(d), flow or DEFAULT_FLOW)
                rows[key][name] = {k: float(v) for k, v in re.findall(r"(\w+) (-?[\d.]+)", rest)}
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="0.8,0.08,0,fast/320", help="STRENGTH,TOLERANCE,DETAIL,PRESET/SIDE")
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()
    rows = read(args.logs)
    s, t, d, flow = args.base.split(",")
    base = rows[(float(s), float(t), float(d), flow)]
    mean = lambda per, names, key: sum(per[n][key] for n in names) / len(names)  # noqa: E731
    clips = sorted(n for n in base if n.startswith("clip"))
    longs = sorted(n for n in base if n.startswith("long"))
    out = []
    for key, per in rows.items():
        if not all(n in per for n in clips + longs + list(SYNTHETIC)):
            continue  # a setting some run did not score
        fails = [f"{c} {per[c]['psnr_affine'] - base[c]['psnr_affine']:+.2f} dB" for c in SYNTHETIC
                 if per[c]["psnr_affine"] < base[c]["psnr_affine"] - 0.05]
        fails += [f"{n[5:]} detail {per[n]['hf']:.3f}" for n in longs if per[n]["hf"] < 0.95]
        if mean(per, clips, "hf") < 0.95:
            fails.append(f"clips detail {mean(per, clips, 'hf'):.3f}")
        if mean(per, clips, "flicker") > mean(base, clips, "flicker") + 1e-9:
            fails.append(f"clips flicker {mean(per, clips, 'flicker'):.3f}")
        out.append((mean(per, longs, "flicker"), key, per, fails))
    for score, key, per, fails in sorted(out):
        long_s = " ".join(f"{n[5:]} {per[n]['flicker']:.3f}/{per[n]['hf']:.3f}" for n in longs)
        syn = " ".join(f"{c} {per[c]['psnr_affine']:.2f}" for c in SYNTHETIC)
        print(f"{key}: score {score:.3f} | {long_s} | {syn} | clips flicker {mean(per, clips, 'flicker'):.3f} "
              f"detail {mean(per, clips, 'hf'):.3f} | {'meets the constraints' if not fails else 'fails: ' + ', '.join(fails)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
