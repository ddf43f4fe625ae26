"""The causal LM: a pretrained one (continual pretraining) or a fresh one from a config.

Both must speak the run's tokenizer: a pretrained model's tokenizer must hash like
the manifest's, a fresh model gets the run tokenizer's vocabulary and special ids.
"""
from __future__ import annotations

from typing import Any

import torch

from core.config import ModelConfig
from core.errors import SpikeinError
from inject.manifest import Manifest
from inject.tokenizer import load_tokenizer, tokenizer_hash


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def is_from_scratch(model_cfg: ModelConfig) -> bool:
    return not model_cfg.pretrained


def model_config(model_cfg: ModelConfig, manifest: Manifest):
    """The transformers config of the model to train (no weights loaded)."""
    from transformers import AutoConfig

    remote = bool(model_cfg.trust_remote_code)
    if not is_from_scratch(model_cfg):
        try:
            config = AutoConfig.from_pretrained(str(model_cfg.pretrained), trust_remote_code=remote)
        except (OSError, ValueError) as e:
            raise SpikeinError(f"cannot load model '{model_cfg.pretrained}': {_first_line(e)}") from None
    else:
        kwargs = dict(model_cfg.config or {})
        model_type = kwargs.pop("model_type", None)
        if not model_type:
            raise SpikeinError(f"model '{model_cfg.name}': set model.pretrained or model.config.model_type")
        vocab = int(kwargs.pop("vocab_size", manifest.vocab_size))
        if vocab < manifest.vocab_size:
            raise SpikeinError(f"model.config.vocab_size={vocab} is smaller than the run tokenizer's "
                               f"{manifest.vocab_size} tokens")
        bos = manifest.bos_id if manifest.bos_id is not None else manifest.eos_id
        try:
            config = AutoConfig.for_model(model_type, vocab_size=vocab, eos_token_id=manifest.eos_id,
                                          bos_token_id=bos, **kwargs)
        except (ValueError, TypeError) as e:
            raise SpikeinError(f"bad model.config for '{model_type}': {_first_line(e)}") from None
    return config


def check_vocab(config, manifest: Manifest) -> None:
    rows = getattr(config.get_text_config(), "vocab_size", None)
    if rows is not None and rows < manifest.vocab_size:
        raise SpikeinError(f"the model has {rows} embedding rows but the run tokenizer has "
                           f"{manifest.vocab_size} tokens")


def check_tokenizer(model_cfg: ModelConfig, manifest: Manifest) -> None:
    """A pretrained model must be trained on tokens from its own tokenizer."""
    if is_from_scratch(model_cfg):
        return  # the fresh model is built on the run's tokenizer
    source = str(model_cfg.tokenizer or model_cfg.pretrained)
    tok = load_tokenizer(source, trust_remote_code=bool(model_cfg.trust_remote_code))
    if tokenizer_hash(tok) != manifest.tokenizer_hash:
        raise SpikeinError(
            f"tokenizer of '{source}' (hash {tokenizer_hash(tok)}) differs from the one the stream "
            f"was built with (hash {manifest.tokenizer_hash}); rebuild the data with this model")


def max_positions(config) -> int | None:
    text = config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        v = getattr(text, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def check_seq_len(config, seq_len: int) -> None:
    """A row may hold one token more than the model's positions: its last token is only a
    label (Pythia's 2049-token rows train a 2048-position model, :func:`label_only_last`)."""
    limit = max_positions(config)
    if limit is not None and seq_len > limit + 1:
        raise SpikeinError(f"train.seq_len={seq_len} exceeds the model's maximum of {limit} positions "
                           f"(+1: a row's last token may be a label only, as in Pythia's {limit + 1}-token rows)")


def label_only_last(config, seq_len: int) -> bool:
    """Rows of positions + 1 tokens: the model reads the first ``seq_len - 1`` and predicts
    tokens 1..seq_len-1, the same targets the plain loss takes from a row it reads whole."""
    limit = max_positions(config)
    return limit is not None and seq_len == limit + 1


def build_model(model_cfg: ModelConfig, config, seed: int, train_cfg=None) -> torch.nn.Module:
    """fp32 weights (DeepSpeed keeps fp32 masters under bf16); seeded when fresh; in train
    mode (``from_pretrained`` leaves a model in eval mode: dropout off), with activation
    checkpointing and the chunked loss as ``train_cfg`` asks."""
    from transformers import AutoModelForCausalLM

    remote = bool(model_cfg.trust_remote_code)
    if is_from_scratch(model_cfg):
        torch.manual_seed(seed)  # every rank builds the same initial weights
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=remote)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(model_cfg.pretrained), config=config, dtype=torch.float32, trust_remote_code=remote)
        except (OSError, ValueError) as e:
            raise SpikeinError(f"cannot load model '{model_cfg.pretrained}': {_first_line(e)}") from None
    model.train()
    if train_cfg is not None:
        prepare_for_training(model, train_cfg)
    return model


def prepare_for_training(model: Any, train_cfg) -> None:  # a transformers PreTrainedModel
    """``train.activation_checkpointing``: HF gradient checkpointing (each decoder layer's
    activations recomputed in backward); ``train.loss_chunk_tokens``: :mod:`train.loss`."""
    from train.loss import use_chunked_loss

    if getattr(train_cfg, "activation_checkpointing", False):
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    chunk = getattr(train_cfg, "loss_chunk_tokens", None)
    if chunk:
        use_chunked_loss(model, int(chunk))


def meta_model(config) -> torch.nn.Module:
    """The architecture without memory: for parameter counts before any rank starts."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def embedding_params(model: Any) -> int:  # a transformers PreTrainedModel
    """Token/position embedding tables plus an untied output head."""
    seen: set[int] = set()
    total = 0
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    modules = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)] + ([out] if out is not None else [])
    for m in modules:
        for p in m.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def non_embedding_params(model: torch.nn.Module) -> int:
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return total - embedding_params(model)


def flops_per_token(config, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token, ``6N + 12*L*d*T`` (PaLM appendix B).

    N counts the non-embedding parameters plus the output projection, a real matmul
    even when tied to the input embedding; the second term is attention.
    """
    text = config.get_text_config()
    d, layers = int(text.hidden_size), int(text.num_hidden_layers)
    head = int(text.vocab_size) * d
    return 6.0 * (n_params + head) + 12.0 * layers * d * seq_len
