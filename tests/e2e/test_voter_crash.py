"""A finality voter killed at each instant around a vote (decided, recorded, sent) restarts
without equivocating, and finality goes on: the vote is on disk before it is sent, and a
restarted voter re-sends what it recorded instead of signing anew (issue 17)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import realnet
from realnet import (
    command_line,
    equivocation_lines,
    heights,
    offences_on_chain,
    peers,
    table,
    wait_for,
)

from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo
from twinchain.primitives.faults import ENV, EXIT_STATUS

SLOT_S = 1.0
RESUME_SLOTS = 10


def restart(node: NodeInfo, cmd: list[str], crash_at: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop(ENV, None)
    if crash_at:
        env[ENV] = crash_at
    log = open(Path(node.base_path) / "node.log", "ab")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    node.pid = proc.pid
    return proc


def finality_advances(nodes: list[NodeInfo], what: str) -> None:
    realnet.finality_advances(nodes, what, RESUME_SLOTS, SLOT_S)


@pytest.mark.slow
def test_a_voter_killed_around_a_vote_restarts_without_equivocating(tmp_path: Path) -> None:
    base = tmp_path / "devnet"
    nodes = manager.up(base, 4, 1000, gateways=False, workers=False)
    try:
        wait_for(
            lambda: all(heights(n)[1] >= 3 for n in nodes),
            90,
            lambda: f"first finalized blocks: {table(nodes)}",
        )
        victim = nodes[2]
        cmd = command_line(victim.pid)
        for point in ("vote-decided", "vote-recorded", "vote-sent"):
            os.kill(victim.pid, 9)
            wait_for(lambda: not manager._alive(victim.pid), 20, "the victim to die", 0.05)
            # Crash at its 5th vote after the restart: a round or two into voting again.
            proc = restart(victim, cmd, f"{point}:5")
            manager.save(base, nodes)
            wait_for(lambda p=proc: p.poll() is not None, 60, f"the crash at {point}")
            assert proc.returncode == EXIT_STATUS, f"{point}: exit {proc.returncode}"
            restart(victim, cmd, None)
            manager.save(base, nodes)
            what = f"after a crash at {point}"
            wait_for(
                lambda: peers(victim) >= 3,
                60,
                lambda w=what: f"{victim.name} back {w}: {table(nodes)}",
            )
            finality_advances(nodes, what)
            finality_advances(nodes, what)
        lines = equivocation_lines(nodes)
        assert not lines, f"a restart was reported as an equivocation: {lines[:4]}"
        assert all(offences_on_chain(n) == 0 for n in nodes)
    finally:
        manager.down(base)
