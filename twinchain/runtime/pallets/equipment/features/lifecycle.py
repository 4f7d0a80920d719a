"""Equipment lifecycle: commissioning at a verified facility, activation, maintenance and
decommissioning along ``TRANSITIONS``, each recorded in the twin's provenance."""

from __future__ import annotations

from twinchain.primitives.codec import U32
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.equipment.types import (
    ARRIVAL,
    OPERATE,
    OPERATIONAL,
    SERVICE,
    TRANSITIONS,
    TwinId,
    TwinInfo,
)
from twinchain.runtime.weights import equipment as weights


class LifecycleFeature:
    """Lifecycle of the Equipment pallet's twins."""

    @call(2, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("facility", U32)))
    def commission(self, origin: Origin, twin: int, facility: int) -> None:
        """Install the twin at a verified facility (the owner): Manufactured → Commissioned."""
        who = ensure_signed(origin)
        t = self._ensure_owner(who, twin)
        fac = self.config.facilities
        if fac.facility(facility) is None:
            raise self.Error.UnknownFacility()
        if not fac.is_verified(facility):
            raise self.Error.FacilityNotVerified()
        if "Commissioned" not in TRANSITIONS[t.lifecycle]:
            raise self.Error.InvalidTransition(f"{t.lifecycle} -> Commissioned")
        t.facility = facility
        self._transition(twin, t, "Commissioned", who)

    @call(3, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def activate(self, origin: Origin, twin: int) -> None:
        """Put into service, or back from maintenance (the owner or an OPERATE delegate)."""
        who = ensure_signed(origin)
        t = self._ensure_right(who, twin, OPERATE)
        self._transition(twin, t, "Active", who)

    @call(4, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def begin_maintenance(self, origin: Origin, twin: int) -> None:
        """Take an active twin into maintenance (owner, OPERATE or SERVICE delegate)."""
        who = ensure_signed(origin)
        t = self._ensure_right(who, twin, OPERATE | SERVICE)
        self._transition(twin, t, "Maintenance", who)

    @call(5, weight=weights.W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def decommission(self, origin: Origin, twin: int) -> None:
        """Retire the twin for good (the owner, or the multisig of critical equipment)."""
        who = ensure_signed(origin)
        t = self._ensure_critical(who, twin)
        self._transition(twin, t, "Decommissioned", who)
        self.Access.remove_prefix(twin)

    def _transition(self, twin: int, t: TwinInfo, to: str, actor: bytes | None) -> None:
        if to not in TRANSITIONS[t.lifecycle]:
            raise self.Error.InvalidTransition(f"{t.lifecycle} -> {to}")
        old = t.lifecycle
        t.lifecycle = to
        self.Twins.insert(twin, t)
        self._record(twin, t, ARRIVAL[to], actor)
        self.deposit(self.Event.LifecycleChanged(twin, old, to))

    # ------------------------------------------------------------------ API for other pallets
    def set_lifecycle_by(self, twin: int, to: str, actor: bytes | None) -> None:
        """Move the twin along an allowed transition on behalf of another pallet (maintenance
        work orders start and end maintenance)."""
        if to not in ARRIVAL:
            raise self.Error.InvalidTransition(f"-> {to}")
        self._transition(twin, self._get(twin), to, actor)

    def is_operational(self, twin: int) -> bool:
        t: TwinInfo | None = self.Twins.get_shared(twin)
        return t is not None and t.lifecycle in OPERATIONAL
