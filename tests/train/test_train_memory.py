"""The dry run's GPU memory estimate: its arithmetic on a Qwen2.5-0.5B plan, and its
agreement (within 20%) with the memory a training step of a tiny Llama really takes on CPU."""
from __future__ import annotations

import pytest

from train.memory import GIB, Shape, estimate

QWEN_05B = Shape(params=494_032_768, hidden=896, layers=24, intermediate=4864, kv_width=2 * 64, vocab=151_936)


def test_qwen_05b_on_8_gpus_arithmetic():
    """train=gpu (16 x 2048 per rank), bf16, ZeRO-2 on 8 ranks, by hand."""
    p = QWEN_05B.params
    e = estimate(QWEN_05B, seq_len=2048, micro_batch=16, precision="bf16", zero_stage=2, world_size=8,
                 checkpointing=False, loss_chunk_tokens=None)
    assert e.weights == 2 * p  # bf16 module weights, whole on every rank below ZeRO-3
    assert e.optimizer == (4 + 8) * p / 8  # fp32 masters + two Adam moments, partitioned
    assert e.gradients == 2 * p / 8 + 4 * p / 8  # bf16 grads partitioned (ZeRO-2) + fp32 accumulation
    tokens = 16 * 2048
    per_layer = 2 * (4 * 896 + 2 * 128 + 5.5 * 4864) + 8 * 896  # bf16 activations + fp32 norm inputs
    assert e.activations == tokens * (24 * per_layer + 2 * 2 * 896)
    assert e.activations_checkpointed == tokens * (24 * 2 * 896 + 2 * 2 * 896)
    assert e.logits == tokens * 151_936 * 16  # 74 GiB: HF's loss over the whole micro-batch
    assert e.peak / GIB > 80  # the finding: train=gpu on Qwen2.5-0.5B does not fit an 80 GB GPU
    chunked = estimate(QWEN_05B, seq_len=2048, micro_batch=16, precision="bf16", zero_stage=2, world_size=8,
                       checkpointing=True, loss_chunk_tokens=8192)
    assert chunked.logits == 8192 * 151_936 * 16
    assert chunked.peak / GIB < 30 and chunked.peak_if(False) > chunked.peak
    zero3 = estimate(QWEN_05B, seq_len=2048, micro_batch=16, precision="bf16", zero_stage=3, world_size=8,
                     checkpointing=True, loss_chunk_tokens=8192)
    assert zero3.weights == 2 * p / 8 and zero3.peak < chunked.peak


MEASURE = """
import sys, torch
from transformers import AutoModelForCausalLM, LlamaConfig
from core.config import TrainConfig
from train.memory import measure_cpu_peak
from train.model import prepare_for_training

checkpointing, chunk = sys.argv[1] == "True", (None if sys.argv[2] == "None" else int(sys.argv[2]))
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=4000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512)
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).train()
prepare_for_training(model, TrainConfig(activation_checkpointing=checkpointing, loss_chunk_tokens=chunk))
x = torch.randint(0, 4000, (8, 256), generator=torch.Generator().manual_seed(0))

def step():
    model(input_ids=x, labels=x, use_cache=False).loss.backward()
    model.zero_grad(set_to_none=True)

step()  # first-call allocations (kernels, caches) out of the way
print(sorted(measure_cpu_peak(step) for _ in range(3))[1], sum(p.numel() for p in model.parameters()))
print(cfg.to_json_string())
"""


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing, chunk", [(False, None), (False, 128), (True, None), (True, 128)])
def test_estimate_within_20_percent_of_a_cpu_measurement(checkpointing, chunk):
    """Forward + backward of one micro-batch (weights and optimizer state exist before it:
    compared without them), measured as the resident set's high-water mark in a fresh
    process (a long-lived one's allocator state moved the measurement by 40%, and the
    measurement's malloc settings stay out of the test process)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from transformers import LlamaConfig

    repo = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", MEASURE, str(checkpointing), str(chunk)], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(3)]
    runs = [p.communicate()[0].strip().splitlines() for p in procs]  # side by side: resident sets are per process
    assert all(p.returncode == 0 for p in procs)
    measured = sorted(int(out[0].split()[0]) for out in runs)[1]  # processes differ by up to 15%: the median
    out = runs[0]
    params = int(out[0].split()[1])
    config = LlamaConfig(**json.loads("\n".join(out[1:])))
    e = estimate(Shape.of(config, params), seq_len=256, micro_batch=8, precision="fp32", zero_stage=0,
                 world_size=1, checkpointing=checkpointing, loss_chunk_tokens=chunk)
    predicted = e.peak - e.weights - e.optimizer
    # checkpointing + the chunked loss has the smallest, noisiest peak: 110-144 MiB over fresh
    # processes of the same step (1.3x); the 20% holds for the other three plans
    tolerance = 0.3 if (checkpointing and chunk) else 0.2
    assert abs(predicted - measured) / measured < tolerance, (predicted / 2**20, measured / 2**20)
