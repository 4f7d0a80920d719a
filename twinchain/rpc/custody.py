"""The facility archive over JSON-RPC: gateways deliver raw readings, authorized readers read
them with proofs. Both methods take an ``auth`` param (:mod:`twinchain.rpc.auth`).

    archive_deliver(batches, auth)            a gateway delivers signed device batches (0x-hex
                                              of ``Batch.to_bytes()``), signed with its key;
                                              one {device, seq, status, reason} per batch
    twin_readings(twin, metric, from, to, auth)
                                              the twin's raw readings of ``metric`` with
                                              ``from <= timestamp <= to`` (ms), for a caller
                                              the chain lets read them; each with its Merkle
                                              proof against its batch's root on chain

Rights are the chain's (``Telemetry.may_read`` at the finalized block): the twin's owner, a
grantee with READ_TELEMETRY, the auditor of the twin's facility, or a disclosure covering the
range. A caller without the right gets FORBIDDEN, never an empty answer; a node without an
archive (or with another facility's) answers NO_ARCHIVE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twinchain.archive.documents import MAX_DOCUMENT, DocumentError
from twinchain.native.merkle import merkle_proofs
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import encode_address
from twinchain.protocol.jsonrpc import (
    NO_ARCHIVE,
    NOT_FOUND,
    OVERSIZED_RESPONSE,
    RpcError,
    from_hex,
    to_hex,
)
from twinchain.protocol.telemetry import MAX_BATCHES, READING, Batch
from twinchain.rpc.api import InThread
from twinchain.rpc.auth import Authenticator, Caller, forbidden
from twinchain.rpc.errors import invalid_params
from twinchain.rpc.twin.common import Params, bind_params, int_param, read_at

if TYPE_CHECKING:
    from twinchain.rpc.api import ArchiveStore
    from twinchain.rpc.methods import CallContext
    from twinchain.runtime.runtime import Runtime

#: At most this many readings (each ~1 kB with its proof) or batches in one answer: a larger
#: range is refused with a clear error rather than cut short.
MAX_ANSWER_READINGS = 10_000
MAX_ANSWER_BATCHES = 1_000


# --------------------------------------------------------------------------- helpers


def _archive(ctx: CallContext) -> ArchiveStore:
    store = ctx.archive() if ctx.archive is not None else None
    if store is None:
        raise RpcError(NO_ARCHIVE, "this node keeps no archive", {"reason": "no-archive"})
    return store


def _authenticator(ctx: CallContext) -> Authenticator:
    if ctx.auth is None:  # a server always has one; a bare CallContext (tests) may not
        ctx.auth = Authenticator(ctx.node.chain.genesis_hash)
    return ctx.auth


def _bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Params:
    return list(args) if args else (dict(kwargs) if kwargs else None)


def _finalized(ctx: CallContext, fn: Callable[[Runtime], Any]) -> Any:
    return read_at(ctx.node.chain, to_hex(ctx.node.chain.finalized.hash), fn)


# --------------------------------------------------------------------------- methods


def archive_deliver(ctx: CallContext, *args: Any, **kwargs: Any) -> InThread:
    """Stage a gateway's batches in this node's archive; the archive checks that each device
    is this facility's and bound to the gateway, and archives a batch once its commitment is
    final and matches."""
    batches_v, auth = bind_params(_bind(args, kwargs), ("batches", "auth"), 1)
    store = _archive(ctx)
    if not isinstance(batches_v, list) or not 1 <= len(batches_v) <= MAX_BATCHES:
        raise invalid_params(f"batches must be a list of 1..{MAX_BATCHES} 0x-hex batches")
    caller = _authenticator(ctx).authenticate(
        "archive_deliver", {"batches": batches_v}, auth, "deliver"
    )
    batches = []
    for i, b in enumerate(batches_v):
        try:
            batches.append(Batch.from_bytes(from_hex(b, f"batches[{i}]")))
        except (ValueError, CodecError) as exc:
            raise invalid_params(f"batches[{i}] is not a batch: {exc}") from None
    # The store is thread-safe and syncs its writes: not on the node's thread.
    return InThread(lambda: [_delivery_json(d) for d in store.deliver(caller.account, batches)])


def _delivery_json(d: Any) -> dict[str, Any]:
    device = d.device
    return {
        "device": to_hex(device) if isinstance(device, bytes) else device,
        "seq": d.seq,
        "status": d.status,
        "reason": getattr(d, "reason", None),
    }


def twin_readings(ctx: CallContext, *args: Any, **kwargs: Any) -> InThread:
    """The readings of ``metric`` of ``twin`` in ``[from, to]`` with their proofs, grouped by
    batch (device, seq, count, root), for a caller the chain lets read them."""
    names = ("twin", "metric", "from", "to", "auth")
    twin_v, metric_v, from_v, to_v, auth = bind_params(_bind(args, kwargs), names, 4)
    store = _archive(ctx)
    caller = _authenticator(ctx).authenticate(
        "twin_readings",
        {"twin": twin_v, "metric": metric_v, "from": from_v, "to": to_v},
        auth,
        "readings",
    )
    twin = int_param(twin_v, "twin id")
    metric = int_param(metric_v, "metric", 2**16 - 1)
    lo, hi = int_param(from_v, "from (ms)"), int_param(to_v, "to (ms)")
    if lo > hi:
        raise invalid_params("from must not be later than to")

    def check(rt: Runtime) -> None:
        info = rt.equipment.twin(twin)
        if info is None:
            raise invalid_params(f"no twin {twin}")
        _check_custodian(store, rt, twin, info.facility)
        # Rights as of the finalized block, expiries against its time.
        if not rt.telemetry.may_read(twin, metric, caller.account, lo, hi, rt.timestamp.Now.get()):
            raise _no_right(caller, twin, metric, lo, hi)

    _finalized(ctx, check)
    # Parquet reads and proofs in a worker thread: the node's thread keeps authoring.
    return InThread(lambda: _answer(store, twin, metric, lo, hi))


def _answer(store: ArchiveStore, twin: int, metric: int, lo: int, hi: int) -> list[dict[str, Any]]:
    """The archived readings with their proofs. Each batch's root and count are those of its
    finalized record, which the archive checked the batch against before it archived it
    (the client checks them on chain again)."""
    archived = store.readings(twin, metric, lo, hi, MAX_ANSWER_BATCHES + 1)
    if len(archived) > MAX_ANSWER_BATCHES:
        raise _too_much(f"more than {MAX_ANSWER_BATCHES} batches")
    out: list[dict[str, Any]] = []
    total = 0
    for ab in archived:
        if ab.twin != twin:
            continue
        rows = list(READING.iter_unpack(_raw(ab.readings)))
        picked = [i for i, (m, ts, _) in enumerate(rows) if m == metric and lo <= ts <= hi]
        if not picked:
            continue
        total += len(picked)
        if total > MAX_ANSWER_READINGS:
            raise _too_much(f"more than {MAX_ANSWER_READINGS} readings")
        proofs = merkle_proofs([READING.pack(*r) for r in rows], picked)
        out.append(
            {
                "device": to_hex(ab.device),
                "seq": ab.seq,
                "count": len(rows),
                "root": to_hex(ab.root),
                "readings": [
                    {
                        "index": i,
                        "timestamp": rows[i][1],
                        "value": rows[i][2],
                        "proof": [to_hex(h) for h in proof],
                    }
                    for i, proof in zip(picked, proofs, strict=True)
                ],
            }
        )
    return out


def _raw(readings: Any) -> bytes:
    raw = getattr(readings, "raw", None)
    if isinstance(raw, bytes):
        return raw
    return b"".join(READING.pack(*r) for r in readings)


def _check_custodian(store: ArchiveStore, rt: Runtime, twin: int, facility: int | None) -> None:
    """A twin's readings are in its own facility's archive only: send the reader there."""
    if facility is not None and facility == store.facility:
        return
    data: dict[str, Any] = {"reason": "not-custodian", "facility": facility}
    where = ""
    if facility is not None:
        rec = rt.facility.facility(facility)
        url = getattr(rec, "rpc_url", None) if rec is not None else None
        if url:
            data["rpcUrl"] = url
            where = f" at {url}"
    raise RpcError(
        NO_ARCHIVE,
        f"this node keeps facility {store.facility}'s archive; twin {twin}'s readings are in "
        f"facility {facility}'s{where}",
        data,
    )


def _no_right(caller: Caller, twin: int, metric: int, lo: int, hi: int) -> RpcError:
    return forbidden(
        f"account {encode_address(caller.account)} may not read metric {metric} of twin "
        f"{twin} over [{lo}, {hi}]: it needs to own the twin, hold READ_TELEMETRY on it, audit "
        f"its facility, or have a disclosure of that window",
        "no-right",
    )


def _too_much(what: str) -> RpcError:
    return RpcError(
        OVERSIZED_RESPONSE, "Response is too big", f"{what} in range: ask a shorter range"
    )


def archive_put_document(ctx: CallContext, *args: Any, **kwargs: Any) -> InThread:
    """Keep a document of ``twin`` (its content as 0x-hex) in this node's archive, for the
    twin's owner or its facility's operator; answers its BLAKE3 hash, the one
    ``Equipment.add_document`` puts on chain."""
    twin_v, content_v, auth = bind_params(_bind(args, kwargs), ("twin", "content", "auth"), 2)
    store = _archive(ctx)
    caller = _authenticator(ctx).authenticate(
        "archive_putDocument", {"twin": twin_v, "content": content_v}, auth, "documents"
    )
    twin = int_param(twin_v, "twin id")
    content = from_hex(content_v, "content")
    if len(content) > MAX_DOCUMENT:
        raise invalid_params(f"a document is at most {MAX_DOCUMENT} bytes")

    def check(rt: Runtime) -> None:
        info = rt.equipment.twin(twin)
        if info is None:
            raise invalid_params(f"no twin {twin}")
        _check_custodian(store, rt, twin, info.facility)
        fac = None if info.facility is None else rt.facility.facility(info.facility)
        if caller.account != info.owner and (fac is None or fac.operator != caller.account):
            raise forbidden(
                f"account {encode_address(caller.account)} may not store documents of twin "
                f"{twin}: only its owner or its facility's operator",
                "no-right",
            )

    _finalized(ctx, check)
    return InThread(lambda: {"hash": to_hex(store.documents.put(twin, content))})


def archive_get_document(ctx: CallContext, *args: Any, **kwargs: Any) -> InThread:
    """A document of ``twin`` by its hash, for a caller the chain lets read the twin; the hash
    must be one of the twin's documents on chain (``Equipment.Documents``) or a result anchored
    for it (``Telemetry.Anchors``: a facility's KPI or alert report) at the finalized block."""
    twin_v, hash_v, auth = bind_params(_bind(args, kwargs), ("twin", "hash", "auth"), 2)
    store = _archive(ctx)
    caller = _authenticator(ctx).authenticate(
        "archive_getDocument", {"twin": twin_v, "hash": hash_v}, auth, "documents"
    )
    twin = int_param(twin_v, "twin id")
    digest = from_hex(hash_v, "hash", 32)

    def check(rt: Runtime) -> None:
        info = rt.equipment.twin(twin)
        if info is None:
            raise invalid_params(f"no twin {twin}")
        _check_custodian(store, rt, twin, info.facility)
        now = rt.timestamp.Now.get()
        if not rt.telemetry.may_read(twin, None, caller.account, 0, now, now):
            raise forbidden(
                f"account {encode_address(caller.account)} may not read twin {twin}'s "
                "documents: it needs to own the twin, hold READ_TELEMETRY on it or audit its "
                "facility",
                "no-right",
            )
        # A document on chain by hash: the twin's documents, or a result anchored for it (a
        # facility report, whose KPIs and alerts the chain holds only as this digest).
        if digest not in {h for _, h in rt.equipment.Documents.get(twin) or []} and not (
            _anchored(rt, twin, digest)
        ):
            raise RpcError(
                NOT_FOUND, f"0x{digest.hex()} is neither a document nor an anchor of twin {twin}"
            )

    _finalized(ctx, check)

    def fetch() -> dict[str, Any]:
        try:
            content = store.documents.get(twin, digest)
        except DocumentError as exc:
            raise RpcError(NOT_FOUND, str(exc)) from None
        if content is None:
            raise RpcError(NOT_FOUND, f"this archive does not hold document 0x{digest.hex()}")
        return {"hash": to_hex(digest), "content": to_hex(content)}

    return InThread(fetch)


def _anchored(rt: Runtime, twin: int, digest: bytes) -> bool:
    """Whether ``digest`` is anchored for ``twin``, newest anchors first: a report is mostly
    fetched soon after it was anchored (a twin gains one or two anchors a report period)."""
    tel = rt.telemetry
    for aid in range(tel.AnchorCount.get(twin) - 1, -1, -1):
        a = tel.Anchors.get(twin, aid)
        if a is not None and a.digest == digest:
            return True
    return False


METHODS = {
    "archive_deliver": archive_deliver,
    "twin_readings": twin_readings,
    "archive_putDocument": archive_put_document,
    "archive_getDocument": archive_get_document,
}

__all__ = ["MAX_ANSWER_BATCHES", "MAX_ANSWER_READINGS", "METHODS"]
