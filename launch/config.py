"""Compose the Hydra config tree into the typed :class:`core.config.SpikeinConfig` (the one
conversion: every stage takes that object), and turn Hydra's multi-line errors into one line."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Sequence, cast

from omegaconf import DictConfig, OmegaConf

from core.config import SpikeinConfig, validate_config
from core.errors import ConfigError
from launch import schema

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
schema.register()  # conf/config.yaml's defaults start with the schema


def compose(overrides: Sequence[str] = ()) -> SpikeinConfig:
    """The resolved, validated config for ``overrides`` (Hydra syntax), typed."""
    return check(_hydra_tree(overrides), overrides)


def compose_tree(overrides: Sequence[str] = ()) -> DictConfig:
    """Hydra's tree for ``overrides``, checked and validated, interpolations kept (``--help``)."""
    cfg = _hydra_tree(overrides)
    check(cfg, overrides)
    return cfg


def _hydra_tree(overrides: Sequence[str]) -> DictConfig:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _compose_plain(overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise ConfigError(_type_error(e, overrides) or _one_line_error(str(e), overrides)) from None


def check(cfg: DictConfig, overrides: Sequence[str] = ()) -> SpikeinConfig:
    """Struct mode on, appended keys refused, values validated (a composed tree or a sweep
    point's); the checked config, typed (converted once)."""
    OmegaConf.set_struct(cfg, True)
    _refuse_appended_keys(cfg)
    checked = typed(cfg, overrides)
    validate_config(checked)
    return checked


def typed(cfg: DictConfig, overrides: Sequence[str] = ()) -> SpikeinConfig:
    """A checked tree as the schema's dataclasses, interpolations resolved: what every stage takes."""
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except MissingMandatoryValue as e:  # a key without a default that no option file set
        raise ConfigError(f"{e.full_key} is not set and has no default; set {e.full_key}=...") from None
    except OmegaConfBaseException as e:  # e.g. an interpolation to nothing
        raise ConfigError(_type_error(e, overrides) or _one_line_error(str(e), overrides)) from None


def tree_yaml(overrides: Sequence[str] = ()) -> str:
    """The composed tree as YAML, interpolations as written (``spikein <stage> --help``)."""
    return OmegaConf.to_yaml(compose_tree(overrides), resolve=False)


def _refuse_appended_keys(cfg: DictConfig) -> None:
    found = schema.unknown_key(cast(dict, OmegaConf.to_container(cfg)), schema.spikein_config_class())
    if found:
        dotted, declared = found
        raise ConfigError(f"unknown config key '{dotted}'; {_has(dotted.rpartition('.')[0] or 'top level', declared)}")


def _has(where: str, keys) -> str:
    return f"{where} has: {', '.join(map(str, keys))}"


# OmegaConf's type errors, said as what was expected
EXPECTED = {"is not a ListConfig": "expected a list", "to Integer": "expected an integer",
            "to Float": "expected a number", "to Boolean": "expected true or false",
            "to string": "expected a string", "is not a DictConfig": "expected a mapping"}


def _type_error(e: BaseException, overrides: Sequence[str]) -> str | None:
    """``inject.counts=abc: expected a list, e.g. inject.counts=[abc]`` for a value the schema refuses."""
    from omegaconf.errors import ValidationError

    cause = e if isinstance(e, ValidationError) else e.__cause__
    if not isinstance(cause, ValidationError) or not cause.full_key:
        return None
    key = str(cause.full_key)
    msg = str(cause.msg)
    given = [o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=", 1)[0] == key]
    value = given[-1] if given else msg.split("'")[1] if "'" in msg else "?"
    expected = next((v for k, v in EXPECTED.items() if k in msg), msg.splitlines()[0])
    if expected == "expected a list" and value.lstrip("-").isdigit():
        expected += f", e.g. {key}=[{value}]"  # a scalar is refused rather than guessed as [value]
    return f"{key}={value}: {expected}"


def _one_line_error(message: str, overrides: Sequence[str]) -> str:
    """Name the bad key or option and list what exists instead."""
    missing_key = re.search(r"Key '([^']+)' is not in struct", message)
    bad_override = re.search(r"Could not override '([^']+)'", message)
    if missing_key or bad_override:
        dotted = (bad_override or missing_key).group(1)  # type: ignore[union-attr]
        return f"unknown config key '{dotted}'; {_alternatives(dotted, overrides)}"
    missing_option = re.search(r"Could not find '([^']+)'", message)
    if missing_option:
        group = missing_option.group(1).split("/")[0]
        options = config_groups(overrides).get(group, [])
        return f"unknown {group} '{missing_option.group(1).removeprefix(group + '/')}'; choose one of: {', '.join(options)}"
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _alternatives(dotted: str, overrides: Sequence[str]) -> str:
    """The keys that do exist where ``dotted`` points, in the tree the user's group choices compose."""
    node, where = compose_defaults(overrides), "top level"
    for p in dotted.split(".")[:-1]:
        if not isinstance(node, DictConfig) or p not in node:
            break
        node, where = node[p], p if where == "top level" else f"{where}.{p}"
    if not isinstance(node, DictConfig):
        return f"{where} is a value, not a section"
    return _has(where, node.keys())


def compose_defaults(overrides: Sequence[str] = ()) -> DictConfig:
    """The tree of the group choices among ``overrides`` (``experiment=demo``,
    ``hydra.searchpath=...``) without their key overrides; the plain defaults if that fails."""
    choices = [o for o in overrides if _is_group_choice(o)]
    try:
        return _compose_plain(choices)
    except Exception:  # noqa: BLE001  (only used to list alternatives in a message already failing)
        return _compose_plain([])


def _is_group_choice(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return "=" in override and ("." not in key or key == "hydra.searchpath")


def _compose_plain(overrides: Sequence[str]) -> DictConfig:
    """Hydra's compose of ``conf/config.yaml`` with ``overrides``, its global state left clear."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def config_groups(overrides: Sequence[str] = ()) -> dict[str, list[str]]:
    """Each group's options: spikein's own and those of the user's ``hydra.searchpath`` dirs."""
    groups: dict[str, set[str]] = {}
    for root in [CONF_DIR, *user_conf_dirs(overrides)]:
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            groups.setdefault(d.name, set()).update(p.stem for p in d.glob("*.yaml"))
    return {name: sorted(options) for name, options in sorted(groups.items())}


def user_conf_dirs(overrides: Sequence[str]) -> list[Path]:
    """The local directories named by a ``hydra.searchpath=[file://...]`` override."""
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.searchpath=")]
    entries = [e.strip().strip("'\"") for g in given for e in g.strip("[]").split(",")]
    dirs = [Path(e.removeprefix("file://")) for e in entries if e and not e.startswith("pkg://")]
    return [d for d in dirs if d.is_dir()]


def to_container(cfg: SpikeinConfig) -> dict:
    """The config as plain, JSON-ready data (what the stages hash: the same dict Hydra's tree resolved to)."""
    return dataclasses.asdict(cfg)


def resolve_now(path: str) -> str:
    """``path`` with Hydra's resolvers (``${now:...}``) applied, before any point of a sweep runs."""
    from hydra.core.utils import setup_globals

    setup_globals()  # Hydra's `now` resolver
    return str(OmegaConf.create({"d": path}).d)
