import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

import numpy as np  # noqa: E402
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


# ---- the tests' one tiny tokenizer ----------------------------------------------------------

# The tests' vocabulary: tokenizer filler text, random items and filler documents draw from it.
WORDS = (
    "red blue green amber violet stone river cloud forest tower lamp glass paper iron salt honey "
    "wolf hawk otter maple cedar delta sigma north south east west quiet loud swift slow bright "
    "dark silver copper velvet marble harbor meadow canyon island valley summit ember frost tide "
    "orbit prism lantern compass anchor beacon"
).split()


def make_tokenizer(out_dir: str | Path, items: Sequence = (), vocab_size: int = 400, seed: int = 0):
    """A byte-level BPE saved in ``out_dir``, trained on the items' renderings (so they tokenize
    as compactly as a real run's) plus seeded filler text; another ``seed`` or size: another one."""
    from inject.render import RENDERERS
    from inject.tokenizer import train_bpe

    texts = [RENDERERS[r](it) for it in items for r in ("mcq", "cloze")]
    rng = np.random.default_rng(seed)
    texts += [" ".join(rng.choice(WORDS, 30)) for _ in range(200)]
    return train_bpe(texts, vocab_size, out_dir)


# ---- run dirs built once per test session (tests that change one work on a copy) ------------


@pytest.fixture(scope="session")
def cli_trained(tmp_path_factory):
    """The tiny run trained by `python -m launch.cli train` from a researcher's working
    directory with W&B unreachable (user_env_fixtures.train_from_user_cwd): checkpoints 0, 2, 4.
    Read it in place; copy it (shutil.copytree) before writing to it."""
    from user_env_fixtures import train_from_user_cwd

    return train_from_user_cwd(tmp_path_factory.mktemp("cli_trained"))
