"""Authority: the proof-of-authority set (Aura), slot timing and sessions.

The author of slot ``s`` is ``authorities[s mod n]``. The set changes only at a session
boundary (every ``SessionLength`` blocks): ``set_authorities`` (root: sudo on dev chains,
a council motion elsewhere) queues the next set; it takes effect at the next session. At
the boundary the Facility pallet's validator changes apply too (``Config.validators``):
council-approved facility validators join, offboarded ones leave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twinchain.primitives.codec import U8, U32, U64, AccountId, Bytes, Option, Vec
from twinchain.primitives.keys import is_valid_public, parse_account, verify
from twinchain.runtime.framework import (
    ROOT,
    ROOT_OR_SIGNED,
    SIGNED,
    BlockRejected,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageMap,
    StorageValue,
    bad_origin,
    call,
    ensure_signed,
)
from twinchain.runtime.weights import authority as weights

if TYPE_CHECKING:
    from twinchain.runtime.traits import ValidatorSource

MAX_AUTHORITIES = 100
AuthorityList = Vec(AccountId, MAX_AUTHORITIES)
OFFENCE_BLOCK, OFFENCE_VOTE = 0, 1
# (offender, kind, slot or round, first signed message, second signed message)
OffenceRecord = Vec(Bytes(64 * 1024), 2)


@dataclass(frozen=True)
class Config:
    """What Authority uses of its siblings, wired by the runtime (none: a bare set)."""

    validators: ValidatorSource | None = None  # facility validators joining, leaving (Facility)
    account_of: Callable[[bytes], bytes] = lambda key: key  # a session key's account (Session)


# Weight of one facility validator change at a boundary (two reads, two writes).
W_VALIDATOR_CHANGE = 5_000


class Authority(Pallet):
    name = "Authority"
    config: Config = Config()

    Authorities = StorageValue(AuthorityList, [], doc="The current authority set, in order.")
    NextAuthorities = StorageValue(
        Option(AuthorityList), None, doc="Set queued for the next session boundary."
    )
    SlotDuration = StorageValue(U64, 1000, doc="Slot length in milliseconds.")
    SessionLength = StorageValue(U32, 600, doc="Blocks per session.")
    CurrentSession = StorageValue(U32, 0, doc="Index of the current session.")
    CurrentSlot = StorageValue(U64, 0, doc="Slot of the latest block.")
    SetId = StorageValue(
        U64, 0, doc="Index of the authority set; finality votes and justifications name it."
    )
    Offences = StorageMap(
        Bytes(64),
        OffenceRecord,
        doc="Equivocation evidence by (offender ‖ kind ‖ slot or round): both signed messages.",
    )

    class Event(PalletEvents):
        AuthoritiesQueued = (("authorities", AuthorityList),)
        NewSession = (("index", U32), ("authorities", AuthorityList))
        EquivocationReported = (("offender", AccountId), ("kind", U8), ("at", U64))

    class Error(PalletErrors):
        EmptySet = "the authority set cannot be empty"
        TooMany = "too many authorities"
        Duplicate = "an authority appears twice"
        InvalidKey = "not a valid x-only public key"
        InvalidEvidence = "the two messages do not prove an equivocation"
        DuplicateReport = "this offence is already recorded"

    @call(
        0,
        weight=weights.W_SET_AUTHORITIES,
        origin=ROOT_OR_SIGNED,
        args=(("authorities", AuthorityList),),
    )
    def set_authorities(self, origin: Origin, authorities: list[bytes]) -> None:
        """Queue a new authority set for the next session boundary.

        Origin: root (sudo on dev chains), or the governance multisig of the current
        authorities: the Multisig pallet's account of all of them with a more-than-2/3
        threshold (``governance_account()``).
        """
        if origin.kind != ROOT and origin.who != self.governance_account():
            raise bad_origin("root or authority-governance")
        if not authorities:
            raise self.Error.EmptySet()
        if len(authorities) > MAX_AUTHORITIES:
            raise self.Error.TooMany()
        if len(set(authorities)) != len(authorities):
            raise self.Error.Duplicate()
        if not all(is_valid_public(a) for a in authorities):
            raise self.Error.InvalidKey()
        self.NextAuthorities.put(authorities)
        self.deposit(self.Event.AuthoritiesQueued(authorities))

    @call(
        1,
        weight=weights.W_REPORT_EQUIVOCATION,
        origin=SIGNED,
        args=(("first", Bytes(64 * 1024)), ("second", Bytes(64 * 1024))),
    )
    def report_block_equivocation(self, origin: Origin, first: bytes, second: bytes) -> None:
        """Record two different headers sealed by one authority for the same slot."""
        ensure_signed(origin)
        from twinchain.primitives.codec import CodecError
        from twinchain.primitives.types import Header

        try:
            a, b = Header.decode(first), Header.decode(second)
        except CodecError:
            raise self.Error.InvalidEvidence("headers do not decode") from None
        if a.slot != b.slot or a.hash == b.hash:
            raise self.Error.InvalidEvidence("not two different headers of one slot")
        offender = self.author_for_slot(a.slot)
        if offender is None or not all(verify(offender, h.seal_message(), h.seal) for h in (a, b)):
            raise self.Error.InvalidEvidence("not both sealed by the slot's author")
        self._record(offender, OFFENCE_BLOCK, a.slot, first, second)

    @call(
        2,
        weight=weights.W_REPORT_EQUIVOCATION,
        origin=SIGNED,
        args=(("first", Bytes(4096)), ("second", Bytes(4096))),
    )
    def report_vote_equivocation(self, origin: Origin, first: bytes, second: bytes) -> None:
        """Record two different finality votes of one kind by one authority in one round."""
        ensure_signed(origin)
        from twinchain.primitives.codec import CodecError
        from twinchain.primitives.finality import SignedVote

        try:
            a, b = SignedVote.decode(first), SignedVote.decode(second)
        except CodecError:
            raise self.Error.InvalidEvidence("votes do not decode") from None
        gh = self.runtime.genesis_hash
        if (
            a.voter != b.voter
            or (a.kind, a.round, a.set_id) != (b.kind, b.round, b.set_id)
            or a.target == b.target
            or a.voter not in self.Authorities.get()
            or not (a.verify(gh) and b.verify(gh))
        ):
            raise self.Error.InvalidEvidence("not two signed votes of one round by an authority")
        self._record(a.voter, OFFENCE_VOTE, a.round, first, second)

    def _record(self, offender: bytes, kind: int, at: int, first: bytes, second: bytes) -> None:
        key = offender + bytes([kind]) + at.to_bytes(8, "big")
        if self.Offences.contains(key):
            raise self.Error.DuplicateReport()
        self.Offences.insert(key, sorted([first, second]))
        self.deposit(self.Event.EquivocationReported(offender, kind, at))

    def genesis(self, config: dict[str, Any]) -> None:
        auths = [parse_account(a) for a in config.get("authorities", [])]
        if not auths:
            raise ValueError("genesis needs at least one authority")
        self.Authorities.put(auths)
        self.SlotDuration.put(int(config.get("slot_duration_ms", 1000)))
        self.SessionLength.put(int(config.get("session_length", 600)))

    def on_initialize(self, number: int) -> int:
        slot = self.runtime.block.slot
        if slot <= self.CurrentSlot.get() and number > 0:
            raise BlockRejected(f"slot {slot} does not advance past {self.CurrentSlot.get()}")
        self.CurrentSlot.put(slot)
        if number % self.SessionLength.get() == 0:
            nxt, changed = self._facility_validators(self.NextAuthorities.get())
            # Session keys queued by set_keys take their validators' places (Session pallet).
            keyed, used = self.runtime.session.enact_keys(
                self.Authorities.get() if nxt is None else nxt
            )
            if nxt is not None or keyed != self.Authorities.get():
                nxt = keyed
            session = self.CurrentSession.get() + 1
            self.CurrentSession.put(session)
            if nxt is not None:
                self.Authorities.put(nxt)
                self.NextAuthorities.kill()
                self.SetId.put(self.SetId.get() + 1)
                self.deposit(self.Event.NewSession(session, nxt))
            return 20_000 + used + W_VALIDATOR_CHANGE * changed
        return 5_000

    def _facility_validators(self, queued: list[bytes] | None) -> tuple[list[bytes] | None, int]:
        """The next set with the facility validators' changes applied (``queued`` as it is if
        none), and how many changes were read. Facilities name validators by account, the set
        holds session keys: removals compare accounts. The set never empties."""
        src = self.config.validators
        if src is None:
            return queued, 0
        base = self.Authorities.get() if queued is None else queued
        accounts = [self.config.account_of(k) for k in base]
        add, remove = src.validator_changes(accounts)
        gone = {key for _, key in remove}
        new = [k for k, a in zip(base, accounts, strict=True) if a not in gone]
        applied = [fid for fid, _ in remove]
        for fid, key in add:
            if key not in accounts and key not in new:
                if len(new) >= MAX_AUTHORITIES:
                    continue  # full: the proposal waits for a later boundary
                new.append(key)
            applied.append(fid)
        if not new:
            return queued, len(add) + len(remove)
        for fid in applied:
            src.validator_applied(fid)
        return (queued if new == base else new), len(add) + len(remove)

    # -- API
    def governance_account(self) -> bytes:
        """The multisig account through which the current authorities govern the set."""
        from twinchain.runtime.pallets.multisig import multi_account_id

        auths = self.Authorities.get()
        n = len(auths)
        return multi_account_id(auths, n - (n - 1) // 3)

    def authorities(self) -> list[bytes]:
        return self.Authorities.get()

    def slot_duration(self) -> int:
        return self.SlotDuration.get()

    def author_for_slot(self, slot: int) -> bytes | None:
        auths = self.Authorities.get()
        return auths[slot % len(auths)] if auths else None

    def constants(self) -> dict[str, Any]:
        return {"MaxAuthorities": MAX_AUTHORITIES}
