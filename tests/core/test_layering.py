"""Dependencies flow one way: core <- sources <- inject <- train <- audit <- report <- launch (nothing imports
launch; only launch imports report)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["core", "sources", "inject", "train", "audit", "report", "launch"]
IMPORT = re.compile(r"^\s*(?:from|import) (core|sources|inject|train|audit|report|launch)\b", re.M)
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
    text = ("from audit.stage import x\n    import launch.cli\nfrom inject import y\nfrom sources.tokens import z\n"
            "from report import plots\n")
    assert set(IMPORT.findall(text)) == {"audit", "launch", "inject", "sources", "report"}


# The report reads the audit's hand-off only: its rows (audit/results.py), never the audit's
# machinery (stage, detectors, null check), so the audit can change inside without the report.
REPORT_MAY_IMPORT_FROM_AUDIT = {"audit.results"}
AUDIT_MODULE = re.compile(r"^\s*(?:from|import) (audit(?:\.\w+)*)", re.M)


def test_the_report_takes_only_the_result_rows_from_the_audit():
    wrong = []
    for path in sorted((ROOT / "report").rglob("*.py")):
        for module in set(AUDIT_MODULE.findall(path.read_text())):
            if module not in REPORT_MAY_IMPORT_FROM_AUDIT:
                wrong.append(f"{path.relative_to(ROOT).as_posix()} imports {module}")
    assert not wrong, "; ".join(wrong)
    assert set(AUDIT_MODULE.findall("from audit.stage import x\n    from audit.results import y\n")) == {
        "audit.stage", "audit.results"}


# The synthetic world is a data source, not injection: it may use the item contract (items,
# their rendering, the benchmark-row type) but nothing that plans, streams or verifies copies.
SYNTHETIC_MAY_IMPORT = {"inject.items", "inject.render", "inject.benchmark_formats"}
INJECT_MODULE = re.compile(r"^\s*(?:from|import) (inject(?:\.\w+)*)", re.M)


def test_the_synthetic_world_uses_only_the_item_contract():
    wrong = []
    for path in sorted((ROOT / "inject" / "synthetic").rglob("*.py")):
        for module in set(INJECT_MODULE.findall(path.read_text())):
            if not module.startswith("inject.synthetic") and module not in SYNTHETIC_MAY_IMPORT:
                wrong.append(f"{path.relative_to(ROOT).as_posix()} imports {module}")
    assert not wrong, "; ".join(wrong)
    text = "from inject.stream import x\nfrom inject.synthetic import names\n"
    assert set(INJECT_MODULE.findall(text)) == {"inject.stream", "inject.synthetic"}
