"""`spikein run`: inject -> train -> audit -> report in one run directory.

Every stage skips work whose complete output already matches the config, so
rerunning after a crash or a kill continues where it stopped. Settings that
would invalidate finished checkpoints are refused by name (``overwrite=true``
rebuilds instead).
"""
from __future__ import annotations

import contextlib
import io
import shutil
import threading
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from core.atomic import write_text
from core.run_lock import check_run_dir, stage_locks
from core.wandb_log import redact

LOCKED_STAGES = ("inject", "train", "audit", "report")  # held by the pipeline while it runs


def run_pipeline(cfg) -> int:
    from audit.stage import run_audit
    from inject.stage import run_inject
    from launch.dry_run import describe
    from launch.report import run_report
    from train.stage import run_train

    if cfg.dry_run:
        print(describe(cfg))
        return 0
    run_dir = check_run_dir(cfg.run_dir)
    check_stages(cfg)  # a refused run writes nothing, config.yaml included
    with stage_locks(run_dir, LOCKED_STAGES):
        run_inject(cfg)
        _drop_stale_results(cfg, run_dir)
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(redact(_resolved(cfg)))))
        if cfg.audit.watch:  # audit each checkpoint as it lands, while training
            _train_with_watching_audit(cfg, run_train, run_audit)
        else:
            run_train(cfg)
            _audit_checkpoints(cfg, run_audit)
        run_report(cfg)
    return 0


def check_stages(cfg) -> None:
    """Every stage's refusal (data or checkpoints of another config), before any write."""
    from inject.stage import is_up_to_date
    from train.stage import check_previous_run, plan_training

    if cfg.overwrite or not is_up_to_date(cfg):
        return  # overwrite refuses nothing; without data there are no checkpoints to keep
    with contextlib.redirect_stdout(io.StringIO()):  # its plan is printed when the stage runs
        settings, _ = plan_training(cfg)
    check_previous_run(settings, overwrite=False)


def _resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _audit_checkpoints(cfg, run_audit) -> None:
    """In this process, or data-parallel on the launcher's workers when it has several."""
    from core.workers.launch import launch_workers, world_size

    if world_size(cfg.launcher) == 1:
        run_audit(cfg)
        return
    from audit.worker import save_worker_config

    save_worker_config(cfg)
    launch_workers("audit.worker", cfg.run_dir, cfg.launcher)


def _drop_stale_results(cfg, run_dir: Path) -> None:
    """With overwrite=true, training that no longer matches the config is removed by the
    train stage; the audit rows and report made from those checkpoints must go with it."""
    if not cfg.overwrite or not (run_dir / "checkpoints").exists():
        return
    from train.stage import check_previous_run, plan_training

    settings, _ = plan_training(cfg)
    check_previous_run(settings, overwrite=True)
    if not (run_dir / "checkpoints").exists():
        for stale in ("audit", "report"):
            shutil.rmtree(run_dir / stale, ignore_errors=True)


def _train_with_watching_audit(cfg, run_train, run_audit) -> None:
    """Audit each checkpoint as it lands while the training workers run."""
    watch_cfg = OmegaConf.create(_resolved(cfg))
    with open_dict(watch_cfg):
        watch_cfg.audit.watch = True
    failure: list[BaseException] = []

    def audit_loop() -> None:
        try:
            run_audit(watch_cfg)
        except BaseException as e:  # re-raised in the main thread
            failure.append(e)

    # A daemon: if training fails, the exception ends the process and the watcher with it.
    watcher = threading.Thread(target=audit_loop, name="audit-watch", daemon=True)
    watcher.start()
    run_train(cfg)
    watcher.join()
    if failure:
        raise failure[0]
