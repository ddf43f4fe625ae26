"""A text corpus is tokenized once into the token cache; every later run with the same corpus and
tokenizer only writes its overlay, and the cached tokens are exactly the documents' tokens."""
from pathlib import Path

import numpy as np

from inject.manifest import load_manifest
from inject.stage import run_inject
from inject.verify import verify_run_data
from tests.inject_fixtures import inject_config

CACHE = ["data.token_cache=true", "inject.partition_size=2", "train.seq_len=256", "train.global_batch=4",
         "train.micro_batch=4", "train.max_steps=10"]


def _point(tmp: Path, name: str, counts: str):
    return inject_config(tmp, f"run_dir={tmp}/{name}", f"data.cache_dir={tmp}/cache", f"inject.counts={counts}", *CACHE)


def test_sweep_points_share_one_tokenization(tmp_path, capsys):
    for name, counts in (("a", "[0,1,3]"), ("b", "[0,2,4]"), ("c", "[0,4,8]")):
        assert run_inject(_point(tmp_path, name, counts)) == 0
        verify_run_data(tmp_path / name)
    out = capsys.readouterr().out
    assert out.count("tokenizing the corpus once") == 1 and out.count("corpus tokens from the cache") == 2
    assert out.count("training a byte-level BPE") == 1
    entries = list((tmp_path / "cache").glob("tokens-*"))
    assert len(entries) == 1
    for name in "abc":  # the runs hold no corpus tokens
        assert not (tmp_path / name / "data" / "stream.bin").exists()
    m = load_manifest(tmp_path / "c")
    assert {p.name: p.count for p in m.partitions} == {"x0": 0, "x4": 4, "x8": 8}
    assert m.copies_seen(m.corpus["consumed_samples"] * 256) == {(p.benchmark, p.name): p.count for p in m.partitions}


def test_cached_tokens_are_the_documents_tokens_in_reading_order(tmp_path):
    from inject.corpus import iter_documents
    from inject.manifest import load_run_tokenizer

    cfg = _point(tmp_path, "a", "[0,1,3]")
    run_inject(cfg)
    tok = load_run_tokenizer(cfg.run_dir)
    want = []
    for doc in iter_documents(cfg.data):
        want += tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    (entry,) = (tmp_path / "cache").glob("tokens-*")
    got = np.fromfile(entry / "tokens.bin", dtype=np.uint16)
    np.testing.assert_array_equal(got, want)


def test_another_corpus_content_is_tokenized_again(tmp_path, capsys):
    run_inject(_point(tmp_path, "a", "[0,1,3]"))
    cfg = _point(tmp_path, "b", "[0,1,3]")  # (writes the same corpus again)
    doc = next((tmp_path / "corpus").glob("*.txt"))
    doc.write_text(doc.read_text() + " changed")
    run_inject(cfg)
    assert capsys.readouterr().out.count("tokenizing the corpus once") == 2
