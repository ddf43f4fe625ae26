"""Activation checkpointing and the chunked loss against the plain HF loss (CPU, fp32):
the same loss and the same gradients, to 1e-5 relative (summation order only)."""
from __future__ import annotations

import pytest
import torch

from core.config import TrainConfig
from core.errors import SpikeinError
from train.loss import use_chunked_loss
from train.model import prepare_for_training

TOL = dict(rtol=1e-5, atol=1e-6)


def tiny(dropout: float = 0.0, tied: bool = False, seed: int = 0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tied,
                      attention_dropout=dropout)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).train()


def loss_and_grads(model, x):
    model.zero_grad()
    loss = model(input_ids=x, labels=x, use_cache=False).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("train_cfg", [
    TrainConfig(loss_chunk_tokens=7),  # chunks that split sequences mid-way, a short last one
    TrainConfig(loss_chunk_tokens=10_000),  # one chunk
    TrainConfig(activation_checkpointing=True),
    TrainConfig(activation_checkpointing=True, loss_chunk_tokens=16),
])
def test_same_loss_and_gradients_as_the_plain_path(train_cfg, tied):
    x = torch.randint(0, 97, (3, 20), generator=torch.Generator().manual_seed(1))
    ref_loss, ref_grads = loss_and_grads(tiny(tied=tied), x)
    model = tiny(tied=tied)
    prepare_for_training(model, train_cfg)
    loss, grads = loss_and_grads(model, x)
    torch.testing.assert_close(loss, ref_loss, **TOL)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **TOL, msg=name)


def test_chunked_loss_never_builds_the_whole_logits_tensor():
    """The head sees at most chunk_tokens rows per call, forward and backward (recomputed)."""
    model = tiny()
    use_chunked_loss(model, 8)
    rows = []
    model.get_output_embeddings().register_forward_hook(lambda m, inp, out: rows.append(out.shape[0]))
    x = torch.randint(0, 97, (2, 30))
    model(input_ids=x, labels=x).loss.backward()
    assert max(rows) <= 8 and sum(rows) == 2 * 2 * 29  # every shifted position twice: forward + recompute


def test_models_that_scale_their_logits_are_refused():
    model = tiny()
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(SpikeinError, match="train.loss_chunk_tokens: llama scales its logits"):
        use_chunked_loss(model, 8)


def test_pretrained_models_train_in_train_mode(tmp_path):
    from core.config import ModelConfig
    from train.model import build_model

    tiny().save_pretrained(tmp_path)
    model = build_model(ModelConfig(name="m", pretrained=str(tmp_path)), tiny().config, seed=0)
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.parametrize("chunk", [None, 5])
def test_a_row_one_token_past_the_positions_trains_on_the_same_targets(chunk):
    """Pythia's 2049-token rows on a 2048-position model: the model reads 2048 tokens and the
    last token is only a label; the targets (and, causal, the loss) are the plain path's on
    the whole row."""
    from train.loop import _loss
    from train.model import check_seq_len, label_only_last

    model = tiny()
    positions = model.config.max_position_embeddings
    check_seq_len(model.config, positions + 1)
    with pytest.raises(SpikeinError, match=f"exceeds the model's maximum of {positions} positions"):
        check_seq_len(model.config, positions + 2)
    assert label_only_last(model.config, positions + 1) and not label_only_last(model.config, positions)
    x = torch.randint(0, 97, (2, positions + 1))
    plain = model(input_ids=x, labels=x, use_cache=False).loss  # rope: reading 65 tokens is possible here
    if chunk:
        use_chunked_loss(model, chunk)
    torch.testing.assert_close(_loss(model, x, True), plain, **TOL)
