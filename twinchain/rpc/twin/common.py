"""What every ``twin_*`` read shares: binding params, checking their values, and reading
the state of a block through a runtime of its own.

Each method is a plain function ``fn(chain, params)``: ``params`` are the request's JSON params
(a list by position, an object by name, or None) and the result is JSON. Reads run against the
state of the block ``at`` names (default: the best block) through a runtime of their own, so
that they never touch the one that builds and imports blocks. Bytes travel as ``0x``-hex,
record fields in camelCase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twinchain.primitives.codec import Record
from twinchain.primitives.keys import InvalidKey, parse_account
from twinchain.protocol.jsonrpc import STATE_UNAVAILABLE, RpcError, from_hex, to_hex
from twinchain.rpc.errors import invalid_params
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.runtime import Runtime
from twinchain.storage.blockstore import ChainStoreError
from twinchain.storage.trie import StateError

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain

Params = list[Any] | dict[str, Any] | None
#: A ``twin_*`` method: ``fn(chain, params) -> JSON``.
TwinMethod = Callable[["Blockchain", Params], Any]

U64_MAX = 2**64 - 1


def bind_params(params: Params, names: Sequence[str], required: int) -> list[Any]:
    """Params by position or by name onto ``names``; the first ``required`` must be given."""
    if params is None:
        values: list[Any] = []
    elif isinstance(params, list):
        if len(params) > len(names):
            raise invalid_params(f"at most {len(names)} params: {', '.join(names)}")
        values = list(params)
    elif isinstance(params, dict):
        unknown = set(params) - set(names)
        if unknown:
            raise invalid_params(f"unknown params: {', '.join(sorted(unknown))}")
        values = [params.get(n) for n in names]
    else:
        raise invalid_params("params must be an array or an object")
    values += [None] * (len(names) - len(values))
    missing = [n for n, v in zip(names[:required], values, strict=False) if v is None]
    if missing:
        raise invalid_params(f"missing params: {', '.join(missing)}")
    return values


def int_param(value: Any, what: str, hi: int = U64_MAX, lo: int = 0) -> int:
    """A JSON integer in ``lo..hi`` (a bool is not one); invalid params otherwise."""
    if type(value) is not int or not lo <= value <= hi:
        raise invalid_params(f"{what} must be an integer in {lo}..{hi}")
    return value


def account_param(value: Any, what: str = "account") -> bytes:
    """An account id from an SS58 address or ``0x``-hex; invalid params otherwise."""
    if type(value) is not str:
        raise invalid_params(f"{what} must be an address or 0x-hex account id")
    try:
        return parse_account(value)
    except (InvalidKey, ValueError) as exc:
        raise invalid_params(f"{what}: {exc}") from None


def runtime_at(client: Blockchain, at: Any) -> Runtime:
    """A runtime of its own over the state of block ``at`` (default: best)."""
    if at is None:
        h = client.best.hash
    else:
        try:
            h = from_hex(at, "block hash", 32)
        except ValueError as exc:
            raise invalid_params(str(exc)) from None
        if client.blocks.header(h) is None:
            raise RpcError(STATE_UNAVAILABLE, "Unknown block", to_hex(h))
    try:
        state = client.state_at(h)
    except (ChainStoreError, StateError) as exc:
        raise RpcError(STATE_UNAVAILABLE, "State unavailable", str(exc)) from None
    rt = Runtime(client.genesis_hash)
    rt.state = Overlay(state)
    return rt


def read_at(client: Blockchain, at: Any, fn: Callable[[Runtime], Any]) -> Any:
    """``fn(runtime)`` over the state of block ``at``; state gone meanwhile is -32xxx 4003."""
    rt = runtime_at(client, at)
    try:
        return fn(rt)
    except StateError as exc:  # pruned away while we read
        raise RpcError(STATE_UNAVAILABLE, "State unavailable", str(exc)) from None


def camel(name: str) -> str:
    """``snake_case`` to ``camelCase``."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def to_json(value: Any) -> Any:
    """Records to camelCase objects, bytes to 0x-hex, tuples to arrays."""
    if isinstance(value, Record):
        return {camel(f.name): to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
