"""Throughput of `spikein train` against a bare DeepSpeed loop on CPU (target ratio >= 0.95).

Both sides use the same model, batch, ZeRO stage and precision: the bare loop reads the
settings `spikein train` wrote and builds its engine with the same functions, then steps
on one fixed random batch (no data loader, no logging, no checkpoints). spikein's
tokens/s comes from its metrics rows after the first (warm-up) one, which include the
loader, the loss all-reduce and the fsynced metrics writes. The sides alternate and the
best of ``--repeats`` is kept for each, since the machine is shared.

    .venv/bin/python bench/train_bench.py [--hidden 128 --layers 2 --seq 128 --steps 40 --zero 0]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def spikein_tokens_per_s(run: Path, args) -> float:
    from train_fixtures import read_jsonl

    from launch.config import compose
    from train.stage import run_train

    for d in ("checkpoints", "train"):
        subprocess.run(["rm", "-rf", str(run / d)], check=True)
    overrides = [
        f"run_dir={run}", "model=tiny_llama", f"model.config.hidden_size={args.hidden}",
        f"model.config.intermediate_size={args.hidden * 4}", f"model.config.num_hidden_layers={args.layers}",
        f"model.config.max_position_embeddings={args.seq}", f"train.seq_len={args.seq}",
        f"train.global_batch={args.batch}", f"train.micro_batch={args.micro}", f"train.max_steps={args.steps}",
        f"train.log_every={args.log_every}", "train.checkpoint_every=1000000", "train.save_initial=false",
        f"deepspeed=zero{args.zero}_cpu", "logger.mode=disabled", "train.warmup_steps=0"]
    run_train(compose(overrides))
    rows = read_jsonl(run / "train" / "metrics.jsonl")[1:]  # the first interval holds the warm-up
    tokens = sum(args.log_every * args.seq * args.batch for _ in rows)
    seconds = sum(args.log_every * args.seq * args.batch / r["tokens_per_s"] for r in rows)
    return tokens / seconds


def bare_tokens_per_s(run: Path, args) -> float:
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_port()), PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, __file__, "--bare", str(run), "--steps", str(args.steps),
                          "--log-every", str(args.log_every)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["tokens_per_s"])


def _port() -> int:
    from core.workers.launch import free_port
    return free_port()


def bare_loop(run: Path, steps: int, warmup: int) -> None:
    """DeepSpeed alone: same engine as the worker, one fixed batch, timed after warm-up."""
    from core.workers.process import init_distributed, prepare_environment
    from train.settings import load_settings

    s = load_settings(run)
    prepare_environment("gloo")
    init_distributed("gloo")
    import torch

    from inject.manifest import load_manifest
    from train.ds_config import build_ds_config
    from train.model import build_model, model_config
    from train.worker import build_engine

    config = model_config(s.model, load_manifest(run))
    engine = build_engine(s, build_model(s.model, config, s.seed), build_ds_config(s, 1))
    accumulation = s.global_batch // s.micro_batch
    x = torch.randint(0, config.vocab_size, (s.micro_batch, s.seq_len))
    t0 = 0.0
    for step in range(steps):
        if step == warmup:
            t0 = time.perf_counter()
        for _ in range(accumulation):
            loss = engine(input_ids=x, labels=x, use_cache=False).loss
            engine.backward(loss)
            engine.step()
    loss.item()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"tokens_per_s": (steps - warmup) * s.tokens_per_step / elapsed}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--micro", type=int, default=8)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--zero", type=int, default=0, choices=[0, 2, 3])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per side (1: robust on a shared machine)")
    p.add_argument("--bare", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.bare:
        return bare_loop(args.bare, args.steps, warmup=args.log_every)
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # both sides' processes inherit it
    from train_fixtures import make_run

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        make_run(run, n_tokens=args.steps * args.seq * args.batch + 1)
        ours, bare = [], []
        for _ in range(args.repeats):
            ours.append(spikein_tokens_per_s(run, args))
            bare.append(bare_tokens_per_s(run, args))
            print(f"  spikein {ours[-1]:,.0f} tok/s   bare DeepSpeed {bare[-1]:,.0f} tok/s")
    print(f"model hidden={args.hidden} layers={args.layers}, seq {args.seq}, batch {args.batch} "
          f"(micro {args.micro}), ZeRO-{args.zero}, fp32, CPU, {args.threads} thread(s), {args.steps} steps")
    print(f"spikein train: {max(ours):,.0f} tok/s; bare DeepSpeed loop: {max(bare):,.0f} tok/s; "
          f"ratio {max(ours) / max(bare):.3f} (best of {args.repeats} each)")


if __name__ == "__main__":
    main()
