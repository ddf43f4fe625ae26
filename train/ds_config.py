"""The DeepSpeed JSON: generated from ``cfg.train`` + ``cfg.deepspeed``, or a user file.

A user file is the base; keys it leaves out are filled from the config, and batch
keys it sets must agree with the config, because the data loader is built on them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import SpikeinError
from train.settings import TrainSettings

BATCH_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")


def generated_config(s: TrainSettings, world_size: int) -> dict[str, Any]:
    t, ds = s.train, s.deepspeed
    params: dict[str, Any] = {"lr": s.lr, "betas": list(t.betas), "eps": float(t.eps),
                              "weight_decay": float(t.weight_decay), "torch_adam": bool(ds.torch_adam)}
    if ds.fused:
        params["fused"] = True  # torch's fused AdamW kernel (GPU), no DeepSpeed op build
    config = {
        "train_batch_size": s.global_batch,
        "train_micro_batch_size_per_gpu": s.micro_batch,
        "gradient_accumulation_steps": s.global_batch // (s.micro_batch * world_size),
        "gradient_clipping": float(t.grad_clip),
        "optimizer": {"type": "AdamW", "params": params},
        "zero_optimization": {"stage": int(ds.zero_stage)},
        "bf16": {"enabled": t.precision == "bf16"},  # precision is checked in the parent (TrainConfig.validate)
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,  # we log ourselves; DeepSpeed's own lines stay out
        "wall_clock_breakdown": False,
    }
    config.update(reduced_in_fp32(t.precision, int(ds.zero_stage)))
    return deep_merge(config, dict(ds.extra))


def reduced_in_fp32(precision: str, zero_stage: int) -> dict[str, Any]:
    """bf16 training with gradients all-reduced and accumulated in fp32.

    DeepSpeed's defaults follow the weights: bf16 reductions across ranks and bf16 sums over
    accumulation steps (each add rounds to 8 bits of mantissa). ZeRO 1-3 take fp32 for both;
    ZeRO-0 has no fp32 accumulation for bf16 weights (DeepSpeed raises), so there only the
    reduction is fp32 and :func:`check_backend`'s callers note it."""
    if precision != "bf16":
        return {}
    out: dict[str, Any] = {"communication_data_type": "fp32"}
    if zero_stage >= 1:
        out["data_types"] = {"grad_accum_dtype": "fp32"}
    return out


def check_backend(precision: str, backend: str, fused: bool, cuda_visible: bool, ds_accelerator: str | None) -> None:
    """Refuse a plan that would silently train on the wrong device: a GPU-only optimizer kernel
    or bf16 on gloo while CUDA is visible (gloo sets DS_ACCELERATOR=cpu: bf16 on the CPUs),
    or NCCL without a GPU. ``DS_ACCELERATOR=cpu`` in the environment asks for the CPUs."""
    if backend == "gloo" and fused:
        raise SpikeinError("deepspeed.fused=true is a GPU kernel but deepspeed.backend=gloo trains on the CPUs; "
                           "use deepspeed=zero2_gpu (nccl) or deepspeed.fused=false")
    if backend == "gloo" and precision == "bf16" and cuda_visible and ds_accelerator != "cpu":
        raise SpikeinError("train.precision=bf16 with deepspeed.backend=gloo would train on the CPUs although a GPU "
                           "is visible; use deepspeed=zero2_gpu (nccl), or set DS_ACCELERATOR=cpu to mean it")
    if backend == "nccl" and not cuda_visible:
        raise SpikeinError("deepspeed.backend=nccl needs a GPU and none is visible; use deepspeed=zero0_cpu (gloo)")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_ds_config(s: TrainSettings, world_size: int) -> dict[str, Any]:
    generated = generated_config(s, world_size)
    user_json = s.deepspeed.user_json
    if not user_json:
        return generated
    user = _read_user_json(Path(str(user_json)))
    for key in BATCH_KEYS:
        if key in user and user[key] != "auto" and int(user[key]) != generated[key]:
            raise SpikeinError(f"{user_json}: {key}={user[key]} disagrees with the train config "
                               f"({generated[key]}); remove it or change train.global_batch/micro_batch")
    user = {k: v for k, v in user.items() if v != "auto"}
    return deep_merge(generated, user)


def _read_user_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SpikeinError(f"deepspeed.user_json: no such file {path}")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise SpikeinError(f"deepspeed.user_json {path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SpikeinError(f"deepspeed.user_json {path}: expected a JSON object")
    return data


def check_backend_here(s: TrainSettings) -> None:
    """:func:`check_backend` against this machine (the parent, before any rank starts), and on
    GPUs the memory estimate against ``train.gpu_memory_gb``."""
    import os

    import torch

    check_backend(s.train.precision, s.deepspeed.backend, bool(s.deepspeed.fused), torch.cuda.is_available(),
                  os.environ.get("DS_ACCELERATOR"))
    if s.deepspeed.backend == "nccl" and s.train.gpu_memory_gb:
        check_memory(s)


def check_memory(s: TrainSettings) -> None:
    """Refuse a plan whose estimated peak per GPU (train/memory.py) exceeds train.gpu_memory_gb."""
    from inject.manifest import load_manifest
    from train.memory import GIB, Shape, estimate
    from train.model import meta_model, model_config

    config = model_config(s.model, load_manifest(s.run_dir))
    params = sum(p.numel() for p in {id(p): p for p in meta_model(config).parameters()}.values())
    e = estimate(Shape.of(config, params), seq_len=s.seq_len, micro_batch=s.micro_batch, precision=s.train.precision,
                 zero_stage=int(s.deepspeed.zero_stage), world_size=s.world_size,
                 checkpointing=bool(s.train.activation_checkpointing), loss_chunk_tokens=s.train.loss_chunk_tokens)
    assert s.train.gpu_memory_gb is not None  # the caller checks only when it is set
    if e.peak / GIB > s.train.gpu_memory_gb:
        raise SpikeinError(f"train.gpu_memory_gb={s.train.gpu_memory_gb}: the plan needs about {e.peak / GIB:.1f} GiB "
                           f"per GPU ({e.line()}); set train.activation_checkpointing=true, "
                           "train.loss_chunk_tokens, a smaller train.micro_batch, or raise train.gpu_memory_gb")
