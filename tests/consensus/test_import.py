"""Block import re-executes every block and rejects any mismatch, leaving the chain as it was."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twinchain.consensus.grandpa import (
    PRECOMMIT,
    JustificationError,
    SignedVote,
    encode_justification,
)
from twinchain.node.chain_spec import dev_spec, local_spec
from twinchain.node.client import BlockImportError, Client
from twinchain.primitives.keys import Keypair
from twinchain.primitives.merkle import merkle_root
from twinchain.primitives.types import Block, Extrinsic

ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
CHARLIE = Keypair.from_dev_name("Charlie")


def _transfers(client: Client, n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    call = client.runtime.call_by_name("Balances", "transfer", BOB.public, 10**12)
    return [
        (b"", Extrinsic.sign(call, ALICE, start + i, client.genesis_hash, 1).encode())
        for i in range(n)
    ]


@pytest.fixture
def pair() -> tuple[Client, Client, Block]:
    author, follower = Client(dev_spec(), None), Client(dev_spec(), None)
    block, _ = author.propose(ALICE, 10, 10_000, _transfers(author, 4))
    return author, follower, block


def _resealed(block: Block, key: Keypair = ALICE, **changes: object) -> Block:
    header = replace(block.header, seal=b"", **changes).sealed(key)
    return Block(header, block.extrinsics)


def test_valid_block_imports_and_becomes_best(pair: tuple[Client, Client, Block]) -> None:
    _, follower, block = pair
    res = follower.import_block(block, check_time=False)
    assert res.is_best and follower.best.hash == block.hash
    assert [o.success for o in res.outcomes] == [True] * 5
    with pytest.raises(BlockImportError) as err:
        follower.import_block(block, check_time=False)
    assert err.value.reason == "known"


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda b: _resealed(b, state_root=b"\x01" * 32), "state root"),
        (lambda b: _resealed(b, extrinsics_root=b"\x02" * 32), "extrinsics root"),
        (lambda b: _resealed(b, key=BOB), "sealed"),
        (lambda b: Block(replace(b.header, seal=bytes(64)), b.extrinsics), "sealed"),
        (lambda b: _resealed(b, slot=0), "slot"),
        (lambda b: _resealed(b, number=5), "number"),
    ],
)
def test_tampered_block_is_rejected(pair, mutate, why) -> None:  # type: ignore[no-untyped-def]
    _, follower, block = pair
    genesis = follower.best
    with pytest.raises(BlockImportError) as err:
        follower.import_block(mutate(block), check_time=False)
    assert err.value.reason == "invalid" and why in str(err.value)
    assert follower.best == genesis


def test_block_with_a_forged_signature_is_rejected(pair) -> None:  # type: ignore[no-untyped-def]
    _, follower, block = pair
    xt = Extrinsic.decode(block.extrinsics[2])
    assert xt.signed is not None
    forged = replace(xt, signed=replace(xt.signed, signature=bytes(64)))
    xts = (*block.extrinsics[:2], forged.encode(), *block.extrinsics[3:])
    bad = Block(
        replace(block.header, seal=b"", extrinsics_root=merkle_root(xts)).sealed(ALICE), xts
    )
    with pytest.raises(BlockImportError, match="signature"):
        follower.import_block(bad, check_time=False)


def test_future_and_orphan_blocks_wait(pair) -> None:  # type: ignore[no-untyped-def]
    author, follower, block = pair
    with pytest.raises(BlockImportError) as err:
        follower.import_block(block, now_ms=block.header.slot * 1000 - 5_000)
    assert err.value.reason == "future"
    nxt, _ = author.propose(ALICE, 11, 11_000, _transfers(author, 1, start=4))
    with pytest.raises(BlockImportError) as err:
        follower.import_block(nxt, check_time=False)
    assert err.value.reason == "unknown-parent"
    follower.import_block(block, check_time=False)
    follower.import_block(nxt, check_time=False)
    assert follower.best.hash == nxt.hash and follower.best.state_root == author.best.state_root


def test_wrong_author_for_slot_on_a_two_validator_chain() -> None:
    spec = local_spec(["//Alice", "//Bob"])
    author, follower = Client(spec, None), Client(spec, None)
    # Slot 10 belongs to authorities[10 % 2] = Alice; Bob may not author it.
    block, _ = author.propose(BOB, 10, 10_000)
    with pytest.raises(BlockImportError, match="sealed"):
        follower.import_block(block, check_time=False)
    good, _ = author.propose(ALICE, 10, 10_000, parent=author.blocks.header(author.genesis_hash))
    follower.import_block(good, check_time=False)
    assert follower.best.hash == good.hash


def test_finality_needs_a_supermajority_and_is_stored() -> None:
    spec = local_spec(["//Alice", "//Bob", "//Charlie"])
    client = Client(spec, None)
    _, res = client.propose(BOB, 1, 1_000)
    assert not client.self_finalize(ALICE, res.hash), "one of three is not a supermajority"
    target = (res.hash, 1)
    gh = client.genesis_hash
    votes = [SignedVote.sign(k, PRECOMMIT, 1, 0, target, gh) for k in (ALICE, BOB, CHARLIE)]
    # Two of three is exactly 2/3, not more: with three authorities all three must vote.
    for weak in (votes[:2], [votes[0], votes[1], votes[0]]):
        with pytest.raises(JustificationError):
            client.verify_justification(res.hash, encode_justification(1, 0, target, weak, []))
    just = encode_justification(1, 0, target, votes, [])
    client.verify_justification(res.hash, just)
    client.finalize(res.hash, just)
    assert client.finalized.hash == res.hash
    assert client.blocks.justification(res.hash) == just


def test_blocks_off_the_finalized_chain_are_refused() -> None:
    spec = local_spec(["//Alice", "//Bob"])
    client, other = Client(spec, None), Client(spec, None)
    a1, _ = client.propose(BOB, 1, 1_000)
    b1, _ = other.propose(ALICE, 2, 2_000)  # a sibling of a1
    b2, _ = other.propose(BOB, 3, 3_000)
    client.import_block(b1, check_time=False)
    client.finalize(a1.hash)
    with pytest.raises(BlockImportError, match="finalized chain") as err:
        client.import_block(b2, check_time=False)
    assert err.value.reason == "invalid"
    assert client.best.hash == a1.hash and client.finalized.hash == a1.hash


def test_finalizing_a_fork_moves_the_best_chain_onto_it() -> None:
    spec = local_spec(["//Alice", "//Bob"])
    client, other = Client(spec, None), Client(spec, None)
    client.propose(BOB, 1, 1_000)
    a2, _ = client.propose(ALICE, 2, 2_000)
    b1, _ = other.propose(BOB, 3, 3_000)
    client.import_block(b1, check_time=False)
    assert client.best.hash == a2.hash
    client.finalize(b1.hash)
    assert client.best.hash == b1.hash and client.blocks.hash_at(1) == b1.hash
    assert client.blocks.hash_at(2) is None
