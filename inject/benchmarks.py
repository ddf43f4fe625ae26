"""Load a benchmark from its config entry (``benchmarks.<name>``) as Items in canonical order.

Sources: ``hub`` (Hugging Face datasets: cais/mmlu, allenai/ai2_arc, Rowan/hellaswag
schemas), ``mmlu_dir`` (header-less MMLU CSVs), ``arc_jsonl``, ``generic`` (any JSONL/JSON/
CSV/parquet plus a field mapping or a user function in config: inject/benchmark_generic.py)
and ``synthetic`` (the built-in synthetic world: inject/synthetic/). Unknown settings in a spec are refused.
Bad records stop the load with ``file:line: reason`` unless ``skip_bad_rows``, which skips
them and says how many on stderr: never silently dropped.
"""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from core.checks import choices
from core.config import BENCHMARK_SOURCES, HubFormat, benchmark_spec
from core.errors import ConfigError, InputDataError, SpikeinError
from inject.benchmark_formats import (
    BadRow,
    Row,
    arc_item,
    arc_jsonl_rows,
    as_list,
    get_field,
    jsonable,
    make_item,
    mmlu_dir_rows,
    row,
)
from inject.benchmark_generic import generic_rows, unknown_key_message
from inject.duplicates import Duplicates, merge_duplicates
from inject.items import Item
from inject.synthetic import benchmark_rows as synthetic_rows

SOURCES = tuple(BENCHMARK_SOURCES)
HUB_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# each source's settings: its class's fields (core/config.py), the common ones first
SOURCE_KEYS = {source: tuple(cls.__dataclass_fields__) for source, cls in BENCHMARK_SOURCES.items()}


def load_benchmark(
    name: str, spec: Mapping, *, skip_bad_rows: bool = False, synthetic: Mapping | None = None
) -> list[Item]:
    """The items of benchmark ``name`` in canonical (published) order, exact duplicates merged."""
    return load_benchmark_items(name, spec, skip_bad_rows=skip_bad_rows, synthetic=synthetic)[0]


def load_benchmark_items(
    name: str, spec: Mapping, *, skip_bad_rows: bool = False, synthetic: Mapping | None = None
) -> tuple[list[Item], Duplicates]:
    """:func:`load_benchmark`, and the duplicates it merged (inject records them in the manifest)."""
    spec = _plain(spec) or {}
    source = spec.get("source")
    if source not in SOURCES:
        raise SpikeinError(f"benchmark {name}: unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    check_spec_keys(name, spec)
    typed = benchmark_spec(f"benchmarks.{name}", spec)
    typed.check_settings(f"benchmarks.{name}")
    settings = asdict(typed)  # every setting, its source's defaults filled in (the hashed entry stays as written)
    own = settings["skip_bad_rows"]  # null inherits
    skip = skip_bad_rows if own is None else bool(own)
    return merge_duplicates(name, _collect(name, _rows(name, settings, _plain(synthetic) or {}), skip))


def _rows(name: str, spec: dict[str, Any], synthetic: dict[str, Any]) -> Iterable[Row]:
    """The rows of benchmark ``name`` from its source's reader."""
    readers: dict[str, Callable[[], Iterable[Row]]] = {
        "hub": lambda: hub_rows(spec),
        "mmlu_dir": lambda: mmlu_dir_rows(Path(_need(spec, "path", name))),
        "arc_jsonl": lambda: arc_jsonl_rows(Path(_need(spec, "path", name))),
        "generic": lambda: generic_rows(name, {**spec, "path": _need(spec, "path", name)}),
        "synthetic": lambda: synthetic_rows(name, spec, synthetic),
    }
    return readers[spec["source"]]()


def check_spec_keys(name: str, spec: Mapping) -> None:
    """A misspelt setting (``fromat``, ``skip_bad_row``) would silently fall back to a default."""
    known = SOURCE_KEYS[spec["source"]]
    unknown = sorted(str(k) for k in spec if k not in known)
    if unknown:
        what = f"setting for source={spec['source']}"
        raise ConfigError(f"benchmark {name}: {unknown_key_message(what, unknown, known)}")


def _collect(name: str, rows: Iterable[Row], skip: bool) -> list[Item]:
    """Validate every row (Item.problems, unique ids); stop on the first bad one or skip it."""
    items: list[Item] = []
    first_seen: dict[str, str] = {}
    bad: list[str] = []
    for where, got in rows:
        if isinstance(got, str):  # the row could not be read as an item: the reason why
            if not skip:
                raise InputDataError(f"{where}: {got}")
            bad.append(f"{where}: {got}")
            continue
        reason = got.problems()
        if reason is None and got.id in first_seen:
            reason = f"duplicate id {got.id!r} (first at {first_seen[got.id]})"
        if reason is not None:
            if not skip:
                raise InputDataError(f"{where}: {reason}")
            bad.append(f"{where}: {reason}")
            continue
        first_seen[got.id] = where
        items.append(got)
    if bad:
        print(f"benchmark {name}: skipped {len(bad)} bad rows (first: {bad[0]})", file=sys.stderr)
    if not items:
        raise InputDataError(f"benchmark {name}: no items" + (f" ({len(bad)} bad rows skipped)" if bad else ""))
    return items


def _plain(node: Any) -> Any:
    return dict(node) if isinstance(node, Mapping) else node


def _need(spec: Mapping, key: str, name: str) -> Any:
    if spec.get(key) in (None, ""):
        raise ConfigError(f"benchmark {name}: missing setting '{key}' (source={spec.get('source')}); "
                           f"set benchmarks.{name}.{key}=...")
    return spec[key]


# ---- Hugging Face hub (or local files in a hub schema) ------------------------------


def hub_rows(spec: Mapping) -> Iterator[Row]:
    fmt = spec["format"]  # one of HUB_FORMATS (HubBenchmark.check_settings)
    records, label = _hub_records(spec)
    per_subject: dict[str, int] = {}
    for i, record in enumerate(records):
        yield row(f"{label}:row {i + 1}", lambda: HUB_FORMATS[fmt](jsonable(record), per_subject))  # noqa: B023


def _hub_records(spec: Mapping) -> tuple[Iterable[dict[str, Any]], str]:
    """The rows of the dataset, and how to name it in errors."""
    import datasets

    data_files = spec.get("data_files")
    if data_files:
        files = [str(data_files)] if isinstance(data_files, (str, Path)) else [str(f) for f in data_files]
        for f in files:
            if not Path(f).is_file():
                raise SpikeinError(f"missing file: {f}")
        builder = HUB_BUILDERS.get(Path(files[0]).suffix.lower())
        if builder is None:
            raise SpikeinError(f"{files[0]}: cannot infer the file type; use one of: {', '.join(HUB_BUILDERS)}")
        label = ",".join(files)
        try:
            ds = datasets.load_dataset(builder, data_files=files, split="train", cache_dir=spec.get("cache_dir"))
        except Exception as e:  # the builders raise their own error types for unparseable files
            raise SpikeinError(f"cannot read {label}: {_first_line(e)}") from None
        return ds, label
    path, config, split = spec.get("path"), spec.get("name"), spec["split"]
    label = f"{path}[{config}/{split}]" if config else f"{path}[{split}]"
    try:
        ds = datasets.load_dataset(path, config, split=split, cache_dir=spec.get("cache_dir"))
    except Exception as e:  # network, auth, unknown config/split: all mean "cannot load it"
        raise SpikeinError(f"cannot load hub dataset {label}: {_first_line(e)}") from None
    return ds, label


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _hub_mmlu(record: dict[str, Any], per_subject: dict[str, int]) -> Item:
    """cais/mmlu: {question, subject, choices, answer: int}; ids match the mmlu_dir source."""
    subject = str(get_field(record, "subject"))
    index = per_subject[subject] = per_subject.get(subject, -1) + 1
    return make_item(id=f"{subject}/{index}", question=get_field(record, "question"),
                     choices=as_list(get_field(record, "choices"), "choices"),
                     answer=get_field(record, "answer"), answer_type="index", subject=subject, record=record)


def _hub_arc(record: dict[str, Any], _: dict[str, int]) -> Item:
    """allenai/ai2_arc: {id, question, choices: {text: [...], label: [...]}, answerKey}."""
    texts = as_list(get_field(record, "choices.text"), "choices.text")
    labels = [str(label) for label in as_list(get_field(record, "choices.label"), "choices.label")]
    if len(texts) != len(labels):
        raise BadRow(f"{len(texts)} choice texts but {len(labels)} labels")
    return arc_item(record, get_field(record, "question"), texts, labels)


def _hub_hellaswag(record: dict[str, Any], _: dict[str, int]) -> Item:
    """Rowan/hellaswag: {ind, activity_label, ctx, endings, label: "0".."3"}; the test split is unlabelled."""
    return make_item(id=get_field(record, "ind"), question=get_field(record, "ctx"),
                     choices=as_list(get_field(record, "endings"), "endings"),
                     answer=get_field(record, "label"), answer_type="index",
                     subject=record.get("activity_label"), record=record)


HUB_FORMATS: dict[str, Callable[[dict[str, Any], dict[str, int]], Item]] = {
    "mmlu": _hub_mmlu, "arc": _hub_arc, "hellaswag": _hub_hellaswag,
}
assert tuple(HUB_FORMATS) == choices(HubFormat), "HUB_FORMATS must cover exactly the HubFormat choices"
