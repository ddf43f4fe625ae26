"""The one list of stages: what the CLI offers, what `spikein run` chains, what each writes.

The CLI (``launch/cli.py``), the pipeline and the dry run (``launch/pipeline.py``),
multirun (``launch/multirun.py``) and :class:`core.run_dir.RunDir` read it. Entries name
their code as ``module:function`` strings and import it only when called: core imports
no stage package.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable


@dataclass(frozen=True)
class Stage:
    name: str
    entry: str  # "module:function", the function taking the composed config
    description: str  # one line, for `spikein --help`
    outputs: tuple[str, ...] = ()  # RunDir properties the stage writes (what overwrite=true removes)

    @property
    def module_name(self) -> str:
        return self.entry.split(":")[0]

    def module(self) -> ModuleType:
        """The stage's module (a pipeline stage's also has ``stage_plan`` and ``stage_state``)."""
        return importlib.import_module(self.module_name)

    def fn(self) -> Callable[[Any], object]:
        return getattr(self.module(), self.entry.split(":")[1])


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("inject", "inject.stage:run_inject", "build the token stream, manifest and partitions", ("data",)),
    Stage("verify", "inject.verify:run_verify", "re-read the stream and check every recorded copy"),
    Stage("train", "train.stage:run_train", "continually pretrain with DeepSpeed on the stream", ("checkpoints", "train")),
    Stage("audit", "audit.stage:run_audit", "score every checkpoint with the detectors", ("audit",)),
    Stage("export-lm-eval", "launch.export_lm_eval:run_export", "write the partitions as lm-eval tasks in <run_dir>/lm_eval"),
    Stage("report", "report.report:run_report", "write report.md and plots from the results", ("report",)),
    Stage("run", "launch.pipeline:run_pipeline", "inject -> train -> audit -> report in one run dir"),
)}

# what `spikein run` chains, in order: each stage reads what the ones before it wrote
PIPELINE: tuple[str, ...] = ("inject", "train", "audit", "report")


def stage(name: str) -> Stage:
    return STAGES[name]
