"""Readers that turn each benchmark file format into rows of (location, Item or reason).

A reader never decides what to do with a bad record: it yields the reason as a string
next to the record's ``file:line`` and :func:`inject.benchmarks.load_benchmark` either
stops with it or skips and counts it. Only problems with the file as a whole (missing,
undecodable) raise :class:`SpikeinError` here.
"""
from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from core.errors import InputDataError
from inject.items import LETTERS, Item

Row = tuple[str, "Item | str"]  # (where, item) or (where, why it is bad)
ANSWER_TYPES = ("index", "index1", "letter", "text", "label", "true_key")
MMLU_FIELDS = 6  # question, A, B, C, D, answer letter


class BadRow(ValueError):
    """A record that cannot become an Item; the message is the one-line reason."""


def row(where: str, build: Callable[[], Item]) -> Row:
    """``build()`` called at once (so loop variables in its lambda are bound: B023 does not apply)."""
    try:
        return where, build()
    except BadRow as e:
        return where, str(e)


# ---- field access and answers -------------------------------------------------------


def get_field(record: Mapping[str, Any], key: str) -> Any:
    """``record[key]``, else a dotted path into nested mappings (``question.stem``)."""
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise BadRow(f"missing field '{key}'")
        node = node[part]
    return node


def as_list(value: Any, key: str, delimiter: str | None = None) -> list[Any]:
    """A list field; a CSV cell may hold it JSON-encoded (``["a", "b"]``), as a Python literal
    (``['a', 'b']``, as pandas writes lists) or, with ``delimiter``, as ``a|b``."""
    if isinstance(value, str) and delimiter:
        return [part.strip() for part in value.split(delimiter)]
    if isinstance(value, str):
        value = _literal_list(value)
    if not isinstance(value, (list, tuple)):
        raise BadRow(f"field '{key}' is not a list")
    return list(value)


def _literal_list(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if text.lstrip().startswith("["):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
    return text


def answer_index(value: Any, answer_type: str, choices: Sequence[str], labels: Sequence[str] = ()) -> int:
    """The 0-based answer for a raw answer of ``answer_type`` (index|index1|letter|text|label).

    ``index1`` is 1-based; a ``true_key`` answer arrives here already as a 0-based ``index``.
    """
    if value is None or str(value).strip() == "":
        raise BadRow("missing answer")
    if answer_type == "label":
        key = str(value).strip()
        if key not in labels:
            raise BadRow(f"answerKey {key!r} matches no choice label ({', '.join(labels)})")
        return list(labels).index(key)
    if answer_type == "text":
        if str(value) not in choices:
            raise BadRow(f"answer text {str(value)!r} is not among the choices")
        return list(choices).index(str(value))
    if answer_type == "letter":
        letter = str(value).strip().upper()
        if len(letter) != 1 or letter not in LETTERS:
            raise BadRow(f"answer {value!r} is not a letter")
        index = LETTERS.index(letter)
    else:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            index = int(str(value).strip()) - (answer_type == "index1")
        except ValueError:
            raise BadRow(f"answer {value!r} is not an index") from None
    if not 0 <= index < len(choices):
        base = " (1-based)" if answer_type == "index1" else ""
        raise BadRow(f"answer {value!r} out of range for {len(choices)} choices{base}")
    return index


def make_item(
    *, id: Any, question: Any, choices: Iterable[Any], answer: Any, answer_type: str,
    record: Mapping[str, Any], labels: Sequence[str] = (), context: Any = None, subject: Any = None,
) -> Item:
    """Build and check an Item; choice problems are reported before answer problems."""
    choices = list(choices)
    for i, c in enumerate(choices):
        if isinstance(c, (Mapping, list, tuple)):  # str() of it would go into the stream
            raise BadRow(f"choice {i + 1} is a {'mapping' if isinstance(c, Mapping) else 'list'}, not text "
                         "(for a list of objects set fields.choice_text to the text field inside each)")
    item = Item(
        id="" if id is None else str(id),
        question=None if question is None else str(question),  # type: ignore[arg-type]  # None: refused by problems()
        choices=tuple(None if c is None else str(c) for c in choices),  # type: ignore[misc]  # likewise
        answer=0,
        context=None if context in (None, "") else str(context),
        subject=None if subject in (None, "") else str(subject),
        record=dict(record),
    )
    problem = item.problems()
    if problem:
        raise BadRow(problem)
    return replace(item, answer=answer_index(answer, answer_type, item.choices, labels))


# ---- raw record readers -------------------------------------------------------------


def need_file(path: Path) -> Path:
    if not path.is_file():
        raise InputDataError(f"missing file: {path}")
    return path


def csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields); fields may span lines, so line_num is tracked."""
    try:
        with need_file(path).open(newline="", encoding="utf-8-sig") as f:
            reader, start = csv.reader(f), 1
            for fields in reader:
                if fields:
                    yield start, fields
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise InputDataError(f"{path}: not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise InputDataError(f"{path}:{reader.line_num}: unparseable CSV ({e})") from None


def jsonl_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    try:
        with need_file(path).open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    yield f"{path}:{lineno}", f"unparseable JSON line ({e.msg})"
                    continue
                yield f"{path}:{lineno}", record if isinstance(record, dict) else "not a JSON object"
    except UnicodeDecodeError as e:
        raise InputDataError(f"{path}: not UTF-8 text ({e.reason})") from None


_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, i: int) -> int:
    """The first position at or after ``i`` that is not JSON whitespace."""
    m = _SPACE.match(text, i)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def json_array_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """The records of a JSON array file, each named by the line its element starts on."""
    text = _read_text(path)
    decoder, lines = json.JSONDecoder(), _LineCounter(text)
    i = _skip_space(text, 0)
    if not text.startswith("[", i):
        raise InputDataError(f"{path}: expected a JSON array of records ({_top_level(text)})")
    i = _skip_space(text, i + 1)
    while not text.startswith("]", i):
        try:
            record, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise InputDataError(f"{path}:{e.lineno}: unparseable JSON ({e.msg})") from None
        yield f"{path}:{lines.at(i)}", record if isinstance(record, dict) else "not a JSON object"
        i = _skip_space(text, end)
        if text.startswith(",", i):
            i = _skip_space(text, i + 1)
        elif not text.startswith("]", i):
            raise InputDataError(f"{path}:{lines.at(i)}: unparseable JSON (expected ',' or ']')")


class _LineCounter:
    """Line numbers of increasing offsets, counting each newline once."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def at(self, offset: int) -> int:
        self.line += self.text.count("\n", self.pos, offset)
        self.pos = offset
        return self.line


def _top_level(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return f"unparseable at line {e.lineno}: {e.msg}"
    if isinstance(value, dict):
        return f"the top level is an object with keys: {', '.join(list(value)[:8])}"
    return f"the top level is a {type(value).__name__}"


def _read_text(path: Path) -> str:
    try:
        return need_file(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputDataError(f"{path}: not UTF-8 text ({e.reason})") from None


def text_lines(path: Path) -> list[str]:
    """The lines of a line-aligned file (one answer per line), trailing blank lines dropped."""
    lines = _read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def csv_dict_records(path: Path, columns: Sequence[str] | None) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """CSV rows as dicts keyed by the header row, or by ``columns`` for a header-less file."""
    header = list(columns) if columns else None
    for line, fields in csv_records(path):
        if header is None:
            header = fields
        elif len(fields) != len(header):
            yield f"{path}:{line}", f"{len(fields)} fields, expected {len(header)} ({', '.join(header)})"
        else:
            yield f"{path}:{line}", dict(zip(header, fields))


def parquet_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(need_file(path))
    except (OSError, ValueError) as e:
        raise InputDataError(f"{path}: unreadable parquet ({str(e).splitlines()[0]})") from None
    for i, record in enumerate(table.to_pylist()):
        yield f"{path}:row {i + 1}", jsonable(record)


def jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-serialisable copy (the ``raw`` renderer writes records as JSON)."""
    return json.loads(json.dumps(record, default=str, ensure_ascii=False))


# ---- MMLU directory and ARC JSONL ---------------------------------------------------


def _subject(csv_path: Path) -> str:
    """``high_school_physics_test.csv`` -> ``high_school_physics``."""
    return csv_path.stem.rsplit("_", 1)[0] if "_" in csv_path.stem else csv_path.stem


def mmlu_dir_rows(path: Path) -> Iterator[Row]:
    """Header-less ``question,A,B,C,D,answer-letter`` CSVs (exactly 6 fields a row), one per subject, subjects sorted."""
    if not path.is_dir():
        raise InputDataError(f"missing directory: {path}")
    files = sorted(path.glob("*.csv"), key=lambda p: (_subject(p), p.name))
    if not files:
        raise InputDataError(f"no *.csv files in {path}")
    for file in files:
        subject = _subject(file)
        for index, (line, fields) in enumerate(csv_records(file)):
            yield row(f"{file}:{line}", lambda: _mmlu_csv_item(subject, index, fields))  # noqa: B023


def _mmlu_csv_item(subject: str, index: int, fields: list[str]) -> Item:
    if len(fields) != MMLU_FIELDS:  # a missing option or a stray comma must not shift the columns
        raise BadRow(f"expected {MMLU_FIELDS} fields, got {len(fields)}")
    question, options, letter = fields[0], fields[1:-1], fields[-1]
    record = {"question": question, **dict(zip(LETTERS, options)), "answer": letter}
    return make_item(id=f"{subject}/{index}", question=question, choices=options, answer=letter,
                     answer_type="letter", subject=subject, record=record)


def arc_jsonl_rows(path: Path) -> Iterator[Row]:
    """ARC JSONL: ``{id, question: {stem, choices: [{text, label}]}, answerKey}``."""
    for where, record in jsonl_records(path):
        if isinstance(record, str):
            yield where, record
            continue
        yield row(where, lambda: _arc_jsonl_item(record))  # noqa: B023


def _arc_jsonl_item(record: dict[str, Any]) -> Item:
    choices = as_list(get_field(record, "question.choices"), "question.choices")
    if not all(isinstance(c, Mapping) for c in choices):
        raise BadRow("field 'question.choices' is not a list of {text, label}")
    return arc_item(record, get_field(record, "question.stem"),
                    [c.get("text") for c in choices], [str(c.get("label")) for c in choices])


def arc_item(record: dict[str, Any], question: Any, texts: list[Any], labels: list[str]) -> Item:
    """Shared by the JSONL and hub ARC schemas; labels are A-E or 1-5."""
    return make_item(id=get_field(record, "id"), question=question, choices=texts,
                     answer=get_field(record, "answerKey"), answer_type="label", labels=labels,
                     record=record)
