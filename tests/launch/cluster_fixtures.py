"""Stand-ins for a cluster on one machine: a fake ``srun`` on PATH."""
from __future__ import annotations

import os
import stat
from pathlib import Path

# Starts N x M copies of its command with only the SLURM task variables set (as srun does
# without torchrun), waits for all, exits with the first failure's status.
FAKE_SRUN = r'''#!{python}
import os, subprocess, sys
args = sys.argv[1:]
opts = {{}}
while args and args[0].startswith("--"):
    key, _, value = args.pop(0)[2:].partition("=")
    opts[key] = value
with open(os.environ["FAKE_SRUN_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\n")
nodes, per_node = int(opts.get("nodes", 1)), int(opts.get("ntasks-per-node", 1))
procs = []
for task in range(nodes * per_node):
    env = {{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}}
    env.update(SLURM_PROCID=str(task), SLURM_NTASKS=str(nodes * per_node), SLURM_LOCALID=str(task % per_node))
    procs.append(subprocess.Popen(args, env=env))
codes = [p.wait() for p in procs]
sys.exit(next((c for c in codes if c), 0))
'''


def fake_srun(bin_dir: Path, log: Path) -> dict[str, str]:
    """Write ``bin_dir/srun``; returns the environment that puts it first on PATH."""
    import sys

    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "srun"
    path.write_text(FAKE_SRUN.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SRUN_LOG": str(log)}
