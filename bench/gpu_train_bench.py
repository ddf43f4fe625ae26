"""GPU throughput of `spikein train`: a ~160M Llama from config, bf16, ZeRO-2, seq 2048.

A random-token stream (32k vocabulary, word-level tokenizer) is written to a temp run
dir; `spikein train` runs ``--steps`` updates (about 3 minutes on one H100) and the
script prints steady-state tokens/s and MFU from ``train/metrics.jsonl`` (the first
``--skip`` rows, warm-up and allocator growth, are left out). MFU uses
``6N + 12*L*d*T`` FLOPs per token over the configured peak (989 TFLOP/s bf16 dense).

    python bench/gpu_train_bench.py                 # one GPU
    python bench/gpu_train_bench.py --gpus 8        # torchrun, 8 GPUs
    python bench/gpu_train_bench.py --smoke         # CPU check of the script itself

Recorded results: none yet; the task that wrote this script had no GPU lent
(see the train-stage report). Add a line here when it is run: date, card, numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def word_tokenizer(out_dir: Path, vocab_size: int):
    """A fast tokenizer with exactly ``vocab_size`` tokens (random-token streams need no merges)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size - 2)}
    vocab.update({"<unk>": vocab_size - 2, "<|endoftext|>": vocab_size - 1})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>")
    fast.save_pretrained(str(out_dir))
    return fast


def write_random_run(run: Path, n_tokens: int, vocab_size: int) -> None:
    from core.atomic import write_json
    from inject.manifest import Manifest
    from inject.tokenizer import tokenizer_hash

    data = run / "data"
    tok = word_tokenizer(data / "tokenizer", vocab_size)
    rng = np.random.default_rng(0)
    rng.integers(0, vocab_size - 2, size=n_tokens, dtype=np.uint16).tofile(data / "stream.bin")
    manifest = Manifest(config_hash="gpu-bench", tokenizer_hash=tokenizer_hash(tok), tokenizer_dir="tokenizer",
                        vocab_size=len(tok), dtype="uint16", n_tokens=n_tokens, eos_id=tok.eos_token_id,
                        bos_id=None, separator="\n\n", separator_ids=[], benchmarks=[], partitions=[], copies=[])
    write_json(data / "manifest.json", manifest.to_json())


def overrides(run: Path, args) -> list[str]:
    common = [f"run_dir={run}", "logger.mode=disabled", f"train.max_steps={args.steps}", "train.log_every=10",
              "train.checkpoint_every=1000000", "train.save_initial=false", "train.warmup_steps=10"]
    if args.smoke:
        return common + ["model=tiny_llama", "model.config.hidden_size=32", "model.config.intermediate_size=64",
                         "model.config.num_hidden_layers=2", "model.config.max_position_embeddings=128",
                         "train.seq_len=128", "train.global_batch=4", "train.micro_batch=2", "deepspeed=zero2_cpu"]
    launcher = ["launcher=torchrun", f"launcher.nproc_per_node={args.gpus}"] if args.gpus > 1 else []
    return common + launcher + [
        "model=llama_160m", "train=gpu", "deepspeed=zero2_gpu", f"train.seq_len={args.seq}",
        f"train.micro_batch={args.micro}", f"train.global_batch={args.micro * args.accum * args.gpus}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--micro", type=int, default=16)
    p.add_argument("--accum", type=int, default=4)
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--skip", type=int, default=2, help="metrics rows left out as warm-up")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script, not the GPU")
    p.add_argument("--keep", type=Path, help="run dir to keep (default: a temp dir)")
    args = p.parse_args()
    if args.smoke:
        args.steps, args.skip = min(args.steps, 30), 1
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("WANDB_MODE", "disabled")
    sys.path.insert(0, str(REPO))
    from launch.config import compose
    from train.metrics import read_metrics
    from train.stage import run_train

    with tempfile.TemporaryDirectory() as tmp:
        run = args.keep or Path(tmp) / "run"
        cfg = compose(overrides(run, args))
        n_tokens = int(cfg.train.seq_len) * int(cfg.train.global_batch) * args.steps + 1
        write_random_run(run, n_tokens, vocab_size=256 if args.smoke else 32000)
        run_train(cfg)
        rows = read_metrics(run)[args.skip:]
    tps = statistics.median(r["tokens_per_s"] for r in rows)
    mfu = statistics.median(r["mfu"] for r in rows)
    print(f"gpu_train_bench: {cfg.model.name}, seq {cfg.train.seq_len}, global batch {cfg.train.global_batch} "
          f"(micro {cfg.train.micro_batch}), {cfg.train.precision}, ZeRO-{cfg.deepspeed.zero_stage}, "
          f"{args.gpus} device(s), {args.steps} steps")
    print(f"gpu_train_bench: median {tps:,.0f} tokens/s, MFU {mfu:.1%} over {len(rows)} rows of 10 steps")


if __name__ == "__main__":
    main()
