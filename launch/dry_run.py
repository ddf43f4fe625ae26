"""`dry_run=true`: the resolved plan, token budget and a GPU-hour estimate; no network, no files."""
from __future__ import annotations

import dataclasses
from typing import Any

from core.config import SpikeinConfig, benchmark_plan

ASSUMED_MFU = 0.4  # what a tuned DeepSpeed run reaches on H100s
ASSUMED_GPU = "H100"  # the GPU-hour estimate's GPU (its dense bf16 peak, train/metrics.py GPU_PEAKS)


def model_params(model: dict[str, Any]) -> int | None:
    """Parameters from the from-scratch config (12 L d^2 + V d), else the recipe's n_params."""
    if model["n_params"]:
        return int(model["n_params"])
    c = model["config"] or {}  # transformers kwargs: any of them may be left to the model's defaults
    d, layers = c.get("hidden_size"), c.get("num_hidden_layers")
    if not d or not layers:
        return None
    vocab = c.get("vocab_size") or model["bpe_vocab_size"] or 50_000
    return int(12 * layers * d * d + vocab * d)


def train_tokens(train: dict[str, Any]) -> int | None:
    if train["max_tokens"]:
        return int(train["max_tokens"])
    if train["max_steps"]:
        return int(train["max_steps"]) * int(train["global_batch"]) * int(train["seq_len"])
    return None


def describe(cfg: SpikeinConfig) -> str:
    c = dataclasses.asdict(cfg)
    inj, lines = c["inject"], [f"experiment {c['experiment_name']} -> {c['run_dir']}"]
    lines.append(f"model: {c['model']['pretrained'] or c['model']['name']} "
                 f"({'continual pretraining' if c['model']['pretrained'] else 'from scratch'})")
    src = c["data"]["hub"]["path"] if c["data"]["kind"] == "hub" else c["data"]["paths"] or "synthetic world"
    lines.append(f"corpus: {c['data']['kind']} {src}")
    for name, spec in c["benchmarks"].items():
        plan = benchmark_plan(inj, spec)
        size = plan.partition_size or f"{plan.partition_fraction} of the benchmark"
        lines.append(f"benchmark {name} ({spec.get('source')} {spec.get('path') or spec.get('name') or ''}): "
                     f"partitions of {size} items at counts {plan.counts}, mode {plan.mode}, "
                     f"renderer {plan.renderer}, window {plan.window}")
    n, d = model_params(c["model"]), train_tokens(c["train"])
    lines.append(f"training tokens: {f'{d:,}' if d else 'one pass over the stream (known after inject)'}; "
                 f"parameters: {f'{n / 1e6:.1f}M' if n else 'unknown'}")
    if n and d:
        from train.metrics import peak_flops

        peak = peak_flops(c["train"]["peak_flops"], "cuda", ASSUMED_GPU, "bf16")  # train.peak_flops.cuda, if set
        hours = 6 * n * d / (peak * ASSUMED_MFU) / 3600
        lines.append(f"estimated compute: {6 * n * d:.2e} FLOPs = {hours:.2f} GPU-hours at {ASSUMED_MFU:.0%} MFU "
                     f"({hours / (c['launcher']['nproc_per_node'] * c['launcher']['num_nodes']):.2f} h wall on "
                     f"{c['launcher']['nproc_per_node']}x{c['launcher']['num_nodes']} GPUs)")
    lines += memory_lines(c)
    if n:
        lines.append(audit_cost_line(c, n, d))
    when = "each checkpoint as it lands" if c["audit"]["watch"] else "the end"
    lines.append(f"audit: {c['audit']['detectors']} at {when}; launcher {c['launcher']['kind']}")
    return "\n".join(lines)


def model_shape(model: dict[str, Any]):
    """The architecture for the memory estimate, offline: the from-scratch config, a pretrained
    model's ``model.arch``, or its config if it is on disk; None when none of these is there."""
    from transformers import AutoConfig

    kwargs = dict(model["config"] or model["arch"] or {})
    try:
        if kwargs.get("model_type"):
            kwargs.setdefault("vocab_size", model["bpe_vocab_size"] or 50_000)
            return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
        if model["pretrained"]:
            return AutoConfig.from_pretrained(str(model["pretrained"]), local_files_only=True)
    except (OSError, ValueError, TypeError):
        return None
    return None


def memory_lines(c: dict[str, Any]) -> list[str]:
    """Estimated peak GPU memory per rank (train/memory.py), against ``train.gpu_memory_gb``."""
    from train.memory import GIB, Shape, estimate
    from train.model import meta_model

    t, lc = c["train"], c["launcher"]
    config = model_shape(c["model"])
    if config is None:
        return ["GPU memory per rank: unknown (no model.config / model.arch, config not on disk)"]
    params = sum(p.numel() for p in {id(p): p for p in meta_model(config).parameters()}.values())
    micro = int(t["micro_batch"])
    e = estimate(Shape.of(config, params), seq_len=int(t["seq_len"]), micro_batch=micro,
                 precision=t["precision"], zero_stage=int(c["deepspeed"]["zero_stage"]),
                 world_size=int(lc["nproc_per_node"]) * int(lc["num_nodes"]),
                 checkpointing=bool(t["activation_checkpointing"]), loss_chunk_tokens=t["loss_chunk_tokens"])
    lines = [f"GPU memory per rank (estimate, micro-batch {micro} x {t['seq_len']}): {e.line()}"]
    limit = t["gpu_memory_gb"]
    if limit and e.peak / GIB > float(limit):
        lines.append(f"warning: {e.peak / GIB:.1f} GiB exceeds train.gpu_memory_gb={limit}; try "
                     "train.activation_checkpointing=true, train.loss_chunk_tokens=8192, a smaller "
                     "train.micro_batch or a higher deepspeed.zero_stage (training refuses this plan)")
    return lines


# Forward passes per audited item, as measured on a synthetic-world run (bench/gpu_check.py's
# tiny run, tokens_run / n_items / tokens per item; prefix reuse included): the order tests
# grow with their permutations and blocks, the four membership-inference detectors share one.
PASSES_PER_ITEM = {"successor": 10.0, "option_shuffle": 8.0, "accuracy": 1.1, "mia": 1.0}
TOKENS_PER_ITEM = 100  # an assumption for a 4-option MCQ item (the synthetic world's: 58)


def audit_cost_line(c: dict[str, Any], n_params: int, train_tokens_: int | None) -> str:
    """The audit's forward FLOPs (2N per token run) next to training's (6N per token)."""
    a, t, inj = c["audit"], c["train"], c["inject"]
    parts = len(inj["counts"]) * max(len(c["benchmarks"]), 1)
    items = parts * int(inj["partition_size"] or 100)
    mia = {"loss", "zlib", "min_k", "min_k_pp"}
    passes = PASSES_PER_ITEM["mia"] if mia & set(a["detectors"]) else 0.0  # one pass serves all four
    for det in a["detectors"]:
        if det == "ordering":
            passes += 0.4 * (int(a["ordering"]["permutations"]) + 1)  # shuffles share their first items
        elif det not in mia:
            passes += PASSES_PER_ITEM.get(det, 1.0)
    steps = (train_tokens_ // (int(t["global_batch"]) * int(t["seq_len"]))) if train_tokens_ else None
    every = t["checkpoint_every"]
    n_ckpt = (steps // every + 1 + int(bool(t["save_initial"]))) if steps and every else None
    tokens = items * passes * TOKENS_PER_ITEM
    flops = 2.0 * n_params * tokens
    ratio = f"; training: {6.0 * n_params * train_tokens_:.2e} FLOPs" if train_tokens_ else ""
    many = f" x {n_ckpt} checkpoints = {flops * n_ckpt:.2e} FLOPs in all" if n_ckpt else ""
    return (f"audit cost: ~{items:,} items x {passes:.0f} forward passes x ~{TOKENS_PER_ITEM} tokens = "
            f"{tokens:.2e} tokens, {flops:.2e} FLOPs per checkpoint{many}{ratio}")
