"""The audit's process group on CUDA, with CUDA mocked visible: each rank's device is set
before the group exists, the ranks' devices never collide, and the collectives (Python
objects only) run on a host backend."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from audit.model import resolve_device
from core.errors import EnvironmentProblem
from core.workers import collective


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA visible with ``n`` devices; records set_device and init_process_group calls."""
    calls: list[tuple] = []
    state = {"n": 2}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: state["n"])
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(("init_process_group", kw)))
    return calls, state


def _rank(monkeypatch, rank: int, local_rank: int, world: int) -> None:
    for key, value in (("RANK", rank), ("LOCAL_RANK", local_rank), ("WORLD_SIZE", world)):
        monkeypatch.setenv(key, str(value))


@pytest.mark.parametrize("devices, local_ranks", [(2, (0, 1)), (8, (0, 1))])
def test_two_ranks_on_cuda_get_their_own_gpu_then_a_host_backend(fake_cuda, monkeypatch, devices, local_ranks):
    calls, state = fake_cuda
    state["n"] = devices
    seen = []
    for rank, local in enumerate(local_ranks):
        calls.clear()
        _rank(monkeypatch, rank, local, len(local_ranks))
        assert collective.maybe_init() is True
        assert [c[0] for c in calls] == ["set_device", "init_process_group"]  # device first
        seen.append((calls[0][1], calls[1][1]["backend"], resolve_device("cuda"), resolve_device("auto")))
    assert len({device for device, *_ in seen}) == len(local_ranks)  # no two ranks on one GPU
    for device, backend, model_device, auto in seen:
        assert backend == "gloo"  # object collectives through host memory, never a GPU's stream
        assert model_device == auto == torch.device("cuda", device)  # the model goes where set_device pointed


def test_one_gpu_per_task_launchers_map_every_rank_to_its_only_device(fake_cuda, monkeypatch):
    """srun/CUDA_VISIBLE_DEVICES per task: one device visible, LOCAL_RANK 3 -> cuda:0."""
    calls, state = fake_cuda
    state["n"] = 1
    _rank(monkeypatch, 3, 3, 4)
    collective.maybe_init()
    assert calls[0] == ("set_device", 0) and resolve_device("cuda") == torch.device("cuda", 0)


def test_single_process_never_builds_a_group(fake_cuda, monkeypatch):
    calls, _ = fake_cuda
    _rank(monkeypatch, 0, 0, 1)
    assert collective.maybe_init() is False and calls == []


def test_audit_device_accepts_an_index_it_can_use_and_names_one_it_cannot(fake_cuda, monkeypatch):
    _rank(monkeypatch, 0, 0, 1)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(EnvironmentProblem, match=r"audit.device=cuda:2: 2 GPU\(s\) visible"):
        resolve_device("cuda:2")
    with pytest.raises(EnvironmentProblem, match="audit.device='tpu'"):
        resolve_device("tpu")


def test_gather_in_order_refuses_a_missing_index():
    from core.workers.collective import gather_in_order

    assert gather_in_order(3, [2, 0, 1], ["c", "a", "b"]) == ["a", "b", "c"]
    assert gather_in_order(2, [1, 0], [None, 0.5]) == [0.5, None]  # None is a value, not a gap
    with pytest.raises(RuntimeError, match="1 of 3 indices never came back"):
        gather_in_order(3, [0, 2], [1.0, 3.0])
