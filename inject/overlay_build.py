"""`spikein inject` on a pre-tokenized corpus (``data.kind=tokens``, or a text corpus through the token
cache, ``data.token_cache=true``): plan copies into samples,
write the overlay and the manifest; the corpus itself is only read (headers, a few rows)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from core.atomic import write_json
from core.config import SpikeinConfig
from core.errors import ConfigError, SpikeinError
from core.run_dir import RunDir
from inject.manifest import Copy, Manifest
from inject.overlay import OVERLAY_INDEX, OVERLAY_TOKENS, place_in_samples, reader_settings, write_overlay
from inject.plan import epoch_tokens
from inject.render import encode_text
from inject.stream import stream_dtype
from inject.tokenizer import SpecialIds, load_tokenizer, special_ids, tokenizer_hash, vocab_size
from sources.fingerprint import check_vocabulary, fingerprint
from sources.formats import open_corpus
from sources.tokens import TokenCorpus


def corpus_tokenizer(cfg: SpikeinConfig, out: Path):
    """The corpus's tokenizer is the model's (``model.pretrained``) or named (``model.tokenizer``)."""
    source = cfg.model.tokenizer or cfg.model.pretrained
    if not source:
        raise ConfigError("data.kind=tokens needs the tokenizer the corpus was tokenized with: "
                          "set model.tokenizer (or model.pretrained)")
    tok = load_tokenizer(source, trust_remote_code=cfg.model.trust_remote_code)
    tok.save_pretrained(str(out))
    return tok


def corpus_specials(tok, eos_id) -> SpecialIds:
    """EOS from data.eos_id, else the tokenizer's; BOS as the tokenizer uses it."""
    if eos_id is None:
        return special_ids(tok)
    try:
        return dataclasses.replace(special_ids(tok), eos=int(eos_id))
    except SpikeinError:  # no EOS in the tokenizer: data.eos_id names it
        return SpecialIds(eos=int(eos_id), bos=None)


def sample_length(cfg: SpikeinConfig) -> int:
    seq = cfg.train.seq_len
    length = cfg.data.sample_length if cfg.data.sample_length is not None else seq
    if length != seq:
        raise ConfigError(f"data.sample_length={length} differs from train.seq_len={seq}: each training "
                          "sequence is one stored sample; set them equal")
    return length


def build_overlay_data(cfg: SpikeinConfig, rd: RunDir, digest: str) -> Manifest:
    """``rd.data`` for a pre-tokenized corpus: tokenizer, partitions, overlay, manifest."""
    from inject.stage import _check_share, write_partitions

    rd.data.mkdir(parents=True)
    data = cfg.data
    length = sample_length(cfg)
    if data.kind == "tokens":
        reader = reader_settings(dataclasses.asdict(data))
        tok = corpus_tokenizer(cfg, rd.tokenizer)
    else:  # a text corpus, tokenized once into the token cache
        from inject.token_cache import cached_corpus

        tok, reader = cached_corpus(cfg, rd.tokenizer)
    corpus = open_corpus(reader, length)
    vsize = vocab_size(tok)
    check_vocabulary(corpus, vsize)
    special = corpus_specials(tok, data.eos_id)
    sep = encode_text(tok, cfg.inject.separator)
    benchmarks, partitions, copies = write_partitions(cfg, rd, tok, sep, special.bos)
    start_row, n_samples, per_step, consumed = _geometry(cfg, corpus, data.start_step)
    _check_share(copies, consumed * length, cfg.inject.max_injected_share)
    places = place_in_samples(copies, consumed, length, cfg.inject.seed)
    overlay_dtype = stream_dtype(max(vsize, special.eos + 1))
    write_overlay(rd.data, copies, places, special.eos, overlay_dtype)
    plan_of = {b.name: b for b in benchmarks}
    recorded = [Copy(c.benchmark, c.partition, c.copy, p.sample * length + p.offset + 1,
                     p.sample * length + p.offset + 1 + len(c.tokens), plan_of[c.benchmark].mode,
                     plan_of[c.benchmark].renderer, c.item, displaced=len(c.tokens) + 2)
                for c, p in zip(copies, places)]
    rows = sorted({start_row + p.sample for p in places})
    info = {"reader": reader, "format": corpus.format, "sample_length": length,
            "start_step": data.start_step, "start_row": start_row, "n_samples": n_samples,
            "consumed_samples": consumed, "rows_total": corpus.n_rows, "corpus_dtype": corpus.dtype,
            "overlay": {"tokens": OVERLAY_TOKENS, "index": OVERLAY_INDEX, "dtype": overlay_dtype}, "fingerprint": fingerprint(corpus, rows)}
    manifest = Manifest(
        config_hash=digest, tokenizer_hash=tokenizer_hash(tok), tokenizer_dir=rd.tokenizer.name,
        vocab_size=vsize, dtype=corpus.dtype, n_tokens=n_samples * length, eos_id=special.eos, bos_id=special.bos,
        separator=cfg.inject.separator, separator_ids=sep, benchmarks=benchmarks, partitions=partitions,
        copies=recorded, n_documents=0, injected_tokens=sum(c.displaced or 0 for c in recorded),
        tokens_per_step=per_step, epoch_tokens=epoch_tokens(n_samples * length, per_step), corpus=info)
    write_json(rd.manifest, manifest.to_json())
    return manifest


def _geometry(cfg: SpikeinConfig, corpus: TokenCorpus, start_step: int) -> tuple[int, int, int, int]:
    """(first row, rows from there, tokens per step, samples training consumes in one epoch)."""
    from inject.stage import training_budget

    length = corpus.sample_length
    per_step, _ = training_budget(cfg, corpus.n_rows * length)
    start_row = start_step * (per_step // length)  # rows the steps before start_step read
    n_samples = corpus.n_rows - start_row
    if start_step < 0 or n_samples * length < per_step:
        raise ConfigError(f"data.start_step={start_step} starts at row {start_row:,} but the corpus holds "
                          f"{corpus.n_rows:,} rows of {length} tokens: not one more batch")
    per_step, trained = training_budget(cfg, n_samples * length)
    consumed = min(trained, epoch_tokens(n_samples * length, per_step)) // length
    return start_row, n_samples, per_step, consumed
