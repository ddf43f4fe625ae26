"""One registry of stages (core/stages.py): every reader resolves through it."""
import re
from pathlib import Path

from core.run_dir import RunDir
from core.stages import PIPELINE, STAGES

ROOT = Path(__file__).resolve().parents[2]


def test_every_entry_resolves_and_every_pipeline_stage_plans_and_states():
    for stage in STAGES.values():
        assert callable(stage.fn()), stage.entry
    for name in PIPELINE:
        module = STAGES[name].module()
        assert callable(module.stage_plan) and callable(module.stage_state), name
        assert STAGES[name].outputs, f"{name} writes nothing overwrite=true could remove"


def test_outputs_are_run_dir_paths():
    rd = RunDir(Path("/r"))
    assert rd.outputs("train") == (rd.checkpoints, rd.train)
    assert rd.outputs("inject") == (rd.data,) and rd.outputs("report") == (rd.report,)


def test_no_module_imports_the_cli():
    """The CLI is the top: a module importing it (multirun did, for `_stage_fn`) is a cycle."""
    wrong = [p.relative_to(ROOT).as_posix() for d in ("core", "inject", "train", "audit", "report", "launch")
             for p in (ROOT / d).rglob("*.py")
             if re.search(r"^\s*(from launch\.cli import|from launch import cli|import launch\.cli)", p.read_text(), re.M)]
    assert not wrong, wrong
