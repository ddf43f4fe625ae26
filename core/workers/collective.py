"""Data-parallel helpers: each rank scores a slice, results come back in input order.

Everything degrades to a single process when torch.distributed is not initialized.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


# The audit's collectives carry Python objects (scores, cache hits, index files) only:
# gloo moves them through host memory, so no rank's collective ever touches a GPU that
# another rank's model lives on (NCCL would run them on the current device: cuda:0 on
# every rank unless each set its own first).
AUDIT_BACKEND = "gloo"


def local_device_index() -> int:
    """This rank's GPU (:func:`core.workers.env.device_index`: LOCAL_RANK modulo the visible devices)."""
    from core.workers.env import device_index

    return device_index()


def maybe_init(backend: str | None = None) -> bool:
    """Join the process group a launcher (torchrun, deepspeed) described in the environment.

    With CUDA visible, the rank's own GPU becomes the current device before the group
    exists, so nothing a library allocates on "the current device" lands on cuda:0."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(local_device_index())
    dist.init_process_group(backend=backend or AUDIT_BACKEND)
    return True


def my_share(lengths: Sequence[int]) -> list[int]:
    """This rank's indices: longest first, dealt round-robin so every rank gets similar work."""
    rank, world = rank_world()
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return sorted(order[rank::world])


_MISSING = object()


def gather_in_order(n: int, indices: list[int], values: list[Any]) -> list[Any]:
    """Every rank's (index, value) pairs merged back into a list of length ``n``; every
    index must come back exactly once (a lost one would otherwise become a silent NaN)."""
    _, world = rank_world()
    parts: list[Any] = [(indices, values)] if world == 1 else [None] * world
    if world > 1:
        dist.all_gather_object(parts, (indices, values))
    out: list[Any] = [_MISSING] * n
    for idx, vals in parts:
        if len(idx) != len(vals):
            raise RuntimeError(f"gather_in_order: {len(idx)} indices but {len(vals)} values from one rank")
        for i, v in zip(idx, vals):
            if out[i] is not _MISSING:
                raise RuntimeError(f"gather_in_order: index {i} came back twice")
            out[i] = v
    missing = [i for i, v in enumerate(out) if v is _MISSING]
    if missing:
        raise RuntimeError(f"gather_in_order: {len(missing)} of {n} indices never came back (first {missing[0]})")
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's value on every rank (decisions taken from files must agree across ranks)."""
    _, world = rank_world()
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def total(value: int) -> int:
    """``value`` summed over all ranks (per-rank counters, such as tokens run)."""
    _, world = rank_world()
    if world == 1:
        return value
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, int(value))
    return int(sum(parts))
