"""The training budget: global batch, optimizer steps and peak learning rate.

Shared because two stages must agree on it: ``spikein train`` trains on exactly this
budget, and ``spikein inject`` places benchmark copies inside the tokens training will
consume (copies past the last trained batch would never be seen).

``lr: auto`` and ``batch_tokens: auto`` use the Step Law of "Predictable Scale"
(Li et al. 2025), fitted on from-scratch dense LLM pretraining:
``lr = 1.79 * N^-0.713 * D^0.307`` and ``batch_tokens = 0.58 * D^0.571``
with N the non-embedding parameters and D the training tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.config import TrainConfig
from core.errors import SpikeinError


def step_law_lr(n_params: int, n_tokens: int) -> float:
    return 1.79 * n_params**-0.713 * n_tokens**0.307


def step_law_batch_tokens(n_tokens: int) -> float:
    return 0.58 * n_tokens**0.571


@dataclass(frozen=True)
class Budget:
    global_batch: int
    max_steps: int
    lr: float
    warmup_steps: int
    step_law: dict[str, float] | None  # the Step Law inputs and outputs, when used

    def describe(self, seq_len: int) -> str:
        tokens = self.max_steps * self.global_batch * seq_len
        text = (f"{self.max_steps} steps x {self.global_batch} sequences x {seq_len} tokens "
                f"= {tokens:,} tokens, lr {self.lr:.3g}, warmup {self.warmup_steps}")
        if self.step_law:  # lr=auto alone computes no batch: name only what the law gave
            law = self.step_law
            outputs = f"lr {law['lr']:.3g}" + (f", batch {law['batch_tokens']:,.0f} tokens" if "batch_tokens" in law else "")
            text += f" (Step Law: N={law['N']:,.0f} D={law['D']:,.0f} -> {outputs})"
        return text


def _is_auto(v: Any) -> bool:
    return isinstance(v, str) and v.strip().lower() == "auto"


def resolve_budget(train: TrainConfig, *, stream_tokens: int, n_params: int,
                   world_size: int, from_scratch: bool) -> Budget:
    """Global batch, optimizer steps and peak lr from ``cfg.train`` (Step Law where asked)."""
    seq_len, micro = int(train.seq_len), int(train.micro_batch)
    unit = micro * world_size
    law: dict[str, float] = {}
    tokens = _planned_tokens(train, stream_tokens)  # None: depends on the batch
    batch = _global_batch(train, seq_len, unit, tokens, law)
    if batch % unit:
        raise SpikeinError(
            f"train.global_batch={batch} is not a multiple of micro_batch x world size "
            f"({micro} x {world_size} = {unit})")
    steps = _max_steps(train, stream_tokens, batch * seq_len)
    lr = train.lr
    if _is_auto(lr):
        if not from_scratch:
            raise SpikeinError("train.lr=auto (Step Law) is for from-scratch runs; set train.lr "
                               "for continual pretraining of model.pretrained")
        d = steps * batch * seq_len
        lr = step_law_lr(n_params, d)
        law.update(N=float(n_params), D=float(d), lr=lr)
    elif law:
        law.update(N=float(n_params), lr=float(lr))
    if float(lr) <= 0:
        raise SpikeinError(f"train.lr must be positive, got {lr}")
    warmup = min(int(train.warmup_steps), steps)
    return Budget(batch, steps, float(lr), warmup, law or None)


def _planned_tokens(train: TrainConfig, stream_tokens: int) -> int | None:
    if train.max_steps is not None:
        return None
    if train.max_tokens is not None:
        return int(train.max_tokens)
    return stream_tokens


def _global_batch(train: TrainConfig, seq_len: int, unit: int,
                  tokens: int | None, law: dict[str, float]) -> int:
    bt = train.batch_tokens
    if bt is None:
        return int(train.global_batch)
    if _is_auto(bt):
        if tokens is None:
            raise SpikeinError("train.batch_tokens=auto needs the budget in tokens: set "
                               "train.max_tokens (or neither it nor train.max_steps for one pass)")
        bt = step_law_batch_tokens(tokens)
        law.update(D=float(tokens), batch_tokens=bt)
    # round to whole sequences and to a multiple of what one micro-step of all ranks holds
    return max(unit, round(float(bt) / seq_len / unit) * unit)


def _max_steps(train: TrainConfig, stream_tokens: int, tokens_per_step: int) -> int:
    if train.max_steps is not None:
        steps = int(train.max_steps)
    elif train.max_tokens is not None:
        steps = math.ceil(int(train.max_tokens) / tokens_per_step)
    else:  # one pass; the tail shorter than a batch is not trained on
        steps = stream_tokens // tokens_per_step
        if steps == 0:
            raise SpikeinError(
                f"the stream holds {stream_tokens:,} tokens, fewer than one global batch "
                f"({tokens_per_step:,}); lower train.global_batch or train.seq_len, or set train.max_steps")
    if steps <= 0:
        raise SpikeinError(f"train.max_steps must be positive, got {steps}")
    return steps
