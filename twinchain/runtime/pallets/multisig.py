"""Multisig: accounts controlled by M of N signatories, as Substrate's pallet_multisig.

The multisig account is derived from the sorted signatories and the threshold; nobody holds
its key. A call is proposed by its hash: the first approval records a timepoint (block height,
extrinsic index) and reserves a deposit from its sender; later approvals must name the same
timepoint, so that an approval meant for one operation can never count towards a later one
with the same call. Once enough signatories have approved, an ``as_multi`` that carries the
call dispatches it with the multisig account as its signed origin, in its own transactional
layer, and the deposit is returned. The depositor may cancel a pending operation instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    CodecError,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.runtime.framework import (
    SIGNED,
    DispatchError,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    RuntimeCall,
    StorageDoubleMap,
    call,
    ensure_signed,
    nested_call_weight,
)
from twinchain.runtime.weights import multisig as weights

if TYPE_CHECKING:
    from twinchain.runtime.traits import Currency

MAX_SIGNATORIES = 100
# Deposit held while an operation is pending: pays for its storage record, which grows with
# the number of signatories who may approve it.
DEPOSIT_BASE = 100_000_000_000
DEPOSIT_FACTOR = 10_000_000_000


Timepoint = Tuple(U64, U32)
Signatories = Vec(AccountId, MAX_SIGNATORIES)


@dataclass
class MultisigRecord(Record):
    """A pending operation: when it was opened, its deposit and who approved it (sorted)."""

    when: tuple[int, int]
    deposit: int
    depositor: bytes
    approvals: list[bytes]
    FIELDS: ClassVar = {
        "when": Timepoint,
        "deposit": U128,
        "depositor": AccountId,
        "approvals": Signatories,
    }


def multi_account_id(signatories: Sequence[bytes], threshold: int) -> bytes:
    """The account of the ``threshold``-of-``signatories`` multisig (order does not matter)."""
    return hash_for(
        Domain.ACCOUNT_DERIVE, codec.encode([b"multisig", sorted(signatories), threshold])
    )


def call_hash_of(call_wire: Any) -> bytes:
    """The hash that approvals name for a call in wire form ``[pallet, call, [args]]``."""
    return hash_for(Domain.EXTRINSIC, codec.encode(call_wire))


def deposit_for(signatory_count: int) -> int:
    return DEPOSIT_BASE + DEPOSIT_FACTOR * signatory_count


@dataclass(frozen=True)
class Config:
    """What Multisig uses of its siblings (its FRAME ``Config``), wired by the runtime."""

    currency: Currency  # the depositor's reserved deposit (Balances)


class Multisig(Pallet):
    name = "Multisig"
    config: Config

    Multisigs = StorageDoubleMap(
        AccountId,
        H256,
        MultisigRecord.wire_type(),
        doc="Pending operations, by multisig account and call hash.",
    )

    class Event(PalletEvents):
        NewMultisig = (("approving", AccountId), ("multisig", AccountId), ("call_hash", H256))
        MultisigApproval = (
            ("approving", AccountId),
            ("timepoint", Timepoint),
            ("multisig", AccountId),
            ("call_hash", H256),
        )
        MultisigExecuted = (
            ("approving", AccountId),
            ("timepoint", Timepoint),
            ("multisig", AccountId),
            ("call_hash", H256),
            ("ok", Str(8)),
            ("error", Str(128)),
        )
        MultisigCancelled = (
            ("cancelling", AccountId),
            ("timepoint", Timepoint),
            ("multisig", AccountId),
            ("call_hash", H256),
        )

    class Error(PalletErrors):
        MinimumThreshold = "a multisig operation needs a threshold of at least 2"
        AlreadyApproved = "this signatory has approved the operation before"
        NoApprovalsNeeded = "the operation already has enough approvals"
        TooFewSignatories = "no other signatories, or fewer signatories than the threshold"
        TooManySignatories = "more signatories than MaxSignatories"
        SignatoriesOutOfOrder = "other signatories must be strictly ascending (sorted, unique)"
        SenderInSignatories = "the sender must not be listed among the other signatories"
        NotFound = "no pending operation for this multisig account and call hash"
        NotOwner = "only the depositor who opened the operation may cancel it"
        NoTimepoint = "the operation is pending: name its timepoint"
        WrongTimepoint = "the timepoint does not match the pending operation's"
        UnexpectedTimepoint = "no operation is pending, so no timepoint may be given"
        MaxWeightTooLow = "max_weight is below the weight of the call"
        # Kept so that error indices match Substrate's; calls are never stored here.
        AlreadyStored = "the call is already stored"

    # -- calls
    @call(
        0,
        weight=nested_call_weight(weights.MULTISIG_OVERHEAD, 1),
        origin=SIGNED,
        args=(("other_signatories", Signatories), ("call", RuntimeCall)),
    )
    def as_multi_threshold_1(
        self, origin: Origin, other_signatories: list[bytes], call: Any
    ) -> None:
        """Dispatch ``call`` at once from the 1-of-N multisig of the sender and the others.

        As in Substrate, the call's error is this call's error (no deposit, no record).
        """
        who = ensure_signed(origin)
        signatories = self._signatories(who, other_signatories)
        self.dispatch_nested(Origin.signed(multi_account_id(signatories, 1)), call)

    @call(
        1,
        weight=nested_call_weight(weights.MULTISIG_OVERHEAD, 3),
        origin=SIGNED,
        args=(
            ("threshold", U16),
            ("other_signatories", Signatories),
            ("maybe_timepoint", Option(Timepoint)),
            ("call", RuntimeCall),
            ("max_weight", U64),
        ),
    )
    def as_multi(
        self,
        origin: Origin,
        threshold: int,
        other_signatories: list[bytes],
        maybe_timepoint: tuple[int, int] | None,
        call: Any,
        max_weight: int,
    ) -> None:
        """Approve ``call`` and dispatch it if this approval reaches the threshold."""
        who = ensure_signed(origin)
        try:
            call_hash = call_hash_of(call)
        except CodecError as exc:  # a nested call that cannot even be hashed
            raise DispatchError("System", "InvalidCall", str(exc)) from None
        self._operate(
            who, threshold, other_signatories, maybe_timepoint, call_hash, call, max_weight
        )

    @call(
        2,
        weight=weights.W_APPROVE,
        origin=SIGNED,
        args=(
            ("threshold", U16),
            ("other_signatories", Signatories),
            ("maybe_timepoint", Option(Timepoint)),
            ("call_hash", H256),
            ("max_weight", U64),
        ),
    )
    def approve_as_multi(
        self,
        origin: Origin,
        threshold: int,
        other_signatories: list[bytes],
        maybe_timepoint: tuple[int, int] | None,
        call_hash: bytes,
        max_weight: int,
    ) -> None:
        """Approve the call with ``call_hash`` without carrying it (it never dispatches)."""
        who = ensure_signed(origin)
        self._operate(
            who, threshold, other_signatories, maybe_timepoint, call_hash, None, max_weight
        )

    @call(
        3,
        weight=weights.W_CANCEL,
        origin=SIGNED,
        args=(
            ("threshold", U16),
            ("other_signatories", Signatories),
            ("timepoint", Timepoint),
            ("call_hash", H256),
        ),
    )
    def cancel_as_multi(
        self,
        origin: Origin,
        threshold: int,
        other_signatories: list[bytes],
        timepoint: tuple[int, int],
        call_hash: bytes,
    ) -> None:
        """Cancel a pending operation (its depositor only) and return the deposit."""
        who = ensure_signed(origin)
        if threshold < 2:
            raise self.Error.MinimumThreshold()
        signatories = self._signatories(who, other_signatories)
        multisig = multi_account_id(signatories, threshold)
        m: MultisigRecord | None = self.Multisigs.get(multisig, call_hash)
        if m is None:
            raise self.Error.NotFound()
        if m.when != tuple(timepoint):
            raise self.Error.WrongTimepoint()
        if m.depositor != who:
            raise self.Error.NotOwner()
        self.config.currency.unreserve(m.depositor, m.deposit)
        self.Multisigs.remove(multisig, call_hash)
        self.deposit(self.Event.MultisigCancelled(who, m.when, multisig, call_hash))

    # -- internals
    def _signatories(self, who: bytes, other_signatories: Sequence[bytes]) -> list[bytes]:
        """All signatories, sorted: the others must be strictly ascending and exclude ``who``."""
        if not other_signatories:
            raise self.Error.TooFewSignatories()
        if len(other_signatories) >= MAX_SIGNATORIES:
            raise self.Error.TooManySignatories()
        for prev, nxt in pairwise(other_signatories):
            if not prev < nxt:
                raise self.Error.SignatoriesOutOfOrder()
        if who in other_signatories:
            raise self.Error.SenderInSignatories()
        return sorted([*other_signatories, who])

    def _operate(
        self,
        who: bytes,
        threshold: int,
        other_signatories: list[bytes],
        maybe_timepoint: tuple[int, int] | None,
        call_hash: bytes,
        call_wire: Any | None,
        max_weight: int,
    ) -> None:
        if threshold < 2:
            raise self.Error.MinimumThreshold()
        signatories = self._signatories(who, other_signatories)
        if threshold > len(signatories):
            # Substrate accepts this and the operation can never complete; refuse it instead.
            raise self.Error.TooFewSignatories(f"{len(signatories)} < threshold {threshold}")
        multisig = multi_account_id(signatories, threshold)
        m: MultisigRecord | None = self.Multisigs.get(multisig, call_hash)

        if m is None:
            # First approval: open the operation at this extrinsic's timepoint.
            if maybe_timepoint is not None:
                raise self.Error.UnexpectedTimepoint()
            deposit = deposit_for(len(signatories))
            self.config.currency.reserve(who, deposit)
            when = (self.runtime.block.number, self.runtime.block.extrinsic_index)
            self.Multisigs.insert(multisig, call_hash, MultisigRecord(when, deposit, who, [who]))
            self.deposit(self.Event.NewMultisig(who, multisig, call_hash))
            return

        if maybe_timepoint is None:
            raise self.Error.NoTimepoint()
        if m.when != tuple(maybe_timepoint):
            raise self.Error.WrongTimepoint()
        is_new = who not in m.approvals
        approvals = sorted([*m.approvals, who]) if is_new else m.approvals

        if call_wire is not None and len(approvals) >= threshold:
            if self.runtime.weigh_wire(call_wire) > max_weight:
                raise self.Error.MaxWeightTooLow()
            # The operation is over whatever the call does: drop it and return the deposit
            # first, so a failing call cannot leave it stuck.
            self.Multisigs.remove(multisig, call_hash)
            self.config.currency.unreserve(m.depositor, m.deposit)
            ok, error = self._run(Origin.signed(multisig), call_wire)
            self.deposit(self.Event.MultisigExecuted(who, m.when, multisig, call_hash, ok, error))
            return

        if not is_new:
            # Approving again without carrying the call changes nothing.
            raise self.Error.AlreadyApproved()
        if call_wire is None and len(m.approvals) >= threshold:
            raise self.Error.NoApprovalsNeeded()
        m.approvals = approvals
        self.Multisigs.insert(multisig, call_hash, m)
        self.deposit(self.Event.MultisigApproval(who, m.when, multisig, call_hash))

    def _run(self, origin: Origin, call_wire: Any) -> tuple[str, str]:
        """Dispatch the approved call in its own layer; its failure goes into the event."""
        st = self.runtime.state
        st.start_transaction()
        try:
            self.dispatch_nested(origin, call_wire)
        except DispatchError as err:
            st.rollback_transaction()
            return "err", f"{err.module}.{err.error}"
        except (ArithmeticError, ValueError, KeyError, TypeError):
            # The executive turns these pallet bugs into System.Other; do the same for the
            # inner call, and always close the layer we opened.
            st.rollback_transaction()
            return "err", "System.Other"
        except BaseException:
            st.rollback_transaction()
            raise
        st.commit_transaction()
        return "ok", ""

    def constants(self) -> dict[str, Any]:
        return {
            "MaxSignatories": MAX_SIGNATORIES,
            "DepositBase": DEPOSIT_BASE,
            "DepositFactor": DEPOSIT_FACTOR,
        }
