"""Dependencies flow one way: core <- inject <- train <- audit <- launch (nothing imports launch)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "inject", "train", "audit", "launch"]
IMPORT = re.compile(r"^\s*(?:from|import) (core|inject|train|audit|launch)\b", re.M)
# (file, package) pairs exempt from the order; none: what two layers share lives in core
# (the training budget inject places copies by is core/budget.py).
ALLOWED: set[tuple[str, str]] = set()


def test_no_package_imports_a_later_layer():
    wrong = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted((ROOT / layer).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for target in set(IMPORT.findall(path.read_text())):
                if LAYERS.index(target) > rank and (rel, target) not in ALLOWED:
                    wrong.append(f"{rel} imports {target}")
    assert not wrong, "; ".join(wrong)


def test_the_check_sees_imports():
    """The pattern must catch both import forms (else the test above could never fail)."""
    text = "from audit.stage import x\n    import launch.cli\nfrom inject import y\n"
    assert set(IMPORT.findall(text)) == {"audit", "launch", "inject"}
