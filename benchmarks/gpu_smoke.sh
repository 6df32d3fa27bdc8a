#!/usr/bin/env bash
# The first GPU call (benchmarks/GPU.md runs it before anything else): does every distributed job run on CUDA
# with NCCL and bf16 at all? Crashes, not speed. On one GPU, the tiny model on a small corpus made here:
#   data      corpus demo -> spm train -> binarize
#   train     3 steps of pretraining (deepspeed launcher, NCCL, bf16) with evaluation, a save at step 2 and
#             an exit there, then a resume to step 3 and the end-of-run summary (peak memory gathered)
#   finetune  2 steps of fine-tuning the exported model (deepspeed launcher, NCCL, bf16)
#   bench     one interleaved pair, xlmr-ds against transformers, masked-LM steps
#   kernels   the `gpu`-marked kernel tests (bf16 shapes; the first Triton compile is part of it)
# Each check prints one line, ok or FAIL with its error line (all of its output in $OUT/<check>.txt).
# The GPU image has no DeepSpeed: carry wheels as gpu_bench.sh's header says and pass `carry: ["wheels"]`.
# Usage there (about 6 minutes with the install):  COMMIT=<sha> OUT=$OUT bash benchmarks/gpu_smoke.sh
# Its CPU twin, run by `make test` (tests/benchmarks/test_gpu_smoke_script.py): the same checks on DeepSpeed's CPU
# accelerator in fp32, the kernels left out (Triton's interpreter has no bf16):
#   SMOKE_DEVICE=cpu OUT=DIR bash benchmarks/gpu_smoke.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/local}
DEVICE=${SMOKE_DEVICE:-gpu}
PYTHON=${PYTHON:-python}
BIN=$(dirname "$(command -v "$PYTHON")")
W="$OUT/work"
mkdir -p "$W"
if [ "$DEVICE" = gpu ]; then
  if ! "$PYTHON" -c "import deepspeed" 2>/dev/null; then
    pip install --quiet --no-index --find-links wheels --no-build-isolation deepspeed hjson pydantic > "$OUT/install.txt" 2>&1
  fi
  pip install --quiet --no-deps --no-build-isolation -e . >> "$OUT/install.txt" 2>&1
  { echo "commit: ${COMMIT:-unknown}"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } > "$OUT/env.txt"
else
  export DS_ACCELERATOR=cpu
fi
export PATH="$BIN:$PATH" PYTHON W
export XLMR="$PYTHON -m xlmr_ds" LAUNCH="$BIN/deepspeed --num_gpus 1 --master_port ${SMOKE_PORT:-29511} --module"
failed=0
check() {  # name seconds: runs the function `name`, bounded
  local name=$1 seconds=$2
  if timeout "$seconds" bash -c "set -eo pipefail; $name" > "$OUT/$name.txt" 2>&1; then
    echo "$name: ok"
  else
    # the error line of xlmr-ds or Python if there is one (a launcher's own last line says only "exit 1")
    local why
    why=$(grep -E "error: |Error: |Error$" "$OUT/$name.txt" | grep -v "sigkill_handler" | tail -n 1)
    echo "$name: FAIL (${why:-$(grep -v '^\s*$' "$OUT/$name.txt" | tail -n 1)})"
    failed=$((failed + 1))
  fi
}

# One process, no accumulation; bf16 on the GPU. torch's Adam: DeepSpeed's fused one would compile with nvcc.
"$PYTHON" - "$DEVICE" "$W/ds.json" <<'EOF'
import json, sys
config = json.load(open("ds_configs/tiny_cpu_zero2.json"))
config.update(train_batch_size=4, train_micro_batch_size_per_gpu=4)
for monitor in ("tensorboard", "csv_monitor"):
    config.pop(monitor)
if sys.argv[1] == "gpu":
    config["bf16"] = {"enabled": True}
json.dump(config, open(sys.argv[2], "w"), indent=1)
EOF

data() {
  $XLMR corpus demo --out "$W/corpus" --scale 0.02 &&
    $XLMR spm train --input "$W/corpus" --out "$W/spm" --vocab-size 3000 --sample-lines 20000 &&
    $XLMR binarize --no-progress --input "$W/corpus" --spm "$W/spm.model" --out "$W/data"
}
train() {
  local args=(--deepspeed_config "$W/ds.json" --data "$W/data" --model tiny --block-size 64 --steps 3
              --eval-every 2 --eval-samples 4 --save "$W/run")
  $LAUNCH xlmr_ds.train "${args[@]}" --exit-at-step 2 &&
    $LAUNCH xlmr_ds.train "${args[@]}" > "$W/resumed.txt" 2>&1 &&
    cat "$W/resumed.txt" && grep -q "resumed from" "$W/resumed.txt" && grep -q "peak memory per process" "$W/resumed.txt"
}
finetune() {
  "$PYTHON" -c 'import sys; open(sys.argv[1], "w").write("".join(f"{w} film {i}\t{w}\n" for i in range(16) for w in ("good", "bad")))' "$W/task.tsv" &&
    $XLMR export --ckpt "$W/run" --out "$W/hf" &&
    $LAUNCH xlmr_ds.finetune --task sequence-classification --model "$W/hf" --train "$W/task.tsv" \
      --test "en=$W/task.tsv" --epochs 1 --batch-size 16 --deepspeed_config "$W/ds.json" --out "$W/finetune"
}
bench() {
  $XLMR bench --model tiny --seq 64 --micro-batch 4 --steps 2 --warmup-steps 1 --deepspeed_config "$W/ds.json" \
    --compare hf --repeats 1 --json "$OUT/bench.json"
}
kernels() {
  "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/kernels
}

export -f data train finetune bench kernels
check data 120
check train 240
check finetune 180
check bench 180
if [ "$DEVICE" = gpu ]; then
  check kernels 240
fi
echo "smoke on $DEVICE: $failed failed"
exit $((failed > 0))
