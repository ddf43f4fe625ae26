"""`spikein inject`: corpus + benchmarks + plan -> data/ (stream, manifest, partitions)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import fsync_dir, write_json, write_text
from core.budget import resolve_budget
from core.config import SpikeinConfig, benchmark_plan
from core.errors import SpikeinError
from core.run_dir import RunDir
from core.run_lock import stage_lock
from core.stage_state import StageState, changed_keys, keys_text
from core.workers.launch import world_size
from inject.corpus_scan import write_run_scan
from inject.items import rows_jsonl_lines
from inject.manifest import BenchmarkPlan, Manifest, Partition
from inject.plan import PlannedCopy, PlannedPartition, PlanSettings, make_partitions, seed_for, untrained_copies
from inject.render import encode_items, encode_text, join_token_lists
from inject.stream import StreamPlan, plan_stream, stream_dtype, tokenize_corpus, write_stream
from inject.token_cache import cache_root
from inject.tokenizer import load_tokenizer, special_ids, tokenizer_hash, train_bpe, vocab_size
from inject.verify import verify_run_data

# Settings that change the stream's bytes; worker counts and the like do not.
NOT_HASHED = {"workers", "chunk_documents", "allow_untrained_copies"}


def data_config(cfg: SpikeinConfig) -> dict[str, Any]:
    """The part of the config that determines data/ (hashed for reuse and change detection;
    ``asdict`` gives the dict Hydra's resolved tree did, so existing run dirs keep their hash)."""
    c = dataclasses.asdict(cfg)
    model = c["model"]
    return {
        "data": c["data"],
        "benchmarks": c["benchmarks"],
        "inject": {k: v for k, v in c["inject"].items() if k not in NOT_HASHED},
        "tokenizer": {k: model.get(k) for k in ("pretrained", "tokenizer", "bpe_vocab_size")},
        "train": batch_keys(c),
    }


def batch_keys(c: dict[str, Any]) -> dict[str, Any]:
    """The train settings that fix the tokens per step: copies are placed in whole batches."""
    t = c["train"]
    if t.get("batch_tokens") is None:
        return {"seq_len": t["seq_len"], "global_batch": t["global_batch"]}
    return {"seq_len": t["seq_len"], "batch_tokens": t["batch_tokens"], "micro_batch": t["micro_batch"],
            "world_size": world_size(c.get("launcher") or {}), "max_tokens": t.get("max_tokens")}  # batch rounding; "auto" reads the budget


def training_budget(cfg: SpikeinConfig, stream_tokens: int) -> tuple[int, int]:
    """(tokens per step, tokens trained on) as `spikein train` will resolve them for this stream.

    Where copies may go depends on training's batches, so this is :mod:`core.budget`'s
    resolution, the same one `spikein train` runs.
    """
    train = cfg.train
    budget = resolve_budget(train, stream_tokens=stream_tokens, n_params=1,  # N only sets lr, unused here
                            world_size=world_size(cfg.launcher), from_scratch=True)
    per_step = budget.global_batch * train.seq_len
    return per_step, budget.max_steps * per_step


def config_hash(conf: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()[:16]


def stage_state(cfg: SpikeinConfig) -> StageState:
    """data/ against this config: done (same config hash), conflicting (names the changed keys), absent."""
    conf = data_config(cfg)
    return _state(RunDir(cfg.run_dir), conf, config_hash(conf))


def stage_plan(cfg: SpikeinConfig) -> str:
    conf = data_config(cfg)
    digest, rd = config_hash(conf), RunDir(cfg.run_dir)
    status = _state(rd, conf, digest).status
    if status == "done":
        return f"{rd.data} up to date (config {digest})"
    counts = sorted({tuple(benchmark_plan(conf["inject"], spec).counts) for spec in (conf["benchmarks"] or {}).values()})
    return (f"{'rebuild' if status == 'conflicting' else 'build'} {rd.data} (config {digest}): "
            f"{len(conf['benchmarks'] or {})} benchmark(s) at counts {', '.join(str(list(c)) for c in counts)}")


def _state(rd: RunDir, conf: dict, digest: str) -> StageState:
    manifest = rd.read_manifest()
    if manifest is None:
        return StageState("inject", "absent", f"no {rd.manifest}")
    if manifest.get("config_hash") == digest:
        return StageState("inject", "done", f"{rd.data} built from this config ({digest})")
    keys = tuple(changed_keys(rd.read_inject_config() or {}, conf))
    refusal = (f"{rd.root}/data was built from a different config (changed: {keys_text(keys)}); "
               "pass overwrite=true to rebuild or choose another run_dir")
    return StageState("inject", "conflicting", f"{rd.data} was built from another config "
                      f"(changed: {keys_text(keys)})", keys, refusal)


def run_inject(cfg: SpikeinConfig) -> int:
    rd = RunDir(cfg.run_dir)
    conf = data_config(cfg)
    digest = config_hash(conf)
    state = _state(rd, conf, digest)
    if state.status == "done":
        print(f"inject: {rd.data} is up to date (config {digest})")
        return 0
    if not cfg.overwrite:
        state.refuse()
    if cfg.dry_run:
        print(f"inject: dry run, would {stage_plan(cfg)}")
        return 0
    t0 = time.time()
    with stage_lock(rd.root, "inject"):  # a run dir created here goes again if the build fails
        manifest, summary = _build_and_publish(cfg, rd, conf, digest)
    share = manifest.injected_tokens / max(manifest.n_tokens, 1)
    print(f"inject: wrote {manifest.n_tokens:,} tokens ({manifest.dtype}), {len(manifest.copies)} copies "
          f"({share:.2%} of the stream), verified {summary['items']} items, in {time.time() - t0:.1f}s")
    return 0


def _build_and_publish(cfg: SpikeinConfig, rd: RunDir, conf: dict, digest: str) -> tuple[Manifest, dict]:
    """Build under a fresh ``.inject.*.tmp`` (a killed run's leftovers go first), then swap in."""
    for stale in rd.root.glob(".inject.*.tmp"):  # we hold the lock: no live inject owns them
        shutil.rmtree(stale, ignore_errors=True)
    stage = RunDir(tempfile.mkdtemp(dir=rd.root, prefix=".inject.", suffix=".tmp"))
    try:
        manifest = build_data(cfg, stage, digest)
        write_json(stage.inject_config, conf)
        # before verify, which counts its finds; overlay runs share their corpus's scan in the cache dir
        write_run_scan(stage.root, manifest, cfg.inject.workers, cache_root(cfg))
        summary = verify_run_data(stage.root, manifest)
        _publish(stage.data, rd.data)
    finally:
        shutil.rmtree(stage.root, ignore_errors=True)
    return manifest, summary


def _publish(new: Path, final: Path) -> None:
    """Swap the finished data dir into place (the old one, if any, only goes once the new is in)."""
    old = final.with_name(".data.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def prepare_tokenizer(cfg: SpikeinConfig, out: Path):
    """The model's tokenizer copied into the run, or a BPE trained on the corpus."""
    from inject.corpus import iter_documents

    source = cfg.model.tokenizer or cfg.model.pretrained
    if source:
        tok = load_tokenizer(source, trust_remote_code=cfg.model.trust_remote_code)
        tok.save_pretrained(str(out))
        return tok
    print(f"inject: training a byte-level BPE ({cfg.model.bpe_vocab_size} tokens) on the corpus")
    return train_bpe(iter_documents(cfg.data), bpe_vocab_size(cfg), out)


def bpe_vocab_size(cfg: SpikeinConfig) -> int:
    """``model.bpe_vocab_size``, needed when the model names no tokenizer (a BPE is trained here)."""
    if cfg.model.bpe_vocab_size is None:
        raise SpikeinError("model.bpe_vocab_size is not set: the model names no tokenizer, so a BPE is trained here")
    return cfg.model.bpe_vocab_size


def plan_benchmarks(cfg: SpikeinConfig, corpus=None) -> list[tuple[PlanSettings, list[PlannedPartition]]]:
    """Load every configured benchmark and split it into partitions."""
    return [(settings, parts) for settings, parts, _ in plan_with_notes(cfg, corpus)]


def plan_with_notes(cfg: SpikeinConfig, corpus=None) -> list[tuple[PlanSettings, list[PlannedPartition], dict]]:
    """:func:`plan_benchmarks`, each with what loading merged and, given the tokenized
    ``corpus`` (``inject.exclude_found``), which items it dropped as found there."""
    from inject.benchmark_checks import warn_answer_position
    from inject.benchmarks import load_benchmark_items
    from inject.exclusion import drop_found

    if not cfg.benchmarks:
        raise SpikeinError("no benchmarks configured (benchmarks=...)")
    loaded = {}
    for name, spec in cfg.benchmarks.items():
        settings = PlanSettings.from_config(benchmark_plan(cfg.inject, spec))
        items, dups = load_benchmark_items(name, spec, skip_bad_rows=cfg.inject.skip_bad_rows,
                                           synthetic=dataclasses.asdict(cfg.data.synthetic))
        loaded[str(name)] = (settings, items, {"duplicates": dups.to_json(), "excluded_found": []})
    if corpus is not None:
        loaded = drop_found(loaded, corpus, cfg.inject.workers)
    plans = []
    for name, (settings, items, notes) in loaded.items():
        warn_answer_position(name, items, option_order=getattr(settings, "option_order", None))
        plans.append((settings, make_partitions(name, items, settings), notes))
    return plans


def planned_copies(tokenizer, s: PlanSettings, part: PlannedPartition, sep: list[int], bos) -> list[PlannedCopy]:
    """All copies of one partition with seeded target positions inside the window."""
    if part.count == 0:
        return []
    lists = encode_items(tokenizer, part.items, s.renderer)
    rng = np.random.default_rng(seed_for(s.seed, "place", part.benchmark, part.name))
    lo, hi = s.window
    units: list[tuple[int | None, tuple[int, ...]]]
    if s.mode == "document":
        units = [(None, tuple(join_token_lists(lists, sep, bos)))]
    else:
        units = [(i, tuple(join_token_lists([t], sep, bos))) for i, t in enumerate(lists)]
    return [
        PlannedCopy(part.benchmark, part.name, k, item, toks, float(rng.uniform(lo, hi)))
        for k in range(part.count)
        for item, toks in units
    ]


def write_partitions(cfg: SpikeinConfig, rd: RunDir, tok, sep: list[int], bos, corpus=None) -> tuple[list, list, list[PlannedCopy]]:
    """Every benchmark's plan, its partition files (in injected order) and their planned copies."""
    benchmarks, partitions, copies = [], [], []
    for s, parts, notes in plan_with_notes(cfg, corpus):
        benchmarks.append(BenchmarkPlan(parts[0].benchmark, s.renderer, s.mode, s.window,
                                        sum(len(p.items) for p in parts),
                                        item_order=s.item_order, option_order=s.option_order, **notes))
        for p in parts:
            rel = rd.partition(p.benchmark, p.name).relative_to(rd.data).as_posix()
            write_text(rd.data_file(rel), rows_jsonl_lines(p.rows()))
            partitions.append(Partition(p.benchmark, p.name, p.count, len(p.items), rel, list(p.indices)))
            copies += planned_copies(tok, s, p, sep, bos)
    return benchmarks, partitions, copies


def build_data(cfg: SpikeinConfig, rd: RunDir, digest: str) -> Manifest:
    """``rd.data`` from scratch: tokenizer, partitions, stream (or overlay), manifest."""
    from inject.corpus import iter_documents

    if cfg.data.kind == "tokens" or cfg.data.token_cache:  # copies overlaid on tokens that are never copied
        from inject.overlay_build import build_overlay_data

        return build_overlay_data(cfg, rd, digest)
    rd.data.mkdir(parents=True)
    tok = prepare_tokenizer(cfg, rd.tokenizer)
    special = special_ids(tok)
    vsize = vocab_size(tok)
    dtype = stream_dtype(vsize, cfg.inject.dtype)
    sep = encode_text(tok, cfg.inject.separator)
    scratch = rd.data / "corpus.scratch"  # removed once the stream is written
    lengths = tokenize_corpus(iter_documents(cfg.data), rd.tokenizer, special, scratch,
                              cfg.inject.workers, cfg.inject.chunk_documents)
    corpus = (scratch, tok, int(lengths.sum())) if cfg.inject.exclude_found else None  # scanned before partitioning
    benchmarks, partitions, copies = write_partitions(cfg, rd, tok, sep, special.bos, corpus)
    _check_share(copies, int(lengths.sum()), cfg.inject.max_injected_share)
    per_step, trained = training_budget(cfg, int(lengths.sum()) + sum(len(c.tokens) + 1 for c in copies))
    plan = plan_stream(lengths, copies, cfg.data.shuffle_seed, per_step)
    _check_trained(cfg, plan, trained)
    result = write_stream(rd.stream, scratch, lengths, plan, special.eos, dtype)
    scratch.unlink()
    plan_of = {b.name: b for b in benchmarks}
    recorded = [dataclasses.replace(c, mode=plan_of[c.benchmark].mode, renderer=plan_of[c.benchmark].renderer)
                for c in result.copies]
    manifest = Manifest(
        config_hash=digest, tokenizer_hash=tokenizer_hash(tok), tokenizer_dir=rd.tokenizer.name,
        vocab_size=vsize, dtype=dtype, n_tokens=result.n_tokens, eos_id=special.eos, bos_id=special.bos,
        separator=cfg.inject.separator, separator_ids=sep, benchmarks=benchmarks,
        partitions=partitions, copies=recorded, n_documents=result.n_documents,
        injected_tokens=result.injected_tokens, tokens_per_step=per_step, epoch_tokens=plan.epoch_tokens,
    )
    write_json(rd.manifest, manifest.to_json())
    return manifest


def _check_trained(cfg: SpikeinConfig, plan: StreamPlan, trained_tokens: int) -> None:
    """Refuse (or, if allowed, warn about) copies placed past what training will consume."""
    problem = untrained_copies(plan.copies, trained_tokens, plan.epoch_tokens)
    if problem is None:
        return
    if not cfg.inject.allow_untrained_copies:
        raise SpikeinError(problem)
    print(f"inject: warning: {problem.split('; ')[0]} (inject.allow_untrained_copies=true)")


def _check_share(copies: list[PlannedCopy], corpus_tokens: int, ceiling: float) -> None:
    injected = sum(len(c.tokens) + 1 for c in copies)
    share = injected / max(injected + corpus_tokens, 1)
    if share > ceiling:
        raise SpikeinError(
            f"copies would be {share:.1%} of the stream ({injected:,} of {injected + corpus_tokens:,} tokens), "
            f"above inject.max_injected_share={ceiling}; lower inject.counts or partition_size, or add corpus"
        )
