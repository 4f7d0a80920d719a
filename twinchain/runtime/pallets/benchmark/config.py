"""What Benchmark uses of its siblings (its FRAME ``Config``), wired by the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinchain.runtime.traits import (
        RoleRegistry,
        TelemetryReads,
        TwinRegistry,
    )


@dataclass(frozen=True)
class Config:
    """Benchmark's sibling APIs."""

    twins: TwinRegistry  # twin records, rights and rated values (Equipment)
    roles: RoleRegistry  # manufacturers, who own class specifications (Roles)
    telemetry: TelemetryReads  # metric kinds, the window length, aggregates (Telemetry)
