"""Accuracy styles on hand-computed log-likelihoods: letter / text pick the best total,
norm / bytes the best per character / per UTF-8 byte of the choice (lm-eval acc_norm / acc_bytes)."""
from __future__ import annotations

import numpy as np
import pytest

from audit.detectors import AuditContext, PartitionData, get_detector
from audit.detectors.accuracy import predict
from audit.scoring import BaseScorer
from core.errors import SpikeinError
from inject.items import Item


@pytest.mark.parametrize("lls, choices, style, want", [
    ([-4.0, -6.0], ["ab", "abcdef"], "text", 0),      # totals: -4 > -6
    ([-4.0, -6.0], ["ab", "abcdef"], "norm", 1),      # per char: -2 < -1
    ([-4.0, -6.0], ["ab", "abcdef"], "bytes", 1),     # ASCII: bytes = chars
    ([-4.0, -5.1], ["éé", "abc"], "norm", 1),         # per char: -2 < -1.7
    ([-4.0, -5.1], ["éé", "abc"], "bytes", 0),        # per byte: -1 (4 bytes) > -1.7
    ([-3.0, -1.5, -1.5], [" x", "ab", "cd"], "letter", 1),  # a tie goes to the first, as np.argmax
    ([-3.0, -2.0], ["abc", "ab"], "norm", 0),         # -1 == -1: the first again
])
def test_predict_on_hand_computed_cases(lls, choices, style, want):
    assert predict(lls, choices, style) == want


class FixedScorer(BaseScorer):
    """Returns the given log-likelihoods, one array per group; records the groups scored."""

    def __init__(self, lls):
        self.lls, self.groups, self.tokens_scored = lls, [], 0

    def score_groups(self, groups):
        self.groups += list(groups)
        return [np.asarray(x, dtype=np.float64) for x in self.lls[: len(groups)]]


class CharTokenizer:
    """One token per character (enough for the prompt splitting in audit.sequences)."""

    def __call__(self, texts, add_special_tokens=False):
        one = isinstance(texts, str)
        ids = [[ord(c) for c in t] for t in ([texts] if one else texts)]
        return {"input_ids": ids[0] if one else ids}


def test_norm_scores_the_text_prompt_and_divides_by_choice_length():
    items = [Item("a", "Which?", ("ab", "abcdef"), 1), Item("b", "Which?", ("xyz", "x"), 1)]
    lls = [[-4.0, -6.0], [-3.0, -2.0]]  # text picks 0, 1; norm picks 1 (-2 < -1), 0 (-1 > -2)
    part = PartitionData("bench", "p", 0, items)
    raws = {}
    for style in ("text", "norm"):
        scorer = FixedScorer(lls)
        ctx = AuditContext(scorer, CharTokenizer(), "mcq", [], None)
        raws[style] = get_detector("accuracy", {"style": style}).score(ctx, part)
        conts = ["".join(map(chr, c)) for c in scorer.groups[0].continuations]
        assert conts == [" ab", " abcdef"]  # the cloze continuation, as lm-eval's " " + choice
    assert raws["text"]["pred"] == [0, 1] and raws["text"]["correct"] == [0, 1]
    assert raws["norm"]["pred"] == [1, 0] and raws["norm"]["correct"] == [1, 0]
    assert raws["norm"]["ll"] == lls
    row = get_detector("accuracy", {"style": "norm"}).summarize([part], [raws["norm"]])[0]
    assert row["accuracy"] == 0.5


def test_unknown_style_names_the_choices():
    with pytest.raises(SpikeinError, match="letter, text, norm, bytes"):
        get_detector("accuracy", {"style": "acc_norm"})
