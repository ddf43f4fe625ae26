import time

import pytest
from user_env_fixtures import FAKE_KEY, wandb_down_env

from core.wandb_log import redact, wandb_mode


def test_redact_removes_credentials_but_not_token_settings():
    cfg = {"logger": {"api_key": "sk-1", "WANDB_API_KEY": "x"}, "hub": {"hf_token": "hf_x", "password": "p"},
           "model": {"tokenizer": "gpt2"}, "train": {"max_tokens": 10, "batch_tokens": None},
           "audit": {"token_budget": 8192}, "list": [{"secret": "s"}]}
    out = redact(cfg)
    assert out["logger"] == {"api_key": "<redacted>", "WANDB_API_KEY": "<redacted>"}
    assert out["hub"] == {"hf_token": "<redacted>", "password": "<redacted>"}
    assert out["list"] == [{"secret": "<redacted>"}]
    assert out["model"]["tokenizer"] == "gpt2" and out["train"]["max_tokens"] == 10
    assert out["audit"]["token_budget"] == 8192 and out["train"]["batch_tokens"] is None


def test_mode_defaults_to_offline(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode({"mode": None}) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode({"mode": None}) == "disabled"
    assert wandb_mode({"mode": "online"}) == "online"


@pytest.mark.slow
def test_wandb_init_timeout_and_bad_key_give_an_offline_run(tmp_path, monkeypatch, capsys):
    """Each command (session) tries online once: a later stage of the same command goes
    offline at once and says nothing more; the next command tries again."""
    from core.wandb_log import SESSION_ENV, init_wandb

    for key, value in wandb_down_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for session, missing_key, warns in [("a", False, 1), ("a", False, 0), ("b", True, 1)]:
        monkeypatch.setenv(SESSION_ENV, session)
        if missing_key:
            monkeypatch.delenv("WANDB_API_KEY")
        t0 = time.time()
        run = init_wandb({"mode": None, "init_timeout_s": 3}, run_dir=str(tmp_path), job_type="t",
                         config={"logger": {"api_key": FAKE_KEY}})
        run.log({"x": 1.0}, step=1)
        run.finish()
        assert run.active and run.run.settings.mode == "offline" and time.time() - t0 < 30
        err = capsys.readouterr().err
        assert err.count("W&B: online start failed") == warns and ("logging offline" in err) == bool(warns), err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_disabled_wandb_is_a_null_run_callers_use_as_is():
    from core.wandb_log import NullRun, init_wandb

    run = init_wandb({"mode": "disabled"}, run_dir="/nonexistent", job_type="t", config={})
    assert isinstance(run, NullRun) and not run.active
    run.define_metric("a/*", step_metric="a/step")
    run.log({"a/x": 1}, step=3)
    run.finish()
