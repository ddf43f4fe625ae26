"""The worker's resolved settings: written once by the stage, read by every rank.

Workers never parse Hydra arguments; every rank reads ``<run_dir>/train/settings.json``,
so all ranks (on every node) train with identical settings, typed by the schema's
dataclasses (a key misspelt in code is an AttributeError, not a silent default).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_json
from core.config import DeepSpeedConfig, LoggerConfig, ModelConfig, TrainConfig
from core.errors import SpikeinError
from core.run_dir import RunDir


@dataclass
class TrainSettings:
    run_dir: str
    experiment_name: str
    seed: int
    model: ModelConfig  # cfg.model, resolved
    train: TrainConfig  # cfg.train, resolved (raw: lr / batch_tokens may say "auto")
    deepspeed: DeepSpeedConfig  # cfg.deepspeed, resolved
    logger: LoggerConfig  # cfg.logger, resolved
    # resolved plan
    seq_len: int
    global_batch: int  # sequences per optimizer step, all ranks
    micro_batch: int  # sequences per rank per forward
    world_size: int
    max_steps: int
    lr: float
    warmup_steps: int
    n_params: int  # non-embedding parameters (Step Law's N)
    data_hash: str  # the manifest's config hash: new data invalidates checkpoints
    step_law: dict[str, float] | None = None  # what lr/batch "auto" resolved to
    config: dict[str, Any] = field(default_factory=dict)  # the whole resolved config (W&B)

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch

    def checkpoint_steps(self) -> list[int]:
        """The steps that get a checkpoint: every ``checkpoint_every``, the explicit
        ``checkpoint_steps`` (e.g. log-spaced after exposure), and the last."""
        return checkpoint_schedule(self.train, self.max_steps)

    def trajectory(self) -> dict[str, Any]:
        """What decides the sequence of weights: a checkpoint is only resumed under the same."""
        t = {k: v for k, v in asdict(self.train).items() if k not in NOT_TRAJECTORY}
        ds = {k: v for k, v in asdict(self.deepspeed).items() if k not in ("backend",)}
        model = {k: v for k, v in asdict(self.model).items() if k not in ("name", "n_params", "arch")}  # estimates only
        if t.get("loss_chunk_tokens") is None:  # HF's own loss, as before the key existed: old runs keep their hash
            t.pop("loss_chunk_tokens", None)
        return {"model": model, "train": t, "deepspeed": ds, "seed": self.seed,
                "seq_len": self.seq_len, "global_batch": self.global_batch,
                "max_steps": self.max_steps, "lr": self.lr, "warmup_steps": self.warmup_steps,
                "data": self.data_hash}

    def trajectory_hash(self) -> str:
        blob = json.dumps(self.trajectory(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Settings that may change between a run and its resume without changing the weights.
NOT_TRAJECTORY = {"micro_batch", "checkpoint_every", "checkpoint_steps", "keep_last", "keep_hf", "log_every",
                  "peak_flops", "save_initial",
                  "activation_checkpointing", "gpu_memory_gb"}  # recomputation is exact; the budget only plans


def checkpoint_schedule(train: TrainConfig, max_steps: int) -> list[int]:
    """Sorted checkpoint steps in ``[1, max_steps]`` (step 0 is ``save_initial``'s)."""
    every = train.checkpoint_every or max_steps
    if not isinstance(every, int) or every < 1:
        raise SpikeinError(f"train.checkpoint_every must be a positive number of steps, got {every!r}")
    explicit = list(train.checkpoint_steps)
    if not isinstance(explicit, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in explicit):
        raise SpikeinError(f"train.checkpoint_steps must be a list of step numbers, got {explicit!r}")
    bad = [x for x in explicit if not 1 <= x <= max_steps]
    if bad:
        raise SpikeinError(f"train.checkpoint_steps {bad} lie outside the run's steps 1..{max_steps} "
                           "(step 0 is train.save_initial)")
    return sorted(set(range(every, max_steps + 1, every)) | set(explicit) | {max_steps})


def save_settings(s: TrainSettings) -> Path:
    path = RunDir(s.run_dir).train_settings
    write_json(path, {**asdict(s), "trajectory_hash": s.trajectory_hash()})
    return path


def load_settings(run_dir: str | Path) -> TrainSettings:
    rd = RunDir(run_dir)
    saved = rd.read_train_settings()
    if saved is None:
        raise SpikeinError(f"no train settings at {rd.train_settings}: start training with `spikein train`")
    return settings_from_json(saved)


def settings_from_json(d: dict[str, Any]) -> TrainSettings:
    """What :func:`save_settings` wrote (``trajectory_hash`` aside), typed again."""
    d = {k: v for k, v in d.items() if k != "trajectory_hash"}
    typed = {key: _typed(cls, d[key]) for key, cls in (("model", ModelConfig), ("train", TrainConfig),
                                                       ("deepspeed", DeepSpeedConfig), ("logger", LoggerConfig))}
    return TrainSettings(**{**d, **typed})


def _typed(cls, values: dict[str, Any]):
    """Keys a later schema dropped are ignored, so an older run's settings still read (and compare)."""
    return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})
