"""`spikein <stage> -m key=a,b ...`: Hydra multirun, one run directory per sweep point.

Each point runs in ``<sweep dir>/<job number>`` and logs to W&B in one group named
after the sweep; with ``hydra/launcher=submitit_slurm`` the points become SLURM jobs.
After a `run` or `audit` sweep, the aggregate report is written to ``<sweep dir>/report``
by this (the parent) process, once the launcher returns: points may have run in other
processes or on other hosts (submitit), so nothing is collected from them in memory.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from core.config import ReportConfig, with_values
from core.errors import ConfigError, Preempted, SpikeinError
from core.stages import STAGES
from launch.config import CONF_DIR

REPORTED_STAGES = ("run", "audit")  # stages whose points write audit results


def multirun(stage: str, overrides: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from launch.config import check

    overrides = with_concrete_sweep_dir(overrides)
    check_points(overrides)  # every point's config, before the first point runs
    sweep_dir = Path(next(o for o in overrides if o.startswith("hydra.sweep.dir=")).split("=", 1)[1])

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def point(cfg) -> None:
        hc = HydraConfig.get()
        print(point_header(hc.job.num, list(hc.overrides.task)), file=sys.stderr, flush=True)
        try:
            here = with_values(check(cfg), {"run_dir": hc.runtime.output_dir, "logger.group": Path(hc.sweep.dir).name})
            STAGES[stage].fn()(here)
        except SpikeinError as e:  # Hydra would print a traceback and go on to the next point
            print(f"spikein: error: sweep point {hc.job.num}: {e}", file=sys.stderr, flush=True)
            raise SystemExit(Preempted.exit_code if isinstance(e, Preempted) else 2) from None  # 75: requeue

    argv = sys.argv
    sys.argv = ["spikein", "--multirun", *overrides, "hydra.job.chdir=false",
                "hydra/job_logging=none", "hydra/hydra_logging=none"]
    try:
        point()
    finally:
        sys.argv = argv
    if stage in REPORTED_STAGES and "dry_run=true" not in overrides:
        print(f"report: {write_report_after_sweep(sweep_dir)}")
    return 0


def sweep_points(overrides: list[str]) -> list[list[str]]:
    """The overrides of each point, as Hydra's basic sweeper expands them (``hydra.*`` aside)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    mine = [o for o in overrides  # the searchpath finds a user's config dirs; other hydra.* run the sweep
            if o.startswith("hydra.searchpath=") or not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        parsed = OverridesParser.create().parse_overrides(mine)
        [points] = BasicSweeper.split_arguments(parsed, None)
    except HydraException as e:
        raise ConfigError(f"cannot expand the sweep: {str(e).splitlines()[0]}") from None
    return points


def check_points(overrides: list[str]) -> None:
    """Compose and validate every point here, so a bad value fails the sweep before any point
    has run (rather than as a traceback after hours of earlier points)."""
    from launch.config import compose

    for num, point in enumerate(sweep_points(overrides)):
        try:
            compose(point)
        except ConfigError as e:
            raise ConfigError(f"sweep point {num} ({' '.join(point)}): {e}") from None


def point_header(num: int, task_overrides: list[str]) -> str:
    """One line per sweep point, so a log (or a submitit job's stderr) says which point it is."""
    return f"sweep point {num}: {' '.join(task_overrides) or '(no overrides)'}"


def with_concrete_sweep_dir(overrides: list[str]) -> list[str]:
    """The overrides with ``hydra.sweep.dir`` set to a path known here, before any point runs.

    A default or ``${now:...}`` directory is resolved once in this process, so the parent
    finds the sweep whatever launcher ran its points and whenever they ran.
    """
    given = [o for o in overrides if o.startswith("hydra.sweep.dir=")]
    rest = [o for o in overrides if not o.startswith("hydra.sweep.dir=")]
    if given:
        return [*rest, f"hydra.sweep.dir={_resolve(given[-1].split('=', 1)[1])}"]
    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), "demo")
    return [*rest, f"hydra.sweep.dir=sweeps/{exp}-{time.strftime('%Y%m%d-%H%M%S')}"]


def _resolve(path: str) -> str:
    if "${" not in path:
        return path
    from launch.config import resolve_now

    try:
        return resolve_now(path)
    except Exception as e:  # OmegaConf's resolver errors have no common base worth naming
        raise SpikeinError(f"hydra.sweep.dir={path}: cannot resolve it before the sweep ({e}); give a plain path") from None


def write_report_after_sweep(sweep_dir: Path) -> Path:
    """The aggregate report, with alpha and the logger from the points' own configs."""
    from report.sweep_report import load_run, sweep_runs, write_sweep_report

    runs = [load_run(sweep_dir, p) for p in sweep_runs(sweep_dir)]
    cfg = next((r.config for r in runs if r.config), None) or {}
    alpha = float((cfg.get("report") or {}).get("alpha", ReportConfig.alpha))
    return write_sweep_report(sweep_dir, alpha, cfg.get("logger"))
