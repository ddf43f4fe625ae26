"""`spikein run`: inject -> train -> audit -> report in one run directory.

Each stage says what it plans and what state its output is in (``stage_plan`` and
``stage_state``, see :mod:`core.stage_state`). The pipeline reads every state before it
writes anything and refuses an output made from another config, naming the changed keys;
with ``overwrite=true`` it removes exactly the conflicting outputs (and so everything
downstream of them) once inject has built the data. Every stage skips work whose
complete output already matches the config, so rerunning after a crash or a kill
continues where it stopped. ``dry_run=true`` prints the resolved config and every
stage's plan and state, and writes nothing.
"""
from __future__ import annotations

import dataclasses
import shutil
import threading

from core.atomic import write_text
from core.config import SpikeinConfig, config_to_yaml, with_values
from core.run_dir import RunDir
from core.run_lock import check_run_dir, stage_locks
from core.stage_state import StageState
from core.stages import PIPELINE, STAGES
from core.wandb_log import redact

LOCKED_STAGES = PIPELINE  # held by the pipeline while it runs


def run_pipeline(cfg: SpikeinConfig) -> int:
    from audit.stage import run_audit
    from inject.stage import run_inject
    from report.report import run_report
    from train.stage import run_train

    if cfg.dry_run:
        print(dry_run_text(cfg))
        return 0
    run_dir = check_run_dir(cfg.run_dir)
    if not cfg.overwrite:  # a refused run writes nothing, config.yaml included
        refuse_conflicts(cfg, stage_states(cfg))
    with stage_locks(run_dir, LOCKED_STAGES):
        run_inject(cfg)
        settle(cfg, stage_states(cfg))  # against the data now in place (it may have been rebuilt)
        write_text(RunDir(run_dir).config_yaml, config_to_yaml(redact(dataclasses.asdict(cfg))))
        if cfg.audit.watch:  # audit each checkpoint as it lands, while training
            _train_with_watching_audit(cfg, run_train, run_audit)
        else:
            run_train(cfg)
            _audit_checkpoints(cfg, run_audit)
        run_report(cfg)
    return 0


def stage_states(cfg: SpikeinConfig) -> list[StageState]:
    """Every stage's state, in order (reads only). Below a conflicting output, whatever
    exists was made from it and is conflicting too (with the same changed keys)."""
    rd, states = RunDir(cfg.run_dir), list[StageState]()
    for name in PIPELINE:
        upstream = next((s for s in states if s.status == "conflicting"), None)
        if upstream is None:
            states.append(_module(name).stage_state(cfg))
        elif any(p.exists() for p in rd.outputs(name)):
            states.append(StageState(name, "conflicting", f"made from the {upstream.stage} output that no longer "
                                     "matches", upstream.changed, upstream.refusal))
        else:
            states.append(StageState(name, "absent", f"nothing in {', '.join(map(str, rd.outputs(name)))}"))
    return states


def refuse_conflicts(cfg: SpikeinConfig, states: list[StageState]) -> None:
    """The first conflicting stage's one-line refusal, unless overwrite=true."""
    if not cfg.overwrite:
        for state in states:
            state.refuse()


def settle(cfg: SpikeinConfig, states: list[StageState]) -> None:
    """Refuse (without overwrite) or remove every conflicting output."""
    refuse_conflicts(cfg, states)
    rd = RunDir(cfg.run_dir)
    for state in states:
        if state.status != "conflicting":
            continue
        for path in rd.outputs(state.stage):
            if path.exists():
                print(f"run: overwrite=true, removing {path} ({state.detail})")
                shutil.rmtree(path)


def dry_run_text(cfg: SpikeinConfig) -> str:
    """The resolved config's summary, then each stage's plan and the state of its output now."""
    from launch.dry_run import describe

    lines, upstream = [describe(cfg), "stages (plan; state of the run dir now):"], None
    for state in stage_states(cfg):
        plan = f"from scratch once {upstream} is redone" if upstream else _module(state.stage).stage_plan(cfg)
        refused = state.status == "conflicting" and not (cfg.overwrite or upstream)
        note = " (refused unless overwrite=true)" if refused else ""
        lines += [f"  {state.stage}: {plan}", f"  {'':{len(state.stage)}}  {state.line()}{note}"]
        if state.status == "conflicting":
            upstream = upstream or state.stage
    return "\n".join(lines)


def _module(stage: str):
    return STAGES[stage].module()


def _audit_checkpoints(cfg: SpikeinConfig, run_audit) -> None:
    """In this process, or data-parallel on the launcher's workers when it has several."""
    from core.workers.launch import launch_workers, world_size

    if world_size(cfg.launcher) == 1:
        run_audit(cfg)
        return
    from audit.worker import save_worker_config

    save_worker_config(cfg)
    launch_workers("audit.worker", cfg.run_dir, cfg.launcher)


def _train_with_watching_audit(cfg: SpikeinConfig, run_train, run_audit) -> None:
    """Audit each checkpoint as it lands while the training workers run."""
    watch_cfg = with_values(cfg, {"audit.watch": True})
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
