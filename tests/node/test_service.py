"""The node service in-process: Aura authoring on the dev chain, finality, clean shutdown."""

from __future__ import annotations

from pathlib import Path

import trio

from twinchain.node.chain_spec import dev_spec
from twinchain.node.client import Client
from twinchain.node.service import Node, NodeConfig
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic


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
