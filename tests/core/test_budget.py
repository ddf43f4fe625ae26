"""core.budget against hand-computed budgets: batch rounding, steps, Step Law, warmup, the
summary line, and each refusal as one line with the numbers that caused it."""
from __future__ import annotations

import pytest

from core.budget import Budget, resolve_budget
from core.config import TrainConfig
from core.errors import SpikeinError

# seq 32, micro 2, 2 ranks: one micro-step of all ranks holds 4 sequences (128 tokens)
BASE = {"seq_len": 32, "global_batch": 8, "micro_batch": 2, "lr": 1e-3, "warmup_steps": 5}


def resolve(stream_tokens: int = 2560, n_params: int = 10**6, world_size: int = 2, from_scratch: bool = True,
            **train) -> Budget:
    return resolve_budget(TrainConfig(**{**BASE, **train}), stream_tokens=stream_tokens, n_params=n_params,
                          world_size=world_size, from_scratch=from_scratch)


def test_one_pass_trains_whole_batches_only():
    # 8 x 32 = 256 tokens a step; 2,560 tokens: 10 steps; 2,815: still 10 (the 255-token tail is dropped)
    assert resolve().max_steps == 10
    assert resolve(stream_tokens=2815).max_steps == 10
    assert resolve(stream_tokens=2816).max_steps == 11
    b = resolve()
    assert (b.global_batch, b.lr, b.warmup_steps, b.step_law) == (8, 1e-3, 5, None)
    assert b.describe(32) == "10 steps x 8 sequences x 32 tokens = 2,560 tokens, lr 0.001, warmup 5"


def test_max_tokens_rounds_steps_up_and_max_steps_wins():
    assert resolve(max_tokens=1000).max_steps == 4  # ceil(1000 / 256)
    assert resolve(max_tokens=1024).max_steps == 4
    assert resolve(max_tokens=1025).max_steps == 5
    assert resolve(max_tokens=10**6, max_steps=3).max_steps == 3
    assert resolve(max_steps=30).max_steps == 30  # beyond the stream: more epochs
    assert resolve(max_steps=3).warmup_steps == 3  # warmup never exceeds the run


def test_batch_tokens_round_to_whole_micro_steps_of_all_ranks():
    # 1000 / 32 = 31.25 sequences = 7.8 micro-steps of 4 -> 8 micro-steps = 32 sequences
    assert resolve(batch_tokens=1000, stream_tokens=10**4).global_batch == 32
    assert resolve(batch_tokens=1000, stream_tokens=10**4).max_steps == 9  # 10,000 // 1,024
    assert resolve(batch_tokens=1000, world_size=1).global_batch == 32  # 15.6 micro-steps of 2 -> 16
    assert resolve(batch_tokens=10).global_batch == 4  # never below one micro-step of all ranks
    assert resolve(batch_tokens=1000).step_law is None  # a number is not the Step Law


def test_step_law_lr_on_the_tokens_actually_trained():
    b = resolve(lr="auto", max_steps=10)
    # D = 10 x 8 x 32 = 2,560; 1.79 x 1e6^-0.713 x 2560^0.307 = 1.0500e-3
    assert b.lr == pytest.approx(1.0500e-3, rel=1e-4)
    assert b.step_law == {"N": 1e6, "D": 2560.0, "lr": b.lr}
    assert resolve(lr=" AUTO ", max_steps=10).lr == b.lr  # "auto" in any case and spacing


def test_step_law_batch_and_lr_from_max_tokens():
    b = resolve(lr="auto", batch_tokens="auto", max_tokens=10**6)
    # batch: 0.58 x 1e6^0.571 = 1,546.8 tokens = 48.3 sequences -> 12 micro-steps of 4 = 48
    # steps: ceil(1e6 / (48 x 32)) = 652, so D = 652 x 1,536 = 1,001,472 tokens for the lr:
    # log10 lr = log10 1.79 - 0.713 x 6 + 0.307 x 6.00064 = -2.18295, lr = 6.562e-3
    assert (b.global_batch, b.max_steps) == (48, 652)
    assert b.step_law["batch_tokens"] == pytest.approx(1546.8, abs=0.05)
    assert b.step_law["D"] == 1_001_472
    assert b.lr == pytest.approx(6.562e-3, rel=1e-4)
    assert b.describe(32) == ("652 steps x 48 sequences x 32 tokens = 1,001,472 tokens, lr 0.00656, warmup 5 "
                              "(Step Law: N=1,000,000 D=1,001,472 -> lr 0.00656, batch 1,547 tokens)")


def test_a_step_law_lr_alone_is_described():
    """lr=auto with a fixed global batch: the summary crashed on the batch it did not compute."""
    b = resolve(lr="auto", max_steps=10)
    assert b.describe(32) == ("10 steps x 8 sequences x 32 tokens = 2,560 tokens, lr 0.00105, warmup 5 "
                              "(Step Law: N=1,000,000 D=2,560 -> lr 0.00105)")


def test_a_step_law_batch_with_a_given_lr_keeps_the_lr():
    b = resolve(batch_tokens="auto", max_tokens=10**6, lr=2e-3)
    assert b.lr == 2e-3 and b.step_law["lr"] == 2e-3 and b.step_law["N"] == 1e6


@pytest.mark.parametrize("train, message", [
    ({"global_batch": 6}, "train.global_batch=6 is not a multiple of micro_batch x world size (2 x 2 = 4)"),
    ({"global_batch": 8, "micro_batch": 3}, "train.global_batch=8 is not a multiple of micro_batch x world size (3 x 2 = 6)"),
    ({"stream_tokens": 255}, "the stream holds 255 tokens, fewer than one global batch (256); lower "
                             "train.global_batch or train.seq_len, or set train.max_steps"),
    ({"max_steps": 0}, "train.max_steps must be positive, got 0"),
    ({"max_tokens": 0}, "train.max_steps must be positive, got 0"),
    ({"lr": -1e-3}, "train.lr must be positive, got -0.001"),
    ({"lr": "auto", "from_scratch": False}, "train.lr=auto (Step Law) is for from-scratch runs; set train.lr "
                                            "for continual pretraining of model.pretrained"),
    ({"batch_tokens": "auto", "max_steps": 10}, "train.batch_tokens=auto needs the budget in tokens: set "
                                                "train.max_tokens (or neither it nor train.max_steps for one pass)"),
])
def test_each_refusal_is_one_exact_line(train, message):
    kw = {k: train.pop(k) for k in ("stream_tokens", "from_scratch") if k in train}
    with pytest.raises(SpikeinError) as e:
        resolve(**kw, **train)
    assert str(e.value) == message
