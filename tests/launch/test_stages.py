"""Each stage's plan and state (core.stage_state), the layout RunDir names, and what
overwrite=true removes: exactly the conflicting outputs and everything downstream."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inject_fixtures import inject_config
from train_fixtures import TINY_LLAMA

from core.config import with_values as replaced
from core.errors import CorruptOutputError, SpikeinError
from core.run_dir import STAGE_ORDER, RunDir
from core.stage_state import changed_keys
from inject.manifest import load_manifest
from inject.stage import run_inject
from launch.pipeline import dry_run_text, run_pipeline, settle, stage_states

# A tiny from-scratch run: 4 steps (checkpoints 0, 2, 4), the accuracy detector only.
TINY = [*TINY_LLAMA, "train.seq_len=32", "train.global_batch=4", "train.micro_batch=2", "train.max_steps=4",
        "train.checkpoint_every=2", "train.warmup_steps=0", "train.lr=3e-3", "logger.mode=disabled",
        "audit.detectors=[accuracy]", "audit.checkpoints=all", "inject.allow_untrained_copies=true"]


def with_values(cfg, **dotted):
    """``cfg`` with ``key.sub=value`` overrides (keys given as ``key__sub``)."""
    return replaced(cfg, {key.replace("__", "."): value for key, value in dotted.items()})


def listing(root) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what a write would change."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def statuses(cfg) -> dict[str, str]:
    return {s.stage: s.status for s in stage_states(cfg)}


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    """data/ built by the real inject stage, once for the module; nothing trained. Read it in
    place; a test that writes to the run dir takes a copy (:func:`injected_copy`)."""
    cfg = inject_config(tmp_path_factory.mktemp("stages"), *TINY)
    before = statuses(cfg)
    run_inject(cfg)
    return cfg, RunDir(cfg.run_dir), before


def injected_copy(injected, tmp_path: Path):
    """The config of a copy of ``injected``'s run dir (corpus and benchmark stay shared)."""
    cfg, rd, _ = injected
    return with_values(cfg, run_dir=str(shutil.copytree(rd.root, tmp_path / "run")))


def test_inject_state_absent_then_done_then_conflicting_naming_the_key(injected):
    cfg, rd, before = injected
    assert before == {"inject": "absent", "train": "absent", "audit": "absent", "report": "absent"}
    assert statuses(cfg)["inject"] == "done"
    state = stage_states(with_values(cfg, inject__counts=[0, 2, 3]))[0]
    assert (state.status, state.changed) == ("conflicting", ("inject.counts",))
    with pytest.raises(CorruptOutputError, match=r"data was built from a different config \(changed: inject\.counts\)"):
        state.refuse()


def test_dry_run_lists_every_stage_plan_and_state_and_writes_nothing(injected, capsys):
    cfg, rd, _ = injected
    before = listing(rd.root)
    assert run_pipeline(with_values(cfg, dry_run=True)) == 0
    out = capsys.readouterr().out
    assert "training tokens" in out  # launch/dry_run.py's summary comes first
    assert f"inject: {rd.data} up to date" in out and "done: " in out
    assert "train: 4 steps x 4 sequences x 32 tokens" in out and "from step 0" in out
    assert "audit: the checkpoints training writes x 1 detector(s) (accuracy)" in out
    assert f"report: write {rd.report_md}" in out
    assert out.count("absent: ") == 3
    text = dry_run_text(with_values(cfg, inject__counts=[0, 2, 3]))
    assert "inject: rebuild" in text and "(refused unless overwrite=true)" in text
    assert listing(rd.root) == before


def test_each_stage_dry_run_prints_its_plan_and_writes_nothing(injected, capsys):
    from report.report import run_report
    from train.stage import run_train

    cfg, rd, _ = injected
    before, dry = listing(rd.root), with_values(cfg, dry_run=True)
    assert run_inject(with_values(dry, inject__counts=[0, 2, 3], overwrite=True)) == 0
    assert run_train(dry) == 0 and run_report(dry) == 0
    out = capsys.readouterr().out
    assert f"inject: dry run, would rebuild {rd.data}" in out
    assert "train: dry run, nothing trained; checkpoints: absent" in out
    assert f"report: dry run, would write {rd.report_md}" in out
    assert listing(rd.root) == before


def _fake_training(cfg, rd: RunDir) -> None:
    """What a finished run of ``cfg`` leaves, without training: settings, index, audit, report."""
    from train.settings import save_settings
    from train.stage import plan_training

    save_settings(plan_training(cfg)[0])
    rd.step_dir(4).mkdir(parents=True)
    index = {"checkpoints": [{"step": 4, "tokens_seen": 512, "epochs": 0.03, "hf": "step_4/hf", "ds": "step_4/ds"}],
             "finished": True, "seq_len": 32, "global_batch": 4, "tokens_per_step": 128}
    rd.index.write_text(json.dumps(index))
    for path in (rd.results, rd.report_md, rd.config_yaml):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_a_changed_train_key_is_refused_and_with_overwrite_removes_exactly_train_audit_report(injected, tmp_path):
    cfg = injected_copy(injected, tmp_path)
    rd = RunDir(cfg.run_dir)
    _fake_training(cfg, rd)
    assert statuses(cfg) == {"inject": "done", "train": "done", "audit": "absent", "report": "done"}
    changed = with_values(cfg, train__lr=1e-3)
    states = stage_states(changed)
    assert [s.status for s in states] == ["done", "conflicting", "conflicting", "conflicting"]
    assert {"lr", "train.lr"} <= set(states[1].changed)
    before = listing(rd.root)
    with pytest.raises(SpikeinError, match=r"checkpoints come from a different train config \(changed: .*lr"):
        settle(changed, states)
    assert listing(rd.root) == before  # refused: nothing removed
    settle(with_values(changed, overwrite=True), states)
    gone = {p for p in before if p.split("/")[0] in ("checkpoints", "train", "audit", "report")}
    assert gone and listing(rd.root) == {p: v for p, v in before.items() if p not in gone}
    assert statuses(changed)["train"] == "absent"


def test_read_index_sorts_steps_and_names_a_corrupt_file(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.read_index() is None
    rd.checkpoints.mkdir()
    rd.index.write_text(json.dumps({"checkpoints": [{"step": 20}, {"step": 3}], "finished": False}))
    assert [c.step for c in rd.read_index().checkpoints] == [3, 20]
    rd.index.write_text('{"checkpoints": [')
    with pytest.raises(CorruptOutputError, match=f"corrupt checkpoint index {rd.index}"):
        rd.read_index()


def test_changed_keys_names_nested_differences():
    old = {"a": {"b": 1, "c": [1]}, "d": 2}
    assert changed_keys(old, {"a": {"b": 1, "c": [2]}, "e": 3}) == ["a.c", "d", "e"]
    assert changed_keys(old, old) == []


@pytest.mark.slow
def test_run_dir_names_every_file_the_real_stages_write(injected, tmp_path, capsys):
    cfg = injected_copy(injected, tmp_path)  # data/ as the inject stage wrote it
    assert statuses(cfg)["inject"] == "done"
    assert run_pipeline(cfg) == 0
    rd = RunDir(cfg.run_dir)
    index, manifest = rd.read_index(), load_manifest(rd.root)
    named = [rd.config_yaml, *(rd.lock(s) for s in STAGE_ORDER), rd.data, rd.manifest, rd.stream,
             rd.inject_config, rd.tokenizer, rd.data_file(manifest.tokenizer_dir), rd.partitions,
             *(rd.partition(p.benchmark, p.name) for p in manifest.partitions),
             *(rd.data_file(p.file) for p in manifest.partitions),
             rd.checkpoints, rd.index, rd.train, rd.train_settings, rd.metrics, rd.train_logs,
             rd.audit, rd.results, rd.audit_raw, rd.report, rd.report_md]
    for c in index.checkpoints:
        named += [rd.step_dir(c.step), rd.hf_dir(c.step), rd.checkpoint_file(c.hf)]
        named += [rd.ds_dir(c.step), rd.checkpoint_file(c.ds)] if c.ds else []
    assert [str(p) for p in named if not p.exists()] == []
    assert [c.step for c in index.checkpoints] == [0, 2, 4]
    assert {p.name for p in rd.root.iterdir()} == {p.relative_to(rd.root).parts[0] for p in named}
    assert statuses(cfg) == {"inject": "done", "train": "done", "audit": "done", "report": "done"}
    assert "3 of 3 (checkpoint, detector) pairs audited" in dry_run_text(cfg)
