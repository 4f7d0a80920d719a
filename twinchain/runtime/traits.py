"""The sibling APIs pallets use, as FRAME's traits: small Protocols that a pallet's ``Config``
names, each served by one pallet of the runtime, which ``runtime.py`` wires in
(``Runtime._wire``).

A pallet never reaches a sibling through the runtime (``self.runtime.<pallet>``): it states
in its ``Config`` which of these it uses and calls them there (``self.config.roles.has``).
A trait is a capability, not a pallet: a consumer that needs less names less, and a pallet
may serve several (Equipment serves :class:`TwinRegistry` and :class:`TwinService`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection

    from twinchain.protocol.telemetry import MetricInfo
    from twinchain.runtime.pallets.equipment.types import Envelope, Spec, TwinInfo
    from twinchain.runtime.pallets.facility.types import FacilityInfo
    from twinchain.runtime.pallets.roles import Grant
    from twinchain.runtime.pallets.telemetry.types import Aggregate

# --------------------------------------------------------------------------- accounts


class AccountProviders(Protocol):
    """Account lifetimes: an account exists while something provides for it (System)."""

    def inc_providers(self, who: bytes) -> None:
        """One more provider (a balance came into existence): creates the account record."""
        ...

    def dec_providers(self, who: bytes) -> None:
        """One provider fewer (a balance was reaped); the record and its nonce stay."""
        ...


class Currency(Protocol):
    """The native token: free and reserved balances (Balances). Each method raises the
    Balances error that stops it (a DispatchError) and changes nothing then."""

    def free_balance(self, who: bytes) -> int:
        """``who``'s free (spendable) balance."""
        ...

    def do_transfer(self, src: bytes, dest: bytes, value: int, keep_alive: bool) -> None:
        """Move ``value`` of free balance; ``keep_alive``: never reap ``src``."""
        ...

    def reserve(self, who: bytes, amount: int) -> None:
        """Move ``amount`` from free to reserved (escrow, deposits)."""
        ...

    def unreserve(self, who: bytes, amount: int) -> None:
        """Move ``amount`` from reserved back to free."""
        ...

    def repatriate_reserved(self, src: bytes, dest: bytes, amount: int) -> None:
        """Pay ``amount`` out of ``src``'s reserve into ``dest``'s free balance."""
        ...

    def mint(self, who: bytes, amount: int) -> None:
        """Create ``amount`` new tokens in ``who``'s free balance."""
        ...


class SlotClock(Protocol):
    """The consensus slot length (Authority)."""

    def slot_duration(self) -> int:
        """Milliseconds per slot."""
        ...


class RoleRegistry(Protocol):
    """Role grants (Roles)."""

    def has(self, who: bytes, role: str) -> bool:
        """Whether ``who`` holds ``role``."""
        ...

    def grant_of(self, who: bytes, role: str) -> Grant | None:
        """Who granted ``who`` its ``role`` and when; None if not held."""
        ...

    def grant_internal(self, who: bytes, role: str, by: bytes | None) -> None:
        """Grant ``role`` to ``who`` on behalf of ``by`` (None: the chain itself)."""
        ...

    def revoke_internal(self, who: bytes, role: str, by: bytes | None) -> None:
        """Revoke ``who``'s ``role``, if held, on behalf of ``by``."""
        ...


# --------------------------------------------------------------------------- registries


class FacilityRegistry(Protocol):
    """Facilities and their verification (Facility)."""

    def facility(self, fid: int) -> FacilityInfo | None:
        """The facility's record, None for an unknown id."""
        ...

    def is_verified(self, fid: int) -> bool:
        """Verified by an unexpired passed audit, and neither suspended nor revoked."""
        ...


class VerifiedMaintenance(Protocol):
    """Where a facility's verified maintenance counts (Facility's reputation)."""

    def note_verified_maintenance(self, fid: int, reference: bytes) -> None:
        """A completed work order at the facility was verified (``reference``: its report)."""
        ...


class TwinRegistry(Protocol):
    """The equipment twins (Equipment): records, rights and manufacturer specifications."""

    def twin(self, twin: int) -> TwinInfo | None:
        """The twin's record, None for an unknown id."""
        ...

    def spec(self, twin: int) -> Spec | None:
        """The twin's manufacturer specification (rated values, operating envelope)."""
        ...

    def envelopes(self, twin: int) -> dict[int, Envelope]:
        """The twin's operating envelope per metric; read-only (shared decoded records)."""
        ...

    def is_operational(self, twin: int) -> bool:
        """Whether the twin exists and is commissioned, active or in maintenance."""
        ...

    def has_right(
        self, twin: int, who: bytes, right: int, t: TwinInfo | None = None, now: int | None = None
    ) -> bool:
        """Whether ``who`` owns the twin or holds an unexpired delegation of ``right``
        (``t``: the twin's record when the caller has it; ``now``: the time to check the
        expiry at, ms, default the block time)."""
        ...

    def failure_modes(self, equipment_class: str) -> frozenset[str] | None:
        """The failure modes of a registered class; None if the class is not registered."""
        ...


class TwinService(Protocol):
    """What maintenance work does to a twin (Equipment)."""

    def set_lifecycle_by(self, twin: int, to: str, actor: bytes | None) -> None:
        """Move the twin along an allowed lifecycle transition on ``actor``'s behalf."""
        ...

    def record_service_by(
        self,
        twin: int,
        provider: bytes,
        kind: str,
        report: bytes,
        cost: int,
        work_order: int | None,
    ) -> int:
        """Append a service record to the twin's history; returns its index."""
        ...


# --------------------------------------------------------------------------- operations


class TelemetryReads(Protocol):
    """The metric registry and the twins' window aggregates (Telemetry)."""

    def metric(self, metric: int) -> MetricInfo | None:
        """A registered metric, None if unknown."""
        ...

    def window_ms(self) -> int:
        """Length of an aggregation window."""
        ...

    def aggregate(self, twin: int, metric: int, start: int) -> Aggregate | None:
        """The twin's aggregate of ``metric`` in the window starting at ``start``; None for
        a metric the twin keeps private."""
        ...


class MetricRegistry(Protocol):
    """The metric registry as equipment classes use it (Telemetry): find a metric by id or
    name, register the new ones a class brings."""

    def metric(self, metric: int) -> MetricInfo | None:
        """A registered metric, None if unknown."""
        ...

    def metric_id(self, name: str) -> int | None:
        """The id of the metric called ``name``, None if there is none."""
        ...

    def allocate_metric(self, name: str, unit: str, scale: int, kind: str) -> int | None:
        """Register a new metric under the next free class metric id; None if none is free."""
        ...


class Deviations(Protocol):
    """How far a window's value is from its target (Benchmark)."""

    def deviation_bp(
        self,
        twin: int,
        metric: int,
        agg: Aggregate,
        *,
        cls: str | None = None,
        aggs: dict[int, Aggregate] | None = None,
    ) -> int | None:
        """Signed deviation in basis points from the condition-adjusted class target (or
        the twin's baseline); None without either (``cls``, ``aggs``: fewer reads)."""
        ...


class TwinHealth(Protocol):
    """A twin's condition from its drift (Benchmark)."""

    def health_bp(self, twin: int) -> int | None:
        """0..10000 (10000 = as new); None before any drift was measured."""
        ...


class AlertLog(Protocol):
    """A twin's alerts (Maintenance)."""

    def last_alert(self, twin: int) -> int | None:
        """Id of the twin's latest alert, None if it never had one."""
        ...


class FailureLog(Protocol):
    """Failures and repairs for reliability figures (Analytics)."""

    def note_failure(self, twin: int, at_ms: int) -> None:
        """A failure of the twin (a corrective work order raised from an alert)."""
        ...

    def note_repair(self, twin: int, start_ms: int, end_ms: int) -> None:
        """A verified repair of the twin lasting ``end_ms - start_ms``."""
        ...


class ModelRegistry(Protocol):
    """The registered predictive models (Simulation)."""

    def model_active(self, model: bytes) -> bool:
        """Whether ``model`` is registered and active."""
        ...


# --------------------------------------------------------------------------- validators


class ValidatorSource(Protocol):
    """Validators joining and leaving at a session boundary (Facility's onboarding)."""

    def validator_changes(
        self, current: Collection[bytes] = ()
    ) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        """(to add, to remove) as (facility, validator account) pairs; ``current``: the
        accounts of the authority set now."""
        ...

    def validator_applied(self, fid: int) -> None:
        """The boundary applied this facility's change."""
        ...
