"""The batched scoring engine.

- A group (one prefix, many continuations: an item's option orders or answer choices) is
  laid out as one row with a tree attention mask (``audit/tree_rows.py``): its shared
  pieces run once, in one pass, with no cache.
- Other sequences that fit the context go through a prefix tree (``audit/prefix_tree.py``):
  shared prefixes (the first items of ordering shuffles, repeated shuffles) run once and
  every continuation reuses their KV cache; a tree row would put a whole shard's orders
  in one row, and attention over thousands of tokens costs more than the cache.
  Tree nodes run in length-sorted, right-padded buckets under a token budget.
- Per-token statistics (``token_stats``: membership inference, one pass per item) take the
  window path, batched under the row budget, since each pass holds vocabulary-sized tensors.
- Longer sequences are cut into sliding windows (``audit/windows.py``), sorted by length
  and batched under the same budget.

Batch invariance: padding is masked and positions are explicit, so a sequence's score does
not depend on its neighbours beyond floating-point reduction order (fp32: well under 1e-4);
the neighbours themselves do not depend on the number of ranks (chunks: audit/scoring.py).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from audit.model import cache_kwarg
from audit.prefix_tree import build_tree
from audit.requests import Group, Request, TokenStats
from audit.scoring import BaseScorer, target_logprobs, vocab_stats
from audit.tree_rows import TreeRow, batch_inputs, row_logprobs, tree_row
from audit.windows import Window
from core.config import AuditBase


@dataclass(frozen=True)
class EngineSettings:
    context: int = AuditBase.context  # the defaults: audit.<key> (core/config.py)
    stride: int = AuditBase.stride
    token_budget: int = AuditBase.token_budget  # padded tokens per forward pass
    prefix_reuse: bool = AuditBase.prefix_reuse
    progress: bool = AuditBase.progress
    min_fill: float | None = None  # prefix-tree buckets: shortest node vs longest (None: by device)
    min_tokens: int | None = None  # ... once a bucket holds this many real tokens (None: by device)
    min_node: int | None = None  # shared pieces shorter than this are rerun per continuation (None: by device)
    chunk_tokens: int = AuditBase.chunk_tokens  # inputs per independently scored chunk (audit/scoring.py: rank-free scores)


def pack(costs: Sequence[int], widths: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive runs of items whose ``rows * max width`` stays within ``budget``.

    Items should come sorted by width, widest first; ``costs`` are the rows each item adds.
    """
    batches: list[list[int]] = []
    rows, width = 0, 0
    for i, (c, w) in enumerate(zip(costs, widths)):
        if batches and (rows + c) * max(width, w) <= budget:
            batches[-1].append(i)
            rows, width = rows + c, max(width, w)
        else:
            batches.append([i])
            rows, width = c, w
    return batches


def pad(seqs: Sequence[Sequence[int]], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (pad id 0, never attended to) and the matching 0/1 mask."""
    width = width if width is not None else max((len(s) for s in seqs), default=0)
    ids = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


class Engine(BaseScorer):
    def __init__(self, model, settings: EngineSettings = EngineSettings()):
        super().__init__(model, settings.context, settings.stride, settings.progress, settings.chunk_tokens)
        self.settings = settings
        self.cache_kw = cache_kwarg(model)
        # CPU time goes with padded tokens; a GPU pays per pass: pad more, run fewer passes there
        gpu = self.device.type == "cuda"
        self.min_fill = settings.min_fill if settings.min_fill is not None else (0.3 if gpu else 0.75)
        self.min_tokens = settings.min_tokens if settings.min_tokens is not None else (2048 if gpu else 256)
        self.min_node = settings.min_node if settings.min_node is not None else (32 if gpu else 16)
        # tree rows need a kernel that takes an arbitrary additive mask (not flash-attention)
        self.masks_ok = getattr(model.config, "_attn_implementation", "eager") in ("sdpa", "eager")
        # on a CPU, passes past ~2k tokens spill the caches (logits alone are tokens x vocab floats)
        self.row_budget = settings.token_budget if gpu else min(settings.token_budget, 2048)

    def _score(self, requests: Sequence[Request]) -> np.ndarray:
        sums = np.zeros(len(requests))
        # the tree feeds every token (position ids up to len - 1); longer ones take the windows
        fits = [self.settings.prefix_reuse and len(r.tokens) <= self.context for r in requests]
        in_tree = [i for i, ok in enumerate(fits) if ok]
        windows = [(i, w) for i, r in enumerate(requests) if not fits[i] for w in self.windows(r)]
        windows.sort(key=lambda row: -(row[1].end - row[1].start))
        window_batches = pack([1] * len(windows), [w.end - w.start for _, w in windows], self.settings.token_budget)
        bar = tqdm(total=len(in_tree) + len(window_batches), desc="scoring", leave=False, delay=1.0,
                   disable=self._quiet())
        if in_tree:
            sums[in_tree] = self._tree_batch([requests[i] for i in in_tree])
            bar.update(len(in_tree))
        for batch in window_batches:
            part = [windows[k] for k in batch]
            for (i, _), s in zip(part, self._window_batch(requests, part)):
                sums[i] += s
            bar.update()
        bar.close()
        return sums

    # --- groups: one tree row each ---------------------------------------------------
    def _score_groups(self, groups: Sequence[Group]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(groups)
        rows = {i: tree_row(g) for i, g in enumerate(groups) if self._packable(g)}
        rows = {i: r for i, r in rows.items() if len(r) <= self.row_budget}
        order = sorted(rows, key=lambda i: -len(rows[i]))
        batches = pack([1] * len(order), [len(rows[i]) for i in order], self.row_budget)
        for batch in tqdm(batches, desc="scoring", leave=False, delay=1.0, disable=self._quiet()):
            picked = [rows[order[k]] for k in batch]
            for k, lp in zip(batch, self._row_batch(picked)):
                out[order[k]] = np.array([lp[path].sum() for path in rows[order[k]].paths])
        rest = [i for i in range(len(groups)) if out[i] is None]
        if rest:  # no prefix, too long, or an attention kernel without custom masks
            for i, s in zip(rest, super()._score_groups([groups[i] for i in rest])):
                out[i] = s
        return out  # type: ignore[return-value]

    def _packable(self, group: Group) -> bool:
        longest = len(group.prefix) + max(map(len, group.continuations), default=0)
        return (self.settings.prefix_reuse and self.masks_ok and len(group.prefix) > 0
                and len(group.continuations) > 0 and all(group.continuations) and longest <= self.context)

    def _row_batch(self, rows: list[TreeRow]) -> list[np.ndarray]:
        dtype = next(self.model.parameters()).dtype
        inputs = {k: v.to(self.device) for k, v in batch_inputs(rows, dtype).items()}
        self._ran(sum(map(len, rows)))
        return row_logprobs(self.model(**inputs, use_cache=False).logits, rows)

    # --- sliding windows ------------------------------------------------------------
    def _window_batch(self, requests: Sequence[Request], rows: list[tuple[int, Window]]) -> np.ndarray:
        toks = [requests[i].tokens for i, _ in rows]
        ids, mask = pad([t[w.start : w.end] for t, (_, w) in zip(toks, rows)])
        tgt, _ = pad([t[w.start + 1 : w.end + 1] for t, (_, w) in zip(toks, rows)], ids.shape[1])
        counted = torch.zeros(ids.shape, dtype=torch.float64)
        for k, (_, w) in enumerate(rows):
            counted[k, w.first_scored - w.start - 1 : w.last_scored - w.start - 1] = 1
        self._ran(int(mask.sum()))
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False)
        lp = target_logprobs(out.logits, tgt.to(self.device))
        return (lp.double() * counted.to(self.device)).sum(1).cpu().numpy()

    # --- per-token statistics (membership inference) ----------------------------------
    def _token_stats(self, requests: Sequence[Request]) -> list[TokenStats]:
        """Every request's windows, widest first, in batches within the row budget (the
        vocabulary-sized tensors of one batch at a time); counted targets only."""
        windows = [(i, w) for i, r in enumerate(requests) for w in self.windows(r)]
        windows.sort(key=lambda row: -(row[1].end - row[1].start))
        batches = pack([1] * len(windows), [w.end - w.start for _, w in windows], self.row_budget)
        pieces: list[list[tuple[int, tuple[np.ndarray, ...]]]] = [[] for _ in requests]
        for batch in tqdm(batches, desc="token stats", leave=False, delay=1.0, disable=self._quiet()):
            part = [windows[k] for k in batch]
            for (i, w), stats in zip(part, self._window_stats(requests, part)):
                pieces[i].append((w.start, stats))
        out = []
        for mine in pieces:
            ordered = [stats for _, stats in sorted(mine, key=lambda m: m[0])]
            out.append(TokenStats(*(np.concatenate([m[f] for m in ordered]) if ordered else np.zeros(0) for f in range(3))))
        return out

    def _window_stats(self, requests: Sequence[Request], rows: list[tuple[int, Window]]) -> list[tuple[np.ndarray, ...]]:
        toks = [requests[i].tokens for i, _ in rows]
        ids, mask = pad([t[w.start : w.end] for t, (_, w) in zip(toks, rows)])
        tgt, _ = pad([t[w.start + 1 : w.end + 1] for t, (_, w) in zip(toks, rows)], ids.shape[1])
        self._ran(int(mask.sum()))
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False)
        stats = [v.double().cpu().numpy() for v in vocab_stats(out.logits, tgt.to(self.device))]
        cuts = [(w.first_scored - w.start - 1, w.last_scored - w.start - 1) for _, w in rows]
        return [tuple(v[k, lo:hi] for v in stats) for k, (lo, hi) in enumerate(cuts)]

    # --- prefix tree ------------------------------------------------------------------
    def _tree_batch(self, requests: Sequence[Request]) -> np.ndarray:
        """Score sequences through their prefix tree (``audit/prefix_tree.py``)."""
        tree = build_tree([list(r.tokens) for r in requests]).merge_short(self.min_node)
        kids = tree.children()
        lp = [np.zeros(len(t)) for t in tree.tokens]  # log p of each node token (top-level firsts: unscored)
        self._descend(tree, kids, lp, tree.top(), None)
        return np.array([_path_sum(tree, lp, i, r.targets()) for i, r in enumerate(requests)])

    def _descend(self, tree, kids, lp, nodes: list[int], state: _Level | None) -> None:
        """Run ``nodes`` in length-sorted buckets, each continuing its parents' KV cache; a bucket
        of nodes with children keeps its cache for them. Depth first: one cache per tree level
        is alive at a time."""
        for bucket in self._buckets(tree, [n for n in nodes if not kids[n]], state):
            self._run_nodes(tree, kids, lp, bucket, state, keep=False)
        for bucket in self._buckets(tree, [n for n in nodes if kids[n]], state):
            child_state = self._run_nodes(tree, kids, lp, bucket, state, keep=True)
            self._descend(tree, kids, lp, [c for n in bucket for c in kids[n]], child_state)

    def _buckets(self, tree, nodes: list[int], state: _Level | None) -> list[list[int]]:
        """Nodes sorted by length, in buckets within the token budget (rows * (history + width)).
        A bucket holding ``min_tokens`` real tokens closes before a node shorter than ``min_fill``
        of its longest: little padding, without many tiny passes."""
        history = state.mask.shape[1] if state is not None else 0
        fill, enough = self.min_fill, self.min_tokens
        out: list[list[int]] = []
        width = real = 0
        for n in sorted(nodes, key=lambda n: -len(tree.tokens[n])):
            size = len(tree.tokens[n])
            fits = out and (len(out[-1]) + 1) * (history + width) <= self.settings.token_budget
            if fits and (size >= fill * width or real < enough):
                out[-1].append(n)
                real += size
            else:
                out.append([n])
                width = real = size
        return out

    def _run_nodes(self, tree, kids, lp, nodes: list[int], state: _Level | None, keep: bool) -> _Level | None:
        """One forward pass over ``nodes`` (continuing their parents' cache): fills in the
        log-probs of their tokens and of their children's first tokens."""
        dev = self.device
        ids, seg = pad([tree.tokens[n] for n in nodes])
        extra = {}
        if state is None:
            attn, base = seg, torch.zeros(len(nodes), dtype=torch.long)
        else:
            pr = torch.tensor([state.row[tree.parent[n]] for n in nodes])
            attn, base = torch.cat([state.mask[pr], seg], dim=1), state.length[pr]
            extra = {self.cache_kw: _select_rows(state.cache, pr.to(dev))}
        pos = base[:, None] + torch.arange(ids.shape[1])[None, :]
        self._ran(int(seg.sum()))
        out = self.model(input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev),
                         use_cache=keep or state is not None, **extra)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        own = logp[:, :-1].gather(-1, ids[:, 1:, None].to(dev)).squeeze(-1).double().cpu().numpy()
        for k, n in enumerate(nodes):
            lp[n][1:] = own[k, : len(tree.tokens[n]) - 1]
        nxt = [(k, c) for k, n in enumerate(nodes) for c in kids[n]]
        if nxt:
            pr_next = torch.tensor([k for k, _ in nxt])
            last = (seg.sum(1) - 1)[pr_next]
            first = torch.tensor([tree.tokens[c][0] for _, c in nxt])
            values = logp[pr_next.to(dev), last.to(dev), first.to(dev)].double().cpu().numpy()
            for (_, c), v in zip(nxt, values):
                lp[c][0] = v
        if not keep:
            return None
        return _Level(_cache_of(out), attn, base + seg.sum(1), {n: k for k, n in enumerate(nodes)})


@dataclass
class _Level:
    """What the children of one pass's nodes continue from."""

    cache: object
    mask: torch.Tensor  # (rows, history) 0/1, padding between segments included
    length: torch.Tensor  # real tokens so far per row (the next position id)
    row: dict[int, int]  # node -> row


def _path_sum(tree, lp: list[np.ndarray], seq: int, span: tuple[int, int]) -> float:
    """Summed log-probs of a sequence's tokens inside ``span``, from the nodes on its path."""
    lo, hi = span
    total = 0.0
    for node in tree.path(seq):
        a = tree.start[node]
        b = a + len(tree.tokens[node])
        if max(lo, a) < min(hi, b):
            total += float(lp[node][max(lo, a) - a : min(hi, b) - a].sum())
    return total


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _select_rows(cache, index: torch.Tensor):
    """A new cache whose row i is ``cache``'s row ``index[i]``; ``cache`` itself is left as is
    (several passes continue the same parents)."""
    if hasattr(cache, "layers") and hasattr(cache, "reorder_cache"):
        new = copy.copy(cache)
        new.layers = [copy.copy(layer) for layer in cache.layers]
        new.reorder_cache(index)  # index_select: new tensors in the copied layers
        return new
    if hasattr(cache, "reorder_cache"):
        new = copy.deepcopy(cache)
        new.reorder_cache(index)
        return new
    return tuple(tuple(t.index_select(0, index) for t in layer) for layer in cache)
