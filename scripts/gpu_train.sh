#!/usr/bin/env bash
# A time-boxed training run on a lent GPU (the device tool), its data carried in parts.
#
# Here, once (needs `make videos` and `make lol` data; ~2 min):
#   bash scripts/gpu_train.sh pack        # .gpu_pack/{media,lol1..lolK} and .whl/ (PyAV), all ignored
# On the GPU machine, one device call per part (each call carries ≤ 64 MiB with the repository;
# carried folders stay on the warm machine between calls):
#   call 1:      carry [".whl", ".gpu_pack/media"]  command: true
#   calls 2..K:  carry [".gpu_pack/lolN"]           command: true
#   last call:   carry [".gpu_pack/lolK"]           command: bash scripts/gpu_train.sh run [CONFIG] [MINUTES] [--set k=v ...]
# The run trains CONFIG (default configs/fast_gpu.json) for MINUTES (default: the
# config's max_minutes) on whatever LOL parts arrived, and leaves in $OUT (7 files; 8 come back):
# run/{last,best}.safetensors, run/last_state.pt (to resume), run/log.csv, run/config.json,
# gpu_util.csv (nvidia-smi every 2 s) and train.log (the training output and the mean GPU
# utilisation after the first minute).
# A dry run on a CPU: OUT=/tmp/gpu_dry bash scripts/gpu_train.sh run CONFIG 0.3 --set device=cpu --set batch=2 ...
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: gpu_train.sh pack | run [CONFIG] [MINUTES] [--set k=v ...]}
shift

case "$cmd" in
pack)
    py=${PY:-.venv/bin/python}
    "$py" scripts/gpu_pack.py --lol data_cache/lol-v1/train --out .gpu_pack \
        --videos data_cache/videos/{bikes.mp4,vtest.avi,bigbuckbunny.mp4,Megamind.avi} \
        --val-video data_cache/videos/tree.avi --stills data_cache/stills
    ls .whl/av-*.whl >/dev/null 2>&1 || bash scripts/gpu_check.sh wheels  # PyAV for the GPU machine
    du -sh .whl .gpu_pack/*
    ;;
run)
    config=configs/fast_gpu.json
    minutes=""
    if [[ $# -gt 0 && $1 != --* ]]; then config=$1; shift; fi
    if [[ $# -gt 0 && $1 != --* ]]; then minutes=$1; shift; fi
    out=${OUT:?OUT is where the run writes its files (the device tool sets it)}
    py=${PY:-python3}
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
    fi
    export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
    # the config's data paths, from the carried parts (links, so nothing is copied); a machine
    # that has its own data_cache (this one's) keeps it
    if [[ -d .gpu_pack/media && ! -e data_cache ]]; then
        mkdir -p data_cache/lol-v1/train/low data_cache/lol-v1/train/high
        ln -sfn "$PWD/.gpu_pack/media/videos" data_cache/videos
        [[ -d .gpu_pack/media/stills ]] && ln -sfn "$PWD/.gpu_pack/media/stills" data_cache/stills
        for part in .gpu_pack/lol*/; do
            for side in low high; do ln -sf "$PWD/$part$side"/* "data_cache/lol-v1/train/$side/"; done
        done
        echo "LOL pairs here: $(ls data_cache/lol-v1/train/low | wc -l)"
    fi
    sets=(--set "out_dir=$out/run")
    [[ -n $minutes ]] && sets+=(--set "max_minutes=$minutes")
    util=""
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 2 \
            > "$out/gpu_util.csv" &
        util=$!
    fi
    set +e
    "$py" -m stpr.cli train --config "$config" "${sets[@]}" "$@" 2>&1 | tr '\r' '\n' | grep -v '^train: ' \
        | tee "$out/train.log"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ -n $util ]]; then
        kill "$util" 2>/dev/null || true
        # the mean after the first minute (start-up: data decoding, worker start)
        awk -F', ' 'NR > 30 { s += $2; n++ } END { if (n) printf "GPU utilisation after the first minute: %.1f %% (mean of %d readings)\n", s / n, n }' \
            "$out/gpu_util.csv" | tee -a "$out/train.log"
    fi
    exit "$rc"
    ;;
*)
    echo "unknown command $cmd (pack | run)" >&2
    exit 2
    ;;
esac
