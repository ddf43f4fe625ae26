"""A resume from a damaged checkpoint (issue 11): one line naming the file, and the failed
attempt's log lines kept apart from the next one's."""
from __future__ import annotations

import json
import shutil

import pytest
from train_fixtures import train_overrides
from user_env_fixtures import TRAIN_ARGS

from core.errors import SpikeinError
from launch.config import compose


@pytest.mark.slow
def test_truncated_deepspeed_state_names_the_file_and_no_stale_log_lines(cli_trained, tmp_path):
    from train.stage import run_train

    run = tmp_path / "run"
    shutil.copytree(cli_trained.run, run)
    index_path = run / "checkpoints" / "index.json"
    index = json.loads(index_path.read_text())  # killed after step 2's checkpoint was written
    index.update(finished=False, checkpoints=[c for c in index["checkpoints"] if c["step"] <= 2])
    index_path.write_text(json.dumps(index))
    state = run / "checkpoints" / "step_2" / "ds" / "mp_rank_00_model_states.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(SpikeinError) as e:
        run_train(compose(train_overrides(run, *TRAIN_ARGS)))
    msg = str(e.value)
    assert str(state) in msg and "\n" not in msg
    assert "starting from step 0" not in msg  # the first attempt's lines stay in rank0.log.1
    assert "starting from step 0" in (run / "train" / "logs" / "rank0.log.1").read_text()
