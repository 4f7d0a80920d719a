"""The node service in-process: Aura authoring on the dev chain, finality, clean shutdown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio

from twinchain.node.chain_spec import dev_spec, local_spec
from twinchain.node.client import Client
from twinchain.node.service import Node, NodeConfig
from twinchain.p2p.abc import Verdict
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Extrinsic


async def test_dev_node_authors_finalizes_and_includes_transfers(tmp_path: Path) -> None:
    alice, bob = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
    node = Node(
        NodeConfig(
            spec=dev_spec(),
            base_path=tmp_path,
            validator=True,
            author_key=alice,
            rpc_port=None,
            port=None,
        )
    )
    call = node.client.runtime.call_by_name("Balances", "transfer", bob.public, 10**12)
    hashes = [
        node.submit_extrinsic(Extrinsic.sign(call, alice, n, node.client.genesis_hash, 1).encode())
        for n in range(3)
    ]
    assert node.pool.ready_count == 3
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with trio.fail_after(10):
            while node.client.finalized.number < 3:
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    # The database was closed by the service; reopen it and check what it committed.
    client = Client(dev_spec(), tmp_path)
    try:
        best = client.best
        assert best.number >= 3
        assert client.finalized.number >= 3
        assert client.blocks.justification(client.finalized.hash) is not None
        included = {client.blocks.extrinsic_location(h) is not None for h in hashes}
        assert included == {True}
        slots = [
            client.blocks.header(client.blocks.hash_at(n)).slot for n in range(1, best.number + 1)
        ]
        assert slots == sorted(set(slots)), "one block per slot, slots increasing"
    finally:
        client.close()
    assert len(node.pool) == 0


def test_stale_gossiped_block_is_ignored_not_rejected(tmp_path: Path) -> None:
    # Regression: a block below our finalized height was REJECTed, so gossip penalized (and,
    # repeated, banned) the peer that relayed it; a validator that started late got isolated.
    spec = local_spec(["//Alice", "//Bob"])
    alice, bob = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
    node = Node(NodeConfig(spec=spec, base_path=tmp_path, rpc_port=None, port=None))
    peer, late = Client(spec, None), Client(spec, None)
    try:
        b1, _ = peer.propose(bob, 1, 1_000)
        assert node.on_block("peer", b1.encode()) is Verdict.ACCEPT
        node.client.finalize(b1.hash)
        stale, _ = late.propose(alice, 2, 2_000)  # #1 on a branch finality has left behind
        assert node.on_block("late", stale.encode()) is Verdict.IGNORE
        assert node.client.blocks.header(stale.hash) is None
        # A bad block at a live height is still the sender's fault.
        b2, _ = peer.propose(alice, 2, 2_000)
        forged = Block(replace(b2.header, seal=bytes(64)), b2.extrinsics)
        assert node.on_block("peer", forged.encode()) is Verdict.REJECT
        assert node.on_block("peer", b2.encode()) is Verdict.ACCEPT
    finally:
        peer.close()
        late.close()
        node.close()
