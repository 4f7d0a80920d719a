"""Helpers for tests that run real node processes of a devnet: heights and peers over RPC,
polling with deadlines, and restarting a killed node with its exact command line."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinchain.client import Client, RpcClient
from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo

# What a node logs when it puts vote (or block) equivocation evidence on chain.
EQUIVOCATION_LOG = re.compile(r"report_vote_equivocation|equivocation evidence submitted")


def rpc(node: NodeInfo) -> RpcClient:
    return RpcClient(node.rpc_url, timeout=5)


def finalized(node: NodeInfo) -> tuple[int, str]:
    """The node's finalized block: (number, hash)."""
    with rpc(node) as r:
        h = r.call("chain_getFinalizedHead")
        return int(r.call("chain_getHeader", h)["number"], 16), h


def heights(node: NodeInfo) -> tuple[int, int]:
    """(best, finalized) numbers; (-1, -1) when the node does not answer (paused, down)."""
    try:
        with RpcClient(node.rpc_url, timeout=2) as r:
            best = int(r.call("chain_getHeader")["number"], 16)
            fin = int(r.call("chain_getHeader", r.call("chain_getFinalizedHead"))["number"], 16)
        return best, fin
    except Exception:
        return -1, -1


def peers(node: NodeInfo) -> int:
    try:
        with RpcClient(node.rpc_url, timeout=2) as r:
            return int(r.call("system_health")["peers"])
    except Exception:
        return -1


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    """Poll ``cond`` until it returns something truthy, and return that (an exception counts
    as not yet); ``what`` names the failure at the deadline."""
    end = time.monotonic() + timeout
    while True:
        try:
            got = cond()
            if got:
                return got
        except Exception:
            pass
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_for(
    cond: Callable[[], bool],
    timeout: float,
    what: Callable[[], str] | str,
    interval: float = 0.2,
) -> float:
    """Poll ``cond`` until true; returns the monotonic time it first held. ``what`` (or what
    it returns: the state at the deadline) names the failure."""
    end = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return time.monotonic()
        except Exception:
            pass  # a node busy restarting: poll again
        if time.monotonic() >= end:
            raise AssertionError(
                f"timed out after {timeout:.0f} s: {what() if callable(what) else what}"
            )
        time.sleep(interval)


def table(nodes: list[NodeInfo]) -> str:
    """Every node's best/finalized height and peers, for failure messages."""
    return ", ".join(
        f"{n.name}: #{b}/fin #{f} ({p} peers)"
        for n in nodes
        for (b, f), p in [(heights(n), peers(n))]
    )


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def kill_and_restart(node: NodeInfo) -> subprocess.Popen[bytes]:
    """SIGKILL the node and start it again with its exact command line, logging to the same
    file (as an operator or a supervisor restarting a crashed validator would)."""
    cmd = command_line(node.pid)
    os.kill(node.pid, 9)
    wait_for(lambda: not manager._alive(node.pid), 20, f"{node.name} to die", interval=0.05)
    log = open(Path(node.base_path) / "node.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    node.pid = proc.pid
    return proc


def equivocation_lines(nodes: list[NodeInfo]) -> list[str]:
    out = []
    for n in nodes:
        log = Path(n.base_path) / "node.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        out += [f"{n.name}: {line}" for line in text.splitlines() if EQUIVOCATION_LOG.search(line)]
    return out


def offences_on_chain(node: NodeInfo) -> int:
    """Equivocation reports in the node's best state (each EquivocationReported event also
    stores its evidence under Authority.Offences)."""
    from twinchain.runtime.runtime import Runtime

    prefix = "0x" + Runtime().authority.Offences.prefix.hex()
    with rpc(node) as r:
        return len(r.call("state_getKeysPaged", prefix, 100, None))


def finality_advances(nodes: list[NodeInfo], what: str, slots: int, slot_s: float) -> None:
    """Every node finalizes a block above the highest finalized one anywhere now, within
    ``slots`` slots (issue 17's liveness bound is 10)."""
    ref = max(heights(n)[1] for n in nodes)
    wait_for(
        lambda: all(heights(n)[1] > ref for n in nodes),
        slots * slot_s,
        lambda: f"finality past #{ref} on every node {what}: {table(nodes)}",
        interval=0.1,
    )


def public_chain(c: Client) -> list[Any]:
    """What anyone may read of a chain over RPC: every block to the best one with its
    events, and every storage key and value at the finalized head (leak searches)."""
    out: list[Any] = []
    head = c.call("chain_getFinalizedHead")
    best = int(c.call("chain_getHeader")["number"], 16)
    for n in range(best + 1):
        h = c.call("chain_getBlockHash", n)
        out.append(c.call("chain_getBlock", h))
        out.append(c.events(bytes.fromhex(h[2:])))
    start = None
    while True:
        keys = c.call("state_getKeysPaged", "0x", 1000, start, head)
        out += [[k, c.call("state_getStorage", k, head)] for k in keys]
        if len(keys) < 1000:
            break
        start = keys[-1]
    return out
