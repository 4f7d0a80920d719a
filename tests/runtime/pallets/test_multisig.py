"""Multisig: 2-of-3 flows, deposits, timepoints, cancellation, signatory checks, nested calls."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives import codec
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.multisig import (
    DEPOSIT_BASE,
    DEPOSIT_FACTOR,
    MAX_SIGNATORIES,
    Multisig,
    call_hash_of,
    multi_account_id,
)
from twinchain.runtime.weights.multisig import MULTISIG_OVERHEAD

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
UNIT = 10**12
BIG_WEIGHT = 10**9


def others(who: Keypair, *rest: Keypair) -> list[bytes]:
    """The other signatories of ``who``, sorted as the pallet requires."""
    return sorted(k.public for k in rest if k != who)


def trio() -> list[bytes]:
    return [ALICE.public, BOB.public, CHARLIE.public]


MS = multi_account_id(trio(), 2)
DEPOSIT = DEPOSIT_BASE + DEPOSIT_FACTOR * 3


def transfer_wire(chain: Any, dest: bytes, value: int) -> list[Any]:
    return list(chain.call("Balances", "transfer", dest, value).to_wire())


def fund_multisig(chain: Any, amount: int = 100 * UNIT) -> None:
    """Give the 2-of-3 account some funds in the open block (Charlie pays)."""
    chain.dispatch(Origin.signed(CHARLIE.public), "Balances", "transfer", MS, amount)


def record(chain: Any, call_hash: bytes) -> Any:
    return chain.rt.multisig.Multisigs.get(MS, call_hash)


def err(exc: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{exc.value.module}.{exc.value.error}"


# --------------------------------------------------------------------------- account ids


def test_multi_account_id_is_order_independent_and_depends_on_every_input() -> None:
    a, b, c = trio()
    assert multi_account_id([a, b, c], 2) == multi_account_id([c, a, b], 2)
    assert len(MS) == 32
    expected = hash_for(Domain.ACCOUNT_DERIVE, codec.encode([b"multisig", sorted([a, b, c]), 2]))
    assert MS == expected
    assert multi_account_id([a, b, c], 3) != MS
    assert multi_account_id([a, b], 2) != MS
    assert MS not in (a, b, c)


def test_registered_at_index_4_with_substrate_errors(chain: Any) -> None:
    assert chain.rt.pallets[4] is chain.rt.multisig
    assert isinstance(chain.rt.multisig, Multisig)
    meta = chain.rt.multisig.metadata()
    assert [c["name"] for c in meta["calls"]] == [
        "as_multi_threshold_1",
        "as_multi",
        "approve_as_multi",
        "cancel_as_multi",
    ]
    assert [e["name"] for e in meta["errors"]] == [
        "MinimumThreshold",
        "AlreadyApproved",
        "NoApprovalsNeeded",
        "TooFewSignatories",
        "TooManySignatories",
        "SignatoriesOutOfOrder",
        "SenderInSignatories",
        "NotFound",
        "NotOwner",
        "NoTimepoint",
        "WrongTimepoint",
        "UnexpectedTimepoint",
        "MaxWeightTooLow",
        "AlreadyStored",
    ]
    assert meta["constants"]["MaxSignatories"] == MAX_SIGNATORIES


# --------------------------------------------------------------------------- full flows


def test_two_of_three_through_extrinsics_reserves_and_returns_deposit(chain: Any) -> None:
    chain.produce(chain.sign(CHARLIE, chain.call("Balances", "transfer", MS, 100 * UNIT)))
    inner = transfer_wire(chain, DAVE.public, 10 * UNIT)
    h = call_hash_of(inner)
    assert h == hash_for(Domain.EXTRINSIC, codec.encode(inner))

    # Block 2: Alice opens the operation as extrinsic 1 (after the timestamp inherent).
    first = chain.call("Multisig", "as_multi", 2, others(ALICE, BOB, CHARLIE), None, inner, 10**6)
    alice_free = chain.free(ALICE.public)
    (out,) = chain.produce(chain.sign(ALICE, first))
    assert out.success
    assert chain.reserved(ALICE.public) == DEPOSIT
    # Alice is the block author, so she gets back 80 % of her own fee.
    assert chain.free(ALICE.public) == alice_free - DEPOSIT - out.fee + out.fee * 80 // 100
    rec = record(chain, h)
    assert rec.when == (2, 1)
    assert rec.depositor == ALICE.public
    assert rec.approvals == [ALICE.public]
    assert rec.deposit == DEPOSIT
    assert chain.free(DAVE.public) == 0
    new = [e for e in chain.events() if e["event"] == "NewMultisig"]
    assert new[0]["args"] == {"approving": ALICE.public, "multisig": MS, "call_hash": h}
    assert new[0]["extrinsic"] == 1

    # Block 3: Bob approves with the call: threshold reached, the transfer runs from MS.
    second = chain.call(
        "Multisig", "as_multi", 2, others(BOB, ALICE, CHARLIE), (2, 1), inner, 10**6
    )
    (out,) = chain.produce(chain.sign(BOB, second))
    assert out.success
    assert chain.free(DAVE.public) == 10 * UNIT
    assert chain.free(MS) == 90 * UNIT
    assert chain.reserved(ALICE.public) == 0
    assert record(chain, h) is None
    events = chain.events()
    executed = [e for e in events if e["event"] == "MultisigExecuted"]
    assert executed[0]["args"] == {
        "approving": BOB.public,
        "timepoint": (2, 1),
        "multisig": MS,
        "call_hash": h,
        "ok": "ok",
        "error": "",
    }
    transfers = [e for e in events if e["event"] == "Transfer"]
    assert transfers[0]["args"]["from"] == MS and transfers[0]["extrinsic"] == 1
    assert chain.issuance() == chain.total_balance()


def test_approve_by_hash_then_any_signatory_executes_with_the_call(block: Any) -> None:
    fund_multisig(block)
    inner = transfer_wire(block, DAVE.public, 5 * UNIT)
    h = call_hash_of(inner)
    evs = block.dispatch(
        Origin.signed(ALICE.public),
        "Multisig",
        "approve_as_multi",
        2,
        others(ALICE, BOB, CHARLIE),
        None,
        h,
        0,
    )
    assert block.names(evs) == ["Balances.Reserved", "Multisig.NewMultisig"]
    tp = record(block, h).when
    evs = block.dispatch(
        Origin.signed(BOB.public),
        "Multisig",
        "approve_as_multi",
        2,
        others(BOB, ALICE, CHARLIE),
        tp,
        h,
        0,
    )
    assert block.names(evs) == ["Multisig.MultisigApproval"]
    assert record(block, h).approvals == sorted([ALICE.public, BOB.public])
    assert block.free(DAVE.public) == 0  # approvals by hash never dispatch

    # Charlie's approval is not needed any more.
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(CHARLIE.public),
            "Multisig",
            "approve_as_multi",
            2,
            others(CHARLIE, ALICE, BOB),
            tp,
            h,
            0,
        )
    assert err(e) == "Multisig.NoApprovalsNeeded"

    # Alice already approved, but she may bring the call once the threshold is met.
    evs = block.dispatch(
        Origin.signed(ALICE.public),
        "Multisig",
        "as_multi",
        2,
        others(ALICE, BOB, CHARLIE),
        tp,
        inner,
        BIG_WEIGHT,
    )
    assert "Multisig.MultisigExecuted" in block.names(evs)
    assert block.free(DAVE.public) == 5 * UNIT
    assert block.reserved(ALICE.public) == 0


def test_nested_call_failure_is_reported_and_operation_closed(chain: Any) -> None:
    # MS holds nothing: the transfer inside must fail, the approval itself must not.
    inner = transfer_wire(chain, DAVE.public, 10 * UNIT)
    h = call_hash_of(inner)
    chain.produce(
        chain.sign(
            ALICE,
            chain.call("Multisig", "as_multi", 2, others(ALICE, BOB, CHARLIE), None, inner, 10**6),
        )
    )
    (out,) = chain.produce(
        chain.sign(
            CHARLIE,
            chain.call(
                "Multisig", "as_multi", 2, others(CHARLIE, ALICE, BOB), (1, 1), inner, 10**6
            ),
        )
    )
    assert out.success
    executed = [e for e in chain.events() if e["event"] == "MultisigExecuted"]
    assert executed[0]["args"]["ok"] == "err"
    assert executed[0]["args"]["error"] == "Balances.InsufficientBalance"
    assert not [e for e in chain.events() if e["event"] == "Transfer"]
    assert record(chain, h) is None
    assert chain.reserved(ALICE.public) == 0
    assert chain.nonce(CHARLIE.public) == 1


def test_nested_call_needing_root_fails_with_bad_origin(block: Any) -> None:
    fund_multisig(block)
    inner = list(block.call("Balances", "force_transfer", MS, DAVE.public, UNIT).to_wire())
    h = call_hash_of(inner)
    a = Origin.signed(ALICE.public)
    block.dispatch(a, "Multisig", "as_multi", 2, others(ALICE, BOB, CHARLIE), None, inner, 0)
    tp = record(block, h).when
    evs = block.dispatch(
        Origin.signed(BOB.public),
        "Multisig",
        "as_multi",
        2,
        others(BOB, ALICE, CHARLIE),
        tp,
        inner,
        BIG_WEIGHT,
    )
    executed = evs[-1]
    assert (executed.module, executed.name) == ("Multisig", "MultisigExecuted")
    assert executed.args[-2:] == ("err", "System.BadOrigin")
    assert block.free(DAVE.public) == 0


@pytest.mark.parametrize(
    ("failure", "reported"),
    [
        (lambda bal: bal.Error.Overflow(), "Balances.Overflow"),
        (lambda bal: KeyError("a pallet bug"), "System.Other"),
    ],
)
def test_nested_failure_after_writes_is_rolled_back(
    block: Any, monkeypatch: pytest.MonkeyPatch, failure: Any, reported: str
) -> None:
    fund_multisig(block)
    inner = transfer_wire(block, DAVE.public, UNIT)
    h = call_hash_of(inner)

    def broken(self: Any, origin: Origin, dest: bytes, value: int) -> None:
        # Writes and an event that must all be rolled back with the inner layer.
        self.Account.insert(dest, self.data(dest))
        self.deposit(self.Event.Endowed(dest, 0))
        raise failure(self)

    monkeypatch.setattr(block.rt.balances.calls_by_name["transfer"], "fn", broken)
    a = Origin.signed(ALICE.public)
    block.dispatch(a, "Multisig", "as_multi", 2, others(ALICE, BOB, CHARLIE), None, inner, 0)
    tp = record(block, h).when
    depth = block.rt.state.depth
    evs = block.dispatch(
        Origin.signed(BOB.public),
        "Multisig",
        "as_multi",
        2,
        others(BOB, ALICE, CHARLIE),
        tp,
        inner,
        BIG_WEIGHT,
    )
    assert block.names(evs) == ["Balances.Unreserved", "Multisig.MultisigExecuted"]
    assert evs[-1].args[-2:] == ("err", reported)
    assert block.rt.state.depth == depth  # the inner layer was closed
    assert not block.rt.balances.Account.contains(DAVE.public)
    assert record(block, h) is None and block.reserved(ALICE.public) == 0
    block.finish_block()  # no layer left open


# --------------------------------------------------------------------------- cancel


def test_cancel_only_by_depositor_with_the_right_timepoint(block: Any) -> None:
    h = b"\x07" * 32
    block.dispatch(
        Origin.signed(ALICE.public),
        "Multisig",
        "approve_as_multi",
        2,
        others(ALICE, BOB, CHARLIE),
        None,
        h,
        0,
    )
    assert block.reserved(ALICE.public) == DEPOSIT
    tp = record(block, h).when

    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public),
            "Multisig",
            "cancel_as_multi",
            2,
            others(BOB, ALICE, CHARLIE),
            tp,
            h,
        )
    assert err(e) == "Multisig.NotOwner"
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(ALICE.public),
            "Multisig",
            "cancel_as_multi",
            2,
            others(ALICE, BOB, CHARLIE),
            (tp[0], tp[1] + 1),
            h,
        )
    assert err(e) == "Multisig.WrongTimepoint"
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(ALICE.public),
            "Multisig",
            "cancel_as_multi",
            1,
            others(ALICE, BOB, CHARLIE),
            tp,
            h,
        )
    assert err(e) == "Multisig.MinimumThreshold"
    assert record(block, h) is not None and block.reserved(ALICE.public) == DEPOSIT

    evs = block.dispatch(
        Origin.signed(ALICE.public),
        "Multisig",
        "cancel_as_multi",
        2,
        others(ALICE, BOB, CHARLIE),
        tp,
        h,
    )
    assert block.names(evs) == ["Balances.Unreserved", "Multisig.MultisigCancelled"]
    assert evs[-1].args == (ALICE.public, list(tp), MS, h)
    assert record(block, h) is None
    assert block.reserved(ALICE.public) == 0

    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(ALICE.public),
            "Multisig",
            "cancel_as_multi",
            2,
            others(ALICE, BOB, CHARLIE),
            tp,
            h,
        )
    assert err(e) == "Multisig.NotFound"


# --------------------------------------------------------------------------- timepoints


def test_timepoint_rules(block: Any) -> None:
    h = b"\x01" * 32
    args = (2, others(ALICE, BOB, CHARLIE))
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(ALICE.public), "Multisig", "approve_as_multi", *args, (1, 0), h, 0
        )
    assert err(e) == "Multisig.UnexpectedTimepoint"
    assert record(block, h) is None

    block.rt.block.extrinsic_index = 3
    block.dispatch(Origin.signed(ALICE.public), "Multisig", "approve_as_multi", *args, None, h, 0)
    assert record(block, h).when == (1, 3)

    bob_args = (2, others(BOB, ALICE, CHARLIE))
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public), "Multisig", "approve_as_multi", *bob_args, None, h, 0
        )
    assert err(e) == "Multisig.NoTimepoint"
    for wrong in [(1, 2), (0, 3), (2, 3)]:
        with pytest.raises(DispatchError) as e:
            block.dispatch(
                Origin.signed(BOB.public), "Multisig", "approve_as_multi", *bob_args, wrong, h, 0
            )
        assert err(e) == "Multisig.WrongTimepoint"
    assert record(block, h).approvals == [ALICE.public]


def test_already_approved(block: Any) -> None:
    fund_multisig(block)
    inner = transfer_wire(block, DAVE.public, UNIT)
    h = call_hash_of(inner)
    args = (2, others(ALICE, BOB, CHARLIE))
    a = Origin.signed(ALICE.public)
    block.dispatch(a, "Multisig", "as_multi", *args, None, inner, BIG_WEIGHT)
    tp = record(block, h).when
    with pytest.raises(DispatchError) as e:
        block.dispatch(a, "Multisig", "approve_as_multi", *args, tp, h, 0)
    assert err(e) == "Multisig.AlreadyApproved"
    # Bringing the call again does not help while the threshold is not met.
    with pytest.raises(DispatchError) as e:
        block.dispatch(a, "Multisig", "as_multi", *args, tp, inner, BIG_WEIGHT)
    assert err(e) == "Multisig.AlreadyApproved"
    assert block.free(DAVE.public) == 0


def test_max_weight_too_low_keeps_the_operation(block: Any) -> None:
    fund_multisig(block)
    inner = transfer_wire(block, DAVE.public, UNIT)
    h = call_hash_of(inner)
    weight = block.rt.weigh_wire(inner)
    assert weight > 0
    block.dispatch(
        Origin.signed(ALICE.public),
        "Multisig",
        "as_multi",
        2,
        others(ALICE, BOB, CHARLIE),
        None,
        inner,
        0,
    )
    tp = record(block, h).when
    bob = (Origin.signed(BOB.public), "Multisig", "as_multi", 2, others(BOB, ALICE, CHARLIE), tp)
    with pytest.raises(DispatchError) as e:
        block.dispatch(*bob, inner, weight - 1)
    assert err(e) == "Multisig.MaxWeightTooLow"
    assert record(block, h).approvals == [ALICE.public]
    assert block.free(DAVE.public) == 0
    block.dispatch(*bob, inner, weight)
    assert block.free(DAVE.public) == UNIT


def test_deposit_needs_free_balance(block: Any) -> None:
    poor = Keypair.from_dev_name("Ferdie")
    block.dispatch(Origin.signed(BOB.public), "Balances", "transfer", poor.public, DEPOSIT - 1)
    h = b"\x02" * 32
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(poor.public),
            "Multisig",
            "approve_as_multi",
            2,
            others(poor, ALICE, BOB),
            None,
            h,
            0,
        )
    assert err(e) == "Balances.InsufficientBalance"
    ms = multi_account_id([poor.public, ALICE.public, BOB.public], 2)
    assert block.rt.multisig.Multisigs.get(ms, h) is None
    assert block.reserved(poor.public) == 0


# --------------------------------------------------------------------------- signatories


def _many(n: int) -> list[bytes]:
    return sorted(hash_for(Domain.DEV_SEED, i.to_bytes(4, "big")) for i in range(n))


@pytest.mark.parametrize(
    ("threshold", "other", "error"),
    [
        (1, lambda: others(ALICE, BOB, CHARLIE), "MinimumThreshold"),
        (0, lambda: others(ALICE, BOB, CHARLIE), "MinimumThreshold"),
        (2, lambda: [], "TooFewSignatories"),
        (4, lambda: others(ALICE, BOB, CHARLIE), "TooFewSignatories"),
        (2, lambda: _many(MAX_SIGNATORIES), "TooManySignatories"),
        (2, lambda: others(ALICE, BOB, CHARLIE)[::-1], "SignatoriesOutOfOrder"),
        (2, lambda: [BOB.public, BOB.public], "SignatoriesOutOfOrder"),
        (2, lambda: sorted([ALICE.public, BOB.public]), "SenderInSignatories"),
    ],
)
def test_signatory_checks(block: Any, threshold: int, other: Any, error: str) -> None:
    before = block.reserved(ALICE.public)
    for name, last in (("approve_as_multi", b"\x03" * 32), ("as_multi", None)):
        call_arg = last if last is not None else transfer_wire(block, DAVE.public, UNIT)
        with pytest.raises(DispatchError) as e:
            block.dispatch(
                Origin.signed(ALICE.public),
                "Multisig",
                name,
                threshold,
                other(),
                None,
                call_arg,
                BIG_WEIGHT,
            )
        assert err(e) == f"Multisig.{error}"
    assert block.reserved(ALICE.public) == before


def test_most_signatories_allowed(block: Any) -> None:
    many = _many(MAX_SIGNATORIES - 1)
    assert ALICE.public not in many
    h = b"\x04" * 32
    block.dispatch(Origin.signed(ALICE.public), "Multisig", "approve_as_multi", 2, many, None, h, 0)
    ms = multi_account_id([*many, ALICE.public], 2)
    rec = block.rt.multisig.Multisigs.get(ms, h)
    assert rec.deposit == DEPOSIT_BASE + DEPOSIT_FACTOR * MAX_SIGNATORIES


# --------------------------------------------------------------------------- threshold 1


def test_as_multi_threshold_1(block: Any) -> None:
    one = multi_account_id([ALICE.public, BOB.public], 1)
    inner = transfer_wire(block, DAVE.public, UNIT)
    # Unfunded: the nested error is the call's own error (as in Substrate).
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public), "Multisig", "as_multi_threshold_1", [ALICE.public], inner
        )
    assert err(e) == "Balances.InsufficientBalance"
    block.dispatch(Origin.signed(CHARLIE.public), "Balances", "transfer", one, 3 * UNIT)
    evs = block.dispatch(
        Origin.signed(BOB.public), "Multisig", "as_multi_threshold_1", [ALICE.public], inner
    )
    assert block.names(evs) == ["System.NewAccount", "Balances.Endowed", "Balances.Transfer"]
    assert evs[-1].args[0] == one
    assert block.free(DAVE.public) == UNIT
    assert block.free(one) == 2 * UNIT
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public), "Multisig", "as_multi_threshold_1", [BOB.public], inner
        )
    assert err(e) == "Multisig.SenderInSignatories"
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.signed(BOB.public), "Multisig", "as_multi_threshold_1", [], inner)
    assert err(e) == "Multisig.TooFewSignatories"


def test_nested_call_that_does_not_decode(block: Any) -> None:
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public),
            "Multisig",
            "as_multi_threshold_1",
            [ALICE.public],
            [3, 99, []],
        )
    assert err(e) == "System.InvalidCall"


# --------------------------------------------------------------------------- origins & weights


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()])
def test_every_call_requires_a_signed_origin(block: Any, origin: Origin) -> None:
    inner = transfer_wire(block, DAVE.public, UNIT)
    pallet = block.rt.multisig
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("as_multi_threshold_1", ([BOB.public], inner)),
        ("as_multi", (2, trio(), None, inner, BIG_WEIGHT)),
        ("approve_as_multi", (2, trio(), None, b"\x00" * 32, 0)),
        ("cancel_as_multi", (2, trio(), (1, 0), b"\x00" * 32)),
    ]
    for name, args in calls:
        # Through the runtime (declared origin) and directly (the call's own first line).
        with pytest.raises(DispatchError) as e:
            block.dispatch(origin, "Multisig", name, *args)
        assert err(e) == "System.BadOrigin"
        with pytest.raises(DispatchError) as e:
            getattr(pallet, name)(origin, *args)
        assert err(e) == "System.BadOrigin"
    assert block.rt.state.depth == 0


def test_weights_cover_the_nested_call(chain: Any) -> None:
    inner = transfer_wire(chain, DAVE.public, UNIT)
    rt = chain.rt
    inner_w = rt.weigh_wire(inner)
    cd = rt.multisig.calls_by_name["as_multi"]
    args = cd.decode_args(chain.call("Multisig", "as_multi", 2, trio(), None, inner, 0).args)
    assert cd.weigh(rt, args) == MULTISIG_OVERHEAD + inner_w
    cd1 = rt.multisig.calls_by_name["as_multi_threshold_1"]
    assert cd1.weigh(rt, [[BOB.public], inner]) == MULTISIG_OVERHEAD + inner_w
