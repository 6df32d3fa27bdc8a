#!/usr/bin/env bash
# The attention sweep (benchmarks/kernel_sweep.py) on the lent GPU machine, bounded at 5 minutes, results
# under $OUT. Usage there:  COMMIT=<sha> OUT=$OUT bash benchmarks/gpu_sweep.sh   (needs only torch + triton)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/local}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" COMMIT="${COMMIT:-unknown}"
# `xlmr_ds.kernels` is the top-level kernels/ folder (setup.py maps it); without an install, link it in.
[ -e xlmr_ds/kernels ] || ln -s ../kernels xlmr_ds/kernels
timeout 300 python benchmarks/kernel_sweep.py --out "$OUT/kernel_sweep.json" > "$OUT/kernel_sweep.txt" 2>&1
echo "kernel sweep: exit $?"; head -1 "$OUT/kernel_sweep.txt"
grep -E "^ +(512|4096) +(64|128) +0.15 forward\+backward" "$OUT/kernel_sweep.txt"
