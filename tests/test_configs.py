"""Every experiment recipe composes and dry-runs offline; the CLI explains itself."""
import subprocess
import sys

import pytest

from launch.config import CONF_DIR, compose
from launch.pipeline import run_pipeline

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_dry_runs(experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose([f"experiment={experiment}", f"run_dir={tmp_path}/run", "dry_run=true"])
    assert cfg.experiment_name == experiment
    assert run_pipeline(cfg) == 0
    out = capsys.readouterr().out
    assert f"experiment {experiment}" in out and "training tokens" in out
    assert not (tmp_path / "run").exists()  # a dry run touches nothing


def test_gpu_recipes_estimate_gpu_hours(capsys):
    gpu = [e for e in EXPERIMENTS if e not in ("demo", "local_text")]
    assert gpu, "expected GPU recipes in conf/experiment"
    for e in gpu:
        run_pipeline(compose([f"experiment={e}", "dry_run=true"]))
        assert "GPU-hours" in capsys.readouterr().out, e


def test_every_group_option_composes():
    for group in ("model", "data", "benchmarks", "train", "deepspeed", "audit", "launcher", "logger", "inject"):
        for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
            cfg = compose([f"{group}={option}"])
            assert group in cfg


def test_help_lists_groups_and_config():
    r = subprocess.run([sys.executable, "-m", "launch.cli", "inject", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "config groups" in r.stdout and "experiment" in r.stdout and "counts:" in r.stdout


def test_unknown_group_option_is_one_line():
    r = subprocess.run([sys.executable, "-m", "launch.cli", "run", "model=nope"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "choose one of" in r.stderr


def test_audit_shorthand_names_the_model_to_audit():
    from launch.cli import _audit_shorthand
    assert _audit_shorthand(["model=EleutherAI/pythia-160m", "benchmark=mmlu", "seed=1"]) == \
        ["audit.model=EleutherAI/pythia-160m", "audit.benchmark=mmlu", "seed=1",
         "~experiment", "experiment_name=audit-pythia-160m"]  # no demo recipe for a public model
    assert _audit_shorthand(["model=tiny_llama"]) == ["model=tiny_llama"]  # a config option stays one
