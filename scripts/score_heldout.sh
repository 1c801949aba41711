#!/usr/bin/env bash
# The held-out figures of one shipped model, once per release (never to choose between candidates:
# scripts/score_candidate.sh scores validation data for that):
#   scripts/score_heldout.sh WEIGHTS REPORT_DIR
# - LOL-v1's test split (eval15), both looks when the model has them (stpr eval --lol ... --look L);
# - carphone_pristine.mp4, the window (T = 3) against the same weights per frame;
# - the five long colour videos of real-footage §3, first 90 frames, at the model's own brightness
#   and held at 115 (issue 25's 90-140 band).
# The product's defaults throughout (temporal filter on). Needs data_cache/lol-v1/eval15 (make lol),
# data_cache/videos (make videos) and data_cache/real-dark-videos (scripts/fetch_dark_videos.sh).
# Every report is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
w=${1:?weights file}
out=${2:?report folder}
py=${PY:-.venv/bin/python}
videos=(dashcam_night_road cctv_night_yard rccar_night_torch phone_night_street aerial_dusk_bridge)
for need in data_cache/lol-v1/eval15 data_cache/videos/carphone_pristine.mp4; do
    [ -e "$need" ] || { echo "error: $need is missing (make lol; make videos)" >&2; exit 1; }
done
for v in "${videos[@]}"; do
    [ -f "data_cache/real-dark-videos/$v.mp4" ] || {
        echo "error: data_cache/real-dark-videos/$v.mp4 is missing (bash scripts/fetch_dark_videos.sh)" >&2; exit 1; }
done
mkdir -p "$out"
looks=$("$py" -c 'import sys; from stpr.checkpoint import load_model; print(" ".join(load_model(sys.argv[1]).cfg.looks or ["default"]))' "$w")
reports=()
for look in $looks; do
    opt=()
    [ "$look" != default ] && opt=(--look "$look")
    "$py" -m stpr.cli eval --lol data_cache/lol-v1/eval15 --methods stpr --model "$w" "${opt[@]}" \
        --out "$out/eval15_$look" --threads 2 --quiet
    reports+=("$out/eval15_$look/results.md")
done
"$py" -m stpr.cli eval --synthetic data_cache/videos/carphone_pristine.mp4 --methods stpr,stpr-perframe \
    --model "$w" --out "$out/carphone" --threads 2 --quiet
reports+=("$out/carphone/results.md")
for v in "${videos[@]}"; do
    "$py" -m stpr.cli eval "data_cache/real-dark-videos/$v.mp4" --methods stpr --model "$w" --max-frames 90 \
        --out "$out/videos/$v" --threads 2 --quiet
    "$py" -m stpr.cli eval "data_cache/real-dark-videos/$v.mp4" --methods stpr --model "$w" --max-frames 90 \
        --brightness 115 --out "$out/videos_115/$v" --threads 2 --quiet
    reports+=("$out/videos/$v/results.md" "$out/videos_115/$v/results.md")
done
for f in "${reports[@]}"; do
    echo "== $f"; cat "$f"
done
