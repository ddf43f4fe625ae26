"""The one place that knows where each file of a run directory lives (DESIGN.md section 2).

Stages name paths through :class:`RunDir` instead of joining strings, and the files more
than one package parses (``checkpoints/index.json``, ``data/manifest.json``,
``train/settings.json``) are read here, once. Writers stay with the stage that owns the
file; RunDir holds paths and JSON only (core imports no stage package), so typed objects
(``Manifest``, ``TrainSettings``) are built by their packages from what it reads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CorruptOutputError

STAGE_ORDER = ("inject", "train", "audit", "report")  # each stage reads what the ones before it wrote


@dataclass(frozen=True, init=False)
class RunDir:
    """A run directory::

        runs/<name>/
          config.yaml                 resolved config of the last `spikein run` (secrets redacted)
          .lock.<stage>               the stage's writer lock (flock; holds the holder's pid)
          data/                       inject
            stream.bin                token ids, uint16 or uint32, in training order
            manifest.json             tokenizer hash, stream length, every injected copy
            inject_config.json        the config data/ was built from (names changed keys)
            corpus_scan.json          benchmark items found in the corpus before training
            partitions/<bench>/<part>.jsonl   the items of each partition, injected order
            tokenizer/                the run's tokenizer
          checkpoints/                train
            index.json                complete checkpoints only; ``finished`` once training ended
            step_<N>/ds/              DeepSpeed state (resume)
            step_<N>/hf/              safetensors + tokenizer (audit)
            .step_<N>.tmp/            a checkpoint being written (never read)
          train/                      train
            settings.json             what every rank trains with (+ trajectory hash)
            metrics.jsonl             one row per logged step
            logs/rank<R>.log          the workers' logs
          audit/                      audit
            results.jsonl             one row per (checkpoint, benchmark, partition, detector)
            raw/<ckpt>/<bench>/<detector>/<part>.json   per-partition score cache
            worker_config.yaml        the data-parallel audit workers' config
          report/                     report
            report.md                 + PNG plots
          lm_eval/                    `spikein export-lm-eval`
          logs/<stage>/rank<R>.log    logs of workers launched without a log dir (the audit's)
    """

    root: Path

    def __init__(self, root: str | Path) -> None:  # the config's run_dir is a str
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def with_results_under(cls, parent: Path) -> list[RunDir]:
        """Every run dir below ``parent`` (a sweep) that holds audit results, sorted."""
        rel = cls(Path()).results  # audit/results.jsonl
        found = Path(parent).glob(f"**/{rel.as_posix()}")
        return [cls(p) for p in sorted(r.parents[len(rel.parts) - 1] for r in found)]

    # top level
    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    def lock(self, stage: str) -> Path:
        return self.root / f".lock.{stage}"

    # data/ (inject)
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.json"

    @property
    def stream(self) -> Path:
        return self.data / "stream.bin"

    @property
    def inject_config(self) -> Path:
        return self.data / "inject_config.json"

    @property
    def tokenizer(self) -> Path:
        return self.data / "tokenizer"

    @property
    def corpus_scan(self) -> Path:
        """Benchmark items found in the corpus before training (inject/corpus_scan.py)."""
        return self.data / "corpus_scan.json"

    def read_corpus_scan(self) -> dict[str, Any] | None:
        return _read_json(self.corpus_scan, "corpus scan")

    @property
    def partitions(self) -> Path:
        return self.data / "partitions"

    def partition(self, benchmark: str, name: str) -> Path:
        return self.partitions / benchmark / f"{name}.jsonl"

    def data_file(self, rel: str) -> Path:
        """A file the manifest names relative to data/ (a partition file, the tokenizer dir)."""
        return self.data / rel

    # checkpoints/ (train)
    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def index(self) -> Path:
        return self.checkpoints / "index.json"

    def step_dir(self, step: int) -> Path:
        return self.checkpoints / f"step_{step}"

    def step_tmp(self, step: int) -> Path:
        return self.checkpoints / f".step_{step}.tmp"

    def hf_dir(self, step: int) -> Path:
        return self.step_dir(step) / "hf"

    def ds_dir(self, step: int) -> Path:
        return self.step_dir(step) / "ds"

    def checkpoint_file(self, rel: str) -> Path:
        """A path an index entry names relative to checkpoints/ (its ``hf`` or ``ds``)."""
        return self.checkpoints / rel

    # train/
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_settings(self) -> Path:
        return self.train / "settings.json"

    @property
    def metrics(self) -> Path:
        return self.train / "metrics.jsonl"

    @property
    def train_logs(self) -> Path:
        return self.train / "logs"

    # audit/
    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def results(self) -> Path:
        return self.audit / "results.jsonl"

    @property
    def audit_raw(self) -> Path:
        return self.audit / "raw"

    @property
    def audit_worker_config(self) -> Path:
        return self.audit / "worker_config.yaml"

    # report/, exports
    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def report_md(self) -> Path:
        return self.report / "report.md"

    @property
    def lm_eval(self) -> Path:
        return self.root / "lm_eval"

    def worker_logs(self, stage: str) -> Path:
        return self.root / "logs" / stage

    def outputs(self, stage: str) -> tuple[Path, ...]:
        """What a stage writes (and what ``overwrite=true`` removes when it no longer matches)."""
        return {"inject": (self.data,), "train": (self.checkpoints, self.train),
                "audit": (self.audit,), "report": (self.report,)}[stage]

    # readers of files more than one package parses
    def read_index(self) -> dict[str, Any] | None:
        """``checkpoints/index.json``, checkpoints sorted by step; None before training wrote it."""
        index = _read_json(self.index, "checkpoint index")
        if index is None:
            return None
        try:
            index["checkpoints"] = sorted(index["checkpoints"], key=lambda c: int(c["step"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptOutputError(f"corrupt checkpoint index {self.index}: {e}") from None
        return index

    def read_manifest(self) -> dict[str, Any] | None:
        """``data/manifest.json`` as JSON (``inject.manifest.load_manifest`` types it)."""
        return _read_json(self.manifest, "manifest")

    def read_inject_config(self) -> dict[str, Any] | None:
        return _read_json(self.inject_config, "inject config")

    def read_train_settings(self) -> dict[str, Any] | None:
        """``train/settings.json`` as JSON (``train.settings`` types it)."""
        return _read_json(self.train_settings, "train settings")


def _read_json(path: Path, what: str) -> Any:
    """None when ``path`` is missing; a one-line CorruptOutputError when it is not JSON."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise CorruptOutputError(f"corrupt {what} {path}: {e}") from None
