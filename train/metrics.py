"""Rank-0 metrics: ``train/metrics.jsonl`` (fsynced lines), W&B (job_type=train), progress bar."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from core.atomic import append_jsonl, write_text
from core.run_dir import RunDir
from inject.manifest import Manifest


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = RunDir(run_dir).metrics
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # the line a killed writer left half-written
            continue
    return rows


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """On resume, drop rows a killed run logged after its last checkpoint (they are redone)."""
    rows = read_metrics(run_dir)
    keep = [r for r in rows if r["step"] <= last_step]
    if len(keep) != len(rows):
        write_text(RunDir(run_dir).metrics, "".join(json.dumps(r) + "\n" for r in keep))


def copies_seen(manifest: Manifest, tokens_seen: int) -> dict[str, int]:
    return {f"{b}/{p}": n for (b, p), n in manifest.copies_seen(tokens_seen).items()}


def exposures(manifest: Manifest, tokens_seen: int, tokens_per_step: int) -> dict[str, Any]:
    """Per partition (``bench/part``): copies seen in each epoch so far, and the step that
    finished the latest one (None before any): steps since exposure = step - it."""
    by_epoch = manifest.copies_seen_by_epoch(tokens_seen)
    last = manifest.last_exposure_step(tokens_seen, tokens_per_step)
    return {"copies_seen_by_epoch": {f"{b}/{p}": n for (b, p), n in by_epoch.items()},
            "last_exposure_step": {f"{b}/{p}": n for (b, p), n in last.items()}}


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float, world_size: int) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the devices' peak."""
    return tokens_per_s * flops_per_token / (peak_flops * world_size) if peak_flops > 0 else 0.0


# Dense peak FLOP/s per GPU (vendor datasheets, no sparsity): (name fragment, fp32 non-tensor, bf16 tensor).
# fp32 training on these GPUs runs at the fp32 figure (TF32 off, torch's default for matmuls).
GPU_PEAKS = (
    ("H200", 67e12, 989e12), ("H100 PCIe", 51e12, 756e12), ("H100", 67e12, 989e12),  # H100 SXM / HBM3
    ("A100", 19.5e12, 312e12), ("L40S", 91.6e12, 362e12), ("A10G", 31.2e12, 70e12),
)


def peak_flops(configured: Mapping[str, float], device_type: str, device_name: str, precision: str) -> float:
    """The peak MFU divides by: ``train.peak_flops[<device type>]`` when set, else the GPU's own
    from its name and the training precision; 0 (no MFU) for an unknown GPU."""
    if device_type in configured:
        return float(configured[device_type])
    if device_type != "cuda":
        return 0.0
    for fragment, fp32, bf16 in GPU_PEAKS:
        if fragment.lower() in device_name.lower():
            return bf16 if precision == "bf16" else fp32
    return 0.0


def memory_stats(device) -> dict[str, float]:
    """Peak memory allocated on this rank's GPU since the last row (GiB), then reset."""
    import torch

    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return {}
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return {"max_memory_allocated_gb": round(peak, 3)}


NOT_LOGGED = ("copies_seen", "copies_seen_by_epoch", "last_exposure_step", "step", "time")  # not W&B scalars


class MetricsLogger:
    """Writes one row per logged step; rank 0 only (other ranks get ``enabled=False``)."""

    def __init__(self, run_dir: Path, manifest: Manifest, *, enabled: bool, flops_per_token: float,
                 peak_flops: float, world_size: int, tokens_per_step: int, wandb_run=None, device=None) -> None:
        from core.wandb_log import NullRun

        self.run_dir, self.manifest, self.enabled = run_dir, manifest, enabled
        self.flops_per_token, self.peak_flops, self.world_size = flops_per_token, peak_flops, world_size
        self.tokens_per_step = tokens_per_step
        self.device = device  # max_memory_allocated per row on a GPU
        self.wandb_run = wandb_run or NullRun()
        self._t0: float = time.perf_counter()
        self._step0: int | None = None  # the step the current interval started after

    def start_interval(self, step: int) -> None:
        self._t0, self._step0 = time.perf_counter(), step

    def row(self, step: int, *, loss: float, lr: float, grad_norm: float | None) -> dict[str, Any]:
        """The metrics of update ``step`` (N updates done); throughput since the previous row.

        The next interval starts now, so writing this row counts as training time.
        """
        now = time.perf_counter()
        elapsed = max(now - self._t0, 1e-9)
        steps = step - (self._step0 if self._step0 is not None else step - 1)
        self._t0, self._step0 = now, step
        tps = steps * self.tokens_per_step / elapsed
        tokens = step * self.tokens_per_step
        return {"step": step, "tokens_seen": tokens, "epoch": tokens / self.manifest.n_tokens,
                "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps,
                "mfu": mfu(tps, self.flops_per_token, self.peak_flops, self.world_size),
                "copies_seen": copies_seen(self.manifest, tokens),
                **exposures(self.manifest, tokens, self.tokens_per_step), **memory_stats(self.device),
                "time": time.time()}

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        append_jsonl(RunDir(self.run_dir).metrics, dict(row))
        flat = {f"train/{k}": v for k, v in row.items() if k not in NOT_LOGGED}
        flat.update({f"copies_seen/{k}": v for k, v in row["copies_seen"].items()})
        self.wandb_run.log(flat, step=int(row["step"]))
