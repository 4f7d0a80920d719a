"""What Facility uses of its siblings (its FRAME ``Config``), wired by the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinchain.runtime.traits import (
        RoleRegistry,
    )


@dataclass(frozen=True)
class Config:
    """Facility's sibling APIs."""

    roles: RoleRegistry  # operators and certified auditors (Roles)
