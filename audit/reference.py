"""``audit.reference_model``: the same items, in the same orders, scored by a second model, so
that every detector can add a paired target-vs-reference test to its rows (``paired_*``).

Why: without one, a public model's p-values are against a uniform null that assumes the
benchmark's published orders are exchangeable; a reference that cannot have seen the
benchmark (older than it, trained on clean data, or a run's own step-0 / pre-exposure
checkpoint) shares the formatting preferences (sorted and templated options, a sorted file)
but not the memorisation, and the paired test asks only for what the target has beyond it.

The reference is a hub id, a local HF directory, or ``step_<N>``: that checkpoint of the
audited run (``step_0`` in continual pretraining). Its raw scores sit in the run's score
cache under its own tag (a run checkpoint's tag is ``step_<N>``, so its scores are shared
with that checkpoint's own audit and computed once); they depend on the detector settings,
not on which model is the reference, so :func:`raw_settings` leaves the reference out of the
raw cache key while :func:`row_setting` puts it into each row's settings (rows with and without
paired tests are different rows).
"""
from __future__ import annotations

import gc
import re
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Sequence

from audit.targets import Target, targets_of
from core.config import SpikeinConfig
from core.errors import SpikeinError
from core.run_dir import RunDir
from core.workers import collective

STEP = re.compile(r"^step_(\d+)$")
KEY = "reference"  # the row-settings key naming the reference


@dataclass(frozen=True)
class Reference:
    name: str  # as configured (rows and the report name it so)
    target: Target  # where it loads from; ``target.tag`` keys its cached scores

    @property
    def is_checkpoint(self) -> bool:
        return self.target.step is not None


def configured(cfg: SpikeinConfig) -> str | None:
    value = cfg.audit.reference_model
    return value if value not in (None, "") else None


def row_setting(cfg: SpikeinConfig) -> dict[str, str]:
    """The reference as part of a row's settings ({} without one: old rows keep their keys)."""
    name = configured(cfg)
    return {KEY: name} if name else {}


def raw_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A row's settings as the raw-score cache keys them: scores do not depend on the reference."""
    return {k: v for k, v in settings.items() if k != KEY}


def resolve(cfg: SpikeinConfig) -> Reference | None:
    """The configured reference, or None; one line naming ``audit.reference_model`` when it cannot be."""
    name = configured(cfg)
    if name is None:
        return None
    step = STEP.match(name)
    if step is None:
        from audit.model import check_source

        check_source(name, key="audit.reference_model")
        return Reference(name, Target(model=name, path=name))
    if cfg.audit.model:
        raise SpikeinError(f"audit.reference_model={name} names a checkpoint of a run, but audit.model audits a model "
                           "nobody trained here: give the reference as a hub id or model directory")
    index = RunDir(cfg.run_dir).read_index() if collective.is_main() else None
    index = collective.broadcast(index)
    have = {t.step: t for t in targets_of(cfg.run_dir, index) if t.step is not None} if index else {}
    if int(step.group(1)) not in have:
        listed = ", ".join(f"step_{s}" for s in sorted(have)) or "none yet"
        raise SpikeinError(f"audit.reference_model={name}: no checkpoint with an HF export at that step "
                           f"(have: {listed}); keep train.save_initial=true for step_0")
    return Reference(name, have[int(step.group(1))])


def check(cfg: SpikeinConfig, tokenizer) -> None:
    """Refuse, before any scoring, a reference that cannot be used: a step the run has no
    checkpoint of (unless watching: it may land), or a tokenizer other than the audited one's
    (the paired tests compare the two models on the same token sequences; a run's
    checkpoints share the run's tokenizer by construction)."""
    name = configured(cfg)
    if name is None:
        return
    if STEP.match(name):
        if not cfg.audit.watch:
            resolve(cfg)
        return
    from audit.model import check_source
    from inject.tokenizer import load_tokenizer, tokenizer_hash

    check_source(name, key="audit.reference_model")
    theirs = tokenizer_hash(load_tokenizer(name, cfg.model.trust_remote_code))
    ours = tokenizer_hash(tokenizer)
    if theirs != ours:
        raise SpikeinError(f"audit.reference_model={name}: its tokenizer ({theirs}) differs from the audited "
                           f"model's ({ours}); paired tests score the same tokens with both models, so choose a "
                           "reference with the same tokenizer")


def ensure_scored(cfg: SpikeinConfig, setup, todo: Sequence[tuple[Any, Any]], store) -> None:
    """Score, with the reference model, every partition of the (benchmark, detector) pairs
    ``todo`` whose reference scores are not cached yet (the reference is loaded only then)."""
    from audit.stage import _scored, row_settings

    ref = resolve(cfg)
    if ref is None:
        return
    missing = [(bench, det) for bench, det in todo
               if any(_cached(store, ref, bench, det, part, row_settings(cfg, bench, det), cfg) is None
                      for part in bench.partitions)]
    if not missing:
        return
    _log(f"reference {ref.name}: scoring {len(missing)} (benchmark, detector) pair(s) with {ref.target.path}")
    scorer, model = _load_scorer(cfg, ref.target.path)
    try:
        from audit.detectors import AuditContext

        for bench, det in missing:
            ctx = AuditContext(scorer, setup.tokenizer, bench.renderer, setup.separator_ids, setup.bos_id)
            settings = raw_settings(row_settings(cfg, bench, det))
            for part in bench.partitions:
                _scored(store, ref.target, bench, det, part, ctx, settings)
    finally:
        del scorer, model
        gc.collect()


def paired_tests(cfg: SpikeinConfig, store, bench, det, raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per partition: the detector's paired test against the reference's cached scores
    (``reference`` names it), or {} per partition without a reference."""
    ref = resolve(cfg)
    if ref is None:
        return [{} for _ in raws]
    from audit.stage import row_settings

    settings = row_settings(cfg, bench, det)
    reference = [_cached(store, ref, bench, det, part, settings, cfg) for part in bench.partitions]
    if any(r is None for r in reference):
        raise SpikeinError(f"reference {ref.name}: scores of {bench.name}/{det.name} missing from the cache "
                           f"({store.raw_dir}); rerun the audit")
    return [{KEY: ref.name, **fields} for fields in det.paired(bench.partitions, raws, reference)]


def _cached(store, ref: Reference, bench, det, part, settings: dict[str, Any], cfg: SpikeinConfig) -> dict | None:
    """The reference's cached scores of one partition (read on rank 0, broadcast), under the
    key :func:`audit.stage._scored` wrote them with (the engine settings and device kind)."""
    from audit.stage import raw_key

    key = raw_key(raw_settings(settings), _key_scorer(cfg))
    mine = store.get_raw(ref.target.tag, bench.name, det.name, part.name, key) if collective.is_main() else None
    return collective.broadcast(mine)


def _load_scorer(cfg: SpikeinConfig, path: str):
    """The reference's engine: the audited model's settings, precision and device."""
    from audit.engine import Engine
    from audit.model import load_model
    from audit.stage import audit_device, engine_settings

    model = load_model(path, cfg.audit.precision, audit_device(cfg), cfg.model.trust_remote_code)
    return Engine(model, engine_settings(cfg.audit)), model


def _key_scorer(cfg: SpikeinConfig) -> SimpleNamespace:
    """What the raw cache key reads off an engine (device kind, chunks, settings), without a model."""
    from audit.model import resolve_device
    from audit.stage import audit_device, engine_settings

    s = engine_settings(cfg.audit)
    return SimpleNamespace(device=resolve_device(audit_device(cfg)), chunk_tokens=s.chunk_tokens, settings=s)


def _log(msg: str) -> None:
    if collective.is_main():
        print(f"audit: {msg}", file=sys.stderr, flush=True)
