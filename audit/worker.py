"""`python -m audit.worker <run_dir>`: one rank of a data-parallel audit.

Every rank runs the whole audit stage on the config saved by :func:`save_worker_config`;
the engine gives each rank a slice of every scoring call and gathers the results in
order, and only rank 0 writes results and logs to W&B. Launch with torchrun
(``python -m torch.distributed.run --nproc_per_node=N -m audit.worker <run_dir>``) or
``core.workers.launch.launch_workers("audit.worker", run_dir, cfg.launcher)``.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from core.atomic import write_text
from core.run_dir import RunDir


def save_worker_config(cfg) -> Path:
    """The resolved config the workers read (they never parse command-line overrides)."""
    path = RunDir(cfg.run_dir).audit_worker_config
    write_text(path, OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))
    return path


def main(run_dir: Path) -> None:
    """One rank; :func:`core.workers.process.run_worker` owns logging, markers and the process group."""
    from audit.stage import audit_stage
    from core.errors import SpikeinError
    from core.workers import collective

    path = RunDir(run_dir).audit_worker_config
    if not path.exists():
        raise SpikeinError(f"{path} missing: the audit workers' settings are written by the parent")
    cfg = OmegaConf.load(path)
    cfg.run_dir = str(run_dir)
    collective.maybe_init()
    audit_stage(cfg)  # the parent holds the run dir's audit lock


if __name__ == "__main__":
    from core.workers.process import run_worker

    run_worker(main, prefix="audit")
