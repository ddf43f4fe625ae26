"""`spikein export-lm-eval`: a run's benchmark partitions as lm-evaluation-harness tasks.

Each partition becomes two zero-shot ``multiple_choice`` tasks that score exactly what the
accuracy detector scores: ``letter`` (the mcq rendering, choices " A", " B", ...) and ``text``
(the cloze rendering, each choice's text; lm-eval's ``acc_norm`` / ``acc_bytes`` on it are
the detector's ``norm`` / ``bytes`` styles). Contexts and choices are written out already
rendered by spikein's renderers (no Jinja in between), so the prompt cannot drift, and each
is checked against the renderer before anything is written.

Layout of ``<run_dir>/lm_eval/`` (written whole or not at all)::

    README.md                          how to run it, the tasks and groups
    <bench>/_spikein_<bench>.yaml      group spikein_<bench>: the two style groups below
    <bench>/_spikein_<bench>_<style>.yaml   group: that style's partition tasks
    <bench>/<part>_<style>.yaml        task spikein_<bench>_<part>_<style>
    <bench>/<part>.jsonl               the partition's items, both styles' prompts

Groups carry no aggregate metric: averaging injected and control partitions measures nothing.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from core.atomic import staging_dir, write_text
from core.config import SpikeinConfig
from core.errors import SpikeinError
from core.run_dir import RunDir
from inject.items import LETTERS, Item
from inject.manifest import Manifest, load_manifest, load_partition
from inject.render import options_text, question_text, render_cloze, render_mcq

DELIMITER = " "  # lm-eval's target_delimiter: "...Answer:" + " " + choice
STYLE_METRICS = {"letter": ["acc"], "text": ["acc", "acc_norm", "acc_bytes"]}
PREFIX = "spikein"


def mc_prompt(item: Item, style: str) -> tuple[str, list[str]]:
    """The accuracy detector's prompt for ``style`` as lm-eval's (context, choices).

    ``context + DELIMITER + choices[i]`` is the item rendered with answer ``i``, the text the
    detector tokenizes whole and splits after "Answer:" (as lm-eval splits after the context).
    """
    if style == "letter":
        context = question_text(item) + options_text(item.choices) + "Answer:"
        choices, render = list(LETTERS[: len(item.choices)]), render_mcq
    else:
        context, choices, render = question_text(item) + "Answer:", list(item.choices), render_cloze
    for i, choice in enumerate(choices):
        if context + DELIMITER + choice != render(replace(item, answer=i)):
            raise SpikeinError(f"item {item.id!r}: the {style} rendering does not end in "
                               f"'Answer:{DELIMITER}<choice>', which lm-eval's multiple_choice needs")
    return context, choices


def doc_row(item: Item, count: int) -> dict[str, Any]:
    """One JSONL line: the item, its gold index and both styles' prompts."""
    row: dict[str, Any] = {"id": item.id, "copies": count, "gold": item.answer}
    for style in STYLE_METRICS:
        row[f"{style}_context"], row[f"{style}_choices"] = mc_prompt(item, style)
    return row


def slug(name: str) -> str:
    """A benchmark or partition name as a file and task name part."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", name)


def task_name(*parts: str) -> str:
    return "_".join(slug(p) for p in (PREFIX, *parts))


def task_config(name: str, data_file: Path, style: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "num_fewshot": 0,
        "doc_to_text": f"{style}_context",  # a column name: the prompt as written, no template
        "doc_to_choice": f"{style}_choices",
        "doc_to_target": "gold",
        "target_delimiter": DELIMITER,
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in STYLE_METRICS[style]],
        "metadata": {"version": 1.0, **meta},
    }


def _dump(path: Path, obj: dict[str, Any]) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=1000))


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_benchmark(tmp: Path, final: Path, run_dir: Path, manifest: Manifest, bench: str) -> dict[str, list[str]]:
    """One benchmark's data, task and group files under ``tmp/<bench>``; its group -> tasks."""
    groups: dict[str, list[str]] = {task_name(bench, s): [] for s in STYLE_METRICS}
    folder = Path(slug(bench))
    for part in (p for p in manifest.partitions if p.benchmark == bench):
        items = load_partition(run_dir, part)
        data = folder / f"{slug(part.name)}.jsonl"
        write_text(tmp / data, _jsonl(doc_row(it, part.count) for it in items))
        for style in STYLE_METRICS:
            name = task_name(bench, part.name, style)
            meta = {"benchmark": bench, "partition": part.name, "copies": part.count, "style": style}
            _dump(tmp / folder / f"{slug(part.name)}_{style}.yaml", task_config(name, final / data, style, meta))
            groups[task_name(bench, style)].append(name)
    for group, tasks in groups.items():
        _dump(tmp / folder / f"_{group}.yaml", {"group": group, "task": tasks, "metadata": {"version": 1.0}})
    _dump(tmp / folder / f"_{task_name(bench)}.yaml",
          {"group": task_name(bench), "task": list(groups), "metadata": {"version": 1.0}})
    return {task_name(bench): list(groups), **groups}


def check_unique(names: list[str]) -> None:
    """Names that differ only in characters a task name cannot hold would overwrite each other."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpikeinError(f"benchmark/partition names collide as lm-eval task or group names: {', '.join(twice)} "
                           "(rename the benchmark or its partitions)")


def readme(run_dir: Path, out: Path, benchmarks: list[str], groups: dict[str, list[str]], bos: bool) -> str:
    lines = [
        "# lm-eval tasks for this run (written by `spikein export-lm-eval`)\n",
        "Each partition (injected copies or control) is a zero-shot task in two styles: `letter`",
        "(`acc` = spikein's `audit.accuracy.style=letter`) and `text` (`acc` / `acc_norm` / `acc_bytes`",
        "= styles `text` / `norm` / `bytes`). Groups do not average across partitions.\n",
        "```",
        f"lm_eval --model hf --model_args pretrained={RunDir(run_dir).checkpoints}/step_N/hf \\",
        f"  --include_path {out} --tasks {','.join(map(task_name, benchmarks))}",
        "```\n",
        "spikein scores with the tokenizer's own special tokens "
        + ("(it prepends BOS): leave `add_bos_token` unset or true." if bos else "(none): leave `add_bos_token` unset."),
        "Data paths in the YAML files are absolute: after moving the run dir, export again.\n",
        "## Groups and tasks\n",
    ]
    lines += [f"- `{g}`: {', '.join(f'`{t}`' for t in tasks)}" for g, tasks in groups.items()]
    return "\n".join(lines) + "\n"


def export_lm_eval(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/lm_eval/`` atomically (replacing an earlier export); its path."""
    run_dir = Path(run_dir).resolve()
    manifest = load_manifest(run_dir)
    final = RunDir(run_dir).lm_eval
    groups: dict[str, list[str]] = {}
    names: list[str] = []
    with staging_dir(final) as tmp:
        for plan in manifest.benchmarks:
            written = write_benchmark(tmp, final, run_dir, manifest, plan.name)
            # groups, then tasks (the members of the style groups, all groups but the first)
            names += list(written) + [t for style_group in list(written)[1:] for t in written[style_group]]
            groups.update(written)
        check_unique(names)
        benchmarks = [plan.name for plan in manifest.benchmarks]
        write_text(tmp / "README.md", readme(run_dir, final, benchmarks, groups, manifest.bos_id is not None))
    return final


def run_export(cfg: SpikeinConfig) -> int:
    out = export_lm_eval(cfg.run_dir)
    print(f"export-lm-eval: {out} (see {out / 'README.md'})")
    return 0
