"""checkpoints/index.json as types: old files read, and a rewrite keeps every key as it was."""
import json

import pytest

from core.checkpoint_index import Checkpoint, CheckpointIndex
from core.errors import CorruptOutputError
from core.run_dir import RunDir

# as train/checkpoint.py wrote it before the index was typed (a preemption checkpoint without
# hf, the exposure record beside each entry, steps out of order)
OLD = {"checkpoints": [
    {"step": 8, "tokens_seen": 800, "epochs": 0.5, "hf": None, "ds": "step_8/ds",
     "copies_seen": {"b/x4": 4}, "copies_seen_by_epoch": {"b/x4": [4]}, "last_exposure_step": {"b/x4": 7}},
    {"step": 4, "tokens_seen": 400, "epochs": 0.25, "hf": "step_4/hf", "ds": None,
     "copies_seen": {"b/x4": 2}, "copies_seen_by_epoch": {"b/x4": [2]}, "last_exposure_step": {"b/x4": None}}],
    "finished": True, "seq_len": 25, "global_batch": 4, "tokens_per_step": 100}


def test_an_old_index_reads_typed_and_writes_back_the_same_keys(tmp_path):
    rd = RunDir(tmp_path)
    rd.checkpoints.mkdir()
    rd.index.write_text(json.dumps(OLD))
    index = rd.read_index()
    assert [c.step for c in index.checkpoints] == [4, 8] and index.finished and index.last_step == 8
    assert [c.step for c in index.with_hf()] == [4] and index.step_tokens() == 100 and index.tokens_seen == 800
    assert index.checkpoints[1].exposure["last_exposure_step"] == {"b/x4": 7}
    rd.write_index(index)
    want = {**OLD, "checkpoints": sorted(OLD["checkpoints"], key=lambda c: c["step"])}
    assert json.loads(rd.index.read_text()) == want
    assert [list(c) for c in json.loads(rd.index.read_text())["checkpoints"]] == [list(c) for c in want["checkpoints"]]


def test_a_minimal_index_reads_and_infers_tokens_per_step():
    index = CheckpointIndex.from_json({"checkpoints": [{"step": 50, "tokens_seen": 5000}]})
    assert index.step_tokens() == 100 and not index.finished and index.checkpoints[0].hf is None
    assert index.to_json() == {"checkpoints": [{"step": 50, "tokens_seen": 5000, "epochs": None, "hf": None, "ds": None}],
                               "finished": False}


def test_up_to_is_the_index_a_kill_after_that_step_leaves():
    index = CheckpointIndex(tuple(Checkpoint(s, s * 100) for s in (2, 4, 6)), True, 25, 4, 100)
    cut = index.up_to(4)
    assert [c.step for c in cut.checkpoints] == [2, 4] and not cut.finished and cut.tokens_per_step == 100


@pytest.mark.parametrize("text", ['{"checkpoints": [{"tokens_seen": 1}]}', '{"checkpoints": [3]}', '{"finished": true}'])
def test_a_malformed_index_is_one_line_naming_the_file(tmp_path, text):
    rd = RunDir(tmp_path)
    rd.checkpoints.mkdir()
    rd.index.write_text(text)
    with pytest.raises(CorruptOutputError, match=f"corrupt checkpoint index {rd.index}"):
        rd.read_index()
