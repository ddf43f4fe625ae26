"""One training rank: ``python -m train.worker <run_dir>`` (started by :mod:`core.workers.launch`).

Reads ``<run_dir>/train/settings.json`` (never Hydra arguments), builds the model and
the DeepSpeed engine, resumes from the newest complete checkpoint, and trains.
"""
from __future__ import annotations

import functools
import logging
import random
from pathlib import Path

from core.workers.process import run_worker

log = logging.getLogger("spikein")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices only; norms, biases (1-D tensors) are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def build_engine(s, model, ds_config: dict):
    import deepspeed
    from torch.optim.lr_scheduler import LambdaLR

    from train.schedule import lr_factor

    factor = functools.partial(lr_factor, warmup=s.warmup_steps, total=s.max_steps,
                               min_ratio=float(s.train.min_lr_ratio))
    scheduler = None if "scheduler" in ds_config else (lambda opt: LambdaLR(opt, factor))
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=param_groups(model, float(s.train.weight_decay)),
        config=ds_config, lr_scheduler=scheduler)
    return engine


def main(run_dir: Path) -> None:
    from core.workers.process import init_distributed, prepare_environment
    from train.settings import load_settings

    s = load_settings(run_dir)
    prepare_environment(s.deepspeed.backend)
    rank, world = init_distributed(s.deepspeed.backend)
    train(s, Path(run_dir), rank, world)


def train(s, run_dir: Path, rank: int, world: int) -> None:
    import torch.distributed as dist

    from core.run_dir import RunDir
    from inject.manifest import load_manifest, open_stream
    from train import checkpoint as ckpt
    from train.data import StreamBatches
    from train.ds_config import build_ds_config
    from train.loop import LoopContext, run_loop, save
    from train.metrics import truncate_metrics
    from train.model import build_model, label_only_last, model_config

    manifest = load_manifest(run_dir)
    stream = open_stream(run_dir, manifest)
    seed_everything(s.seed)
    config = model_config(s.model, manifest)
    ds_config, universal = _resume_config(build_ds_config(s, world), run_dir, rank, world)
    engine = build_engine(s, build_model(s.model, config, s.seed, s.train), ds_config)
    batches = StreamBatches(stream, seq_len=s.seq_len, global_batch=s.global_batch, micro_batch=s.micro_batch,
                            rank=rank, world_size=world, vocab_size=int(config.get_text_config().vocab_size))
    if rank == 0:
        _prepare_checkpoints_dir(run_dir, s)
    dist.barrier()
    trajectory = s.trajectory_hash()
    start = _resume(engine, run_dir, trajectory, rank, universal)
    metrics = _metrics_logger(s, run_dir, manifest, config, engine, rank, world)
    ctx = LoopContext(s, manifest, engine, batches, metrics, rank, RunDir(run_dir).data_file(manifest.tokenizer_dir),
                      trajectory, label_only_last(config, s.seq_len))
    if rank == 0:
        log.info("%s from step %d of %d on %d rank(s), %s, ZeRO-%d, %s", "resuming" if start else "starting",
                 start, s.max_steps, world, _device_type(engine), engine.zero_optimization_stage(),
                 s.train.precision)
        truncate_metrics(run_dir, start)  # rows a killed run logged past its last checkpoint are redone
    if start == 0 and s.train.save_initial:
        save(ctx, 0, with_state=False)  # the untrained weights: the audit's baseline
    run_loop(ctx, start)
    if rank == 0:
        ckpt.mark_finished(run_dir)
    metrics.wandb_run.finish()
    dist.barrier()


def _prepare_checkpoints_dir(run_dir: Path, s) -> None:
    """Rank 0, before anyone resumes: drop half-written checkpoints, start the index."""
    from core.checkpoint_index import CheckpointIndex
    from core.run_dir import RunDir
    from train import checkpoint as ckpt

    ckpt.remove_stale_temps(run_dir)
    if RunDir(run_dir).read_index() is None:
        RunDir(run_dir).write_index(CheckpointIndex.new(s.seq_len, s.global_batch))


def _device_type(engine) -> str:
    return engine.device.type if hasattr(engine.device, "type") else str(engine.device).split(":")[0]


def _device_name(engine) -> str:
    import torch

    return torch.cuda.get_device_name(engine.device) if _device_type(engine) == "cuda" else ""


def _metrics_logger(s, run_dir: Path, manifest, config, engine, rank: int, world: int):
    """metrics.jsonl + W&B on rank 0 (a disabled logger elsewhere)."""
    from core.wandb_log import NullRun, init_wandb
    from train.metrics import MetricsLogger, peak_flops
    from train.model import flops_per_token

    peak = peak_flops(s.train.peak_flops, _device_type(engine), _device_name(engine), s.train.precision)
    wandb_run = NullRun()
    if rank == 0:
        wandb_run = init_wandb(s.logger, run_dir=str(run_dir), job_type="train", config=s.config,
                               name=f"{s.experiment_name}-train")
    return MetricsLogger(run_dir, manifest, enabled=rank == 0,
                         flops_per_token=flops_per_token(config, s.n_params, s.seq_len),
                         peak_flops=peak, world_size=world, tokens_per_step=s.tokens_per_step,
                         wandb_run=wandb_run, device=engine.device)


def _resume_config(ds_config: dict, run_dir: Path, rank: int, world: int) -> tuple[dict, bool]:
    """A ZeRO checkpoint partitioned over another number of ranks resumes through a DeepSpeed
    universal checkpoint (built once by rank 0); the engine must be told before it is built."""
    import torch.distributed as dist

    from core.run_dir import RunDir
    from train import checkpoint as ckpt

    entry = ckpt.latest_resumable(run_dir)
    saved = ckpt.saved_world_size(RunDir(run_dir).checkpoint_file(entry.ds)) if entry and entry.ds else None
    if entry is None or saved in (None, world):
        return ds_config, False
    assert entry is not None  # saved came from it
    if rank == 0:
        log.info("checkpoint step_%d was written by %d ranks, resuming on %d: DeepSpeed universal checkpoint",
                 entry.step, saved, world)
        ckpt.make_universal(run_dir, entry)
    dist.barrier()
    return {**ds_config, "checkpoint": {**ds_config.get("checkpoint", {}), "load_universal": True}}, True


def _resume(engine, run_dir: Path, trajectory: str, rank: int, universal: bool = False) -> int:
    """Load the newest complete checkpoint, if any; returns the number of updates done."""
    from train import checkpoint as ckpt

    entry = ckpt.latest_resumable(run_dir)
    if entry is None:
        return 0
    client = ckpt.load_checkpoint(engine, run_dir, entry, trajectory, universal)
    states = client["rng"]
    ckpt.set_rng_state(states[rank] if rank < len(states) else states[0])
    return int(client["step"])


if __name__ == "__main__":
    run_worker(main, prefix="train")
