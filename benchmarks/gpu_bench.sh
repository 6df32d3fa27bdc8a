#!/usr/bin/env bash
# The GPU part of the performance issue, as one bounded script for the lent GPU machine (benchmarks/GPU.md):
# `xlmr-ds bench --compare hf` on the Large model, seq 512, bf16, ZeRO-2, one GPU, with and without
# activation checkpointing, results under $OUT. The GPU image has no DeepSpeed: carry wheels (made here with
#   pip download deepspeed==0.19.8 hjson ninja --no-deps -d wheels/
#   pip download pydantic --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --implementation cp -d wheels/
# ) and pass `carry: ["wheels"]`. Usage there:  COMMIT=<sha> OUT=$OUT bash benchmarks/gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/local}
mkdir -p "$OUT"
if ! python -c "import deepspeed" 2>/dev/null; then
  pip install --quiet --no-index --find-links wheels --no-build-isolation deepspeed hjson pydantic > "$OUT/install.txt" 2>&1
fi
pip install --quiet --no-deps --no-build-isolation -e . >> "$OUT/install.txt" 2>&1
echo "commit: ${COMMIT:-unknown}" > "$OUT/env.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$OUT/env.txt"
CONFIG=ds_configs/large_zero2_bf16.json
run() {  # name, seconds, then bench flags
  local name=$1 seconds=$2; shift 2
  timeout "$seconds" xlmr-ds bench --model large --seq 512 --steps 10 --warmup-steps 3 --deepspeed_config $CONFIG \
    --compare hf --json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1
  echo "$name: exit $?"; tail -4 "$OUT/$name.txt"
}
# The ratio from 3 interleaved pairs; then whether micro-batch 16 fits, with and without checkpointing (1 pair).
run large_mb8 330 --micro-batch 8 --repeats 3
run large_mb16_ckpt 120 --micro-batch 16 --activation-checkpointing --repeats 1
run large_mb16 120 --micro-batch 16 --repeats 1
