"""The corpus scan: exact renderings in token space, quoted questions in text space, window-independent."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import WORDS, make_tokenizer

from inject.corpus_scan import (
    Target,
    item_target,
    question_words,
    scan_corpus,
    token_bytes_table,
    windows,
)
from inject.items import Item
from inject.render import render_mcq

LONG_Q = ("In the old harbor town the copper lantern that the keeper lit each winter night "
          "was said to guide which kind of ship home?")
ITEMS = [
    Item("long", LONG_Q, ("fishing boats", "silver barges", "marble ferries", "velvet yachts"), 0),
    Item("short", "Which old beacon on the hill faces north tonight?", ("the ember", "the frost", "the tide", "the orbit"), 2),
    Item("tiny", "Which beacon?", ("the anchor", "the compass", "the prism", "the summit"), 0),
    Item("absent", "Where does the quiet otter sleep at dawn?", ("maple", "cedar", "delta", "sigma"), 1),
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"), ITEMS)


def encode(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def filler(rng, n_words: int) -> str:
    return " ".join(rng.choice(WORDS, n_words))


@pytest.fixture(scope="module")
def corpus(tok):
    """Filler documents with: item 'long' rendered verbatim once, its question quoted (other case and
    punctuation, mid-paragraph) twice; 'short' (9 words) quoted once as a whole; 'tiny' (2 words) quoted
    but below the 8-word floor; 'absent' nowhere."""
    rng = np.random.default_rng(0)
    eos = tok.eos_token_id
    docs = [filler(rng, 300) for _ in range(40)]
    docs[7] = f"{filler(rng, 50)}\n\n{render_mcq(ITEMS[0])}\n\n{filler(rng, 50)}"
    docs[19] = f"{filler(rng, 40)} as they asked: \"{LONG_Q.upper().replace(',', ' ,')}\" and then {filler(rng, 40)}"
    docs[23] = f"{filler(rng, 30)}. {LONG_Q[:-1]}, they wondered. {filler(rng, 30)}"
    docs[31] = f"{filler(rng, 30)} -- which old BEACON on the hill faces north tonight? {filler(rng, 30)}"
    docs[33] = f"{filler(rng, 30)}. Which beacon? {filler(rng, 30)}"
    tokens, starts = [], []
    for d in docs:
        starts.append(len(tokens))
        tokens += encode(tok, d) + [eos]
    return np.array(tokens, dtype=np.uint16), starts


def targets(tok) -> list[Target]:
    return [item_target(("b", "x0", it.id), encode(tok, render_mcq(it)), it.question) for it in ITEMS]


def pieces(tokens: np.ndarray, size: int):
    return ((a, tokens[a : a + size]) for a in range(0, len(tokens), size))


def summary(result):
    return {key[2]: {kind: (f.count, f.offsets) for kind, f in kinds.items()} for key, kinds in result.found.items()}


def test_normalisation_is_gpt3_style():
    assert question_words("  Which BEACON, faces\n north?! ") == (b"which", b"beacon", b"faces", b"north")
    # bytes, so corpus and question agree: non-ASCII letters are word characters, kept as they are
    assert question_words("Ångström's 3.5-volt") == ("Ångström".encode(), b"s", b"3", b"5", b"volt")


def test_rendering_and_quoted_questions_are_found_and_nothing_else(tok, corpus):
    tokens, starts = corpus
    got = summary(scan_corpus(pieces(tokens, len(tokens)), targets(tok), token_bytes_table(tok)))
    assert set(got) == {"long", "short"}  # 'absent' never appears; 'tiny' is too short to look for
    count, (offset,) = got["long"]["rendering"]
    assert count == 1 and starts[7] < offset < starts[8]
    assert tokens[offset : offset + 3].tolist() == encode(tok, render_mcq(ITEMS[0]))[:3]
    count, offsets = got["long"]["question"]  # doc 7 (inside the rendering), 19 (upper case), 23
    assert count == 3 and [int(np.searchsorted(starts, o, side="right")) - 1 for o in offsets] == [7, 19, 23]
    assert got["short"] == {"question": (1, got["short"]["question"][1])}
    assert starts[31] < got["short"]["question"][1][0] < starts[32]


def test_counts_do_not_depend_on_window_size_or_workers(tok, corpus):
    tokens, _ = corpus
    ts, table = targets(tok), token_bytes_table(tok)
    whole = summary(scan_corpus(pieces(tokens, len(tokens)), ts, table))
    for size, workers in ((97, 1), (1000, 2), (2345, 1)):  # overlap: longer than any occurrence here
        got = scan_corpus(pieces(tokens, size), ts, table, workers=workers, overlap=300)
        assert summary(got) == whole, (size, workers)


def test_skipped_spans_are_not_counted(tok, corpus):
    tokens, starts = corpus
    got = summary(scan_corpus(pieces(tokens, len(tokens)), targets(tok), token_bytes_table(tok),
                              skip_spans=[(starts[7], starts[8])]))  # as if doc 7 were an injected copy
    assert "rendering" not in got["long"] and got["long"]["question"][0] == 2


def test_windows_tile_the_stream():
    tokens = np.arange(1000)
    ws = list(windows(pieces(tokens, 128), overlap=50))
    owned = [(lo, hi) for _, _, lo, hi, _ in ws]
    assert owned[0][0] == 0 and owned[-1][1] == 1000 and ws[-1][4]
    assert all(a[1] == b[0] for a, b in zip(owned, owned[1:]))
    for offset, w, lo, hi, last in ws:
        assert np.array_equal(w, tokens[offset : offset + len(w)])
        assert offset < lo or lo == 0  # a window's first token may continue a word: owned by the one before
        assert last or hi - 1 + 50 <= offset + len(w)  # an occurrence of up to 50 tokens starting before hi is whole
