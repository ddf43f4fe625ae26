"""Replicated curves: detection rates with Wilson intervals over a sweep, Fisher combination,
the power curve, and the sweep report written by the parent after any launcher."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg
from scipy import stats

from core.config import with_values
from report import plots
from report.rates import fisher_log10_p, wilson
from report.sweep_report import group_rates, load_run, sweep_runs, write_sweep_report
from tests.report_fixtures import compose_config, settings_for, write_config, write_index, write_manifest, write_rows

Z = stats.norm.ppf(0.975)
COUNTS = (0, 0, 4, 16)  # two controls per benchmark: x0 and x0_1
BENCHES = ("b1", "b2")
STEPS = (50, 100)


def wilson_closed_form(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    centre, half = p + Z**2 / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))
    return (centre - half) / (1 + Z**2 / n), (centre + half) / (1 + Z**2 / n)


def test_wilson_interval_known_values():
    r = wilson(3, 10)
    assert (round(r.low, 4), round(r.high, 4)) == (0.1078, 0.6032)  # the textbook 3/10 example
    assert wilson(0, 10).low == pytest.approx(0, abs=1e-12) and wilson(0, 10).high == pytest.approx(Z**2 / (10 + Z**2))
    assert wilson(10, 10).low == pytest.approx(10 / (10 + Z**2))
    for k, n in ((1, 7), (5, 12), (40, 41)):
        assert (wilson(k, n).low, wilson(k, n).high) == pytest.approx(wilson_closed_form(k, n))


def test_fisher_combination_matches_scipy_and_survives_underflow():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 12):
        ps = rng.uniform(1e-6, 1, m)
        expected = stats.combine_pvalues(ps, method="fisher").pvalue
        assert 10 ** fisher_log10_p(np.log10(ps)) == pytest.approx(expected, rel=1e-9)
    assert fisher_log10_p([-400.0]) == pytest.approx(-400.0)  # one p combines to itself
    # two p's: p1 p2 (1 - ln(p1 p2)) exactly, where scipy's p is 0
    lp = (-200.0, -250.0)
    assert stats.combine_pvalues([10 ** x for x in lp], method="fisher").pvalue == 0.0
    assert fisher_log10_p(lp) == pytest.approx(sum(lp) + math.log10(1 - math.log(10) * sum(lp)))
    assert fisher_log10_p([0.0, 0.0]) == 0.0


def p_strong(bench, part, count, det, step, seed):
    """Group `partition_size=10`: x16 always found, x4 only with seed 1, one control flagged."""
    if det == "accuracy":
        return None
    if count == 16:
        return 1e-5 if det == "ordering" else 3e-3
    if count == 4:
        return 1e-3 if seed == 1 else 0.3
    return 0.004 if (seed == 2 and bench == "b1" and part == "x0") else 0.5


def p_weak(bench, part, count, det, step, seed):
    """Group `partition_size=20`: only x16 with seed 3, by ordering."""
    if det == "accuracy":
        return None
    return 1e-3 if (count == 16 and seed == 3 and det == "ordering") else 0.4


GROUPS = {"10": p_strong, "20": p_weak}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    make_sweep(root)
    return root


def make_sweep(root: Path) -> None:
    """Two groups (partition_size 10 and 20) of three seeds each, as a Hydra sweep lays them out."""
    job = 0
    for size, p_fn in GROUPS.items():
        base = compose_config(f"inject.partition_size={size}", "audit.detectors=[ordering,loss,accuracy]")
        for seed in (1, 2, 3):
            run = root / str(job)
            job += 1
            cfg = with_values(base, {"seed": seed, "run_dir": str(run)})
            write_config(run, cfg)
            m = write_manifest(run, COUNTS, BENCHES, copies_end=4000)
            write_index(run, STEPS)
            write_rows(run, m, lambda b, p, c, d, s, seed=seed, f=p_fn: f(b, p, c, d, s, seed), STEPS,
                       ("ordering", "loss", "accuracy"), settings=settings_for(cfg, m),
                       extra=lambda part, det, step: {"auroc": 0.9} if det == "loss" else {})


def expected_k_n(p_fn, det: str, count: int, alpha: float) -> tuple[int, int]:
    """Brute force over the sweep: partitions with that count, and those with p < alpha."""
    names = [(n, c) for n, c in zip(("x0", "x0_1", "x4", "x16"), COUNTS) if c == count]
    ps = [p_fn(b, n, c, det, STEPS[-1], seed) for seed in (1, 2, 3) for b in BENCHES for n, c in names]
    return sum(p < alpha for p in ps), len(ps)


def test_sweep_report_rates_with_wilson_intervals_per_group(sweep):
    md = write_sweep_report(sweep, 0.01).read_text()
    assert "6 runs" in md
    for size, p_fn in GROUPS.items():
        section = md.split(f"## Detection rates: inject.partition_size={size}\n")[1].split("\n## ")[0]
        assert "3 runs (seeds 1, 2, 3)" in section
        for det in ("ordering", "loss"):
            for count in (0, 4, 16):
                k, n = expected_k_n(p_fn, det, count, 0.01)
                lo, hi = wilson_closed_form(k, n)
                what = "control (FPR)" if count == 0 else str(count)
                assert f"| {det} | {what} | {k}/{n} | {k / n:.2f} | [{lo:.2f}, {hi:.2f}] |" in section
        assert "accuracy" not in section  # accuracy is not a test with a p
    assert expected_k_n(p_strong, "ordering", 0, 0.01) == (1, 12)  # the controls pool: x0 and x0_1 of both benchmarks
    assert "- `0`: inject.partition_size=10; seed=1" in md and "| 5 | b2 | x16 | 16 | ordering |" in md


def test_power_curve_plots_the_rates_and_the_controls(sweep):
    tmp_path = sweep
    runs = [load_run(tmp_path, p) for p in sweep_runs(tmp_path)][:3]  # the partition_size=10 group
    rates = group_rates(runs, 0.01)
    assert set(rates) == {"ordering", "loss"}
    fig, ax = plots.plt.subplots()
    plots.draw_power_curve(ax, rates, 0.01)
    lines = {line.get_label(): line for line in ax.get_lines()}
    x, y = lines["ordering"].get_data()
    assert list(x) == pytest.approx([4, 16], rel=0.05) and list(y) == pytest.approx([2 / 6, 1.0])  # dodged a little
    assert lines["nominal FPR = 0.01"].get_ydata()[0] == 0.01
    bands = [c for c in ax.collections if c.get_paths() and c.get_paths()[0].vertices.size]
    assert len(bands) >= 2  # one interval band per detector (plus the control error bars)
    ctrl_points = [c for c in ax.containers]  # errorbar containers: the controls' FPR
    assert len(ctrl_points) == 2 and ctrl_points[0].lines[0].get_ydata()[0] == pytest.approx(1 / 12)
    plots.plt.close(fig)
    write_sweep_report(tmp_path, 0.01)
    for png in ("power_curve_0.png", "power_curve_1.png"):
        img = mpimg.imread(tmp_path / "report" / png)
        assert img.shape[0] > 300 and img[..., :3].std() > 0.05  # a drawn figure, not a blank
        assert f"]({png})" in (tmp_path / "report" / "report.md").read_text()


def test_sweep_rates_go_to_wandb(sweep, monkeypatch):
    tmp_path = sweep
    logged = []

    class FakeRun:
        active = True  # a live W&B run (the null run says False)
        def log(self, data):
            logged.append(data)

        def finish(self):
            pass

    import core.wandb_log

    monkeypatch.setattr(core.wandb_log, "init_wandb", lambda *a, **k: FakeRun())
    write_sweep_report(tmp_path, 0.01, {"mode": "offline", "group": "x"})
    table = logged[0]["sweep/detection_rates"]
    got = {(r[0], r[1], r[2]): (r[3], r[4]) for r in table.data}
    assert got[("inject.partition_size=10", "ordering", 4)] == expected_k_n(p_strong, "ordering", 4, 0.01)
    assert "sweep/power_curve_0" in logged[0]


@pytest.mark.slow
def test_multirun_writes_the_sweep_report_from_the_parent(tmp_path, monkeypatch, capsys):
    """Points may run anywhere (submitit): the parent finds the sweep on disk afterwards,
    with a `${now:...}` sweep dir resolved once, and each point prints its overrides."""
    from core.stages import Stage
    from launch.multirun import multirun

    def fake_stage(cfg):
        run = Path(cfg.run_dir)
        write_config(run, cfg)
        m = write_manifest(run, (0, 16), ("b",), copies_end=4000)
        write_index(run, STEPS)
        write_rows(run, m, lambda b, p, c, d, s: 1e-4 if c else 0.5, STEPS, ("ordering",))

    monkeypatch.setattr(Stage, "fn", lambda self: fake_stage)
    monkeypatch.chdir(tmp_path)
    assert multirun("run", ["seed=1,2", "hydra.sweep.dir=sw/${now:%Y}", "logger.mode=disabled"]) == 0
    sweep = next((tmp_path / "sw").iterdir())
    err = capsys.readouterr().err
    assert "sweep point 0: seed=1 logger.mode=disabled" in err and "sweep point 1: seed=2" in err
    md = (sweep / "report" / "report.md").read_text()
    assert "2 runs" in md and "| ordering | 16 | 2/2 | 1.00 |" in md
    assert "Every point: logger.mode=disabled" in md and "- `0`: seed=1\n" in md  # from Hydra's record


@pytest.mark.slow
def test_a_bad_value_in_any_point_fails_the_sweep_before_a_point_runs(tmp_path):
    """Every point is composed and validated first: a typo in the last value of a grid is one
    line and exit 2 at once, not a Hydra traceback after the earlier points have run."""
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    r = subprocess.run([sys.executable, "-m", "launch.cli", "run", "-m", "train.lr=0.001,abc", "dry_run=true",
                        f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, env={**os.environ,
                                                                                       "WANDB_MODE": "disabled"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "spikein: error: sweep point 1 (train.lr=abc dry_run=True): train.lr=abc: expected a positive number or auto"]
    assert not sweep.exists() and "sweep point 0:" not in r.stdout


@pytest.mark.parametrize("multi", [False, True])
def test_sweep_dir_outside_report_is_refused_before_anything_runs(tmp_path, multi, capsys):
    """`sweep_dir` is what `spikein report` aggregates; given to `run` it used to make the
    report step of every point aggregate that directory instead of writing its own report
    (found after the training had run). A sweep's own directory is hydra.sweep.dir."""
    from launch.cli import main

    run_dir, sweep = tmp_path / "run", tmp_path / "sweep"
    args = ["run", *(["-m", "seed=1,2"] if multi else []), f"sweep_dir={sweep}", f"run_dir={run_dir}",
            "dry_run=true", f"hydra.sweep.dir={sweep}" if multi else "logger.mode=disabled"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spikein: error: sweep_dir={sweep} is read by `spikein report` only (a multirun's own "
                   "directory is hydra.sweep.dir)"), err
    assert not run_dir.exists() and not sweep.exists()
