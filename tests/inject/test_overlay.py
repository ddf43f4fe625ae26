"""Overlay injection into pre-tokenized corpora: the corpus is read, never written; copies are
composed into training samples, verified, and a changed corpus is refused."""
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tokenizer

from core.errors import SpikeinError
from inject.manifest import load_manifest, open_stream
from inject.stage import run_inject
from inject.verify import verify_run_data
from launch.config import compose
from tests.inject_fixtures import write_benchmark
from tests.sources_fixtures import random_docs, tree_hash, write_corpus

FORMATS = ["llmc", "nanogpt", "megatron", "numpy", "datatrove", "hf"]
SEQ, BATCH = 64, 4
TINY = ["model=tiny_llama", "model.config.hidden_size=32", "model.config.intermediate_size=64",
        "model.config.num_hidden_layers=2", "model.config.num_attention_heads=2",
        "model.config.num_key_value_heads=2", f"model.config.max_position_embeddings={SEQ}"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    make_tokenizer(out, vocab_size=400)
    return out


def overlay_config(tmp: Path, tok: Path, paths, fmt: str, *extra: str):
    return compose(overlay_overrides(tmp, tok, paths, fmt, *extra))


def overlay_overrides(tmp: Path, tok: Path, paths, fmt: str, *extra: str) -> list[str]:
    """A tiny overlay run on ``paths``: 3 partitions of 4 items (0, 1, 3 copies), 12 steps of 4 x 64 tokens."""
    tmp.mkdir(parents=True, exist_ok=True)
    bench = write_benchmark(tmp / "bench.jsonl", 24)
    return [
        f"run_dir={tmp}/run", "data=tokens", f"data.format={fmt}", f"data.paths=[{','.join(map(str, paths))}]",
        "benchmarks=none",
        f"+benchmarks.toy={{source:generic,path:'{bench}',fields:{{id:qid,question:q,choices:opts,answer:gold,answer_type:index}}}}",
        f"model.tokenizer={tok}", *TINY, "inject.counts=[0,1,3]", "inject.partition_size=4", "inject.mode=scattered",
        "inject.renderer=cloze", "inject.max_injected_share=0.5", "inject.workers=1",
        f"train.seq_len={SEQ}", f"train.global_batch={BATCH}", "train.micro_batch=2", "train.max_steps=12",
        "train.warmup_steps=0", "train.log_every=1", "train.checkpoint_every=1000", "logger.mode=disabled", *extra]


def corpus_for(fmt: str, tmp: Path, tok: Path, n_docs: int = 60):
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(tok))
    docs = random_docs(n_docs, vocab=len(t), eos=t.eos_token_id, seed=3)
    return write_corpus(fmt, tmp / "corpus", docs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_overlay_run_leaves_the_corpus_and_verifies_every_copy(tmp_path, tokenizer_dir, fmt):
    paths = corpus_for(fmt, tmp_path, tokenizer_dir)
    before = tree_hash(tmp_path / "corpus")
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, fmt)
    assert run_inject(cfg) == 0
    run = Path(cfg.run_dir)
    m = load_manifest(run)
    assert tree_hash(tmp_path / "corpus") == before  # read, never written
    assert not (run / "data" / "stream.bin").exists()
    assert m.corpus["format"] == fmt and m.dtype == m.corpus["corpus_dtype"]
    consumed = m.corpus["consumed_samples"] * SEQ
    assert consumed == 12 * SEQ * BATCH
    assert m.copies_seen(consumed) == {(p.benchmark, p.name): p.count * p.n_items for p in m.partitions}
    stream = open_stream(run, m)
    for c in m.copies:  # inside one sample, EOS-wrapped, the displaced count recorded
        assert c.start // SEQ == c.end // SEQ and c.displaced == c.end - c.start + 2
        assert stream[c.start - 1] == m.eos_id == stream[c.end]
    assert verify_run_data(run)["copies"] == len(m.copies)
    _flip_a_corpus_byte(tmp_path / "corpus")
    with pytest.raises(SpikeinError, match="changed since the run's data was built") as e:
        verify_run_data(run)
    assert "\n" not in str(e.value)


def _flip_a_corpus_byte(root: Path) -> None:
    f = max((p for p in root.rglob("*") if p.is_file() and not p.name.endswith((".idx", ".index", ".json"))),
            key=lambda p: p.stat().st_size)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))


def test_composed_samples_are_corpus_rows_with_copies_overlaid(tmp_path, tokenizer_dir):
    """Outside the copies, every sample is the corpus row; inside, the copy's tokens."""
    paths = corpus_for("nanogpt", tmp_path, tokenizer_dir)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, "nanogpt")
    run_inject(cfg)
    m = load_manifest(cfg.run_dir)
    stream = open_stream(cfg.run_dir, m)
    raw = np.fromfile(paths[0], dtype=np.uint16)
    composed = np.asarray(stream[0:m.corpus["consumed_samples"] * SEQ])
    mask = np.zeros(len(composed), dtype=bool)
    for c in m.copies:
        mask[c.start - 1:c.end + 1] = True
    np.testing.assert_array_equal(composed[~mask], raw[:len(composed)][~mask])
    assert mask.sum() == sum(c.displaced for c in m.copies)  # disjoint
    assert (composed[mask] != raw[:len(composed)][mask]).any()


def test_a_corpus_of_another_tokenizer_is_refused_in_one_line(tmp_path, tokenizer_dir):
    docs = random_docs(20, vocab=5000, eos=0)
    paths = write_corpus("nanogpt", tmp_path / "c", docs)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, "nanogpt")
    with pytest.raises(SpikeinError, match="outside the tokenizer's 400-token vocabulary") as e:
        run_inject(cfg)
    assert "\n" not in str(e.value)


def test_a_uint32_corpus_for_a_wide_vocabulary_is_fine_but_uint8_is_refused(tmp_path, tokenizer_dir):
    np.arange(4096, dtype=np.uint8).tofile(tmp_path / "train.bin")
    cfg = overlay_config(tmp_path, tokenizer_dir, [tmp_path / "train.bin"], "nanogpt", "data.dtype=uint8")
    with pytest.raises(SpikeinError, match="corpus tokens are uint8"):
        run_inject(cfg)


def test_a_data_eos_id_wraps_the_copies(tmp_path, tokenizer_dir):
    paths = corpus_for("nanogpt", tmp_path, tokenizer_dir)
    run_inject(overlay_config(tmp_path, tokenizer_dir, paths, "nanogpt", "data.eos_id=7"))
    m = load_manifest(tmp_path / "run")
    stream = open_stream(tmp_path / "run", m)
    assert m.eos_id == 7 and all(stream[c.start - 1] == 7 == stream[c.end] for c in m.copies)


def test_a_50mb_corpus_gives_a_run_data_dir_under_1mb(tmp_path, tokenizer_dir):
    rng = np.random.default_rng(0)
    corpus = tmp_path / "big" / "train.bin"
    corpus.parent.mkdir()
    rng.integers(0, 400, size=25_000_000, dtype=np.uint16).tofile(corpus)
    before = tree_hash(corpus.parent)
    cfg = overlay_config(tmp_path, tokenizer_dir, [corpus], "nanogpt", "train.max_steps=null")
    run_inject(cfg)
    data = Path(cfg.run_dir) / "data"
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    print(f"run data {size:,} bytes for a {corpus.stat().st_size:,}-byte corpus")
    assert corpus.stat().st_size == 50_000_000 and size < 1_000_000, size
    assert tree_hash(corpus.parent) == before
    verify_run_data(cfg.run_dir)
    with corpus.open("r+b") as f:  # one byte, far from any copy
        f.seek(12_345_679)
        b = f.read(1)
        f.seek(12_345_679)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(SpikeinError, match=f"corpus file {corpus} changed"):
        verify_run_data(cfg.run_dir)


def test_training_samples_of_a_written_stream_are_its_seq_len_slices(tmp_path):
    """iter_training_samples reads a text run's stream.bin as training does (what a corpus scan reads)."""
    from inject.overlay import iter_training_samples
    from tests.inject_fixtures import inject_config

    cfg = inject_config(tmp_path, "train.seq_len=64", "train.global_batch=4", "train.micro_batch=4")
    run_inject(cfg)
    m = load_manifest(cfg.run_dir)
    samples = [t for _, t in iter_training_samples(cfg.run_dir, m)]
    flat = np.fromfile(Path(cfg.run_dir) / "data" / "stream.bin", dtype=m.dtype)
    assert len(samples) == m.epoch_tokens // 64
    np.testing.assert_array_equal(np.concatenate(samples), flat[:len(samples) * 64])


def test_copies_of_one_item_share_their_overlay_tokens(tmp_path, tokenizer_dir):
    """Scattered copies of the same item are stored once in overlay/tokens.bin; each still
    composes into its own place (verify reads every copy back from the composed samples)."""
    paths = corpus_for("nanogpt", tmp_path, tokenizer_dir)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, "nanogpt", "inject.mode=scattered")
    run_inject(cfg)
    m = load_manifest(cfg.run_dir)
    assert verify_run_data(cfg.run_dir)["copies"] == len(m.copies)
    stream = open_stream(cfg.run_dir, m)
    by_item: dict[tuple, set] = {}
    for c in m.copies:
        by_item.setdefault((c.benchmark, c.partition, c.item), set()).add(tuple(stream[c.start:c.end]))
    assert all(len(spans) == 1 for spans in by_item.values())  # the same tokens wherever a copy landed
    stored = (Path(cfg.run_dir) / "data/overlay/tokens.bin").stat().st_size // np.dtype(m.corpus["overlay"]["dtype"]).itemsize
    assert stored == sum(len(next(iter(spans))) + 2 for spans in by_item.values()) < sum(c.displaced for c in m.copies)
