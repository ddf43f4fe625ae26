"""A radix tree over token sequences: every shared prefix is one node, scored once.

Many audit sequences share prefixes: the 24 option orders of an item share the question
(and orders with the same first option share that too); the shuffles of an ordering shard
share their first items, and some shuffles repeat exactly. The engine runs the tree level
by level, each node continuing its parent's KV cache, so a shared prefix costs one pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class PrefixTree:
    tokens: list[list[int]] = field(default_factory=list)  # each node's own tokens
    start: list[int] = field(default_factory=list)  # position of a node's first token in its sequences
    parent: list[int] = field(default_factory=list)  # -1: a top-level node
    terminal: list[int] = field(default_factory=list)  # per sequence: the node it ends in
    dead: set[int] = field(default_factory=set)  # nodes merged into their children

    def add(self, tokens: list[int], start: int, parent: int) -> int:
        self.tokens.append(tokens)
        self.start.append(start)
        self.parent.append(parent)
        return len(self.tokens) - 1

    def end(self, node: int) -> int:
        return self.start[node] + len(self.tokens[node])

    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in self.tokens]
        for node, p in enumerate(self.parent):
            if p >= 0 and node not in self.dead:
                kids[p].append(node)
        return kids

    def top(self) -> list[int]:
        return [n for n, p in enumerate(self.parent) if p < 0 and n not in self.dead]

    def merge_short(self, min_len: int) -> PrefixTree:
        """Fold inner nodes shorter than ``min_len`` into their children (their tokens are then
        run once per child): a short shared piece is not worth a pass of its own."""
        if min_len <= 1:
            return self
        ends = set(self.terminal)
        kids = self.children()
        todo = self.top()
        while todo:
            n = todo.pop()
            if kids[n] and n not in ends and len(self.tokens[n]) < min_len:
                self.dead.add(n)
                for c in kids[n]:
                    self.tokens[c] = self.tokens[n] + self.tokens[c]
                    self.start[c], self.parent[c] = self.start[n], self.parent[n]
            todo.extend(kids[n])
        return self

    def path(self, seq: int) -> list[int]:
        node, out = self.terminal[seq], []
        while node >= 0:
            out.append(node)
            node = self.parent[node]
        return out


def build_tree(seqs: Sequence[Sequence[int]]) -> PrefixTree:
    """The compressed trie of ``seqs`` (each non-empty), built from their sorted order:
    consecutive sorted sequences share exactly their common prefix."""
    tree = PrefixTree(terminal=[-1] * len(seqs))
    lists = [list(s) for s in seqs]
    stack: list[int] = []  # nodes on the previous sequence's path
    prev: list[int] = []
    for i in sorted(range(len(lists)), key=lambda k: lists[k]):
        s = lists[i]
        shared = common_prefix(prev, s)
        popped = -1
        while stack and tree.end(stack[-1]) > shared:
            popped = stack.pop()
        top_end = tree.end(stack[-1]) if stack else 0
        if top_end < shared:  # split the node that runs past the shared part
            mid = tree.add(s[top_end:shared], top_end, stack[-1] if stack else -1)
            tree.tokens[popped] = tree.tokens[popped][shared - top_end :]
            tree.start[popped], tree.parent[popped] = shared, mid
            stack.append(mid)
        if len(s) > shared:
            stack.append(tree.add(s[shared:], shared, stack[-1] if stack else -1))
        tree.terminal[i] = stack[-1]
        prev = s
    return tree
