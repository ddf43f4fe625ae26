"""The parts every scorer shares: data-parallel dispatch, window cutting, token counters.

The engine (prefix tree) and the naive scorer both subclass :class:`BaseScorer`; what
they are asked and answer (:class:`Request`, :class:`Group`, :class:`TokenStats`) is
plain data in :mod:`audit.requests`.

Two counters: ``tokens_scored`` counts targets whose log-prob a caller asked for (each
continuation's, each request's span); ``tokens_run`` counts tokens fed through the model
(after prefix reuse, padding excluded), so tokens_run / seconds is the engine's throughput.

Data parallel without rank-dependent scores: every call cuts its inputs into the same
chunks whatever the number of ranks (consecutive inputs up to ``chunk_tokens`` tokens,
:func:`chunks`), and ranks score whole chunks, each as if it were the only one. A
score therefore sees the same batch shapes and neighbours on 1 rank or 8, and is
bit-identical between them on the same device; only ``chunk_tokens`` (part of the raw
cache key) can change it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from audit.model import max_positions
from audit.requests import Group, Request, TokenStats
from audit.windows import Window, check_context, windows
from core.config import AuditBase
from core.workers import collective


class BaseScorer:
    """Data-parallel dispatch, window cutting and the scored-token counter.

    Subclasses implement ``_score`` (and may override ``_score_groups``) for the
    share of work this process got.
    """

    def __init__(self, model, context: int = AuditBase.context, stride: int = AuditBase.stride,
                 progress: bool = AuditBase.progress, chunk_tokens: int = AuditBase.chunk_tokens):
        self.model = model
        self.chunk_tokens = int(chunk_tokens)
        self.device = next(model.parameters()).device
        check_context(context, stride)
        limit = max_positions(model)  # a longer context than the model has: cap both, keep the overlap ratio
        self.context = min(context, limit) if limit else context
        self.stride = max(1, stride * self.context // context)
        self.progress = progress
        self.tokens_scored = 0  # targets counted so far (all ranks together)
        self.tokens_run = 0  # tokens fed to the model so far (all ranks together, once a call returns)
        self._run_local = 0  # ... by this rank, during the current call

    def windows(self, request: Request) -> list[Window]:
        return windows(len(request.tokens), self.context, self.stride, request.targets())

    def _quiet(self) -> bool:
        """No progress bars: switched off, not rank 0, or not on a terminal."""
        from core.progress import show_bars

        return not (self.progress and collective.is_main() and show_bars())

    @torch.inference_mode()
    def score(self, requests: Sequence[Request]) -> np.ndarray:
        """Summed log-probs (float64), in input order."""
        local = self._dispatch(requests, [len(r.tokens) for r in requests], self._score)
        self.tokens_scored += sum(r.count() for r in requests)
        return np.asarray(local, dtype=np.float64)

    @torch.inference_mode()
    def score_groups(self, groups: Sequence[Group]) -> list[np.ndarray]:
        """log p(continuation | prefix) for every continuation of every group, in input order."""
        sizes = [len(g.prefix) * len(g.continuations) + sum(map(len, g.continuations)) for g in groups]
        out = self._dispatch(groups, sizes, self._score_groups)
        self.tokens_scored += sum(sum(map(len, g.continuations)) for g in groups)
        return [np.asarray(o, dtype=np.float64) for o in out]

    @torch.inference_mode()
    def token_stats(self, requests: Sequence[Request]) -> list[TokenStats]:
        """Per-target log-probs and next-token log-prob mean/std of every request, in input order."""
        out = self._dispatch(requests, [len(r.tokens) for r in requests], self._token_stats)
        self.tokens_scored += sum(r.count() for r in requests)
        return out

    def _dispatch(self, items: Sequence, sizes: Sequence[int], run) -> list:
        """``run`` on this rank's chunks (the same chunks on any number of ranks), every
        rank's answers gathered back into input order."""
        units = chunks(sizes, self.chunk_tokens)
        mine = collective.my_share([sum(sizes[i] for i in u) for u in units])
        local = [list(run([items[i] for i in units[u]])) for u in mine]
        self._count_run()
        out: list = [None] * len(items)
        for unit, answers in zip(units, collective.gather_in_order(len(units), mine, local)):
            for i, a in zip(unit, answers):
                out[i] = a
        return out

    def _ran(self, n_tokens: int) -> None:
        """Called once per forward pass with the real (unpadded) tokens it fed."""
        self._run_local += int(n_tokens)

    def _count_run(self) -> None:
        self.tokens_run += collective.total(self._run_local)
        self._run_local = 0

    def _score(self, requests: Sequence[Request]) -> np.ndarray:
        raise NotImplementedError

    def _token_stats(self, requests: Sequence[Request]) -> list[TokenStats]:
        raise NotImplementedError

    def _score_groups(self, groups: Sequence[Group]) -> list[np.ndarray]:
        """Without prefix reuse: each continuation scored as a whole sequence."""
        flat = [r for g in groups for r in g.requests()]
        scores = self._score(flat) if flat else np.zeros(0)
        out, at = [], 0
        for g in groups:
            out.append(scores[at : at + len(g.continuations)])
            at += len(g.continuations)
        return out


def chunks(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Consecutive runs of indices whose sizes sum to at most ``limit`` (an item larger than
    ``limit`` alone); consecutive, so neighbours that share prefixes stay together."""
    out: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if out and total + size <= limit:
            out[-1].append(i)
            total += size
        else:
            out.append([i])
            total = size
    return out


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position, computed in fp32 whatever the model's precision."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def vocab_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(target), E[log p(z)] and sd[log p(z)] for z ~ p at each position, in fp32.

    The expectation is under the next-token distribution itself (Zhang et al.'s Min-K%++
    code: mu = sum p log p). Materialises a few (batch, positions, vocab) tensors: call it
    on one batch at a time.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    mean = (p * logp).sum(-1)
    var = (p * (logp - mean[..., None]).square_()).sum(-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1), mean, var.clamp_(min=0).sqrt_()
