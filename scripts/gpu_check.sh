#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py) in one call on a machine that has PyTorch with CUDA but not
# stpr's other packages (the project's lent H200: no PyAV, no internet).
#
#   bash scripts/gpu_check.sh wheels       # here, once: download PyAV's wheel into .whl/ (ignored)
#   bash scripts/gpu_check.sh [ARGS...]    # there, with .whl carried; ARGS go to gpu_check.py
#
# Results go to $OUT (the device tool's return folder) or out/gpu_check.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "wheels" ]]; then
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "av==18.1.0"
    exit 0
fi
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
out="${OUT:-out/gpu_check}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
python3 scripts/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/log.txt"
