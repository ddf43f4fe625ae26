"""The whole pipeline as a researcher runs it: `spikein run`, kill and rerun, two ranks, a sweep."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_data

from audit.results import read_rows
from core.run_dir import RunDir

SHARED = SHARED_DATA
GUTENBERG = SHARED / "corpus" / "gutenberg"
ARC = SHARED / "benchmarks" / "arc_challenge" / "ARC-Challenge-Test.jsonl"
needs_shared = shared_data(ARC)


def tiny_run(run_dir: Path, *extra: str) -> list[str]:
    """Real text (Gutenberg) + ARC-Challenge partitions, a tiny Llama, 120 steps."""
    return [
        f"run_dir={run_dir}", "experiment=local_text", f"data.paths=[{GUTENBERG}]", "data.max_documents=40",
        f"benchmarks.mine.path={ARC}", "inject.counts=[0,8]", "inject.partition_size=20", "inject.workers=1",
        "model.bpe_vocab_size=512", "model.config.hidden_size=64", "model.config.intermediate_size=128",
        "model.config.num_hidden_layers=2", "model.config.num_attention_heads=2", "model.config.num_key_value_heads=2",
        "train.seq_len=64", "train.global_batch=8", "train.micro_batch=8", "train.max_steps=120",
        "train.checkpoint_every=30", "train.warmup_steps=10", "train.lr=3e-3",
        "audit.ordering.shards=4", "audit.ordering.permutations=10", "audit.checkpoints=last",
        "audit.option_shuffle.isolation_forest=false",
        "inject.window=[0.0,0.3]",  # 120 steps train on ~35% of the stream: every copy inside
        *extra,
    ]


def spikein(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], capture_output=True, text=True, env=env, **kw)


def comparable(rows: list[dict]) -> list[tuple]:
    keep = ("step", "benchmark", "partition", "count", "copies_seen", "detector", "statistic", "p", "n_items")
    return sorted(tuple(json.dumps(r.get(k)) for k in keep) for r in rows)


def final_weights(run_dir: Path) -> bytes:
    last = RunDir(run_dir).read_index().checkpoints[-1]
    return (run_dir / "checkpoints" / last.hf / "model.safetensors").read_bytes()


@pytest.mark.slow
@needs_shared
def test_real_text_pipeline_kill_and_rerun_equals_uninterrupted(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    r = spikein("run", *tiny_run(straight))
    assert r.returncode == 0, r.stderr[-2000:]
    md = (straight / "report" / "report.md").read_text()
    assert "mine/x8 (8 copies)" in md and "mine/x0 (control)" in md

    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", *tiny_run(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        index = RunDir(killed).read_index()  # None until training wrote the first checkpoint
        steps = [c.step for c in index.checkpoints] if index else []
        if any(s >= 60 for s in steps):  # killed mid-run, with a checkpoint to resume from
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its training workers
    proc.wait()
    assert not (killed / "report").exists()

    r = spikein("run", *tiny_run(killed))
    assert r.returncode == 0, r.stderr[-2000:]
    assert final_weights(killed) == final_weights(straight)
    assert comparable(read_rows(RunDir(killed).results)) == comparable(read_rows(RunDir(straight).results))
    md = (killed / "report" / "report.md").read_text()
    assert "mine/x8 (8 copies)" in md and "mine/x0 (control)" in md

    r = spikein("run", *tiny_run(killed))  # everything finished: each stage skips
    assert r.returncode == 0 and "up to date" in r.stdout + r.stderr


@pytest.mark.slow
@needs_shared
def test_two_process_pipeline_zero2(tmp_path):
    run_dir = tmp_path / "ddp"
    r = spikein("run", *tiny_run(run_dir, "launcher=torchrun", "launcher.nproc_per_node=2",
                                 "deepspeed=zero2_cpu", "train.micro_batch=4", "train.max_steps=40",
                                 "train.checkpoint_every=20", "inject.allow_untrained_copies=true"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert RunDir(run_dir).read_index().last_step == 40
    rows = read_rows(RunDir(run_dir).results)
    assert {r["detector"] for r in rows} == {"ordering", "option_shuffle", "accuracy"}
    assert {r["partition"] for r in rows} == {"x0", "x8"}


@pytest.mark.slow
@needs_shared
def test_multirun_sweep_with_aggregate_report(tmp_path):
    sweep = tmp_path / "sweep"
    args = [a for a in tiny_run(tmp_path / "unused", "train.max_steps=20", "train.checkpoint_every=20",
                                "audit.detectors=[option_shuffle,accuracy]", "inject.allow_untrained_copies=true")
            if not a.startswith(("run_dir=", "inject.counts="))]
    r = spikein("run", "-m", *args, "inject.counts=[0,4],[0,8]", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    runs = sorted(p.parent.parent.name for p in sweep.glob("*/audit/results.jsonl"))
    assert runs == ["0", "1"]
    md = (sweep / "report" / "report.md").read_text()
    assert "2 runs" in md and "| 0 | mine | x4 |" in md and "| 1 | mine | x8 |" in md


@pytest.mark.slow
@needs_shared
def test_audit_each_checkpoint_while_training(tmp_path):
    run_dir = tmp_path / "watch"
    r = spikein("run", *tiny_run(run_dir, "audit.watch=true", "audit.poll_s=0.5", "audit.checkpoints=all",
                                 "train.max_steps=60", "train.checkpoint_every=20",
                                 "audit.detectors=[option_shuffle,accuracy]", "inject.allow_untrained_copies=true"))
    assert r.returncode == 0, r.stderr[-2000:]
    steps = {row["step"] for row in read_rows(RunDir(run_dir).results)}
    assert steps == {c.step for c in RunDir(run_dir).read_index().checkpoints} == {0, 20, 40, 60}
    md = (run_dir / "report" / "report.md").read_text()  # the report covers the watched audit's rows
    assert "mine/x8 (8 copies)" in md and "mine/x0 (control)" in md
