"""Client operations that take several JSON-RPC calls, each written once, as a *plan*.

A plan is a generator that yields the calls it needs, ``(method, params)``, is sent each
call's result, and returns the operation's result. The blocking client runs plans with
:func:`run`, the asyncio client with :func:`run_async`: chain info, signing, proof-checked
storage reads and event reads have one implementation, whatever carries the calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from twinchain.client.common import (
    ChainInfo,
    ClientError,
    Codec,
    check_read,
    checked_header,
)
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Era, Extrinsic
from twinchain.protocol.jsonrpc import SERVER_ERROR, RpcError, from_hex, header_from_json, to_hex

T = TypeVar("T")
#: One JSON-RPC call a plan asks for: the method and its positional params.
Request = tuple[str, tuple[Any, ...]]
Plan = Generator[Request, Any, T]


def run(plan: Plan[T], call: Callable[..., Any]) -> T:
    """Run ``plan`` with a blocking ``call(method, *params)``."""
    result: Any = None
    while True:
        try:
            method, params = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = call(method, *params)


async def run_async(plan: Plan[T], call: Callable[..., Awaitable[Any]]) -> T:
    """Run ``plan`` with an awaitable ``call(method, *params)``."""
    result: Any = None
    while True:
        try:
            method, params = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = await call(method, *params)


def chain_info() -> Plan[ChainInfo]:
    """The genesis hash, runtime version and metadata a client caches."""
    genesis = from_hex((yield ("chain_getBlockHash", (0,))), "genesis hash", 32)
    version = yield ("state_getRuntimeVersion", ())
    metadata = yield ("state_getMetadata", ())
    return ChainInfo(genesis, version, metadata)


def sign(
    info: ChainInfo, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
) -> Plan[Extrinsic]:
    """Sign with the next nonce (chain plus pool); a mortal era is born at the best block."""
    nonce = yield ("system_accountNextIndex", (to_hex(keypair.public),))
    if type(nonce) is not int:
        raise RpcError(SERVER_ERROR, "system_accountNextIndex did not return an integer")
    birth_hash = None
    if era is not None and not era.is_immortal:
        best = yield ("chain_getHeader", ())
        if best is None:
            raise ClientError("the node has no best header")
        number = era.birth(header_from_json(best).number)
        birth_hash = from_hex((yield ("chain_getBlockHash", (number,))), "birth hash", 32)
    return Extrinsic.sign(
        call,
        keypair,
        nonce,
        info.genesis_hash,
        info.spec_version,
        tip=tip,
        era=era,
        birth_hash=birth_hash,
    )


def finalized_head() -> Plan[bytes]:
    return from_hex((yield ("chain_getFinalizedHead", ())), "hash", 32)


def read_storage(
    codec: Codec,
    pallet: str,
    item: str,
    keys: tuple[Any, ...],
    *,
    at: bytes | None = None,
    verify: bool = True,
) -> Plan[Any]:
    """Read and decode ``pallet.item[keys]`` at ``at`` (default: the finalized head). With
    ``verify`` the value is checked against a read proof and the state root of that block's
    header; ProofMismatch if anything disagrees."""
    key = codec.storage_key(pallet, item, keys)
    if at is None:
        at = yield from finalized_head()
    value_json = yield ("state_getStorage", (to_hex(key), to_hex(at)))
    if not verify:
        raw = None if value_json is None else from_hex(value_json, "storage value")
        return codec.decode_value(pallet, item, raw)
    header = checked_header(at, (yield ("chain_getHeader", (to_hex(at),))))
    proof = yield ("state_getReadProof", ([to_hex(key)], to_hex(at)))
    return codec.decode_value(pallet, item, check_read(key, header, proof, value_json))


def events(codec: Codec, at: bytes) -> Plan[list[dict[str, Any]]]:
    """The events of block ``at``, decoded (phase, extrinsic index, pallet, event, args)."""
    key = codec.storage_key("System", "Events", ())
    raw = yield ("state_getStorage", (to_hex(key), to_hex(at)))
    return codec.decode_events(None if raw is None else from_hex(raw, "events"))


__all__ = [
    "Plan",
    "Request",
    "chain_info",
    "events",
    "finalized_head",
    "read_storage",
    "run",
    "run_async",
    "sign",
]
