"""`spikein audit` on a fake run directory: rows, caching and resume, errors, watch, public models."""
from __future__ import annotations

import json
import shutil
import sys
import types

import pytest
import torch
from audit_fixtures import (  # noqa: E402,F401
    add_checkpoints,
    checkpointed_run,
    make_items,
    make_run_dir,
    one_thread,
    read_results,
    tiny_model,
)
from conftest import SHARED_DATA, shared_data
from torchrun import torchrun  # noqa: E402

import audit.stage as stage
import audit.targets as targets
from audit.detectors.ordering import Ordering
from audit.results import ROW_FIELDS, ResultsStore, read_rows
from core.checkpoint_index import CheckpointIndex
from core.errors import SpikeinError
from core.run_dir import RunDir
from inject.manifest import load_manifest
from launch.config import compose

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = [
    "audit.ordering.shards=3", "audit.ordering.permutations=4", "audit.option_shuffle.isolation_forest=false",
    "audit.context=256", "audit.stride=128", "audit.progress=false", "experiment_name=t", "logger.mode=disabled",
    "audit.detectors=[ordering,option_shuffle,accuracy]",  # the demo recipe (the default experiment) runs all eight
    "audit.null_check.draws=0",  # the demo's null check has its own tests (tests/audit/test_null_check.py)
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A run dir with three partitions (one injected) and two random-init checkpoints."""
    parts = {"hot": (4, make_items(9, seed=1, prefix="h")), "ctl0": (0, make_items(9, seed=2, prefix="a")),
             "ctl1": (0, make_items(9, seed=3, prefix="b"))}
    return checkpointed_run(tmp_path_factory.mktemp("run"), parts)


@pytest.fixture
def run(template, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(template, dst)
    return dst


def cfg_for(run_dir, *extra):
    return compose([f"run_dir={run_dir}", *FAST, *extra])


def strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_one_row_per_checkpoint_partition_detector_then_cached(run, monkeypatch):
    assert stage.run_audit(cfg_for(run)) == 0
    rows = read_results(run)
    assert len(rows) == 2 * 3 * 3
    assert {(r["step"], r["partition"], r["detector"]) for r in rows} == {
        (s, p, d) for s in (0, 10) for p in ("hot", "ctl0", "ctl1") for d in ("ordering", "option_shuffle", "accuracy")
    }
    manifest = load_manifest(run)
    for r in rows:
        assert all(k in r for k in ROW_FIELDS)
        assert r["experiment"] == "t" and r["n_items"] == 9 and r["tokens_scored"] > 0
        assert r["tokens_seen"] == r["step"] * 64 * 4
        assert r["copies_seen"] == manifest.copies_seen(r["tokens_seen"])[("bench", r["partition"])]
        assert r["count"] == (4 if r["partition"] == "hot" else 0)
        assert r["settings"]["renderer"] == "mcq" and r["settings"]["context"] == 256
        assert 0 < r["p"] <= 1 and r["p"] == pytest.approx(10 ** r["log10_p"], rel=1e-6), r  # what the report reads
    ordering = [r for r in rows if r["detector"] == "ordering"]
    assert all(r["settings"]["shards"] == 3 and r["log10_p"] <= 0 and "perm_p" in r for r in ordering)
    shuffle = [r for r in rows if r["detector"] == "option_shuffle"]
    assert all(r["calibrated"] and r["null"] == "controls" for r in shuffle)
    acc = [r for r in rows if r["detector"] == "accuracy" and r["partition"] == "hot"]
    assert all(r["inflation"] == pytest.approx(r["accuracy"] - r["control_accuracy"]) for r in acc)
    # a second run finds every row cached and loads no model
    monkeypatch.setattr(stage, "load_model", lambda *a, **k: pytest.fail("model loaded for cached rows"))
    before = (run / "audit" / "results.jsonl").read_text()
    assert stage.run_audit(cfg_for(run)) == 0
    assert (run / "audit" / "results.jsonl").read_text() == before


@pytest.mark.slow
def test_killed_audit_resumes_with_the_same_rows(run, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    shutil.copytree(run, reference)
    stage.run_audit(cfg_for(reference))
    calls = {"n": 0}
    real = Ordering.score

    def dies_on_fourth(self, ctx, part):
        calls["n"] += 1
        if calls["n"] == 4:  # step 10, first partition: step 0 done, step 10 ordering half scored
            raise KeyboardInterrupt
        return real(self, ctx, part)

    monkeypatch.setattr(Ordering, "score", dies_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        stage.run_audit(cfg_for(run))
    partial = read_results(run)
    assert 0 < len(partial) < 18
    with (run / "audit" / "results.jsonl").open("a") as f:
        f.write('{"experiment": "t", "step": 10, "bench')  # the line in flight when killed
    monkeypatch.setattr(Ordering, "score", real)
    stage.run_audit(cfg_for(run))
    assert strip(read_results(run)) == strip(read_results(reference))


def test_checkpoint_that_fails_to_load_keeps_earlier_rows(run):
    (run / "checkpoints" / "step_10" / "hf" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SpikeinError, match=r"cannot load checkpoint .*step_10") as e:
        stage.run_audit(cfg_for(run))
    assert "\n" not in str(e.value)
    assert {r["step"] for r in read_results(run)} == {0} and len(read_results(run)) == 9


@pytest.mark.parametrize("extra,match", [
    (["audit.renderer=cloze"], "renderer 'cloze' differs from the manifest's 'mcq'"),
    (["audit.ordering.shards=10"], "bench/hot has 9 items: audit.ordering.shards=10 leaves fewer than 2 items per shard; "
                                   "set audit.ordering.shards <= 4"),
    (["audit.ordering.test=permutation", "audit.ordering.min_p=0.001"], "permutations=4 cannot give p below 0.2"),
    (["audit.checkpoints=[5]"], "no checkpoint at step 5; have: 0, 10"),
    (["audit.detectors=[ordering,no_such_detector]"], "unknown detector 'no_such_detector'"),
])
def test_bad_settings_fail_with_one_line_and_keep_rows(run, extra, match):
    stage.run_audit(cfg_for(run, "audit.checkpoints=last"))
    rows = read_results(run)
    with pytest.raises(SpikeinError, match=match) as e:
        stage.run_audit(cfg_for(run, *extra))
    assert "\n" not in str(e.value)
    assert read_results(run) == rows


def test_cli_exit_code_and_message(run, capsys):
    from launch.cli import main

    (run / "checkpoints" / "index.json").unlink()
    assert main(["audit", f"run_dir={run}", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spikein: error: no checkpoints:") and "\n" not in err


def test_checkpoint_subset(run):
    stage.run_audit(cfg_for(run, "audit.checkpoints=[10]", "audit.detectors=[accuracy]"))
    assert {(r["step"], r["detector"]) for r in read_results(run)} == {(10, "accuracy")}


def test_watch_audits_checkpoints_as_they_land(run, monkeypatch):
    index_file = run / "checkpoints" / "index.json"
    full = json.loads(index_file.read_text())
    index_file.write_text(json.dumps({**full, "checkpoints": full["checkpoints"][:1], "finished": False}))
    polls = []

    def training_finishes(seconds):  # the trainer writes step 10 and ends while the audit sleeps
        polls.append(seconds)
        index_file.write_text(json.dumps(full))

    monkeypatch.setattr(targets, "_sleep", training_finishes)
    stage.run_audit(cfg_for(run, "audit.watch=true", "audit.poll_s=5", "audit.detectors=[accuracy]"))
    assert polls == [5.0]
    assert sorted(r["step"] for r in read_results(run)) == [0, 0, 0, 10, 10, 10]


def test_watch_gives_up_when_training_stalls(run, monkeypatch):
    index_file = run / "checkpoints" / "index.json"
    index_file.write_text(json.dumps({**json.loads(index_file.read_text()), "finished": False}))
    monkeypatch.setattr(targets, "_sleep", lambda s: None)
    with pytest.raises(SpikeinError, match="no new checkpoint for 20 s"):
        stage.run_audit(cfg_for(run, "audit.watch=true", "audit.poll_s=10", "audit.watch_idle_s=20",
                                "audit.detectors=[accuracy]"))
    assert len(read_results(run)) == 6  # both checkpoints audited before giving up


def test_public_model_whole_benchmark_uniform_null(tmp_path, template, monkeypatch):
    model_dir = tmp_path / "public"
    shutil.copytree(template / "checkpoints" / "step_10" / "hf", model_dir)
    items = make_items(9, seed=7, prefix="p")
    seen = {}

    def load_benchmark(name, spec, synthetic=None):
        seen["args"] = (name, spec.get("source"), synthetic is not None)
        return items

    fake = types.ModuleType("inject.benchmarks")
    fake.load_benchmark = load_benchmark
    monkeypatch.setitem(sys.modules, "inject.benchmarks", fake)
    out = tmp_path / "out"
    stage.run_audit(compose([f"run_dir={out}", *FAST, f"audit.model={model_dir}", "audit.benchmark=synth_people"]))
    rows = read_results(out)
    assert seen["args"] == ("synth_people", "synthetic", True)
    assert {r["detector"] for r in rows} == {"ordering", "option_shuffle", "accuracy"}
    for r in rows:
        assert (r["partition"], r["step"], r["count"], r["copies_seen"], r["model"]) == ("all", None, None, None, str(model_dir))
        assert r["n_items"] == 9
    shuffle = next(r for r in rows if r["detector"] == "option_shuffle")
    assert shuffle["calibrated"] is False and shuffle["null"] == "uniform" and shuffle["p"] is not None
    assert next(r for r in rows if r["detector"] == "accuracy")["p"] is None


def test_dry_run_writes_nothing(run, capsys):
    assert stage.run_audit(cfg_for(run, "dry_run=true")) == 0
    assert "bench [renderer mcq]: hot(count=4, 9 items)" in capsys.readouterr().out
    assert not (run / "audit").exists()


def test_results_store_drops_torn_line_and_rejects_corruption(tmp_path):
    path = RunDir(tmp_path).results
    path.parent.mkdir()
    row = {"model": "m", "step": 1, "benchmark": "b", "partition": "p", "detector": "d", "settings": {}}
    path.write_text(json.dumps(row) + "\n" + '{"model": "m", "st')
    store = ResultsStore(RunDir(tmp_path))
    assert store.rows == [row] and path.read_text() == json.dumps(row) + "\n"
    assert store.has(row) and not store.add(row)
    assert store.add({**row, "settings": {"shards": 2}})  # other settings: another row
    path.write_text('{"bad\n' + json.dumps(row) + "\n")
    with pytest.raises(SpikeinError, match="results.jsonl:1: corrupt results row"):
        read_rows(path)


def test_wandb_summary_logs_table_and_plots(run):
    from audit import wandb_plots

    stage.run_audit(cfg_for(run))

    class FakeRun:
        active = True  # the logger interface of core.wandb_log
        logged: list = []

        def log(self, data):
            self.logged.append(data)

    fake = FakeRun()
    rows = read_results(run)
    wandb_plots.log_checkpoint(fake, [r for r in rows if r["step"] == 10])
    wandb_plots.log_summary(fake, rows)
    assert fake.logged[0]["audit/step"] == 10 and "audit/ordering/bench/hot/log10_p" in fake.logged[0]
    keys = set(fake.logged[1])
    assert {"audit/results", "audit/plots/ordering_log10_p_vs_count", "audit/plots/ordering_log10_p_vs_step",
            "audit/plots/accuracy_statistic_vs_count"} <= keys


@pytest.mark.slow
def test_wandb_offline_run_is_written(run):
    stage.run_audit(cfg_for(run, "logger.mode=offline", "audit.checkpoints=last", "audit.detectors=[accuracy]"))
    runs = list((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


MMLU = SHARED_DATA / "benchmarks" / "mmlu" / "test"


@shared_data(MMLU)
def test_public_model_on_local_mmlu(tmp_path, template):
    out = tmp_path / "out"
    model_dir = template / "checkpoints" / "step_0" / "hf"
    stage.run_audit(compose([
        f"run_dir={out}", *FAST, f"audit.model={model_dir}", "audit.benchmark=mmlu", "audit.limit=12",
        "benchmarks=mmlu_local", f"benchmarks.mmlu.path={MMLU}",
    ]))
    rows = read_results(out)
    assert len(rows) == 3 and all(r["n_items"] == 12 and r["benchmark"] == "mmlu" for r in rows)
    assert all(r["p"] is None or 0 < r["p"] <= 1 for r in rows)


ALL_DETECTORS = ["ordering", "successor", "option_shuffle", "accuracy", "loss", "zlib", "min_k", "min_k_pp"]


@pytest.mark.slow
def test_data_parallel_audit_gives_the_same_rows(run, tmp_path):
    """Every detector's rows are identical (fp32, bit for bit) from 1 and 2 ranks: ranks score
    whole chunks, cut the same way whatever the world size (small chunks: both ranks work)."""
    from audit.worker import save_worker_config

    extra = ["audit.checkpoints=last", f"audit.detectors=[{','.join(ALL_DETECTORS)}]", "audit.chunk_tokens=600",
             "audit.successor.permutations=999", "audit.successor.block=40"]
    single = tmp_path / "single"
    shutil.copytree(run, single)
    stage.run_audit(cfg_for(single, *extra))
    save_worker_config(cfg_for(run, *extra))
    torchrun(["-m", "audit.worker", str(run)], tmp_path / "logs")
    parallel, reference = strip(read_results(run)), strip(read_results(single))
    assert len(parallel) == len(reference) == 3 * len(ALL_DETECTORS)
    key = lambda r: (r["detector"], r["partition"])  # noqa: E731
    assert sorted(parallel, key=key) == sorted(reference, key=key)


def test_every_detector_in_one_audit(run):
    dets = ["ordering", "successor", "option_shuffle", "accuracy", "loss", "zlib", "min_k", "min_k_pp"]
    cfg = cfg_for(run, f"audit.detectors=[{','.join(dets)}]", "audit.checkpoints=last", "audit.successor.permutations=999",
                  "audit.successor.block=40")
    assert stage.run_audit(cfg) == 0
    rows = read_results(run)
    assert {(r["partition"], r["detector"]) for r in rows} == {(p, d) for p in ("hot", "ctl0", "ctl1") for d in dets}
    for r in rows:
        assert all(k in r for k in ROW_FIELDS) and (r["p"] is None or 0 < r["p"] <= 1)
    succ = [r for r in rows if r["detector"] == "successor"]
    assert all(r["p_method"] in ("exact", "monte_carlo", "normal_approx") and r["settings"]["block"] == 40 for r in succ)
    assert all(0 < r["tokens_run"] < 2 * r["tokens_scored"] for r in succ)  # prefix once per item, 8 continuations
    mia = {d: [r for r in rows if r["detector"] == d] for d in ("loss", "zlib", "min_k", "min_k_pp")}
    assert all(r["auroc"] is not None and r["calibrated"] for rs in mia.values() for r in rs)
    # one forward pass per partition for the four: the first detector ran the model, the others reused it
    assert all(r["tokens_run"] > 0 for r in mia["loss"]) and all(r["tokens_run"] == 0 for r in mia["min_k_pp"])
    assert mia["min_k"][0]["settings"]["k"] == 0.2


def test_checkpoints_whose_hf_export_was_dropped_are_not_targets(tmp_path):
    """train.keep_hf=last leaves earlier index entries with "hf": null; the audit takes the
    checkpoints it can load and names the dropped ones when they are asked for by step."""
    index = {"checkpoints": [{"step": 10, "tokens_seen": 80, "hf": None, "ds": "step_10/ds"},
                             {"step": 20, "tokens_seen": 160, "hf": "step_20/hf", "ds": "step_20/ds"}]}
    found = targets.targets_of(tmp_path, CheckpointIndex.from_json(index))
    assert [t.step for t in found] == [20] and found[0].path == str(tmp_path / "checkpoints" / "step_20" / "hf")
    with pytest.raises(SpikeinError, match=r"no checkpoint at step 10; have: 20"):
        targets.select(found, [10])


@pytest.mark.parametrize("visible, device, watch, want", [
    (8, "auto", True, "cpu"),  # 8 training ranks on 8 GPUs: the watcher keeps off them
    (9, "auto", True, "cuda:8"),  # a spare GPU
    (8, "cuda", True, "cuda"),  # asked to share
    (8, "auto", False, "auto"),  # after training: every GPU is free
])
def test_watching_audit_never_shares_a_training_gpu_unless_asked(monkeypatch, tmp_path, visible, device, watch, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    cfg = compose([f"run_dir={tmp_path}", "experiment=pythia160m_mmlu", f"audit.device={device}",
                   f"audit.watch={str(watch).lower()}"])
    assert stage.audit_device(cfg) == want


def test_standalone_audit_starts_a_worker_per_rank_the_launcher_gives(run, monkeypatch):
    import core.workers.launch as launch

    started = []
    monkeypatch.setattr(launch, "launch_workers", lambda module, run_dir, lc, **kw: started.append((module, lc)))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert stage.run_audit(cfg_for(run, "launcher=torchrun", "launcher.nproc_per_node=2")) == 0
    assert [(m, int(lc.nproc_per_node)) for m, lc in started] == [("audit.worker", 2)]
    assert RunDir(run).audit_worker_config.exists()
