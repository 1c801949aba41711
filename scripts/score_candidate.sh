#!/usr/bin/env bash
# Every figure the quality targets ask for, for one weights file, in one go:
#   scripts/score_candidate.sh WEIGHTS REPORT_DIR
# held-out LOL (stpr eval --lol), real-clip flicker and brightness against the per-frame ablation
# (stpr eval --clips), synthetic-dark video T = 3 vs T = 1 (scripts/window_compare.py, on the validation
# videos tree and city only: carphone is held out, scored once per shipped model) and GFLOPs per
# 640x360 frame. Needs ../shared/data (LOL, real clips) and data_cache/videos (make videos).
# LOL=data_cache/lol-v1/train scores a model trained on LOL-v1's 485 pairs on the pairs it held out
# (752-789); the default, the 300 shared pairs' held-out split, suits models trained on those.
# SIBLINGS=1 also scores the pairs a training config's lol_siblings held out (stpr eval --lol-split
# siblings); LOL_LOOK=lol scores the LOL pairs in that look of a model trained with looks (the real
# clips and videos keep the model's default look). TEMPORAL_FILTER=S sets the real clips' temporal
# filter strength (stpr eval --temporal-filter; 0 scores the network alone, as the rules written
# before the filter existed did). LONG=DIR also scores the long real videos in DIR (the validation
# set: scripts/fetch_dark_videos.sh --val) held at brightness 115 with the default temporal filter
# (experiments/temporal_filter_probe.py; about 9 more minutes here), as real-footage §50's aim does.
# About 6 minutes on a 2-core CPU without LONG.
set -euo pipefail
cd "$(dirname "$0")/.."
w=${1:?weights file}
out=${2:?report folder}
py=${PY:-.venv/bin/python}
data=${STPR_DATA:-../shared/data}
lol=${LOL:-$data/lol-train}
mkdir -p "$out"
look=()
[ -n "${LOL_LOOK:-}" ] && look=(--look "$LOL_LOOK")
tf=()
[ -n "${TEMPORAL_FILTER:-}" ] && tf=(--temporal-filter "$TEMPORAL_FILTER")
"$py" -m stpr.cli eval --lol "$lol" --methods stpr --model "$w" "${look[@]}" --out "$out/lol" --threads 2 --quiet
reports=("$out/lol/results.md")
if [ -n "${SIBLINGS:-}" ]; then
    "$py" -m stpr.cli eval --lol "$lol" --lol-split siblings --methods stpr --model "$w" "${look[@]}" \
        --out "$out/lol_siblings" --threads 2 --quiet
    reports+=("$out/lol_siblings/results.md")
fi
"$py" -m stpr.cli eval --clips "$data/real-lowlight-clips" --methods stpr,stpr-perframe --model "$w" "${tf[@]}" \
    --out "$out/real" --threads 2 --quiet
"$py" scripts/window_compare.py "$w" --cases tree,city > "$out/window_compare.txt"
"$py" -c "import sys; from stpr.bench import model_gflops; print('GFLOPs per 640x360 frame: %.2f (%s)' % model_gflops(sys.argv[1], 640, 360))" "$w" > "$out/gflops.txt"
if [ -n "${LONG:-}" ]; then
    filt=$("$py" -c 'from stpr import temporal as t; print(f"--strengths {t.DEFAULT_STRENGTH} --tolerances {t.DEFAULT_TOLERANCE} --details {t.DEFAULT_DETAIL} --flows {t.DEFAULT_FLOW_PRESET}/{t.FLOW_SIDE}")')
    # shellcheck disable=SC2086  # $filt is the probe's options, split on purpose
    "$py" experiments/temporal_filter_probe.py --model "$w" --long "$LONG" --only-long --long-brightness 115 \
        $filt > "$out/long_115.txt"
    reports+=("$out/long_115.txt")
fi
for f in "${reports[@]}" "$out/real/results.md" "$out/window_compare.txt" "$out/gflops.txt"; do
    echo "== $f"; cat "$f"
done
