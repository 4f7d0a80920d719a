"""What Equipment uses of its siblings (its FRAME ``Config``), wired by the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinchain.runtime.traits import (
        FacilityRegistry,
        MetricRegistry,
        RoleRegistry,
    )


@dataclass(frozen=True)
class Config:
    """Equipment's sibling APIs."""

    roles: RoleRegistry  # manufacturers, owners, auditors and service providers (Roles)
    facilities: FacilityRegistry  # where a twin may be commissioned (Facility)
    metrics: MetricRegistry  # the metrics a registered class binds or brings (Telemetry)
