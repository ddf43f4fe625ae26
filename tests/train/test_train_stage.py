"""`spikein train` checks that run before any worker: each a one-line error, nothing launched."""
from __future__ import annotations

import json

import pytest
from conftest import make_tokenizer
from train_fixtures import make_run, train_overrides

from core.budget import step_law_batch_tokens, step_law_lr
from core.errors import SpikeinError
from launch.cli import main as cli_main
from launch.config import compose
from train.settings import save_settings
from train.stage import check_previous_run, plan_training, run_train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stage") / "run"
    make_run(run_dir, n_tokens=8192)
    return run_dir


def cfg(run_dir, *extra):
    return compose(train_overrides(run_dir, *extra))


def test_dry_run_prints_the_step_law_plan_and_writes_nothing(run, capsys):
    assert run_train(cfg(run, "train.lr=auto", "train.batch_tokens=auto", "train.max_tokens=1000000",
                         "dry_run=true")) == 0
    out = capsys.readouterr().out
    settings, _ = plan_training(cfg(run, "train.lr=auto", "train.batch_tokens=auto", "train.max_tokens=1000000"))
    d = settings.max_steps * settings.tokens_per_step
    assert settings.lr == pytest.approx(step_law_lr(settings.n_params, d))
    assert abs(settings.global_batch * 32 - step_law_batch_tokens(10**6)) <= 32 * 2
    assert "Step Law" in out and f"lr {settings.lr:.3g}" in out and "dry run" in out
    assert not (run / "train").exists() and not (run / "checkpoints").exists()


def test_non_embedding_params_exclude_the_tied_embedding(run):
    settings, manifest = plan_training(cfg(run))
    d, inter, layers = 32, 64, 2
    per_layer = 4 * d * d + 3 * d * inter + 2 * d  # attention, SwiGLU MLP, two norms
    assert settings.n_params == layers * per_layer + d  # + final norm
    assert settings.model.config["hidden_size"] == 32 and manifest.vocab_size == 300


def _error(run_dir, *extra) -> str:
    with pytest.raises(SpikeinError) as e:
        plan_training(cfg(run_dir, *extra))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_missing_or_truncated_stream(tmp_path, run):
    assert "no manifest" in _error(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    make_run(bad, n_tokens=1000)
    stream = bad / "data" / "stream.bin"
    stream.write_bytes(stream.read_bytes()[:-10])
    assert "holds 995 tokens but manifest says 1000" in _error(bad)
    stream.unlink()
    assert "missing stream" in _error(bad)


def test_bad_model_and_sizes(run):
    assert "cannot load model '/no/such/model'" in _error(run, "model.pretrained=/no/such/model")
    assert "train.seq_len=128 exceeds the model's maximum of 64 positions" in _error(run, "train.seq_len=128")
    assert "not a multiple of micro_batch x world size (4 x 1 = 4)" in _error(
        run, "train.micro_batch=4", "train.global_batch=6")


def test_checkpoint_steps_join_checkpoint_every_and_must_lie_inside_the_run(run):
    settings, _ = plan_training(cfg(run, "train.max_steps=20", "train.checkpoint_every=8",
                                    "train.checkpoint_steps=[1,4,16,2]"))
    assert settings.checkpoint_steps() == [1, 2, 4, 8, 16, 20]
    assert "train.checkpoint_steps [32] lie outside the run's steps 1..20" in _error(
        run, "train.max_steps=20", "train.checkpoint_steps=[4,32]")
    assert "train.checkpoint_steps=4: expected a list" in _error(run, "train.checkpoint_steps=4")


def test_copies_past_the_last_step_are_refused_or_with_a_flag_warned_about(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_run(run_dir, n_tokens=2048, copies=[("p1", 100, 120), ("p1", 1500, 1520)])
    msg = _error(run_dir, "train.max_steps=4")  # 512 tokens: the second copy is never reached
    assert "1 of 2 copies lie past the 512 tokens training consumes" in msg and "allow_untrained_copies" in msg
    plan_training(cfg(run_dir, "train.max_steps=4", "inject.allow_untrained_copies=true"))
    assert "train: warning: 1 of 2 copies" in capsys.readouterr().out
    plan_training(cfg(run_dir, "train.max_steps=12"))


def test_pretrained_model_with_another_tokenizer_is_refused(tmp_path, run):
    from transformers import GPT2Config, GPT2LMHeadModel

    other = tmp_path / "model"
    tok = make_tokenizer(other, vocab_size=280, seed=5)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(other)
    msg = _error(run, f"model.pretrained={other}")
    assert "differs from the one the stream was built with" in msg
    assert "has 280 embedding rows" in _error(run, f"model.pretrained={other}", f"model.tokenizer={run}/data/tokenizer")


def test_checkpoints_of_another_config_are_refused_unless_overwrite(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_run(run_dir, n_tokens=2048)
    old, _ = plan_training(cfg(run_dir, "train.lr=1e-3"))
    save_settings(old)
    index = {"checkpoints": [{"step": 4, "tokens_seen": 512, "epochs": 0.25, "hf": "step_4/hf", "ds": "step_4/ds"}],
             "finished": True, "seq_len": 32, "global_batch": 4, "tokens_per_step": 128}
    (run_dir / "checkpoints" / "step_4").mkdir(parents=True)
    (run_dir / "checkpoints" / "index.json").write_text(json.dumps(index))
    new, _ = plan_training(cfg(run_dir, "train.lr=2e-3"))
    with pytest.raises(SpikeinError, match=r"different train config \(changed: lr, train.lr\)"):
        check_previous_run(new, overwrite=False)
    # the CLI turns it into one line and exit code 2, before launching anything
    assert cli_main(["train", *train_overrides(run_dir, "train.lr=2e-3")]) == 2
    assert "spikein: error:" in capsys.readouterr().err
    same, _ = plan_training(cfg(run_dir, "train.lr=1e-3", "train.log_every=5"))
    assert check_previous_run(same, overwrite=False) is False  # not finished: only 4 of 64 steps
    assert check_previous_run(new, overwrite=True) is False
    assert not (run_dir / "checkpoints").exists() and (run_dir / "data" / "stream.bin").exists()


def test_tiny_configs_compose():
    expected = {  # model, seq_len, launcher, ZeRO stage: each option's own values arrive
        ("model=tiny_gpt2",): ("tiny_gpt2", 256, "local", 0),
        ("model=llama_160m", "train=gpu", "deepspeed=zero2_gpu"): ("llama_160m", 2048, "local", 2),
        ("model=pythia-160m",): ("pythia-160m", 256, "local", 0),
        ("launcher=torchrun",): ("tiny_llama", 256, "torchrun", 0),
        ("launcher=slurm",): ("tiny_llama", 256, "srun", 0),
        ("deepspeed=zero3_gpu",): ("tiny_llama", 256, "local", 3),
    }
    for extra, want in expected.items():
        c = compose(list(extra))
        assert (c.model.name, c.train.seq_len, c.launcher.kind, c.deepspeed.zero_stage) == want, extra
    assert compose(["model=qwen2.5-0.5b"]).model.pretrained == "Qwen/Qwen2.5-0.5B"
