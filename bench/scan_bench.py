"""Corpus-scan throughput against tokenization of the same corpus.

Tokenizes ~35 MB of Gutenberg text with inject's own tokenizer pass (``inject.workers``
processes, an 8192-token BPE trained on 5 MB of it), then scans the tokens for every item
of MMLU (test) and ARC-Challenge (test), exact renderings and 13-word question n-grams,
with 1 and with ``--workers`` processes. Prints tokens/s of each, the ratio, and what a
200M-token corpus costs.

    .venv/bin/python bench/scan_bench.py --shared <dir with corpus/gutenberg, benchmarks/mmlu, benchmarks/arc_challenge>
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def corpus_texts(gutenberg: Path, megabytes: float):
    total = 0
    for f in sorted(gutenberg.glob("*.txt")):
        if total >= megabytes * 1e6:
            return
        total += f.stat().st_size
        yield f.read_text()


def targets(shared: Path, tokenizer):
    from inject.benchmarks import load_benchmark
    from inject.corpus_scan import item_target
    from inject.render import encode_items

    out = []
    for name, spec in (("mmlu", {"source": "mmlu_dir", "path": str(shared / "benchmarks/mmlu/test")}),
                       ("arc", {"source": "arc_jsonl", "path": str(shared / "benchmarks/arc_challenge/ARC-Challenge-Test.jsonl")})):
        items = load_benchmark(name, spec)
        out += [item_target((name, "all", it.id), r, it.question) for it, r in zip(items, encode_items(tokenizer, items, "mcq"))]
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker pools): on a shared machine
    tokens per CPU-second is the stable measure; wall time is printed too."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", required=True)
    p.add_argument("--megabytes", type=float, default=35)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    shared = Path(args.shared)
    from inject.corpus_scan import memmap_pieces, scan_corpus, token_bytes_table
    from inject.stream import tokenize_corpus
    from inject.tokenizer import special_ids, train_bpe

    with tempfile.TemporaryDirectory() as tmp:
        tok = train_bpe(corpus_texts(shared / "corpus/gutenberg", 5), 8192, Path(tmp) / "tok")
        t0, c0 = time.time(), cpu_seconds()
        lengths = tokenize_corpus(corpus_texts(shared / "corpus/gutenberg", args.megabytes), Path(tmp) / "tok",
                                  special_ids(tok), Path(tmp) / "corpus.u32", args.workers, 16)
        n = int(lengths.sum())
        rows = {"tokens": n, "tokenize_tok_per_s": n / (time.time() - t0), "tokenize_tok_per_cpu_s": n / (cpu_seconds() - c0)}
        ts, table = targets(shared, tok), token_bytes_table(tok)
        rows["items"] = len(ts)
        for workers in sorted({1, args.workers}):
            t0, c0 = time.time(), cpu_seconds()
            result = scan_corpus(memmap_pieces(Path(tmp) / "corpus.u32", "uint32", n), ts, table, workers=workers)
            rows[f"scan_{workers}w_tok_per_s"] = n / (time.time() - t0)
            rows[f"scan_{workers}w_tok_per_cpu_s"] = n / (cpu_seconds() - c0)
            rows[f"found_{workers}w"] = len(result.found)
        rows["scan_over_tokenize_per_cpu_s"] = rows["scan_1w_tok_per_cpu_s"] / rows["tokenize_tok_per_cpu_s"]
        rows["minutes_per_200M_tokens_2_cores"] = 200e6 / (2 * rows["scan_1w_tok_per_cpu_s"]) / 60
        rows["peak_rss_main_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows["peak_rss_worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows.items()}, indent=1))


if __name__ == "__main__":
    main()
