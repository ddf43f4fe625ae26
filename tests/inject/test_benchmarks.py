"""Benchmark loaders: real MMLU/ARC files, generic field mappings, hub schemas, bad rows."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA, require_shared, shared_data

from core.errors import SpikeinError
from inject.benchmarks import load_benchmark
from inject.items import LETTERS

REPO = Path(__file__).resolve().parents[2]
BENCH = SHARED_DATA / "benchmarks"
needs_data = shared_data(BENCH)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# ---- real files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mmlu():
    require_shared(BENCH)
    return load_benchmark("mmlu", {"source": "mmlu_dir", "path": str(BENCH / "mmlu" / "test")})


def test_mmlu_dir_counts_order_and_text(mmlu):
    assert len(mmlu) == 14042 - 106  # rows in the files less the exact duplicates merged at load (test_duplicates.py)
    subjects = list(dict.fromkeys(it.subject for it in mmlu))
    assert len(subjects) == 57 and subjects == sorted(subjects)
    first, last = mmlu[0], mmlu[-1]
    # abstract_algebra_test.csv line 1 / world_religions_test.csv last line, as in the files
    assert first.id == "abstract_algebra/0"
    assert first.question == "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q."
    assert first.choices == ("0", "4", "2", "6") and first.answer == 1  # letter B
    assert last.id == "world_religions/170" and last.subject == "world_religions"
    assert last.question == " The numen of Augustus referred to which of the following characteristics?"
    assert last.choices == ("Divine power", "Sexual virility", "Military acumen", "Philosophical intellect")
    assert last.answer == 0  # letter A
    assert all(it.record["answer"] == LETTERS[it.answer] for it in mmlu)
    assert sum(it.subject == "anatomy" for it in mmlu) == 135
    json.dumps([it.record for it in mmlu[:50]])


def test_mmlu_field_with_commas_and_newline_is_one_field(mmlu):
    # abstract_algebra_test.csv row 3 has an unquoted option and quoted "0,1" options
    assert mmlu[2].choices == ("0", "1", "0,1", "0,4") and mmlu[2].answer == 3


@needs_data
def test_arc_jsonl_real_files():
    chal = load_benchmark("arc", {"source": "arc_jsonl", "path": str(BENCH / "arc_challenge" / "ARC-Challenge-Test.jsonl")})
    assert len(chal) == 1172
    assert chal[0].id == "Mercury_7175875" and chal[0].answer == 2  # answerKey C
    assert chal[0].choices[2] == "Planetary days will become shorter."
    digit = next(it for it in chal if it.id == "NYSEDREGENTS_2008_8_34")  # labels 1-4, answerKey "2"
    assert digit.answer == 1 and digit.choices[1].startswith("Kinetic energy increases")
    assert {len(it.choices) for it in chal} == {3, 4, 5}
    easy = load_benchmark("arc_easy", {"source": "arc_jsonl", "path": str(BENCH / "arc_easy" / "ARC-Easy-Test.jsonl")})
    assert len(easy) == 2376


@needs_data
def test_local_config_files_compose_and_load(mmlu):
    from launch.config import compose

    arc = compose(["benchmarks=arc_local", f"benchmarks.arc_challenge.path={BENCH}/arc_challenge/ARC-Challenge-Test.jsonl",
                   f"benchmarks.arc_easy.path={BENCH}/arc_easy/ARC-Easy-Test.jsonl"]).benchmarks
    assert set(arc) == {"arc_challenge", "arc_easy"}
    assert len(load_benchmark("arc_challenge", arc["arc_challenge"])) == 1172  # the composed config's spec
    assert compose(["benchmarks=mmlu_local", f"benchmarks.mmlu.path={BENCH}/mmlu/test"]).benchmarks["mmlu"]["path"].endswith("mmlu/test")
    generic = compose(["benchmarks=generic_example",
                       f"benchmarks.mmlu_anatomy_generic.path={BENCH}/mmlu/test/anatomy_test.csv"]).benchmarks
    (name, spec), = generic.items()
    items = load_benchmark(name, spec)
    anatomy = [it for it in mmlu if it.subject == "anatomy"]
    assert [(it.question, it.choices, it.answer) for it in items] == [
        (it.question, it.choices, it.answer) for it in anatomy]
    assert items[0].id == "0" and items[0].record["answer"] == LETTERS[items[0].answer]


# ---- generic field mapping ----------------------------------------------------------

ROWS = [
    {"uid": "q1", "prompt": "Capital of France?", "opts": ["Rome", "Paris", "Oslo"], "gold": 1, "topic": "geo", "passage": "Europe."},
    {"uid": "q2", "prompt": "2+2?", "opts": ["4", "5"], "gold": 0, "topic": "math", "passage": ""},
]


def gold_value(row: dict, answer_type: str):
    return {"index": row["gold"], "letter": LETTERS[row["gold"]], "text": row["opts"][row["gold"]]}[answer_type]


def write_generic(tmp_path: Path, fmt: str, answer_type: str) -> Path:
    rows = [{**r, "gold": gold_value(r, answer_type)} for r in ROWS]
    if fmt == "jsonl":
        return write_jsonl(tmp_path / "b.jsonl", rows)
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
        return tmp_path / "b.parquet"
    import csv

    with (tmp_path / "b.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "opts": json.dumps(r["opts"])} for r in rows)  # list field as JSON in a cell
    return tmp_path / "b.csv"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("answer_type", ["index", "letter", "text"])
def test_generic_mapping(tmp_path, fmt, answer_type):
    path = write_generic(tmp_path, fmt, answer_type)
    fields = {"id": "uid", "question": "prompt", "choices": "opts", "answer": "gold",
              "answer_type": answer_type, "subject": "topic", "context": "passage"}
    items = load_benchmark("mine", {"source": "generic", "path": str(path), "fields": fields})
    assert [it.id for it in items] == ["q1", "q2"]
    assert items[0].choices == ("Rome", "Paris", "Oslo") and items[0].answer == 1
    assert items[1].choices == ("4", "5") and items[1].answer == 0
    assert items[0].subject == "geo" and items[0].context == "Europe." and items[1].context is None
    assert items[0].record["prompt"] == "Capital of France?"
    json.dumps([it.record for it in items])


def test_generic_options_fields_default_ids_and_explicit_format(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("q,a,b,c,ans\nWhich?,x,y,z,C\n\"Multi\nline, question\",p,q,r,a\n")
    items = load_benchmark("opt", {"source": "generic", "path": str(path), "format": "csv", "fields": {
        "question": "q", "options": ["a", "b", "c"], "answer": "ans", "answer_type": "letter"}})
    assert [it.id for it in items] == ["0", "1"]  # row index by default
    assert items[0].answer == 2 and items[1].question == "Multi\nline, question" and items[1].answer == 0


def test_generic_config_mistakes(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", ROWS)
    base = {"source": "generic", "path": str(path)}
    good = {"question": "prompt", "choices": "opts", "answer": "gold"}
    with pytest.raises(SpikeinError, match="unknown fields key.*answr"):
        load_benchmark("m", {**base, "fields": {**good, "answr": "gold"}})
    with pytest.raises(SpikeinError, match="exactly one of 'choices'"):
        load_benchmark("m", {**base, "fields": {**good, "options": ["a"]}})
    with pytest.raises(SpikeinError, match="answer_type 'number'.*index, index1, letter, text, label, true_key"):
        load_benchmark("m", {**base, "fields": {**good, "answer_type": "number"}})
    with pytest.raises(SpikeinError, match="unknown format 'xml'.*jsonl, json, csv, parquet"):
        load_benchmark("m", {**base, "format": "xml", "fields": good})
    with pytest.raises(SpikeinError, match=r"b\.jsonl:1: missing field 'question_text'"):
        load_benchmark("m", {**base, "fields": {**good, "question": "question_text"}})


# ---- hub schemas on local files (data_files) ----------------------------------------


def test_hub_schemas_on_local_files(tmp_path):
    mmlu_rows = [{"question": "Q0", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 3},
                 {"question": "Q1", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 0},
                 {"question": "Q2", "subject": "virology", "choices": ["a", "b", "c", "d"], "answer": 1}]
    pq.write_table(pa.Table.from_pylist(mmlu_rows), tmp_path / "mmlu.parquet")
    hub = {"source": "hub", "path": "cais/mmlu", "name": "all", "split": "test", "cache_dir": str(tmp_path / "c")}
    items = load_benchmark("mmlu", {**hub, "format": "mmlu", "data_files": str(tmp_path / "mmlu.parquet")})
    assert [it.id for it in items] == ["anatomy/0", "anatomy/1", "virology/0"]  # same ids as mmlu_dir
    assert [it.answer for it in items] == [3, 0, 1] and items[2].subject == "virology"

    arc_rows = [{"id": "A1", "question": "Why?", "choices": {"text": ["x", "y", "z"], "label": ["A", "B", "C"]}, "answerKey": "C"},
                {"id": "A2", "question": "How?", "choices": {"text": ["u", "v", "w", "t"], "label": ["1", "2", "3", "4"]}, "answerKey": "2"}]  # noqa: E501
    arc = write_jsonl(tmp_path / "arc.jsonl", arc_rows)
    items = load_benchmark("arc", {**hub, "format": "arc", "data_files": str(arc)})
    assert [(it.id, it.answer, it.choices[it.answer]) for it in items] == [("A1", 2, "z"), ("A2", 1, "v")]
    assert items[1].record == arc_rows[1]

    hs_rows = [{"ind": 24, "activity_label": "Roof shingle removal", "ctx": "A man is on a roof.",
                "endings": ["e0", "e1", "e2", "e3"], "label": "3", "split": "val"}]
    hs = write_jsonl(tmp_path / "hs.jsonl", hs_rows)
    (item,) = load_benchmark("hs", {**hub, "format": "hellaswag", "data_files": str(hs)})
    assert (item.id, item.question, item.subject, item.answer) == ("24", "A man is on a roof.", "Roof shingle removal", 3)
    json.dumps(item.record)

    unlabelled = write_jsonl(tmp_path / "hs_test.jsonl", [{**hs_rows[0], "label": ""}])
    with pytest.raises(SpikeinError, match=r"hs_test\.jsonl:row 1: missing answer"):
        load_benchmark("hs", {**hub, "format": "hellaswag", "data_files": str(unlabelled)})
    with pytest.raises(SpikeinError, match=r"^benchmarks\.x\.format=squad: choose one of: mmlu, arc, hellaswag$"):
        load_benchmark("x", {**hub, "format": "squad", "data_files": str(hs)})


def test_hub_unreachable_names_dataset(tmp_path):
    # tests run with HF_DATASETS_OFFLINE=1 (conftest): the hub is unreachable
    spec = {"source": "hub", "path": "cais/mmlu", "name": "all", "split": "test", "format": "mmlu",
            "cache_dir": str(tmp_path)}
    with pytest.raises(SpikeinError, match=r"cannot load hub dataset cais/mmlu\[all/test\]") as e:
        load_benchmark("mmlu", spec)
    assert "\n" not in str(e.value)


# ---- bad rows -----------------------------------------------------------------------

MMLU_OK = '"Which, of these?",a,b,"c\nc",d,A\n'


@pytest.mark.parametrize("bad_line, reason", [
    ("Q?,a,b,c,d,E", "answer 'E' out of range for 4 choices"),
    ("Q?,a,b,c,d,", "missing answer"),
    ("Q?,a,,c,d,B", "empty choice"),
    ("Q?,a,B", "expected 6 fields, got 3"),
    ("Q?,a,b,c,B", "expected 6 fields, got 5"),  # one option missing: was a 3-option item
    ("Q?,a,b,c,d,B,", "expected 6 fields, got 7"),  # trailing comma: was "missing answer"
    (",a,b,c,d,B", "missing question"),
])
def test_mmlu_bad_row_names_file_and_line(tmp_path, bad_line, reason):
    (tmp_path / "anatomy_test.csv").write_text(MMLU_OK + MMLU_OK + bad_line + "\n")
    with pytest.raises(SpikeinError) as e:
        load_benchmark("mmlu", {"source": "mmlu_dir", "path": str(tmp_path)})
    # two good records of two lines each, so the bad record starts on line 5
    assert str(e.value) == f"{tmp_path / 'anatomy_test.csv'}:5: {reason}"


ARC_OK = {"id": "x1", "question": {"stem": "S?", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "B"}


@pytest.mark.parametrize("bad, reason", [
    ("{not json", "unparseable JSON line"),
    ("[1, 2]", "not a JSON object"),
    ({**ARC_OK, "id": "x2", "answerKey": "E"}, "answerKey 'E' matches no choice label (A, B)"),
    ({k: v for k, v in ARC_OK.items() if k != "answerKey"} | {"id": "x2"}, "missing field 'answerKey'"),
    ({"id": "x2", "answerKey": "A"}, "missing field 'question.choices'"),
    (ARC_OK, "duplicate id 'x1' (first at "),
])
def test_arc_bad_row_names_file_and_line(tmp_path, bad, reason):
    path = write_jsonl(tmp_path / "arc.jsonl", [ARC_OK, "", bad])  # a blank line is not a record
    with pytest.raises(SpikeinError) as e:
        load_benchmark("arc", {"source": "arc_jsonl", "path": str(path)})
    assert str(e.value).startswith(f"{path}:3: {reason}")


def test_skip_bad_rows_counts_and_reports_first(tmp_path, capsys):
    x2 = {**ARC_OK, "id": "x2", "question": {**ARC_OK["question"], "stem": "T?"}}  # same question would be merged
    path = write_jsonl(tmp_path / "arc.jsonl", [ARC_OK, "{bad", x2, ARC_OK,
                                                {**ARC_OK, "id": "x3", "answerKey": "Z"}])
    spec = {"source": "arc_jsonl", "path": str(path)}
    items = load_benchmark("arc", spec, skip_bad_rows=True)
    assert [it.id for it in items] == ["x1", "x2"]
    err = capsys.readouterr().err.strip()
    assert err == f"benchmark arc: skipped 3 bad rows (first: {path}:2: unparseable JSON line (Expecting property name enclosed in double quotes))"  # noqa: E501
    # the spec's own setting wins over the caller's
    with pytest.raises(SpikeinError, match=r"arc\.jsonl:2: "):
        load_benchmark("arc", {**spec, "skip_bad_rows": False}, skip_bad_rows=True)
    assert len(load_benchmark("arc", {**spec, "skip_bad_rows": True})) == 2


def test_all_rows_bad_or_no_rows_is_an_error(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{", "{"])
    with pytest.raises(SpikeinError, match=r"benchmark arc: no items \(2 bad rows skipped\)"):
        load_benchmark("arc", {"source": "arc_jsonl", "path": str(bad), "skip_bad_rows": True})
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(SpikeinError, match="benchmark arc: no items$"):
        load_benchmark("arc", {"source": "arc_jsonl", "path": str(empty)})


def test_missing_paths_and_unknown_source(tmp_path):
    with pytest.raises(SpikeinError, match=f"missing directory: {tmp_path / 'nope'}"):
        load_benchmark("m", {"source": "mmlu_dir", "path": str(tmp_path / "nope")})
    with pytest.raises(SpikeinError, match="no \\*.csv files in"):
        load_benchmark("m", {"source": "mmlu_dir", "path": str(tmp_path)})
    with pytest.raises(SpikeinError, match=f"missing file: {tmp_path / 'a.jsonl'}"):
        load_benchmark("a", {"source": "arc_jsonl", "path": str(tmp_path / "a.jsonl")})
    with pytest.raises(SpikeinError, match="missing file: .*x.parquet"):
        load_benchmark("h", {"source": "hub", "format": "mmlu", "data_files": str(tmp_path / "x.parquet")})
    with pytest.raises(SpikeinError, match="missing setting 'path'"):
        load_benchmark("a", {"source": "arc_jsonl"})
    with pytest.raises(SpikeinError, match="unknown source 'csv'; choose one of: hub, mmlu_dir, arc_jsonl, generic, synthetic"):
        load_benchmark("a", {"source": "csv"})


def test_synthetic_delegates_to_world():
    synthetic = pytest.importorskip("inject.synthetic")
    world = synthetic.SyntheticWorld(seed=3, n_people=12, n_places=6, n_orgs=4)
    name = world.benchmark_names()[0]
    items = load_benchmark("s", {"source": "synthetic", "name": name},
                           synthetic={"seed": 3, "n_people": 12, "n_places": 6, "n_orgs": 4})
    assert items == world.benchmark(name) and items
    with pytest.raises(SpikeinError, match="unknown synthetic benchmark 'nope'"):
        load_benchmark("s", {"source": "synthetic", "name": "nope"}, synthetic={"seed": 3})
