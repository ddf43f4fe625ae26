"""Peak GPU memory per rank of a training plan, estimated before anything runs.

Components (bytes), with P parameters, W ranks, ZeRO stage z (DeepSpeed's layouts):
- weights: the module's copy, 4P (fp32) or 2P (bf16); ZeRO-3 partitions it (/W).
- optimizer: AdamW's two moments, plus bf16's fp32 master weights (4P + 8P); ZeRO >= 1
  partitions it. bf16 at ZeRO-0 has no master copy: moments in bf16 (4P).
- gradients: one per weight in the weights' dtype (ZeRO >= 2: /W), plus bf16's fp32
  accumulation buffer (ZeRO >= 1, partitioned: 4P/W; train/ds_config.py asks for it).
- activations: what autograd keeps per token per layer. Counted on torch's saved tensors
  (``saved_tensors_hooks``) for Llama/Qwen-style layers: 4h + 2h_kv + 5.5i elements (h
  hidden, h_kv key/value width, i MLP width), plus bf16's fp32 norm inputs (2 x 4h bytes);
  attention through SDPA keeps no T x T matrix. With activation checkpointing: each
  layer's input (h elements) plus one layer recomputed at a time.
- logits: 16 bytes per position per vocabulary entry (the fp32 log-softmax autograd keeps;
  at the start of backward, the gradients of it and of the logits and a temporary); the
  chunked loss holds ``loss_chunk_tokens`` positions at a time.
The peak is the larger of the start of backward (activations + logits) and its end (every
gradient, plus the last layer's activations, their gradients and temporaries: 2.5 layers'
worth, as measured): checked against the CPU memory of a tiny Llama's training step
(tests/train/test_train_memory.py; within 20% with and without checkpointing and chunking).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

GIB = 2**30
LOGIT_BYTES = 16  # per position per vocabulary entry: the logits, fp32 log-softmax, two fp32 gradients
END_LAYERS = 2.5  # layers' worth alive at the end of backward (activations, their gradients, temporaries):
#                   2-3 measured on CPU (fresh processes), 3 over-estimated an H200's peak by 17-28%


@dataclass(frozen=True)
class Shape:
    params: int  # all parameters, a tied head counted once
    hidden: int
    layers: int
    intermediate: int
    kv_width: int  # key/value heads x head dim
    vocab: int

    @classmethod
    def of(cls, config, params: int) -> Shape:
        t = config.get_text_config()
        heads = int(t.num_attention_heads)
        head_dim = int(getattr(t, "head_dim", None) or t.hidden_size // heads)
        kv = int(getattr(t, "num_key_value_heads", None) or heads)
        inter = int(getattr(t, "intermediate_size", None) or 4 * t.hidden_size)
        return cls(params, int(t.hidden_size), int(t.num_hidden_layers), inter, kv * head_dim, int(t.vocab_size))


@dataclass(frozen=True)
class MemoryEstimate:
    weights: float
    optimizer: float
    gradients: float  # all of them (persistent + built during backward)
    persistent_gradients: float  # bf16's fp32 accumulation partition, alive across steps
    activations: float  # without activation checkpointing
    activations_checkpointed: float  # each layer's input only
    layer: float  # one layer's activations (recomputed one at a time when checkpointing)
    logits: float
    head_gradient: float  # the output head's gradient, built while the logits' gradients are alive
    checkpointing: bool

    def peak_if(self, checkpointing: bool) -> float:
        """At the start of backward every kept activation and the logits' gradients are alive;
        at its end every gradient and the last (recomputed) layer are."""
        kept = self.activations_checkpointed if checkpointing else self.activations
        start = kept + self.logits + self.head_gradient
        end = self.gradients - self.persistent_gradients + END_LAYERS * self.layer + (kept if checkpointing else 0.0)
        return self.weights + self.optimizer + self.persistent_gradients + max(start, end)

    @property
    def peak(self) -> float:
        return self.peak_if(self.checkpointing)

    def line(self) -> str:
        g = {f.name: getattr(self, f.name) / GIB for f in fields(self) if f.name != "checkpointing"}
        return (f"{self.peak / GIB:.1f} GiB per rank (checkpointing {'on' if self.checkpointing else 'off'}; "
                f"{self.peak_if(not self.checkpointing) / GIB:.1f} {'off' if self.checkpointing else 'on'}): "
                f"weights {g['weights']:.2f}, optimizer {g['optimizer']:.2f}, gradients {g['gradients']:.2f}, "
                f"activations {g['activations']:.2f} ({g['activations_checkpointed']:.2f} checkpointed), "
                f"logits {g['logits']:.2f}")


def estimate(shape: Shape, *, seq_len: int, micro_batch: int, precision: str, zero_stage: int, world_size: int,
             checkpointing: bool, loss_chunk_tokens: int | None) -> MemoryEstimate:
    p, w, z = shape.params, max(world_size, 1), zero_stage
    bf16 = precision == "bf16"
    unit = 2 if bf16 else 4
    weights = unit * p / (w if z >= 3 else 1)
    if bf16 and z == 0:
        optimizer = 4.0 * p
    else:
        optimizer = (12.0 if bf16 else 8.0) * p / (w if z >= 1 else 1)
    persistent = 4.0 * p / w if bf16 and z >= 1 else 0.0
    gradients = unit * p / (w if z >= 2 else 1) + persistent
    tokens = seq_len * micro_batch
    h = shape.hidden
    per_layer = unit * (4 * h + 2 * shape.kv_width + 5.5 * shape.intermediate) + (8 * h if bf16 else 0)
    outside = 2 * unit * h  # embedding output, final norm
    activations = tokens * (shape.layers * per_layer + outside)
    checkpointed = tokens * (shape.layers * unit * h + outside)
    positions = min(tokens, loss_chunk_tokens) if loss_chunk_tokens else tokens
    logits = positions * shape.vocab * LOGIT_BYTES
    head = unit * shape.vocab * h / (w if z >= 2 else 1)
    return MemoryEstimate(weights, optimizer, gradients, persistent, activations, checkpointed, tokens * per_layer,
                          logits, head, checkpointing)


def measure_cpu_peak(fn) -> int:
    """Peak bytes allocated while ``fn()`` runs above what was resident before (a CPU stand-in
    for ``torch.cuda.max_memory_allocated``; Linux, glibc).

    Allocations of 16 KiB and more are served by mmap and returned on free (``mallopt``), so
    the resident set follows live tensors; the kernel's high-water mark is reset before
    ``fn`` (``/proc/self/clear_refs``) and read after it (``VmHWM``)."""
    import ctypes
    import gc

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 16384)  # M_MMAP_THRESHOLD: blocks from 16 KiB straight from (and back to) the kernel
    libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD: give freed heap back at once
    gc.collect()
    libc.malloc_trim(0)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")
