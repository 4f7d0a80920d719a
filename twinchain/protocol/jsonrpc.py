"""What a JSON-RPC server and its clients share: the wire shapes of bytes, numbers and
headers, the error codes, and the exception that carries an error object.

Bytes travel as ``0x``-prefixed lowercase hex and header numbers as minimal hex (``"0x1a"``),
as Substrate's RPC does, so the same client code reads both. Standard error codes come from
the JSON-RPC 2.0 spec; server limits use jsonrpsee's codes and the application codes are
Substrate's (author 1xxx, state 4xxx), so existing tooling recognises them.
"""

from __future__ import annotations

from typing import Any

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.types import Header

# --------------------------------------------------------------------------- error codes

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

# Authorized reads and archive deliveries (ours; as HTTP's 401, 403 and 404).
# No credentials, or bad ones: malformed, stale, replayed or forged signed requests; unknown,
# expired or revoked API keys. Sign again (or get a key).
UNAUTHORIZED = 5001
# The caller is known but may not do this: no right to the twin's metric over that range, an
# API key without the scope, a gateway delivering for a device that is not its own.
FORBIDDEN = 5003
# This node keeps no facility archive, or not the twin's: ask the twin's facility's node.
NO_ARCHIVE = 5004
# A document the twin does not list on chain, or that this archive does not hold (or holds
# damaged): nothing is served.
NOT_FOUND = 5005
ACCESS_CODES = frozenset({UNAUTHORIZED, FORBIDDEN})

_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}


class RpcError(Exception):
    """A JSON-RPC error object: raised by the server's method handlers, and by client calls
    that get an error reply."""

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

    @classmethod
    def from_json(cls, err: Any) -> RpcError:
        """The error object of a reply (lenient: a malformed one still gives an RpcError);
        an access refusal (UNAUTHORIZED, FORBIDDEN) as :class:`AccessDenied`."""
        if not isinstance(err, dict):
            return cls(SERVER_ERROR, "malformed error", err)
        code = err.get("code")
        message = err.get("message")
        kind = AccessDenied if code in ACCESS_CODES else cls
        return kind(
            code if type(code) is int else SERVER_ERROR,
            message if isinstance(message, str) else "Server error",
            err.get("data"),
        )


class AccessDenied(RpcError):
    """The node refused the caller: credentials missing or bad (``UNAUTHORIZED``) or no right
    to what it asked (``FORBIDDEN``); ``message`` says which and why."""


# --------------------------------------------------------------------------- wire helpers


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(text: Any, what: str = "value", length: int | None = None) -> bytes:
    """Decode ``0x``-hex; ValueError (with a message fit for a client) if malformed."""
    if type(text) is not str or not text.startswith("0x"):
        raise ValueError(f"{what} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        raise ValueError(f"{what} is not valid hex") from None
    if length is not None and len(raw) != length:
        raise ValueError(f"{what} must be {length} bytes")
    return raw


def number_to_hex(n: int) -> str:
    """Substrate's block-number shape: minimal hex, ``"0x0"`` for zero."""
    return hex(n)


def number_from_json(value: Any, what: str = "number") -> int:
    """A non-negative u64 given as a JSON integer or as hex (``"0x1a"``)."""
    if type(value) is int:
        n = value
    elif type(value) is str and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            n = int(value[2:], 16)
        except ValueError:
            raise ValueError(f"{what} is not valid hex") from None
    else:
        raise ValueError(f"{what} must be an integer or a 0x-hex string")
    if not 0 <= n < 2**64:
        raise ValueError(f"{what} out of range")
    return n


def header_to_json(h: Header) -> dict[str, Any]:
    """Each digest log is the hex of its canonical encoding ``[engine, payload]``, as
    Substrate's logs are hex of their SCALE encoding."""
    return {
        "parentHash": to_hex(h.parent_hash),
        "number": number_to_hex(h.number),
        "stateRoot": to_hex(h.state_root),
        "extrinsicsRoot": to_hex(h.extrinsics_root),
        "slot": number_to_hex(h.slot),
        "digest": {"logs": [to_hex(codec.encode([e, p])) for e, p in h.digest]},
        "seal": to_hex(h.seal),
    }


def header_from_json(d: Any) -> Header:
    """Inverse of :func:`header_to_json` (so a client can check the hash); ValueError if bad."""
    if not isinstance(d, dict):
        raise ValueError("header must be an object")
    try:
        logs = d["digest"]["logs"]
        digest = [codec.decode(from_hex(x, "digest log")) for x in logs]
        return Header.from_wire(
            [
                from_hex(d["parentHash"], "parentHash"),
                number_from_json(d["number"]),
                from_hex(d["stateRoot"], "stateRoot"),
                from_hex(d["extrinsicsRoot"], "extrinsicsRoot"),
                number_from_json(d["slot"], "slot"),
                digest,
                from_hex(d["seal"], "seal"),
            ]
        )
    except (KeyError, TypeError, CodecError) as exc:
        raise ValueError(f"malformed header: {exc}") from None
