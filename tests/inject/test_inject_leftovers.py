"""What a killed inject stage leaves behind is removed by the next run (issue 11)."""
from __future__ import annotations

from pathlib import Path


def test_killed_inject_leftovers_are_removed_by_the_next_run(tmp_path):
    from inject.stage import run_inject
    from tests.inject_fixtures import inject_config

    cfg = inject_config(tmp_path)
    run = Path(cfg.run_dir)
    (run / ".inject.killed.tmp" / "data").mkdir(parents=True)
    run_inject(cfg)
    assert not list(run.glob(".inject.*.tmp")) and (run / "data" / "manifest.json").exists()
