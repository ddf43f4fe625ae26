"""The report's view of ``data/corpus_scan.json``: a table (controls first), and a mark on every
partition with items found in the corpus wherever a table shows that partition."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from audit.results import ResultRow
from core.run_dir import RunDir
from inject.corpus_scan import found_counts

SHOWN_IDS = 5


def read_scan(run_dir: Path) -> dict[str, Any] | None:
    return RunDir(run_dir).read_corpus_scan()


def corpus_scan_section(scan: dict[str, Any] | None) -> str:
    head = "## Corpus scan (benchmark items in the training tokens, before training)\n\n"
    if scan is None:
        return head + "Not recorded: data/ was built before the scan existed (rebuild with overwrite=true).\n"
    rows = [(b, p, v) for b, parts in scan["benchmarks"].items() for p, v in parts.items()]
    rows.sort(key=lambda r: (r[2]["count"] != 0, r[0], r[2]["count"], r[1]))  # controls first
    lines = ["| benchmark | partition | copies | items | found | by rendering | by question | ids |",
             "|---|---|---|---|---|---|---|---|"]
    for b, p, v in rows:
        by = {kind: sum(1 for kinds in v["items"].values() if kind in kinds) for kind in ("rendering", "question")}
        ids = ", ".join(v["ids"][:SHOWN_IDS]) + (f", ... ({len(v['ids']) - SHOWN_IDS} more)" if len(v["ids"]) > SHOWN_IDS else "")
        flag = " **control seen**" if v["count"] == 0 and v["ids"] else ""
        lines.append(f"| {b} | {p}{flag} | {v['count']} | {v['n_items']} | {len(v['ids'])} | {by['rendering']} "
                     f"| {by['question']} | {ids or '-'} |")
    excluded = {b: ids for b, ids in (scan.get("excluded") or {}).items() if ids}
    notes = [(f"Scanned {scan['tokens']:,} tokens ({scan['scanned']}): rendering = {scan['method']['rendering']}; "
              f"question = {scan['method']['question']}. A control with items found is not a clean control: "
              "a detection there may be true, not a false positive (`inject.exclude_found=true` drops found items).")]
    notes += [f"Excluded before partitioning (inject.exclude_found): {b} {len(ids)} items." for b, ids in excluded.items()]
    return head + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def mark_found(rows: list[ResultRow], scan: dict[str, Any] | None) -> list[ResultRow]:
    """Rows whose partition has items in the corpus, its name marked (for any table of rows)."""
    found = found_counts(scan or {})
    return [replace(r, partition=f"{r.partition} (in corpus: {found[(r.benchmark, r.partition)]})")
            if found.get((r.benchmark, r.partition)) else r for r in rows]


def flag_verdicts(text: str, scan: dict[str, Any] | None) -> str:
    """The verdict lines (``- <bench>/<part> (...): ...``) of partitions with items in the corpus, flagged."""
    for (b, p), n in found_counts(scan or {}).items():
        if n:
            text = text.replace(f"- {b}/{p} (", f"- {b}/{p} [{n} items in the corpus: data/corpus_scan.json] (")
    return text


def wandb_counts(scan: dict[str, Any] | None) -> dict[str, int]:
    """``corpus_scan/<benchmark>/<partition>``: items found in the corpus."""
    return {f"corpus_scan/{b}/{p}": n for (b, p), n in found_counts(scan or {}).items()}
