"""Value checks of the composed config, run once in the parent before any stage (dry run
included). Types are already checked by the schema (launch/schema.py); this module checks
what a type cannot say: ranges, choices, files that must exist. Each failure is one
SpikeinError naming the key and its value.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

from core.config import BenchmarkConfig, InjectConfig
from core.errors import ConfigError

PRECISIONS = ("fp32", "bf16")
TOKEN_FORMATS = ("llmc", "nanogpt", "megatron", "numpy", "datatrove", "hf")
DATA_KINDS = ("synthetic", "text", "jsonl", "hub", "tokens")
STREAM_DTYPES = ("auto", "uint16", "uint32")
LAUNCHERS = ("local", "torchrun", "deepspeed", "srun")
LOGGER_MODES = (None, "online", "offline", "disabled")


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={_show(value)}: {expected}")


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def at_least(key: str, value: Any, low: float, optional: bool = False) -> None:
    if optional and value is None:
        return
    require(_number(value) and value >= low, key, value, f"must be >= {low:g}" + (" (or null)" if optional else ""))


def one_of(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    require(value in choices, key, value, "choose one of: " + ", ".join(str(c).lower() if c is None else str(c) for c in choices))


def auto_or_positive(key: str, value: Any, optional: bool) -> None:
    ok = value == "auto" or (_number(value) and value > 0) or (optional and value is None)
    require(ok, key, value, "expected a positive number or auto" + (" or null" if optional else ""))


def validate(cfg) -> None:
    """Raise a SpikeinError naming the first key whose value cannot work."""
    c = OmegaConf.to_container(cfg, resolve=True)
    check_inject("inject", c["inject"])
    check_benchmarks(c["benchmarks"], c["inject"])
    check_data(c["data"])
    # a byte-level BPE starts from 256 byte tokens plus EOS; below that the trainer silently keeps 257
    at_least("model.bpe_vocab_size", c["model"]["bpe_vocab_size"], 257, optional=True)
    check_train(c["train"])
    check_deepspeed(c["deepspeed"])
    check_audit(cfg.audit, c["audit"])
    check_launcher(c["launcher"])
    one_of("logger.mode", c["logger"]["mode"], LOGGER_MODES)
    require(_number(c["report"]["alpha"]) and 0 < c["report"]["alpha"] < 1, "report.alpha", c["report"]["alpha"],
            "expected a number in (0, 1)")


def check_inject(where: str, inj: dict[str, Any]) -> None:
    from inject.plan import MODES, ORDERS
    from inject.render import RENDERERS

    require(len(inj["counts"]) > 0, f"{where}.counts", inj["counts"], "expected a non-empty list of copy counts")
    for i, n in enumerate(inj["counts"]):
        at_least(f"{where}.counts[{i}]", n, 0)
    at_least(f"{where}.partition_size", inj["partition_size"], 1, optional=True)
    fraction = inj["partition_fraction"]
    require(fraction is None or (_number(fraction) and 0 < fraction <= 1), f"{where}.partition_fraction", fraction,
            "expected a number in (0, 1] or null")
    require((inj["partition_size"] is None) != (fraction is None), f"{where}.partition_size", inj["partition_size"],
            f"set exactly one of {where}.partition_size and {where}.partition_fraction (the other null)")
    one_of(f"{where}.mode", inj["mode"], MODES)
    one_of(f"{where}.item_order", inj["item_order"], ORDERS)
    one_of(f"{where}.option_order", inj["option_order"], ORDERS)
    one_of(f"{where}.renderer", inj["renderer"], RENDERERS)
    window = inj["window"]
    require(len(window) == 2 and 0 <= window[0] < window[1] <= 1, f"{where}.window", window,
            "expected [start, end] with 0 <= start < end <= 1")
    share = inj["max_injected_share"]
    require(_number(share) and 0 < share <= 1, f"{where}.max_injected_share", share, "expected a number in (0, 1]")
    at_least(f"{where}.workers", inj["workers"], 1)
    at_least(f"{where}.chunk_documents", inj["chunk_documents"], 1)
    one_of(f"{where}.dtype", inj["dtype"], STREAM_DTYPES)


def check_benchmarks(benchmarks: dict[str, Any], inject: dict[str, Any]) -> None:
    """Each entry against :class:`BenchmarkConfig`; its inject override like ``inject``."""
    from omegaconf.errors import OmegaConfBaseException

    for name, spec in benchmarks.items():
        where = f"benchmarks.{name}"
        require(isinstance(spec, dict), where, spec, "expected a mapping with at least `source`")
        try:
            typed = OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), spec)
        except OmegaConfBaseException as e:
            raise ConfigError(f"{where}.{e.full_key}: {str(e.msg).splitlines()[0]}") from None
        override = OmegaConf.to_container(typed.inject) if typed.inject else {}
        unknown = sorted(set(override) - set(InjectConfig.__dataclass_fields__))
        require(not unknown, f"{where}.inject", override, f"unknown inject key(s) {', '.join(unknown)}")
        check_inject(f"{where}.inject", {**inject, **override})


def check_data(data: dict[str, Any]) -> None:
    one_of("data.kind", data["kind"], DATA_KINDS)
    at_least("data.max_doc_chars", data["max_doc_chars"], 0)
    at_least("data.max_documents", data["max_documents"], 1, optional=True)
    for key in ("n_people", "n_places", "n_orgs", "practice_questions"):
        at_least(f"data.synthetic.{key}", data["synthetic"][key], 0)
    if data["kind"] == "tokens":
        one_of("data.format", data["format"], TOKEN_FORMATS)
        at_least("data.sample_length", data["sample_length"], 2, optional=True)
        at_least("data.start_step", data["start_step"], 0)


def check_train(t: dict[str, Any]) -> None:
    for key in ("seq_len", "global_batch", "micro_batch", "keep_last", "log_every"):
        at_least(f"train.{key}", t[key], 1)
    at_least("train.checkpoint_every", t["checkpoint_every"], 1, optional=True)
    for key in ("max_steps", "max_tokens"):
        at_least(f"train.{key}", t[key], 1, optional=True)
    auto_or_positive("train.lr", t["lr"], optional=False)
    auto_or_positive("train.batch_tokens", t["batch_tokens"], optional=True)
    require(0 <= t["min_lr_ratio"] <= 1, "train.min_lr_ratio", t["min_lr_ratio"], "expected a number in [0, 1]")
    for key in ("warmup_steps", "weight_decay", "grad_clip"):
        at_least(f"train.{key}", t[key], 0)
    require(len(t["betas"]) == 2 and all(0 <= b < 1 for b in t["betas"]), "train.betas", t["betas"],
            "expected [beta1, beta2] with 0 <= beta < 1")
    require(t["eps"] > 0, "train.eps", t["eps"], "expected a positive number")
    one_of("train.precision", t["precision"], PRECISIONS)
    one_of("train.keep_hf", t["keep_hf"], ("all", "last"))
    at_least("train.loss_chunk_tokens", t["loss_chunk_tokens"], 1, optional=True)
    require(t["gpu_memory_gb"] is None or (_number(t["gpu_memory_gb"]) and t["gpu_memory_gb"] > 0),
            "train.gpu_memory_gb", t["gpu_memory_gb"], "expected a positive number of GiB or null")


def check_deepspeed(ds: dict[str, Any]) -> None:
    one_of("deepspeed.zero_stage", ds["zero_stage"], (0, 1, 2, 3))
    user_json = ds["user_json"]
    if user_json is None:
        return
    path = Path(str(user_json))
    require(path.is_file(), "deepspeed.user_json", user_json, "no such file")
    try:
        json.loads(path.read_text())
    except ValueError as e:
        raise ConfigError(f"deepspeed.user_json={user_json}: not valid JSON ({e})") from None


def check_audit(node, a: dict[str, Any]) -> None:
    from audit.detectors import get_detector

    for name in a["detectors"]:
        get_detector(str(name), node.get(str(name)))  # unknown names and each detector's own checks
    spec = a["checkpoints"]
    steps = spec if isinstance(spec, list) else [spec]
    ok = spec in ("all", "last") or all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps)
    require(ok, "audit.checkpoints", spec, "expected all, last, a step or a list of steps")
    from audit.model import PRECISIONS as AUDIT_PRECISIONS

    one_of("audit.precision", a["precision"], AUDIT_PRECISIONS)
    require(re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(a["device"])) is not None, "audit.device", a["device"],
            "choose one of: auto, cpu, cuda (or cuda:<index>)")
    for key in ("token_budget", "context", "stride", "chunk_tokens"):
        at_least(f"audit.{key}", a[key], 1)
    require(a["poll_s"] > 0, "audit.poll_s", a["poll_s"], "expected a positive number of seconds")
    require(a["watch_idle_s"] > 0, "audit.watch_idle_s", a["watch_idle_s"], "expected a positive number of seconds")
    at_least("audit.limit", a["limit"], 1, optional=True)
    at_least("audit.null_check.draws", a["null_check"]["draws"], 0)
    one_of("audit.null_check.checkpoints", a["null_check"]["checkpoints"], ("last", "all"))
    ref = a.get("reference_model")
    require(ref is None or not (str(ref).startswith("step_") and a["model"]), "audit.reference_model", ref,
            "a step_<N> reference is a checkpoint of a run; with audit.model give a hub id or model directory")


def check_launcher(lc: dict[str, Any]) -> None:
    one_of("launcher.kind", lc["kind"], LAUNCHERS)
    at_least("launcher.nproc_per_node", lc["nproc_per_node"], 1)
    at_least("launcher.num_nodes", lc["num_nodes"], 1)
    require(0 <= lc["node_rank"] < lc["num_nodes"], "launcher.node_rank", lc["node_rank"],
            f"expected 0 <= node_rank < launcher.num_nodes ({lc['num_nodes']})")
    port = lc["master_port"]
    require(port is None or 0 < port < 65536, "launcher.master_port", port, "expected a port in 1..65535 or null")
