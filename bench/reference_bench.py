"""Issue 23's "Must show": paired target-vs-reference tests on SmolLM2-135M-Instruct (the tests'
real model, tests/real_model.py) and the first N MMLU test items (abstract algebra).

1. ``self``: SmolLM2 audited with itself as ``audit.reference_model``: every paired p must be > 0.05.
2. ``tuned``: SmolLM2 continually pretrained on those N items (``--copies`` copies of the items
   joined in their published order, as a document-mode injection writes one copy: BOS, items
   rendered ``mcq``, separated by a blank line), audited with the original SmolLM2 as reference:
   the paired option-shuffle test should flag it.

    PYTHONPATH=. python bench/reference_bench.py --out /tmp/ref_bench     # ~30-60 min on 2 shared cores
    PYTHONPATH=. python bench/reference_bench.py --items 20 --copies 3    # smaller

Prints one line per (model, detector) with the paired and the uniform-null p, and writes
``<out>/summary.json``. The audits are ordinary ``spikein audit`` commands (printed).

    PYTHONPATH=. python bench/reference_bench.py --demo <copy of a demo run> --reference step_216

A controlled run instead (``--demo``): its last checkpoint audited against its own pre-exposure
checkpoint (every score already cached by the run's audit: no model runs), per partition the
detector's own log10 p beside the paired one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MMLU = ROOT.parent / "shared" / "data" / "benchmarks" / "mmlu" / "test"
DETECTORS = "[option_shuffle,accuracy,loss,zlib,min_k,min_k_pp,ordering,successor]"
# cheaper than the defaults on shared CPUs (the same for both models, so the scores pair up)
SETTINGS = ["audit.ordering.permutations=10", "audit.successor.block=10"]


def first_items(n: int, mmlu: Path):
    from inject.benchmarks import load_benchmark

    return load_benchmark("mmlu", {"source": "mmlu_dir", "path": str(mmlu)})[:n]


def finetune(model_dir: Path, out: Path, n_items: int, copies: int, lr: float, seq_len: int, batch: int, mmlu: Path) -> dict:
    """``copies`` passes over one document of the first ``n_items`` items in published order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inject.render import encode_items, encode_text, join_token_lists
    from inject.tokenizer import special_ids

    if (out / "config.json").is_file():
        return json.loads((out / "finetune.json").read_text())
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    doc = join_token_lists(encode_items(tok, first_items(n_items, mmlu), "mcq"), encode_text(tok, "\n\n"),
                           special_ids(tok).bos)
    windows = [doc[i:i + seq_len] for i in range(0, len(doc), seq_len)]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses, t0, steps = [], time.perf_counter(), 0
    for copy in range(copies):
        for lo in range(0, len(windows), batch):
            chunk = windows[lo:lo + batch]
            width = max(len(w) for w in chunk)
            ids = torch.tensor([w + [tok.pad_token_id or 0] * (width - len(w)) for w in chunk])
            labels = torch.tensor([w + [-100] * (width - len(w)) for w in chunk])
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            steps += 1
            losses.append(round(float(loss), 4))
            print(f"finetune: copy {copy + 1}/{copies} step {steps} loss {losses[-1]:.3f}", flush=True)
    info = {"items": n_items, "copies": copies, "lr": lr, "seq_len": seq_len, "batch": batch, "steps": steps,
            "doc_tokens": len(doc), "losses": losses, "wall_s": round(time.perf_counter() - t0, 1)}
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "finetune.json").write_text(json.dumps(info, indent=1))
    tmp.rename(out)
    return info


def audit(target: Path, reference: Path, run_dir: Path, n_items: int, mmlu: Path, detectors: str) -> tuple[list[dict], float]:
    args = [sys.executable, "-m", "launch.cli", "audit", f"model={target}", f"audit.reference_model={reference}",
            "benchmarks=mmlu_local", "benchmark=mmlu", f"benchmarks.mmlu.path={mmlu}", f"audit.limit={n_items}",
            f"audit.detectors={detectors}", "audit.progress=false", "logger.mode=disabled", f"run_dir={run_dir}",
            *SETTINGS]
    print("$ " + " ".join(args[2:]), flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    r = subprocess.run(args, cwd=ROOT, env=env)
    if r.returncode:
        sys.exit("audit failed")
    subprocess.run([sys.executable, "-m", "launch.cli", "report", f"run_dir={run_dir}", "logger.mode=disabled"],
                   cwd=ROOT, env=env, check=True)
    rows = [json.loads(line) for line in (run_dir / "audit" / "results.jsonl").read_text().splitlines() if line]
    return rows, time.perf_counter() - t0


def seed_reference_cache(scored: Path, run_dir: Path) -> None:
    """The original model's raw scores from the self audit (same items, orders and settings: the
    score cache keys them by model and settings, not by run), so the reference is scored once."""
    import shutil

    src, dst = scored / "audit" / "raw", run_dir / "audit" / "raw"
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)


def summary(rows: list[dict]) -> list[dict]:
    keep = ("detector", "paired_test", "paired_statistic", "paired_p", "paired_log10_p", "paired_method", "paired_n",
            "paired_mean_ratio", "statistic", "log10_p", "wall_s",
            "log10_p_unstructured", "log10_p_untemplated", "templated_items", "structured_items", "mean_rank")
    return [{k: r.get(k) for k in keep if k in r} for r in rows]


def demo_table(run_dir: Path, reference: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    args = [sys.executable, "-m", "launch.cli", "audit", f"run_dir={run_dir}", "experiment=demo",
            f"audit.reference_model={reference}", "audit.checkpoints=last", "audit.progress=false",
            "logger.mode=disabled"]
    print("$ " + " ".join(args[2:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True)
    print(f"audit: {time.perf_counter() - t0:.1f} s")
    rows = [json.loads(line) for line in (run_dir / "audit" / "results.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r.get("reference") == reference]
    print("| benchmark | copies | detector | log10 p | paired log10 p | paired test |\n|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["benchmark"], r["count"], r["detector"])):
        if r.get("log10_p") is None and r.get("paired_log10_p") is None:
            continue
        own = "-" if r.get("log10_p") is None else f"{r['log10_p']:.2f}"
        paired = "-" if r.get("paired_log10_p") is None else f"{r['paired_log10_p']:.2f}"
        print(f"| {r['benchmark']} | {r['count']} | {r['detector']} | {own} | {paired} | {r.get('paired_test')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/spikein_reference_bench"))
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--mmlu", type=Path, default=MMLU)
    ap.add_argument("--only", choices=["self", "tuned", "finetune"], default=None)
    ap.add_argument("--demo", type=Path, default=None, help="a controlled run dir (a copy: rows are appended)")
    ap.add_argument("--reference", default="step_0", help="with --demo: audit.reference_model")
    ap.add_argument("--detectors", default=DETECTORS, help="audit.detectors (default: %(default)s)")
    args = ap.parse_args()
    if args.demo:
        return demo_table(args.demo, args.reference)
    from real_model import smollm2_dir

    base = smollm2_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": str(base), "items": args.items}
    path = args.out / "summary.json"
    if path.exists():
        result = {**json.loads(path.read_text()), **result}
    if args.only in (None, "self"):
        rows, wall = audit(base, base, args.out / "self", args.items, args.mmlu, args.detectors)
        result["self"] = {"wall_s": round(wall, 1), "rows": summary(rows)}
        path.write_text(json.dumps(result, indent=1))
    if args.only in (None, "tuned", "finetune"):
        tuned = args.out / f"tuned_{args.items}x{args.copies}"
        result["finetune"] = finetune(base, tuned, args.items, args.copies, args.lr, args.seq_len, args.batch, args.mmlu)
        path.write_text(json.dumps(result, indent=1))
        if args.only != "finetune":
            seed_reference_cache(args.out / "self", args.out / "tuned")
            rows, wall = audit(tuned, base, args.out / "tuned", args.items, args.mmlu, args.detectors)
            result["tuned"] = {"wall_s": round(wall, 1), "rows": summary(rows)}
            path.write_text(json.dumps(result, indent=1))
    for name in ("self", "tuned"):
        for r in (result.get(name) or {}).get("rows", []):
            print(f"{name:5s} {r['detector']:14s} paired log10 p {r.get('paired_log10_p')}  "
                  f"uniform-null log10 p {r.get('log10_p')}  ({r.get('paired_test')})")
    print(f"summary: {path}")


if __name__ == "__main__":
    main()
