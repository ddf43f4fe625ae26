"""Each config class checks its own values (``validate()``), on the typed instance the
composed config converts to; the benchmark spec is one class per source and stays hashed
as written."""
from dataclasses import replace

import pytest

from core.config import (
    BENCHMARK_SOURCES,
    InjectConfig,
    TrainConfig,
    benchmark_plan,
    benchmark_spec,
    validate_config,
)
from core.errors import ConfigError
from launch.config import compose


def test_a_typed_instance_is_validated_by_its_classes():
    cfg = compose([])  # the typed instance
    validate_config(cfg)  # the composed defaults pass
    cfg.train = replace(cfg.train, precision="fp16")
    with pytest.raises(ConfigError, match=r"^train\.precision=fp16: choose one of: fp32, bf16$"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match=r"^benchmarks\.b\.inject\.window=\[0\.5, 0\.2\]: expected \[start, end\]"):
        InjectConfig(window=[0.5, 0.2]).validate("benchmarks.b.inject")
    TrainConfig().validate()


DETECTOR_VALUES = [  # each detector's own checks, now in its Config, run at compose time
    (["audit.ordering.shards=1"], r"^audit\.ordering\.shards=1: the sharded t-test needs >= 2 shards"),
    (["audit.ordering.test=exact"], r"^audit\.ordering\.test='exact': choose one of sharded, permutation$"),
    (["audit.ordering.test=permutation", "audit.ordering.min_p=0.001"],
     r"^audit\.ordering\.permutations=30 cannot give p below 0\.0323; ordering\.min_p=0\.001 needs at least 999$"),
    (["audit.successor.block=2"], r"^audit\.successor\.block=2: need >= 3 items per block"),
    (["audit.min_k_pp.k=1.5"], r"^audit\.min_k_pp\.k=1\.5: a fraction of tokens in \(0, 1\]$"),
    (["audit.accuracy.style=acc"], r"^audit\.accuracy\.style='acc': choose one of letter, text, norm, bytes$"),
    (["audit.detectors=[ordering,nope]"], r"^unknown detector 'nope' in audit\.detectors; choose from: accuracy, loss"),
]


@pytest.mark.parametrize("overrides, message", DETECTOR_VALUES)
def test_detector_settings_are_checked_when_composing(overrides, message):
    detectors = ["audit.detectors=[accuracy,ordering,successor,min_k_pp]"]
    with pytest.raises(ConfigError, match=message):
        compose(detectors + overrides)


def test_a_detector_not_listed_is_not_checked():
    assert compose(["audit.detectors=[loss]", "audit.ordering.shards=1"]).audit.ordering.shards == 1


def test_each_benchmark_source_has_its_own_settings():
    assert isinstance(benchmark_spec("benchmarks.b", {"source": "synthetic", "name": "people"}),
                      BENCHMARK_SOURCES["synthetic"])
    with pytest.raises(ConfigError, match=r"^benchmarks\.b\.columns: Key 'columns' not in 'SyntheticBenchmark'"):
        benchmark_spec("benchmarks.b", {"source": "synthetic", "columns": ["a"]})  # a generic setting
    with pytest.raises(ConfigError, match=r"^benchmarks\.b\.source=csv: choose one of: hub, mmlu_dir, arc_jsonl, "):
        compose(["+benchmarks.b.source=csv"])
    with pytest.raises(ConfigError, match=r"^benchmarks\.b\.inject=\{\"countz\": 1\}: unknown inject key\(s\) countz$"):
        benchmark_spec("benchmarks.b", {"source": "synthetic", "inject": {"countz": 1}}).validate(
            "benchmarks.b", InjectConfig(seed=1))
    with pytest.raises(ConfigError, match=r"^benchmarks\.h\.trust_remote_code=True: not supported"):
        compose(["+benchmarks.h.source=hub", "+benchmarks.h.format=mmlu", "+benchmarks.h.trust_remote_code=true"])
    with pytest.raises(ConfigError, match=r"^benchmarks\.h\.format=None: choose one of: mmlu, arc, hellaswag$"):
        compose(["+benchmarks.h.source=hub", "+benchmarks.h.path=cais/mmlu"])


def test_a_benchmark_plan_is_inject_with_its_override():
    cfg = compose(["+benchmarks.synth_places.inject.counts=[0,2]", "inject.counts=[0,1,4]"])
    assert benchmark_plan(cfg.inject, cfg.benchmarks["synth_places"]).counts == [0, 2]
    assert benchmark_plan(cfg.inject, cfg.benchmarks["synth_people"]).counts == [0, 1, 4]
    assert benchmark_plan(cfg.inject, None).counts == [0, 1, 4]


# data_config's hash of each, computed before the checks moved into the config classes (and
# before the benchmark spec became one class per source): an existing run dir stays `done`
DATA_HASHES = [
    (["experiment=demo"], "4267eecc32ca5e5b"),
    (["experiment=pythia160m_mmlu"], "7fb4ac1c00b4505f"),
    (["experiment=llama_125m_oren"], "97d3c898c36c8f6d"),
    (["benchmarks=generic_example"], "6fad786f0402cb3a"),
    (["experiment=demo", "+benchmarks.synth_places.inject.counts=[0,2]"], "352b9c20438e9fad"),
]


@pytest.mark.parametrize("overrides, digest", DATA_HASHES)
def test_the_hashed_data_config_is_unchanged(overrides, digest, monkeypatch):
    from inject.stage import config_hash, data_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    conf = data_config(compose(overrides))
    assert config_hash(conf) == digest
    if overrides == ["experiment=demo"]:  # hashed as written: no defaults of SyntheticBenchmark filled in
        assert conf["benchmarks"]["synth_people"] == {"source": "synthetic", "name": "people"}
