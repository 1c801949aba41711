"""Apply real-footage §47's rule to the logs of ``temporal_filter_probe.py`` (one or more runs of
the same grid, e.g. the short cases from one and the long videos from others): for each setting the
score (mean flicker ratio of the long videos), the constraints against 0.8 / 0.08 / 0 (``tree``,
``city``, ``city`` H.264 affine-fitted PSNR at most 0.05 dB lower; detail kept >= 0.95 on each long
video and on the short clips' mean; the short clips' mean flicker no higher), best score first.

    python experiments/temporal_filter_rule.py reports/s37/tf_grid_short_cases.log reports/s37/tf_grid_long*.log
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

LINE = re.compile(r"^(tree|city h264|city|clip \S+|long \S+)\s+s=([\d.]+) tol=([\d.]+) detail=([\d.]+): (.*)$")
BASE = (0.8, 0.08, 0.0)
SYNTHETIC = ("tree", "city", "city h264")


def read(paths: list[str]) -> dict[tuple, dict[str, dict[str, float]]]:
    rows: dict[tuple, dict] = defaultdict(dict)
    for path in paths:
        for line in open(path, encoding="utf-8"):
            m = LINE.match(line.strip())
            if m:
                name, s, t, d, rest = m.groups()
                rows[(float(s), float(t), float(d))][name] = {k: float(v) for k, v in re.findall(r"(\w+) (-?[\d.]+)", rest)}
    return rows


def main() -> int:
    rows = read(sys.argv[1:])
    base = rows[BASE]
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
