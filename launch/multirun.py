"""`spikein <stage> -m key=a,b ...`: Hydra multirun, one run directory per sweep point.

Each point runs in ``<sweep dir>/<job number>`` and logs to W&B in one group named
after the sweep; with ``hydra/launcher=submitit_slurm`` the points become SLURM jobs.
After a local `run` sweep, the aggregate report is written to ``<sweep dir>/report``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import open_dict

from launch.config import CONF_DIR


def multirun(stage: str, overrides: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from launch.cli import _stage_fn
    from launch.validate import validate

    if not any(o.startswith("hydra.sweep.dir=") for o in overrides):
        exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), "demo")
        overrides.append(f"hydra.sweep.dir=sweeps/{exp}-{time.strftime('%Y%m%d-%H%M%S')}")
    sweep_dirs: list[str] = []

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def point(cfg) -> None:
        hc = HydraConfig.get()
        sweep_dirs.append(hc.sweep.dir)
        with open_dict(cfg):
            cfg.run_dir = hc.runtime.output_dir
            cfg.logger.group = Path(hc.sweep.dir).name
        validate(cfg)
        _stage_fn(stage)(cfg)

    argv = sys.argv
    sys.argv = ["spikein", "--multirun", *overrides, "hydra.job.chdir=false",
                "hydra/job_logging=none", "hydra/hydra_logging=none"]
    try:
        point()
    finally:
        sys.argv = argv
    if stage == "run" and sweep_dirs and "dry_run=true" not in overrides:
        from launch.sweep_report import write_sweep_report

        print(f"report: {write_sweep_report(Path(sweep_dirs[0]), 0.01)}")
    return 0
