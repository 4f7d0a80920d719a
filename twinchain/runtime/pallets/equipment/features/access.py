"""Equipment access: rights the owner delegates until an expiry, and the M-of-N multisig that
critical equipment's transfer and decommission must come from."""

from __future__ import annotations

from itertools import pairwise

from twinchain.primitives.codec import U8, U16, U64, AccountId, Vec
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.equipment.types import ALL_RIGHTS, AccessGrant, TwinId, TwinInfo
from twinchain.runtime.pallets.multisig import MAX_SIGNATORIES, multi_account_id
from twinchain.runtime.weights import equipment as weights


class AccessFeature:
    """Delegations and critical multisig of the Equipment pallet."""

    # ------------------------------------------------------------------ helpers
    def _ensure_right(self, who: bytes, twin: int, right: int) -> TwinInfo:
        t = self._live(twin)
        if not self.has_right(twin, who, right, t):
            raise self.Error.NoPermission()
        return t

    def _ensure_critical(self, who: bytes, twin: int) -> TwinInfo:
        """Owner, or the configured multisig account when there is one."""
        t = self._live(twin)
        if t.critical_multisig is not None:
            if who == t.critical_multisig:
                return t
            raise self.Error.MultisigRequired() if who == t.owner else self.Error.NotOwner()
        if t.owner != who:
            raise self.Error.NotOwner()
        return t

    @call(
        6,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("who", AccountId), ("rights", U8), ("expires", U64)),
    )
    def grant_access(
        self, origin: Origin, twin: int, who: bytes, rights: int, expires: int
    ) -> None:
        """Delegate rights (bit mask: 1 read telemetry, 2 operate, 4 service) until ``expires``
        (the owner); replaces an earlier grant to the same account."""
        sender = ensure_signed(origin)
        t = self._ensure_owner(sender, twin)
        if rights == 0 or rights & ~ALL_RIGHTS or who == t.owner:
            raise self.Error.InvalidRights()
        if expires <= self._now():
            raise self.Error.InvalidExpiry()
        self.Access.insert(twin, who, AccessGrant(rights, expires, sender))
        self.deposit(self.Event.AccessGranted(twin, who, rights, expires))

    @call(7, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("who", AccountId)))
    def revoke_access(self, origin: Origin, twin: int, who: bytes) -> None:
        """End a delegation (the owner)."""
        sender = ensure_signed(origin)
        self._ensure_owner(sender, twin)
        if not self.Access.contains(twin, who):
            raise self.Error.NoAccess()
        self.Access.remove(twin, who)
        self.deposit(self.Event.AccessRevoked(twin, who))

    @call(
        13,
        weight=weights.W_MULTISIG,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("signatories", Vec(AccountId, MAX_SIGNATORIES)),
            ("threshold", U16),
        ),
    )
    def set_critical_multisig(
        self, origin: Origin, twin: int, signatories: list[bytes], threshold: int
    ) -> None:
        """Mark the twin critical: transfer and decommission then need this M-of-N multisig.
        The owner sets it first; afterwards only the multisig may change it."""
        who = ensure_signed(origin)
        t = self._live(twin)
        current = t.critical_multisig
        if current is None and who != t.owner:
            raise self.Error.NotOwner()
        if current is not None and who != current:
            raise self.Error.MultisigRequired() if who == t.owner else self.Error.NotOwner()
        if (
            not 2 <= len(signatories) <= MAX_SIGNATORIES
            or any(not a < b for a, b in pairwise(signatories))
            or not 2 <= threshold <= len(signatories)
        ):
            raise self.Error.InvalidMultisig()
        t.critical_multisig = multi_account_id(signatories, threshold)
        self.Twins.insert(twin, t)
        self._record(twin, t, "MultisigSet", who, t.critical_multisig)
        self.deposit(self.Event.CriticalMultisigSet(twin, t.critical_multisig))

    @call(14, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def clear_critical_multisig(self, origin: Origin, twin: int) -> None:
        """Drop the multisig requirement (only the multisig itself may)."""
        who = ensure_signed(origin)
        t = self._live(twin)
        if t.critical_multisig is None:
            raise self.Error.NoMultisig()
        if who != t.critical_multisig:
            raise self.Error.MultisigRequired()
        t.critical_multisig = None
        self.Twins.insert(twin, t)
        self._record(twin, t, "MultisigCleared", who)
        self.deposit(self.Event.CriticalMultisigSet(twin, None))

    # ------------------------------------------------------------------ API for other pallets
    def has_right(
        self, twin: int, who: bytes, right: int, t: TwinInfo | None = None, now: int | None = None
    ) -> bool:
        """Whether ``who`` owns the twin or holds a delegation of ``right`` unexpired at
        ``now`` (ms; default: the block time)."""
        t = t or self.Twins.get(twin)
        if t is None:
            return False
        if t.owner == who:
            return True
        g: AccessGrant | None = self.Access.get(twin, who)
        if g is None or not g.rights & right:
            return False
        return bool(g.expires > (self._now() if now is None else now))
