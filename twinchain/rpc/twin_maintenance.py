"""``twin_*`` JSON-RPC reads of the Maintenance pallet (merged into :mod:`twinchain.rpc.twin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

METHODS: dict[str, Callable[..., Any]] = {}
