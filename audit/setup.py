"""Everything an audit needs besides the model: tokenizer, separator, BOS and the benchmark
partitions, read from a run's data (the manifest) or, for a public model, from config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from audit.detectors import PartitionData
from core.config import SpikeinConfig, benchmark_plan
from core.errors import SpikeinError
from core.run_dir import RunDir
from inject.manifest import Manifest, load_manifest, load_partition, load_run_tokenizer
from inject.render import encode_text, get_renderer
from inject.tokenizer import load_tokenizer, special_ids, tokenizer_hash


@dataclass
class BenchmarkData:
    name: str
    renderer: str
    partitions: list[PartitionData]


@dataclass
class AuditSetup:
    tokenizer: Any
    separator_ids: list[int]
    bos_id: int | None
    benchmarks: list[BenchmarkData]
    manifest: Manifest | None  # None: a model nobody trained here


def benchmark_names(value: Any) -> list[str] | None:
    if value in (None, "", "all"):
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def configured_renderer(cfg: SpikeinConfig, name: str) -> str:
    """The renderer the config gives benchmark ``name`` (per-benchmark override, else inject's)."""
    return str(cfg.audit.renderer or benchmark_plan(cfg.inject, cfg.benchmarks.get(name)).renderer)


def run_setup(cfg: SpikeinConfig) -> AuditSetup:
    """A spikein run: the manifest's tokenizer, separator, BOS, renderers and partitions."""
    manifest = load_manifest(cfg.run_dir)
    tokenizer = load_run_tokenizer(cfg.run_dir, manifest)
    if tokenizer_hash(tokenizer) != manifest.tokenizer_hash:
        raise SpikeinError(f"tokenizer in {RunDir(cfg.run_dir).data_file(manifest.tokenizer_dir)} "
                           "does not match the manifest's hash")
    wanted = benchmark_names(cfg.audit.benchmark)
    benchmarks = []
    for plan in manifest.benchmarks:
        if wanted is not None and plan.name not in wanted:
            continue
        if plan.name in cfg.benchmarks or cfg.audit.renderer:
            configured = configured_renderer(cfg, plan.name)
            if configured != plan.renderer:
                raise SpikeinError(
                    f"benchmark '{plan.name}': configured renderer '{configured}' differs from the manifest's "
                    f"'{plan.renderer}' (the audit must score what was injected)"
                )
        parts = [
            PartitionData(plan.name, p.name, p.count, load_partition(cfg.run_dir, p),
                          option_order=plan.option_order)
            for p in manifest.partitions if p.benchmark == plan.name
        ]
        benchmarks.append(BenchmarkData(plan.name, plan.renderer, parts))
    missing = sorted(set(wanted or []) - {b.name for b in benchmarks})
    if missing:
        raise SpikeinError(f"audit.benchmark: {', '.join(missing)} not in the manifest")
    return AuditSetup(tokenizer, list(manifest.separator_ids), manifest.bos_id, benchmarks, manifest)


def model_setup(cfg: SpikeinConfig) -> AuditSetup:
    """A model nobody trained here: its own tokenizer, each benchmark whole as one partition."""
    from audit.model import check_source
    from inject.benchmarks import load_benchmark

    model = cfg.audit.model
    if model is None:
        raise SpikeinError("audit.model is not set: no model to audit")
    check_source(model)
    tokenizer = load_tokenizer(cfg.audit.tokenizer or model, cfg.model.trust_remote_code)
    names = benchmark_names(cfg.audit.benchmark) or list(cfg.benchmarks.keys())
    limit = cfg.audit.limit
    benchmarks = []
    for name in names:
        if name not in cfg.benchmarks:
            raise SpikeinError(f"audit.benchmark: unknown benchmark '{name}'; configured: {', '.join(cfg.benchmarks)}")
        items = load_benchmark(name, cfg.benchmarks[name], synthetic=dataclasses.asdict(cfg.data.synthetic))
        items = list(items)[:limit] if limit else list(items)
        renderer = configured_renderer(cfg, name)
        get_renderer(renderer)
        benchmarks.append(BenchmarkData(name, renderer, [PartitionData(name, "all", None, items)]))
    separator = encode_text(tokenizer, cfg.inject.separator)
    return AuditSetup(tokenizer, separator, special_ids(tokenizer).bos, benchmarks, None)
