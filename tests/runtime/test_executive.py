"""The executive: transactional extrinsics, events and phases, weight, origins, fees, blocks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from twinchain import native
from twinchain.native.merkle import merkle_root
from twinchain.primitives.codec import U64, Bool
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Era, Extrinsic, Header
from twinchain.runtime import executive as executive_mod
from twinchain.runtime import runtime as runtime_mod
from twinchain.runtime.executive import Executive, InvalidBlock, InvalidTransaction
from twinchain.runtime.framework import (
    SIGNED,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageValue,
    call,
    ensure_signed,
)
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets.balances import FEE_AUTHOR_PERCENT, Balances
from twinchain.runtime.pallets.session import ownership_message
from twinchain.runtime.pallets.system import MAX_BLOCK_WEIGHT
from twinchain.runtime.runtime import Runtime
from twinchain.runtime.weights.balances import W_TRANSFER
from twinchain.runtime.weights.system import EXTRINSIC_BASE_WEIGHT

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
UNIT = 10**12
PROBE_INDEX = 200


class Probe(Pallet):
    """A test-only pallet whose calls write, emit, then fail on request."""

    name = "Probe"

    Marker = StorageValue(U64, 0)

    class Event(PalletEvents):
        Poked = (("value", U64),)

    class Error(PalletErrors):
        Refused = "asked to fail"

    @call(0, weight=1_000, origin=SIGNED, args=(("value", U64), ("fail", Bool)))
    def poke(self, origin: Origin, value: int, fail: bool) -> None:
        ensure_signed(origin)
        self.Marker.put(value)
        self.deposit(self.Event.Poked(value))
        if fail:
            raise self.Error.Refused()

    @call(1, weight=1_000, origin=SIGNED, args=(("value", U64),))
    def crash(self, origin: Origin, value: int) -> None:
        ensure_signed(origin)
        self.Marker.put(value)
        raise ValueError("a pallet bug")

    @call(2, weight=lambda rt, w: w, origin=SIGNED, args=(("weight", U64),))
    def heavy(self, origin: Origin, weight: int) -> None:
        ensure_signed(origin)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch, make_chain: Any) -> Any:
    monkeypatch.setattr(runtime_mod, "PALLETS", [*runtime_mod.PALLETS, (PROBE_INDEX, Probe)])
    return make_chain()


class Witness(Probe):
    """A Probe whose ``poke`` calls carry a signature for the pallet to check (DAVE's over
    the poked value: good for even values, garbage for odd ones), collected through the
    executive's generic hook as Telemetry's device signatures are."""

    def __init__(self, runtime: Runtime, index: int) -> None:
        super().__init__(runtime, index)
        self.noted: list[tuple[int, bool]] = []

    @staticmethod
    def check_of(value: int) -> tuple[bytes, bytes, bytes]:
        msg = hash_for(Domain.SIGNING, value.to_bytes(8, "big"))
        return DAVE.public, msg, DAVE.sign(msg) if value % 2 == 0 else bytes(64)

    def extra_signatures(self, calls: Any) -> list[tuple[bytes, bytes, bytes]]:
        poke = self.calls_by_name["poke"]
        return [self.check_of(args[0]) for p, cd, args in calls if p is self and cd is poke]

    def note_verified(self, checks: Any, oks: Any) -> None:
        for (_, msg, _), ok in zip(checks, oks, strict=True):
            value = next(v for v in range(16) if self.check_of(v)[1] == msg)
            self.noted.append((value, ok))


def marker(chain: Any) -> int:
    return chain.rt.pallets[PROBE_INDEX].Marker.get()


def timestamp_xt(rt: Runtime, slot: int) -> bytes:
    return Extrinsic(rt.call_by_name("Timestamp", "set", slot * 1000)).encode()


def next_block(chain: Any, raws: list[bytes], slot: int | None = None) -> Block:
    """A block on the chain's head with exactly ``raws`` (no state root check in the executive)."""
    header = Header(
        parent_hash=chain.head_hash,
        number=chain.head_number + 1,
        state_root=b"\x00" * 32,
        extrinsics_root=merkle_root(raws),
        slot=chain.slot + 1 if slot is None else slot,
    )
    return Block(header, tuple(raws))


def reexecute(chain: Any, block: Block, **kw: Any) -> Any:
    """Execute ``block`` on the head state with a fresh runtime, as an importing node does."""
    rt = Runtime(genesis_hash=chain.rt.genesis_hash)
    return Executive(rt).execute_block(chain.state, block, **kw)


# --------------------------------------------------------------------------- extra signatures


def test_extra_signatures_of_every_pallet_join_the_blocks_one_batch(
    monkeypatch: pytest.MonkeyPatch, make_chain: Any
) -> None:
    """The executive names no pallet: it asks each for the signatures its calls carry, checks
    them with the extrinsics' in ONE verify_batch call and hands back the verdicts."""
    monkeypatch.setattr(runtime_mod, "PALLETS", [*runtime_mod.PALLETS, (PROBE_INDEX, Witness)])
    chain = make_chain()
    raws = [
        chain.sign(BOB, chain.call("Probe", "poke", 2, False)),
        chain.sign(CHARLIE, chain.call("Probe", "poke", 3, False)),
    ]
    chain.produce(*raws)
    sizes: list[int] = []
    real = native.verify_batch

    def counting(*args: Any) -> list[bool]:
        sizes.append(len(args[0]))
        return real(*args)

    monkeypatch.setattr(native, "verify_batch", counting)
    rt = Runtime(genesis_hash=chain.rt.genesis_hash)
    Executive(rt).execute_block(chain.pre_states[-1], chain.blocks[-1])
    assert sizes == [4]  # two extrinsic signatures, two the pokes carry
    assert rt.pallets[PROBE_INDEX].noted == [(2, True), (3, False)]
    # Pool admission batches them the same way.
    sizes.clear()
    oks = Executive(rt).signature_batch(chain.pre_states[-1], raws, 0, chain.hashes[0])
    assert oks == [True, True] and sizes == [4]


# --------------------------------------------------------------------------- transactionality


def test_failed_call_reverts_only_its_own_writes_and_events(probe: Any) -> None:
    bob_before = probe.free(BOB.public)
    probe.start_block()
    ok = probe.apply(probe.sign(BOB, probe.call("Probe", "poke", 7, False), 0))
    bad = probe.apply(probe.sign(BOB, probe.call("Probe", "poke", 9, True), 1))
    assert ok.success and not bad.success
    assert (bad.error.module, bad.error.error) == ("Probe", "Refused")
    probe.finish_block()

    assert marker(probe) == 7  # the first call's write stays, the second's is gone
    assert probe.nonce(BOB.public) == 2  # both nonces bumped
    assert probe.free(BOB.public) == bob_before - ok.fee - bad.fee  # both fees paid
    events = probe.events()
    pokes = [e for e in events if e["event"] == "Poked"]
    assert [(e["extrinsic"], e["args"]["value"]) for e in pokes] == [(1, 7)]
    failed = [e for e in events if e["event"] == "ExtrinsicFailed"]
    assert len(failed) == 1 and failed[0]["extrinsic"] == 2
    assert failed[0]["args"] == {
        "module": "Probe",
        "error": "Refused",
        "weight": bad.weight,
        "fee": bad.fee,
    }
    fee_events = [e for e in events if e["event"] == "FeePaid"]
    assert [e["extrinsic"] for e in fee_events] == [1, 2]
    assert probe.issuance() == probe.total_balance()


def test_pallet_bug_fails_the_call_not_the_block(probe: Any) -> None:
    probe.start_block()
    out = probe.apply(probe.sign(BOB, probe.call("Probe", "crash", 5)))
    assert not out.success
    assert (out.error.module, out.error.error) == ("System", "Other")
    probe.finish_block()
    assert marker(probe) == 0
    assert probe.nonce(BOB.public) == 1


# --------------------------------------------------------------------------- events


def test_events_carry_phase_and_extrinsic_index(make_chain: Any) -> None:
    chain = make_chain(session_length=2)
    sudo = chain.call(
        "Sudo",
        "sudo",
        list(chain.call("Authority", "set_authorities", [BOB.public, ALICE.public]).to_wire()),
    )
    transfer = chain.call("Balances", "transfer", DAVE.public, 5 * UNIT)
    chain.produce(chain.sign(ALICE, sudo), chain.sign(BOB, transfer))
    events = chain.events()
    by_index: dict[int, list[str]] = {}
    for e in events:
        assert e["phase"] == "apply"
        by_index.setdefault(e["extrinsic"], []).append(f"{e['pallet']}.{e['event']}")
    assert by_index[0] == ["System.ExtrinsicSuccess"]  # the timestamp inherent
    assert by_index[1] == [
        "Authority.AuthoritiesQueued",
        "Sudo.Sudid",
        "Balances.FeePaid",
        "System.ExtrinsicSuccess",
    ]
    assert by_index[2] == [
        "System.NewAccount",
        "Balances.Endowed",
        "Balances.Transfer",
        "Balances.FeePaid",
        "System.ExtrinsicSuccess",
    ]
    chain.view()
    assert chain.rt.system.EventCount.get() == len(events)
    assert chain.rt.system.ExtrinsicCount.get() == 3

    # Block 2 opens a session: its set change is an initialization-phase event.
    chain.produce()
    first = chain.events()[0]
    assert (first["phase"], first["pallet"], first["event"]) == (
        "initialization",
        "Authority",
        "NewSession",
    )


def test_events_are_cleared_each_block(chain: Any) -> None:
    chain.produce(chain.sign(BOB, chain.call("System", "remark", b"hi")))
    assert any(e["event"] == "Remarked" for e in chain.events())
    chain.produce()
    assert [e["event"] for e in chain.events()] == ["ExtrinsicSuccess"]


# --------------------------------------------------------------------------- weight


def test_block_weight_limit(probe: Any) -> None:
    probe.start_block()
    used = probe.ex.block_weight
    room = MAX_BLOCK_WEIGHT - used - EXTRINSIC_BASE_WEIGHT
    filler = probe.apply(probe.sign(BOB, probe.call("Probe", "heavy", room), 0))
    assert filler.success and probe.ex.block_weight == MAX_BLOCK_WEIGHT
    with pytest.raises(InvalidTransaction) as e:
        probe.apply(probe.sign(BOB, probe.call("System", "remark", b""), 1))
    assert e.value.code == "ExhaustsResources"
    block = probe.finish_block()
    assert len(block.extrinsics) == 2  # the inherent and the filler only
    assert probe.nonce(BOB.public) == 1  # the rejected one changed nothing
    probe.view()
    assert probe.rt.system.BlockWeight.get() == MAX_BLOCK_WEIGHT


def test_call_heavier_than_a_block_is_never_valid(probe: Any) -> None:
    raw = probe.sign(BOB, probe.call("Probe", "heavy", MAX_BLOCK_WEIGHT))
    with pytest.raises(InvalidTransaction) as e:
        probe.ex.validate_transaction(probe.state, raw, 0, probe.head_hash)
    assert e.value.code == "ExhaustsResources"
    probe.start_block()
    with pytest.raises(InvalidTransaction) as e:
        probe.ex.apply_extrinsic(raw)
    assert e.value.code == "ExhaustsResources"


def test_block_weight_limit_with_patched_constant(
    chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.start_block()
    remark_weight = EXTRINSIC_BASE_WEIGHT + 10_000
    monkeypatch.setattr(
        executive_mod, "MAX_BLOCK_WEIGHT", chain.ex.block_weight + 2 * remark_weight
    )
    for n in range(2):
        assert chain.apply(chain.sign(BOB, chain.call("System", "remark", b""), n)).success
    with pytest.raises(InvalidTransaction) as e:
        chain.ex.apply_extrinsic(chain.sign(BOB, chain.call("System", "remark", b""), 2))
    assert e.value.code == "ExhaustsResources"


# --------------------------------------------------------------------------- origins


def test_signed_call_needing_root_fails_bad_origin_but_pays(chain: Any) -> None:
    before = chain.free(BOB.public)
    (out,) = chain.produce(
        chain.sign(BOB, chain.call("Balances", "force_set_balance", BOB.public, 10**20))
    )
    assert not out.success
    assert (out.error.module, out.error.error) == ("System", "BadOrigin")
    assert chain.free(BOB.public) == before - out.fee
    assert chain.nonce(BOB.public) == 1


def test_unsigned_non_inherent_is_invalid(block: Any) -> None:
    raw = Extrinsic(block.call("Balances", "transfer", DAVE.public, UNIT)).encode()
    with pytest.raises(InvalidTransaction) as e:
        block.ex.apply_extrinsic(raw)
    assert e.value.code == "Unsigned"
    with pytest.raises(InvalidTransaction) as e:
        block.ex.validate_transaction(block.state, raw, 0, block.head_hash)
    assert e.value.code == "Unsigned"


def test_signed_inherent_is_invalid(block: Any) -> None:
    raw = block.sign(ALICE, block.call("Timestamp", "set", 1000))
    with pytest.raises(InvalidTransaction) as e:
        block.ex.apply_extrinsic(raw)
    assert e.value.code == "Call"


def test_undecodable_and_oversized_extrinsics(block: Any) -> None:
    for raw, code in [
        (b"\xc1", "Decode"),
        (Extrinsic(block.call("System", "remark", b"")).encode()[:-1], "Decode"),
        (b"\x93\x01\xc0\x93\x63\x00\x90", "Decode"),  # unknown pallet 99
        (b"\x00" * (executive_mod.MAX_EXTRINSIC_SIZE + 1), "TooLarge"),
    ]:
        with pytest.raises(InvalidTransaction) as e:
            block.ex.apply_extrinsic(raw)
        assert e.value.code == code


# --------------------------------------------------------------------------- fees


def test_fee_is_charged_split_and_burned(chain: Any) -> None:
    raw = chain.sign(BOB, chain.call("Balances", "transfer", CHARLIE.public, 3 * UNIT), tip=777)
    weight = EXTRINSIC_BASE_WEIGHT + W_TRANSFER
    fee = Balances.compute_fee(len(raw), weight, 777)
    before = {k.public: chain.free(k.public) for k in (ALICE, BOB, CHARLIE)}
    issuance = chain.issuance()
    (out,) = chain.produce(raw)
    assert out.success and out.fee == fee and out.weight == weight
    to_author = fee * FEE_AUTHOR_PERCENT // 100
    assert chain.free(BOB.public) == before[BOB.public] - 3 * UNIT - fee
    assert chain.free(CHARLIE.public) == before[CHARLIE.public] + 3 * UNIT
    assert chain.free(ALICE.public) == before[ALICE.public] + to_author  # Alice authored it
    assert chain.issuance() == issuance - (fee - to_author)
    assert chain.issuance() == chain.total_balance()
    paid = [e for e in chain.events() if e["event"] == "FeePaid"]
    assert paid[0]["args"] == {"who": BOB.public, "fee": fee, "tip": 777}


def test_fee_unpayable_is_invalid(block: Any) -> None:
    raw = block.sign(DAVE, block.call("System", "remark", b""))
    with pytest.raises(InvalidTransaction) as e:
        block.ex.apply_extrinsic(raw)
    assert e.value.code == "Payment"
    assert block.rt.system.nonce(DAVE.public) == 0


def test_validate_transaction_reports_pool_fields(chain: Any) -> None:
    raw = chain.sign(BOB, chain.call("System", "remark", b"x"), tip=5)
    v = chain.ex.validate_transaction(chain.state, raw, 0, chain.head_hash)
    assert v.signer == BOB.public and v.nonce == 0 and v.priority == 5
    assert v.requires == [] and v.provides == [BOB.public + (0).to_bytes(8, "big")]
    assert v.fee == Balances.compute_fee(len(raw), v.weight, 5)
    assert v.hash == Extrinsic.decode(raw).hash
    assert v.longevity == executive_mod.TX_LONGEVITY_IMMORTAL


# --------------------------------------------------------------------------- whole blocks


def test_execute_block_reproduces_the_built_block(probe: Any) -> None:
    raws = [
        probe.sign(BOB, probe.call("Balances", "transfer", DAVE.public, 2 * UNIT), 0),
        probe.sign(BOB, probe.call("Probe", "poke", 3, True), 1),
        probe.sign(CHARLIE, probe.call("System", "remark", b"twin")),
        probe.sign(ALICE, probe.call("Probe", "poke", 4, False)),
    ]
    outs = probe.produce(*raws)
    assert [o.success for o in outs] == [True, False, True, True]
    built, changes = probe.blocks[-1], probe.last_changes
    pre = probe.pre_states[-1]
    for verified in ((), [Extrinsic.decode(r).hash for r in raws]):
        rt = Runtime(genesis_hash=probe.rt.genesis_hash)
        result = Executive(rt).execute_block(pre, built, verified=verified)
        assert result.changes == changes
        assert [(o.hash, o.success, o.fee) for o in result.outcomes[1:]] == [
            (o.hash, o.success, o.fee) for o in outs
        ]


def test_second_block_reexecutes_too(chain: Any) -> None:
    chain.produce(chain.sign(BOB, chain.call("Balances", "transfer", DAVE.public, UNIT)))
    chain.produce(chain.sign(DAVE, chain.call("System", "remark", b"a")))
    rt = Runtime(genesis_hash=chain.rt.genesis_hash)
    assert Executive(rt).execute_block(chain.pre_states[-1], chain.blocks[-1]).changes == (
        chain.last_changes
    )


def test_tampered_extrinsics_root(chain: Any) -> None:
    chain.produce(chain.sign(BOB, chain.call("System", "remark", b"")))
    built = chain.blocks[-1]
    bad = Block(replace(built.header, extrinsics_root=b"\x01" * 32), built.extrinsics)
    rt = Runtime(genesis_hash=chain.rt.genesis_hash)
    with pytest.raises(InvalidBlock, match="extrinsics root"):
        Executive(rt).execute_block(chain.pre_states[-1], bad)
    dropped = Block(built.header, built.extrinsics[:1])
    with pytest.raises(InvalidBlock, match="extrinsics root"):
        Executive(rt).execute_block(chain.pre_states[-1], dropped)


def test_missing_timestamp_inherent(chain: Any) -> None:
    block = next_block(chain, [chain.sign(BOB, chain.call("System", "remark", b""))])
    with pytest.raises(InvalidBlock, match="timestamp"):
        reexecute(chain, block)
    with pytest.raises(InvalidBlock, match="timestamp"):
        reexecute(chain, next_block(chain, []))


def test_inherent_after_signed_extrinsic(chain: Any) -> None:
    remark = chain.sign(BOB, chain.call("System", "remark", b""))
    block = next_block(chain, [remark, timestamp_xt(chain.rt, chain.slot + 1)])
    with pytest.raises(InvalidBlock, match="BadInherent"):
        reexecute(chain, block)
    ok = next_block(chain, [timestamp_xt(chain.rt, chain.slot + 1), remark])
    assert reexecute(chain, ok).outcomes[1].success


def test_duplicate_or_wrong_timestamp(chain: Any) -> None:
    ts = timestamp_xt(chain.rt, 1)
    with pytest.raises(InvalidBlock, match="AlreadySet"):
        reexecute(chain, next_block(chain, [ts, ts], slot=1))
    with pytest.raises(InvalidBlock, match="WrongSlot"):
        reexecute(chain, next_block(chain, [timestamp_xt(chain.rt, 2)], slot=1))


def test_bad_signature_in_block(chain: Any) -> None:
    good = chain.sign(BOB, chain.call("System", "remark", b"x"))
    xt = Extrinsic.decode(good)
    assert xt.signed is not None
    sig = bytearray(xt.signed.signature)
    sig[10] ^= 1
    forged = replace(xt, signed=replace(xt.signed, signature=bytes(sig))).encode()
    ts = timestamp_xt(chain.rt, 1)
    with pytest.raises(InvalidBlock, match="signature"):
        reexecute(chain, next_block(chain, [ts, forged]))
    # Signed by Charlie but claiming to be Bob.
    other = Extrinsic.decode(chain.sign(CHARLIE, chain.call("System", "remark", b"x"), 0))
    assert other.signed is not None
    claimed = replace(other, signed=replace(other.signed, signer=BOB.public)).encode()
    with pytest.raises(InvalidBlock, match="signature"):
        reexecute(chain, next_block(chain, [ts, claimed]))
    # The honest original executes.
    assert reexecute(chain, next_block(chain, [ts, good])).outcomes[1].success


def test_block_with_invalid_transaction(chain: Any) -> None:
    ts = timestamp_xt(chain.rt, 1)
    stale = chain.sign(BOB, chain.call("System", "remark", b""), 0)
    with pytest.raises(InvalidBlock, match="Stale"):
        reexecute(chain, next_block(chain, [ts, stale, stale]))
    with pytest.raises(InvalidBlock, match="undecodable"):
        reexecute(chain, next_block(chain, [ts, b"\xc1"]))
    unsigned = Extrinsic(chain.call("System", "remark", b"")).encode()
    with pytest.raises(InvalidBlock):
        reexecute(chain, next_block(chain, [ts, unsigned]))


# --------------------------------------------------------------------------- pool validation memo


def pool_executive(chain: Any) -> Executive:
    """A separate executive for pool validation, as the Client keeps one."""
    return Executive(Runtime(genesis_hash=chain.rt.genesis_hash))


def pool_validate(ex: Executive, chain: Any, raw: bytes, **kw: Any) -> Any:
    return ex.validate_transaction(chain.state, raw, chain.head_number, chain.head_hash, **kw)


def test_revalidation_sees_the_nonce_and_fee_move_on(chain: Any) -> None:
    """The memo keeps only what the bytes fix: a block that uses the nonce or drains the
    signer's funds makes the very same (memoized) extrinsic invalid."""
    ex = pool_executive(chain)
    raw = chain.sign(BOB, chain.call("System", "remark", b"pool"), 0)
    later = chain.sign(CHARLIE, chain.call("System", "remark", b"pool"), 1)
    for _ in range(2):  # the second round runs on the memo
        assert pool_validate(ex, chain, raw).requires == []
        assert pool_validate(ex, chain, later).requires == [CHARLIE.public + (0).to_bytes(8, "big")]
    assert len(ex._messages) == 2
    # Another nonce-0 transaction of Bob's goes into a block: the pool's one is stale now.
    chain.produce(chain.sign(BOB, chain.call("System", "remark", b"other"), 0))
    with pytest.raises(InvalidTransaction) as e:
        pool_validate(ex, chain, raw)
    assert e.value.code == "Stale"
    # Charlie's funds are gone: the fee of the remembered extrinsic is no longer payable.
    inner = list(chain.call("Balances", "force_set_balance", CHARLIE.public, 0).to_wire())
    chain.produce(chain.sign(ALICE, chain.call("Sudo", "sudo", inner)))
    with pytest.raises(InvalidTransaction) as e:
        pool_validate(ex, chain, later)
    assert e.value.code == "Payment"


def test_revalidation_rejects_an_expired_era_after_the_memo_was_filled(chain: Any) -> None:
    ex = pool_executive(chain)
    chain.produce()
    era = Era.mortal(4, chain.head_number)  # born at block 1, dies after block 4
    raw = chain.sign(
        BOB, chain.call("System", "remark", b""), 0, era=era, birth_hash=chain.head_hash
    )
    while chain.head_number < 5:  # blocks 2 to 5 may include it
        n = chain.head_number
        assert pool_validate(ex, chain, raw).longevity == max(0, era.death(n) - n - 1)
        chain.produce()
    assert len(ex._messages) == 1  # one birth hash all along: the memo was used
    # Best block 5: the era's birth for block 6 is block 5, whose hash the signature does not
    # cover, whatever the memo holds for birth block 1.
    with pytest.raises(InvalidTransaction) as e:
        pool_validate(ex, chain, raw)
    assert e.value.code == "BadProof"


def test_signing_memo_is_keyed_by_birth_hash_and_spec_version(chain: Any) -> None:
    """Same bytes, another birth block hash (a fork at the birth height) or another runtime
    version: another message, so the memoized one must not be reused."""
    ex = pool_executive(chain)
    chain.produce()
    era = Era.mortal(8, chain.head_number)  # born at the best block: its hash is the parent's
    raw = chain.sign(
        BOB, chain.call("System", "remark", b""), 0, era=era, birth_hash=chain.head_hash
    )
    pool_validate(ex, chain, raw)
    fork_hash = b"\x99" * 32  # another block at the same height, on the same state
    with pytest.raises(InvalidTransaction) as e:
        ex.validate_transaction(chain.state, raw, chain.head_number, fork_hash)
    assert e.value.code == "BadProof"
    assert pool_validate(ex, chain, raw).nonce == 0  # the right birth hash still passes
    # Another runtime version between two revalidations (here 3, the other one this software
    # runs): the version comes from the state, and names another message.
    sv = ex.rt.system.SpecVersion
    other = chain.state.apply({sv.key(): sv.value_type.encode(3)})
    ex._pool_version = None  # the same best hash with another state: only in this test
    with pytest.raises(InvalidTransaction) as e:
        ex.validate_transaction(other, raw, chain.head_number, chain.head_hash)
    assert e.value.code == "BadProof"


def test_signing_memo_agrees_with_a_fresh_computation_and_is_bounded(
    chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executive_mod, "DECODE_CACHE_SIZE", 2)
    ex = pool_executive(chain)
    raws = [
        chain.sign(who, chain.call("System", "remark", b"m"), 0) for who in (ALICE, BOB, CHARLIE)
    ]
    for raw in raws:
        pool_validate(ex, chain, raw)
    assert len(ex._messages) == 2  # the oldest (Alice's) went
    assert [k[0] for k in ex._messages] == [Extrinsic.decode(r).hash for r in raws[1:]]
    ex.rt.state = Overlay(chain.state)
    for raw in raws:
        c = ex._check(raw)
        assert ex._signing_message(c, chain.head_number, memo=True) == ex._signing_message(
            c, chain.head_number
        )


def test_validate_transaction_trusts_a_given_hash(chain: Any) -> None:
    """The pool passes the hash it already has; the result is the same as hashing anew."""
    ex = pool_executive(chain)
    raw = chain.sign(BOB, chain.call("System", "remark", b"h"), 0)
    h = Extrinsic.decode(raw).hash
    assert pool_validate(ex, chain, raw, tx_hash=h) == pool_validate(
        pool_executive(chain), chain, raw
    )


def test_the_fee_share_goes_to_the_validator_account_not_its_session_key(
    make_chain: Any,
) -> None:
    chain = make_chain(session_length=2)
    session_key = Keypair.from_seed(b"\x05" * 32)
    proof = session_key.sign(ownership_message(chain.rt.genesis_hash, ALICE.public))
    (out,) = chain.produce(
        chain.sign(ALICE, chain.call("Session", "set_keys", session_key.public, proof))
    )
    assert out.success
    while chain.rt.authority.authorities() != [session_key.public]:
        chain.produce()
    raw = chain.sign(BOB, chain.call("Balances", "transfer", CHARLIE.public, UNIT))
    before = chain.free(ALICE.public)
    (out,) = chain.produce(raw)
    assert out.success
    assert chain.free(ALICE.public) == before + out.fee * FEE_AUTHOR_PERCENT // 100
    assert chain.free(session_key.public) == 0
