"""A validator cut off for 13 s and 19 s hears from its peers again within seconds of each heal.
Its TCP connections to the others may survive the cut on retransmission back-off (seen in a
chaos run: 12 s of silence after the heal); the p2p liveness pings close silent connections
and the bootnode dialers dial afresh. Whether TCP's back-off bites depends on its RTO and the
cut's length, so this does not fail every time without liveness. Needs root and netns."""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator

import pytest

from twinchain.devnet import manager
from twinchain.devnet.chaos import invariants as inv
from twinchain.devnet.chaos import runner
from twinchain.devnet.chaos.netns import Netem, Network, free_subnet, probe

pytestmark = pytest.mark.slow
SLOT_MS = 1000
#: How soon after the heal the cut-off validator must have caught up with the others.
HEARD_WITHIN_S = 5.0


def _wait(pred: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def devnet(tmp_path: object) -> Iterator[tuple[Network, inv.Monitor]]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    why = probe()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    runner.sweep_stale()
    net = Network(secrets.token_hex(3), 4, free_subnet(random.Random()), Netem(50, 20, 1.0))
    net.setup()
    cluster = mon = None
    try:
        _, nodes, _ = manager.plan_all(tmp_path, 4, SLOT_MS, hosts=net.hosts, faults=False)  # type: ignore[arg-type]
        for n in nodes:
            n.prometheus_port = 0
        cluster = runner.Cluster(tmp_path, nodes, net)  # type: ignore[arg-type]
        cluster.log = "info,sync=debug,p2p=debug"
        for i in range(4):
            cluster.start(i)
        for i, n in enumerate(nodes):
            manager.wait_rpc(n, cluster.procs[i], timeout=90)  # type: ignore[arg-type]
        mon = inv.Monitor(nodes, cluster.live, cluster.pid, SLOT_MS, interval=0.2)
        mon.start()
        assert mon.wait_finalized(3, 90), "the devnet never finalized #3"
        yield net, mon
        assert not mon.violations, mon.violations
    finally:
        if mon is not None:
            mon.stop()
        if cluster is not None:
            cluster.stop_all()
        net.teardown()


def test_a_cut_off_validator_hears_its_peers_within_seconds_of_the_heal(
    devnet: tuple[Network, inv.Monitor],
) -> None:
    net, mon = devnet
    three, one = [0, 1, 2], 3
    # Two cut lengths: where TCP's next retransmission falls after the heal depends on its
    # RTO (about 0.3 s on these links) and the cut's length; one of the two lands far from it.
    for cut_s in (13.0, 19.0):
        net.partition([three, [one]])
        try:
            time.sleep(cut_s)
            ahead = max(mon.seen[i].finalized for i in three)
        finally:
            net.heal()
        healed = time.monotonic()
        caught_up = _wait(lambda a=ahead: mon.seen[one].finalized >= a, 30)
        took = time.monotonic() - healed
        print(f"cut {cut_s:.0f} s: the cut-off validator finalized #{ahead} {took:.1f} s after")
        assert caught_up, f"the cut-off validator did not finalize #{ahead} within 30 s"
        assert took <= HEARD_WITHIN_S, f"the cut-off validator took {took:.1f} s to catch up"
