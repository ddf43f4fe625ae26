"""Tokenizers: a model's own (hub id or local path) or a byte-level BPE trained here."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from core.errors import SpikeinError

EOS_TOKEN = "<|endoftext|>"


@dataclass(frozen=True)
class SpecialIds:
    """The ids the stream writer needs: EOS ends every document; BOS opens one if the model uses it."""

    eos: int
    bos: int | None


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """AutoTokenizer from a local directory or hub id, with a one-line error when unreachable."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpikeinError(f"cannot load tokenizer '{name_or_path}': {first}") from None


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | Path):
    """Train a byte-level BPE on ``texts`` and save it as a HF fast tokenizer in ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN)
    tok.save_pretrained(str(out_dir))
    return tok


def special_ids(tokenizer) -> SpecialIds:
    """EOS (required) and the BOS the tokenizer itself prepends, if any (Llama yes, GPT-2 no)."""
    if tokenizer.eos_token_id is None:
        raise SpikeinError(f"tokenizer {tokenizer.name_or_path!r} has no EOS token")
    with_special = tokenizer("a")["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    uses_bos = bos is not None and len(with_special) > len(without) and with_special[0] == bos
    return SpecialIds(eos=tokenizer.eos_token_id, bos=bos if uses_bos else None)


def tokenizer_hash(tokenizer) -> str:
    """A fingerprint of the vocabulary, merges and special tokens (not of file paths)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise SpikeinError(f"tokenizer {tokenizer.name_or_path!r} is not a fast tokenizer")
    h = hashlib.sha256(backend.to_str().encode())
    h.update(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    return h.hexdigest()[:16]


def vocab_size(tokenizer) -> int:
    return len(tokenizer)
