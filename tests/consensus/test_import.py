"""Block import re-executes every block and rejects any mismatch, leaving the chain as it was."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twinchain.consensus.proofs import JustificationError, encode_justification
from twinchain.native.merkle import merkle_root
from twinchain.node.blockchain import Blockchain, BlockImportError
from twinchain.node.chain_spec import dev_spec, local_spec
from twinchain.primitives.finality import PRECOMMIT, SignedVote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Extrinsic
from twinchain.runtime.runtime import SPEC_VERSION

ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
CHARLIE = Keypair.from_dev_name("Charlie")


def _transfers(chain: Blockchain, n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    call = chain.runtime.call_by_name("Balances", "transfer", BOB.public, 10**12)
    return [
        (b"", Extrinsic.sign(call, ALICE, start + i, chain.genesis_hash, SPEC_VERSION).encode())
        for i in range(n)
    ]


@pytest.fixture
def pair() -> tuple[Blockchain, Blockchain, Block]:
    author, follower = Blockchain(dev_spec(), None), Blockchain(dev_spec(), None)
    block, _ = author.propose(ALICE, 10, 10_000, _transfers(author, 4))
    return author, follower, block


def _resealed(block: Block, key: Keypair = ALICE, **changes: object) -> Block:
    header = replace(block.header, seal=b"", **changes).sealed(key)
    return Block(header, block.extrinsics)


def test_valid_block_imports_and_becomes_best(pair: tuple[Blockchain, Blockchain, Block]) -> None:
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
    author, follower = Blockchain(spec, None), Blockchain(spec, None)
    # Slot 10 belongs to authorities[10 % 2] = Alice; Bob may not author it.
    block, _ = author.propose(BOB, 10, 10_000)
    with pytest.raises(BlockImportError, match="sealed"):
        follower.import_block(block, check_time=False)
    good, _ = author.propose(ALICE, 10, 10_000, parent=author.blocks.header(author.genesis_hash))
    follower.import_block(good, check_time=False)
    assert follower.best.hash == good.hash


def test_finality_needs_a_supermajority_and_is_stored() -> None:
    spec = local_spec(["//Alice", "//Bob", "//Charlie"])
    chain = Blockchain(spec, None)
    _, res = chain.propose(BOB, 1, 1_000)
    assert not chain.self_finalize(ALICE, res.hash), "one of three is not a supermajority"
    target = (res.hash, 1)
    gh = chain.genesis_hash
    votes = [SignedVote.sign(k, PRECOMMIT, 1, 0, target, gh) for k in (ALICE, BOB, CHARLIE)]
    # Two of three is exactly 2/3, not more: with three authorities all three must vote.
    for weak in (votes[:2], [votes[0], votes[1], votes[0]]):
        with pytest.raises(JustificationError):
            chain.verify_justification(res.hash, encode_justification(1, 0, target, weak, []))
    just = encode_justification(1, 0, target, votes, [])
    chain.verify_justification(res.hash, just)
    chain.finalize(res.hash, just)
    assert chain.finalized.hash == res.hash
    assert chain.blocks.justification(res.hash) == just


def test_blocks_off_the_finalized_chain_are_refused() -> None:
    spec = local_spec(["//Alice", "//Bob"])
    chain, other = Blockchain(spec, None), Blockchain(spec, None)
    a1, _ = chain.propose(BOB, 1, 1_000)
    b1, _ = other.propose(ALICE, 2, 2_000)  # a sibling of a1
    b2, _ = other.propose(BOB, 3, 3_000)
    chain.import_block(b1, check_time=False)
    chain.finalize(a1.hash)
    with pytest.raises(BlockImportError, match="finalized chain") as err:
        chain.import_block(b2, check_time=False)
    # Refused, but "stale": an author that had not seen the finality yet is not malicious.
    assert err.value.reason == "stale"
    assert chain.best.hash == a1.hash and chain.finalized.hash == a1.hash


def test_unknown_blocks_at_or_below_the_finalized_height_are_stale_not_invalid() -> None:
    # Regression: a late validator relaying its old fork blocks was banned for them.
    spec = local_spec(["//Alice", "//Bob"])
    chain, other = Blockchain(spec, None), Blockchain(spec, None)
    chain.propose(BOB, 1, 1_000)
    a2, _ = chain.propose(ALICE, 2, 2_000)
    chain.finalize(a2.hash)
    b1, _ = other.propose(ALICE, 2, 2_000)  # a sibling of a1: known parent (genesis)
    b2, _ = other.propose(BOB, 3, 3_000)  # at the finalized height, parent unknown to chain
    for block in (b1, b2):
        with pytest.raises(BlockImportError) as err:
            chain.import_block(block, check_time=False)
        assert err.value.reason == "stale", err.value
    assert chain.best.hash == a2.hash and chain.blocks.header(b1.hash) is None


def test_finalizing_a_fork_moves_the_best_chain_onto_it() -> None:
    spec = local_spec(["//Alice", "//Bob"])
    chain, other = Blockchain(spec, None), Blockchain(spec, None)
    chain.propose(BOB, 1, 1_000)
    a2, _ = chain.propose(ALICE, 2, 2_000)
    b1, _ = other.propose(BOB, 3, 3_000)
    chain.import_block(b1, check_time=False)
    assert chain.best.hash == a2.hash
    chain.finalize(b1.hash)
    assert chain.best.hash == b1.hash and chain.blocks.hash_at(1) == b1.hash
    assert chain.blocks.hash_at(2) is None


def test_state_dependent_weight_is_weighed_on_the_state_the_extrinsic_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: Telemetry.submit weighed more when it closed a twin's window. Import weighed
    # every extrinsic on the parent state, the author on the state it applied it to; the
    # second of two submits for one twin got another weight (so fee), and every other node
    # rejected the block with a state root mismatch. (Its weight no longer depends on the
    # state; here it depends on the closes queued so far, as a call's weight may.)
    from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch
    from twinchain.runtime.weights.telemetry import W_SUBMIT_BASE

    spec = dev_spec()
    g = spec.genesis
    g["balances"]["balances"] += [["//imp-gw", 10**18]]
    g["roles"] = {"grants": [["//Alice", "EquipmentManufacturer"], ["//imp-gw", "Gateway"]]}
    twin = {"manufacturer": "//Alice", "class": "cnc-mill", "model": "M", "lifecycle": "Active"}
    g["equipment"] = {"twins": [twin | {"serial": "S0"}]}
    g["telemetry"] = {"devices": [{"device": "//imp-dev", "twin": 0}], "window_ms": 10_000}
    author, follower = Blockchain(spec, None), Blockchain(spec, None)
    dev, gw = Keypair.from_dev_name("imp-dev"), Keypair.from_dev_name("imp-gw")
    rt, gh = author.runtime, author.genesis_hash
    submit_call = rt.telemetry.calls_by_name["submit"]
    assert follower.runtime.telemetry.calls_by_name["submit"] is submit_call
    monkeypatch.setattr(
        submit_call,
        "weight",
        lambda rt, batches: W_SUBMIT_BASE + 1_000_000 * rt.telemetry.queued_closes(),
    )

    def submit(seq: int, ts: int) -> tuple[bytes, bytes]:
        batch = sign_batch(dev, gh, 0, seq, [(1, ts, 20_000)], DEFAULT_PUBLIC).commitment()
        call = rt.call_by_name("Telemetry", "submit", [batch])
        return b"", Extrinsic.sign(call, gw, seq, gh, rt.spec_version).encode()

    b1, _ = author.propose(ALICE, 100, 100_000, [submit(0, 50_000)])  # opens window 50 s
    # Both in window 60 s: the first closes window 50 s, the second closes nothing.
    b2, res = author.propose(ALICE, 101, 101_000, [submit(1, 60_000), submit(2, 61_000)])
    assert [o.success for o in res.outcomes] == [True] * 3
    assert res.outcomes[1].weight < res.outcomes[2].weight
    follower.import_block(b1, check_time=False)
    follower.import_block(b2, check_time=False)
    assert follower.best.state_root == author.best.state_root


def test_pool_revalidation_verifies_each_signature_once_and_still_rejects_forgeries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from twinchain.runtime import executive
    from twinchain.runtime.executive import InvalidTransaction

    chain = Blockchain(dev_spec(), None)
    checked: list[int] = []
    real = executive.native.verify_batch

    def counting(*args: list[bytes]) -> list[bool]:
        checked.append(len(args[0]))
        return real(*args)

    monkeypatch.setattr(executive.native, "verify_batch", counting)
    (_, raw), (_, raw2) = _transfers(chain, 2)
    for _ in range(3):  # as after three blocks
        assert chain.validate_transaction(raw).nonce == 0
    assert chain.preverify([raw, raw2]) == [True, True]
    assert chain.validate_transaction(raw2).nonce == 1
    assert checked == [1, 1], "raw once, raw2 once (in the batch); no re-verification"
    xt = Extrinsic.decode(raw)
    assert xt.signed is not None
    forged = replace(xt, signed=replace(xt.signed, signature=bytes(64))).encode()
    for _ in range(2):
        with pytest.raises(InvalidTransaction, match="signature"):
            chain.validate_transaction(forged)
    assert chain.preverify([forged]) == [False]
    # Cached decodings do not hide state changes: once included, the transfer is stale.
    chain.propose(ALICE, 10, 10_000, [(b"", raw)])
    with pytest.raises(InvalidTransaction) as err:
        chain.validate_transaction(raw)
    assert err.value.code == "Stale"


def test_propose_stops_at_max_bytes_without_dropping_what_is_left() -> None:
    chain = Blockchain(dev_spec(), None)
    txs = _transfers(chain, 6)
    inherent = len(chain.runtime.call_by_name("Timestamp", "set", 10_000).encode()) + 64
    invalid: list[bytes] = []
    cap = inherent + 3 * len(txs[0][1])
    block, res = chain.propose(
        ALICE, 10, 10_000, txs, max_bytes=cap, on_invalid=lambda h, e: invalid.append(h)
    )
    assert block.extrinsics[1:] == tuple(raw for _, raw in txs[: len(block.extrinsics) - 1])
    assert 1 <= len(block.extrinsics) - 1 < 6 and sum(map(len, block.extrinsics)) <= cap
    assert not invalid and all(o.success for o in res.outcomes)
