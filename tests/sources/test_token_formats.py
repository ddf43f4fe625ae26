"""Every reader gives back exactly the rows its files hold, as the format's own tools wrote them."""
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputDataError
from sources.formats import open_corpus
from tests.sources_fixtures import random_docs, write_corpus, write_llmc, write_megatron, write_olmo

FORMATS = ["llmc", "nanogpt", "megatron", "numpy", "datatrove", "hf"]
L = 16


def _expected_rows(docs, fmt):
    """Rows never cross files: two-shard formats lose each shard's tail."""
    half = len(docs) // 2
    parts = [docs[:half], docs[half:]] if fmt in ("llmc", "datatrove") else [docs]
    rows = []
    for p in parts:
        flat = np.concatenate(p)
        rows += [flat[i * L:(i + 1) * L] for i in range(len(flat) // L)]
    return rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_are_the_files_tokens(tmp_path, fmt):
    docs = random_docs(30, vocab=300, eos=0, lo=5, hi=40)
    paths = write_corpus(fmt, tmp_path / fmt, docs)
    corpus = open_corpus({"format": fmt, "paths": paths}, L)
    want = _expected_rows(docs, fmt)
    assert corpus.n_rows == len(want)
    for r in (0, 1, len(want) // 2, len(want) - 1):
        np.testing.assert_array_equal(np.asarray(corpus.row(r)), want[r])
    np.testing.assert_array_equal(corpus.rows(2, 3), np.stack(want[2:5]))
    assert corpus.sampled_max() <= max(int(w.max()) for w in want)
    if fmt != "hf":
        assert all(isinstance(s, np.memmap) for s in corpus.segments)  # mapped, never read whole


def test_llmc_version_7_is_uint32(tmp_path):
    toks = np.arange(100_000, 100_000 + 64, dtype=np.uint32)
    write_llmc(tmp_path / "s.bin", toks, version=7)
    corpus = open_corpus({"format": "llmc", "paths": [str(tmp_path / "s.bin")]}, L)
    assert corpus.dtype == "uint32" and int(corpus.row(3)[-1]) == 100_063


def test_pythia_rows_are_the_stored_sequences(tmp_path):
    """Pythia's pre-shuffled files: sequence i of the .idx = row i = what step i // B read."""
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 50_000, size=2049).astype(np.uint16) for _ in range(6)]
    prefix = write_megatron(tmp_path / "pile_0.87_deduped_text_document", seqs)
    corpus = open_corpus({"format": "megatron", "paths": [f"{prefix}.bin"]}, 2049)
    assert corpus.n_rows == 6
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(corpus.row(i), s)


def test_olmo_global_indices_set_the_row_order(tmp_path):
    flat = np.arange(10 * L, dtype=np.uint16)
    order = np.array([7, 2, 9, 0], dtype=np.uint32)
    path = write_olmo(tmp_path / "part-0.npy", flat, order)
    corpus = open_corpus({"format": "numpy", "paths": [str(path)],
                          "global_indices": str(tmp_path / "global_indices.npy")}, L)
    assert corpus.n_rows == 4
    np.testing.assert_array_equal(corpus.row(0), flat[7 * L:8 * L])
    np.testing.assert_array_equal(corpus.row(3), flat[:L])


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"\x00" * 1024 + p.read_bytes()[1024:]), "not an llm.c token shard"),
    (lambda p: p.write_bytes(p.read_bytes()[:-2]), "header says"),
])
def test_a_bad_llmc_header_is_one_line(tmp_path, damage, message):
    path = write_llmc(tmp_path / "s.bin", np.arange(64, dtype=np.uint16))
    damage(path)
    with pytest.raises(InputDataError, match=message) as e:
        open_corpus({"format": "llmc", "paths": [str(path)]}, L)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_bad_megatron_index_is_one_line(tmp_path):
    prefix = write_megatron(tmp_path / "c", [np.arange(40, dtype=np.uint16)])
    idx = Path(f"{prefix}.idx")
    idx.write_bytes(b"XXIDIDX\x00\x00" + idx.read_bytes()[9:])
    with pytest.raises(InputDataError, match="not a Megatron MMIDIDX index"):
        open_corpus({"format": "megatron", "paths": [str(prefix)]}, L)


def test_an_unknown_format_is_one_line():
    with pytest.raises(InputDataError, match="unknown data.format 'parquet'"):
        open_corpus({"format": "parquet", "paths": ["x"]}, L)


def _neox_maps(prefix: Path, sizes: list[int], seq_length: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """GPT-NeoX's ``packed`` maps: one epoch's doc_idx (RandomState shuffle), sample_idx as
    helpers.cpp build_sample_idx walks it, shuffle_idx a permutation of the samples."""
    rng = np.random.RandomState(seed=seed)
    doc_idx = np.arange(len(sizes), dtype=np.int32)
    rng.shuffle(doc_idx)
    n_samples = (sum(sizes) - 1) // seq_length
    sample_idx = np.zeros((n_samples + 1, 2), dtype=np.int32)
    k, offset = 0, 0
    for s in range(1, n_samples + 1):
        remaining = seq_length + 1
        while remaining != 0:
            doc_length = sizes[doc_idx[k]] - offset
            remaining -= doc_length
            if remaining <= 0:
                offset += remaining + doc_length - 1
                remaining = 0
            else:
                k, offset = k + 1, 0
        sample_idx[s] = (k, offset)
    shuffle_idx = np.arange(n_samples, dtype=np.int64)
    rng.shuffle(shuffle_idx)
    for name, arr in (("doc_idx", doc_idx), ("sample_idx", sample_idx), ("shuffle_idx", shuffle_idx)):
        np.save(f"{prefix}_{name}.npy", arr, allow_pickle=True)
    return doc_idx, shuffle_idx


def test_megatron_through_neox_index_maps(tmp_path):
    """Training sample r = tokens [j*T, j*T + T + 1) of the documents in doc_idx order, j = shuffle_idx[r]."""
    docs = random_docs(25, vocab=300, eos=0, lo=3, hi=30)
    prefix = write_megatron(tmp_path / "c_text_document", docs)
    T = 15
    maps = tmp_path / "c_text_document_train_indexmap_100ns_15sl_1234s_packedpi_ac"
    doc_idx, shuffle = _neox_maps(maps, [len(d) for d in docs], T)
    flat = np.concatenate([docs[i] for i in doc_idx])
    corpus = open_corpus({"format": "megatron", "paths": [str(prefix)], "index_map": str(maps)}, T + 1)
    assert corpus.n_rows == len(shuffle)
    for r in range(corpus.n_rows):
        j = int(shuffle[r])
        np.testing.assert_array_equal(corpus.row(r), flat[j * T:j * T + T + 1])
    with pytest.raises(InputDataError, match="not data.sample_length=17"):
        open_corpus({"format": "megatron", "paths": [str(prefix)], "index_map": str(maps)}, T + 2).row(0)
