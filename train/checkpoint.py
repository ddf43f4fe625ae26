"""Checkpoints: ``checkpoints/step_<N>/{ds,hf}`` and ``checkpoints/index.json``.

Each checkpoint is built under ``.step_<N>.tmp`` by all ranks, renamed into place by
rank 0, and only then listed in ``index.json`` (written atomically): a run killed
mid-write leaves a temp dir that nobody reads. ``ds/`` is DeepSpeed's state (model,
optimizer, scheduler, plus our client state: data position and every rank's RNG
states); ``hf/`` is a safetensors export with the run's tokenizer, for the audit.
"""
from __future__ import annotations

import random
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import fsync_dir
from core.checkpoint_index import Checkpoint, CheckpointIndex
from core.errors import CorruptOutputError
from core.run_dir import RunDir


def latest_resumable(run_dir: str | Path) -> Checkpoint | None:
    """The newest complete checkpoint that still has its DeepSpeed state."""
    rd = RunDir(run_dir)
    index = rd.read_index() or CheckpointIndex()
    usable = [c for c in index.checkpoints if c.ds and rd.checkpoint_file(c.ds).is_dir()]
    return max(usable, key=lambda c: c.step) if usable else None


def remove_stale_temps(run_dir: str | Path) -> None:
    for tmp in RunDir(run_dir).checkpoints.glob(".step_*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


# --- RNG states -------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (stored once, in rank 0's client state)."""
    import torch.distributed as dist

    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


# --- HF export --------------------------------------------------------------------

def export_hf(engine, out_dir: Path, tokenizer_dir: Path, rank: int) -> None:
    """safetensors + config + tokenizer; under ZeRO-3 the shards are gathered first (collective)."""
    module = engine.module
    if engine.zero_optimization_partition_weights():
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            if rank == 0:
                _save_module(module, out_dir, tokenizer_dir)
    elif rank == 0:  # stages 0-2 keep full weights in the module on every rank
        _save_module(module, out_dir, tokenizer_dir)


def _save_module(module, out_dir: Path, tokenizer_dir: Path) -> None:
    module.save_pretrained(str(out_dir), safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy2(f, out_dir / f.name)


# --- save / load ------------------------------------------------------------------

def save_checkpoint(engine, run_dir: Path, step: int, *, client_state: dict[str, Any] | None,
                    tokenizer_dir: Path, tokens_seen: int, epochs: float, keep_last: int,
                    keep_hf: str, rank: int, exposure: dict[str, Any] | None = None,
                    with_hf: bool = True) -> None:
    """Write step_<N> on all ranks; ``client_state=None`` writes the HF export only,
    ``with_hf=False`` the DeepSpeed state only (a preemption checkpoint, for resuming).

    ``exposure`` (copies seen per epoch, step of the last exposure, per partition) goes
    into the index entry, so the audit and report read it beside the checkpoint.
    """
    import torch.distributed as dist

    rd = RunDir(run_dir)
    tmp, final = rd.step_tmp(step), rd.step_dir(step)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    if client_state is not None:
        engine.save_checkpoint(str(tmp), tag=rd.ds_dir(step).name, client_state=client_state, save_latest=False)
    if with_hf:
        export_hf(engine, tmp / rd.hf_dir(step).name, tokenizer_dir, rank)  # tmp becomes step_dir(step)
    dist.barrier()
    if rank == 0:
        if final.exists():  # a complete checkpoint of this step not in the index (killed before it)
            shutil.rmtree(final)
        tmp.rename(final)
        fsync_dir(rd.checkpoints)
        hf, ds = (p.relative_to(rd.checkpoints).as_posix() for p in (rd.hf_dir(step), rd.ds_dir(step)))
        entry = Checkpoint(step, tokens_seen, epochs, hf if with_hf else None, ds if client_state is not None else None,
                           dict(exposure or {}))
        _publish(run_dir, entry, keep_last, keep_hf)
    dist.barrier()


def _publish(run_dir: Path, entry: Checkpoint, keep_last: int, keep_hf: str) -> None:
    """List the new checkpoint, then prune: the index never names something deleted."""
    rd = RunDir(run_dir)
    index = rd.read_index()
    assert index is not None, "index.json is written before the first checkpoint"
    entries = sorted([c for c in index.checkpoints if c.step != entry.step] + [entry], key=lambda c: c.step)
    doomed: list[str] = []
    old_ds = {c.step for c in [c for c in entries if c.ds][:-max(1, keep_last)]}
    # the newest export stays, even when a preemption checkpoint (no hf) came after it
    old_hf = {c.step for c in [c for c in entries if c.hf][:-1]} if keep_hf == "last" else set()
    pruned = []
    for c in entries:
        if c.step in old_ds and c.ds:
            doomed += [c.ds, c.ds + UNIVERSAL]
        if c.step in old_hf and c.hf:
            doomed.append(c.hf)
        pruned.append(c.without(hf=c.step in old_hf, ds=c.step in old_ds))
    kept = [c for c in pruned if c.hf or c.ds]
    gone = [rd.step_dir(c.step) for c in pruned if not (c.hf or c.ds)]
    rd.write_index(replace(index, checkpoints=tuple(kept)))
    for path in [rd.checkpoint_file(rel) for rel in doomed] + gone:
        shutil.rmtree(path, ignore_errors=True)


def mark_finished(run_dir: Path) -> None:
    rd = RunDir(run_dir)
    index = rd.read_index()
    assert index is not None
    rd.write_index(replace(index, finished=True))


# --- another world size: DeepSpeed universal checkpoints --------------------------

UNIVERSAL = "_universal"  # step_<N>/ds_universal beside step_<N>/ds


def saved_world_size(ds_dir: Path) -> int | None:
    """The data-parallel size a ZeRO checkpoint was partitioned for (one optimizer shard per
    rank); None for ZeRO-0, whose state loads on any number of ranks."""
    shards = list(ds_dir.glob("zero_pp_rank_*_mp_rank_00_optim_states.pt"))
    return len(shards) or None


def universal_dir(run_dir: Path, entry: Checkpoint) -> Path:
    assert entry.ds is not None, "a checkpoint with its DeepSpeed state"
    ds = RunDir(run_dir).checkpoint_file(entry.ds)
    return ds.with_name(ds.name + UNIVERSAL)


def make_universal(run_dir: Path, entry: Checkpoint) -> Path:
    """Rank 0: ``ds_to_universal`` of the checkpoint (once; built aside, then renamed), so a
    run partitioned over N ranks resumes on M (DeepSpeed's ``checkpoint.load_universal``)."""
    import contextlib
    import io
    from argparse import Namespace

    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    out = universal_dir(run_dir, entry)
    if out.is_dir():
        return out
    assert entry.ds is not None  # universal_dir checked it
    tmp = out.with_name("." + out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    args = Namespace(input_folder=str(RunDir(run_dir).checkpoint_file(entry.ds)), output_folder=str(tmp),
                     num_extract_workers=1, num_merge_workers=1, keep_temp_folder=False, strict=True,
                     inject_missing_state=True)  # our checkpoints carry no Megatron-style TP/PP info
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines and bars
        ds_to_universal(args)
    tmp.rename(out)
    fsync_dir(out.parent)
    return out


def _corrupt_file(ds_dir: Path, error: BaseException) -> Path:
    """The state file that failed to load: the one the error names, else the first that is
    not a whole torch zip archive (a truncated file lost its central directory)."""
    named = getattr(error, "filename", None)
    if named:
        return Path(named)
    broken = [p for p in sorted(ds_dir.glob("*.pt")) if not zipfile.is_zipfile(p)]
    return broken[0] if broken else ds_dir


def load_checkpoint(engine, run_dir: Path, entry: Checkpoint, trajectory_hash: str,
                    universal: bool = False) -> dict[str, Any]:
    """Restore model, optimizer and scheduler; returns the client state (checked to match).
    ``universal``: from the universal copy (:func:`make_universal`), on another world size."""
    rd = RunDir(run_dir)
    step_dir, ds_dir = rd.step_dir(entry.step), rd.ds_dir(entry.step)
    if universal:
        ds_dir = universal_dir(run_dir, entry)
    try:
        path, client = engine.load_checkpoint(str(step_dir), tag=ds_dir.name, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
    except (OSError, RuntimeError, EOFError, ValueError) as e:  # a truncated or corrupt state file
        raise CorruptOutputError(f"cannot resume from {_corrupt_file(ds_dir, e)}: {type(e).__name__}; "
                           f"delete {step_dir} to resume from the checkpoint before it") from None
    if path is None or client is None:
        raise CorruptOutputError(f"cannot load DeepSpeed state from {ds_dir}")
    if client.get("trajectory_hash") != trajectory_hash:
        raise CorruptOutputError(f"checkpoint {step_dir} was written by a different train config; "
                           "pass overwrite=true to start over or choose another run_dir")
    return client
