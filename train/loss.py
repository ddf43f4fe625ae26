"""The training loss without all the fp32 logits at once.

HF's causal-LM loss builds (batch, seq, vocab) logits and upcasts them to fp32: for a
micro-batch of 16 x 2048 tokens and Qwen2.5's 152k vocabulary that is 20 GB, and as much
again for their gradient. Here the output head and cross-entropy run over chunks of
``chunk_tokens`` positions, each under activation checkpointing, so only one chunk's
logits exist at a time, forward and backward (the head's matmul runs twice). Same
arithmetic as HF's ``ForCausalLMLoss`` (fp32 logits, mean over the shifted targets).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from core.errors import SpikeinError

IGNORE = -100  # HF's ignore_index


def chunked_lm_loss(hidden: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor, chunk_tokens: int,
                    shift_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy of ``head(hidden)`` against ``labels`` shifted by one, or
    against ``shift_labels`` as given (one per position, as HF's loss takes them)."""
    if shift_labels is None:
        h, y = hidden[:, :-1], labels[:, 1:]
    else:
        h, y = hidden, shift_labels
    h = h.reshape(-1, hidden.shape[-1])
    y = y.reshape(-1).to(h.device)
    total = hidden.new_zeros((), dtype=torch.float32)
    for lo in range(0, h.shape[0], chunk_tokens):
        total = total + checkpoint(_chunk_loss, head, h[lo : lo + chunk_tokens], y[lo : lo + chunk_tokens],
                                   use_reentrant=False)
    return total / (y != IGNORE).sum().clamp(min=1)


def _chunk_loss(head: torch.nn.Module, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # the head as a module call: ZeRO-3 gathers its weight in the module's hooks
    return F.cross_entropy(head(h).float(), y, ignore_index=IGNORE, reduction="sum")


def use_chunked_loss(model: Any, chunk_tokens: int) -> None:  # a transformers PreTrainedModel
    """``model(input_ids=..., labels=...)`` returns the chunked loss (no logits) from now on."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    cfg = model.config.get_text_config()
    for key in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"):
        if getattr(cfg, key, None) not in (None, 1, 1.0):
            raise SpikeinError(f"train.loss_chunk_tokens: {cfg.model_type} scales its logits ({key}); "
                               "set train.loss_chunk_tokens=null for the model's own loss")
    base, head = model.base_model, model.get_output_embeddings()

    def forward(input_ids=None, labels=None, attention_mask=None, use_cache=False, shift_labels=None, **kwargs):
        hidden = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs).last_hidden_state
        loss = chunked_lm_loss(hidden, head, labels, chunk_tokens, shift_labels) if labels is not None else None
        return CausalLMOutputWithPast(loss=loss)

    model.forward = forward  # the instance's own: save_pretrained and the class are untouched
