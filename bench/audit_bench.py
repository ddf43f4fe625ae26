"""Scoring engine against the naive reference path on the same model and requests.

Workloads (issue 4): ordering = one 40-item partition, 10 shards, 30 permutations;
option-shuffle = 100 four-option items, 24 orders each. Prints tokens/s for both paths,
the speed-up, and the p-values each path yields (fp32: they must agree).

    python bench/audit_bench.py                       # CPU, fp32, ~5M-parameter Llama
    python bench/audit_bench.py --device cuda --precision bf16 --json out.json

Items come from a local MMLU test directory (``--mmlu DIR``) when given,
else generated; the model is a random-init ~5M-parameter Llama with a BPE trained on MMLU text
unless --model names a checkpoint or hub id.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.detectors import AuditContext, PartitionData, get_detector  # noqa: E402
from audit.engine import Engine, EngineSettings  # noqa: E402
from audit.naive import NaiveScorer  # noqa: E402
from audit.prefix_tree import build_tree  # noqa: E402
from inject.items import Item  # noqa: E402
from inject.render import encode_text, render_mcq  # noqa: E402
from inject.tokenizer import special_ids  # noqa: E402


def load_items(n: int, mmlu: str | None) -> list[Item]:
    """The first ``n`` four-option MMLU test items (or generated ones without the data)."""
    if mmlu:
        from inject.benchmarks import load_benchmark

        items = load_benchmark("mmlu", {"source": "mmlu_dir", "path": mmlu})
        return [it for it in items if len(it.choices) == 4][:n]
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta river stone cloud tower iron salt honey wolf maple north quiet swift".split()
    return [Item(f"g{i}", " ".join(rng.choice(words, 12)) + "?", tuple(" ".join(rng.choice(words, 3)) for _ in range(4)),
                 int(rng.integers(4))) for i in range(n)]


# ~5M parameters with a 4096-token BPE (tied embeddings): 1.0M embedding + 5 x 0.8M layers
ARCH = dict(model_type="llama", hidden_size=256, intermediate_size=704, num_hidden_layers=5,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=True)


def build(model_name: str | None, texts: list[str], precision: str, device: str, tok=None):
    """Tokenizer and model: a named model's own, or a 4096-token BPE and a random-init Llama."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from inject.tokenizer import load_tokenizer, train_bpe

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    if model_name:
        tok = tok or load_tokenizer(model_name)
        model = AutoModelForCausalLM.from_pretrained(model_name, dtype=dtype)
    else:
        tok = tok or train_bpe(texts, 4096, tempfile.mkdtemp())
        arch = dict(ARCH)
        config = AutoConfig.for_model(arch.pop("model_type"), vocab_size=len(tok), **arch)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).to(dtype)
    return tok, model.to(device).eval()


def warm_up(model, tok, texts: list[str], steps: int, device: str) -> None:
    """A few AdamW steps on benchmark text, so option orders get clearly different scores
    (a random-init model scores them nearly equal and float noise could flip ranks)."""
    ids = [t for text in texts for t in tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    data = torch.tensor(ids, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - 129, (8,), generator=gen).tolist()
        x = torch.stack([data[s : s + 128] for s in starts])
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def run_workload(detector, parts, scorer, tok, bos, sep) -> dict:
    ctx = AuditContext(scorer, tok, "mcq", sep, bos)
    n0 = scorer.tokens_scored
    raws, wall = timed(lambda: [detector.score(ctx, p) for p in parts])
    row = detector.summarize(parts, raws)[0]
    tokens = scorer.tokens_scored - n0
    return {"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall, "log10_p": row["log10_p"], "p": row["p"]}


class TokenCounter:
    """Stands in for a scorer: records what a detector asks for, scores nothing."""

    def __init__(self):
        self.seqs: list[list[int]] = []
        self.tokens_scored = 0

    def score(self, requests):
        self.seqs += [list(r.tokens) for r in requests]
        return np.zeros(len(requests))

    def score_groups(self, groups):
        self.seqs += [list(r.tokens) for g in groups for r in g.requests()]
        return [np.zeros(len(g.continuations)) for g in groups]


def reuse_ceiling(detector, parts, tok, bos, sep) -> tuple[int, int]:
    """Tokens the naive path runs, and the distinct tokens of their prefix tree: their ratio
    bounds any exact engine that is no faster per token than the naive path."""
    counter = TokenCounter()
    ctx = AuditContext(counter, tok, "mcq", sep, bos)
    for p in parts:
        detector.score(ctx, p)
    tree = build_tree(counter.seqs)
    return sum(map(len, counter.seqs)), sum(len(t) for t in tree.tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--mmlu", default=None, help="MMLU test CSV directory (default: generated items)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="engine precision (naive: fp32)")
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--stride", type=int, default=1024)
    ap.add_argument("--train-steps", type=int, default=40, help="warm-up training of the random-init model")
    ap.add_argument("--repeats", type=int, default=3, help="runs per path; the fastest counts")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()

    items = load_items(3000, args.mmlu)
    tok, model = build(args.model, [render_mcq(it) for it in items], "fp32", args.device)
    bos = special_ids(tok).bos
    if not args.model and args.train_steps:
        warm_up(model, tok, [render_mcq(it) for it in items[140:]], args.train_steps, args.device)
    items = items[:140]
    sep = encode_text(tok, "\n\n")
    n_params = sum(p.numel() for p in model.parameters())
    ordering = get_detector("ordering", {"shards": 10, "permutations": 30, "seed": 0})
    shuffle = get_detector("option_shuffle", {"max_orders": 24, "seed": 0, "isolation_forest": False})
    workloads = {
        "ordering": (ordering, [PartitionData("mmlu", "p40", 1, items[:40])]),
        "option_shuffle": (shuffle, [PartitionData("mmlu", "o100", None, items[40:140])]),
    }
    engine_model = model if args.precision == "fp32" else copy.deepcopy(model).to(torch.bfloat16)
    settings = EngineSettings(args.context, args.stride, args.token_budget, prefix_reuse=True, progress=False)
    report = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "precision": args.precision, "params": n_params, "token_budget": args.token_budget, "results": {}}
    label = args.model or f"Llama (random init, {args.train_steps} warm-up steps)"
    print(f"model {label}: {n_params / 1e6:.2f}M params on {args.device}, "
          f"engine {args.precision}, naive fp32, token budget {args.token_budget}")
    for name, (det, parts) in workloads.items():
        naive_tokens, tree_tokens = reuse_ceiling(det, parts, tok, bos, sep)
        print(f"{name:15s} naive runs {naive_tokens} tokens, their prefix tree {tree_tokens}: "
              f"exact-reuse ratio {naive_tokens / tree_tokens:.2f}", flush=True)
        run_workload(det, parts[:1], Engine(engine_model, settings), tok, bos, sep)  # warm-up
        res: dict = {"engine": [], "naive": []}
        for _ in range(args.repeats):  # interleaved, best of n: the machine may be shared
            res["engine"].append(run_workload(det, parts, Engine(engine_model, settings), tok, bos, sep))
            if not args.skip_naive:
                naive = NaiveScorer(model, args.context, args.stride, progress=False)
                res["naive"].append(run_workload(det, parts, naive, tok, bos, sep))
        eng = min(res["engine"], key=lambda r: r["wall_s"])
        line = f"{name:15s} engine {eng['tokens_per_s']:8.0f} tok/s ({eng['wall_s']:6.2f} s, {eng['tokens']} tokens)"
        if res["naive"]:
            nai = min(res["naive"], key=lambda r: r["wall_s"])
            res["speedup"] = nai["wall_s"] / eng["wall_s"]
            res["log10_p_diff"] = abs(eng["log10_p"] - nai["log10_p"])
            line += (f" | naive {nai['tokens_per_s']:8.0f} tok/s ({nai['wall_s']:6.2f} s) | x{res['speedup']:.1f}"
                     f" | log10 p engine {eng['log10_p']:.6f} naive {nai['log10_p']:.6f}")
        print(line, flush=True)
        res["reuse_ratio"] = naive_tokens / tree_tokens
        report["results"][name] = res
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
