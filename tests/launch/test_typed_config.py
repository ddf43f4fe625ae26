"""Compose once, convert once: every stage takes the typed SpikeinConfig, and what the stages
hash (and config.yaml, W&B's config) is exactly what Hydra's resolved tree gave before it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf
from train_fixtures import make_run, train_overrides

from core.config import AuditBase, SpikeinConfig, config_from_yaml, config_to_yaml, with_values
from core.run_dir import RunDir
from launch.config import _compose_plain, compose

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[2] / "conf" / "experiment").glob("*.yaml"))
POINTS = [[], ["data=tokens"], *[[f"experiment={e}"] for e in EXPERIMENTS]]


def short_hash(x) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()[:16]


def omegaconf_nodes(x, where: str = "cfg") -> list[str]:
    """Where an OmegaConf container is still inside ``x`` (a dataclass, dict or list tree)."""
    if isinstance(x, (DictConfig, ListConfig)):
        return [where]
    if dataclasses.is_dataclass(x):
        return [w for f in dataclasses.fields(x) for w in omegaconf_nodes(getattr(x, f.name), f"{where}.{f.name}")]
    if isinstance(x, dict):
        return [w for k, v in x.items() for w in omegaconf_nodes(v, f"{where}.{k}")]
    if isinstance(x, list):
        return [w for i, v in enumerate(x) for w in omegaconf_nodes(v, f"{where}[{i}]")]
    return []


def test_compose_returns_the_typed_config_all_the_way_down():
    from audit.detectors import REGISTRY

    cfg = compose(["experiment=demo"])
    assert isinstance(cfg, SpikeinConfig) and isinstance(cfg.audit, AuditBase)
    assert omegaconf_nodes(cfg) == []
    assert cfg.run_dir == "runs/demo" and cfg.inject.seed == cfg.seed  # interpolations resolved
    for name, det in REGISTRY.items():
        assert isinstance(cfg.audit.detector(name), det.Config), name
    assert cfg.audit.detector("no_such_detector") is None


# Stage hashes of configs as the code before the typed config computed them (git cda1558):
# a run dir built then must still be `done`.
DATA_HASHES = {"default": "4267eecc32ca5e5b", "data=tokens": "b9bad0fbad1b1c18",
               "experiment=forgetting": "4c955c40090a09f0", "experiment=local_text": "6de8c140c552c43e",
               "experiment=pythia160m_mmlu": "7fb4ac1c00b4505f", "experiment=llama_125m_oren": "97d3c898c36c8f6d"}
ROW_SETTINGS = {"accuracy": "7baf4922f3fb2c07", "loss": "a9cfd4e6eec7de93", "min_k": "75310ca5db90fd0f",
                "min_k_pp": "75310ca5db90fd0f", "zlib": "a9cfd4e6eec7de93", "ordering": "30914f1876a19715",
                "option_shuffle": "b0fefa83a3e6f730", "successor": "1da7446968f58a93"}
TRAJECTORY_HASH = "50430654eb8f23c3"


@pytest.mark.parametrize("overrides", POINTS, ids=lambda o: " ".join(o) or "default")
def test_the_typed_config_is_hydras_resolved_tree(overrides):
    """What the stages hash (sections as dicts), config.yaml and W&B's config: the same keys,
    values and value types as the resolved tree they were made from before the typed config;
    inject's hash of it is the one the code before computed."""
    from inject.stage import config_hash, data_config

    before = OmegaConf.to_container(_compose_plain(overrides), resolve=True)
    cfg = compose(overrides)
    assert dataclasses.asdict(cfg) == before
    assert json.dumps(dataclasses.asdict(cfg)) == json.dumps(before)  # order and types (1 vs 1.0) too
    assert config_to_yaml(cfg) == OmegaConf.to_yaml(OmegaConf.create(before))  # config.yaml, byte for byte
    pinned = DATA_HASHES.get(" ".join(overrides) or "default")
    assert pinned is None or config_hash(data_config(cfg)) == pinned


def test_every_pinned_data_hash_is_checked():
    assert set(DATA_HASHES) <= {" ".join(o) or "default" for o in POINTS}


def test_audit_row_settings_are_those_made_before():
    from audit.detectors import get_detector
    from audit.stage import row_settings

    cfg = compose(["audit.reference_model=step_0"])
    bench = SimpleNamespace(name="synth_people", renderer="mcq")
    got = {n: short_hash(row_settings(cfg, bench, get_detector(n, cfg.audit.detector(n)))) for n in ROW_SETTINGS}
    assert got == ROW_SETTINGS


def test_the_training_trajectory_hash_is_the_one_made_before(tmp_path):
    from train.stage import resolve_training

    make_run(tmp_path / "run", n_tokens=4096, seed=3)
    settings, _, _ = resolve_training(compose(train_overrides(tmp_path / "run", "train.max_steps=5", "seed=7")))
    assert settings.trajectory_hash() == TRAJECTORY_HASH


def test_a_worker_reads_back_the_config_its_parent_wrote(tmp_path):
    from audit.worker import load_worker_config, save_worker_config

    cfg = compose([f"run_dir={tmp_path / 'run'}", "audit.detectors=[ordering,loss]", "audit.ordering.shards=4"])
    written = save_worker_config(cfg)
    assert load_worker_config(tmp_path / "run") == cfg
    moved = RunDir(tmp_path / "elsewhere")  # a node that mounts the run dir at another path
    moved.audit_worker_config.parent.mkdir(parents=True)
    moved.audit_worker_config.write_text(written.read_text())
    assert load_worker_config(moved.root) == with_values(cfg, {"run_dir": str(moved.root)})


def test_a_saved_config_of_another_version_reads_typed():
    """A sweep's run config.yaml from an older checkout: keys no longer declared are dropped,
    keys added since take their defaults (the report compares its settings with the rows)."""
    from audit.detectors import spikein_config_class

    cfg = compose([])
    plain = dataclasses.asdict(cfg)
    plain["audit"]["when"] = "end"  # a key an old version had
    del plain["audit"]["reference_model"]  # a key added since
    plain["seed"] = 5
    again = config_from_yaml(OmegaConf.to_yaml(plain), spikein_config_class())
    assert again == with_values(cfg, {"seed": 5})


def test_with_values_replaces_dotted_keys_and_leaves_the_original():
    cfg = compose([])
    new = with_values(cfg, {"audit.watch": True, "inject.counts": [0, 2], "benchmarks.synth_people.name": "x"})
    assert (new.audit.watch, new.inject.counts, new.benchmarks["synth_people"]["name"]) == (True, [0, 2], "x")
    assert (cfg.audit.watch, cfg.benchmarks["synth_people"]["name"]) == (False, "people")
    assert type(new.audit) is type(cfg.audit) and new.audit.detector("ordering") == cfg.audit.detector("ordering")


def test_a_required_value_left_unset_is_one_line_naming_it():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^model\.name is not set and has no default; set model\.name=\.\.\.$"):
        compose(["model.name=???"])
