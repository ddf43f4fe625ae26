"""Loading a model to score with: a run's checkpoint export or any HF model (hub id or dir)."""
from __future__ import annotations

import functools
import inspect
import os
import re

import torch

from core.checks import choices
from core.config import AuditPrecision
from core.errors import EnvironmentProblem, SpikeinError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "mixed": torch.bfloat16, "amp": torch.float32}
# mixed: bf16 body, fp32 final norm + output head; amp: fp32 weights and residual stream, bf16
# matmuls under autocast, fp32 output head (+ fp32 log-softmax, always)
PRECISIONS = choices(AuditPrecision)
assert tuple(DTYPES) == PRECISIONS, "DTYPES must cover exactly the AuditPrecision choices"
FINAL_NORMS = ("norm", "final_layer_norm", "ln_f", "final_layernorm")  # Llama/Qwen, NeoX/OPT, GPT-2, Phi
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")  # "name" or "org/name"


def check_source(source: str, key: str = "audit.model") -> str:
    """A local model directory or something shaped like a hub id, else one line naming ``key``."""
    if os.path.isdir(source):
        return source
    if os.path.exists(source):
        raise EnvironmentProblem(f"{key}={source} is a file; give a model directory or a hub id")
    if source.startswith(("/", ".", "~")) or not HUB_ID.fullmatch(source):
        raise EnvironmentProblem(f"{key}={source}: no such directory or hub id")
    return source


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: this rank's GPU when there is one, else the CPU; ``cuda``: this rank's GPU
    (LOCAL_RANK modulo the visible devices, as :func:`collective.maybe_init` set it);
    ``cuda:<i>``: that GPU (one process)."""
    from core.workers.collective import local_device_index

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise EnvironmentProblem(f"audit.device={name} but no GPU is visible")
        if name == "cuda":
            return torch.device("cuda", local_device_index())
        index = name.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise EnvironmentProblem(f"audit.device={name}: {torch.cuda.device_count()} GPU(s) visible "
                                     f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return torch.device("cuda", int(index))
    raise EnvironmentProblem(f"audit.device={name!r}: choose auto, cpu, cuda or cuda:<index>")


def torch_dtype(precision: str) -> torch.dtype:
    try:
        return DTYPES[precision]
    except KeyError:
        raise EnvironmentProblem(f"audit.precision={precision!r}: choose one of {', '.join(DTYPES)}") from None


def load_model(
    path: str, precision: str = "fp32", device: str | torch.device = "auto", trust_remote_code: bool = False
):
    """``AutoModelForCausalLM`` in eval mode on ``device``; any failure is one line naming ``path``."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one weight-loading bar per checkpoint is noise
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    check_source(path, key="checkpoint")
    dtype = torch.float32 if precision == "mixed" else torch_dtype(precision)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype
        )
    except SpikeinError:
        raise
    except Exception as e:  # noqa: BLE001 - every loader failure becomes one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise EnvironmentProblem(f"cannot load checkpoint {path}: {first}") from None
    if precision == "mixed":
        model = to_mixed(model)
    model = model.to(dev).eval()  # type: ignore[arg-type]  # (transformers types .to() for dtypes only)
    if precision == "amp":
        with_autocast(model, dev.type)
    return model


def with_autocast(model, device_type: str) -> None:
    """Every forward under bf16 autocast (matmuls in bf16 with fp32 accumulation; norms,
    softmax and the residual stream stay fp32), except the output head: fp32 logits."""
    import torch.nn.functional as F

    forward, head = model.forward, model.get_output_embeddings()

    @functools.wraps(forward)  # keeps the signature: cache_kwarg() reads it
    def autocast_forward(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    def fp32_head(x):
        with torch.autocast(device_type, enabled=False):
            return F.linear(x.float(), head.weight, head.bias)

    model.forward = autocast_forward
    head.forward = fp32_head


def to_mixed(model):
    """bf16 weights and activations except the final norm and the output head, which run in
    fp32 on fp32 input: the logits keep fp32 resolution. bf16 logits step by 0.06-0.125 at
    magnitudes 16-32, which moved successor-test p-values by up to 0.99 in log10 (BENCHMARKS.md);
    the head is a small share of the FLOPs. A tied head gets its own fp32 copy."""
    base = model.base_model
    norm = next((getattr(base, n) for n in FINAL_NORMS if isinstance(getattr(base, n, None), torch.nn.Module)), None)
    head = model.get_output_embeddings()
    if norm is None or not isinstance(head, torch.nn.Linear):
        raise EnvironmentProblem(f"audit.precision=mixed: no final norm or linear output head found in "
                                 f"{type(model).__name__}; use fp32 or bf16")
    head32 = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None, dtype=torch.float32)
    head32.load_state_dict({k: v.detach().clone() for k, v in head.state_dict().items()})
    model.to(torch.bfloat16)
    model.set_output_embeddings(head32)
    norm.float()
    norm.register_forward_pre_hook(lambda _m, args: (args[0].float(), *args[1:]))
    return model


def max_positions(model) -> int | None:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def cache_kwarg(model) -> str:
    """The forward keyword for a KV cache: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
