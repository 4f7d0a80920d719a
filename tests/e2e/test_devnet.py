"""Facility validators as real processes on loopback: Aura across four authorities, finality
with one and two of them down, a fresh node syncing, and a double-signing validator."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from realnet import wait_for

from twinchain.client import AccessDenied, Client, RpcClient
from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import load_keypair
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, POWER

SLOT_MS = 500  # half-second slots: the block and finality counts in half the time


class Devnet:
    def __init__(self, base: Path, validators: int = 4) -> None:
        self.base = base
        self.spec, self.nodes = manager.plan(base, validators, SLOT_MS)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.boot: list[str] = []

    def start(self, node: NodeInfo, extra: tuple[str, ...] = ()) -> None:
        proc = manager.start_node(self.base, node, self.boot, extra)
        self.procs[node.slug] = proc
        rpc = manager.wait_rpc(node, proc)
        addrs = rpc.call("system_localListenAddresses")
        if addrs and addrs[0] not in self.boot:
            self.boot.append(addrs[0])

    def stop(self, node: NodeInfo) -> None:
        proc = self.procs.pop(node.slug)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, f"{node.name} did not stop cleanly"

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(10)

    @staticmethod
    def rpc(node: NodeInfo) -> RpcClient:
        return RpcClient(node.rpc_url, timeout=5)

    def heights(self, node: NodeInfo) -> tuple[int, int]:
        with self.rpc(node) as rpc:
            best = int(rpc.call("chain_getHeader")["number"], 16)
            fin = int(rpc.call("chain_getHeader", rpc.call("chain_getFinalizedHead"))["number"], 16)
        return best, fin


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    net = Devnet(tmp_path / "devnet")
    try:
        yield net
    finally:
        net.close()


@pytest.mark.slow
def test_four_facilities_finalize_tolerate_failures_and_sync(devnet: Devnet) -> None:
    a, _, c, d = devnet.nodes
    for n in devnet.nodes:
        devnet.start(n)

    # Four validators finalize at least 20 blocks and agree on every finalized hash.
    wait_for(lambda: all(devnet.heights(n)[1] >= 20 for n in devnet.nodes), 90, "20 finalized")
    hashes = []
    for n in devnet.nodes:
        with devnet.rpc(n) as rpc:
            hashes.append([rpc.call("chain_getBlockHash", k) for k in range(1, 21)])
    assert all(h == hashes[0] for h in hashes)
    authors = set()
    with devnet.rpc(a) as rpc:
        for k in range(1, 21):
            authors.add(int(rpc.call("chain_getHeader", hashes[0][k - 1])["slot"], 16) % 4)
    assert len(authors) == 4, "every facility authored blocks"

    # One of four down: blocks and finality go on.
    devnet.stop(d)
    _, fin0 = devnet.heights(a)
    wait_for(lambda: devnet.heights(a)[1] >= fin0 + 5, 60, "finality with 3 of 4")

    # Two of four down: blocks go on, finality stops...
    devnet.stop(c)
    # A round the stopped node had already voted in may still complete: its last votes are
    # handled within a couple of slots, but on a loaded machine not always within 1 s.
    time.sleep(max(2 * SLOT_MS / 1000, 2.0))
    best1, fin1 = devnet.heights(a)
    time.sleep(6 * SLOT_MS / 1000)
    best2, fin2 = devnet.heights(a)
    assert best2 > best1, "blocks go on with half the authorities"
    assert fin2 == fin1, "finality must stop with 2 of 4"
    # ... and resumes once one is back.
    devnet.start(c)
    wait_for(lambda: devnet.heights(a)[1] > fin2 + 2, 90, "finality to resume")

    # A fifth, empty node syncs the whole chain and then follows the head.
    fifth = NodeInfo(
        "Observer", "observer", str(devnet.base / "observer"), *manager.free_ports(2), ""
    )
    Path(fifth.base_path).mkdir(parents=True)
    proc = manager.start_node(devnet.base, fifth, devnet.boot, validator=False)
    devnet.procs["observer"] = proc
    manager.wait_rpc(fifth, proc)
    target = devnet.heights(a)[1]
    wait_for(lambda: devnet.heights(fifth)[1] >= target, 90, "the fifth node to sync")
    with devnet.rpc(fifth) as r5, devnet.rpc(a) as ra:
        assert r5.call("chain_getBlockHash", target) == ra.call("chain_getBlockHash", target)
    head = devnet.heights(a)[0]
    wait_for(lambda: devnet.heights(fifth)[0] >= head + 2, 30, "the fifth node to follow")


@pytest.mark.slow
def test_double_signing_validator_is_reported_on_chain(devnet: Devnet) -> None:
    a, b, c, d = devnet.nodes  # d signs two blocks in each of its slots
    for n in (a, b, c):
        devnet.start(n)
    devnet.start(d, ("--unsafe-double-sign",))

    def offences() -> int:
        with devnet.rpc(a) as rpc:
            prefix = "0x" + _offences_prefix().hex()
            return len(rpc.call("state_getKeysPaged", prefix, 10, None))

    wait_for(lambda: offences() >= 1, 120, "equivocation evidence on chain")
    # Finality still goes on, and every node agrees on every finalized block.
    wait_for(lambda: all(devnet.heights(n)[1] >= 10 for n in (a, b, c)), 90, "finality")
    fin = min(devnet.heights(n)[1] for n in devnet.nodes)
    for k in range(1, fin + 1):
        seen = set()
        for n in devnet.nodes:
            with devnet.rpc(n) as rpc:
                seen.add(rpc.call("chain_getBlockHash", k))
        assert len(seen) == 1, f"conflicting finalized blocks at #{k}"


def _offences_prefix() -> bytes:
    from twinchain.runtime.runtime import Runtime

    return Runtime().authority.Offences.prefix


@pytest.mark.slow
def test_devnet_up_streams_simulated_telemetry_from_a_gateway_per_facility(
    tmp_path: Path,
) -> None:
    base = tmp_path / "devnet"
    nodes = manager.up(base, 4)
    gateways = manager.load_gateways(base)
    workers = manager.load_workers(base)
    pids = [g.pid for g in gateways] + [w.pid for w in workers]
    try:
        assert len(gateways) == 4 and len(workers) == 4 and all(pids)

        def flowing() -> bool:
            rows = manager.status(base)
            return all((r.get("gateway") or {}).get("readings_final") for r in rows)

        wait_for(flowing, 90, "finalized readings from every facility's gateway")

        def archived() -> bool:
            # Each gateway delivers to its own facility's node, which keeps the archive.
            rows = manager.status(base)
            return all((r.get("gateway") or {}).get("readings_archived") for r in rows)

        wait_for(archived, 60, "every facility's archive to hold its gateway's readings")
        for r in manager.status(base):
            g = r["gateway"]
            assert not g["archive_error"] and not g["archive_refused_kept"], (r["name"], g)
        domain = json.loads((base / "domain.json").read_text())
        for i, n in enumerate(nodes):
            twins = domain[n.slug]["twins"]
            with devnet_rpc(n) as rpc:
                for twin in twins.values():
                    assert rpc.call("twin_equipment", twin)["facility"] == i
                aggs = [a for t in twins.values() for a in rpc.call("twin_telemetryAggregates", t)]
                assert aggs and {a["metric"] for a in aggs} <= DEFAULT_PUBLIC, "public only"
                assert rpc.call("twin_facility", i)["verifiedNow"] is True

        # The grant between competitors: the second facility's auditor reads the first
        # facility's first twin, raw and proven, from the first facility's node; the second
        # facility's operator, without a grant, is refused.
        owner, reader = gateways[0].slug, gateways[1].slug
        (grant,) = domain[owner]["grants"]
        assert grant["reader"] == domain[reader]["auditor"] and grant["twin"] == 0

        def key(account: str) -> Keypair:
            return load_keypair(str(base / "keys" / f"acct-{account[2:]}"))

        with Client(nodes[0].rpc_url, timeout=30) as c:
            got = c.readings(0, POWER, 0, 2**62, key=key(grant["reader"]))
            assert got and all(r.metric == POWER for r in got)
            with pytest.raises(AccessDenied):
                c.readings(0, POWER, 0, 2**62, key=key(domain[reader]["operator"]))

        def models_registered() -> bool:
            # The workers register their detector models (the genesis has degradation ones).
            with devnet_rpc(nodes[0]) as rpc:
                return any(m["kind"] == "cusum" for m in rpc.call("twin_models"))

        wait_for(models_registered, 60, "the PdM workers' models registered on chain")
        assert all(manager._alive(w.pid) for w in workers), "a worker exited: see worker.log"
    finally:
        manager.down(base)
    assert not any(manager._alive(p) for p in pids), "devnet down stops gateways and workers"


def devnet_rpc(node: NodeInfo) -> RpcClient:
    return RpcClient(node.rpc_url, timeout=5)
