"""The ``generic`` benchmark source: any JSONL / JSON array / CSV / parquet file plus a field
mapping in config (``benchmarks.<name>.fields``), or a user function that turns one record
into the item's fields (``benchmarks.<name>.convert: module:function``).

Every record becomes a dict of raw item fields first; only then is the answer base checked
over the whole file (1-based answers read as 0-based would flip every kept row when
``skip_bad_rows`` drops the rest), and each dict becomes an Item or a ``file:line: reason``.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from core.errors import InputDataError, SpikeinError
from inject.benchmark_formats import (
    ANSWER_TYPES,
    BadRow,
    Row,
    as_list,
    csv_dict_records,
    get_field,
    json_array_records,
    jsonl_records,
    make_item,
    parquet_records,
    row,
    text_lines,
)

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
FIELD_KEYS = ("id", "question", "choices", "options", "answer", "answer_type", "context", "subject",
              "choice_text", "choice_label", "choices_delimiter")
ITEM_KEYS = ("id", "question", "choices", "labels", "answer", "answer_type", "context", "subject")
RawFields = dict[str, Any]  # ITEM_KEYS plus the source record


def unknown_key_message(what: str, unknown: list[str], known: tuple[str, ...] | list[str]) -> str:
    """``unknown <what> 'x' (did you mean 'y'?); known: ...`` for the first unknown key."""
    key = unknown[0]
    close = difflib.get_close_matches(key, known, n=2)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown {what} {key!r}{hint}; known: {', '.join(known)}"


def generic_rows(name: str, spec: Mapping) -> Iterator[Row]:
    path = Path(str(spec.get("path") or ""))
    to_fields = _converter(name, spec)
    records = list(_records(name, spec, path))
    answers = _answers(name, spec, path, len(records))
    raws: list[tuple[str, RawFields | str]] = []
    for index, (where, record) in enumerate(records):
        if isinstance(record, str):
            raws.append((where, record))
            continue
        try:
            raw = to_fields(record, index)
        except BadRow as e:
            raws.append((where, str(e)))
            continue
        if answers is not None:
            where = f"{where} (answer at {answers[0]}:{index + 1})"
            raw["answer"] = answers[1][index]
        raws.append((where, raw))
    check_answer_base(name, [fields for _, fields in raws if not isinstance(fields, str)])
    for where, fields in raws:
        yield (where, fields) if isinstance(fields, str) else row(where, lambda: item_of(fields))  # noqa: B023


def item_of(raw: RawFields) -> Any:
    return make_item(
        id=raw.get("id"), question=raw.get("question"), choices=raw["choices"], answer=raw.get("answer"),
        answer_type=raw.get("answer_type") or "index", labels=raw.get("labels") or (),
        context=raw.get("context"), subject=raw.get("subject"), record=raw["record"],
    )


def _records(name: str, spec: Mapping, path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    fmt = spec.get("format") or FORMATS.get(path.suffix.lower())
    readers = {
        "jsonl": lambda: jsonl_records(path),
        "json": lambda: json_array_records(path),
        "csv": lambda: csv_dict_records(path, spec.get("columns")),
        "parquet": lambda: parquet_records(path),
    }
    if fmt not in readers:
        raise InputDataError(f"benchmark {name}: unknown format {fmt!r} for {path}; "
                           f"set format to one of: {', '.join(readers)}")
    return readers[fmt]()


def _answers(name: str, spec: Mapping, path: Path, n_records: int) -> tuple[Path, list[str]] | None:
    """The answers of a line-aligned labels file (line i answers record i), if configured."""
    if not spec.get("answers_file"):
        return None
    file = Path(str(spec["answers_file"]))
    lines = [line.strip() for line in text_lines(file)]
    if len(lines) != n_records:
        raise InputDataError(f"benchmark {name}: answers_file {file} has {len(lines)} lines but {path} has "
                           f"{n_records} records (line i must answer record i)")
    return file, lines


# ---- record -> raw item fields --------------------------------------------------------


def _converter(name: str, spec: Mapping) -> Callable[[dict[str, Any], int], RawFields]:
    if spec.get("convert"):
        if spec.get("fields"):
            raise InputDataError(f"benchmark {name}: set either 'fields' or 'convert', not both")
        return _user_converter(name, str(spec["convert"]))
    fields = check_fields(name, spec.get("fields"), answers_file=bool(spec.get("answers_file")))
    return lambda record, index: mapped_fields(record, index, fields)


def check_fields(name: str, fields: Any, answers_file: bool = False) -> dict[str, Any]:
    """Check the mapping once, up front: typos fail here, not as one error per row."""
    if not isinstance(fields, Mapping):
        raise InputDataError(f"benchmark {name}: generic source needs a 'fields' mapping ({', '.join(FIELD_KEYS)}) "
                           "or a 'convert: module:function'")
    fields = {k: v for k, v in fields.items() if v not in (None, "")}
    unknown = sorted(set(fields) - set(FIELD_KEYS))
    if unknown:
        raise InputDataError(f"benchmark {name}: {unknown_key_message('fields key', unknown, FIELD_KEYS)}")
    fields.setdefault("answer_type", "index")
    kind = fields["answer_type"]
    if kind not in ANSWER_TYPES:
        raise InputDataError(f"benchmark {name}: unknown answer_type {kind!r}; choose one of: {', '.join(ANSWER_TYPES)}")
    if "question" not in fields:
        raise InputDataError(f"benchmark {name}: missing setting 'fields.question'")
    if bool(fields.get("choices")) == bool(fields.get("options")):
        raise InputDataError(f"benchmark {name}: fields needs exactly one of 'choices' (a list field) "
                           "or 'options' (a list of field names)")
    for problem in _field_conflicts(fields, answers_file):
        raise InputDataError(f"benchmark {name}: {problem}")
    return fields


def _field_conflicts(fields: Mapping[str, Any], answers_file: bool) -> Iterator[str]:
    kind, has_answer = fields["answer_type"], "answer" in fields
    options = fields.get("options")
    if options is not None and (not isinstance(options, (list, tuple)) or len(options) < 2):
        yield f"fields.options must list two or more field names (one per option), got {options!r}"
    answered_elsewhere = "answers_file" if answers_file else "answer_type=true_key" if kind == "true_key" else None
    if answered_elsewhere and has_answer:
        yield f"fields.answer is set but the answer comes from {answered_elsewhere}; remove one"
    if not answered_elsewhere and not has_answer:
        yield "missing setting 'fields.answer' (or set answers_file, or answer_type=true_key)"
    if answers_file and kind == "true_key":
        yield "answer_type=true_key takes the answer from the choices mapping, not from answers_file"
    for key in ("choice_text", "choice_label", "choices_delimiter"):
        if key in fields and "choices" not in fields:
            yield f"fields.{key} applies to fields.choices, which is not set"
    if kind == "true_key" and "choices" not in fields:
        yield "answer_type=true_key needs fields.choices (a mapping {option: truth value})"
    if kind == "label" and "choice_label" not in fields:
        yield "answer_type=label needs fields.choice_label (the label field inside each choice object)"


def mapped_fields(record: dict[str, Any], index: int, fields: Mapping[str, Any]) -> RawFields:
    raw: RawFields = {"id": get_field(record, fields["id"]) if "id" in fields else index,
                      "question": get_field(record, fields["question"]), "answer_type": fields["answer_type"],
                      "record": record}
    for key in ("context", "subject"):
        raw[key] = get_field(record, fields[key]) if key in fields else None
    if "options" in fields:
        raw["choices"] = [get_field(record, key) for key in fields["options"]]
    else:
        raw.update(_choices(get_field(record, fields["choices"]), fields))
    if "answer" in fields:
        raw["answer"] = get_field(record, fields["answer"])
    return raw


def _choices(value: Any, fields: Mapping[str, Any]) -> RawFields:
    """Choices (and labels, or a true_key answer) from the field ``fields.choices`` holds."""
    key = fields["choices"]
    if fields["answer_type"] == "true_key":
        return _true_key(value, key)
    if isinstance(value, Mapping):
        raise BadRow(f"field '{key}' is a mapping; for {{option: truth value}} set answer_type: true_key")
    choices = as_list(value, key, fields.get("choices_delimiter"))
    if "choice_text" not in fields:
        return {"choices": choices}
    if not all(isinstance(c, Mapping) for c in choices):
        raise BadRow(f"field '{key}' is not a list of objects (fields.choice_text is set)")
    out: RawFields = {"choices": [get_field(c, fields["choice_text"]) for c in choices]}
    if "choice_label" in fields:
        out["labels"] = [str(get_field(c, fields["choice_label"])).strip() for c in choices]
    return out


def _true_key(value: Any, key: str) -> RawFields:
    """TruthfulQA's ``mc1_targets``: {option text: 1 or 0}, exactly one option true."""
    if not isinstance(value, Mapping):
        raise BadRow(f"field '{key}' is not a mapping {{option: truth value}}")
    truth = []
    for option, mark in value.items():
        if isinstance(mark, bool) or mark in (0, 1):
            truth.append(bool(mark))
        else:
            raise BadRow(f"field '{key}': option {option!r} has truth value {mark!r}, expected true/false or 1/0")
    if sum(truth) != 1:
        raise BadRow(f"field '{key}' marks {sum(truth)} options true, expected exactly 1")
    return {"choices": list(value), "answer": truth.index(True), "answer_type": "index"}


# ---- the answer base ------------------------------------------------------------------


def check_answer_base(name: str, raws: list[RawFields]) -> None:
    """Refuse index answers whose base is evidently the other one, before any row is skipped.

    1-based read as 0-based: some answer equals the number of choices, none is 0.
    0-based read as 1-based: some answer is 0, none equals the number of choices.
    """
    pairs = [pair for raw in raws if (pair := _int_answer(raw)) is not None]
    zero = [(t, a == 0) for t, a, _ in pairs]
    top = [(t, a == k) for t, a, k in pairs]
    for kind, past, unused, other, what, low in (("index", top, zero, "index1", "the number of choices", "0"),
                                                 ("index1", zero, top, "index", "0", "the number of choices")):
        n_past = sum(hit for t, hit in past if t == kind)
        if n_past and not any(hit for t, hit in unused if t == kind):
            n = sum(t == kind for t, _ in past)
            raise InputDataError(
                f"benchmark {name}: answers look {'1' if kind == 'index' else '0'}-based: {n_past} of {n} rows "
                f"answer {what} and none answers {low}; set fields.answer_type={other} "
                f"(answer_type={kind} would shift every row it keeps)")


def _int_answer(raw: RawFields) -> tuple[str, int, int] | None:
    kind, answer, choices = raw.get("answer_type") or "index", raw.get("answer"), raw.get("choices")
    if kind not in ("index", "index1") or not isinstance(choices, (list, tuple)) or isinstance(answer, bool):
        return None
    try:
        return kind, int(float(str(answer).strip())), len(choices)
    except (ValueError, OverflowError):
        return None


# ---- a user function ------------------------------------------------------------------


def _user_converter(name: str, ref: str) -> Callable[[dict[str, Any], int], RawFields]:
    func = load_user_function(name, ref)

    def convert(record: dict[str, Any], index: int) -> RawFields:
        try:
            out = func(dict(record))
        except (Exception, SystemExit) as e:  # the user's code: any failure is this record's problem
            raise BadRow(f"convert {ref} failed: {type(e).__name__}: {e}") from None
        if not isinstance(out, Mapping):
            raise BadRow(f"convert {ref} returned {type(out).__name__}, expected a mapping of item fields")
        return _checked_output(name, ref, dict(out), record, index)

    return convert


def _checked_output(name: str, ref: str, out: dict[str, Any], record: dict[str, Any], index: int) -> RawFields:
    unknown = sorted(set(out) - set(ITEM_KEYS))
    if unknown:
        raise InputDataError(f"benchmark {name}: convert {ref} returned {unknown_key_message('item field', unknown, ITEM_KEYS)}")
    kind = out.get("answer_type") or "index"
    if kind not in ANSWER_TYPES or kind == "true_key":
        raise InputDataError(f"benchmark {name}: convert {ref} returned answer_type {kind!r}; "
                           f"choose one of: {', '.join(t for t in ANSWER_TYPES if t != 'true_key')}")
    if not isinstance(out.get("choices"), (list, tuple)):
        raise BadRow(f"convert {ref} returned no list of 'choices'")
    return {"id": index, **out, "answer_type": kind, "record": record}


def load_user_function(name: str, ref: str) -> Callable[[dict[str, Any]], Any]:
    """``module:function`` (found on the working directory, then sys.path) or ``file.py:function``.

    Imported only here, when a benchmark's config names it: spikein never runs user code otherwise.
    """
    module_name, _, func_name = ref.rpartition(":")
    if not module_name or not func_name:
        raise InputDataError(f"benchmark {name}: convert={ref!r}: expected 'module:function' or 'path/file.py:function'")
    try:
        module = _import_file(Path(module_name)) if module_name.endswith(".py") else _import_module(module_name)
    except SpikeinError:
        raise
    except (Exception, SystemExit) as e:  # the user's module: whatever it raises on import
        raise InputDataError(f"benchmark {name}: cannot import convert {ref!r}: {type(e).__name__}: {e}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InputDataError(f"benchmark {name}: convert {ref!r}: {module_name} has no function {func_name!r}")
    return func


def _import_file(path: Path):
    if not path.is_file():
        raise InputDataError(f"missing file: {path}")
    spec = importlib.util.spec_from_file_location(f"spikein_user_convert_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InputDataError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_module(module_name: str):
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(cwd)
