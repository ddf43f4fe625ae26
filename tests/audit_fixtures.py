"""Small, fast stand-ins for what the audit reads: items, tiny Llamas and a fake run
directory (manifest, stream, partitions, tokenizer, checkpoints) built with the same
contract functions the inject and train stages use. The tokenizer: conftest.make_tokenizer."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch
from conftest import WORDS, make_tokenizer

from core.atomic import write_json, write_text
from inject.items import Item, items_jsonl_lines
from inject.manifest import BenchmarkPlan, Copy, Manifest, Partition, load_manifest
from inject.render import encode_items, encode_text, join_token_lists
from inject.tokenizer import special_ids, tokenizer_hash


def make_items(n: int, k: int = 4, seed: int = 0, prefix: str = "q") -> list[Item]:
    """``n`` random multiple-choice items with ``k`` options each (option order is random,
    so canonical option order and item order are exchangeable for an unexposed model)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        a, b, c = rng.choice(WORDS, 3, replace=False)
        choices = tuple(" ".join(rng.choice(WORDS, 2)) for _ in range(k))
        items.append(Item(id=f"{prefix}{i}", question=f"Which {a} is near the {b} {c}?", choices=choices,
                          answer=int(rng.integers(k))))
    return items


def tiny_model(vocab_size: int, seed: int = 0, hidden: int = 64, layers: int = 2, max_positions: int = 1024):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=max_positions,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg).eval()


def train_on(model, tokens: Sequence[int], steps: int = 300, seq_len: int = 128, batch: int = 8,
             lr: float = 3e-3, seed: int = 0):
    """Plain AdamW on random windows of ``tokens`` (a stand-in for the train stage)."""
    data = torch.tensor(list(tokens))
    seq_len = min(seq_len, len(data) - 1)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq_len, (batch,), generator=gen)
        x = torch.stack([data[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def copy_tokens(tokenizer, items: Sequence[Item], renderer: str, separator: str = "\n\n") -> list[int]:
    """One document-mode copy, built exactly as the contract says injection builds it."""
    sep = encode_text(tokenizer, separator)
    return join_token_lists(encode_items(tokenizer, items, renderer), sep, special_ids(tokenizer).bos)


def make_run_dir(
    root: str | Path,
    tokenizer_dir: str | Path,
    partitions: dict[str, tuple[int, list[Item]]],
    benchmark: str = "bench",
    renderer: str = "mcq",
    mode: str = "document",
    filler_docs: int = 20,
    seed: int = 0,
    bos_id: int | None = None,
) -> tuple[Path, Manifest]:
    """``<root>/data/`` with stream, manifest, partitions and tokenizer for one benchmark.

    ``partitions``: name -> (count, items). Each document is ``[bos]? + tokens + [eos]``;
    copies are placed between filler documents and recorded with their token offsets.
    ``bos_id`` forces a BOS id (the test tokenizer itself uses none).
    """
    from inject.tokenizer import load_tokenizer

    root = Path(root)
    data = root / "data"
    shutil.copytree(tokenizer_dir, data / "tokenizer", dirs_exist_ok=True)
    tok = load_tokenizer(str(data / "tokenizer"))
    ids, sep = special_ids(tok), encode_text(tok, "\n\n")
    if bos_id is not None:
        ids = type(ids)(eos=ids.eos, bos=bos_id)
    rng = np.random.default_rng(seed)
    docs: list[tuple[list[int], tuple[str, int, int | None] | None]] = []
    for _ in range(filler_docs):
        body = encode_text(tok, " ".join(rng.choice(WORDS, 40)))
        docs.append((([ids.bos] if ids.bos is not None else []) + body, None))
    for name, (count, items) in partitions.items():
        for c in range(count):
            if mode == "document":
                body = join_token_lists(encode_items(tok, items, renderer), sep, ids.bos)
                docs.append((body, (name, c, None)))
            else:
                for j, toks in enumerate(encode_items(tok, items, renderer)):
                    docs.append((join_token_lists([toks], sep, ids.bos), (name, c, j)))
    order = rng.permutation(len(docs))
    stream: list[int] = []
    copies = []
    for k in order:
        toks, tag = docs[k]
        if tag is not None:
            copies.append(Copy(benchmark, tag[0], tag[1], len(stream), len(stream) + len(toks), mode, renderer, tag[2]))
        stream += toks + [ids.eos]
    np.asarray(stream, dtype=np.uint16).tofile(data / "stream.bin")
    parts = []
    for name, (count, items) in partitions.items():
        rel = f"partitions/{benchmark}/{name}.jsonl"
        write_text(data / rel, items_jsonl_lines(items))
        parts.append(Partition(benchmark, name, count, len(items), rel))
    n_total = sum(len(items) for _, items in partitions.values())
    manifest = Manifest(
        config_hash="test", tokenizer_hash=tokenizer_hash(tok), tokenizer_dir="tokenizer", vocab_size=len(tok),
        dtype="uint16", n_tokens=len(stream), eos_id=ids.eos, bos_id=ids.bos, separator="\n\n", separator_ids=sep,
        benchmarks=[BenchmarkPlan(benchmark, renderer, mode, (0.0, 1.0), n_total)], partitions=parts, copies=copies,
        n_documents=len(docs),
    )
    write_json(data / "manifest.json", manifest.to_json())
    return root, manifest


def add_checkpoints(run_dir: str | Path, models: dict[int, object], tokenizer_dir: str | Path,
                    seq_len: int = 64, global_batch: int = 4, finished: bool = True) -> Path:
    """``checkpoints/step_N/hf`` exports and ``checkpoints/index.json`` as the train stage writes them."""
    ckpt = Path(run_dir) / "checkpoints"
    entries = []
    for step, model in sorted(models.items()):
        hf = ckpt / f"step_{step}" / "hf"
        model.save_pretrained(hf, safe_serialization=True)
        for f in Path(tokenizer_dir).iterdir():
            shutil.copy(f, hf / f.name)
        entries.append({"step": step, "tokens_seen": step * seq_len * global_batch, "epochs": 0.0,
                        "hf": f"step_{step}/hf", "ds": None})
    write_json(ckpt / "index.json", {"checkpoints": entries, "finished": finished, "seq_len": seq_len,
                                     "global_batch": global_batch, "tokens_per_step": seq_len * global_batch})
    return ckpt / "index.json"


def checkpointed_run(root: Path, parts: dict[str, tuple[int, list[Item]]]) -> Path:
    """A run dir of ``parts`` (name -> (count, items)) with random-init checkpoints at steps 0 and 10."""
    tok_dir = root.parent / f"{root.name}_tok"
    make_tokenizer(tok_dir, [it for _, items in parts.values() for it in items])
    make_run_dir(root, tok_dir, parts)
    vocab = load_manifest(root).vocab_size
    add_checkpoints(root, {0: tiny_model(vocab, seed=0), 10: tiny_model(vocab, seed=1)}, tok_dir)
    return root


def read_results(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "audit" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dp_requests(vocab_size: int, seed: int = 0):
    """Fixed mixed workload for the data-parallel check: requests and prefix groups."""
    from audit.requests import Group, Request

    rng = np.random.default_rng(seed)
    reqs = [Request(rng.integers(0, vocab_size, int(rng.integers(2, 90))).tolist()) for _ in range(13)]
    groups = [
        Group(rng.integers(0, vocab_size, int(rng.integers(1, 20))).tolist(),
              [rng.integers(0, vocab_size, int(rng.integers(1, 12))).tolist() for _ in range(5)])
        for _ in range(7)
    ]
    return reqs, groups


def _dp_worker(out_path: str) -> None:
    """Run under torchrun: every rank scores its share; rank 0 writes the gathered scores."""
    from audit.engine import Engine, EngineSettings
    from core.workers import collective
    from core.workers.process import shutdown_distributed

    collective.maybe_init("gloo")
    model = tiny_model(97, seed=3)
    reqs, groups = dp_requests(97)
    engine = Engine(model, EngineSettings(context=32, stride=16, token_budget=256, progress=False))
    scores = engine.score(reqs).tolist()
    group_scores = [g.tolist() for g in engine.score_groups(groups)]
    if collective.is_main():
        Path(out_path).write_text(json.dumps({"world": collective.rank_world()[1], "scores": scores,
                                              "groups": group_scores, "tokens": engine.tokens_scored}))
    shutdown_distributed()


if __name__ == "__main__":
    import sys

    _dp_worker(sys.argv[1])


@pytest.fixture
def one_thread():
    """Tiny models run faster on one intra-op thread, and far faster on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
