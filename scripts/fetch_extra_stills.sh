#!/usr/bin/env bash
# Fetch 18 more normal-light colour photographs for the `stills` training source into
# data_cache/stills_extra/ (not committed): scikit-image's and matplotlib's sample photographs
# (their PyPI wheels; public domain / CC0) and the "nature" set of Debian's mate-backgrounds
# (GPL-2+). Those wider than 1024 px are scaled down to 1024 and every file is written as PNG, so
# scaling adds no second round of JPEG artefacts. Needs a Python with OpenCV (the project's .venv).
# Used by an experiment that did not pay (README, "Doubling the photographs did not add more"):
#   stpr train --config configs/v7_stills.json --set 'stills=["data_cache/stills","data_cache/stills_extra"]'
#   PYTHON=.venv/bin/python bash scripts/fetch_extra_stills.sh [data_cache/stills_extra]
set -euo pipefail
extra="${1:-data_cache/stills_extra}"
mkdir -p "$extra"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py="${PYTHON:-python3}"
"$py" -m pip download --no-deps --quiet -d "$tmp" scikit-image matplotlib
"$py" -m zipfile -e "$tmp"/scikit_image-*.whl "$tmp/ski"
"$py" -m zipfile -e "$tmp"/matplotlib-*.whl "$tmp/mpl"
(cd "$tmp" && apt-get download mate-backgrounds >/dev/null 2>&1 || { apt-get update -qq && apt-get download mate-backgrounds; })
dpkg -x "$tmp"/mate-backgrounds_*.deb "$tmp/mate"
# Colour photographs only: no drawings, microscopy, medical or astronomical images.
files=("$tmp"/ski/skimage/data/{astronaut.png,chelsea.png,coffee.png,motorcycle_left.png,rocket.jpg}
       "$tmp"/mpl/matplotlib/mpl-data/sample_data/grace_hopper.jpg)
for f in Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood YellowFlower; do
  files+=("$tmp/mate/usr/share/backgrounds/mate/nature/$f.jpg")
done
"$py" - "$extra" "${files[@]}" <<'PY'
import sys
from pathlib import Path

import cv2

out = Path(sys.argv[1])
for f in map(Path, sys.argv[2:]):
    img = cv2.imread(str(f), cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"fetch_extra_stills.sh: cannot decode {f}")
    s = 1024 / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / (f.stem + ".png")), img)
PY
ls -l "$extra"
