"""What Telemetry uses of its siblings (its FRAME ``Config``), wired by the runtime."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from twinchain.runtime.pallets.telemetry.types import Aggregate
    from twinchain.runtime.traits import FacilityRegistry, RoleRegistry, TwinRegistry


class WindowCloseListener(Protocol):
    """A pallet told of every closed telemetry window (Benchmark, Maintenance, Analytics,
    Simulation): it learns a twin's operation from its windows' aggregates."""

    name: str

    def on_window_closed(
        self, twin: int, start: int, window_ms: int, aggs: dict[int, Aggregate]
    ) -> None:
        """The twin's window ``[start, start + window_ms)`` has closed: ``aggs`` maps each
        metric the twin makes public with readings in it to its aggregate (a private metric
        has none on chain). Runs at the start of a block after the
        submission that closed the window (Telemetry's queue), in the listeners' order, all of
        them in one layer per close; it must not raise for business reasons (the whole close
        would be reverted and reported), only record."""
        ...


@dataclass(frozen=True)
class Config:
    """Telemetry's sibling APIs."""

    twins: TwinRegistry  # twin records, rights, operating envelopes (Equipment)
    roles: RoleRegistry  # the Gateway role of submitters; the Device role of bound keys (Roles)
    facilities: FacilityRegistry  # a twin's facility: its operator and auditor (Facility)
    window_listeners: Sequence[WindowCloseListener]  # told of each closed window, in order
