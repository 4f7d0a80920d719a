"""What Analytics uses of its siblings (its FRAME ``Config``), wired by the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinchain.runtime.traits import (
        Currency,
        FacilityRegistry,
        RoleRegistry,
        TelemetryReads,
        TwinRegistry,
    )


@dataclass(frozen=True)
class Config:
    """Analytics's sibling APIs."""

    twins: TwinRegistry  # twin records, rights and rated values (Equipment)
    facilities: FacilityRegistry  # facilities and their operators, for reports (Facility)
    roles: RoleRegistry  # facility operators (Roles)
    currency: Currency  # the treasury's rewards (Balances)
    telemetry: TelemetryReads  # the window length (Telemetry)
