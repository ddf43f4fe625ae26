"""`spikein <stage> [hydra overrides]`: every stage composes the same config tree."""
from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

if __name__ == "__main__":  # `python -m launch.cli`: a user's train.py in the cwd must not shadow ours
    _CWD = Path.cwd().resolve()
    if _CWD != Path(__file__).resolve().parents[1]:
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _CWD]

from core.config import SpikeinConfig
from core.errors import Preempted, SpikeinError
from core.run_lock import check_run_dir
from core.stages import STAGES
from core.wandb_log import SESSION_ENV

USAGE = "usage: spikein <stage> [key=value ...] [--help]   stages: " + ", ".join(STAGES)


def _help(stage: str, overrides: list[str]) -> None:
    from launch.config import config_groups, tree_yaml

    print(f"spikein {stage}: {STAGES[stage].description}\n")
    print("config groups (pick with group=option):")
    for group, options in config_groups(overrides).items():
        print(f"  {group:<11} {', '.join(options)}")
    print("\nresolved config (override any key with key=value):\n")
    if stage == "audit":
        overrides = _audit_shorthand(overrides)
    print(tree_yaml(overrides))


def _audit_shorthand(overrides: list[str]) -> list[str]:
    """`spikein audit model=<hub id or dir> benchmark=<name>` audits a model nobody trained here.

    ``model=`` names a config group option elsewhere; for the audit stage a value that is
    not one (``model=EleutherAI/pythia-160m``) means the model to audit.
    """
    from launch.config import config_groups

    models = set(config_groups(overrides).get("model", []))
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key == "model" and value not in models:
            o = f"audit.model={value}"
        elif key == "benchmark":
            o = f"audit.benchmark={value}"
        out.append(o)
    return out + _public_model_defaults(out)


def _public_model_defaults(overrides: list[str]) -> list[str]:
    """A public-model audit runs no recipe unless one is named, and is named after the model.

    The last default of conf/config.yaml is the demo recipe, whose settings (no scenario-b
    rates, experiment_name `demo` and so its W&B group and run_dir) are not the user's.
    """
    keys = {o.partition("=")[0].lstrip("+~"): o.partition("=")[2] for o in overrides}
    model = keys.get("audit.model")
    if model in (None, "", "null"):
        return []
    extra = [] if "experiment" in keys else ["~experiment"]
    if "experiment" not in keys and "experiment_name" not in keys:
        extra.append("experiment_name=audit-" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or "model"))
    return extra


def refuse_sweep_dir_outside_report(stage: str, overrides: list[str]) -> None:
    """Only `report` reads sweep_dir; elsewhere it would turn each run's report into a sweep's."""
    given = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("sweep_dir=")]
    if stage != "report" and given and given[-1] not in ("null", "~", ""):
        raise SpikeinError(f"sweep_dir={given[-1]} is read by `spikein report` only "
                           "(a multirun's own directory is hydra.sweep.dir)")


def _run_stage(stage: str, cfg: SpikeinConfig) -> int:
    """The stage here; with several torchrun nodes only node 0 runs it, the others follow
    (core/workers/nodes.py): one writer per run dir."""
    from core.workers import nodes

    if cfg.dry_run:  # plans only: no node waits for another
        result = STAGES[stage].fn()(cfg)
        return int(result) if isinstance(result, int) else 0
    if nodes.is_follower(cfg.launcher):
        from core.workers.launch import launch_share

        return nodes.follow_node0(cfg, lambda module, log_dir, env: launch_share(
            module, cfg.run_dir, cfg.launcher, log_dir, env))
    with nodes.node_group(cfg.launcher):
        result = STAGES[stage].fn()(cfg)
    return int(result) if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `spikein run --help | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return 0


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault(SESSION_ENV, uuid.uuid4().hex)  # W&B: one online attempt per command (core/wandb_log.py)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    stage, rest = argv[0], argv[1:]
    try:
        if stage not in STAGES:
            raise SpikeinError(f"unknown stage '{stage}'; choose one of: {', '.join(STAGES)}")
        if any(a in ("-h", "--help") for a in rest):
            _help(stage, [a for a in rest if a not in ("-h", "--help")])
            return 0
        refuse_sweep_dir_outside_report(stage, rest)
        if any(a in ("-m", "--multirun") for a in rest):
            from launch.multirun import multirun

            return multirun(stage, [a for a in rest if a not in ("-m", "--multirun")])
        from launch.config import compose

        if stage == "audit":
            rest = _audit_shorthand(rest)
        cfg = compose(rest)
        check_run_dir(cfg.run_dir)
        return _run_stage(stage, cfg)
    except Preempted as e:  # not an error: the scheduler asked, the checkpoint is complete
        print(f"spikein: {e}", file=sys.stderr)
        return Preempted.exit_code
    except SpikeinError as e:
        print(f"spikein: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the filesystem refused a path (read-only, /proc, a file where a dir goes)
        if e.filename is None:
            raise
        print(f"spikein: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikein: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
