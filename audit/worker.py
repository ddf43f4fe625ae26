"""`python -m audit.worker <run_dir>`: one rank of a data-parallel audit.

Every rank runs the whole audit stage on the config saved by :func:`save_worker_config`;
the engine gives each rank a slice of every scoring call and gathers the results in
order, and only rank 0 writes results and logs to W&B. Launch with torchrun
(``python -m torch.distributed.run --nproc_per_node=N -m audit.worker <run_dir>``) or
``core.workers.launch.launch_workers("audit.worker", run_dir, cfg.launcher)``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from core.atomic import write_text
from core.config import SpikeinConfig, config_from_yaml, config_to_yaml
from core.run_dir import RunDir


def save_worker_config(cfg: SpikeinConfig) -> Path:
    """The resolved config the workers read (they never parse command-line overrides)."""
    path = RunDir(cfg.run_dir).audit_worker_config
    write_text(path, config_to_yaml(cfg))
    return path


def load_worker_config(run_dir: Path) -> SpikeinConfig:
    """What :func:`save_worker_config` wrote, typed again (with every registered detector's section)."""
    from audit.detectors import spikein_config_class
    from core.errors import SpikeinError

    path = RunDir(run_dir).audit_worker_config
    if not path.exists():
        raise SpikeinError(f"{path} missing: the audit workers' settings are written by the parent")
    cfg = config_from_yaml(path.read_text(), spikein_config_class())
    return dataclasses.replace(cfg, run_dir=str(run_dir))


def main(run_dir: Path) -> None:
    """One rank; :func:`core.workers.process.run_worker` owns logging, markers and the process group."""
    from audit.stage import audit_stage
    from core.workers import collective

    cfg = load_worker_config(run_dir)
    collective.maybe_init()
    audit_stage(cfg)  # the parent holds the run dir's audit lock


if __name__ == "__main__":
    from core.workers.process import run_worker

    run_worker(main, prefix="audit")
