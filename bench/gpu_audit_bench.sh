#!/usr/bin/env bash
# The audit engine benchmark on a GPU machine: engine fp32 and bf16 against the naive fp32
# path, plus the CPU baseline on the same machine. JSON lands in $OUT (default bench_out/).
#   bash bench/gpu_audit_bench.sh   (MMLU=<mmlu test dir> for real items)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench_out}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  PY=python3  # the checkout's venv may hold a CPU-only torch
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
export TOKENIZERS_PARALLELISM=false
for precision in fp32 bf16; do
  "$PY" bench/audit_bench.py ${MMLU:+--mmlu "$MMLU"} --device cuda --precision "$precision" --repeats 3 --json "$OUT/audit_bench_cuda_$precision.json"
done
"$PY" bench/audit_bench.py ${MMLU:+--mmlu "$MMLU"} --device cpu --precision fp32 --repeats 1 --json "$OUT/audit_bench_cpu.json"
