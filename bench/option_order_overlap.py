"""How well do the controls' recorded option orders agree with orders the model trained on? (issue 22)

No model: for a synthetic-world run made with ``inject.option_order=shuffled``, every trained
multiple-choice text (the world's practice questions once each, every injected item as many
times as it was copied) is set against each control item in its recorded order, and against the
*virtual controls* of ``bench/option_shuffle_null.py`` (items no partition holds, in their
``option_order_for`` orders, partitions of 40). Per partition:

- ``pair_agree``: of the ordered option pairs it shares with trained texts (weighted by
  copies), the share in the same order (0.5 expected: its orders are drawn independently);
- ``pair_agree_z``: that share as a z among the benchmark's virtual controls;
- ``same_set`` / ``same_block``: trained texts (weighted) with the same four options in any
  order / in exactly the recorded order.

With ``--ranks Z.json`` (``bench/option_shuffle_null.py --out`` of one run) and a step, per item:
how the model's rank of an item's tested order follows its agreement (virtual items' regression
of rank on (same - reversed) / shared pairs), the control's z that regression predicts, and the
control's z without the items whose exact options block was trained more than once.

With ``audit/results.jsonl`` present, also each control's option-shuffle z at the last step,
and over all run dirs given the correlation of that z with ``pair_agree_z`` per benchmark: a
model that learnt option-order preferences from the injected copies ranks a control's orders
higher the more they agree with them. Under the null that agreement is itself random (nothing
trained depends on a control's order: ``tests/inject/test_inject_stage.py``), so a control far
out on both is a rare draw, not a leak.

    PYTHONPATH=. python bench/option_order_overlap.py RUN_DIR [RUN_DIR ...] [--out overlap.json]
    PYTHONPATH=. python bench/option_order_overlap.py RUN_DIR --ranks z.json --step 432
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from option_shuffle_null import virtual_controls  # noqa: E402

from inject.items import Item  # noqa: E402
from inject.manifest import load_manifest, load_partition  # noqa: E402
from inject.synthetic.world import SyntheticWorld  # noqa: E402


def trained_texts(run_dir: Path, cfg, m) -> list[tuple[Item, int]]:
    """Every multiple-choice text in the stream and how often: practice questions, injected items."""
    world = SyntheticWorld(**{k: int(v) for k, v in cfg.data.synthetic.items()})
    out = [(it, 1) for it in world.practice_items()]
    for p in m.partitions:
        if p.count > 0:
            out += [(it, p.count) for it in load_partition(run_dir, p)]
    return out


def partition_stats(items: list[Item], pairs: Counter, sets: Counter, blocks: Counter) -> dict:
    agree = [sum(pairs[(a, b)] for a, b in itertools.combinations(it.choices, 2)) for it in items]
    disagree = [sum(pairs[(b, a)] for a, b in itertools.combinations(it.choices, 2)) for it in items]
    block = [blocks[tuple(it.choices)] for it in items]
    return {"pair_agree": sum(agree) / max(1, sum(agree) + sum(disagree)), "pairs": sum(agree) + sum(disagree),
            "same_set": sum(sets[frozenset(it.choices)] for it in items), "same_block": sum(block),
            "items": {"agree": agree, "disagree": disagree, "same_block": block}}


def control_z(run_dir: Path) -> dict[str, float]:
    """Each control's option-shuffle z of the mean rank at the last audited step."""
    path = run_dir / "audit" / "results.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["detector"] == "option_shuffle" and r["count"] == 0]
    last = max((r["step"] for r in rows), default=None)
    sd = math.sqrt((24**2 - 1) / 12)
    return {f"{r['benchmark']}/{r['partition']}": (r["mean_rank"] - 12.5) / (sd / math.sqrt(r["n_items"]))
            for r in rows if r["step"] == last}


def analyse(run_dir: Path) -> dict:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    m = load_manifest(run_dir)
    pairs: Counter = Counter()
    sets: Counter = Counter()
    blocks: Counter = Counter()
    for it, w in trained_texts(run_dir, cfg, m):
        for a, b in itertools.combinations(it.choices, 2):
            pairs[(a, b)] += w
        sets[frozenset(it.choices)] += w
        blocks[tuple(it.choices)] += w
    virtual: dict[str, list[dict]] = {}
    for v in virtual_controls(cfg, m, 40):
        virtual.setdefault(v.benchmark, []).append({"name": v.name, **partition_stats(v.items, pairs, sets, blocks)})
    zs = control_z(run_dir)
    out = {}
    for p in m.partitions:
        if p.count:
            continue
        s = partition_stats(load_partition(run_dir, p), pairs, sets, blocks)
        ref = np.array([v["pair_agree"] for v in virtual[p.benchmark]])
        s["pair_agree_z"] = float((s["pair_agree"] - ref.mean()) / ref.std(ddof=1))
        s["virtual"] = {"n": len(ref), "pair_agree_mean": float(ref.mean()), "pair_agree_sd": float(ref.std(ddof=1)),
                        "same_block_max": max(v["same_block"] for v in virtual[p.benchmark]),
                        "partitions": virtual[p.benchmark]}
        s["z"] = zs.get(f"{p.benchmark}/{p.name}")
        out[f"{p.benchmark}/{p.name}"] = s
    return out


def z_of(ranks) -> float:
    return float((np.mean(ranks) - 12.5) / math.sqrt((24**2 - 1) / 12 / len(ranks)))


def rank_vs_agreement(name: str, s: dict, ranks: dict) -> None:
    """Per item at one step: does the model rank an order higher the more it agrees with trained orders?"""
    bench = name.split("/")[0]
    x, y = [], []
    for v in s["virtual"]["partitions"]:
        for r, a, d in zip(ranks[f"{bench}/{v['name']}"]["ranks"], v["items"]["agree"], v["items"]["disagree"]):
            if a + d:
                x.append((a - d) / (a + d))
                y.append(r)
    slope, icept = np.polyfit(x, y, 1)
    own = ranks[name]["ranks"]
    it = s["items"]
    pred = [icept + slope * (a - d) / (a + d) if a + d else 12.5 for a, d in zip(it["agree"], it["disagree"])]
    rest = [r for r, b in zip(own, it["same_block"]) if b <= 1]
    print(f"  {name}: over {len(x)} virtual items sharing pairs, corr(rank, agreement) {np.corrcoef(x, y)[0, 1]:+.2f}, "
          f"rank = {icept:.1f} {slope:+.1f} x agreement; control z {z_of(own):+.2f}, predicted {z_of(pred):+.2f}; "
          f"ranks of items with a block trained > once {[r for r, b in zip(own, it['same_block']) if b > 1]}, "
          f"z of the other {len(rest)} {z_of(rest):+.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--out")
    ap.add_argument("--ranks", help="bench/option_shuffle_null.py --out of the (one) run dir")
    ap.add_argument("--step", help="the step of --ranks to use")
    a = ap.parse_args()
    report = {}
    for d in a.run_dirs:
        res = analyse(Path(d))
        report[d] = res
        for name, s in res.items():
            z = "-" if s["z"] is None else f"{s['z']:+.2f}"
            print(f"{d} {name}: z {z}; pair_agree {s['pair_agree']:.3f} ({s['pairs']} pairs), z among "
                  f"{s['virtual']['n']} virtual {s['pair_agree_z']:+.2f}; same set {s['same_set']}, same block "
                  f"{s['same_block']} (virtual max {s['virtual']['same_block_max']})", flush=True)
    for bench in sorted({k for r in report.values() for k in r}):
        pts = [(r[bench]["z"], r[bench]["pair_agree_z"]) for r in report.values()
               if bench in r and r[bench]["z"] is not None]
        if len(pts) >= 3:
            z, pa = np.array(pts).T
            print(f"{bench}: {len(pts)} runs, corr(z, pair_agree_z) {np.corrcoef(z, pa)[0, 1]:+.2f}, "
                  f"pair_agree_z mean {pa.mean():+.2f} s.d. {pa.std(ddof=1):.2f}")
    if a.ranks:
        ranks = json.loads(Path(a.ranks).read_text())["steps"][a.step]
        for name, s in report[a.run_dirs[0]].items():
            rank_vs_agreement(name, s, ranks)
    if a.out:
        Path(a.out).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
