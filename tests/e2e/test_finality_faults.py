"""Finality through the everyday faults of issue 17, in its order, on a real 4-facility devnet
with its gateways streaming: SIGSTOP validator 0 for 10 s, the same for validator 1, SIGKILL
and restart validator 2 with its exact command line, then the same for validator 3. After each
fault, once the node is back and connected, finality must advance on every node within
RESUME_SLOTS slots, and a restart must never be taken for (or reported as) an equivocation."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import realnet
from realnet import (
    equivocation_lines,
    heights,
    kill_and_restart,
    offences_on_chain,
    peers,
    table,
    wait_for,
)

from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo

SLOT_MS = 1000  # the devnet's default slot
SLOT_S = SLOT_MS / 1000
PAUSE_S = 10
# The liveness bound. Healthy finality trails the head by ~2 blocks, so 10 slots is
# generous on a loaded 2-core machine, yet a node whose finality froze never meets it.
RESUME_SLOTS = 10
# A restarted node imports Python, opens LevelDB and dials its peers: slow on a shared machine.
CONNECT_TIMEOUT_S = 60
# After a restart, finality must keep advancing, not just tick once (in the issue, validator
# 2's finality froze within a minute of its restart): probed again and again for this long.
WATCH_S = 10
# The restarts hit a devnet that has run for over a minute, as in the issue (validator 2 froze
# at #75): restarts at #20 and #42 were seen to rejoin finality where one at #76 never did.
RESTARTS_AFTER = 75


def finality_advances(nodes: list[NodeInfo], what: str) -> None:
    realnet.finality_advances(nodes, what, RESUME_SLOTS, SLOT_S)


def back_and_connected(nodes: list[NodeInfo], node: NodeInfo, what: str) -> None:
    wait_for(
        lambda: peers(node) >= len(nodes) - 1,
        CONNECT_TIMEOUT_S,
        lambda: f"{node.name} back with {len(nodes) - 1} peers {what}: {table(nodes)}",
    )


def keeps_advancing(nodes: list[NodeInfo], what: str) -> None:
    end = time.monotonic() + WATCH_S
    while time.monotonic() < end:
        finality_advances(nodes, what)


def no_equivocation(nodes: list[NodeInfo], what: str) -> None:
    lines = equivocation_lines(nodes)
    assert not lines, f"an honest restart was reported as an equivocation {what}: {lines[:4]}"
    for n in nodes:
        assert offences_on_chain(n) == 0, f"equivocation offence on {n.name}'s chain {what}"


@pytest.mark.slow
def test_finality_survives_pauses_and_restarts(tmp_path: Path) -> None:
    base = tmp_path / "devnet"
    # Gateways stream telemetry the whole time, as in the run; the PdM workers add
    # nothing to finality but CPU, so they stay out.
    nodes = manager.up(base, 4, SLOT_MS, workers=False)
    try:
        wait_for(
            lambda: all(heights(n)[1] >= 3 for n in nodes),
            90,
            lambda: f"first finalized blocks: {table(nodes)}",
        )

        # 1. A validator paused (a laptop lid, a stalled VM) for 10 s, then resumed: 0, then 1.
        for v in nodes[:2]:
            os.kill(v.pid, signal.SIGSTOP)
            time.sleep(PAUSE_S)  # the fault itself, not a wait for a condition
            os.kill(v.pid, signal.SIGCONT)
            what = f"after SIGCONT of {v.name}"
            back_and_connected(nodes, v, what)
            finality_advances(nodes, what)

        wait_for(
            lambda: all(heights(n)[1] >= RESTARTS_AFTER for n in nodes),
            120,
            lambda: f"#{RESTARTS_AFTER} finalized: {table(nodes)}",
        )
        # 2. and 3. A validator crashes and is restarted with its exact command line: 2, then 3.
        for v in nodes[2:]:
            kill_and_restart(v)
            manager.save(base, nodes)  # `down` below stops the new process
            what = f"after SIGKILL and restart of {v.name}"
            back_and_connected(nodes, v, what)
            finality_advances(nodes, what)
            keeps_advancing(nodes, what)
            no_equivocation(nodes, what)

        gateways = manager.load_gateways(base)
        assert all(manager._alive(g.pid) for g in gateways), "a gateway exited: see gateway.log"
    finally:
        manager.down(base)
