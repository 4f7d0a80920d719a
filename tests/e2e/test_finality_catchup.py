"""A node that has every block but missed every finality vote for 50+ blocks finalizes them
from a peer's justification within 2 slots of reconnecting (issue 17).

The node is built for real: a 4-validator devnet finalizes 55+ blocks and stops; its blocks are
exported (``twinchain export-blocks``) and re-executed into a fresh node's LevelDB by the
client's own import, which finalizes nothing (``import-blocks`` would finalize them all). Two
validators come back: half the authorities cannot finalize anything new, so the only way for
the node to learn what is final is the justification its peers already hold."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realnet import finalized, heights, peers, rpc, table, wait_for

from twinchain.devnet import manager
from twinchain.devnet.manager import NodeInfo
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import ChainSpec
from twinchain.node.cli import read_block_file
from twinchain.primitives.types import Block

# Half-second slots: the 55 finalized blocks the node misses take half the time; the bound
# below is in slots (plus a connection allowance in seconds), as the issue states it.
SLOT_MS = 500
SLOT_S = SLOT_MS / 1000
MISSED = 50
# The bound is 2 slots from reconnecting. "Reconnected" is when the node first counts
# a peer; opening the sync stream and exchanging statuses after that takes under a second
# idle, more on a loaded 2-core machine: this allowance, not a slot count, covers it.
CONNECT_ALLOWANCE_S = 3.0
CATCH_UP_S = 2 * SLOT_S + CONNECT_ALLOWANCE_S


@pytest.mark.slow
def test_node_with_all_blocks_finalizes_from_a_peers_justification(tmp_path: Path) -> None:
    base = tmp_path / "devnet"
    spec_path = base / "spec.json"
    _, validators = manager.plan(base, 4, SLOT_MS)
    a, b = validators[:2]
    follower = NodeInfo("Follower", "follower", str(base / "follower"), *manager.free_ports(2), "")
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(node: NodeInfo, boot: list[NodeInfo], validator: bool = True) -> None:
        proc = manager.start_node(base, node, [m.multiaddr for m in boot], validator=validator)
        procs[node.slug] = proc
        manager.wait_rpc(node, proc)

    try:
        # A full mesh, started together (as `devnet up` does), finalizes MISSED + 5 blocks.
        for n in validators:
            procs[n.slug] = manager.start_node(
                base, n, [m.multiaddr for m in validators if m is not n]
            )
        for n in validators:
            manager.wait_rpc(n, procs[n.slug])
        wait_for(
            lambda: heights(a)[1] >= MISSED + 5,
            150,
            lambda: f"#{MISSED + 5} finalized: {table(validators)}",
        )
        for n in validators:  # a clean stop: LevelDB closed, ready to export from
            procs[n.slug].send_signal(signal.SIGTERM)
        for n in validators:
            assert procs.pop(n.slug).wait(30) == 0, f"{n.name} did not stop cleanly"

        # The follower gets every block of Aachen's chain and not one vote or justification.
        blocks = tmp_path / "blocks.bin"
        subprocess.run(
            [sys.executable, "-m", "twinchain", "export-blocks",
             "--chain", str(spec_path), "--base-path", a.base_path, str(blocks)],
            check=True, capture_output=True,
        )  # fmt: skip
        client = Blockchain(ChainSpec.load(spec_path), Path(follower.base_path))
        try:
            for raw in read_block_file(blocks):
                block = Block.decode(raw)
                if block.header.number > 0:
                    client.import_block(block, check_time=False)
            assert client.finalized.number == 0
            has = client.best.number
        finally:
            client.close()

        # Two of four validators: no new finality, only the justifications they already hold.
        start(a, [b])
        start(b, [a])
        target, target_hash = finalized(a)
        assert target >= MISSED and has >= target, f"follower has #{has}, Aachen final #{target}"

        start(follower, [a, b], validator=False)
        connected = wait_for(
            lambda: peers(follower) >= 1,
            30,
            lambda: f"the follower to connect: {table([a, b, follower])}",
            interval=0.05,
        )
        wait_for(
            lambda: finalized(follower)[0] >= target,
            connected + CATCH_UP_S - time.monotonic(),
            lambda: (
                f"the follower to finalize #{target} within {CATCH_UP_S:.0f} s of "
                f"connecting: {table([a, b, follower])}"
            ),
            interval=0.05,
        )
        with rpc(follower) as r:
            assert r.call("chain_getBlockHash", target) == target_hash
    finally:
        for p in procs.values():
            p.kill()
            p.wait(10)
