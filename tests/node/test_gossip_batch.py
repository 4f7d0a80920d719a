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
from twinchain.primitives.types import Era, Extrinsic

ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    n = Node(NodeConfig(spec=dev_spec(), base_path=tmp_path, port=None, rpc_port=None))
    yield n
    n.close()


def _transfers(node: Node, signer: Keypair, count: int, start: int = 0) -> list[bytes]:
    call = node.client.runtime.call_by_name("Balances", "transfer", BOB.public, 10**12)
    g = node.client.genesis_hash
    return [Extrinsic.sign(call, signer, start + i, g, 1).encode() for i in range(count)]


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
    call = node.client.runtime.call_by_name("Balances", "transfer", BOB.public, 10**12)
    # Born at block 5 of a chain that is still at genesis: not valid yet, but well formed.
    early = Extrinsic.sign(
        call, ALICE, 0, node.client.genesis_hash, 1, era=Era.mortal(8, 13), birth_hash=b"\x01" * 32
    ).encode()
    assert node.on_transactions("peer", [early]) is Verdict.ACCEPT
    assert node.pool.ready_count == 0
