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
