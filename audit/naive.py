"""The reference path: one sequence at a time, fp32 logits, no prefix reuse.

This is how the papers' reference code scores (Oren et al.'s
``compute_logprob_of_token_sequence``); kept to check the engine against and to
measure its speed-up, never used by the audit stage.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from audit.requests import Request, TokenStats
from audit.scoring import BaseScorer, target_logprobs, vocab_stats


class NaiveScorer(BaseScorer):
    def _score(self, requests: Sequence[Request]) -> np.ndarray:
        out = np.zeros(len(requests))
        for i, r in enumerate(tqdm(requests, desc="naive", leave=False, delay=1.0, disable=self._quiet())):
            for w in self.windows(r):
                inp = torch.tensor([list(r.tokens[w.start : w.end])], device=self.device)
                tgt = torch.tensor(list(r.tokens[w.start + 1 : w.end + 1]), device=self.device)
                self._ran(inp.shape[1])
                lp = target_logprobs(self.model(input_ids=inp, use_cache=False).logits[0], tgt)
                lo = w.first_scored - w.start - 1
                out[i] += lp[lo : lo + w.last_scored - w.first_scored].double().sum().item()
        return out

    def _token_stats(self, requests: Sequence[Request]) -> list[TokenStats]:
        out = []
        for r in requests:
            parts = []
            for w in self.windows(r):
                inp = torch.tensor([list(r.tokens[w.start : w.end])], device=self.device)
                tgt = torch.tensor([list(r.tokens[w.start + 1 : w.end + 1])], device=self.device)
                self._ran(inp.shape[1])
                stats = vocab_stats(self.model(input_ids=inp, use_cache=False).logits, tgt)
                lo = w.first_scored - w.start - 1
                parts.append([v[0, lo : lo + w.last_scored - w.first_scored].double().cpu().numpy() for v in stats])
            out.append(TokenStats(*(np.concatenate([p[f] for p in parts]) if parts else np.zeros(0) for f in range(3))))
        return out
