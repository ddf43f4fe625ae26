import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Real data for tests only (never copied into the repo): /work/shared/data next to the checkout.
# $SPIKEIN_SHARED_DATA points elsewhere (e.g. from a git worktree).
SHARED_DATA = Path(os.environ.get("SPIKEIN_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def require_shared(path: Path) -> None:
    """Skip when ``path`` (under SHARED_DATA) is absent; with $CI set, fail instead: CI must
    run every test, so missing data is an error there, not a silent skip."""
    if Path(path).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing and CI is set: provide ../shared/data", pytrace=False)
    pytest.skip(f"{path} not present")


def shared_data(path: Path) -> pytest.MarkDecorator:
    """Mark a test that reads ``path``: checked by :func:`require_shared` before it runs."""
    return pytest.mark.shared_data(Path(path))


def pytest_runtest_setup(item) -> None:
    for mark in item.iter_markers("shared_data"):
        require_shared(mark.args[0])
