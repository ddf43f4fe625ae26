"""One prefix and all its continuations laid out in a single row ("tree attention").

A multiple-choice group (the 24 option orders of an item, an item's answer choices) is a
prefix tree: the question, then continuations that share their first options. Laid out
once, parents before children, with each token attending only to its own path (the
prefix, its ancestors, the earlier tokens of its node) and carrying the position it has
in its own sequence, one forward pass over the row gives every token the log-prob it
would get in its sequence alone: each shared piece costs one token slot, and a batch of
rows is one pass with no KV-cache bookkeeping.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audit.prefix_tree import build_tree
from audit.requests import Group


@dataclass
class TreeRow:
    tokens: np.ndarray  # (T,) prefix, then the tree's nodes, parents before children
    positions: np.ndarray  # (T,) each token's position in its own sequence
    node: np.ndarray  # (T,) the token's node (0: the prefix)
    ancestors: np.ndarray  # (N, N) bool: ancestors[n, m] = m is n or above it
    source: np.ndarray  # (T,) the row position whose output predicts this token (-1: not scored)
    paths: list[np.ndarray]  # per continuation: the row positions of its tokens

    def __len__(self) -> int:
        return len(self.tokens)


def tree_row(group: Group) -> TreeRow:
    """The row of ``group`` (a non-empty prefix; continuations of at least one token)."""
    prefix = list(group.prefix)
    tree = build_tree([list(c) for c in group.continuations])
    order = sorted(range(len(tree.tokens)), key=lambda n: tree.start[n])  # a parent starts before its child
    row_node = {n: k + 1 for k, n in enumerate(order)}
    first = {}  # tree node -> row position of its first token
    at = len(prefix)
    for n in order:
        first[n], at = at, at + len(tree.tokens[n])
    tokens, node, source = list(prefix), [0] * len(prefix), [-1] * len(prefix)  # a group never scores its prefix
    for n in order:
        p = tree.parent[n]
        source.append(first[p] + len(tree.tokens[p]) - 1 if p >= 0 else len(prefix) - 1)
        source += range(first[n], first[n] + len(tree.tokens[n]) - 1)
        tokens += tree.tokens[n]
        node += [row_node[n]] * len(tree.tokens[n])
    positions = list(range(len(prefix))) + [len(prefix) + tree.start[n] + k for n in order
                                            for k in range(len(tree.tokens[n]))]
    ancestors = np.eye(len(order) + 1, dtype=bool)
    ancestors[:, 0] = True
    for n in order:
        m = tree.parent[n]
        while m >= 0:
            ancestors[row_node[n], row_node[m]] = True
            m = tree.parent[m]
    paths = [np.concatenate([np.arange(first[n], first[n] + len(tree.tokens[n])) for n in reversed(tree.path(i))])
             for i in range(len(group.continuations))]
    return TreeRow(np.array(tokens), np.array(positions), np.array(node), ancestors, np.array(source), paths)


def batch_inputs(rows: list[TreeRow], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """input_ids, position_ids and an additive (B, 1, W, W) mask; padding attends to itself."""
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    pos = np.zeros((len(rows), width), dtype=np.int64)
    allowed = np.broadcast_to(np.eye(width, dtype=bool), (len(rows), width, width)).copy()
    causal = np.tril(np.ones((width, width), dtype=bool))
    for b, r in enumerate(rows):
        t = len(r)
        ids[b, :t], pos[b, :t] = r.tokens, r.positions
        allowed[b, :t, :t] = r.ancestors[r.node[:, None], r.node[None, :]] & causal[:t, :t]
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(torch.from_numpy(~allowed), torch.finfo(dtype).min)
    return {"input_ids": torch.from_numpy(ids), "position_ids": torch.from_numpy(pos), "attention_mask": mask[:, None]}


def row_logprobs(logits: torch.Tensor, rows: list[TreeRow]) -> list[np.ndarray]:
    """Per row, log p(token | its path) at every position (0 where nothing predicts it)."""
    batch, width, vocab = logits.shape
    logz = torch.logsumexp(logits.float(), dim=-1).reshape(-1)
    flat = logits.reshape(-1, vocab)
    out = []
    for b, r in enumerate(rows):
        scored = np.flatnonzero(r.source >= 0)
        src = torch.from_numpy(b * width + r.source[scored]).to(logits.device)
        tgt = torch.from_numpy(r.tokens[scored]).to(logits.device)
        lp = np.zeros(len(r))
        lp[scored] = (flat[src, tgt].float() - logz[src]).double().cpu().numpy()
        out.append(lp)
    return out
