"""What a published option order gives away: the gold answer parked at one position
(warned at inject and audit time), structured option orders in the option-shuffle row,
scenario a's tie rule, and the ordering test's two-items-per-shard floor."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from audit_fixtures import make_items, make_run_dir  # noqa: E402
from conftest import SHARED_DATA, make_tokenizer, shared_data  # noqa: E402

from audit.detectors import PartitionData, get_detector
from audit.stats import uniform_rank_test
from core.errors import SpikeinError
from inject.benchmark_checks import answer_position_warning, is_templated, option_structure, option_structures
from inject.items import Item

ARC_EASY = SHARED_DATA / "benchmarks" / "arc_easy" / "ARC-Easy-Test.jsonl"
MMLU = SHARED_DATA / "benchmarks" / "mmlu" / "test"


def answered(answers, k: int = 4) -> list[Item]:
    return [Item(id=str(i), question=f"Q{i}?", choices=tuple(f"o{i}{j}" for j in range(k)), answer=int(a))
            for i, a in enumerate(answers)]


# ---- the gold answer at one position ---------------------------------------------------


def test_sciq_style_answer_always_a_is_flagged():
    message = answer_position_warning("sciq", answered([0] * 1000))
    assert message == ("benchmark sciq: the gold answer is option A for 1000 of 1000 items (100%, 25% by chance): "
                       "always answering A scores 1.00 and the original option order is special for any model; "
                       "set inject.option_order=shuffled")


def test_clean_answer_positions_are_not_flagged_beyond_nominal():
    rng = np.random.default_rng(0)
    for k, n, trials in ((4, 100, 300), (2, 100, 300), (5, 40, 300), (4, 14042, 10)):
        flagged = sum(answer_position_warning("b", answered(rng.integers(k, size=n), k)) is not None
                      for _ in range(trials))
        assert flagged == 0, (k, n)  # nominal rate is below 1e-3 per benchmark


def test_planted_position_bias_is_found_relative_to_chance():
    rng = np.random.default_rng(1)
    biased = np.where(rng.random(300) < 0.75, 2, rng.integers(4, size=300))  # ~81% at C
    assert "option C for" in answer_position_warning("b", answered(biased))
    assert answer_position_warning("w", answered(np.where(rng.random(400) < 0.6, 0, 1), 2)) is None  # 60% of 2
    assert "option B for" in answer_position_warning("w", answered(np.where(rng.random(400) < 0.9, 1, 0), 2))
    assert answer_position_warning("tiny", answered([0] * 9)) is None


def test_inject_warns_once_per_biased_benchmark(tmp_path, capsys):
    from inject.stage import plan_benchmarks
    from launch.config import compose

    # SciQ mapped as [correct_answer, distractor1..3]: the answer is always the first option
    rows = [{"q": f"Q{i}?", "correct": f"right {i}", "d1": f"wrong {i}", "d2": f"bad {i}", "d3": f"no {i}", "zero": 0}
            for i in range(60)]
    path = tmp_path / "sciq.json"
    path.write_text(json.dumps(rows))
    spec = f"{{source:generic,path:'{path}',fields:{{question:q,options:[correct,d1,d2,d3],answer:zero}}}}"
    cfg = compose(["benchmarks=none", f"+benchmarks.sciq={spec}", "inject.counts=[0,1]", "inject.partition_size=10",
                   "inject.option_order=canonical"])  # the demo recipe (composed by default) shuffles
    plan_benchmarks(cfg)
    err = capsys.readouterr().err
    assert err.count("warning: benchmark sciq: the gold answer is option A for 60 of 60 items (100%") == 1
    assert "set inject.option_order=shuffled" in err


def test_audit_warns_about_the_partitions_it_scores(tmp_path, capsys):
    import audit.stage as stage
    from launch.config import compose

    parts = {"hot": (2, answered([0] * 12)), "ctl": (0, answered([0] * 12))}
    make_tokenizer(tmp_path / "tok", [it for _, items in parts.values() for it in items])
    run, _ = make_run_dir(tmp_path / "run", tmp_path / "tok", parts)
    cfg = compose([f"run_dir={run}", "dry_run=true", "audit.ordering.shards=3", "logger.mode=disabled"])
    assert stage.run_audit(cfg) == 0
    err = capsys.readouterr().err
    assert "audit: warning: benchmark bench: the gold answer is option A for 24 of 24 items" in err


# ---- the ordering test's shards ------------------------------------------------------------


def test_ordering_refuses_shards_of_one_item():
    ordering = get_detector("ordering", {"shards": 10, "seed": 0})
    ordering.check(PartitionData("b", "p", 4, make_items(20)))  # two items a shard
    with pytest.raises(SpikeinError, match=r"^partition b/p has 10 items: audit\.ordering\.shards=10 leaves fewer "
                                           r"than 2 items per shard; set audit\.ordering\.shards <= 5 "):
        ordering.check(PartitionData("b", "p", 4, make_items(10)))  # partition size = shards: p = 1 always
    with pytest.raises(SpikeinError, match="has 19 items: .*shards <= 9 "):
        ordering.check(PartitionData("b", "p", 4, make_items(19)))


# ---- option-shuffle: scenario a's ties, structured option orders -----------------------------


class PlannedScores:
    """A scorer whose per-item order scores are given (index 0 = the original order)."""

    def __init__(self, plan):
        self.plan = plan

    def score_groups(self, groups):
        return [np.asarray(p, dtype=float)[: len(g.continuations)] for p, g in zip(self.plan, groups)]


def test_scenario_a_counts_a_tie_with_the_best_as_the_original_being_the_maximum(tmp_path):
    items = make_items(3, k=3, seed=4)  # 3! = 6 orders each
    tok = make_tokenizer(tmp_path / "tok", items)
    plan = [[0, 0, -1, -1, -1, -1],  # the original ties with the best: counted, as Ni et al.'s code does
            [0, -1, -1, -2, -2, -3],  # the original is the best
            [-1, 0, -1, -1, -1, -1]]  # another order is better
    ctx = SimpleNamespace(scorer=PlannedScores(plan), tokenizer=tok, bos_id=None)
    shuffle = get_detector("option_shuffle", {"isolation_forest": False, "seed": 0})
    part = PartitionData("b", "p", None, items)
    raw = shuffle.score(ctx, part)
    assert raw["n_above"] == [0, 0, 1] and raw["rank"] == [1.5, 1.0, 4.0]
    assert shuffle.summarize([part], [raw])[0]["rate_a"] == pytest.approx(2 / 3)


def test_option_structure_kinds():
    assert option_structure(["a", "bb", "ccc", "dddd"]) == ["length_sorted"]
    assert option_structure(["long one", "mid", "x"]) == ["length_sorted"]
    assert option_structure(["ab", "cd", "ef"]) == []  # all one length: every order is alike
    assert option_structure(["3", "12", "40", "7"]) == []
    assert option_structure(["40 kg", "30 kg", "20 kg", "10 kg"]) == ["numbers_sorted"]
    assert option_structure(["$1,000", "$250", "$5"]) == ["length_sorted", "numbers_sorted"]
    assert option_structure(["2x", "0,1", "7"]) == []  # not numbers
    assert option_structure(["red", "green", "All of the above"]) == ["length_sorted", "above_option"]
    assert option_structure(["blue", "grey", "none of these", "pink"]) == ["above_option"]


def structured_partition(n_plain: int, n_sorted: int, seed: int = 0) -> tuple[PartitionData, dict]:
    """Items whose options are length-sorted (a length-loving model ranks them first) and
    random ones (uniform ranks): the structure alone makes the uniform null reject."""
    rng = np.random.default_rng(seed)
    plain = [it for it in make_items(4 * n_plain, seed=seed) if not option_structure(it.choices)][:n_plain]
    sorted_items = [Item(id=f"s{i}", question=f"Q{i}?", choices=("a", "bb b", "ccc cc", "dddd dddd"), answer=0)
                    for i in range(n_sorted)]
    items = plain + sorted_items
    raw = {"rank": [float(r) for r in rng.integers(1, 25, size=n_plain)] + [1.0] * n_sorted,
           "n_orders": [24] * len(items), "n_above": [0] * len(items), "iforest_max": None}
    return PartitionData("arc", "all", None, items), raw


def test_structured_items_are_counted_and_the_p_value_is_given_without_them():
    part, raw = structured_partition(n_plain=160, n_sorted=40)
    (row,) = get_detector("option_shuffle", {"isolation_forest": False, "seed": 0}).summarize([part], [raw])
    assert row["structured_items"] == 40
    # the 40 sorted items share one option set: a template too
    assert row["structure"] == {"length_sorted": 40, "numbers_sorted": 0, "above_option": 0, "template": 40,
                                "true_false": 0, "statements": 0}
    assert row["templated_items"] == 40 and row["p_untemplated"] == row["p_unstructured"]
    assert row["p"] < 1e-3 and row["p_unstructured"] > 0.01
    expected = uniform_rank_test(np.asarray(raw["rank"][:160]), np.asarray(raw["n_orders"][:160]))
    assert row["p_unstructured"] == pytest.approx(expected.p, rel=1e-12)


def test_structure_with_controls_filters_both_sides():
    part, raw = structured_partition(n_plain=30, n_sorted=10, seed=1)
    ctl, ctl_raw = structured_partition(n_plain=30, n_sorted=10, seed=2)
    parts = [PartitionData("arc", "x4", 4, part.items), PartitionData("arc", "ctl", 0, ctl.items)]
    row, _ = get_detector("option_shuffle", {"isolation_forest": False, "seed": 0}).summarize(parts, [raw, ctl_raw])
    assert row["calibrated"] and row["structured_items"] == 10 and row["p_unstructured"] is not None


@shared_data(ARC_EASY)  # skipped without ../shared/data; under $CI a failure
def test_arc_easy_option_orders_are_often_length_sorted():
    from inject.benchmarks import load_benchmark

    items = load_benchmark("arc_easy", {"source": "arc_jsonl", "path": str(ARC_EASY)})[:200]
    kinds = [option_structure(it.choices) for it in items]
    # 88 items list options in length order, 2 of them with all options the same length (no order)
    assert sum("length_sorted" in k for k in kinds) == 86
    assert sum("numbers_sorted" in k for k in kinds) == 2 and sum(bool(k) for k in kinds) == 87
    raw = {"rank": [12.5] * 200, "n_orders": [24] * 200, "n_above": [1] * 200, "iforest_max": None}
    (row,) = get_detector("option_shuffle", {"isolation_forest": False, "seed": 0}).summarize(
        [PartitionData("arc_easy", "all", None, items)], [raw])
    assert row["structured_items"] == 87 and row["structure"]["length_sorted"] == 86


# ---- templates: option sets that recur across items ----------------------------------------


def test_template_kinds():
    tf = ("True, True", "False, False", "True, False", "False, True")
    items = [Item(id=str(i), question=f"Statement 1 | claim {i}. Statement 2 | other {i}.", choices=tf, answer=0)
             for i in range(3)]
    items += [Item(id="p", question="Is it?", choices=("True", "False"), answer=1),
              Item(id="x", question="Pick.", choices=("blue", "red", "green"), answer=0),
              Item(id="y", question="Pick.", choices=("blue", "red", "green"), answer=1)]  # twice: not yet a template
    kinds = option_structures(items)
    assert kinds[0] == ["template", "true_false", "statements"] and kinds[3] == ["length_sorted", "true_false"]
    assert kinds[4] == kinds[5] == []
    assert option_structures(items + [Item(id="z", question="Pick!", choices=("blue", "red", "green"), answer=2)])[4] \
        == ["template"]


@shared_data(MMLU)  # skipped without ../shared/data; under $CI a failure
def test_mmlu_abstract_algebra_template_is_detected_and_p_given_without_it():
    from inject.benchmarks import load_benchmark

    items = load_benchmark("mmlu", {"source": "mmlu_dir", "path": str(MMLU)})[:40]
    kinds = option_structures(items)
    statements = [i for i, it in enumerate(items) if it.question.startswith("Statement 1")]
    # 17 "Statement 1 | ... Statement 2 | ..." items, all listing True, True / False, False / True, False /
    # False, True; and three field-extension items listing 0, 4, 2, 6
    assert len(statements) == 17
    assert all(kinds[i][-3:] == ["template", "true_false", "statements"] for i in statements)
    assert sum("template" in k for k in kinds) == 20
    # a model that merely prefers the template's order: original order first on templated items only
    rng = np.random.default_rng(0)
    templated = np.array([is_templated(k) for k in kinds])
    ranks = np.where(templated, 1.0, rng.integers(1, 25, 40)).tolist()
    raw = {"rank": ranks, "n_orders": [24] * 40, "n_above": [0] * 40, "iforest_max": None}
    (row,) = get_detector("option_shuffle", {"isolation_forest": False, "seed": 0}).summarize(
        [PartitionData("mmlu", "all", None, items)], [raw])
    assert row["templated_items"] == 20 and row["structure"]["statements"] == 17
    assert row["log10_p"] < -5 and row["p_untemplated"] > 0.01
    expected = uniform_rank_test(np.asarray(ranks)[~templated], np.full(20, 24))
    assert row["p_untemplated"] == pytest.approx(expected.p, rel=1e-12)
