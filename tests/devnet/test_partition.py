"""Partitions of a 4-validator devnet whose validators are separate hosts (one network
namespace each, a bridge between): 2|2 stops finality until the heal, and it is back within
10 slots after; 3|1 lets the three go on and the one catch up after the heal; never two
finalized blocks at one height. Needs root and network namespaces (skipped otherwise)."""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from twinchain.devnet import manager
from twinchain.devnet.chaos import invariants as inv
from twinchain.devnet.chaos import runner
from twinchain.devnet.chaos.netns import Network, free_subnet, probe

pytestmark = pytest.mark.slow
SLOT_MS = 1000


@dataclass
class Devnet:
    net: Network
    cluster: runner.Cluster
    mon: inv.Monitor

    def finalized(self, i: int) -> int:
        return self.mon.seen[i].finalized


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    why = probe()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    runner.sweep_stale()
    base = tmp_path_factory.mktemp("partition")
    net = Network(secrets.token_hex(3), 4, free_subnet(random.Random()))  # no netem: timing
    net.setup()
    cluster = mon = None
    try:
        _, nodes, _ = manager.plan_all(base, 4, SLOT_MS, hosts=net.hosts, faults=False)
        for n in nodes:
            n.prometheus_port = 0
        cluster = runner.Cluster(base, nodes, net)
        for i in range(4):
            cluster.start(i)
        for i, n in enumerate(nodes):
            manager.wait_rpc(n, cluster.procs[i], timeout=90)  # type: ignore[arg-type]
        mon = inv.Monitor(nodes, cluster.live, cluster.pid, SLOT_MS, interval=0.25)
        mon.start()
        assert mon.wait_finalized(3, 90), "the devnet never finalized #3"
        yield Devnet(net, cluster, mon)
        assert not mon.violations, mon.violations
    finally:
        if mon is not None:
            mon.stop()
        if cluster is not None:
            cluster.stop_all()
        net.teardown()


def _wait(pred: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _recovered_in_slots(d: Devnet, fault: int, kind: str) -> float:
    r = d.mon.healed(fault, kind)
    # 10 slots, plus the monitor's poll interval to see it.
    d.mon.wait_recovered(inv.LIVENESS_SLOTS * SLOT_MS / 1000 + 1)
    assert r.seconds is not None, f"{kind}: no finality past #{r.target - 1} within 10 slots"
    return r.seconds * 1000 / SLOT_MS


def test_partition_2_2_stops_finality_until_the_heal(devnet: Devnet) -> None:
    d = devnet
    d.net.partition([[0, 1], [2, 3]])
    try:
        time.sleep(3)  # a round already complete on one side may still land
        frozen = max(d.finalized(i) for i in range(4))
        time.sleep(12)
        assert max(d.finalized(i) for i in range(4)) == frozen, "finality during a 2|2 split"
    finally:
        d.net.heal()
    slots = _recovered_in_slots(d, 0, "partition 2|2")
    assert slots <= inv.LIVENESS_SLOTS
    assert not [v for v in d.mon.violations if v.kind == "safety"]


def test_partition_3_1_the_three_go_on_and_the_one_catches_up(devnet: Devnet) -> None:
    d = devnet
    three, one = [0, 1, 3], 2
    d.net.partition([three, [one]])
    try:
        time.sleep(2)
        start = min(d.finalized(i) for i in three)
        lone = d.finalized(one)
        # More than 2/3 of the voters can reach each other: finality goes on, a block at
        # least every 10 slots.
        slots = inv.LIVENESS_SLOTS * SLOT_MS / 1000
        for k in (1, 2):
            assert _wait(lambda k=k: min(d.finalized(i) for i in three) >= start + k, slots + 1), (
                "the three did not finalize during a 3|1 split"
            )
        assert d.finalized(one) <= lone + 1, "the cut-off one finalized on its own"
    finally:
        d.net.heal()
    slots = _recovered_in_slots(d, 1, "partition 3|1")
    assert slots <= inv.LIVENESS_SLOTS
    ahead = max(d.finalized(i) for i in three)
    assert _wait(lambda: d.finalized(one) >= ahead, 10), "the one did not catch up"
    assert not [v for v in d.mon.violations if v.kind == "safety"]
