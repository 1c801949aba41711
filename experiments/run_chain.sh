#!/usr/bin/env bash
# Train configs one after another, each from the last checkpoint of the one before (its own "init"
# says so), resuming whichever was interrupted and skipping those already finished, so the same
# command continues a chain after a kill or in a later session (if runs/ survived):
#   bash experiments/run_chain.sh CONFIG [CONFIG ...]
# e.g. q22 from nothing (real-footage §38-39; ~2 h on this 2-core CPU):
#   .venv/bin/python experiments/partial_init.py src/stpr/weights/stpr_default.safetensors \
#       --config experiments/configs/q13_wide.json --out runs/q13_init.safetensors
#   bash experiments/run_chain.sh experiments/configs/q21a_white.json \
#       experiments/configs/q21b_mixed_lowpass.json experiments/configs/q22_lowpass_more.json
# TRAIN_SET="workers=0 threads=2" passes --set KEY=VALUE to every run: meant for settings that
# change no batch (workers, threads; training.md: workers=0 on a 2-core CPU without native bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PY:-.venv/bin/python}
sets=()
for kv in ${TRAIN_SET:-}; do sets+=(--set "$kv"); done
for cfg in "$@"; do
  out=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["out_dir"])' "$cfg")
  steps=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["steps"])' "$cfg")
  done_at=$("$py" -c 'import sys; from stpr.train import last_logged_step; print(last_logged_step(sys.argv[1]))' "$out")
  if [ "$done_at" -ge "$steps" ] && [ -f "$out/last.safetensors" ]; then
    echo "$out: finished ($steps steps)"; continue
  fi
  resume=()
  [ "$done_at" -ge 0 ] && resume=(--resume)
  echo "$out: training from step $((done_at < 0 ? 0 : done_at)) of $steps"
  "$py" -m stpr.cli train --config "$cfg" "${sets[@]}" "${resume[@]}"
done
