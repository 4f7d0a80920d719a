"""The node service in-process: Aura authoring on the dev chain, finality, clean shutdown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec, local_spec
from twinchain.node.service import Node, NodeConfig
from twinchain.p2p.abc import Verdict
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Extrinsic
from twinchain.runtime.runtime import SPEC_VERSION


async def test_dev_node_authors_finalizes_and_includes_transfers(tmp_path: Path) -> None:
    alice, bob = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
    node = Node(
        NodeConfig(
            spec=dev_spec(),
            base_path=tmp_path,
            validator=True,
            author_key=alice,
            port=None,
        )
    )
    call = node.chain.runtime.call_by_name("Balances", "transfer", bob.public, 10**12)
    hashes = [
        node.submit_extrinsic(
            Extrinsic.sign(call, alice, n, node.chain.genesis_hash, SPEC_VERSION).encode()
        )
        for n in range(3)
    ]
    assert node.pool.ready_count == 3
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with trio.fail_after(10):
            while node.chain.finalized.number < 3:
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    # The database was closed by the service; reopen it and check what it committed.
    chain = Blockchain(dev_spec(), tmp_path)
    try:
        best = chain.best
        assert best.number >= 3
        assert chain.finalized.number >= 3
        assert chain.blocks.justification(chain.finalized.hash) is not None
        included = {chain.blocks.extrinsic_location(h) is not None for h in hashes}
        assert included == {True}
        slots = [
            chain.blocks.header(chain.blocks.hash_at(n)).slot for n in range(1, best.number + 1)
        ]
        assert slots == sorted(set(slots)), "one block per slot, slots increasing"
    finally:
        chain.close()
    assert len(node.pool) == 0


def test_stale_gossiped_block_is_ignored_not_rejected(tmp_path: Path) -> None:
    # Regression: a block below our finalized height was REJECTed, so gossip penalized (and,
    # repeated, banned) the peer that relayed it; a validator that started late got isolated.
    spec = local_spec(["//Alice", "//Bob"])
    alice, bob = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
    node = Node(NodeConfig(spec=spec, base_path=tmp_path, port=None))
    peer, late = Blockchain(spec, None), Blockchain(spec, None)
    try:
        b1, _ = peer.propose(bob, 1, 1_000)
        assert node.on_block("peer", b1.encode()) is Verdict.ACCEPT
        node.chain.finalize(b1.hash)
        stale, _ = late.propose(alice, 2, 2_000)  # #1 on a branch finality has left behind
        assert node.on_block("late", stale.encode()) is Verdict.IGNORE
        assert node.chain.blocks.header(stale.hash) is None
        # A bad block at a live height is still the sender's fault.
        b2, _ = peer.propose(alice, 2, 2_000)
        forged = Block(replace(b2.header, seal=bytes(64)), b2.extrinsics)
        assert node.on_block("peer", forged.encode()) is Verdict.REJECT
        assert node.on_block("peer", b2.encode()) is Verdict.ACCEPT
    finally:
        peer.close()
        late.close()
        node.close()


async def test_author_waits_for_the_previous_slots_block_only_from_a_producing_author(
    tmp_path: Path,
) -> None:
    # Under load the previous slot's block arrives late; building on the block before it
    # forked the devnet for slots at a time. An author that is down costs a bounded wait.
    from twinchain.consensus import aura
    from twinchain.node.authoring import PARENT_WAIT_SHARE

    spec = local_spec(["//Alice", "//Bob"])
    alice, bob = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
    node = Node(NodeConfig(spec=spec, base_path=tmp_path, port=None))
    peer = Blockchain(spec, None)
    auths = node.chain.authorities_at(node.chain.best.hash)
    key = {alice.public: alice, bob.public: bob}
    slot = 11  # ours; the silent or producing author is the one of slot 10
    prev = aura.slot_author(auths, slot - 1)

    async def timed_wait(slot: int = slot) -> float:
        t0 = trio.current_time()
        await node.authoring.await_previous_block(slot, auths, 1000)
        return trio.current_time() - t0

    try:
        # Nothing of the previous author seen yet: no wait.
        assert await timed_wait() < 0.05
        b7, _ = peer.propose(key[aura.slot_author(auths, 7)], 7, 7_000)
        b8, _ = peer.propose(key[aura.slot_author(auths, 8)], 8, 8_000)
        for b in (b7, b8):
            assert node.on_block("peer", b.encode()) is Verdict.ACCEPT
        # It produced recently: wait for its block, and stop waiting once it is in.
        b10, _ = peer.propose(key[prev], 10, 10_000)
        async with trio.open_nursery() as nursery:

            async def deliver() -> None:
                await trio.sleep(0.1)
                assert node.on_block("peer", b10.encode()) is Verdict.ACCEPT

            nursery.start_soon(deliver)
            waited = await timed_wait()
        assert 0.09 < waited < 0.3 and node.chain.best.hash == b10.hash
        # Our head is the previous slot's block already: no wait.
        assert await timed_wait() < 0.05
        # Its block for slot 12 never comes: the wait is bounded.
        assert 0.9 * PARENT_WAIT_SHARE < await timed_wait(slot + 2) < PARENT_WAIT_SHARE + 0.2
    finally:
        peer.close()
        node.close()


def test_a_late_author_gets_less_time_to_build_but_never_none() -> None:
    # Counted from the slot's start: a late author's smaller block lets the next one start
    # on time (counted from its own start, lateness compounded into forks under load).
    from twinchain.node.authoring import MIN_PROPOSE_SHARE, PROPOSE_SHARE, propose_budget_ms

    assert propose_budget_ms(1000, 0) == PROPOSE_SHARE * 1000
    assert propose_budget_ms(1000, 100) == PROPOSE_SHARE * 1000 - 100
    assert propose_budget_ms(1000, 900) == MIN_PROPOSE_SHARE * 1000
    assert propose_budget_ms(2000, 0) == 2 * propose_budget_ms(1000, 0)
