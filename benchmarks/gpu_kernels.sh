#!/usr/bin/env bash
# The GPU part of the kernels issue, as one bounded script for the lent GPU machine (benchmarks/GPU.md):
# the gpu-marked kernel tests (bf16, full shapes) and the kernel benchmarks, results under $OUT.
# Usage there:  COMMIT=<sha> OUT=$OUT bash benchmarks/gpu_kernels.sh
# The kernels need only torch + triton (the GPU image has both); xlmr_ds is put on the path from the tree.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/local}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# `xlmr_ds.kernels` is the top-level kernels/ folder (setup.py maps it); without an install, link it in.
[ -e xlmr_ds/kernels ] || ln -s ../kernels xlmr_ds/kernels
{
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
  python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  echo "commit: ${COMMIT:-unknown}"
  echo "date: $(date -u +%FT%TZ)"
} > "$OUT/env.txt"
cat "$OUT/env.txt"
timeout 300 python -m pytest -q -p no:cacheprovider tests/kernels -m gpu -x --junitxml "$OUT/gpu_tests.xml" \
  > "$OUT/gpu_tests.txt" 2>&1
echo "gpu tests: exit $?"; tail -5 "$OUT/gpu_tests.txt"
timeout 240 python -m pytest -q -p no:cacheprovider -s tests/benchmarks/test_kernel_benchmarks.py \
  --benchmark-json "$OUT/kernel_benchmarks.json" > "$OUT/kernel_benchmarks.txt" 2>&1
echo "kernel benchmarks: exit $?"; grep -E "ratio|passed|failed|Error" "$OUT/kernel_benchmarks.txt"
