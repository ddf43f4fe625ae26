"""Real DeepSpeed runs on CPU (gloo, fp32, tiny models): one process, torchrun ZeRO-2/3, kill + resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tokenizer
from train_fixtures import VOCAB, ds_state_dict, make_run, read_jsonl, train_overrides, weights_hash

from core.run_dir import RunDir
from inject.stage import run_inject
from launch.config import compose
from train.stage import run_train

REPO = Path(__file__).resolve().parents[2]
TPS = 4 * 32  # tokens per step of train_overrides: 4 sequences of 32 tokens
COPIES = [("p1", 40, 60), ("p4", 300, 330), ("p4", 520, 540), ("p4", 900, 920), ("p4", 1000, 1010)]


@pytest.fixture(autouse=True)
def no_shm_left_behind():
    """DeepSpeed's CPU shared-memory all-reduce must stay off: nothing new in /dev/shm."""
    before = set(Path("/dev/shm").glob("deepspeed*"))
    yield
    assert set(Path("/dev/shm").glob("deepspeed*")) <= before


def _logits_agree(hf_dir: Path, ds_dir: Path) -> None:
    """The HF export loads (model and tokenizer) and computes what the engine's weights compute."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    exported = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    engine_weights = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    state = ds_state_dict(ds_dir)
    missing, unexpected = engine_weights.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embedding
    ids = torch.tensor([tok("the river stone garden window")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(exported(ids).logits, engine_weights(ids).logits)
    assert any(not torch.equal(v, exported.state_dict()[k]) for k, v in _initial(hf_dir).items())


def _initial(hf_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(hf_dir.parent.parent / "step_0" / "hf" / "model.safetensors"))


@pytest.mark.slow
def test_one_process_run_logs_copies_seen_and_exports(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run, n_tokens=4096, copies=COPIES)
    assert run_train(compose(train_overrides(run, "train.max_steps=9", "train.checkpoint_every=4"))) == 0
    rows = read_jsonl(run / "train" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 10))
    for r in rows:  # a copy counts once the step holding its offset is done
        for part in ("p1", "p4"):
            want = sum(1 for name, start, _ in COPIES if name == part and start // TPS < r["step"])
            assert r["copies_seen"][f"synth/{part}"] == want, (r["step"], part)
        assert r["copies_seen"]["synth/p0"] == 0
        assert r["tokens_seen"] == r["step"] * TPS and r["epoch"] == pytest.approx(r["step"] * TPS / 4096)
        assert r["grad_norm"] > 0 and r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 and r["lr"] > 0
    assert [r["copies_seen"]["synth/p4"] for r in rows] == [0, 0, 1, 1, 2, 2, 2, 4, 4]
    index = RunDir(run).read_index()
    assert index.finished and index.tokens_per_step == TPS
    assert [(c.step, c.ds) for c in index.checkpoints] == [
        (0, None), (4, None), (8, "step_8/ds"), (9, "step_9/ds")]  # step 0: initial weights, HF only
    assert not (run / "checkpoints" / "step_4" / "ds").exists()  # keep_last=2
    _logits_agree(run / "checkpoints" / "step_9" / "hf", run / "checkpoints" / "step_9" / "ds")
    capsys.readouterr()
    assert run_train(compose(train_overrides(run, "train.max_steps=9", "train.checkpoint_every=4"))) == 0
    assert "already hold the finished run" in capsys.readouterr().out


@pytest.mark.slow
def test_continual_pretraining_from_a_saved_model_learns_a_repeated_batch(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    run = tmp_path / "run"
    make_run(run, n_tokens=TPS, pattern=list(range(3, 40)))  # one batch: every step repeats it
    model_dir = tmp_path / "gpt2"
    tok = make_tokenizer(model_dir, vocab_size=VOCAB)  # the same tokenizer the stream was built with
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(model_dir)
    cfg = compose(train_overrides(run, "train.max_steps=8", "train.lr=1e-2", "train.checkpoint_every=100",
                                  model=["model=tiny_gpt2", f"model.pretrained={model_dir}"]))
    assert run_train(cfg) == 0
    losses = [r["loss"] for r in read_jsonl(run / "train" / "metrics.jsonl")]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.8 * losses[0]
    rows = read_jsonl(run / "train" / "metrics.jsonl")
    assert rows[-1]["epoch"] == 8.0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step_8" / "hf").config.model_type == "gpt2"


def _zero_overrides(run: Path, stage: int, *extra: str) -> list[str]:
    return train_overrides(run, "launcher=torchrun", "launcher.nproc_per_node=2", f"deepspeed=zero{stage}_cpu",
                           "train.global_batch=4", "train.micro_batch=1",
                           "inject.allow_untrained_copies=true",  # short runs over a fake stream: ZeRO is tested here
                           *extra)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_torchrun_two_ranks_zero(tmp_path, stage, monkeypatch):
    monkeypatch.setenv("LOCAL_SIZE", "2")  # as the deepspeed launcher sets it: the shm all-reduce must stay off
    run = tmp_path / "run"
    make_run(run, n_tokens=4096, copies=COPIES)
    assert run_train(compose(_zero_overrides(run, stage, "train.max_steps=6", "train.checkpoint_every=3"))) == 0
    rows = read_jsonl(run / "train" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(r["grad_norm"] > 0 for r in rows)
    ds_files = {p.name for p in (run / "checkpoints" / "step_6" / "ds").iterdir()}
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= ds_files
    _logits_agree(run / "checkpoints" / "step_6" / "hf", run / "checkpoints" / "step_6" / "ds")
    assert "checkpoint step_6" in (run / "train" / "logs" / "rank1.log").read_text()
    assert not list((run / "train" / "logs").glob("*.error"))


KILL_ARGS = ("train.max_steps=30", "train.checkpoint_every=6", "train.keep_last=1")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("kill") / "reference"
    make_run(run, n_tokens=4096)
    assert run_train(compose(_zero_overrides(run, 2, *KILL_ARGS))) == 0
    return run


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_gives_identical_weights(tmp_path, uninterrupted):
    run = tmp_path / "run"
    make_run(run, n_tokens=4096)
    args = _zero_overrides(run, 2, *KILL_ARGS, "launcher=local")
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "train", *args], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            index = RunDir(run).read_index()
            if index and any(c.step >= 6 for c in index.checkpoints):
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the stage and both ranks, mid-training
        proc.wait()
    index = RunDir(run).read_index()
    assert not index.finished and index.last_step < 30
    assert run_train(compose(args)) == 0  # the same command again resumes
    assert "resuming from step" in (run / "train" / "logs" / "rank0.log").read_text()
    final = run / "checkpoints" / "step_30" / "hf"
    assert weights_hash(final) == weights_hash(uninterrupted / "checkpoints" / "step_30" / "hf")
    losses = [(r["step"], r["loss"]) for r in read_jsonl(run / "train" / "metrics.jsonl")]
    assert losses == [(r["step"], r["loss"]) for r in read_jsonl(uninterrupted / "train" / "metrics.jsonl")]


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    """A real inject stage (toy corpus and benchmark, copies late in the stream), sized for
    the train geometry of ``train_overrides``: 4 x 32 tokens per step."""
    from tests.inject_fixtures import inject_config

    tmp = tmp_path_factory.mktemp("epochs")
    cfg = inject_config(tmp, *train_overrides(tmp / "run", "train.checkpoint_every=1000", "train.log_every=10"),
                        "inject.window=[0.9,1.0]", corpus_docs=40)
    run_inject(cfg)
    return cfg


def _final_exposures(run: Path) -> tuple[dict, dict]:
    from inject.manifest import load_manifest

    entry = RunDir(run).read_index().checkpoints[-1]
    return {"step": entry.step, **entry.exposure}, load_manifest(run).copies_seen(entry.tokens_seen)


@pytest.mark.slow
def test_one_epoch_run_trains_on_every_copy(injected):
    run = Path(injected.run_dir)
    assert run_train(injected) == 0
    from inject.manifest import load_manifest

    m = load_manifest(run)
    assert m.tokens_per_step == TPS and m.n_tokens % TPS  # a partial last batch, dropped by training
    entry, seen = _final_exposures(run)
    assert entry["step"] == m.n_tokens // TPS and max(c.end for c in m.copies) > 0.9 * m.epoch_tokens
    for p in m.partitions:  # the final checkpoint has seen every copy
        assert seen[(p.benchmark, p.name)] == p.count, p.name
        assert entry["copies_seen_by_epoch"][f"toy/{p.name}"] == [p.count]
        last = entry["last_exposure_step"][f"toy/{p.name}"]
        want = max((-(-c.end // TPS) for c in m.copies_of("toy", p.name)), default=None)
        assert last == want and (last is None) == (p.count == 0)
    row = read_jsonl(run / "train" / "metrics.jsonl")[-1]
    assert row["copies_seen"] == {f"toy/{p.name}": p.count for p in m.partitions}


@pytest.mark.slow
def test_more_epochs_count_exposures_per_epoch(tmp_path):
    run = tmp_path / "run"
    make_run(run, n_tokens=600, copies=[("p2", 100, 140), ("p2", 500, 540)])
    # 12 steps = 1,536 tokens = 2.56 epochs: both copies twice, then the first once more
    assert run_train(compose(train_overrides(run, "train.max_steps=12", "train.checkpoint_every=1000"))) == 0
    entry, seen = _final_exposures(run)
    row = read_jsonl(run / "train" / "metrics.jsonl")[-1]
    assert seen[("synth", "p2")] == row["copies_seen"]["synth/p2"] == 5
    assert entry["copies_seen_by_epoch"]["synth/p2"] == row["copies_seen_by_epoch"]["synth/p2"] == [2, 2, 1]
    assert row["copies_seen_by_epoch"]["synth/p0"] == [0, 0, 0]
    assert row["last_exposure_step"]["synth/p2"] == -(-(2 * 600 + 140) // TPS) == 11  # epoch 3's first copy
    assert row["last_exposure_step"]["synth/p0"] is None


@pytest.mark.slow
def test_explicit_checkpoint_steps_and_exact_resume_from_one(tmp_path):
    import shutil

    run = tmp_path / "run"
    make_run(run, n_tokens=4096, copies=COPIES)
    args = ("train.max_steps=12", "train.checkpoint_every=100", "train.checkpoint_steps=[1,2,4,8]", "train.keep_last=10")
    assert run_train(compose(train_overrides(run, *args))) == 0
    index = RunDir(run).read_index()
    assert [c.step for c in index.checkpoints] == [0, 1, 2, 4, 8, 12]
    assert [c.exposure["last_exposure_step"]["synth/p4"] for c in index.checkpoints] == [None, None, None, 3, 8, 8]
    # as if killed after step_4: the later checkpoints never written
    again = tmp_path / "again"
    shutil.copytree(run, again)
    RunDir(again).write_index(index.up_to(4))
    for step in (8, 12):
        shutil.rmtree(again / "checkpoints" / f"step_{step}")
    assert run_train(compose(train_overrides(again, *args))) == 0
    assert "resuming from step 4" in (again / "train" / "logs" / "rank0.log").read_text()
    assert weights_hash(again / "checkpoints" / "step_12" / "hf") == weights_hash(run / "checkpoints" / "step_12" / "hf")
    losses = [(r["step"], r["loss"]) for r in read_jsonl(again / "train" / "metrics.jsonl")]
    assert losses == [(r["step"], r["loss"]) for r in read_jsonl(run / "train" / "metrics.jsonl")]
