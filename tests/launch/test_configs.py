"""Every experiment recipe composes and dry-runs offline; the CLI explains itself; the
typed schema keeps the resolved config, freezes its keys and refuses bad values."""
import inspect
import os
import re
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import get_type_hints

import pytest
from omegaconf import DictConfig, OmegaConf

from core.errors import SpikeinError
from launch.config import CONF_DIR, compose, to_container
from launch.pipeline import run_pipeline

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_dry_runs(experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose([f"experiment={experiment}", f"run_dir={tmp_path}/run", "dry_run=true"])
    assert cfg.experiment_name == experiment
    assert run_pipeline(cfg) == 0
    out = capsys.readouterr().out
    assert f"experiment {experiment}" in out and "training tokens" in out
    assert not (tmp_path / "run").exists()  # a dry run touches nothing


def test_gpu_recipes_estimate_gpu_hours(capsys):
    gpu = [e for e in EXPERIMENTS if e not in ("demo", "local_text", "forgetting")]
    assert gpu, "expected GPU recipes in conf/experiment"
    for e in gpu:
        run_pipeline(compose([f"experiment={e}", "dry_run=true"]))
        assert "GPU-hours" in capsys.readouterr().out, e


@pytest.mark.slow
def test_every_group_option_composes_with_its_own_values():
    """Each option file's values reach the composed group; benchmarks stay exactly as written."""
    for group in ("model", "data", "benchmarks", "train", "deepspeed", "audit", "launcher", "logger", "inject"):
        for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
            written = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))
            composed = to_container(compose([f"{group}={option}", "~experiment"]))[group]  # no recipe on top
            if group == "benchmarks":
                assert composed == written, option
            for key in flat_keys(written) if written else []:
                assert OmegaConf.select(OmegaConf.create(composed), key) == OmegaConf.select(
                    OmegaConf.create(written), key), f"{group}={option}: {key}"


@pytest.mark.slow
def test_help_lists_groups_and_config():
    r = subprocess.run([sys.executable, "-m", "launch.cli", "inject", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "config groups" in r.stdout and "experiment" in r.stdout and "counts:" in r.stdout


def test_unknown_group_option_is_one_line():
    r = subprocess.run([sys.executable, "-m", "launch.cli", "run", "model=nope"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "choose one of" in r.stderr


def test_audit_shorthand_names_the_model_to_audit():
    from launch.cli import _audit_shorthand
    assert _audit_shorthand(["model=EleutherAI/pythia-160m", "benchmark=mmlu", "seed=1"]) == \
        ["audit.model=EleutherAI/pythia-160m", "audit.benchmark=mmlu", "seed=1",
         "~experiment", "experiment_name=audit-pythia-160m"]  # no demo recipe for a public model
    assert _audit_shorthand(["model=tiny_llama"]) == ["model=tiny_llama"]  # a config option stays one


# ---- the typed schema (launch/schema.py) ------------------------------------------------

KEYS_FILE = Path(__file__).parent / "config_keys.txt"
UPDATE_KEYS = "SPIKEIN_UPDATE_CONFIG_KEYS"
FROZEN = {"default": [], **{f"experiment={e}": [f"experiment={e}"] for e in EXPERIMENTS}}


def flat_keys(node, prefix: str = "") -> list[str]:
    """Dotted keys of every leaf (a list is a leaf; an empty mapping is one too)."""
    if isinstance(node, dict) and node:
        return [k for key, v in node.items() for k in flat_keys(v, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def written_value(tree: dict, key: str):
    """The value at dotted ``key`` of a plain nested dict (a YAML file as written); KeyError if unset."""
    for part in key.split("."):
        tree = tree[part]
    return tree


def is_set(tree: dict, key: str) -> bool:
    try:
        written_value(tree, key)
    except (KeyError, TypeError):
        return False
    return True


def option_file(group: str, option: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml")) or {}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_recipe_keeps_its_own_values_and_the_options_it_selects(experiment):
    """What an experiment file writes arrives as written; each group option it selects arrives
    too, except where the recipe itself sets the key (a recipe wins over its options)."""
    written = option_file("experiment", experiment)
    selected = [entry for entry in written.pop("defaults", []) if isinstance(entry, dict)]
    composed = to_container(compose([f"experiment={experiment}"]))
    for key in flat_keys(written):
        assert written_value(composed, key) == written_value(written, key), f"{experiment}: {key}"
    for entry in selected:  # {"override /model": "pythia-160m"}
        [(where, option)] = entry.items()
        group = where.split("/")[-1]
        values = option_file(group, option)
        for key in flat_keys(values) if values else []:
            if not is_set(written, f"{group}.{key}"):
                assert written_value(composed[group], key) == written_value(values, key), f"{experiment}: {group}.{key}"


def schema_defaults(cls) -> dict:
    """A dataclass's defaults as plain values; interpolations (``${seed}``) left as written."""
    return OmegaConf.to_container(OmegaConf.structured(cls), resolve=False)


def test_a_key_no_file_sets_takes_the_schema_default():
    """The dataclasses are the only home of defaults: with no recipe, every key the group's
    default option file leaves unset resolves to its dataclass default."""
    from launch import schema

    composed = to_container(compose(["~experiment"]))
    chosen = {next(iter(d)): d[next(iter(d))] for d in OmegaConf.load(CONF_DIR / "config.yaml").defaults
              if isinstance(d, DictConfig)}
    checked = 0
    top = schema.spikein_config_class()
    types = get_type_hints(top)  # the static class's annotations are strings
    for group in fields(top):
        if not is_dataclass(types[group.name]):
            continue
        written = option_file(group.name, chosen[group.name]) if group.name in chosen else {}
        defaults = schema_defaults(types[group.name])
        for key in flat_keys(defaults):
            default = written_value(defaults, key)
            if is_set(written, key) or (isinstance(default, str) and "${" in default):
                continue
            assert written_value(composed[group.name], key) == default, f"{group.name}.{key}"
            checked += 1
    assert checked > 100  # every group's unset keys, detectors' included


def frozen_key_text() -> str:
    blocks = [f"[{name}]\n" + "\n".join(sorted(flat_keys(to_container(compose(ov))))) for name, ov in FROZEN.items()]
    return "# Every config key of the default config and of each experiment (tests/launch/test_configs.py).\n" \
           f"# Regenerate after a deliberate change: {UPDATE_KEYS}=1 pytest tests/launch/test_configs.py -k frozen\n\n" \
           + "\n\n".join(blocks) + "\n"


def test_config_keys_are_frozen():
    now = frozen_key_text()
    if os.environ.get(UPDATE_KEYS):
        KEYS_FILE.write_text(now)
    old = KEYS_FILE.read_text()
    added = sorted(set(now.splitlines()) - set(old.splitlines()))
    removed = sorted(set(old.splitlines()) - set(now.splitlines()))
    assert now == old, (f"config keys changed: added {added}, removed {removed}. A new key belongs in "
                        f"launch/schema.py (or its detector's Config) with a comment; then regenerate "
                        f"tests/launch/config_keys.txt with {UPDATE_KEYS}=1 pytest tests/launch/test_configs.py -k frozen")


def test_schema_fields_each_have_a_comment():
    from audit.detectors import REGISTRY
    from core.config import BENCHMARK_SOURCES
    from launch import schema

    groups = [t for t in get_type_hints(schema.SpikeinConfig).values() if is_dataclass(t)]
    classes = [schema.SpikeinConfig, *groups, schema.BenchmarkConfig, schema.HubCorpusConfig,
               schema.SyntheticWorldConfig] + [c.Config for c in REGISTRY.values()]
    classes += list(BENCHMARK_SOURCES.values())  # each benchmark source's own settings
    assert schema.AuditBase in classes and schema.DataConfig in classes
    for cls in set(classes):  # the static classes: the registry's AuditConfig only adds the detectors'
        lines = inspect.getsource(cls).splitlines()
        for f in [f for f in fields(cls) if f.name in vars(cls).get("__annotations__", {})]:  # its own, not a base's
            line = next(ln for ln in lines if ln.strip().startswith(f"{f.name}:"))
            assert "#" in line, f"{cls.__name__}.{f.name} has no comment"


def test_seed_interpolations_follow_the_top_level_seed():
    cfg = compose(["seed=7"])
    seeds = [cfg.inject.seed, cfg.train.seed, cfg.data.shuffle_seed, cfg.data.synthetic.seed,
             cfg.audit.ordering.seed, cfg.audit.option_shuffle.seed]
    assert seeds == [7] * 6
    assert compose(["seed=7", "audit.ordering.seed=3"]).audit.ordering.seed == 3


def test_detector_settings_come_from_its_config_class():
    from audit.detectors import REGISTRY, get_detector

    cfg = compose([])
    for name, cls in REGISTRY.items():
        assert isinstance(cfg.audit.detector(name), cls.Config), name
    ordering = get_detector("ordering", cfg.audit.detector("ordering"))
    assert (ordering.shards, ordering.permutations, ordering.seed) == (10, 30, 1234)
    with pytest.raises(SpikeinError, match=r"audit\.ordering\.seed: not set"):
        get_detector("ordering", {"shards": 4})  # no silent seed 0 outside the composed tree
    with pytest.raises(SpikeinError, match=r"audit\.ordering\.shards"):
        get_detector("ordering", {"shards": "many", "seed": 1})


BAD_VALUES = [  # issue 11, defect 6: each ended in a traceback, or a dry-run plan with exit 0
    (["inject.counts=abc"], "inject.counts=abc: expected a list"),
    (["inject.counts=16"], r"inject.counts=16: expected a list, e.g. inject.counts=\[16\]"),
    (["inject.partition_size=ten"], "inject.partition_size=ten: expected an integer"),
    (["train.lr=fast"], "train.lr=fast: expected a positive number or auto"),
    (["train.max_steps=abc"], "train.max_steps=abc: expected an integer"),
    (["inject.partition_size=-3"], r"inject.partition_size=-3: must be >= 1"),
    (["inject.window=[0.9,0.1]"], r"inject.window=\[0.9, 0.1\]: expected \[start, end\]"),
    (["train.precision=fp16"], "train.precision=fp16: choose one of: fp32, bf16"),
    (["deepspeed.user_json=/nonexistent/ds.json"], "deepspeed.user_json=/nonexistent/ds.json: no such file"),
    (["inject.counts=[0,x]"], r"inject.counts\[1\]=x: expected an integer"),
    (["+benchmarks.synth_people.pathh=x"], r"benchmarks.synth_people.pathh: Key 'pathh' not in"),
    # found by this session's bad-input battery: accepted with exit 0, or the wrong alternatives
    (["+foo=1"], r"unknown config key 'foo'; top level has: experiment_name, run_dir"),
    (["+train.lrr=1"], r"unknown config key 'train.lrr'; train has: seq_len, .*\blr\b"),
    (["model.bpe_vocab_size=10"], r"model.bpe_vocab_size=10: must be >= 257"),
    (["train.lr.x=1"], r"unknown config key 'train.lr.x'; train.lr is a value, not a section"),
    (["benchmarks=generic_example", "benchmarks.mmlu_anatomy_generic.fromat=json"],
     r"unknown config key 'benchmarks.mmlu_anatomy_generic.fromat'; benchmarks.mmlu_anatomy_generic has: source, .*format"),
]


@pytest.mark.parametrize("overrides, message", BAD_VALUES)
@pytest.mark.parametrize("stage", ["run", "inject"])
def test_bad_values_are_one_line_errors_before_anything_runs(overrides, message, stage, tmp_path, capsys):
    from launch.cli import main

    run_dir = tmp_path / "run"
    assert main([stage, *overrides, f"run_dir={run_dir}", "dry_run=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not run_dir.exists()


def test_require_shared_fails_under_ci_and_skips_otherwise(monkeypatch, tmp_path):
    from conftest import require_shared

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_shared(tmp_path / "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_shared(tmp_path / "absent")
    require_shared(tmp_path)  # present: nothing to say


def test_a_users_own_config_dir_is_searched_listed_and_offered(tmp_path):
    """hydra.searchpath adds the user's option files: they compose, --help lists them, and an
    unknown option's error offers them."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "my_run.yaml").write_text(
        "# @package _global_\nexperiment_name: my_run\ninject:\n  counts: [0, 8]\n")
    search = f"hydra.searchpath=[file://{tmp_path}]"
    cfg = compose([search, "experiment=my_run"])
    assert (cfg.experiment_name, list(cfg.inject.counts)) == ("my_run", [0, 8])
    from launch.config import config_groups
    assert "my_run" in config_groups([search])["experiment"] and "my_run" not in config_groups()["experiment"]
    r = subprocess.run([sys.executable, "-m", "launch.cli", "run", search, "experiment=nope"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "my_run" in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_a_config_error_is_reported_without_loading_torch():
    """Composing (and refusing) a config imports the schema and every detector's Config, but
    not the model code: an unknown key is a fast one-line answer, not a 5 s torch import."""
    code = ("import sys\nfrom launch.config import compose\nfrom core.errors import SpikeinError\n"
            "try:\n    compose(['inject.countz=1'])\nexcept SpikeinError as e:\n    print(e)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'deepspeed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "unknown config key 'inject.countz'" in out and out.splitlines()[-1] == "[]", out


def test_dry_run_states_gpu_memory_per_rank_and_warns_above_the_budget(tmp_path, capsys):
    from launch.dry_run import describe

    base = ["experiment=pythia160m_mmlu", f"run_dir={tmp_path}/run", "dry_run=true", "model=qwen2.5-0.5b"]
    text = describe(compose(base + ["train.loss_chunk_tokens=null"]))
    assert "GPU memory per rank (estimate, micro-batch 16 x 2048)" in text and "warning:" in text  # > 80 GiB
    fits = describe(compose(base + ["train.activation_checkpointing=true"]))
    assert "checkpointing on" in fits and "warning:" not in fits
    # the audit's cost next to training's: 7 counts x 2 benchmarks x 100 items, 2 checkpoints
    assert "audit cost: ~1,400 items x" in fits and "x 2 checkpoints" in fits and "; training: " in fits
