"""`python -m audit.worker <run_dir>`: one rank of a data-parallel audit.

Every rank runs the whole audit stage on the config saved by :func:`save_worker_config`;
the engine gives each rank a slice of every scoring call and gathers the results in
order, and only rank 0 writes results and logs to W&B. Launch with torchrun
(``python -m torch.distributed.run --nproc_per_node=N -m audit.worker <run_dir>``) or
``train.launcher.launch_workers("audit.worker", run_dir, cfg.launcher)``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from inject.atomic import write_text

CONFIG = Path("audit") / "worker_config.yaml"


def save_worker_config(cfg) -> Path:
    """The resolved config the workers read (they never parse command-line overrides)."""
    path = Path(cfg.run_dir) / CONFIG
    write_text(path, OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))
    return path


def main(run_dir: str | Path) -> int:
    from audit import dist
    from audit.stage import run_audit
    from train.dist import shutdown_distributed

    cfg = OmegaConf.load(Path(run_dir) / CONFIG)
    cfg.run_dir = str(run_dir)
    dist.maybe_init()
    try:
        code = run_audit(cfg)
    except BaseException:
        shutdown_distributed(clean=False)
        raise
    shutdown_distributed()
    return code


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m audit.worker <run_dir>")
    from inject.errors import SpikeinError

    try:
        sys.exit(main(sys.argv[1]))
    except SpikeinError as e:
        print(f"spikein: error: {e}", file=sys.stderr)
        sys.exit(2)
