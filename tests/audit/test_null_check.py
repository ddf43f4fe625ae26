"""The null check (issue 22): controls re-tested in fresh random orders on the same checkpoint."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from audit_fixtures import add_checkpoints, copy_tokens, make_items, make_run_dir, one_thread, tiny_model, train_on  # noqa: E402,F401
from conftest import make_tokenizer

import audit.stage as stage
from audit import null_check
from audit.detectors import AuditContext, PartitionData, get_detector
from audit.engine import Engine, EngineSettings
from audit.results import quantile
from inject.items import permute_choices
from inject.manifest import load_manifest
from inject.render import encode_text
from inject.tokenizer import load_tokenizer
from launch.config import compose

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["audit.ordering.shards=3", "audit.ordering.permutations=4", "audit.option_shuffle.isolation_forest=false",
        "audit.context=256", "audit.stride=128", "audit.progress=false", "experiment_name=t", "logger.mode=disabled",
        "audit.detectors=[ordering,option_shuffle,accuracy]"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Three partitions (one injected) and random-init checkpoints 0 and 10, built once."""
    tmp_path = tmp_path_factory.mktemp("null_check")
    root, tok_dir = tmp_path / "run", tmp_path / "tok"
    parts = {"hot": (4, make_items(8, seed=1, prefix="h")), "ctl0": (0, make_items(8, seed=2, prefix="a")),
             "ctl1": (0, make_items(8, seed=3, prefix="b"))}
    make_tokenizer(tok_dir, [it for _, items in parts.values() for it in items])
    make_run_dir(root, tok_dir, parts)
    vocab = load_manifest(root).vocab_size
    add_checkpoints(root, {0: tiny_model(vocab, seed=0, hidden=32), 10: tiny_model(vocab, seed=1, hidden=32)}, tok_dir)
    return root


@pytest.fixture
def run(template, tmp_path):
    return Path(shutil.copytree(template, tmp_path / "run"))


def null_rows(run_dir):
    path = null_check.null_check_path(run_dir)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_audit_null_checks_each_control_of_each_order_detector_at_the_last_checkpoint(run):
    cfg = compose([f"run_dir={run}", *FAST, "audit.null_check.draws=2"])
    assert stage.run_audit(cfg) == 0
    rows = null_rows(run)
    assert {(r["step"], r["partition"], r["detector"]) for r in rows} == {
        (10, p, d) for p in ("ctl0", "ctl1") for d in ("ordering", "option_shuffle")}  # accuracy: no order null
    for r in rows:
        assert r["count"] == 0 and r["draws"] == 2 and len(r["fresh_log10_p"]) == 2
        assert all(lp <= 0 for lp in r["fresh_log10_p"])
    assert stage.run_audit(cfg) == 0 and null_rows(run) == rows  # done rows are kept, not redone
    assert stage.run_audit(compose([f"run_dir={run}", *FAST, "audit.null_check.draws=2",
                                    "audit.null_check.checkpoints=all"])) == 0
    assert {r["step"] for r in null_rows(run)} == {0, 10}


def test_null_check_off_writes_nothing_and_is_validated(run):
    from core.config import NullCheckConfig

    assert NullCheckConfig().draws == 0  # off unless a recipe asks (the demo: 5 draws)
    assert compose([]).audit.null_check.draws == 5
    assert stage.run_audit(compose([f"run_dir={run}", *FAST, "audit.null_check.draws=0"])) == 0
    assert not null_check.null_check_path(run).exists()
    from core.errors import SpikeinError
    with pytest.raises(SpikeinError, match="audit.null_check.checkpoints"):
        compose([f"run_dir={run}", *FAST, "audit.null_check.checkpoints=first"])


def test_fresh_draws_are_orders_of_the_same_items():
    items = make_items(6, seed=4)
    part = PartitionData("b", "x0", 0, items)
    rng = np.random.default_rng(0)
    fresh = get_detector("option_shuffle", {"isolation_forest": False, "seed": 1}).fresh_draw(part, rng)
    for old, new in zip(items, fresh.items):
        assert sorted(new.choices) == sorted(old.choices) and new.choices[new.answer] == old.choices[old.answer]
    assert any(new.choices != old.choices for old, new in zip(items, fresh.items))
    moved = get_detector("ordering", {"seed": 1}).fresh_draw(part, rng)
    assert sorted(it.id for it in moved.items) == sorted(it.id for it in items) and moved.items != items


def test_option_shuffle_uniform_null_is_exact_with_recorded_random_orders():
    det = get_detector("option_shuffle", {"isolation_forest": False, "seed": 1})
    raw = {"rank": [3.0, 20.0, 12.0], "n_above": [2, 19, 11], "n_orders": [24, 24, 24], "iforest_max": None}
    items = make_items(3, seed=5)
    shuffled = det.summarize([PartitionData("b", "x0", 0, items, option_order="shuffled")], [raw])[0]
    assert shuffled["null"] == "uniform" and shuffled["null_exact"] and shuffled["calibrated"]
    canonical = det.summarize([PartitionData("b", "x0", 0, items, option_order="canonical")], [raw])[0]
    public = det.summarize([PartitionData("b", "all", None, items, option_order="shuffled")], [raw])[0]
    assert not canonical["calibrated"] and not public["calibrated"] and not public["null_exact"]
    assert shuffled["p"] == canonical["p"]  # the label changes, never the number


@pytest.mark.slow
def test_a_control_whose_recorded_order_leaked_stands_out_from_fresh_draws(tmp_path):
    """Planted leak: a model trained on one control in its recorded option orders. The null
    check's fresh orders give that control ordinary p-values; its recorded orders do not."""
    leaked, clean = make_items(16, seed=31, prefix="l"), make_items(16, seed=32, prefix="c")
    make_tokenizer(tmp_path, leaked + clean)
    tok = load_tokenizer(str(tmp_path))
    model = train_on(tiny_model(len(tok), seed=0), (copy_tokens(tok, leaked, "mcq") + [tok.eos_token_id]) * 3,
                     steps=250, lr=5e-3)
    ctx = AuditContext(Engine(model, EngineSettings(context=256, stride=128, progress=False)), tok, "mcq",
                       encode_text(tok, "\n\n"), None)
    det = get_detector("option_shuffle", {"isolation_forest": False, "seed": 1})
    for items, leak in ((leaked, True), (clean, False)):
        part = PartitionData("b", "x0", 0, items, option_order="shuffled")
        observed = det.summarize([part], [det.score(ctx, part)])[0]["log10_p"]
        fresh = null_check.fresh_log10_ps(det, ctx, [part], [det.score(ctx, part)], draws=6, seed=3)["x0"]
        q = quantile(observed, fresh)
        if leak:
            assert observed < -4 and min(fresh) > -2 and q == pytest.approx(1 / 7)
        else:
            assert observed > -2 and min(fresh) > -2.5


def test_rescoring_a_fresh_option_order_ranks_it_as_its_own_score_among_all_orders(tmp_path):
    """A fresh option order is one of the 24 orders already scored: re-testing it gives its
    midrank among the recorded order's scores (the tested order's row position does not matter)."""
    items = make_items(5, seed=7)
    make_tokenizer(tmp_path, items)
    tok = load_tokenizer(str(tmp_path))
    ctx = AuditContext(Engine(tiny_model(len(tok), seed=2, hidden=32), EngineSettings(context=256, stride=128,
                       progress=False)), tok, "mcq", encode_text(tok, "\n\n"), None)
    det = get_detector("option_shuffle", {"isolation_forest": False, "seed": 1})
    from audit.sequences import option_group, option_orders
    from audit.stats import midrank_of_first
    orders = option_orders(4, 5, 24, np.random.default_rng(0))
    scores = ctx.scorer.score_groups([option_group(tok, it, orders, None) for it in items])
    rng = np.random.default_rng(5)
    picks = [int(rng.integers(24)) for _ in items]
    fresh = PartitionData("b", "x0", 0, [permute_choices(it, orders[j]) for it, j in zip(items, picks)])
    ranks = det.score(ctx, fresh)["rank"]
    expect = [midrank_of_first(np.r_[s[j], np.delete(s, j)]) for s, j in zip(scores, picks)]
    assert ranks == pytest.approx(expect)


@pytest.mark.slow
def test_null_check_rows_do_not_depend_on_how_many_ranks_computed_them(run, tmp_path):
    from torchrun import torchrun

    from audit.worker import save_worker_config

    single = tmp_path / "single"
    shutil.copytree(run, single)
    extra = ["audit.checkpoints=last", "audit.null_check.draws=2", "audit.detectors=[ordering,option_shuffle]"]
    assert stage.run_audit(compose([f"run_dir={single}", *FAST, *extra])) == 0
    save_worker_config(compose([f"run_dir={run}", *FAST, *extra]))
    torchrun(["-m", "audit.worker", str(run)], tmp_path / "logs")
    parallel, reference = null_rows(run), null_rows(single)
    assert len(parallel) == len(reference) == 4
    for a, b in zip(parallel, reference):
        assert {k: v for k, v in a.items() if k != "fresh_log10_p"} == {k: v for k, v in b.items() if k != "fresh_log10_p"}
        assert a["fresh_log10_p"] == pytest.approx(b["fresh_log10_p"], abs=1e-4)
