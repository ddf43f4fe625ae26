"""Small generated corpora and benchmarks for inject tests (seconds, not minutes)."""
from __future__ import annotations

import json
import random
from pathlib import Path

from launch.config import compose

WORDS = ("river stone garden window silver market winter lantern harbor meadow copper "
         "forest candle engine valley orchard thunder glass signal bridge").split()


def write_corpus(root: Path, n_docs: int = 120, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        paras = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + "." for _ in range(rng.randint(1, 4))]
        (root / f"doc{d:04d}.txt").write_text("\n\n".join(paras))
    return root


def write_benchmark(path: Path, n_items: int = 60, seed: int = 1) -> Path:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n_items):
            choices = [f"{rng.choice(WORDS)} {rng.randint(0, 999)}" for _ in range(4)]
            q = f"Which token marks item {i} near the {rng.choice(WORDS)}?"
            f.write(json.dumps({"qid": f"q{i}", "q": q, "opts": choices, "gold": rng.randrange(4)}) + "\n")
    return path


def inject_config(tmp: Path, *extra: str, corpus_docs: int = 120, bench_items: int = 60):
    corpus = write_corpus(tmp / "corpus", corpus_docs)
    bench = write_benchmark(tmp / "bench.jsonl", bench_items)
    overrides = [
        f"run_dir={tmp}/run", "data=gutenberg", f"data.paths=[{corpus}]", "data.max_doc_chars=600",
        "benchmarks=none",
        f"+benchmarks.toy={{source:generic,path:'{bench}',fields:{{id:qid,question:q,choices:opts,answer:gold,answer_type:index}}}}",
        "model.bpe_vocab_size=400", "inject.counts=[0,1,3]", "inject.partition_size=8",
        "inject.workers=1", "inject.max_injected_share=0.5",
    ]
    return compose(overrides + list(extra))
