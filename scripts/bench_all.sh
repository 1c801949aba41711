#!/usr/bin/env bash
# The measurements behind the README's speed/memory tables (run on a quiet machine; ~35 min on
# 2 cores). Each step writes reports/bench_<name>.md and .json.
set -euo pipefail
cd "$(dirname "$0")/.."
STPR=${STPR:-.venv/bin/stpr}
mkdir -p reports
run() {  # name, then stpr bench options
    local name=$1; shift
    echo "== $name: stpr bench $*" >&2
    "$STPR" bench "$@" --json "reports/bench_$name.json" | tee "reports/bench_$name.md"
}
# 1. every size, STPR in PyTorch and onnxruntime, and the classical baselines; median of 3 runs
run main --frames 10 --repeat 3
# 2. the reader/writer threads: the same 640x360 case without them
run noio --sizes 640x360 --methods stpr --engines torch --frames 30 --repeat 3 --no-io-threads
run io --sizes 640x360 --methods stpr --engines torch --frames 30 --repeat 3
# 3. memory against length: 10 s vs 60 s at 640x360, 1 s vs 4 s at 4K (60 s of 4K is ~75 min here)
run len360 --sizes 640x360 --methods stpr --engines torch --frames 10 --repeat 1 --durations 10,60
run len4k --sizes 640x360 --methods stpr --engines torch --frames 10 --repeat 1 --durations 1,4 --duration-size 3840x2160
# 4. bfloat16 convolutions (CPU autocast; this CPU has AVX512-BF16)
run bf16 --sizes 640x360,1920x1080 --methods stpr --engines torch --frames 10 --repeat 3 --bf16
