"""``checkpoints/index.json`` as types: the hand-off from train to audit and report.

Read and written only through :class:`core.run_dir.RunDir` (``read_index`` / ``write_index``).
The JSON keeps its keys exactly (old run dirs read, rewritten files are the same): an
entry's ``step, tokens_seen, epochs, hf, ds`` and then whatever training recorded beside
them (the exposure record: ``copies_seen``, ``copies_seen_by_epoch``, ``last_exposure_step``),
kept as it came.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

ENTRY_KEYS = ("step", "tokens_seen", "epochs", "hf", "ds")
INDEX_KEYS = ("checkpoints", "finished", "seq_len", "global_batch", "tokens_per_step")


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint; ``hf`` and ``ds`` relative to checkpoints/ (None once pruned)."""

    step: int
    tokens_seen: int | None = None
    epochs: float | None = None
    hf: str | None = None  # the HF export the audit loads
    ds: str | None = None  # the DeepSpeed state training resumes from
    exposure: dict[str, Any] = field(default_factory=dict)  # per-partition copies seen, last exposure step

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Checkpoint:
        tokens = d.get("tokens_seen")
        return cls(step=int(d["step"]), tokens_seen=None if tokens is None else int(tokens), epochs=d.get("epochs"),
                   hf=d.get("hf"), ds=d.get("ds"), exposure={k: v for k, v in d.items() if k not in ENTRY_KEYS})

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "tokens_seen": self.tokens_seen, "epochs": self.epochs, "hf": self.hf,
                "ds": self.ds, **self.exposure}

    def without(self, *, hf: bool = False, ds: bool = False) -> Checkpoint:
        """This entry with its HF export and / or DeepSpeed state pruned."""
        return replace(self, hf=None if hf else self.hf, ds=None if ds else self.ds)


@dataclass(frozen=True)
class CheckpointIndex:
    """The complete checkpoints (sorted by step) and whether training finished."""

    checkpoints: tuple[Checkpoint, ...] = ()
    finished: bool = False
    seq_len: int | None = None
    global_batch: int | None = None
    tokens_per_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer writer, kept on rewrite

    @classmethod
    def new(cls, seq_len: int, global_batch: int) -> CheckpointIndex:
        return cls(seq_len=seq_len, global_batch=global_batch, tokens_per_step=seq_len * global_batch)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckpointIndex:
        """KeyError / TypeError / ValueError on a malformed index (RunDir names the file)."""
        entries = sorted((Checkpoint.from_json(c) for c in d["checkpoints"]), key=lambda c: c.step)
        return cls(checkpoints=tuple(entries), finished=bool(d.get("finished", False)), seq_len=d.get("seq_len"),
                   global_batch=d.get("global_batch"), tokens_per_step=d.get("tokens_per_step"),
                   extra={k: v for k, v in d.items() if k not in INDEX_KEYS})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checkpoints": [c.to_json() for c in self.checkpoints], "finished": self.finished}
        sizes = {"seq_len": self.seq_len, "global_batch": self.global_batch, "tokens_per_step": self.tokens_per_step}
        return {**out, **{k: v for k, v in sizes.items() if v is not None}, **self.extra}

    @property
    def last_step(self) -> int | None:
        return self.checkpoints[-1].step if self.checkpoints else None

    @property
    def tokens_seen(self) -> int:
        """Tokens trained on by the last checkpoint (0 before any)."""
        return max((c.tokens_seen or 0 for c in self.checkpoints), default=0)

    def with_hf(self) -> list[Checkpoint]:
        """The checkpoints an audit can load (``train.keep_hf=last`` drops earlier exports)."""
        return [c for c in self.checkpoints if c.hf]

    def step_tokens(self) -> int | None:
        """Tokens per optimizer step: recorded, else from a checkpoint's tokens and step."""
        if self.tokens_per_step:
            return int(self.tokens_per_step)
        return next((c.tokens_seen // c.step for c in self.checkpoints if c.step and c.tokens_seen), None)

    def up_to(self, step: int) -> CheckpointIndex:
        """As a run killed right after checkpoint ``step`` left it (later entries unlisted, unfinished)."""
        return replace(self, checkpoints=tuple(c for c in self.checkpoints if c.step <= step), finished=False)
