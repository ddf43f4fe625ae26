"""The one prepared GPU check (run by bench/gpu_check.sh): one table, every section on its own.

Sections (each catches its own failure and reports it as a row, so one failure loses nothing else):
  train_160m   `spikein train` on a ~160M Llama (llama_160m), bf16, ZeRO-2, seq 2048: tokens/s, MFU,
               max_memory_allocated against the dry run's estimate (train/memory.py)
  train_05b    a Qwen2.5-0.5B-sized model (qwen2 config written here, random init, no download) with
               activation checkpointing and the chunked loss, a few steps: tokens/s, memory vs estimate
  audit        a tiny synthetic-world run trained here on the CPU, audited by all eight detectors on the
               CPU and on the GPU (launcher torchrun, world size 1: the audit's process group on CUDA):
               max |log10 p| difference per detector
  precision    the same checkpoint on the GPU at amp, mixed and bf16 against fp32: max |log10 p| difference
               per detector
`--cpu`: the same sections with tiny sizes on the CPU (what the slow test runs), so the script is
known to work before a GPU is lent. Writes the table to $OUT/gpu_check.md when $OUT is set.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ["ordering", "successor", "option_shuffle", "accuracy", "loss", "zlib", "min_k", "min_k_pp"]
QWEN_05B = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
            "tie_word_embeddings": True, "vocab_size": 151936}


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, section: str, what: str, value) -> None:
        self.rows.append((section, what, value if isinstance(value, str) else f"{value:,.4g}"))
        print(f"gpu_check: {section}: {what} = {self.rows[-1][2]}", flush=True)

    def markdown(self) -> str:
        return "\n".join(["| section | what | value |", "|---|---|---|",
                          *(f"| {s} | {w} | {v} |" for s, w, v in self.rows)]) + "\n"


def section(table: Table, name: str, fn, *args) -> None:
    t0 = time.perf_counter()
    try:
        fn(table, *args)
        table.add(name, "status", f"ok ({time.perf_counter() - t0:.0f} s)")
    except BaseException as e:  # noqa: BLE001 - one section's failure is a row, not the end
        if isinstance(e, KeyboardInterrupt):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        traceback.print_exc()
        table.add(name, "status", f"FAILED after {time.perf_counter() - t0:.0f} s: {type(e).__name__}: {first}")


# --- training ------------------------------------------------------------------------

def train_overrides(run: Path, args, model: list[str], extra: list[str]) -> list[str]:
    common = [f"run_dir={run}", "logger.mode=disabled", "train.checkpoint_every=null", "train.save_initial=false",
              "train.warmup_steps=2", "train.log_every=2" if args.cpu else "train.log_every=5"]
    device = ["deepspeed=zero2_cpu"] if args.cpu else ["train=gpu", "deepspeed=zero2_gpu"]
    return common + device + model + extra


def train_run(table: Table, name: str, run: Path, overrides: list[str], steps: int, vocab: int) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_train_bench import write_random_run

    from inject.manifest import load_manifest
    from launch.config import compose
    from train.memory import GIB, Shape, estimate
    from train.metrics import read_metrics
    from train.model import meta_model, model_config
    from train.stage import run_train

    cfg = compose(overrides + [f"train.max_steps={steps}"])
    n_tokens = int(cfg.train.seq_len) * int(cfg.train.global_batch) * steps + 1
    write_random_run(run, n_tokens, vocab_size=vocab)
    config = model_config(cfg.model, load_manifest(run))
    params = sum(p.numel() for p in {id(p): p for p in meta_model(config).parameters()}.values())
    t = cfg.train
    e = estimate(Shape.of(config, params), seq_len=int(t.seq_len), micro_batch=int(t.micro_batch),
                 precision=str(t.precision), zero_stage=int(cfg.deepspeed.zero_stage), world_size=1,
                 checkpointing=bool(t.activation_checkpointing), loss_chunk_tokens=t.loss_chunk_tokens)
    table.add(name, "parameters (M)", params / 1e6)
    table.add(name, "plan", f"seq {t.seq_len} x micro {t.micro_batch}, {t.precision}, ZeRO-{cfg.deepspeed.zero_stage}, "
                            f"checkpointing {bool(t.activation_checkpointing)}, loss chunk {t.loss_chunk_tokens}")
    run_train(cfg)
    rows = read_metrics(run)
    steady = rows[1:] or rows
    table.add(name, "tokens/s (median after the first row)", statistics.median(r["tokens_per_s"] for r in steady))
    table.add(name, "MFU", f"{statistics.median(r['mfu'] for r in steady):.1%}")
    table.add(name, "final loss", rows[-1]["loss"])
    table.add(name, "estimated peak GiB (dry run)", e.peak / GIB)
    measured = max((r.get("max_memory_allocated_gb") or 0.0) for r in rows)
    table.add(name, "max_memory_allocated GiB", measured if measured else "n/a (CPU)")
    if measured:
        table.add(name, "estimate / measured", e.peak / GIB / measured)


def train_160m(table: Table, args, work: Path) -> None:
    if args.cpu:
        model = ["model=tiny_llama", "model.config.hidden_size=64", "model.config.intermediate_size=128",
                 "model.config.num_hidden_layers=2", "model.config.max_position_embeddings=128"]
        extra = ["train.seq_len=64", "train.micro_batch=4", "train.global_batch=4"]
        train_run(table, "train_160m", work / "t160", train_overrides(work / "t160", args, model, extra), 6, 512)
        return
    extra = ["model=llama_160m", "train.seq_len=2048", "train.micro_batch=16", "train.global_batch=16"]
    train_run(table, "train_160m", work / "t160", train_overrides(work / "t160", args, [], extra), 60, 32000)


def train_05b(table: Table, args, work: Path) -> None:
    shape = dict(QWEN_05B)
    if args.cpu:
        shape.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=2048, max_position_embeddings=128)
    model = ["model=tiny_llama"] + [f"++model.config.{k}={str(v).lower() if isinstance(v, bool) else v}"
                                    for k, v in shape.items()]
    seq, micro = (64, 4) if args.cpu else (2048, 16)
    extra = [f"train.seq_len={seq}", f"train.micro_batch={micro}", f"train.global_batch={micro}",
             "train.activation_checkpointing=true", f"train.loss_chunk_tokens={128 if args.cpu else 8192}"]
    steps = 4 if args.cpu else 8
    train_run(table, "train_05b", work / "t05", train_overrides(work / "t05", args, model, extra), steps, 512 if args.cpu else 32000)


# --- audit ---------------------------------------------------------------------------

def tiny_run(work: Path) -> Path:
    """A small synthetic-world run, injected and trained here on the CPU (about a minute)."""
    from inject.stage import run_inject
    from launch.config import compose
    from train.stage import run_train

    run = work / "audit_run"
    cfg = compose([
        f"run_dir={run}", "experiment=demo", "logger.mode=disabled", "deepspeed=zero0_cpu",
        "data.synthetic.n_people=300", "data.synthetic.n_places=60", "data.synthetic.n_orgs=60",
        "data.synthetic.practice_questions=300", "model.bpe_vocab_size=512",
        "model.config.hidden_size=64", "model.config.intermediate_size=128", "model.config.num_hidden_layers=2",
        "inject.counts=[0,0,16,64]", "inject.partition_size=12", "inject.max_injected_share=0.6",
        "inject.window=[0.0,1.0]", "inject.allow_untrained_copies=true",
        "train.seq_len=128", "train.global_batch=8", "train.micro_batch=8", "train.max_steps=80",
        "train.checkpoint_every=null", "train.save_initial=false", "train.warmup_steps=5",
    ])
    run_inject(cfg)
    with _env(DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES=""):
        run_train(cfg)
    return run


class _env:
    def __init__(self, **values: str) -> None:
        self.values, self.saved = values, {}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


PERMUTATIONS = ["audit.successor.permutations=9999"]


def audit_rows(run: Path, dest: Path, *extra: str) -> dict[tuple[str, str], float | None]:
    """All eight detectors on the last checkpoint of a copy of ``run``; (detector, partition) -> log10 p
    (accuracy: its statistic)."""
    from audit.stage import run_audit
    from launch.config import compose

    shutil.copytree(run, dest)
    shutil.rmtree(dest / "audit", ignore_errors=True)
    cfg = compose([f"run_dir={dest}", "experiment=demo", "logger.mode=disabled", "audit.checkpoints=last",
                   f"audit.detectors=[{','.join(DETECTORS)}]", *PERMUTATIONS,
                   "audit.ordering.shards=3", "audit.successor.block=12",
                   "audit.progress=false", *extra])
    run_audit(cfg)
    rows = [json.loads(line) for line in (dest / "audit" / "results.jsonl").read_text().splitlines() if line.strip()]
    return {(r["detector"], f"{r['benchmark']}/{r['partition']}"):
            (r["statistic"] if r["detector"] == "accuracy" else r["log10_p"]) for r in rows}


def max_diff(table: Table, name: str, a: dict, b: dict) -> None:
    if set(a) != set(b):
        raise RuntimeError(f"{name}: different rows ({len(a)} vs {len(b)})")
    for det in DETECTORS:
        pairs = [(a[k], b[k]) for k in a if k[0] == det and a[k] is not None and b[k] is not None]
        if pairs:
            table.add(name, f"{det}: max |diff| {'accuracy' if det == 'accuracy' else 'log10 p'}",
                      max(abs(x - y) for x, y in pairs))


def audit_section(table: Table, args, work: Path, shared: dict) -> None:
    run = tiny_run(work)
    shared["run"] = run
    cpu = audit_rows(run, work / "a_cpu", "audit.device=cpu", "audit.precision=fp32")
    shared["cpu"] = cpu
    table.add("audit", "rows per audit", len(cpu))
    device = "cpu" if args.cpu else "cuda"
    # world size 1, in this process (no process group: maybe_init leaves one rank alone)
    dev = audit_rows(run, work / "a_dev", f"audit.device={device}", "audit.precision=fp32")
    max_diff(table, f"audit {device} fp32 vs cpu fp32", dev, cpu)


def precision_section(table: Table, args, work: Path, shared: dict) -> None:
    if "cpu" not in shared:
        raise RuntimeError("needs the audit section's run and CPU rows")
    device = "cpu" if args.cpu else "cuda"
    fp32 = audit_rows(shared["run"], work / "p_fp32", f"audit.device={device}", "audit.precision=fp32")
    for precision in ("amp", "mixed", "bf16"):
        rows = audit_rows(shared["run"], work / f"p_{precision}", f"audit.device={device}",
                          f"audit.precision={precision}")
        max_diff(table, f"precision {device} {precision} vs fp32", rows, fp32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (checks the script, not a GPU)")
    p.add_argument("--only", nargs="*", default=None, help="sections to run (default: all)")
    p.add_argument("--keep", type=Path, help="work dir to keep (default: a temp dir)")
    args = p.parse_args()
    if args.cpu:
        PERMUTATIONS[:] = ["audit.successor.permutations=999"]
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO))
    table = Table()
    try:
        import torch
        table.add("env", "torch", torch.__version__)
        table.add("env", "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    except Exception as e:  # noqa: BLE001
        table.add("env", "torch", f"FAILED: {e}")
    if not args.cpu and not table.rows[-1][2].startswith("NVIDIA"):
        table.add("env", "note", "no GPU visible: run with --cpu for the CPU check")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        shared: dict = {}
        sections = {"train_160m": train_160m, "train_05b": train_05b, "audit": audit_section,
                    "precision": precision_section}
        for name, fn in sections.items():
            if args.only is None or name in args.only:
                section(table, name, fn, args, work, *((shared,) if name in ("audit", "precision") else ()))
    text = table.markdown()
    print("\n" + text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "gpu_check.md").write_text(text)
    return 1 if any(v.startswith("FAILED") for _, _, v in table.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
