"""The train stage on a run it already trained (the session's ``cli_trained``): its state
against the config, and a resume from a damaged checkpoint (issue 11)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from train_fixtures import train_overrides
from user_env_fixtures import PY, REPO, TRAIN_ARGS, env

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


# The train stage's state in a process where the inject stage cannot be imported: train reads
# data/ through the manifest and RunDir, never through another stage's module.
STATE_WITHOUT_INJECT_STAGE = """
import json, sys
sys.modules["inject.stage"] = None  # any import of it now raises ImportError
from launch.config import compose
from train.stage import stage_state
for overrides in json.loads(sys.argv[1]):
    state = stage_state(compose(overrides))
    print(json.dumps([state.status, list(state.changed)]))
"""


@pytest.mark.slow
def test_train_state_needs_no_inject_stage_and_names_a_changed_key(cli_trained):
    same = train_overrides(cli_trained.run, *TRAIN_ARGS)
    changed = train_overrides(cli_trained.run, *TRAIN_ARGS, "train.lr=0.001")
    proc = subprocess.run([PY, "-c", STATE_WITHOUT_INJECT_STAGE, json.dumps([same, changed])], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    states = [json.loads(line) for line in proc.stdout.splitlines()]
    assert states[0] == ["done", []]
    assert states[1][0] == "conflicting" and {"lr", "train.lr"} <= set(states[1][1])
