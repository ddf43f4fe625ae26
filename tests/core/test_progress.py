"""core.progress: bars only on a terminal (a log file or a pipe gets no carriage returns)."""
from __future__ import annotations


def test_progress_bars_only_on_a_terminal(tmp_path, capfd):
    import io

    from core.progress import show_bars
    from inject.stage import run_inject
    from tests.inject_fixtures import inject_config

    assert not show_bars(io.StringIO())
    run_inject(inject_config(tmp_path))  # tokenizing, writing and verifying bars
    err = capfd.readouterr().err
    assert "\r" not in err and "%|" not in err, err[-500:]
