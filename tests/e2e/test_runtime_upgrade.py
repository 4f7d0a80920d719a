"""A live runtime upgrade across the 4-validator devnet (issue 20 item 4), real processes.

The devnet starts at spec 3, as a chain the previous release launched. The council schedules
spec 4 at block H with the consortium CLI (propose, two more ayes, close: two thirds of four).
At H every node with this release migrates System.ChainName to System.ChainInfo and runs spec
4; finality goes on across H. One validator runs as the old release
(TWINCHAIN_MAX_SPEC_VERSION=3): it stops at H - 1, on the others' chain, saying what to
install, and serves RPC meanwhile; restarted with the new release it catches up.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from realnet import heights, rpc, table, wait_for

from twinchain.client import Client
from twinchain.client.aio import AsyncClient
from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo
from twinchain.runtime.migrations import MAX_SPEC_ENV
from twinchain.runtime.pallets.system import ChainInfoRecord
from twinchain.runtime.runtime import Runtime

SLOT_MS = 1000
NAME = "twinchain devnet"
# Blocks between the proposal and H: the three CLI steps (each waits for finality) fit.
UPGRADE_MARGIN = 30


class Net:
    def __init__(self, base: Path) -> None:
        self.base = base
        _, self.nodes = manager.plan(base, 4, SLOT_MS)
        spec = json.loads((base / "spec.json").read_text())
        spec["genesis"]["system"] = {"name": NAME, "spec_version": 3}
        (base / "spec.json").write_text(json.dumps(spec))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.boot = [n.multiaddr for n in self.nodes]

    def start(self, node: NodeInfo, env: dict[str, str] | None = None) -> None:
        proc = manager.start_node(
            self.base, node, [b for b in self.boot if b != node.multiaddr], env=env, reports=False
        )
        self.procs[node.slug] = proc
        node.pid = proc.pid
        manager.wait_rpc(node, proc)

    def stop(self, node: NodeInfo) -> None:
        proc = self.procs.pop(node.slug)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, f"{node.name} did not stop cleanly"

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(10)

    def cli(self, node: NodeInfo, *args: str) -> subprocess.Popen[str]:
        """``twinchain consortium ARGS`` signed by ``node``'s facility operator."""
        key = manager.facility_operator_key(self.base, node)
        assert key is not None
        cmd = [sys.executable, "-m", "twinchain", "consortium", *args]
        cmd += ["--rpc", node.rpc_url, "--key", str(key), "--timeout", "60"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    return out


def log_of(node: NodeInfo) -> str:
    return (Path(node.base_path) / "node.log").read_text(errors="replace")


def version_at(node: NodeInfo, number: int) -> int:
    with rpc(node) as r:
        version = r.call("state_getRuntimeVersion", r.call("chain_getBlockHash", number))
    return int(version["specVersion"])


def watch_versions(url: str, seen: list[int], stop: threading.Event) -> None:
    """chain_subscribeRuntimeVersion on ``url``: each notified specVersion into ``seen``."""

    async def main() -> None:
        async with AsyncClient(url) as client:
            await client.subscribe(
                "chain_subscribeRuntimeVersion",
                sink=lambda v: seen.append(int(v["specVersion"])),
                unsubscribe="chain_unsubscribeRuntimeVersion",
            )
            while not stop.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(main())


@pytest.mark.slow
def test_a_live_runtime_upgrade_migrates_at_h_and_the_old_release_stops_there(
    tmp_path: Path,
) -> None:
    net = Net(tmp_path / "devnet")
    a, b, c, old = net.nodes
    seen: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_versions, args=(a.rpc_url, seen, stop), daemon=True)
    try:
        for n in net.nodes:
            net.start(n)
        wait_for(lambda: heights(a)[1] >= 2, 60, lambda: f"finality: {table(net.nodes)}")
        # The fourth validator goes on with the old release: spec 3 is all it runs.
        net.stop(old)
        net.start(old, env={**os.environ, MAX_SPEC_ENV: "3"})
        watcher.start()

        h = heights(a)[0] + UPGRADE_MARGIN
        t0 = time.monotonic()
        out = finished(
            net.cli(a, "propose", "System.schedule_upgrade", "spec_version=4", f"at_block={h}")
        )
        found = re.search(r"Council\.Proposed\(.*?motion=(\d+)", out)
        assert found is not None, out
        motion = int(found.group(1))
        votes = [net.cli(n, "vote", str(motion), "--aye") for n in (b, c)]
        for v in votes:
            finished(v)
        out = finished(net.cli(a, "close", str(motion)))
        assert "Council.Executed" in out and "error=)" in out, out
        with Client(a.rpc_url) as client:
            scheduled = client.read_storage("System", "ScheduledUpgrade", verify=False)
        assert (scheduled.spec_version, scheduled.at_block) == (4, h)
        assert heights(a)[0] < h, (
            f"the council took {time.monotonic() - t0:.0f} s: raise the margin"
        )

        # Finality goes on across H on the three upgraded validators.
        upgraded = [a, b, c]
        wait_for(
            lambda: all(heights(n)[1] >= h + 3 for n in upgraded),
            UPGRADE_MARGIN + 40,
            lambda: f"finality past H={h}: {table(net.nodes)}",
        )
        with rpc(a) as ra:
            hashes = [ra.call("chain_getBlockHash", k) for k in (h - 1, h, h + 3)]
        for n in (b, c):
            with rpc(n) as r:
                assert [r.call("chain_getBlockHash", k) for k in (h - 1, h, h + 3)] == hashes
        assert [version_at(a, k) for k in (h - 1, h, h + 1)] == [3, 4, 4]

        # The migration ran once, in block H, and its layout reads back.
        key = Runtime().system.ChainName.key()
        with Client(a.rpc_url) as client:
            events = client.events(bytes.fromhex(hashes[1][2:]))
            upgrade_events = ("RuntimeUpgraded", "MigrationApplied")
            ran = [(e["event"], e["args"]) for e in events if e["event"] in upgrade_events]
            assert [name for name, _ in ran] == ["MigrationApplied", "RuntimeUpgraded"], ran
            assert ran[1][1]["from_version"] == 3 and ran[1][1]["to_version"] == 4
            after = bytes.fromhex(hashes[1][2:])
            info = client.read_storage("System", "ChainInfo", at=after)
            assert info == ChainInfoRecord(NAME, 0)
            assert client.call("state_getStorage", "0x" + key.hex(), hashes[1]) is None
            assert client.call("state_getStorage", "0x" + key.hex(), hashes[0]) is not None
        stop.set()
        watcher.join(10)
        assert seen == [3, 4], seen

        # The old release stopped at H - 1 on the same chain, says why, and still serves RPC.
        message = (
            f"runtime spec version 4 scheduled at block {h}: install twinchain with spec 4 "
            "(this node runs spec versions up to 3)"
        )
        assert net.procs[old.slug].poll() is None, "the old release keeps running"
        with rpc(old) as r:
            assert int(r.call("chain_getHeader")["number"], 16) == h - 1
            assert r.call("chain_getBlockHash", h - 1) == hashes[0]
            assert r.call("system_health")["upgradeRequired"] == message
            assert r.call("state_getRuntimeVersion")["specVersion"] == 3
        text = log_of(old)
        assert f"will stop at block {h}" in text and message in text
        assert heights(old)[0] == h - 1, "it never authors or imports past H - 1"

        # Its operator installs the new release: it runs H and catches up.
        net.stop(old)
        net.start(old)
        target = heights(a)[1]
        wait_for(lambda: heights(old)[0] >= target, 60, lambda: f"catch-up: {table(net.nodes)}")
        with rpc(old) as r:
            assert r.call("chain_getBlockHash", h) == hashes[1]
            assert "upgradeRequired" not in r.call("system_health")
    finally:
        stop.set()
        net.close()
