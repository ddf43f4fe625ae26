"""Several torchrun nodes, one writer: node 0's ``spikein`` owns the run directory.

With ``launcher=torchrun launcher.num_nodes=M`` the same ``spikein`` command runs on every
node. Node 0 does everything a one-node command does (locks, settings, log rotation, the
stages' decisions, inject, report); before each launch of workers it tells the other
nodes which worker module to start, with what log dir and environment, and at its end
its exit status. Nodes ``node_rank > 0`` only follow: they start their share of each
launch and exit with node 0's status; they write nothing in the run dir but their ranks'
logs and markers. The messages go through a ``torch.distributed.TCPStore`` that node 0
serves on ``master_addr:master_port``; the workers rendezvous on ``master_port + 1``.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator, Mapping

from core.config import LauncherConfig, SpikeinConfig, typed_section
from core.errors import Preempted, SpikeinError

JOIN_TIMEOUT_S = 1800  # how long a node waits for node 0 to come up (node 0 may be injecting)
POLL_S = 0.5
_group: NodeGroup | None = None  # node 0's, while its command runs


def multi_node_torchrun(lc: LauncherConfig) -> bool:
    return lc.kind == "torchrun" and lc.num_nodes > 1


def is_follower(launcher_cfg: Any) -> bool:
    lc = typed_section(LauncherConfig, launcher_cfg)
    return multi_node_torchrun(lc) and lc.node_rank > 0


def control_address(lc: LauncherConfig) -> tuple[str, int]:
    """node 0's address and control port; every node must be given the same ones."""
    if not lc.master_addr:
        raise SpikeinError(f"launcher.num_nodes={lc.num_nodes} needs launcher.master_addr=<node 0's address> "
                           "(the same on every node; 127.0.0.1 runs every node on this machine)")
    if lc.master_port in (None, "", 0):
        raise SpikeinError(f"launcher.num_nodes={lc.num_nodes} needs launcher.master_port=<port> "
                           "(the same on every node; the workers use it + 1)")
    return str(lc.master_addr), int(lc.master_port)


def worker_port(lc: LauncherConfig, port: int) -> int:
    """The workers' rendezvous port: next to node 0's control port when there is one."""
    return port + 1 if multi_node_torchrun(lc) else port


class NodeGroup:
    """Node 0's side: announce each launch, then the command's exit status."""

    def __init__(self, lc: LauncherConfig):
        from torch.distributed import TCPStore

        addr, port = control_address(lc)
        self.followers = lc.num_nodes - 1
        self.store = TCPStore(addr, port, is_master=True, wait_for_workers=False,
                              timeout=timedelta(seconds=JOIN_TIMEOUT_S))
        self.launches = 0

    def announce(self, module: str, log_dir: str, env: Mapping[str, str] | None) -> None:
        """The other nodes start ``module``'s workers for this launch (before ours rendezvous)."""
        message = {"module": module, "log_dir": log_dir, "env": dict(env or {})}
        self.store.set(f"launch/{self.launches}", json.dumps(message))
        self.launches += 1

    def finish(self, code: int, wait_s: float = 60) -> None:
        """Tell the other nodes how the command ended; keep serving until they have read it."""
        self.store.set("end", json.dumps({"code": code}))
        deadline = time.time() + wait_s
        while self.store.add("read_end", 0) < self.followers and time.time() < deadline:
            time.sleep(0.1)


def current() -> NodeGroup | None:
    return _group


@contextmanager
def node_group(launcher_cfg: Any) -> Iterator[None]:
    """On node 0 of a multi-node torchrun command: serve the other nodes for the block."""
    global _group
    lc = typed_section(LauncherConfig, launcher_cfg)
    if not multi_node_torchrun(lc) or lc.node_rank != 0:
        yield
        return
    _group = NodeGroup(lc)
    code = 1
    try:
        yield
        code = 0
    except Preempted:
        code = Preempted.exit_code
        raise
    except SpikeinError:
        code = 2
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        group, _group = _group, None
        group.finish(code)


def follow_node0(cfg: SpikeinConfig, launch_share) -> int:
    """Node ``node_rank > 0``: start this node's workers for each launch node 0 announces;
    exit with node 0's status. ``launch_share(module, log_dir, env)`` runs one launch here."""
    from torch.distributed import TCPStore

    lc = typed_section(LauncherConfig, cfg.launcher)
    addr, port = control_address(lc)
    print(f"node {lc.node_rank}: following node 0 at {addr}:{port}", file=sys.stderr)
    try:
        store = TCPStore(addr, port, is_master=False, timeout=timedelta(seconds=JOIN_TIMEOUT_S))
    except Exception as e:  # noqa: BLE001 - torch raises several kinds for "nobody there"
        raise SpikeinError(f"node {lc.node_rank}: node 0 did not come up at {addr}:{port} "
                           f"within {JOIN_TIMEOUT_S} s ({type(e).__name__})") from None
    launch, own_failure = 0, None
    while True:
        try:
            if store.check(["end"]):
                code = int(json.loads(store.get("end"))["code"])
                store.add("read_end", 1)
                break
            if store.check([f"launch/{launch}"]):
                message = json.loads(store.get(f"launch/{launch}"))
                launch += 1
                try:
                    launch_share(message["module"], message["log_dir"], message["env"])
                except SpikeinError as e:  # node 0 sees the same failure and decides
                    own_failure = str(e)
                continue
        except (RuntimeError, ConnectionError) as e:  # DistStoreError is a RuntimeError
            raise SpikeinError(f"node {lc.node_rank}: lost node 0 at {addr}:{port} ({type(e).__name__}); "
                               "see node 0's output") from None
        time.sleep(POLL_S)
    if code != 0:
        detail = f" (here: {own_failure})" if own_failure else ""
        print(f"spikein: node 0 ended with exit status {code}{detail}", file=sys.stderr)
    return code
