"""Compose the Hydra config tree and turn Hydra's multi-line errors into one line."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from inject.errors import SpikeinError
from launch import schema

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
schema.register()  # conf/config.yaml's defaults start with the schema


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved config for ``overrides`` (Hydra syntax), struct mode on."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise SpikeinError(_one_line_error(str(e), overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, True)
    return cfg


def _one_line_error(message: str, overrides: Sequence[str]) -> str:
    """Name the bad key or option and list what exists instead."""
    missing_key = re.search(r"Key '([^']+)' is not in struct", message)
    bad_override = re.search(r"Could not override '([^']+)'", message)
    if missing_key or bad_override:
        dotted = bad_override.group(1) if bad_override else missing_key.group(1)
        return f"unknown config key '{dotted}'; {_alternatives(dotted)}"
    missing_option = re.search(r"Could not find '([^']+)'", message)
    if missing_option:
        group = missing_option.group(1).split("/")[0]
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return f"unknown {group} '{missing_option.group(1)}'; choose one of: {', '.join(options)}"
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _alternatives(dotted: str) -> str:
    base = compose_defaults()
    parts = dotted.split(".")
    node, where = base, "top level"
    for p in parts[:-1]:
        if isinstance(node, DictConfig) and p in node:
            node, where = node[p], p
        else:
            break
    keys = list(node.keys()) if isinstance(node, DictConfig) else []
    return f"{where} has: {', '.join(map(str, keys))}"


def compose_defaults() -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config")
    GlobalHydra.instance().clear()
    return cfg


def config_groups() -> dict[str, list[str]]:
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(CONF_DIR.iterdir())
        if d.is_dir()
    }


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
