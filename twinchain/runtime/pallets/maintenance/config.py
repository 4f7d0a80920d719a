"""What Maintenance uses of its siblings (its FRAME ``Config``), wired by the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinchain.runtime.traits import (
        Currency,
        Deviations,
        FacilityRegistry,
        FailureLog,
        ModelRegistry,
        RoleRegistry,
        TelemetryReads,
        TwinRegistry,
        TwinService,
        VerifiedMaintenance,
    )


@dataclass(frozen=True)
class Config:
    """Maintenance's sibling APIs."""

    twins: TwinRegistry  # twin records, rights and envelopes (Equipment)
    twin_service: TwinService  # lifecycle moves and service records of work (Equipment)
    roles: RoleRegistry  # workers, operators, providers and auditors (Roles)
    facilities: FacilityRegistry  # a twin's facility and its operator (Facility)
    # verified work for the facility's reputation (Facility)
    verified_maintenance: VerifiedMaintenance
    currency: Currency  # work orders' escrowed payments (Balances)
    telemetry: TelemetryReads  # the metric registry (Telemetry)
    deviations: Deviations  # a closed window's deviation from its target (Benchmark)
    failures: FailureLog  # failures and repairs for reliability figures (Analytics)
    models: ModelRegistry  # the models predicted-failure alerts may cite (Simulation)
