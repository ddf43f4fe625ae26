"""Inject-stage throughput and memory: streams from ~10 MB and ~35 MB of Gutenberg text.

Each size runs in its own process so peak RSS is that build's alone (main process
and tokenizer workers reported separately). Memory must not grow with the corpus:
the script prints the peak-RSS ratio of the larger build to the smaller (goal <= 1.2).

    .venv/bin/python bench/inject_bench.py --shared <dir with corpus/gutenberg and benchmarks/arc_challenge> [--workers 2]

``--sweep MB``: a 3-point sweep over ``inject.counts`` ([0,4], [0,16], [0,64]) on MB of text with
``data.token_cache=true``: the first point tokenizes the corpus into the token cache, the later
ones only write their overlay. Prints each point's inject time and data size (the first point's
includes the cache it wrote) and the later points' share of the first (goal <= 5%).
``--repeat N`` makes the corpus N copies of that text (the first point grows with the corpus,
the later ones with their copies).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def corpus_files(gutenberg: Path, megabytes: float) -> list[str]:
    files, total = [], 0
    for f in sorted(gutenberg.glob("*.txt")):
        if total >= megabytes * 1e6:
            break
        files.append(str(f))
        total += f.stat().st_size
    return files


def one_build(args) -> None:
    """Child process: build one stream, print a JSON line of measurements."""
    from inject.manifest import load_manifest
    from inject.stage import run_inject
    from launch.config import compose

    files = corpus_files(Path(args.shared) / "corpus/gutenberg", args.one)
    arc = Path(args.shared) / "benchmarks/arc_challenge/ARC-Challenge-Test.jsonl"
    cfg = compose([
        f"run_dir={args.out}", "data=gutenberg", f"data.paths=[{','.join(files)}]",
        "benchmarks=none", f"+benchmarks.arc={{source:arc_jsonl,path:'{arc}'}}",
        f"model.tokenizer={args.tokenizer}", f"inject.workers={args.workers}",
        "inject.counts=[0,1,4,16]", "inject.partition_size=40",
    ])
    t0 = time.time()
    run_inject(cfg)
    wall = time.time() - t0
    m = load_manifest(args.out)
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    mb = sum(Path(f).stat().st_size for f in files) / 1e6
    print(json.dumps({"corpus_mb": mb, "tokens": m.n_tokens, "wall_s": wall, "tokens_per_s": m.n_tokens / wall,
                      "rss_main_mb": self_kb / 1024, "rss_worker_mb": child_kb / 1024}))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def sweep(args, tok_dir: Path, tmp: Path) -> None:
    """Three sweep points sharing one corpus and tokenizer, run in this process one after another."""
    from inject.stage import run_inject
    from launch.config import compose

    files = corpus_files(Path(args.shared) / "corpus/gutenberg", args.sweep)
    if args.repeat > 1:  # a bigger corpus from the same text (timing does not depend on what the text says)
        (tmp / "corpus").mkdir()
        files = [str(shutil.copy(f, tmp / "corpus" / f"{r}_{Path(f).name}")) for r in range(args.repeat) for f in files]
    arc = Path(args.shared) / "benchmarks/arc_challenge/ARC-Challenge-Test.jsonl"
    cache = tmp / "cache"
    rows = []
    for counts in ("[0,4]", "[0,16]", "[0,64]"):
        run = tmp / f"point{counts.strip('[]').replace(',', '_')}"
        cfg = compose([
            f"run_dir={run}", "data=gutenberg", f"data.paths=[{','.join(files)}]", "data.token_cache=true",
            f"data.cache_dir={cache}", "benchmarks=none", f"+benchmarks.arc={{source:arc_jsonl,path:'{arc}'}}",
            f"model.tokenizer={tok_dir}", f"inject.workers={args.workers}", f"inject.counts={counts}",
            "inject.partition_size=40", "inject.mode=scattered", "train.seq_len=512", "train.global_batch=8",
        ])
        cache_before = _size(cache)
        t0 = time.time()
        run_inject(cfg)
        rows.append((counts, time.time() - t0, _size(run / "data") + _size(cache) - cache_before))
    print(f"{'counts':>8} {'inject s':>9} {'data MB':>9} {'share of first':>15}")
    for counts, wall, size in rows:
        print(f"{counts:>8} {wall:>9.2f} {size / 1e6:>9.2f} {wall / rows[0][1]:>7.1%} time {size / rows[0][2]:>6.1%} size")
    worst = max(max(w / rows[0][1], s / rows[0][2]) for _, w, s in rows[1:])
    print(f"later points at most {worst:.1%} of the first (goal <= 5%)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", required=True, help="data dir holding corpus/gutenberg and benchmarks/arc_challenge")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sizes", default="10,35")
    p.add_argument("--sweep", type=float, help="MB of text for the 3-point token-cache sweep instead (e.g. 34)")
    p.add_argument("--repeat", type=int, default=1, help="--sweep: the text N times over (a corpus N times the size)")
    p.add_argument("--one", type=float, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one_build(args)
    from inject.tokenizer import train_bpe

    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tok"
        texts = (Path(f).read_text() for f in corpus_files(Path(args.shared) / "corpus/gutenberg", 5))
        train_bpe(texts, 8192, tok_dir)  # one tokenizer for both builds: measure the stream, not BPE training
        if args.sweep:
            return sweep(args, tok_dir, Path(tmp))
        rows = []
        for mb in map(float, args.sizes.split(",")):
            cmd = [sys.executable, __file__, "--one", str(mb), "--out", f"{tmp}/run{mb}", "--tokenizer", str(tok_dir),
                   "--shared", args.shared, "--workers", str(args.workers)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'corpus MB':>10} {'tokens':>12} {'wall s':>8} {'tokens/s':>10} {'RSS main MB':>12} {'RSS worker MB':>14}")
    for r in rows:
        print(f"{r['corpus_mb']:>10.1f} {r['tokens']:>12,} {r['wall_s']:>8.1f} {r['tokens_per_s']:>10,.0f} "
              f"{r['rss_main_mb']:>12.0f} {r['rss_worker_mb']:>14.0f}")
    small, large = rows[0], rows[-1]
    ratio = (large["rss_main_mb"] + large["rss_worker_mb"]) / (small["rss_main_mb"] + small["rss_worker_mb"])
    print(f"peak RSS ratio large/small: {ratio:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
