"""Council: the consortium's governance, in the manner of Substrate's pallet-collective fed by
pallet-membership.

**Members** are the operators of the verified facilities: an account is a member while it
holds the FacilityOperator role and operates at least one facility that
``Facility.is_verified``. The founding members are those of the genesis facilities. The set
follows Facility and Roles by itself: at the end of every block (``on_finalize``) the
council looks at that block's Facility status events (verified, suspended, reinstated,
revoked) and FacilityOperator grants and revocations, and re-derives the membership of each
operator they name, as pallet-membership's change hooks tell pallet-collective. A
verification that lapses by time emits no event: ``sync_member`` (anyone may call it)
re-derives one account on demand. A member who leaves loses its votes on open motions.

**Motions.** A member proposes a call (its encoded size bounded by ``length_bound`` and by
``MaxProposalBytes``); the proposer's own vote counts as an aye. Members vote (one vote each,
which they may change). Anyone may ``close`` a motion once its outcome is certain: it is
approved when the ayes reach the threshold, and disapproved when the nays leave too few
members to reach it. An approved motion dispatches its call with the **Root** origin, in its
own transactional layer; the call's own failure is recorded in ``Executed`` and reverts only
the call. A motion that is still open ``MotionDuration`` blocks after it was proposed has
expired: closing it disapproves it whatever its votes, and it never dispatches; votes on it
are refused.

**Thresholds** follow from the call (``threshold_of``), counted against the members at the
time of the vote or close: a simple majority (more than half) by default, and two thirds (at
least) for the calls that change who governs or what runs: the council's own rules, the
facilities' suspension, reinstatement and revocation (they change the membership), the
trust-anchor roles (FacilityOperator, CertifiedAuditor, EquipmentManufacturer), the
authority set, System's root calls (runtime changes) and Sudo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    U32,
    U64,
    AccountId,
    Bool,
    CodecError,
    Enum,
    Record,
    Str,
    Vec,
)
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.types import Call
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
    EventRecord,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    RuntimeCall,
    StorageMap,
    StorageValue,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.pallets.roles import (
    CERTIFIED_AUDITOR,
    EQUIPMENT_MANUFACTURER,
    FACILITY_OPERATOR,
    Role,
)
from twinchain.runtime.weights import council as weights

if TYPE_CHECKING:
    from twinchain.runtime.runtime import Runtime
    from twinchain.runtime.traits import FacilityRegistry, RoleRegistry

MAX_MEMBERS = 100
MAX_MOTIONS = 100
MAX_PROPOSAL_BYTES = 16 * 1024
# One day of 1 s slots; a chain spec sets its own (genesis ``council.motion_duration``).
DEFAULT_MOTION_DURATION = 86_400
MIN_MOTION_DURATION = 10

MAJORITY = "Majority"  # more than half of the members
TWO_THIRDS = "TwoThirds"  # at least two thirds of the members
Threshold = Enum("Threshold", (MAJORITY, TWO_THIRDS))

# Roles that anchor trust (granted by governance only, Roles.GRANTORS): two thirds.
TRUST_ANCHORS = (FACILITY_OPERATOR, CERTIFIED_AUDITOR, EQUIPMENT_MANUFACTURER)
# Whole pallets whose root calls need two thirds: the council's rules, the authority set,
# the runtime itself (System's root calls) and the sudo key.
TWO_THIRDS_PALLETS = ("Council", "Authority", "System", "Sudo")
# Single calls that need two thirds: they change the council's membership.
TWO_THIRDS_CALLS = (
    ("Facility", "suspend"),
    ("Facility", "reinstate"),
    ("Facility", "revoke"),
    # Who validates and which nodes the network admits change the authority set: two thirds.
    ("Facility", "approve_validator"),
    ("Facility", "add_well_known_node"),
    ("Facility", "remove_well_known_node"),
)
# Facility events after which the facility's operator's membership is re-derived.
FACILITY_STATUS_EVENTS = (
    "FacilityVerified",
    "FacilitySuspended",
    "FacilityReinstated",
    "FacilityRevoked",
)

MemberList = Vec(AccountId, MAX_MEMBERS)
OpenMotions = Vec(U32, MAX_MOTIONS)


def required_votes(threshold: str, members: int) -> int:
    """Ayes a motion of ``threshold`` needs among ``members`` (at least one)."""
    if threshold == TWO_THIRDS:
        need = (2 * members + 2) // 3  # ceil(2n/3)
    else:
        need = members // 2 + 1  # more than half
    return max(1, need)


def motion_hash(call_wire: Any) -> bytes:
    """The hash a motion's call is known by (events, duplicate check, explorers)."""
    return hash_for(Domain.EXTRINSIC, codec.encode(call_wire))


def threshold_of(rt: Runtime, call_wire: Any) -> str:
    """The threshold a motion carrying ``call_wire`` needs (see the module docstring).

    Raises CodecError if the call does not decode."""
    pallet, cd, args = rt.resolve_call(Call.from_wire(call_wire))
    if pallet.name in TWO_THIRDS_PALLETS or (pallet.name, cd.name) in TWO_THIRDS_CALLS:
        return TWO_THIRDS
    if pallet.name == "Roles" and cd.name in ("force_grant", "force_revoke"):
        return TWO_THIRDS if args[1] in TRUST_ANCHORS else MAJORITY
    return MAJORITY


@dataclass
class Motion(Record):
    """An open motion: its call (wire form), who proposed it, the votes so far and when it
    expires (the last block in which it may be voted on or approved)."""

    hash: bytes
    proposer: bytes
    call: Any
    threshold: str
    ayes: list[bytes]
    nays: list[bytes]
    end: int
    weight: int
    FIELDS: ClassVar = {
        "hash": H256,
        "proposer": AccountId,
        "call": RuntimeCall,
        "threshold": Threshold,
        "ayes": MemberList,
        "nays": MemberList,
        "end": U64,
        "weight": U64,
    }


@dataclass(frozen=True)
class Config:
    """What Council uses of its siblings (its FRAME ``Config``), wired by the runtime."""

    roles: RoleRegistry  # the FacilityOperator role (Roles)
    facilities: FacilityRegistry  # facilities, their operators and verification (Facility)
    facility_ids: Callable[[], Iterable[int]]  # every registered facility's id (Facility)


class Council(Pallet):
    name = "Council"
    config: Config

    Members = StorageValue(
        MemberList, [], doc="The council: verified facilities' operators, sorted."
    )
    MotionCount = StorageValue(U32, 0, doc="Motions ever proposed; the next motion's index.")
    Motions = StorageMap(U32, Motion.wire_type(), doc="Open motions by index.")
    MotionOf = StorageMap(H256, U32, doc="The open motion carrying each call, by its hash.")
    Open = StorageValue(OpenMotions, [], doc="Indices of the open motions, oldest first.")
    MotionDuration = StorageValue(
        U32, DEFAULT_MOTION_DURATION, doc="Blocks a motion stays open for votes."
    )

    class Event(PalletEvents):
        Proposed = (
            ("who", AccountId),
            ("motion", U32),
            ("hash", H256),
            ("threshold", Threshold),
            ("end", U64),
        )
        Voted = (
            ("who", AccountId),
            ("motion", U32),
            ("approve", Bool),
            ("yes", U32),
            ("no", U32),
        )
        Approved = (("motion", U32), ("hash", H256))
        Disapproved = (("motion", U32), ("hash", H256))
        Executed = (("motion", U32), ("hash", H256), ("ok", Str(8)), ("error", Str(128)))
        Closed = (("motion", U32), ("yes", U32), ("no", U32))
        Expired = (("motion", U32), ("hash", H256))
        MemberAdded = (("who", AccountId),)
        MemberRemoved = (("who", AccountId),)
        MembersFull = (("who", AccountId),)
        MotionDurationSet = (("blocks", U32),)

    class Error(PalletErrors):
        NotMember = "the sender is not a council member"
        UnknownMotion = "no open motion with this index"
        DuplicateProposal = "an open motion already carries this call"
        TooManyMotions = "MaxMotions motions are open"
        WrongProposalLength = "the encoded call is longer than the given length bound"
        ProposalTooLarge = "the encoded call is longer than MaxProposalBytes"
        InvalidCall = "the proposed call does not decode"
        DuplicateVote = "the member already cast this vote"
        MotionExpired = "the motion expired: it can only be closed, as disapproved"
        TooEarly = "neither approved nor disapproved yet: more votes, or its expiry, are needed"
        WrongProposalWeight = "the call weighs more than the given weight bound"
        InvalidDuration = "a motion duration is at least MinMotionDuration blocks"

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=lambda rt, call, length_bound: (
            weights.W_PROPOSE + weights.W_PROPOSE_PER_BYTE * min(length_bound, MAX_PROPOSAL_BYTES)
        ),
        origin=SIGNED,
        args=(("call", RuntimeCall), ("length_bound", U32)),
    )
    def propose(self, origin: Origin, call: Any, length_bound: int) -> None:
        """Propose ``call`` for the council to dispatch as Root (a member). ``length_bound``
        is at least the call's encoded length (the weight is charged for it). The proposer's
        vote counts as an aye."""
        who = self._ensure_member(origin)
        size = len(codec.encode(call))
        if size > MAX_PROPOSAL_BYTES:
            raise self.Error.ProposalTooLarge(f"{size} > {MAX_PROPOSAL_BYTES}")
        if size > length_bound:
            raise self.Error.WrongProposalLength(f"{size} > {length_bound}")
        try:
            threshold = threshold_of(self.runtime, call)
        except CodecError as exc:
            raise self.Error.InvalidCall(str(exc)) from None
        h = motion_hash(call)
        if self.MotionOf.contains(h):
            raise self.Error.DuplicateProposal()
        open_ = self.Open.get()
        if len(open_) >= MAX_MOTIONS:
            open_ = self._prune_expired(open_)
            if len(open_) >= MAX_MOTIONS:
                raise self.Error.TooManyMotions()
        index = self.MotionCount.get()
        end = self.runtime.block.number + self.MotionDuration.get()
        weight = self.runtime.weigh_wire(call)
        self.Motions.insert(index, Motion(h, who, call, threshold, [who], [], end, weight))
        self.MotionOf.insert(h, index)
        self.Open.put([*open_, index])
        self.MotionCount.put(index + 1)
        self.deposit(self.Event.Proposed(who, index, h, threshold, end))
        self.deposit(self.Event.Voted(who, index, True, 1, 0))

    @call(
        1,
        weight=weights.W_VOTE,
        origin=SIGNED,
        args=(("motion", U32), ("approve", Bool)),
    )
    def vote(self, origin: Origin, motion: int, approve: bool) -> None:
        """Vote on an open, unexpired motion (a member; a vote may be changed, not repeated)."""
        who = self._ensure_member(origin)
        m = self._motion(motion)
        if self.runtime.block.number > m.end:
            raise self.Error.MotionExpired()
        mine, other = (m.ayes, m.nays) if approve else (m.nays, m.ayes)
        if who in mine:
            raise self.Error.DuplicateVote()
        if who in other:
            other.remove(who)
        mine.append(who)
        mine.sort()
        self.Motions.insert(motion, m)
        self.deposit(self.Event.Voted(who, motion, approve, len(m.ayes), len(m.nays)))

    @call(
        2,
        weight=lambda rt, motion, weight_bound: weights.W_CLOSE + weight_bound,
        origin=SIGNED,
        args=(("motion", U32), ("weight_bound", U64)),
    )
    def close(self, origin: Origin, motion: int, weight_bound: int) -> None:
        """Close a motion whose outcome is certain (anyone): approved, it dispatches its call
        as Root (``weight_bound`` must cover the call's weight, as ``Motion.weight`` shows);
        disapproved or expired, it is dropped and never dispatches."""
        ensure_signed(origin)
        m = self._motion(motion)
        members = len(self.Members.get())
        need = required_votes(m.threshold, members)
        yes, no = len(m.ayes), len(m.nays)
        if self.runtime.block.number > m.end:
            self._drop(motion, m)
            self.deposit(self.Event.Expired(motion, m.hash))
            self.deposit(self.Event.Closed(motion, yes, no))
            self.deposit(self.Event.Disapproved(motion, m.hash))
            return
        if yes >= need:
            if self.runtime.weigh_wire(m.call) > weight_bound:
                raise self.Error.WrongProposalWeight()
            # The motion is over whatever its call does: drop it first.
            self._drop(motion, m)
            self.deposit(self.Event.Closed(motion, yes, no))
            self.deposit(self.Event.Approved(motion, m.hash))
            err = self.runtime.dispatch_in_layer(Origin.root(), m.call)
            ok, error = ("ok", "") if err is None else ("err", f"{err.module}.{err.error}")
            self.deposit(self.Event.Executed(motion, m.hash, ok, error))
            return
        if members - no < need:
            self._drop(motion, m)
            self.deposit(self.Event.Closed(motion, yes, no))
            self.deposit(self.Event.Disapproved(motion, m.hash))
            return
        raise self.Error.TooEarly(f"{yes} of {need} ayes, {no} nays, {members} members")

    @call(
        3,
        weight=lambda rt, who: (
            weights.W_SYNC_MEMBER + weights.W_SYNC_PER_FACILITY * rt.facility.NextFacilityId.get()
        ),
        origin=SIGNED,
        args=(("who", AccountId),),
    )
    def sync_member(self, origin: Origin, who: bytes) -> None:
        """Re-derive ``who``'s membership from Facility and Roles now (anyone): how a member
        whose facility's verification lapsed by time, which no event announces, leaves."""
        ensure_signed(origin)
        self._sync(who)

    @call(4, weight=weights.W_SET_MOTION_DURATION, origin=ROOT, args=(("blocks", U32),))
    def set_motion_duration(self, origin: Origin, blocks: int) -> None:
        """Set how many blocks new motions stay open (Root: a two-thirds motion)."""
        ensure_root(origin)
        if blocks < MIN_MOTION_DURATION:
            raise self.Error.InvalidDuration()
        self.MotionDuration.put(blocks)
        self.deposit(self.Event.MotionDurationSet(blocks))

    # ------------------------------------------------------------------ internals
    def _ensure_member(self, origin: Origin) -> bytes:
        who = ensure_signed(origin)
        if who not in self.Members.get():
            raise self.Error.NotMember()
        return who

    def _motion(self, index: int) -> Motion:
        m: Motion | None = self.Motions.get(index)
        if m is None:
            raise self.Error.UnknownMotion()
        return m

    def _drop(self, index: int, m: Motion) -> None:
        self.Motions.remove(index)
        self.MotionOf.remove(m.hash)
        self.Open.put([i for i in self.Open.get() if i != index])

    def _prune_expired(self, open_: list[int]) -> list[int]:
        """Close every expired motion (as ``close`` would) to make room; the open list left."""
        now = self.runtime.block.number
        keep = []
        for i in open_:
            m: Motion = self.Motions.get(i)
            if now > m.end:
                self.Motions.remove(i)
                self.MotionOf.remove(m.hash)
                self.deposit(self.Event.Expired(i, m.hash))
                self.deposit(self.Event.Closed(i, len(m.ayes), len(m.nays)))
                self.deposit(self.Event.Disapproved(i, m.hash))
            else:
                keep.append(i)
        self.Open.put(keep)
        return keep

    def qualifies(self, who: bytes) -> bool:
        """Whether ``who`` should be a member: it holds FacilityOperator and operates a
        verified facility."""
        if not self.config.roles.has(who, FACILITY_OPERATOR):
            return False
        fac = self.config.facilities
        for fid in self.config.facility_ids():
            f = fac.facility(fid)
            if f is not None and f.operator == who and fac.is_verified(fid):
                return True
        return False

    def _sync(self, who: bytes) -> None:
        members = self.Members.get()
        should = self.qualifies(who)
        if should and who not in members:
            if len(members) >= MAX_MEMBERS:
                self.deposit(self.Event.MembersFull(who))
                return
            self.Members.put(sorted([*members, who]))
            self.deposit(self.Event.MemberAdded(who))
        elif not should and who in members:
            self.Members.put([m for m in members if m != who])
            # As pallet-collective's change_members: an outgoing member's votes go.
            for i in self.Open.get():
                m: Motion = self.Motions.get(i)
                if who in m.ayes or who in m.nays:
                    m.ayes = [a for a in m.ayes if a != who]
                    m.nays = [n for n in m.nays if n != who]
                    self.Motions.insert(i, m)
            self.deposit(self.Event.MemberRemoved(who))

    def _touched(self, events: Iterable[tuple[Any, Any]]) -> list[bytes]:
        """Accounts whose membership this block's events may have changed, in event order."""
        out: list[bytes] = []
        operator_role = Role.to_wire(FACILITY_OPERATOR)
        for _, ev in events:
            # Most blocks hold only other pallets' events (telemetry): skip them cheaply.
            module = ev.module
            if (module != "Facility" and module != "Roles") or not isinstance(ev, EventRecord):
                continue
            who: bytes | None = None
            if module == "Facility" and ev.name in FACILITY_STATUS_EVENTS:
                f = self.config.facilities.facility(int(ev.args[0]))
                who = None if f is None else f.operator
            elif (
                module == "Roles"
                and ev.name in ("RoleGranted", "RoleRevoked")
                and ev.args[1] == operator_role
            ):
                who = AccountId.from_wire(ev.args[0])
            if who is not None and who not in out:
                out.append(who)
        return out

    # ------------------------------------------------------------------ hooks
    def on_finalize(self, number: int) -> None:
        """Follow Facility and Roles: re-derive the membership of each operator this block's
        status events name (pallet-membership's change hook, read off the events)."""
        touched = self._touched(self.runtime.state.events)
        for who in touched:
            self.in_layer(lambda who=who: self._sync(who))

    def genesis(self, config: dict[str, Any]) -> None:
        """``motion_duration`` (blocks); the founding members are the operators of the
        genesis' verified facilities (Facility and Roles are built first)."""
        duration = int(config.get("motion_duration", DEFAULT_MOTION_DURATION))
        if duration < MIN_MOTION_DURATION:
            raise ValueError(f"council motion_duration must be at least {MIN_MOTION_DURATION}")
        self.MotionDuration.put(duration)
        founders: set[bytes] = set()
        for fid in self.config.facility_ids():
            f = self.config.facilities.facility(fid)
            if f is not None and f.operator not in founders and self.qualifies(f.operator):
                founders.add(f.operator)
        if len(founders) > MAX_MEMBERS:
            raise ValueError(f"more than {MAX_MEMBERS} founding council members")
        self.Members.put(sorted(founders))

    # ------------------------------------------------------------------ API
    def members(self) -> list[bytes]:
        return self.Members.get()  # type: ignore[no-any-return]

    def is_member(self, who: bytes) -> bool:
        return who in self.Members.get()

    def open_motions(self) -> list[tuple[int, Motion]]:
        return [(i, self.Motions.get(i)) for i in self.Open.get()]

    def constants(self) -> dict[str, Any]:
        return {
            "MaxMembers": MAX_MEMBERS,
            "MaxMotions": MAX_MOTIONS,
            "MaxProposalBytes": MAX_PROPOSAL_BYTES,
            "MinMotionDuration": MIN_MOTION_DURATION,
            "Thresholds": {
                "default": MAJORITY,
                TWO_THIRDS: {
                    "pallets": list(TWO_THIRDS_PALLETS),
                    "calls": [f"{p}.{c}" for p, c in TWO_THIRDS_CALLS],
                    "roles": list(TRUST_ANCHORS),
                },
            },
        }
