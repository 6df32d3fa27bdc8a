#!/usr/bin/env bash
# GPU.md item 8 as one bounded script: how much compute the demo's model needs for issue 15's fill-mask aim (top-1
# answers that are words of the prompt's language for 3 of the demo's 4 prompts; no longer a demo goal, so GPU.md
# runs it after every other item). It trains the demo's model (the tiny shape without dropout, 32-token blocks, fp32,
# the demo's optimizer and schedule) on the demo's data for STEPS steps of BATCH blocks, saves every EVERY steps,
# then exports each checkpoint and counts the word answers of benchmarks/fill_mask_panel.txt (the demo's four prompts
# are the first of each language). Training stops at TRAIN_SECONDS however far it got; the checkpoints written by
# then are scored.
# Defaults: 40,000 steps of 256 blocks within 6 minutes, 71 times the demo's 4,500 steps of 32 (the CPU's 20,000
# steps of 32 were 4.4 times and still answered 2 of 4). On the GPU a step of the tiny model costs launch overhead,
# not FLOPs, so the larger batch is nearly free.
# Here: `make demo` (or its data steps) for runs/demo/data, DeepSpeed wheels as gpu_bench.sh's header says, then
# `run` with carry: ["wheels", "runs/demo/data"]. There:  COMMIT=<sha> OUT=$OUT bash benchmarks/gpu_fill_mask.sh
# On the CPU (a smoke run of this script, tests/benchmarks/test_gpu_fill_mask_script.py): DS_ACCELERATOR=cpu with
# small STEPS, EVERY and BATCH.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/local}
DATA=${DATA:-runs/demo/data}
STEPS=${STEPS:-40000}
EVERY=${EVERY:-10000}
BATCH=${BATCH:-256}
TRAIN_SECONDS=${TRAIN_SECONDS:-360}
WORK=${WORK:-/tmp/gpu_fill_mask}
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
[ -f "$DATA/manifest.json" ] || { echo "no demo data at $DATA: run make demo here and carry runs/demo/data"; exit 2; }
if ! python -c "import deepspeed" 2>/dev/null; then
  pip install --quiet --no-index --find-links wheels --no-build-isolation deepspeed hjson pydantic > "$OUT/install.txt" 2>&1
fi
python -c "import xlmr_ds" 2>/dev/null || pip install --quiet --no-deps --no-build-isolation -e . >> "$OUT/install.txt" 2>&1
{
  echo "commit: ${COMMIT:-unknown}"
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "device: no CUDA GPU"
  echo "steps $STEPS, every $EVERY, batch $BATCH blocks of 32 tokens, at most $TRAIN_SECONDS s of training"
} > "$OUT/env.txt"
cat "$OUT/env.txt"
# The demo's config with the batch of this run on one process; the image has no tensorboard, so only the CSV monitor.
python - "$BATCH" "$WORK/ds_config.json" <<'EOF'
import json, sys
config = json.load(open("ds_configs/demo_cpu_zero2.json"))
batch = int(sys.argv[1])
config.update(train_batch_size=batch, train_micro_batch_size_per_gpu=batch)
config["tensorboard"]["enabled"] = False
json.dump(config, open(sys.argv[2], "w"), indent=2)
EOF
start=$(date +%s)
timeout "$TRAIN_SECONDS" python -m xlmr_ds.train --deepspeed_config "$WORK/ds_config.json" --data "$DATA" \
  --model-config model_configs/tiny_no_dropout.json --block-size 32 --steps "$STEPS" --eval-every "$EVERY" \
  --save-every "$EVERY" --keep 0 --save "$WORK/run" > "$WORK/train.log" 2>&1
echo "training: exit $? after $(( $(date +%s) - start )) s (124: stopped at TRAIN_SECONDS)"
# The progress bar redraws with \r: keep every other line and the bar's last state (steps/s, tokens/s).
{ tr '\r' '\n' < "$WORK/train.log" | grep -v -e '^train: ' -e '^ *$'; tr '\r' '\n' < "$WORK/train.log" | grep '^train: ' | tail -1; } \
  | tail -60 > "$OUT/train.txt"
tail -1 "$OUT/train.txt"
# A failing export or fill-mask prints its last error line: the call's output is all a GPU session gets back.
score() {  # step, then the prompts; prints fill-mask's answers and, last, its count of word answers
  xlmr-ds fill-mask --model "$WORK/hf_$1" "${@:2}" 2> "$WORK/fill_mask_$1.err" || { tail -1 "$WORK/fill_mask_$1.err"; return 1; }
}
# The demo's four prompts are the panel's first of each language (lines 1, 6, 11, 16).
mapfile -t four_prompts < <(sed -n '1p;6p;11p;16p' benchmarks/fill_mask_panel.txt)
mapfile -t panel < benchmarks/fill_mask_panel.txt
for step_dir in "$WORK"/run/step_*; do
  [ -f "$step_dir/xlmr_ds_checkpoint.json" ] || continue
  step=$((10#${step_dir##*step_}))
  xlmr-ds export --ckpt "$WORK/run" --step "$step" --out "$WORK/hf_$step" > "$WORK/export_$step.log" 2>&1 \
    || { echo "step $step: export failed: $(tail -1 "$WORK/export_$step.log")"; continue; }
  answers=""
  four=$(score "$step" "${four_prompts[@]}" | tail -1) && answers=$(score "$step" "${panel[@]}") \
    || { echo "step $step: fill-mask failed: $four$answers"; continue; }
  printf '## step %s (the demo'"'"'s four prompts: %s)\n%s\n' "$step" "${four##*: }" "$answers" >> "$OUT/fill_mask.txt"
  echo "step $step: the demo's four prompts ${four##*: }; the panel ${answers##*: }"
done
cp "$WORK/run/metrics.jsonl" "$OUT/metrics.jsonl" 2>/dev/null || true
