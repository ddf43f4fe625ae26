"""Training on a pre-tokenized corpus + overlay: batches are a pure function of the step (world size
and resume do not change them), Pythia-style rows start at data.start_step, a changed corpus is refused."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import read_jsonl, weights_hash

from core.errors import SpikeinError
from core.run_dir import RunDir
from inject.manifest import load_manifest, load_partition, load_run_tokenizer, open_stream
from inject.overlay import iter_training_samples
from inject.render import encode_items
from inject.stage import run_inject
from inject.verify import copy_tokens
from launch.config import compose
from tests.inject.test_overlay import FORMATS, corpus_for, overlay_config, overlay_overrides
from tests.sources_fixtures import write_megatron
from train.data import StreamBatches

REPO = Path(__file__).resolve().parents[2]
SEQ = 128
DOC = ["inject.mode=document", "inject.partition_size=2", f"train.seq_len={SEQ}",
       f"model.config.max_position_embeddings={SEQ}"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from conftest import make_tokenizer

    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    make_tokenizer(out, vocab_size=400)
    return out


def _batches(stream, world: int, rank: int, global_batch: int = 4, micro: int = 1) -> StreamBatches:
    return StreamBatches(stream, seq_len=SEQ, global_batch=global_batch, micro_batch=micro, rank=rank,
                         world_size=world, vocab_size=400)


def test_batches_do_not_depend_on_world_size_or_resume(tmp_path, tokenizer_dir):
    paths = corpus_for("llmc", tmp_path, tokenizer_dir, n_docs=120)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, "llmc", *DOC)
    run_inject(cfg)
    m = load_manifest(cfg.run_dir)
    steps = range(12)
    one = [np.concatenate([t.numpy() for t in _batches(open_stream(cfg.run_dir, m), 1, 0).step_batches(s)])
           for s in steps]
    for s in steps:  # two ranks, each its slice; a fresh reader per step (as after a resume)
        two = [t.numpy() for r in (0, 1) for t in _batches(open_stream(cfg.run_dir, m), 2, r).step_batches(s)]
        np.testing.assert_array_equal(np.concatenate(two), one[s])
    hit = {c.start // (SEQ * 4) for c in m.copies}
    assert hit and hit <= set(steps)  # the steps compared hold copies
    samples = [t for _, t in iter_training_samples(cfg.run_dir, m)]  # what a corpus scan reads
    np.testing.assert_array_equal(np.stack(samples[:48]), np.concatenate(one))
    assert len(samples) == m.corpus["consumed_samples"] == 48


def test_pythia_rows_start_at_start_step_with_copies_overlaid(tmp_path, tokenizer_dir):
    """data.sample_length=2049, data.start_step=k: batch 0 = rows [k*B, (k+1)*B) of the .bin, copies over them."""
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(str(tokenizer_dir)).eos_token_id
    rng = np.random.default_rng(5)
    rows = [rng.integers(0, 400, size=2049).astype(np.uint16) for _ in range(40)]
    (tmp_path / "pile").mkdir()
    prefix = write_megatron(tmp_path / "pile" / "pile_0.87_deduped_text_document", rows)
    B, k = 4, 3
    cfg = overlay_config(tmp_path, tokenizer_dir, [prefix], "megatron", "inject.mode=document",
                         "data.sample_length=2049", "train.seq_len=2049", f"data.start_step={k}",
                         f"train.global_batch={B}", "train.max_steps=4", "inject.window=[0.0,0.2]")
    run_inject(cfg)
    m = load_manifest(cfg.run_dir)
    assert m.corpus["start_row"] == k * B
    direct = np.fromfile(f"{prefix}.bin", dtype=np.uint16).reshape(40, 2049)[k * B:(k + 1) * B].astype(np.int64)
    tok = load_run_tokenizer(cfg.run_dir, m)
    landed = 0
    for p in m.partitions:
        lists = encode_items(tok, load_partition(cfg.run_dir, p), m.benchmark(p.benchmark).renderer)
        for c in m.copies_of(p.benchmark, p.name):
            if c.start < B * 2049:
                flat = direct.reshape(-1)
                flat[c.start - 1:c.end + 1] = [m.eos_id, *copy_tokens(m, lists, c.item), m.eos_id]
                landed += 1
    assert landed > 0 and eos == m.eos_id
    batches = StreamBatches(open_stream(cfg.run_dir, m), seq_len=2049, global_batch=B, micro_batch=2, rank=0,
                            world_size=1, vocab_size=400)
    first = np.concatenate([t.numpy() for t in batches.step_batches(0)])
    np.testing.assert_array_equal(first, direct)


def test_training_refuses_a_changed_corpus_in_one_line(tmp_path, tokenizer_dir):
    from train.stage import resolve_training

    paths = corpus_for("nanogpt", tmp_path, tokenizer_dir)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, "nanogpt", *DOC)
    run_inject(cfg)
    resolve_training(cfg)  # unchanged: fine
    raw = np.fromfile(paths[0], dtype=np.uint16)
    raw[len(raw) - 3] ^= 1
    raw.tofile(paths[0])
    with pytest.raises(SpikeinError, match="changed since the run's data was built") as e:
        resolve_training(cfg)
    assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tiny_run_on_each_format_sees_every_copy(tmp_path, tokenizer_dir, fmt):
    from train.stage import run_train

    paths = corpus_for(fmt, tmp_path, tokenizer_dir, n_docs=120)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, fmt, *DOC)
    run_inject(cfg)
    assert run_train(cfg) == 0
    m = load_manifest(cfg.run_dir)
    row = read_jsonl(Path(cfg.run_dir) / "train" / "metrics.jsonl")[-1]
    assert row["copies_seen"] == {f"toy/{p.name}": p.count for p in m.partitions}


@pytest.mark.slow
def test_rows_one_token_past_the_positions_train_as_pythias(tmp_path, tokenizer_dir):
    """Pythia's rows are 2049 tokens for 2048 positions: train.seq_len = positions + 1 trains
    (the last token a label only) and sees every copy."""
    from train.stage import run_train

    paths = corpus_for("nanogpt", tmp_path, tokenizer_dir, n_docs=120)
    cfg = overlay_config(tmp_path, tokenizer_dir, paths, "nanogpt", "inject.mode=document", "inject.partition_size=2",
                         f"train.seq_len={SEQ + 1}", f"data.sample_length={SEQ + 1}",
                         f"model.config.max_position_embeddings={SEQ}")
    run_inject(cfg)
    assert run_train(cfg) == 0
    m = load_manifest(cfg.run_dir)
    row = read_jsonl(Path(cfg.run_dir) / "train" / "metrics.jsonl")[-1]
    assert row["copies_seen"] == {f"toy/{p.name}": p.count for p in m.partitions}


def _kill_after_first_checkpoint(args: list[str], run: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "train", *args], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            index = RunDir(run).read_index()
            if index and any(c.step >= 4 for c in index.checkpoints):
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_kill_and_resume_on_a_corpus_gives_the_uninterrupted_weights(tmp_path, tokenizer_dir):
    from train.stage import run_train

    paths = corpus_for("megatron", tmp_path, tokenizer_dir, n_docs=120)
    extra = [*DOC, "train.checkpoint_every=4", "train.keep_last=1"]
    ref = overlay_config(tmp_path / "a", tokenizer_dir, paths, "megatron", *extra)
    run_inject(ref)
    assert run_train(ref) == 0
    killed = tmp_path / "b"
    args = overlay_overrides(killed, tokenizer_dir, paths, "megatron", *extra)
    run_inject(compose(args))
    _kill_after_first_checkpoint(args, killed / "run")
    index = RunDir(killed / "run").read_index()
    assert not index.finished
    assert run_train(compose(args)) == 0
    assert "resuming from step" in (killed / "run" / "train" / "logs" / "rank0.log").read_text()
    final = lambda root: root / "run" / "checkpoints" / "step_12" / "hf"  # noqa: E731
    assert weights_hash(final(killed)) == weights_hash(final(tmp_path / "a"))

