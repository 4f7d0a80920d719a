"""The server's own error helpers: the codes and :class:`RpcError` itself are in
:mod:`twinchain.protocol.jsonrpc` (clients read them too).
"""

from __future__ import annotations

from twinchain.protocol.jsonrpc import (
    INVALID_PARAMS,
    POOL_ALREADY_IMPORTED,
    POOL_IMMEDIATELY_DROPPED,
    POOL_INVALID_TX,
    POOL_TEMPORARILY_BANNED,
    POOL_TOO_LOW_PRIORITY,
    RpcError,
)

# Pool rejection codes (twinchain.node.txpool.PoolError.code) that have their own Substrate
# error; "Invalid:<reason>" (the runtime's InvalidTransaction: BadProof, Stale, Payment, ...)
# and anything else is 1010 "Invalid Transaction".
_POOL_CODES: dict[str, tuple[int, str]] = {
    "TemporarilyBanned": (POOL_TEMPORARILY_BANNED, "Transaction is temporarily banned"),
    "AlreadyImported": (POOL_ALREADY_IMPORTED, "Transaction Already Imported"),
    "TooLowPriority": (POOL_TOO_LOW_PRIORITY, "Priority is too low"),
    "ReplacementUnderpriced": (POOL_TOO_LOW_PRIORITY, "Priority is too low"),
    "LimitsExceeded": (POOL_IMMEDIATELY_DROPPED, "Immediately Dropped"),
}


def invalid_params(detail: str) -> RpcError:
    return RpcError(INVALID_PARAMS, "Invalid params", detail)


def pool_error(code: str, detail: str = "") -> RpcError:
    """The RPC error for a transaction the pool refused; ``data`` keeps the pool's own code."""
    rpc_code, message = _POOL_CODES.get(code, (POOL_INVALID_TX, "Invalid Transaction"))
    return RpcError(rpc_code, message, {"code": code, "detail": detail})
