#!/usr/bin/env bash
# One command on one GPU (at most 8 minutes): training tokens/s and MFU (~160M, bf16), peak memory
# against the dry run's estimate, Qwen2.5-0.5B-sized training with activation checkpointing, the audit
# on CUDA against the CPU audit, bf16/mixed against fp32 p-values. One table; $OUT/gpu_check.md.
#   bash bench/gpu_check.sh          # on the GPU machine (after bench/gpu_wheels.sh filled .whl/ here)
#   bash bench/gpu_check.sh --cpu    # tiny sizes on the CPU: checks the script end to end
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || echo "gpu_check: wheel install failed; going on with what is installed"
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
PY_SET=${PY:-}
PY=${PY:-python3}
if [ -z "${PY_SET:-}" ] && [ -x .venv/bin/python ] && [ "${1:-}" = "--cpu" ]; then PY=.venv/bin/python; fi
export WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
LIMIT=480  # the GPU check's promise: 8 minutes; the CPU check of the script itself may take longer
if [ "${1:-}" = "--cpu" ]; then LIMIT=1800; fi
exec timeout --signal=INT "$LIMIT" "$PY" bench/gpu_check.py "$@"
