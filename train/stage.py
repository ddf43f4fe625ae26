"""`spikein train`: check everything cheap here, write the workers' settings, launch, wait.

Every error a config can cause (missing stream, unknown model, tokenizer mismatch,
batch sizes, sequence length, checkpoints of another config) is raised here, before
any worker starts, as a one-line SpikeinError.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import shutil
from pathlib import Path

from core.budget import Budget, resolve_budget
from core.checkpoint_index import CheckpointIndex
from core.config import SpikeinConfig
from core.errors import SpikeinError
from core.run_dir import RunDir
from core.run_lock import stage_lock
from core.stage_state import StageState, changed_keys, keys_text
from core.workers.launch import launch_workers, world_size
from inject.manifest import Manifest, load_manifest, open_stream
from inject.plan import untrained_copies
from train import checkpoint as ckpt
from train.ds_config import check_backend_here
from train.metrics import read_metrics
from train.model import (
    check_seq_len,
    check_tokenizer,
    check_vocab,
    is_from_scratch,
    meta_model,
    model_config,
    non_embedding_params,
)
from train.settings import TrainSettings, save_settings, settings_from_json


def resolve_training(cfg: SpikeinConfig) -> tuple[TrainSettings, Manifest, Budget]:
    """The resolved settings every rank will read (no weights loaded, nothing written or printed)."""
    run_dir = Path(cfg.run_dir)
    manifest = load_manifest(run_dir)
    open_stream(run_dir, manifest)  # exists and has the manifest's length
    model_cfg, train_cfg = cfg.model, cfg.train
    config = model_config(model_cfg, manifest)
    check_tokenizer(model_cfg, manifest)
    check_vocab(config, manifest)
    check_seq_len(config, train_cfg.seq_len)
    n_params = non_embedding_params(meta_model(config))
    world = world_size(cfg.launcher)
    budget = resolve_budget(train_cfg, stream_tokens=manifest.n_tokens, n_params=n_params,
                            world_size=world, from_scratch=is_from_scratch(model_cfg))
    settings = TrainSettings(
        run_dir=str(run_dir), experiment_name=cfg.experiment_name,
        seed=train_cfg.seed,
        model=model_cfg, train=train_cfg, deepspeed=cfg.deepspeed,
        logger=cfg.logger, seq_len=train_cfg.seq_len, global_batch=budget.global_batch,
        micro_batch=train_cfg.micro_batch, world_size=world, max_steps=budget.max_steps,
        lr=budget.lr, warmup_steps=budget.warmup_steps, n_params=n_params, data_hash=manifest.config_hash,
        step_law=budget.step_law, config=dataclasses.asdict(cfg))
    settings.checkpoint_steps()  # train.checkpoint_steps inside the run, or a one-line error now
    return settings, manifest, budget


def plan_training(cfg: SpikeinConfig) -> tuple[TrainSettings, Manifest]:
    """:func:`resolve_training`, its plan printed, untrained copies refused (or warned about)."""
    settings, manifest, budget = resolve_training(cfg)
    epochs = settings.max_steps * settings.tokens_per_step / manifest.n_tokens
    print(f"train: {budget.describe(settings.seq_len)}, {epochs:.2f} epochs of {manifest.n_tokens:,} stream "
          f"tokens, {settings.n_params:,} non-embedding parameters, {settings.world_size} rank(s)")
    check_copies_trained(cfg, settings, manifest)
    if epochs > 1:
        print(f"train: more tokens than the stream holds: each copy is seen up to {math.ceil(epochs)} times "
              "(metrics and audit count every exposure, copies_seen_by_epoch per epoch)")
    return settings, manifest


def check_copies_trained(cfg: SpikeinConfig, settings: TrainSettings, manifest: Manifest) -> None:
    """Refuse (or, with inject.allow_untrained_copies, warn about) copies training never reaches."""
    trained = settings.max_steps * settings.tokens_per_step
    epoch = manifest.epoch_tokens or manifest.n_tokens
    if manifest.tokens_per_step not in (None, settings.tokens_per_step):
        print(f"train: note: the copies were placed for {manifest.tokens_per_step:,} tokens per step, "
              f"this run takes {settings.tokens_per_step:,} (rebuild the data to keep every copy in whole batches)")
        epoch = manifest.n_tokens // settings.tokens_per_step * settings.tokens_per_step
    problem = untrained_copies(manifest.copies, trained, epoch)
    if problem is None:
        return
    if not cfg.inject.allow_untrained_copies:
        raise SpikeinError(problem)
    print(f"train: warning: {problem.split('; ')[0]} (inject.allow_untrained_copies=true)")


def stage_state(cfg: SpikeinConfig) -> StageState:
    """checkpoints/ against this config (reads only; the data must be there to resolve the run)."""
    rd = RunDir(cfg.run_dir)
    index = rd.read_index()
    if rd.read_manifest() is None:
        if index and index.checkpoints:
            return StageState("train", "resumable", f"checkpoints up to step {index.last_step}, "
                              "checked against the config once data/ is built")
        return StageState("train", "absent", f"no checkpoints in {rd.checkpoints}")
    with contextlib.redirect_stdout(io.StringIO()):  # its plan is printed when the stage runs
        settings, _ = plan_training(cfg)  # and its refusals (e.g. untrained copies) raised now
    return training_state(settings, index)


def training_state(settings: TrainSettings, index: CheckpointIndex | None) -> StageState:
    """done (the finished run of these settings), resumable, conflicting (another trajectory), absent."""
    rd = RunDir(settings.run_dir)
    if not index or index.last_step is None:
        return StageState("train", "absent", f"no checkpoints in {rd.checkpoints}")
    last, old = index.last_step, rd.read_train_settings()
    if old is None:  # each worker checks a checkpoint's trajectory before resuming from it
        return StageState("train", "resumable", f"checkpoints up to step {last}, no {rd.train_settings}")
    if old.get("trajectory_hash") != settings.trajectory_hash():
        keys = tuple(changed_keys(settings_from_json(old).trajectory(), settings.trajectory()))
        refusal = (f"{rd.root}/checkpoints come from a different train config (changed: {keys_text(keys)}); "
                   "pass overwrite=true to start over or choose another run_dir")
        return StageState("train", "conflicting", f"checkpoints up to step {last} of another train config "
                          f"(changed: {keys_text(keys)})", keys, refusal)
    if index.finished and last >= settings.max_steps:
        return StageState("train", "done", f"{rd.checkpoints} hold the finished run (step {settings.max_steps})")
    return StageState("train", "resumable", f"checkpoints up to step {last} of {settings.max_steps}")


def stage_plan(cfg: SpikeinConfig) -> str:
    """The budget and the step training starts from (from the config alone before data/ exists)."""
    rd = RunDir(cfg.run_dir)
    if rd.read_manifest() is None:
        t = cfg.train
        size = (f"{t.max_steps} steps" if t.max_steps else f"{t.max_tokens:,} tokens" if t.max_tokens
                else "one pass over the stream")
        return f"{size} of {t.seq_len}-token sequences, resolved once data/ exists"
    settings, _, budget = resolve_training(cfg)
    state = training_state(settings, rd.read_index())
    if state.status == "done":
        return f"nothing to train: {state.detail}"
    resume = ckpt.latest_resumable(rd.root) if state.status == "resumable" else None
    start = resume.step if resume else 0
    return f"{budget.describe(settings.seq_len)}, {settings.world_size} rank(s), from step {start}"


def check_previous_run(settings: TrainSettings, overwrite: bool) -> bool:
    """True when this exact training already finished; clears (overwrite) or refuses a different one."""
    rd = RunDir(settings.run_dir)
    state = training_state(settings, rd.read_index())
    if state.status != "conflicting":
        return state.status == "done"
    if not overwrite:
        state.refuse()
    print(f"train: overwrite=true, removing {rd.checkpoints} and {rd.train}")
    for path in rd.outputs("train"):
        shutil.rmtree(path, ignore_errors=True)
    return False


def run_train(cfg: SpikeinConfig) -> int:
    settings, manifest = plan_training(cfg)
    if cfg.dry_run:
        state = training_state(settings, RunDir(settings.run_dir).read_index())
        print(f"train: dry run, nothing trained; checkpoints: {state.line()}")
        return 0
    with stage_lock(settings.run_dir, "train"):  # one trainer per run dir
        return _train(cfg, settings)


def _train(cfg: SpikeinConfig, settings: TrainSettings) -> int:
    rd = RunDir(settings.run_dir)
    if check_previous_run(settings, cfg.overwrite):
        print(f"train: {rd.checkpoints} already hold the finished run (step {settings.max_steps})")
        return 0
    check_backend_here(settings)
    save_settings(settings)
    cpu = settings.deepspeed.backend == "gloo" and "DS_ACCELERATOR" not in os.environ
    launch_workers("train.worker", rd.root, cfg.launcher, log_dir=rd.train_logs,
                   env={"DS_ACCELERATOR": "cpu"} if cpu else None)  # also for the deepspeed launcher itself
    rows = read_metrics(rd.root)
    if rows:
        last = rows[-1]
        print(f"train: done, step {last['step']}, loss {last['loss']:.4f}, "
              f"{last['tokens_seen']:,} tokens ({last['epoch']:.2f} epochs); checkpoints in {rd.checkpoints}")
    return 0
