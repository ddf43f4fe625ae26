#!/usr/bin/env bash
# Fill .whl/ (repo root, git-ignored) with the py3.12 manylinux x86_64 wheels the GPU machine lacks,
# for bench/gpu_check.sh to install offline there. Run here, with network:   bash bench/gpu_wheels.sh
# (.whl/ is git-ignored; name it in the device call's carry.)
# Not carried: wandb (never imported with WANDB_MODE=disabled, which gpu_check.sh sets) and datasets
# (only hub corpora and hub benchmarks import it; the check uses neither).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
rm -rf .whl && mkdir -p .whl
download() {  # NAME==VERSION ...: binary wheels for CPython 3.12 on x86_64 Linux
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$@"
}
# deepspeed and its needs the machine lacks (hjson; pydantic 2 and its own needs)
download hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0
# hydra and omegaconf (the config system)
download hydra-core==1.3.8 omegaconf==2.3.1
# sdist only on PyPI: built here into pure-Python wheels (DeepSpeed with no C++ ops: torch AdamW)
tmp=$(mktemp -d)
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$tmp" deepspeed==0.19.8 antlr4-python3-runtime==4.9.3
for sdist in "$tmp"/*.tar.gz; do
  DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$sdist"
done
rm -rf "$tmp"
ls -la .whl
du -sh .whl
