#!/usr/bin/env bash
# Issue 22's seed sweep: N demo runs side by side (each `spikein run experiment=demo seed=S`, W&B off),
# then the option-shuffle z table and the controls' false-positive rates over them
# (bench/option_shuffle_z_table.py). On a GPU machine the runs train and audit on the GPU (fp32,
# DeepSpeed ZeRO-2 on NCCL); DEVICE_ARGS and EXTRA override (e.g. DEVICE_ARGS=deepspeed=zero0_cpu).
#   bash bench/demo_seeds.sh 1 2 3 4 5 6 7 8        # after bench/gpu_check.sh installed .whl into /tmp/site
set -uo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /tmp/site ] && ls .whl/*.whl >/dev/null 2>&1; then  # the GPU machine: the wheels gpu_wheels.sh fetched
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
if [ -d /tmp/site ]; then export PYTHONPATH=/tmp/site:$PWD; else export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}; fi
export WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
WORK=${WORK:-/tmp/demo_seeds}
DEVICE_ARGS=${DEVICE_ARGS:-deepspeed=zero2_gpu}
mkdir -p "$WORK"
for s in "$@"; do
  # shellcheck disable=SC2086  # DEVICE_ARGS and EXTRA are lists of overrides
  OMP_NUM_THREADS=${THREADS:-2} "$PY" -m launch.cli run experiment=demo seed="$s" run_dir="$WORK/seed$s" \
    logger.mode=disabled $DEVICE_ARGS ${EXTRA:-} > "$WORK/seed$s.log" 2>&1 &
done
wait
for s in "$@"; do echo "seed $s: $(tail -n 1 "$WORK/seed$s.log")"; done
"$PY" bench/option_shuffle_z_table.py "$WORK"/seed*/ | tee "${OUT:-$WORK}/demo_seeds.md"
