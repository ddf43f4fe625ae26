"""ResultRow: the audit's rows as the report reads them, from the JSON the audit writes."""
from audit.results import ROW_FIELDS, ResultRow, ResultsStore, read_result_rows
from core.run_dir import RunDir


def test_rows_read_typed_with_a_detectors_own_keys_apart(tmp_path):
    rd = RunDir(tmp_path)
    store = ResultsStore(rd)
    full = {**dict.fromkeys(ROW_FIELDS), "benchmark": "b", "partition": "x4", "detector": "accuracy", "step": 10,
            "count": 4, "statistic": 0.5, "settings": {"style": "letter"}, "accuracy": 0.75}
    old = {"benchmark": "b", "partition": "x0", "detector": "ordering", "step": 10, "p": 0.2}  # before cost fields
    store.add(full)
    store.add(old)
    acc, ordering = read_result_rows(rd)
    assert acc.accuracy == 0.75 and acc.extra == {"accuracy": 0.75} and acc.settings_key() == '{"style": "letter"}'
    assert ordering.p == 0.2 and ordering.wall_s is None and ordering.extra == {} and ordering.accuracy is None
    assert ResultRow.from_json({**old, "statistic": 0.3, "detector": "accuracy"}).accuracy == 0.3  # accuracy unrecorded
