"""The error hierarchy (core/errors.py): each kind of problem raises its own subclass of
SpikeinError, so callers and tests can tell whose move it is."""
import pytest

from core.errors import ConfigError, CorruptOutputError, EnvironmentProblem, InputDataError, SpikeinError
from inject.benchmarks import load_benchmark
from launch.config import compose


def test_every_kind_is_a_spikein_error_and_the_kinds_are_distinct():
    kinds = [ConfigError, InputDataError, CorruptOutputError, EnvironmentProblem]
    assert all(issubclass(k, SpikeinError) for k in kinds)
    assert not any(issubclass(a, b) for a in kinds for b in kinds if a is not b)


@pytest.mark.parametrize("override", ["train.lr=fast", "inject.window=[0.9,0.1]", "inject.counts=16"])
def test_a_bad_value_is_a_config_error(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        compose([override])


def test_a_malformed_row_is_an_input_data_error(tmp_path):
    (tmp_path / "x_test.csv").write_text("q,a,b,c,d,A\nq2,a,b,c,B\n")  # row 2 lacks one option
    with pytest.raises(InputDataError, match=r"x_test.csv:2: expected 6 fields, got 5"):
        load_benchmark("mmlu", {"source": "mmlu_dir", "path": str(tmp_path)})


def test_a_model_that_is_nowhere_is_an_environment_problem(tmp_path):
    from audit.model import load_model

    with pytest.raises(EnvironmentProblem, match="no such directory or hub id"):
        load_model(str(tmp_path / "nope"))
