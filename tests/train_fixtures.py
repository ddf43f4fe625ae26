"""Hand-built run dirs for train tests: a stream, a manifest and a tokenizer, no inject stage.

Copies are placed at chosen offsets, so tests know exactly which step sees which copy.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from conftest import make_tokenizer

from core.atomic import write_json
from inject.manifest import BenchmarkPlan, Copy, Manifest, Partition
from inject.tokenizer import special_ids, tokenizer_hash

VOCAB = 300  # the hand-built runs' tokenizer size (stream ids are drawn below it)

# A tiny Llama / GPT-2 for tests: hidden 32, 2 layers (a forward is well under a millisecond).
TINY_LLAMA = ["model=tiny_llama", "model.config.hidden_size=32", "model.config.intermediate_size=64",
              "model.config.num_hidden_layers=2", "model.config.num_attention_heads=2",
              "model.config.num_key_value_heads=2", "model.config.max_position_embeddings=64"]


def make_run(run_dir: Path, *, n_tokens: int, copies: Sequence[tuple[str, int, int]] = (),
             counts: dict[str, int] | None = None, seed: int = 0, pattern: Sequence[int] | None = None) -> Manifest:
    """``run_dir/data`` with a random (or repeated ``pattern``) stream and copies at given offsets.

    ``copies``: (partition, start, end) triples of benchmark ``synth``; ``counts``: partition
    name -> planned count (defaults to the number of copies given, plus a control ``p0``).
    """
    data = run_dir / "data"
    tok = make_tokenizer(data / "tokenizer", vocab_size=VOCAB)
    vocab = len(tok)
    rng = np.random.default_rng(seed)
    if pattern is not None:
        stream = np.resize(np.asarray(pattern, dtype=np.uint16), n_tokens)
    else:
        stream = rng.integers(0, vocab, size=n_tokens, dtype=np.uint16)
    (data / "stream.bin").write_bytes(stream.tobytes())
    counts = dict(counts or {"p0": 0})
    for name, _, _ in copies:
        counts.setdefault(name, sum(1 for c in copies if c[0] == name))
    parts = [Partition("synth", name, n, 4, f"partitions/synth/{name}.jsonl") for name, n in counts.items()]
    recorded, seen = [], {}
    for name, start, end in copies:
        k = seen[name] = seen.get(name, -1) + 1
        recorded.append(Copy("synth", name, k, start, end, "document", "mcq"))
    special = special_ids(tok)
    manifest = Manifest(
        config_hash=hashlib.sha256(stream.tobytes()).hexdigest()[:16], tokenizer_hash=tokenizer_hash(tok),
        tokenizer_dir="tokenizer", vocab_size=vocab, dtype="uint16", n_tokens=n_tokens, eos_id=special.eos,
        bos_id=special.bos, separator="\n\n", separator_ids=[], n_documents=1,
        benchmarks=[BenchmarkPlan("synth", "mcq", "document", (0.0, 1.0), 4 * len(parts))],
        partitions=parts, copies=recorded, injected_tokens=sum(e - s for _, s, e in copies))
    write_json(data / "manifest.json", manifest.to_json())
    return manifest


def train_overrides(run_dir: Path, *extra: str, model: Sequence[str] = tuple(TINY_LLAMA)) -> list[str]:
    """A tiny from-scratch fp32 CPU run, W&B off; ``extra`` wins."""
    return [f"run_dir={run_dir}", *model, "train.seq_len=32", "train.global_batch=4",
            "train.micro_batch=2", "train.warmup_steps=0", "train.log_every=1", "train.lr=3e-3",
            "logger.mode=disabled", *extra]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def ds_state_dict(ds_dir: Path) -> dict:
    """fp32 weights from a DeepSpeed state dir: the module states (stage 0) or zero_to_fp32."""
    import torch

    plain = ds_dir / "mp_rank_00_model_states.pt"
    if not list(ds_dir.glob("*optim_states.pt")) or not list(ds_dir.glob("zero_pp_rank_*")):
        return torch.load(plain, map_location="cpu", weights_only=False)["module"]
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(ds_dir.parent), tag="ds")


def weights_hash(hf_dir: Path) -> str:
    from safetensors.numpy import load_file

    tensors = load_file(str(hf_dir / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].tobytes())
    return h.hexdigest()
