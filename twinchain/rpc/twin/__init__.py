"""Decoded reads of the digital twins: the ``twin_*`` JSON-RPC methods, one module per pallet
family (:mod:`.registry`, :mod:`.telemetry`, :mod:`.benchmark`, :mod:`.maintenance`,
:mod:`.analytics`, :mod:`.simulation`), sharing :mod:`.common`. Each module lists its methods
in its docstring and in ``METHODS``.

:func:`register` adds them all to the RPC method table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinchain.rpc.twin import (
    analytics,
    benchmark,
    maintenance,
    registry,
    simulation,
    telemetry,
)
from twinchain.rpc.twin.common import Params, TwinMethod

MODULES = (registry, telemetry, benchmark, maintenance, analytics, simulation)


def _handler(fn: TwinMethod) -> Callable[..., Any]:
    """Adapt ``fn(client, params)`` to the method table's ``handler(ctx, *params)``: the
    table binds positional or named params, and the function binds them itself."""

    def handler(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        params: Params = list(args) if args else (dict(kwargs) if kwargs else None)
        return fn(ctx.node.chain, params)

    handler.__name__ = handler.__qualname__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def all_methods() -> dict[str, TwinMethod]:
    """Every module's methods (a name defined twice is an error)."""
    out: dict[str, TwinMethod] = {}
    for mod in MODULES:
        clash = set(out) & set(mod.METHODS)
        if clash:
            raise RuntimeError(f"twin RPC methods defined twice: {sorted(clash)}")
        out.update(mod.METHODS)
    return out


def register(rpc: Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]) -> None:
    """Add every ``twin_*`` method through the method table's ``rpc(name)`` decorator."""
    for name, fn in all_methods().items():
        rpc(name)(_handler(fn))
