"""Sequential batches from the token stream: no shuffling, order fixed when the stream was built.

Sequence ``i`` is tokens ``[i*L, (i+1)*L)`` of the stream repeated end to end (so
training past the end starts a new epoch); update ``b`` uses sequences
``[b*B, (b+1)*B)``; rank ``r`` takes the ``r``-th contiguous slice of ``B / W``
sequences and feeds it in micro-batches. The data position is just ``b``. The stream is
``data/stream.bin`` or, for a pre-tokenized corpus, the corpus with its overlay composed per
sample (:class:`inject.overlay.ComposedStream`; sequence ``i`` = training sample ``i``), so a
batch is a pure function of ``b`` either way.
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import SpikeinError


def take_tokens(stream: np.ndarray, start: int, count: int) -> np.ndarray:
    """``count`` tokens from global offset ``start`` of the endlessly repeated stream."""
    n = len(stream)
    start %= n
    parts = []
    while count > 0:  # slices only: a composed stream (corpus + overlay) reads whole samples
        take = min(count, n - start)
        parts.append(np.asarray(stream[start:start + take]))
        start, count = 0, count - take
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class StreamBatches:
    def __init__(self, stream: np.ndarray, *, seq_len: int, global_batch: int, micro_batch: int,
                 rank: int, world_size: int, vocab_size: int) -> None:
        if global_batch % (micro_batch * world_size):
            raise SpikeinError(f"global batch {global_batch} is not a multiple of micro_batch x world "
                               f"size ({micro_batch} x {world_size})")
        self.stream = stream
        self.seq_len, self.global_batch, self.micro_batch = seq_len, global_batch, micro_batch
        self.rank, self.world_size, self.vocab_size = rank, world_size, vocab_size
        self.per_rank = global_batch // world_size
        self.accumulation = self.per_rank // micro_batch

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch

    def micro_batch_tokens(self, step: int, k: int) -> torch.Tensor:
        """Micro-batch ``k`` of this rank for update ``step``: int64 ``[micro_batch, seq_len]``."""
        first = step * self.global_batch + self.rank * self.per_rank + k * self.micro_batch
        arr = take_tokens(self.stream, first * self.seq_len, self.micro_batch * self.seq_len)
        if int(arr.max()) >= self.vocab_size:
            raise SpikeinError(f"stream token id {int(arr.max())} near offset {first * self.seq_len} "
                               f"is outside the model's {self.vocab_size}-token vocabulary")
        return torch.from_numpy(arr.astype(np.int64)).view(self.micro_batch, self.seq_len)

    def step_batches(self, step: int) -> list[torch.Tensor]:
        return [self.micro_batch_tokens(step, k) for k in range(self.accumulation)]
