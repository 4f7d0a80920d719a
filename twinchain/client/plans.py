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
    Delivery,
    ProofMismatch,
    Reading,
    check_read,
    checked_header,
    upcoming_version,
)
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Era, Extrinsic
from twinchain.protocol.access import sign_request
from twinchain.protocol.jsonrpc import SERVER_ERROR, RpcError, from_hex, header_from_json, to_hex
from twinchain.protocol.telemetry import (
    BATCH_CHUNK,
    Batch,
    BatchRecord,
    chunk_record,
    verify_reading,
)

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


def next_spec_version(codec: Codec) -> Plan[tuple[int, int]]:
    """(the best block's spec version, the version the block after it runs with): the
    second is what a transaction signed now must name; it differs from the first from the
    block before a scheduled upgrade's height until that block is the best."""
    head = yield ("chain_getHeader", ())
    if head is None:
        raise ClientError("the node has no best header")
    header = header_from_json(head)
    at = to_hex(header.hash)
    version = yield ("state_getRuntimeVersion", (at,))
    item = codec.runtime.system.ScheduledUpgrade
    raw = yield ("state_getStorage", (to_hex(item.key()), at))
    scheduled = None if raw is None else item.value_type.decode(from_hex(raw, "storage value"))
    current = int(version["specVersion"])
    return current, upcoming_version(current, header.number, scheduled)


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
        info.signing_version,
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


def auth_for(
    info: ChainInfo,
    method: str,
    params: dict[str, Any],
    key: Keypair | None,
    api_key: str | None,
) -> dict[str, Any]:
    """The ``auth`` param of an authenticated call: a request signed with ``key`` over
    ``params`` (the method's other params by name, as the node checks them), or the API key."""
    if (key is None) == (api_key is None):
        raise ClientError("give exactly one of key (to sign the request) and api_key")
    if api_key is not None:
        return {"apiKey": api_key}
    assert key is not None
    return sign_request(key, info.genesis_hash, method, params)


def deliver(info: ChainInfo, batches: list[Batch], gateway_key: Keypair) -> Plan[list[Delivery]]:
    """Deliver signed device batches to the node's archive, the request signed with the
    gateway's key; one :class:`Delivery` per batch, in order."""
    wire = [to_hex(b.to_bytes()) for b in batches]
    auth = auth_for(info, "archive_deliver", {"batches": wire}, gateway_key, None)
    answer = yield ("archive_deliver", (wire, auth))
    if not isinstance(answer, list) or len(answer) != len(batches):
        raise ClientError("archive_deliver did not answer one delivery per batch")
    try:
        return [Delivery.from_json(d) for d in answer]
    except ValueError as exc:
        raise ClientError(f"malformed delivery answer: {exc}") from None


def put_document(
    info: ChainInfo,
    twin: int,
    content: bytes,
    *,
    key: Keypair | None = None,
    api_key: str | None = None,
) -> Plan[bytes]:
    """Keep a document of ``twin`` in its facility's archive (as its owner or facility
    operator); its BLAKE3 hash, checked against the content (put it on chain with
    ``Equipment.add_document``)."""
    params = {"twin": twin, "content": to_hex(content)}
    auth = auth_for(info, "archive_putDocument", params, key, api_key)
    answer = yield ("archive_putDocument", (twin, params["content"], auth))
    digest = blake3_hash(content)
    if not isinstance(answer, dict) or answer.get("hash") != to_hex(digest):
        raise ProofMismatch("archive_putDocument answered another hash than the content's")
    return digest


def document(
    info: ChainInfo,
    twin: int,
    digest: bytes,
    *,
    key: Keypair | None = None,
    api_key: str | None = None,
) -> Plan[bytes]:
    """A document of ``twin`` by its hash from the twin's facility archive, checked against
    the hash (ProofMismatch otherwise); AccessDenied if the chain does not let the caller
    read the twin."""
    params = {"twin": twin, "hash": to_hex(digest)}
    auth = auth_for(info, "archive_getDocument", params, key, api_key)
    answer = yield ("archive_getDocument", (twin, params["hash"], auth))
    try:
        content = from_hex(answer["content"], "content")
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofMismatch(f"malformed document answer: {exc}") from None
    if blake3_hash(content) != digest:
        raise ProofMismatch(f"the archive answered other content than document 0x{digest.hex()}")
    return content


def batch_record(
    codec: Codec,
    device: bytes,
    seq: int,
    at: bytes,
    chunks: dict[tuple[bytes, int], bytes] | None = None,
) -> Plan[BatchRecord | None]:
    """The chain's record of batch ``seq`` of ``device`` at block ``at``, read from state with
    a read proof against that block's state root (``Telemetry.BatchChunks``: one proof per
    chunk of ``BATCH_CHUNK`` sequence numbers, kept in ``chunks``)."""
    where = (device, seq // BATCH_CHUNK)
    chunk = None if chunks is None else chunks.get(where)
    if chunk is None:
        chunk = yield from read_storage(codec, "Telemetry", "BatchChunks", where, at=at)
        if chunks is not None:
            chunks[where] = chunk
    return chunk_record(chunk or b"", seq)


def readings(
    codec: Codec,
    twin: int,
    metric: int,
    from_ms: int,
    to_ms: int,
    *,
    key: Keypair | None = None,
    api_key: str | None = None,
) -> Plan[list[Reading]]:
    """The raw readings of ``metric`` of ``twin`` with ``from_ms <= timestamp <= to_ms`` from
    the node's archive (its twin's facility's node), asked as ``key``'s account (a signed
    request) or with ``api_key``. Every reading's Merkle proof is checked against its batch's
    record on chain at the finalized block, itself read with a state read proof
    (:func:`batch_record`): ProofMismatch if anything fails; AccessDenied (an RpcError) if
    the node refuses the caller."""
    params = {"twin": twin, "metric": metric, "from": from_ms, "to": to_ms}
    auth = auth_for(codec.info, "twin_readings", params, key, api_key)
    answer = yield ("twin_readings", (twin, metric, from_ms, to_ms, auth))
    if not isinstance(answer, list):
        raise ProofMismatch("twin_readings did not answer a list of batches")
    at = yield from finalized_head()
    out: list[Reading] = []
    seen: set[tuple[bytes, int, int]] = set()
    chunks: dict[tuple[bytes, int], bytes] = {}
    for batch in answer:
        try:
            device = from_hex(batch["device"], "device", 32)
            seq, items = batch["seq"], batch["readings"]
            if type(seq) is not int or not isinstance(items, list):
                raise TypeError("seq or readings malformed")
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofMismatch(f"malformed batch in the answer: {exc}") from None
        rec = yield from batch_record(codec, device, seq, at, chunks)
        where = f"batch {seq} of device 0x{device.hex()[:16]}"
        if rec is None:
            raise ProofMismatch(f"{where} has no record on chain at the finalized block")
        if rec.twin != twin:
            raise ProofMismatch(f"{where} is not a batch of twin {twin}")
        for r in items:
            reading = _checked_reading(r, rec.root, rec.count, metric, from_ms, to_ms, device, seq)
            ident = (device, seq, reading.index)
            if ident in seen:
                raise ProofMismatch(f"reading {reading.index} of batch {seq} answered twice")
            seen.add(ident)
            out.append(reading)
    out.sort(key=lambda r: (r.timestamp, r.device, r.seq, r.index))
    return out


def _checked_reading(
    r: Any, root: bytes, count: int, metric: int, lo: int, hi: int, device: bytes, seq: int
) -> Reading:
    try:
        index, ts, value = r["index"], r["timestamp"], r["value"]
        proof = [from_hex(h, "proof hash", 32) for h in r["proof"]]
        if not all(type(x) is int for x in (index, ts, value)):
            raise TypeError("index, timestamp and value must be integers")
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofMismatch(f"malformed reading in batch {seq}: {exc}") from None
    if not lo <= ts <= hi:
        raise ProofMismatch(f"reading {index} of batch {seq} is outside the range asked")
    if not verify_reading(root, (metric, ts, value), index, count, proof):
        raise ProofMismatch(
            f"reading {index} of batch {seq} does not verify against the root on chain"
        )
    return Reading(device, seq, index, metric, ts, value)


__all__ = [
    "Plan",
    "Request",
    "auth_for",
    "batch_record",
    "chain_info",
    "deliver",
    "events",
    "finalized_head",
    "read_storage",
    "readings",
    "run",
    "run_async",
    "sign",
]
