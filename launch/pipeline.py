"""`spikein run`: inject -> train -> audit -> report in one run directory.

Every stage skips work whose complete output already matches the config, so
rerunning after a crash or a kill continues where it stopped. Settings that
would invalidate finished checkpoints are refused by name (``overwrite=true``
rebuilds instead).
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from inject.atomic import write_text
from inject.errors import SpikeinError
from inject.stage import changed_keys
from inject.wandb_log import redact

# Sections whose change makes existing checkpoints stale (inject checks its own).
TRAINING_KEYS = ("model", "train", "deepspeed")


def run_pipeline(cfg) -> int:
    from audit.stage import run_audit
    from inject.stage import run_inject
    from launch.dry_run import describe
    from launch.report import run_report
    from train.stage import run_train

    if cfg.dry_run:
        print(describe(cfg))
        return 0
    run_dir = Path(cfg.run_dir)
    _check_training_config(cfg, run_dir)
    run_inject(cfg)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(redact(_resolved(cfg)))))
    if cfg.audit.when == "each_checkpoint":
        _train_with_watching_audit(cfg, run_train, run_audit)
    else:
        run_train(cfg)
        run_audit(cfg)
    run_report(cfg)
    return 0


def _resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _check_training_config(cfg, run_dir: Path) -> None:
    saved = run_dir / "config.yaml"
    if not saved.exists() or not (run_dir / "checkpoints").exists():
        return
    old = OmegaConf.to_container(OmegaConf.load(saved))
    new = redact(_resolved(cfg))
    changed = [k for s in TRAINING_KEYS for k in changed_keys(old.get(s), new.get(s), f"{s}.")]
    if not changed:
        return
    if not cfg.overwrite:
        raise SpikeinError(f"{run_dir} holds checkpoints trained with a different config (changed: "
                           f"{', '.join(changed[:5])}); pass overwrite=true to retrain or choose another run_dir")
    for stale in ("checkpoints", "train", "audit", "report"):
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

    watcher = threading.Thread(target=audit_loop, name="audit-watch")
    watcher.start()
    try:
        run_train(cfg)
    finally:
        watcher.join()
    if failure:
        raise failure[0]
