"""Transaction batches from gossip: one signature batch per message, typed verdicts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from twinchain import native
from twinchain.node.chain_spec import dev_spec
from twinchain.node.service import Node, NodeConfig
from twinchain.p2p.abc import Verdict
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Era, Extrinsic
from twinchain.runtime.runtime import SPEC_VERSION

ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    n = Node(NodeConfig(spec=dev_spec(), base_path=tmp_path, port=None))
    yield n
    n.close()


def _transfers(node: Node, signer: Keypair, count: int, start: int = 0) -> list[bytes]:
    call = node.chain.runtime.call_by_name("Balances", "transfer", BOB.public, 10**12)
    g = node.chain.genesis_hash
    return [Extrinsic.sign(call, signer, start + i, g, SPEC_VERSION).encode() for i in range(count)]


def test_one_verify_batch_per_gossip_message(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = native.verify_batch

    def spy(pks, msgs, sigs):  # type: ignore[no-untyped-def]
        calls.append(len(pks))
        return real(pks, msgs, sigs)

    monkeypatch.setattr(native, "verify_batch", spy)
    raws = _transfers(node, ALICE, 20)
    assert node.on_transactions("peer", raws) is Verdict.ACCEPT
    assert calls == [20], "the batch is verified in one call and not again per transaction"
    assert node.pool.ready_count == 20
    assert node.on_transactions("peer", raws) is Verdict.IGNORE  # all known already


def test_a_forged_signature_rejects_the_sender_but_keeps_the_good_ones(node: Node) -> None:
    good = _transfers(node, ALICE, 3)
    xt = Extrinsic.decode(_transfers(node, BOB, 1)[0])
    assert xt.signed is not None
    forged = replace(xt, signed=replace(xt.signed, signature=bytes(64))).encode()
    assert node.on_transactions("peer", [*good, forged, b"\x00garbage"]) is Verdict.REJECT
    assert node.pool.ready_count == 3
    assert not node.pool.contains(Extrinsic.decode(forged).hash)


def test_an_expired_transaction_is_not_the_senders_fault(node: Node) -> None:
    call = node.chain.runtime.call_by_name("Balances", "transfer", BOB.public, 10**12)
    # Born at block 5 of a chain that is still at genesis: not valid yet, but well formed.
    early = Extrinsic.sign(
        call,
        ALICE,
        0,
        node.chain.genesis_hash,
        SPEC_VERSION,
        era=Era.mortal(8, 13),
        birth_hash=b"\x01" * 32,
    ).encode()
    assert node.on_transactions("peer", [early]) is Verdict.ACCEPT
    assert node.pool.ready_count == 0


def test_a_reorg_puts_the_abandoned_branchs_transactions_back_in_the_pool(
    node: Node, tmp_path: Path
) -> None:
    from twinchain.consensus import aura
    from twinchain.node.blockchain import Blockchain
    from twinchain.primitives.types import extrinsic_hash

    t0, t1 = _transfers(node, ALICE, 2)
    assert node.on_transactions("peer", [t0, t1]) is Verdict.ACCEPT
    duration = node.chain.slot_duration()
    slot = aura.now_ms() // duration - 10
    # Branch X: one block carrying t0. Branch Y: two empty blocks from the same parent.
    x_chain, y_chain = (
        Blockchain(dev_spec(), tmp_path / "x"),
        Blockchain(dev_spec(), tmp_path / "y"),
    )
    try:
        x1, _ = x_chain.propose(ALICE, slot, slot * duration, [(b"", t0)])
        y1, _ = y_chain.propose(ALICE, slot + 1, (slot + 1) * duration, [])
        y2, _ = y_chain.propose(ALICE, slot + 2, (slot + 2) * duration, [])
    finally:
        x_chain.close()
        y_chain.close()
    assert len(x1.extrinsics) == 2  # the timestamp and t0
    h0, h1 = extrinsic_hash(t0), extrinsic_hash(t1)

    assert node.on_block("peer", x1.encode()) is Verdict.ACCEPT
    assert node.chain.best.hash == x1.hash
    assert not node.pool.contains(h0) and node.pool.is_ready(h1)

    assert node.on_block("peer", y1.encode()) is Verdict.ACCEPT
    assert node.on_block("peer", y2.encode()) is Verdict.ACCEPT
    assert node.chain.best.hash == y2.hash, "the longer branch is best"
    # t0 is on no block of the best chain any more: it is back, ready, and t1 after it.
    assert node.pool.is_ready(h0) and node.pool.is_ready(h1)
    block, _ = node.chain.propose(ALICE, slot + 3, (slot + 3) * duration, node.pool.ready())
    assert {extrinsic_hash(x) for x in block.extrinsics} >= {h0, h1}


def _block_elsewhere(node: Node, tmp_path: Path, raws: list[bytes]) -> Block:
    """Block #1 carrying ``raws``, authored by another node of the same chain (a past slot)."""
    from twinchain.consensus import aura
    from twinchain.node.blockchain import Blockchain

    duration = node.chain.slot_duration()
    slot = aura.now_ms() // duration - 5
    author = Blockchain(dev_spec(), tmp_path / "author")
    try:
        block, _ = author.propose(ALICE, slot, slot * duration, [(b"", r) for r in raws])
    finally:
        author.close()
    return block


def test_compact_blocks_rebuild_from_the_pool_or_fall_back_to_sync(
    node: Node, tmp_path: Path
) -> None:
    from twinchain.primitives.types import CompactBlock, decode_block_or_compact, extrinsic_hash

    t0, t1 = _transfers(node, ALICE, 2)
    block = _block_elsewhere(node, tmp_path, [t0, t1])
    pooled = {extrinsic_hash(t0), extrinsic_hash(t1)}
    compact = CompactBlock.of(block, lambda h: h in pooled)
    raw = compact.encode()
    assert len(raw) < len(block.encode()) - len(t0) - len(t1) + 2 * 40  # hashes, not bodies
    again = decode_block_or_compact(raw)
    assert again == compact and again.header.hash == block.hash
    assert isinstance(decode_block_or_compact(block.encode()), type(block))

    # t1 never reached this node: it cannot rebuild the block, and says IGNORE (sync then
    # fetches the full block from the peer) without importing anything.
    assert node.on_transactions("peer", [t0]) is Verdict.ACCEPT
    assert compact.missing(node.pool.get) == [extrinsic_hash(t1)]
    assert node.on_block("peer", raw) is Verdict.IGNORE
    assert node.compact_misses == 1 and node.chain.best.number == 0
    # Once t1 is pooled too, the same message rebuilds the exact block.
    assert node.on_transactions("peer", [t1]) is Verdict.ACCEPT
    assert node.on_block("peer", raw) is Verdict.ACCEPT
    assert node.chain.best.hash == block.hash
    assert not node.pool.contains(extrinsic_hash(t0))  # included: pruned
    # Seen again after import (its extrinsics left the pool): known, not a miss.
    assert node.on_block("peer", raw) is Verdict.IGNORE and node.compact_misses == 1


def test_a_compact_block_whose_body_does_not_match_its_header_is_rejected(
    node: Node, tmp_path: Path
) -> None:
    from twinchain.primitives.types import CompactBlock

    t0, t1 = _transfers(node, ALICE, 2)
    block = _block_elsewhere(node, tmp_path, [t0])
    # The header commits to [timestamp, t0]; a message that swaps t0 for t1 must not import.
    items = CompactBlock.of(block, lambda h: False).items
    assert len(items) == 2
    forged = CompactBlock(block.header, (*items[:1], (t1, None)))
    assert node.on_block("peer", forged.encode()) is Verdict.REJECT
    assert node.chain.best.number == 0
    from twinchain.primitives import codec

    for bad in (b"\xc0", codec.encode([block.header.to_wire(), [b"\x01" * 31], 1])):
        assert node.on_block("peer", bad) is Verdict.REJECT
