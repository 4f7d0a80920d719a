"""JSON-RPC error codes and the one exception type that carries them (server and client side).

Standard codes come from the JSON-RPC 2.0 spec; server limits use jsonrpsee's codes and the
application codes are Substrate's (author 1xxx, state 4xxx), so existing tooling recognises them.
"""

from __future__ import annotations

from typing import Any

# JSON-RPC 2.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Server limits (jsonrpsee's codes).
SERVER_ERROR = -32000
TOO_MANY_SUBSCRIPTIONS = -32006
OVERSIZED_REQUEST = -32007
OVERSIZED_RESPONSE = -32008
SERVER_BUSY = -32009
BATCH_TOO_LARGE = -32010
RATE_LIMITED = -32011  # ours: a client over its calls-per-second budget

# author_* (Substrate's sc-rpc-api author errors).
BAD_FORMAT = 1001
POOL_INVALID_TX = 1010
POOL_TEMPORARILY_BANNED = 1012
POOL_ALREADY_IMPORTED = 1013
POOL_TOO_LOW_PRIORITY = 1014
POOL_IMMEDIATELY_DROPPED = 1016
UNSUPPORTED_KEY_TYPE = 1017

# state_* / chain_*.
INVALID_COUNT = 4002
STATE_UNAVAILABLE = 4003

_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}

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


class RpcError(Exception):
    """A JSON-RPC error object: raised by method handlers, and by :class:`RpcClient` calls."""

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        self.code = code
        self.message = message if message is not None else _MESSAGES.get(code, "Server error")
        self.data = data
        super().__init__(f"{self.code}: {self.message}" + ("" if data is None else f" ({data})"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def invalid_params(detail: str) -> RpcError:
    return RpcError(INVALID_PARAMS, "Invalid params", detail)


def pool_error(code: str, detail: str = "") -> RpcError:
    """The RPC error for a transaction the pool refused; ``data`` keeps the pool's own code."""
    rpc_code, message = _POOL_CODES.get(code, (POOL_INVALID_TX, "Invalid Transaction"))
    return RpcError(rpc_code, message, {"code": code, "detail": detail})
