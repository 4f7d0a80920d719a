"""The sibling APIs pallets use, as FRAME's traits: small Protocols a pallet's ``Config``
names, each served by one pallet of the runtime, which ``runtime.py`` wires in.

A pallet never reaches a sibling through the runtime (``self.runtime.<pallet>``): it states
in its ``Config`` which of these it uses and calls them there (``self.config.roles.has``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from twinchain.runtime.pallets.equipment.types import Envelope, TwinInfo


class Roles(Protocol):
    """Role grants (served by Roles)."""

    def has(self, who: bytes, role: str) -> bool:
        """Whether ``who`` holds ``role``."""
        ...

    def grant_internal(self, who: bytes, role: str, by: bytes | None) -> None:
        """Grant ``role`` to ``who`` on behalf of ``by`` (None: the chain itself)."""
        ...

    def revoke_internal(self, who: bytes, role: str, by: bytes | None) -> None:
        """Revoke ``who``'s ``role``, if held, on behalf of ``by``."""
        ...


class Twins(Protocol):
    """The equipment twins' registry (served by Equipment)."""

    def twin(self, twin: int) -> TwinInfo | None:
        """The twin's record, None for an unknown id."""
        ...

    def envelopes(self, twin: int) -> dict[int, Envelope]:
        """The twin's operating envelope per metric; read-only (shared decoded records)."""
        ...

    def is_operational(self, twin: int) -> bool:
        """Whether the twin exists and is commissioned, active or in maintenance."""
        ...

    def has_right(self, twin: int, who: bytes, right: int, t: TwinInfo | None = None) -> bool:
        """Whether ``who`` owns the twin or holds an unexpired delegation of ``right``
        (``t``: the twin's record when the caller has it)."""
        ...
