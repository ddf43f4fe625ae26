"""`spikein audit model=...` as the README shows it: no hidden recipe, --help takes the shorthand."""
import subprocess
import sys

import pytest

from launch.cli import _audit_shorthand
from launch.config import compose


def test_public_model_audit_composes_no_recipe():
    cfg = compose(_audit_shorthand(["model=EleutherAI/pythia-160m", "benchmarks=mmlu_local", "benchmark=mmlu"]))
    assert cfg.experiment_name == "audit-pythia-160m" and cfg.run_dir == "runs/audit-pythia-160m"
    assert cfg.audit.option_shuffle.isolation_forest is True  # the demo recipe turns it off
    assert cfg.inject.counts != [0, 4, 16, 64]  # nor do the demo's inject counts leak in
    assert cfg.audit.model == "EleutherAI/pythia-160m" and cfg.audit.benchmark == "mmlu"


def test_named_recipe_and_name_are_kept():
    cfg = compose(_audit_shorthand(["model=/models/x/", "experiment=demo"]))
    assert cfg.experiment_name == "demo" and cfg.audit.option_shuffle.isolation_forest is False
    cfg = compose(_audit_shorthand(["audit.model=/models/x/", "experiment_name=mine"]))
    assert cfg.experiment_name == "mine" and cfg.audit.option_shuffle.isolation_forest is True
    assert compose(_audit_shorthand(["run_dir=r"])).experiment_name == "demo"  # auditing a run: unchanged


@pytest.mark.slow
def test_help_accepts_the_shorthand():
    r = subprocess.run([sys.executable, "-m", "launch.cli", "audit", "model=/models/my-model", "benchmark=mmlu", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "model: /models/my-model" in r.stdout and "experiment_name: audit-my-model" in r.stdout
