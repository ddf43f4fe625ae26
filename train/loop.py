"""The training loop over an initialised DeepSpeed engine: steps, logging, checkpoints."""
from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from core.errors import Preempted
from inject.manifest import Manifest
from train import checkpoint as ckpt
from train.data import StreamBatches
from train.metrics import MetricsLogger, exposures
from train.settings import TrainSettings

log = logging.getLogger("spikein")


@dataclass
class LoopContext:
    settings: TrainSettings
    manifest: Manifest
    engine: Any  # deepspeed.DeepSpeedEngine (untyped)
    batches: StreamBatches
    metrics: MetricsLogger
    rank: int
    tokenizer_dir: Path
    trajectory_hash: str
    label_only_last: bool = False  # rows one token longer than the model's positions (train.model.label_only_last)


def deepspeed_reports_norm(engine) -> bool:
    """ZeRO and bf16 optimizers record the global grad norm; plain fp32 stage 0 does not."""
    return bool(engine.zero_optimization() or engine.bfloat16_enabled())


def module_grad_norm(engine) -> float | None:
    """The (all-reduced, unclipped) gradient norm, read before the optimizer step."""
    grads = [p.grad for p in engine.module.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else None


PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # SLURM: at the time limit, on preemption, --signal=USR1@T


class PreemptionSignal:
    """Remembers a scheduler's signal instead of dying of it: the loop finishes the step,
    saves a checkpoint and stops (every rank at the same step, see :meth:`agreed`)."""

    def __init__(self) -> None:
        self.received: int | None = None
        for sig in PREEMPT_SIGNALS:
            signal.signal(sig, self._note)

    def _note(self, signum, frame) -> None:
        self.received = signum

    def agreed(self, device) -> bool:
        """True on every rank once any rank got the signal (one tiny all-reduce per step)."""
        flag = torch.tensor([1 if self.received else 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def save(ctx: LoopContext, step: int, with_state: bool = True, with_hf: bool = True) -> None:
    s = ctx.settings
    tokens = step * s.tokens_per_step
    client = None
    if with_state:
        client = {"step": step, "tokens_seen": tokens, "trajectory_hash": ctx.trajectory_hash,
                  "rng": ckpt.gather_rng_states()}
    ckpt.save_checkpoint(ctx.engine, Path(s.run_dir), step, client_state=client,
                         tokenizer_dir=ctx.tokenizer_dir, tokens_seen=tokens,
                         epochs=tokens / ctx.manifest.n_tokens, keep_last=s.train.keep_last,
                         keep_hf=s.train.keep_hf, rank=ctx.rank, with_hf=with_hf,
                         exposure=exposures(ctx.manifest, tokens, s.tokens_per_step))
    what = "state + hf" if with_state and with_hf else "state" if with_state else "hf"
    log.info("checkpoint step_%d (%s tokens, %s)", step, f"{tokens:,}", what)


def _loss(engine, x, label_only_last: bool):
    """Next-token loss of a row: read whole, or, one token past the model's positions, read up
    to its last token, which is only predicted (``shift_labels``: the same targets)."""
    if label_only_last:
        return engine(input_ids=x[:, :-1], labels=x[:, :-1], shift_labels=x[:, 1:].contiguous(),
                      use_cache=False).loss
    return engine(input_ids=x, labels=x, use_cache=False).loss


def train_step(ctx: LoopContext, step: int, loss_sum: torch.Tensor, norm_from_module: bool) -> float | None:
    """One update (all micro-batches); adds the micro losses to ``loss_sum``.

    Returns the gradient norm read from the module before the optimizer step when
    ``norm_from_module`` (plain fp32 stage 0), else None.
    """
    engine, norm = ctx.engine, None
    for x in ctx.batches.step_batches(step):
        x = x.to(engine.device, non_blocking=True)
        loss = _loss(engine, x, ctx.label_only_last)
        engine.backward(loss)
        if norm_from_module and engine.is_gradient_accumulation_boundary():
            norm = module_grad_norm(engine)
        engine.step()
        loss_sum += loss.detach().float()
    return norm


def run_loop(ctx: LoopContext, start_step: int) -> None:
    from tqdm import tqdm

    from core.progress import show_bars

    s, engine = ctx.settings, ctx.engine
    log_every = s.train.log_every  # >= 1 (TrainConfig.validate)
    checkpoints = set(s.checkpoint_steps())
    loss_sum = torch.zeros((), device=engine.device)
    bar = tqdm(total=s.max_steps, initial=start_step, disable=ctx.rank != 0 or not show_bars(), unit="step", desc="train",
               dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    ctx.metrics.start_interval(start_step)
    steps_in_interval = 0
    own_norm = not deepspeed_reports_norm(engine)
    preemption = PreemptionSignal()
    for step in range(start_step, s.max_steps):
        done = step + 1
        lr = float(engine.get_lr()[0])  # the lr this update uses (the scheduler steps after it)
        want_log = done % log_every == 0 or done == s.max_steps
        norm = train_step(ctx, step, loss_sum, norm_from_module=want_log and own_norm)
        steps_in_interval += 1
        bar.update(1)
        if want_log:
            if not own_norm:
                norm = engine.get_global_grad_norm()
                norm = None if norm is None else float(norm)
            mean = _mean_loss(loss_sum, steps_in_interval * ctx.batches.accumulation)
            row = ctx.metrics.row(done, loss=mean, lr=lr, grad_norm=norm)
            ctx.metrics.write(row)
            bar.set_postfix(loss=f"{mean:.4f}", tok_s=f"{row['tokens_per_s']:,.0f}")
            loss_sum.zero_()
            steps_in_interval = 0
        if done in checkpoints:
            save(ctx, done)
            ctx.metrics.start_interval(done)  # checkpoint time is not training time
        if done < s.max_steps and preemption.agreed(engine.device):
            _stop_preempted(ctx, done, done in checkpoints, preemption.received)
    bar.close()


def _stop_preempted(ctx: LoopContext, done: int, saved: bool, signum: int | None) -> None:
    """Save the state after ``done`` updates (for resuming only: no HF export, so the audit
    sees the same checkpoints as an uninterrupted run), then stop every rank."""
    if not saved:
        save(ctx, done, with_hf=False)
    name = signal.Signals(signum).name if signum else "a peer's signal"
    raise Preempted(f"preempted by {name} at step {done} of {ctx.settings.max_steps}: checkpoint step_{done} "
                    "saved; rerun the same command to continue")


def _mean_loss(loss_sum: torch.Tensor, micro_steps: int) -> float:
    """Mean micro-batch loss over the interval and all ranks (one all-reduce per logged step)."""
    total = loss_sum.clone()
    dist.all_reduce(total)
    return float(total) / (micro_steps * dist.get_world_size())
