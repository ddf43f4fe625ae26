"""A real pretrained model (SmolLM2-135M, tests/real_model.py) through the stages a researcher runs.

Continual pretraining on Gutenberg with an injected ARC partition, the HF export round trip, and
a public-model audit by every detector. Sizes are tiny: 135M parameters train at tens of tokens/s
on 2 CPU cores.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, require_shared, shared_data
from real_model import smollm2  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[2]
GUTENBERG = SHARED_DATA / "corpus" / "gutenberg"
WIKITEXT = SHARED_DATA / "corpus" / "wikitext-2" / "wiki.test.tokens"
ARC = SHARED_DATA / "benchmarks" / "arc_challenge" / "ARC-Challenge-Test.jsonl"
needs_shared = shared_data(ARC)  # skipped without ../shared/data; under $CI a failure


def spikein(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)


def test_transformers_floor_is_the_major_version_tested():
    """Exports written by transformers 5 are misread by 4.x, so the declared range must exclude it."""
    import transformers
    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = re.search(r"dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S).group(1)
    spec = next(Requirement(d) for d in re.findall(r'"([^"]+)"', deps) if d.startswith("transformers")).specifier
    installed = Version(transformers.__version__)
    assert installed in spec
    floor = min(Version(s.version) for s in spec if s.operator in (">=", ">", "=="))
    assert floor.major == installed.major, f"tests run transformers {installed}, pyproject allows {spec}"
    assert Version("4.57") not in spec


def test_missing_model_package_skips_locally_and_fails_under_ci(monkeypatch):
    import real_model

    monkeypatch.setattr(real_model, "DIST", "no-such-distribution-spikein")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        real_model.smollm2_dir()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        real_model.smollm2_dir()


# --- continual pretraining ----------------------------------------------------------

def cpt_args(run_dir: Path, model_dir: Path) -> list[str]:
    """One Gutenberg excerpt, one ARC item injected 6 times and one control; ~10 steps of 64 tokens."""
    return [
        f"run_dir={run_dir}", "experiment=local_text", "model=smollm2-135m", f"model.pretrained={model_dir}",
        "train=pretrained", f"data.paths=[{GUTENBERG}]", "data.max_documents=1", "data.max_doc_chars=1500",
        f"benchmarks.mine.path={ARC}", "inject.counts=[0,6]", "inject.partition_size=1",
        "inject.max_injected_share=0.5", "inject.workers=1",
        "train.seq_len=32", "train.global_batch=2", "train.micro_batch=2", "train.log_every=1",
        "train.keep_last=1",
    ]


@pytest.fixture(scope="module")
def cpt_run(smollm2, tmp_path_factory):  # noqa: F811
    require_shared(ARC)
    run_dir = tmp_path_factory.mktemp("cpt") / "run"
    for stage in ("inject", "train"):
        r = spikein(stage, *cpt_args(run_dir, smollm2))
        assert r.returncode == 0, r.stderr[-3000:]
    return run_dir


def load(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@torch.no_grad()
def nll(model, ids: list[int]) -> float:
    """Mean next-token loss (nats/token) of one token sequence."""
    x = torch.tensor([ids])
    return float(model(x, labels=x).loss)


def checkpoints(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "checkpoints" / "index.json").read_text())["checkpoints"]


def copy_tokens(run_dir: Path) -> list[int]:
    """The tokens of the first injected copy, read back from the stream at the manifest's offsets."""
    from inject.manifest import load_manifest

    manifest = load_manifest(run_dir)
    stream = np.fromfile(run_dir / "data" / "stream.bin", dtype=manifest.dtype)
    c = min((c for c in manifest.copies if c.partition == "x6"), key=lambda c: c.start)
    return stream[c.start:c.end].tolist()


def held_out_tokens(tokenizer_dir: Path, n: int = 128) -> list[int]:
    from transformers import AutoTokenizer

    text = WIKITEXT.read_text(encoding="utf-8")[:4000]
    return AutoTokenizer.from_pretrained(tokenizer_dir)(text).input_ids[:n]


@pytest.mark.slow
@needs_shared
def test_continual_pretraining_learns_the_injected_copy(cpt_run):
    ckpts = checkpoints(cpt_run)
    assert ckpts[0]["step"] == 0 and ckpts[-1]["step"] >= 8
    first, last = (load(cpt_run / "checkpoints" / c["hf"]) for c in (ckpts[0], ckpts[-1]))
    copy, held = copy_tokens(cpt_run), held_out_tokens(cpt_run / "data" / "tokenizer")
    before, after = nll(first, copy), nll(last, copy)
    print(f"injected copy {before:.3f} -> {after:.3f}; held-out {nll(first, held):.3f} -> {nll(last, held):.3f}")
    assert after < before - 0.25, "6 copies of an item did not lower its loss"
    assert nll(last, held) < nll(first, held) + 0.2, "continual pretraining wrecked the model on unseen text"
    metrics = [json.loads(line) for line in (cpt_run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["loss"] < 6, "a pretrained start begins near its own loss, not at ln(vocab) = 10.8"


@pytest.mark.slow
@needs_shared
def test_hf_export_round_trips_the_source_model(cpt_run, smollm2):  # noqa: F811
    """step_0 is the source model after DeepSpeed: same config, same tokenizer, same scores."""
    from transformers import AutoConfig, AutoTokenizer

    export = cpt_run / "checkpoints" / checkpoints(cpt_run)[0]["hf"]
    src_cfg, exp_cfg = AutoConfig.from_pretrained(smollm2), AutoConfig.from_pretrained(export)
    assert exp_cfg.rope_parameters["rope_theta"] == src_cfg.rope_parameters["rope_theta"] == 100000.0
    for key in ("num_hidden_layers", "num_key_value_heads", "hidden_size", "rms_norm_eps", "tie_word_embeddings",
                "max_position_embeddings", "vocab_size", "bos_token_id", "eos_token_id"):
        assert getattr(exp_cfg, key) == getattr(src_cfg, key), key
    text = "Which gas do plants absorb from the air? A. oxygen B. carbon dioxide Answer: B"
    ids = AutoTokenizer.from_pretrained(export)(text).input_ids
    assert ids == AutoTokenizer.from_pretrained(smollm2)(text).input_ids
    with torch.no_grad():
        a, b = load(smollm2)(torch.tensor([ids])).logits, load(export)(torch.tensor([ids])).logits
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


# --- auditing a public model -----------------------------------------------------

@pytest.mark.slow
@needs_shared
def test_public_model_audit_by_every_detector(smollm2, tmp_path):  # noqa: F811
    from audit.results import read_rows
    from core.run_dir import RunDir

    run_dir = tmp_path / "audit"
    r = spikein("audit", f"model={smollm2}", "benchmarks=arc_local", "benchmark=arc_challenge",
                f"benchmarks.arc_challenge.path={ARC}", "audit.limit=4", f"run_dir={run_dir}",
                "audit.detectors=[ordering,option_shuffle,accuracy]", "audit.ordering.shards=2",
                "audit.ordering.permutations=3", "audit.progress=false", "logger.mode=disabled")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_rows(RunDir(run_dir).results)
    assert {row["detector"] for row in rows} >= {"ordering", "option_shuffle", "accuracy"}
    assert all(row["benchmark"] == "arc_challenge" and row["n_items"] == 4 for row in rows)
    assert all(row.get("experiment") == f"audit-{smollm2.name}" for row in rows)  # no demo recipe
    for row in rows:
        if row.get("p") is not None:
            assert 0 < row["p"] <= 1, row
