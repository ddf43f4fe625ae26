"""The generic source on files shaped like real releases (each written here): JSON arrays,
choice objects, line-aligned label files, 1-based answers, {option: truth} mappings,
delimited list cells, a user function; misspelt settings; skip_bad_rows never remaps a row."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.errors import SpikeinError
from inject.benchmarks import load_benchmark


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def generic(path: Path, **spec) -> dict:
    return {"source": "generic", "path": str(path), **spec}


# ---- JSON array ---------------------------------------------------------------------


def test_json_array_file_names_the_line_of_each_record(tmp_path):
    rows = [{"q": "One?", "opts": ["a", "b"], "gold": 1}, {"q": "Two?", "opts": ["c", "d"], "gold": 0}]
    path = tmp_path / "sciq.json"
    path.write_text(json.dumps(rows, indent=2))  # records start on lines 2 and 10
    fields = {"question": "q", "choices": "opts", "answer": "gold"}
    items = load_benchmark("b", generic(path, fields=fields))
    assert [(it.question, it.choices, it.answer) for it in items] == [("One?", ("a", "b"), 1), ("Two?", ("c", "d"), 0)]
    assert items[1].record == rows[1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows[:1] + [{**rows[1], "gold": 5}], indent=2))
    with pytest.raises(SpikeinError, match=rf"^{bad}:10: answer 5 out of range for 2 choices$"):
        load_benchmark("b", generic(bad, fields=fields))
    (tmp_path / "obj.json").write_text(json.dumps({"data": rows}))
    with pytest.raises(SpikeinError, match=r"obj\.json: expected a JSON array of records \(the top level is an object with keys: data\)"):
        load_benchmark("b", generic(tmp_path / "obj.json", fields=fields))
    (tmp_path / "torn.json").write_text('[\n{"q": "One?"},\n{"q": \n')
    with pytest.raises(SpikeinError, match=r"torn\.json:4: unparseable JSON"):
        load_benchmark("b", generic(tmp_path / "torn.json", fields=fields))


# ---- choices as a list of objects -------------------------------------------------------

OBJ = {"id": "c1", "q": "Where?", "choices": [{"label": "A", "text": "go to jail"}, {"label": "B", "text": "go home"}],
       "key": "B"}


def test_choice_objects_name_the_text_and_label_fields(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [OBJ])
    fields = {"id": "id", "question": "q", "choices": "choices", "choice_text": "text",
              "choice_label": "label", "answer": "key", "answer_type": "label"}
    (item,) = load_benchmark("c", generic(path, fields=fields))
    assert item.choices == ("go to jail", "go home") and item.answer == 1


def test_choice_objects_are_never_stringified_into_the_stream(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{**OBJ, "key": 0}])
    with pytest.raises(SpikeinError, match=r"c\.jsonl:1: choice 1 is a mapping, not text .*fields\.choice_text"):
        load_benchmark("c", generic(path, fields={"question": "q", "choices": "choices", "answer": "key"}))
    with pytest.raises(SpikeinError, match="answer_type=label needs fields.choice_label"):
        load_benchmark("c", generic(path, fields={"question": "q", "choices": "choices", "choice_text": "text",
                                                  "answer": "key", "answer_type": "label"}))


# ---- labels in a line-aligned file; 1-based answers ------------------------------------

PIQA = [{"goal": f"Goal {i}", "sol1": f"first {i}", "sol2": f"second {i}"} for i in range(4)]


def test_labels_file_answers_record_i_on_line_i(tmp_path):
    data = write_jsonl(tmp_path / "dev.jsonl", PIQA)
    labels = tmp_path / "dev-labels.lst"
    labels.write_text("1\n0\n0\n1\n")
    fields = {"question": "goal", "options": ["sol1", "sol2"]}
    items = load_benchmark("piqa", generic(data, answers_file=str(labels), fields=fields))
    assert [it.answer for it in items] == [1, 0, 0, 1]
    assert items[3].choices[items[3].answer] == "second 3"
    labels.write_text("1\n0\n0\n")
    with pytest.raises(SpikeinError, match=r"answers_file .*dev-labels\.lst has 3 lines but .*dev\.jsonl has 4 records"):
        load_benchmark("piqa", generic(data, answers_file=str(labels), fields=fields))
    labels.write_text("1\n0\nx\n1\n")
    with pytest.raises(SpikeinError, match=r"dev\.jsonl:3 \(answer at .*dev-labels\.lst:3\): answer 'x' is not an index"):
        load_benchmark("piqa", generic(data, answers_file=str(labels), fields=fields))
    with pytest.raises(SpikeinError, match="fields.answer is set but the answer comes from answers_file"):
        load_benchmark("piqa", generic(data, answers_file=str(labels), fields={**fields, "answer": "goal"}))


WINO = [{"sentence": f"S{i} _ x.", "option1": f"a{i}", "option2": f"b{i}", "answer": "12"[i % 2]} for i in range(10)]


def test_one_based_answers_as_digit_strings(tmp_path):
    path = write_jsonl(tmp_path / "wino.jsonl", WINO)
    fields = {"question": "sentence", "options": ["option1", "option2"], "answer": "answer", "answer_type": "index1"}
    items = load_benchmark("wino", generic(path, fields=fields))
    assert [it.choices[it.answer] for it in items] == [f"{'ab'[i % 2]}{i}" for i in range(10)]


@pytest.mark.parametrize("skip", [False, True])
def test_one_based_answers_read_as_zero_based_are_refused_even_when_skipping(tmp_path, skip):
    # the reported defect: skip_bad_rows dropped every "2" (out of range) and kept every "1" as option 2
    path = write_jsonl(tmp_path / "wino.jsonl", WINO)
    fields = {"question": "sentence", "options": ["option1", "option2"], "answer": "answer"}
    with pytest.raises(SpikeinError, match=r"benchmark wino: answers look 1-based: 5 of 10 rows answer the number "
                                           r"of choices and none answers 0; set fields\.answer_type=index1"):
        load_benchmark("wino", generic(path, fields=fields, skip_bad_rows=skip))


def test_zero_based_answers_read_as_one_based_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{**r, "answer": "01"[i % 2]} for i, r in enumerate(WINO)])
    fields = {"question": "sentence", "options": ["option1", "option2"], "answer": "answer", "answer_type": "index1"}
    with pytest.raises(SpikeinError, match=r"answers look 0-based: 5 of 10 rows answer 0 .*answer_type=index\b"):
        load_benchmark("p", generic(path, fields=fields, skip_bad_rows=True))


def test_skip_bad_rows_keeps_rows_exactly_as_without_it(tmp_path, capsys):
    rows = [*WINO[:4], {**WINO[4], "answer": "3"}, {**WINO[5], "option2": ""}, *WINO[6:]]
    path = write_jsonl(tmp_path / "wino.jsonl", rows)
    fields = {"question": "sentence", "options": ["option1", "option2"], "answer": "answer", "answer_type": "index1"}
    kept = load_benchmark("wino", generic(path, fields=fields, skip_bad_rows=True))
    assert "skipped 2 bad rows" in capsys.readouterr().err
    good = load_benchmark("wino", generic(write_jsonl(tmp_path / "good.jsonl", WINO), fields=fields))
    assert [(it.id, it.choices, it.answer) for it in kept] == [
        (it.id, it.choices, it.answer) for it in good if it.id not in ("4", "5")]


# ---- options as the keys of a mapping to truth values -----------------------------------

TQA = [{"question": "What happens if you eat watermelon seeds?",
        "mc1_targets": {"Nothing happens": 1, "You grow watermelons": 0, "You die": 0}},
       {"question": "Is the earth flat?", "mc1_targets": {"Yes": 0, "No": 1}}]


def test_truthfulqa_mc1_targets_mapping(tmp_path):
    path = tmp_path / "mc_task.json"
    path.write_text(json.dumps(TQA, indent=1))
    fields = {"question": "question", "choices": "mc1_targets", "answer_type": "true_key"}
    items = load_benchmark("tqa", generic(path, fields=fields))
    assert items[0].choices == ("Nothing happens", "You grow watermelons", "You die") and items[0].answer == 0
    assert items[1].choices == ("Yes", "No") and items[1].answer == 1
    two_true = tmp_path / "two.json"
    two_true.write_text(json.dumps([{**TQA[1], "mc1_targets": {"Yes": 1, "No": 1}}]))
    with pytest.raises(SpikeinError, match=r"two\.json:1: field 'mc1_targets' marks 2 options true, expected exactly 1"):
        load_benchmark("tqa", generic(two_true, fields=fields))
    with pytest.raises(SpikeinError, match=r"mc_task\.json:2: field 'mc1_targets' is a mapping; .*answer_type: true_key"):
        load_benchmark("tqa", generic(path, fields={"question": "question", "choices": "mc1_targets", "answer": "question"}))


# ---- list fields as delimited strings in a CSV column ----------------------------------


def test_delimited_and_python_list_cells_in_csv(tmp_path):
    path = tmp_path / "b.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["q", "opts", "gold"])
        w.writerow(["Capital?", "Rome | Paris | Oslo", "Paris"])
        w.writerow(["Sum, really?", "4|5", "4"])
    fields = {"question": "q", "choices": "opts", "choices_delimiter": "|", "answer": "gold", "answer_type": "text"}
    items = load_benchmark("b", generic(path, fields=fields))
    assert [(it.choices, it.answer) for it in items] == [(("Rome", "Paris", "Oslo"), 1), (("4", "5"), 0)]
    pandas_style = tmp_path / "p.csv"
    pandas_style.write_text("q,opts,gold\nCapital?,\"['Rome', 'Paris']\",1\n")  # str(list), as pandas writes it
    (item,) = load_benchmark("p", generic(pandas_style, fields={"question": "q", "choices": "opts", "answer": "gold"}))
    assert item.choices == ("Rome", "Paris") and item.answer == 1


# ---- a user function ---------------------------------------------------------------------

CONVERT = '''
def to_item(record):
    if record["kind"] == "broken":
        raise KeyError("stem")
    return {"id": record["n"], "question": record["text"].split("?")[0] + "?",
            "choices": record["text"].split("?")[1].split(";"), "answer": record["correct"], "answer_type": "text"}

def typo(record):
    return {"questoin": record["text"], "choices": ["a", "b"], "answer": 0}
'''


def test_user_function_from_config(tmp_path, monkeypatch):
    (tmp_path / "my_bench_convert.py").write_text(CONVERT)
    rows = [{"n": 7, "kind": "ok", "text": "Red or blue?red;blue", "correct": "blue"},
            {"n": 8, "kind": "broken", "text": "", "correct": ""}]
    path = write_jsonl(tmp_path / "odd.jsonl", rows)
    by_file = generic(path, convert=f"{tmp_path / 'my_bench_convert.py'}:to_item")
    with pytest.raises(SpikeinError, match=r"odd\.jsonl:2: convert .*:to_item failed: KeyError: 'stem'"):
        load_benchmark("odd", by_file)
    (item,) = load_benchmark("odd", {**by_file, "skip_bad_rows": True})
    assert (item.id, item.question, item.choices, item.answer) == ("7", "Red or blue?", ("red", "blue"), 1)
    monkeypatch.chdir(tmp_path)  # module:function is found on the working directory
    (item,) = load_benchmark("odd", generic(path, convert="my_bench_convert:to_item", skip_bad_rows=True))
    assert item.choices == ("red", "blue")
    with pytest.raises(SpikeinError, match=r"returned unknown item field 'questoin' \(did you mean 'question'\?\)"):
        load_benchmark("odd", generic(path, convert="my_bench_convert:typo"))
    with pytest.raises(SpikeinError, match="cannot import convert 'no_such_module:f': ModuleNotFoundError"):
        load_benchmark("odd", generic(path, convert="no_such_module:f"))
    with pytest.raises(SpikeinError, match="my_bench_convert has no function 'nope'"):
        load_benchmark("odd", generic(path, convert="my_bench_convert:nope"))


def test_user_module_is_not_imported_unless_named(tmp_path, monkeypatch):
    (tmp_path / "sitecustom_trap.py").write_text("raise SystemExit('user code ran')\n")
    monkeypatch.chdir(tmp_path)
    path = write_jsonl(tmp_path / "b.jsonl", [{"q": "Q?", "opts": ["a", "b"], "gold": 0}])
    load_benchmark("b", generic(path, fields={"question": "q", "choices": "opts", "answer": "gold"}))
    with pytest.raises(SpikeinError, match="cannot import convert 'sitecustom_trap:f': SystemExit: user code ran"):
        load_benchmark("b", generic(path, convert="sitecustom_trap:f"))


# ---- misspelt settings --------------------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ({"source": "generic", "path": "x.jsonl", "fromat": "csv"},
     "benchmark b: unknown setting for source=generic 'fromat' (did you mean 'format'?); known: source, skip_bad_rows, "
     "inject, path, format, columns, fields, answers_file, convert"),
    ({"source": "arc_jsonl", "path": "x.jsonl", "skip_bad_row": True},
     "benchmark b: unknown setting for source=arc_jsonl 'skip_bad_row' (did you mean 'skip_bad_rows'?); "
     "known: source, skip_bad_rows, inject, path"),
    ({"source": "generic", "path": "x.jsonl", "fields": {"question": "q", "choice": "c", "answer": "a"}},
     "benchmark b: unknown fields key 'choice' (did you mean 'choices' or 'choice_text'?); known: id, question, "),
])
def test_misspelt_settings_are_refused_with_alternatives(spec, message):
    with pytest.raises(SpikeinError) as e:
        load_benchmark("b", spec)
    assert str(e.value).startswith(message)


def test_options_must_be_a_list_of_field_names():
    spec = {"source": "generic", "path": "x.jsonl", "fields": {"question": "q", "options": "abc", "answer": "a"}}
    with pytest.raises(SpikeinError, match=r"fields\.options must list two or more field names .*got 'abc'"):
        load_benchmark("b", spec)  # a string would be read as the fields 'a', 'b', 'c'
