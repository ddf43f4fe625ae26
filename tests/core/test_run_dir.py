"""core.run_dir: where each file of a run directory lives, what each stage owns, which run
dirs of a sweep hold results, and the shared readers (absent: None; corrupt: one line)."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from core.errors import CorruptOutputError
from core.run_dir import STAGE_ORDER, RunDir


def test_paths_follow_the_documented_layout():
    rd = RunDir("runs/x")  # a str root becomes a Path
    assert rd.root == Path("runs/x")
    want = {
        rd.config_yaml: "config.yaml", rd.lock("train"): ".lock.train",
        rd.manifest: "data/manifest.json", rd.stream: "data/stream.bin", rd.inject_config: "data/inject_config.json",
        rd.corpus_scan: "data/corpus_scan.json", rd.tokenizer: "data/tokenizer",
        rd.partition("mmlu", "p16"): "data/partitions/mmlu/p16.jsonl", rd.data_file("partitions/a/b.jsonl"):
        "data/partitions/a/b.jsonl",
        rd.index: "checkpoints/index.json", rd.step_dir(40): "checkpoints/step_40",
        rd.step_tmp(40): "checkpoints/.step_40.tmp", rd.hf_dir(40): "checkpoints/step_40/hf",
        rd.ds_dir(40): "checkpoints/step_40/ds", rd.checkpoint_file("step_40/hf"): "checkpoints/step_40/hf",
        rd.train_settings: "train/settings.json", rd.metrics: "train/metrics.jsonl", rd.train_logs: "train/logs",
        rd.results: "audit/results.jsonl", rd.audit_raw: "audit/raw", rd.audit_worker_config: "audit/worker_config.yaml",
        rd.report_md: "report/report.md", rd.lm_eval: "lm_eval", rd.worker_logs("audit"): "logs/audit",
    }
    assert {p.relative_to(rd.root).as_posix(): rel for p, rel in want.items()} == {rel: rel for rel in want.values()}
    with pytest.raises(FrozenInstanceError):
        rd.root = Path("elsewhere")  # type: ignore[misc]


def test_each_stage_owns_its_outputs_and_no_two_overlap():
    rd = RunDir(Path("/r"))
    owned = {s: rd.outputs(s) for s in STAGE_ORDER}
    assert owned == {"inject": (rd.data,), "train": (rd.checkpoints, rd.train), "audit": (rd.audit,),
                     "report": (rd.report,)}
    paths = [p for ps in owned.values() for p in ps]
    assert not [(a, b) for a in paths for b in paths if a != b and a.is_relative_to(b)]
    # what the readers read lies inside the outputs of the stage that writes it
    assert rd.manifest.is_relative_to(rd.data) and rd.index.is_relative_to(rd.checkpoints)
    assert rd.results.is_relative_to(rd.audit) and rd.report_md.is_relative_to(rd.report)
    assert rd.outputs("verify") == ()  # a registered stage that only reads
    with pytest.raises(KeyError):
        rd.outputs("nosuchstage")


def test_with_results_under_finds_each_sweep_job_with_results_once_sorted(tmp_path):
    for job in ("10", "2", "a/b/3"):
        RunDir(tmp_path / job).results.parent.mkdir(parents=True)
        RunDir(tmp_path / job).results.write_text("")
    (tmp_path / "4" / "audit").mkdir(parents=True)  # audited nothing yet: not a result
    found = RunDir.with_results_under(tmp_path)
    assert found == [RunDir(tmp_path / "10"), RunDir(tmp_path / "2"), RunDir(tmp_path / "a" / "b" / "3")]
    assert RunDir.with_results_under(tmp_path / "none") == []


def test_read_index_sorts_checkpoints_by_numeric_step(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.read_index() is None  # before training wrote it
    rd.index.parent.mkdir()
    entries = [{"step": s, "hf": f"step_{s}/hf"} for s in (100, 9, 20)]
    rd.index.write_text(json.dumps({"checkpoints": entries, "finished": False}))
    index = rd.read_index()
    assert [c.step for c in index.checkpoints] == [9, 20, 100] and index.finished is False


@pytest.mark.parametrize("text, reason", [('{"checkpoints": [', "Expecting"),
                                          ('{"finished": true}', "'checkpoints'"),
                                          ('{"checkpoints": [{"hf": "x"}]}', "'step'"),
                                          ('{"checkpoints": [{"step": "last"}]}', "invalid literal")])
def test_a_corrupt_index_is_one_line_naming_the_file(tmp_path, text, reason):
    rd = RunDir(tmp_path)
    rd.index.parent.mkdir()
    rd.index.write_text(text)
    with pytest.raises(CorruptOutputError) as e:
        rd.read_index()
    msg = str(e.value)
    assert msg.startswith(f"corrupt checkpoint index {rd.index}: ") and reason in msg and "\n" not in msg


@pytest.mark.parametrize("reader, path, what", [("read_manifest", "manifest", "manifest"),
                                                ("read_inject_config", "inject_config", "inject config"),
                                                ("read_train_settings", "train_settings", "train settings"),
                                                ("read_corpus_scan", "corpus_scan", "corpus scan")])
def test_each_reader_gives_none_json_or_one_line(tmp_path, reader, path, what):
    rd = RunDir(tmp_path)
    read, file = getattr(rd, reader), getattr(rd, path)
    assert read() is None
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text('{"n_tokens": 7, "nested": {"a": [1]}}')
    assert read() == {"n_tokens": 7, "nested": {"a": [1]}}
    file.write_text('{"n_tokens": 7')  # a writer killed mid-write without core.atomic
    with pytest.raises(CorruptOutputError) as e:
        read()
    assert str(e.value).startswith(f"corrupt {what} {file}: ") and "\n" not in str(e.value)
