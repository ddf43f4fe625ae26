"""`spikein train`: check everything cheap here, write the workers' settings, launch, wait.

Every error a config can cause (missing stream, unknown model, tokenizer mismatch,
batch sizes, sequence length, checkpoints of another config) is raised here, before
any worker starts, as a one-line SpikeinError.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from core.errors import SpikeinError
from inject.manifest import Manifest, load_manifest, open_stream
from inject.plan import untrained_copies
from core.run_lock import stage_lock
from inject.stage import changed_keys
from train import checkpoint as ckpt
from core.budget import resolve_budget
from core.workers.launch import launch_workers, world_size
from train.metrics import read_metrics
from train.model import (check_seq_len, check_tokenizer, check_vocab, is_from_scratch, meta_model, model_config,
                         non_embedding_params)
from core.config import DeepSpeedConfig, LoggerConfig, ModelConfig, TrainConfig
from train.settings import TrainSettings, save_settings, settings_from_json, settings_path


def _container(node) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}  # type: ignore[return-value]


def plan_training(cfg) -> tuple[TrainSettings, Manifest]:
    """The resolved settings every rank will read (no weights loaded, nothing written)."""
    run_dir = Path(str(cfg.run_dir))
    manifest = load_manifest(run_dir)
    open_stream(run_dir, manifest)  # exists and has the manifest's length
    model_cfg, train_cfg = ModelConfig(**_container(cfg.model)), TrainConfig(**_container(cfg.train))
    config = model_config(model_cfg, manifest)
    check_tokenizer(model_cfg, manifest)
    check_vocab(config, manifest)
    check_seq_len(config, train_cfg.seq_len)
    n_params = non_embedding_params(meta_model(config))
    world = world_size(cfg.launcher)
    budget = resolve_budget(train_cfg, stream_tokens=manifest.n_tokens, n_params=n_params,
                            world_size=world, from_scratch=is_from_scratch(model_cfg))
    settings = TrainSettings(
        run_dir=str(run_dir), experiment_name=str(cfg.experiment_name),
        seed=train_cfg.seed,
        model=model_cfg, train=train_cfg, deepspeed=DeepSpeedConfig(**_container(cfg.deepspeed)),
        logger=LoggerConfig(**_container(cfg.logger)), seq_len=train_cfg.seq_len, global_batch=budget.global_batch,
        micro_batch=train_cfg.micro_batch, world_size=world, max_steps=budget.max_steps,
        lr=budget.lr, warmup_steps=budget.warmup_steps, n_params=n_params, data_hash=manifest.config_hash,
        step_law=budget.step_law, config=_container(cfg))
    settings.checkpoint_steps()  # train.checkpoint_steps inside the run, or a one-line error now
    epochs = settings.max_steps * settings.tokens_per_step / manifest.n_tokens
    print(f"train: {budget.describe(settings.seq_len)}, {epochs:.2f} epochs of {manifest.n_tokens:,} stream "
          f"tokens, {n_params:,} non-embedding parameters, {world} rank(s)")
    check_copies_trained(cfg, settings, manifest)
    if epochs > 1:
        print(f"train: more tokens than the stream holds: each copy is seen up to {math.ceil(epochs)} times "
              "(metrics and audit count every exposure, copies_seen_by_epoch per epoch)")
    return settings, manifest


def check_copies_trained(cfg, settings: TrainSettings, manifest: Manifest) -> None:
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
    if not bool((cfg.get("inject") or {}).get("allow_untrained_copies", False)):
        raise SpikeinError(problem)
    print(f"train: warning: {problem.split('; ')[0]} (inject.allow_untrained_copies=true)")


def check_previous_run(settings: TrainSettings, overwrite: bool) -> bool:
    """True when this exact training already finished; clears or refuses a different one."""
    run_dir = Path(settings.run_dir)
    old_path = settings_path(run_dir)
    index = ckpt.read_index(run_dir)
    if not old_path.exists() or not index or not index["checkpoints"]:
        return False
    old = json.loads(old_path.read_text())
    if old.get("trajectory_hash") != settings.trajectory_hash():
        if not overwrite:
            old_s = settings_from_json(old)
            keys = ", ".join(changed_keys(old_s.trajectory(), settings.trajectory())[:5]) or "unknown keys"
            raise SpikeinError(f"{run_dir}/checkpoints come from a different train config (changed: {keys}); "
                               "pass overwrite=true to start over or choose another run_dir")
        print(f"train: overwrite=true, removing {run_dir}/checkpoints and {run_dir}/train")
        shutil.rmtree(ckpt.checkpoints_dir(run_dir))
        shutil.rmtree(run_dir / "train")
        return False
    last = max(c["step"] for c in index["checkpoints"])
    return bool(index.get("finished")) and last >= settings.max_steps


def run_train(cfg) -> int:
    settings, manifest = plan_training(cfg)
    if cfg.dry_run:
        print("train: dry run, nothing trained")
        return 0
    with stage_lock(settings.run_dir, "train"):  # one trainer per run dir
        return _train(cfg, settings)


def _train(cfg, settings: TrainSettings) -> int:
    run_dir = Path(settings.run_dir)
    if check_previous_run(settings, bool(cfg.overwrite)):
        print(f"train: {run_dir}/checkpoints already hold the finished run (step {settings.max_steps})")
        return 0
    save_settings(settings)
    cpu = settings.deepspeed.backend == "gloo" and "DS_ACCELERATOR" not in os.environ
    launch_workers("train.worker", run_dir, _container(cfg.launcher), log_dir=run_dir / "train" / "logs",
                   env={"DS_ACCELERATOR": "cpu"} if cpu else None)  # also for the deepspeed launcher itself
    rows = read_metrics(run_dir)
    if rows:
        last = rows[-1]
        print(f"train: done, step {last['step']}, loss {last['loss']:.4f}, "
              f"{last['tokens_seen']:,} tokens ({last['epoch']:.2f} epochs); checkpoints in {run_dir}/checkpoints")
    return 0
