"""Decoded reads of the twin registry: the ``twin_*`` JSON-RPC methods.

Each method is a plain function ``fn(client, params)``: ``params`` are the request's JSON
params (a list by position, an object by name, or None) and the result is JSON. Reads run
against the state of the block ``at`` names (default: the best block) through a runtime of
their own, so that they never touch the one that builds and imports blocks. Bytes travel as
``0x``-hex, record fields in camelCase.

    twin_facilities([at])                      every facility, summarised
    twin_facility(id, [at])                    one facility in full (audit log included)
    twin_equipment(id, [at])                   an equipment twin: owner, lifecycle, spec,
                                               provenance, rights, calibrations, service...
    twin_equipmentOf(account, [at])            ids of the twins an account owns
    twin_device(device, [at])                  a device key's binding and sequence state
    twin_telemetryBatches(twin, [start, count, at])   batch roots of a twin, oldest first
    twin_telemetryAggregates(twin, [metric, at, since])
                                               per-window aggregates of a twin (windows
                                               starting at or after ``since`` ms)
    twin_verifyReading(device, seq, reading, index, proof, [at])
                                               check a disclosed reading against the root
    twin_roles(account, [at])                  the roles an account holds
    twin_metrics([at])                         the registered metrics

:func:`register` adds them to the RPC method table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twinchain.primitives.codec import Record
from twinchain.primitives.keys import InvalidKey, parse_account
from twinchain.protocol.jsonrpc import STATE_UNAVAILABLE, RpcError, from_hex, to_hex
from twinchain.protocol.telemetry import verify_reading
from twinchain.rpc.errors import invalid_params
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.runtime import Runtime
from twinchain.storage.blockstore import ChainStoreError
from twinchain.storage.trie import StateError

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain

Params = list[Any] | dict[str, Any] | None
TwinMethod = Callable[["Blockchain", Params], Any]

MAX_BATCH_PAGE = 1000
MAX_PROOF = 64
U64_MAX = 2**64 - 1


# --------------------------------------------------------------------------- helpers


def _bind(params: Params, names: Sequence[str], required: int) -> list[Any]:
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


def _int(value: Any, what: str, hi: int = U64_MAX, lo: int = 0) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise invalid_params(f"{what} must be an integer in {lo}..{hi}")
    return value


def _account(value: Any, what: str = "account") -> bytes:
    if type(value) is not str:
        raise invalid_params(f"{what} must be an address or 0x-hex account id")
    try:
        return parse_account(value)
    except (InvalidKey, ValueError) as exc:
        raise invalid_params(f"{what}: {exc}") from None


def _runtime_at(client: Blockchain, at: Any) -> Runtime:
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


def _read(client: Blockchain, at: Any, fn: Callable[[Runtime], Any]) -> Any:
    rt = _runtime_at(client, at)
    try:
        return fn(rt)
    except StateError as exc:  # pruned away while we read
        raise RpcError(STATE_UNAVAILABLE, "State unavailable", str(exc)) from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def to_json(value: Any) -> Any:
    """Records to camelCase objects, bytes to 0x-hex, tuples to arrays."""
    if isinstance(value, Record):
        return {_camel(f.name): to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


# --------------------------------------------------------------------------- facilities


def _facility_summary(rt: Runtime, fid: int, f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": fid, **to_json(f)}
    out["verifiedNow"] = rt.facility.is_verified(fid)
    return out


def facilities(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    (at,) = _bind(params, ("at",), 0)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [_facility_summary(rt, fid, f) for fid, f in sorted(rt.facility.Facilities.iter())]

    return _read(client, at, read)  # type: ignore[no-any-return]


def facility(client: Blockchain, params: Params) -> dict[str, Any] | None:
    fid_v, at = _bind(params, ("id", "at"), 1)
    fid = _int(fid_v, "facility id", 2**32 - 1)

    def read(rt: Runtime) -> dict[str, Any] | None:
        fac = rt.facility
        f = fac.facility(fid)
        if f is None:
            return None
        now = rt.timestamp.Now.get()
        out = _facility_summary(rt, fid, f)
        out["now"] = now
        out["assessments"] = [
            {"capability": cap, **to_json(a)} for cap, a in sorted(fac.Assessments.iter_prefix(fid))
        ]
        out["certifications"] = [
            {"id": i, **to_json(c), "counts": c.counts_at(now)}
            for i, c in enumerate(fac.certifications(fid))
        ]
        out["compliance"] = [
            {"ruleSet": rid, **to_json(r)} for rid, r in sorted(fac.Compliance.iter_prefix(fid))
        ]
        out["auditLog"] = to_json(fac.audit_log(fid))
        out["auditHead"] = to_hex(fac.AuditHead.get(fid))
        p = fac.ValidatorProposals.get(fid)
        out["validatorProposal"] = None if p is None else to_json(p)
        return out

    return _read(client, at, read)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- equipment


def equipment(client: Blockchain, params: Params) -> dict[str, Any] | None:
    tid_v, at = _bind(params, ("id", "at"), 1)
    tid = _int(tid_v, "twin id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        eq = rt.equipment
        t = eq.twin(tid)
        if t is None:
            return None
        now = rt.timestamp.Now.get()
        out: dict[str, Any] = {"id": tid, **to_json(t)}
        out["operational"] = eq.is_operational(tid)
        out["spec"] = to_json(eq.spec(tid))
        out["documents"] = [{"kind": k, "hash": to_hex(h)} for k, h in eq.Documents.get(tid) or []]
        w = eq.Warranties.get(tid)
        out["warranty"] = None if w is None else {**to_json(w), "active": w.starts <= now < w.ends}
        loc = eq.Locations.get(tid)
        out["location"] = None if loc is None else to_json(loc)
        out["access"] = [
            {"account": to_hex(who), **to_json(g), "expired": g.expires <= now}
            for who, g in sorted(eq.Access.iter_prefix(tid))
        ]
        out["calibrations"] = [
            {"index": i, **to_json(c), "valid": c.passed and c.valid_until > now}
            for i, c in sorted(eq.Calibrations.iter_prefix(tid))
        ]
        out["serviceHistory"] = to_json(eq.service_history(tid))
        out["provenance"] = to_json(eq.provenance(tid))
        out["provenanceHead"] = to_hex(eq.ProvenanceHead.get(tid))
        out["devices"] = [to_hex(d) for d, _ in sorted(rt.telemetry.TwinDevices.iter_prefix(tid))]
        return out

    return _read(client, at, read)  # type: ignore[no-any-return]


def equipment_of(client: Blockchain, params: Params) -> list[int]:
    who_v, at = _bind(params, ("account", "at"), 1)
    who = _account(who_v)

    def read(rt: Runtime) -> list[int]:
        return sorted(t for t, _ in rt.equipment.OwnedBy.iter_prefix(who))

    return _read(client, at, read)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- telemetry


def device(client: Blockchain, params: Params) -> dict[str, Any] | None:
    dev_v, at = _bind(params, ("device", "at"), 1)
    dev = _account(dev_v, "device")

    def read(rt: Runtime) -> dict[str, Any] | None:
        d = rt.telemetry.device(dev)
        if d is None:
            return None
        last = [
            {"metric": m, "timestamp": ts, "value": v}
            for m, (ts, v) in sorted(rt.telemetry.last_readings(dev).items())
        ]
        info = to_json(d)
        del info["last"]  # as "lastReadings" below
        return {"device": to_hex(dev), **info, "lastReadings": last}

    return _read(client, at, read)  # type: ignore[no-any-return]


def telemetry_batches(client: Blockchain, params: Params) -> dict[str, Any]:
    tid_v, start_v, count_v, at = _bind(params, ("twin", "start", "count", "at"), 1)
    tid = _int(tid_v, "twin id")
    start = 0 if start_v is None else _int(start_v, "start")
    count = 100 if count_v is None else _int(count_v, "count", MAX_BATCH_PAGE)

    def read(rt: Runtime) -> dict[str, Any]:
        tel = rt.telemetry
        total = tel.twin_batch_count(tid)
        items = []
        for n in range(start, min(total, start + count)):
            dev, seq = tel.twin_batch(tid, n)  # type: ignore[misc]
            rec = tel.batch(dev, seq)
            items.append({"index": n, "device": to_hex(dev), "seq": seq, **to_json(rec)})
        return {"twin": tid, "total": total, "batches": items}

    return _read(client, at, read)  # type: ignore[no-any-return]


def telemetry_aggregates(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    tid_v, metric_v, at, since_v = _bind(params, ("twin", "metric", "at", "since"), 1)
    tid = _int(tid_v, "twin id")
    metric = None if metric_v is None else _int(metric_v, "metric", 2**16 - 1)
    since = 0 if since_v is None else _int(since_v, "since (window start, ms)")

    def read(rt: Runtime) -> list[dict[str, Any]]:
        window = rt.telemetry.WindowMs.get()
        out = []
        for (m, start), agg in rt.telemetry.aggregates(tid):
            if (metric is not None and m != metric) or start < since:
                continue
            out.append({"metric": m, "windowStart": start, "windowMs": window, **to_json(agg)})
        return out

    return _read(client, at, read)  # type: ignore[no-any-return]


def _reading(value: Any) -> tuple[int, int, int]:
    if not isinstance(value, list) or len(value) != 3:
        raise invalid_params("reading must be [metric, timestamp_ms, value]")
    m, ts, v = value
    return (
        _int(m, "metric", 2**16 - 1),
        _int(ts, "timestamp"),
        _int(v, "value", 2**63 - 1, -(2**63)),
    )


def verify_reading_proof(client: Blockchain, params: Params) -> dict[str, Any]:
    """Check a disclosed reading against the batch root (and count) stored on chain."""
    dev_v, seq_v, reading_v, index_v, proof_v, at = _bind(
        params, ("device", "seq", "reading", "index", "proof", "at"), 5
    )
    dev = _account(dev_v, "device")
    seq = _int(seq_v, "seq")
    reading = _reading(reading_v)
    index = _int(index_v, "index", 2**32 - 1)
    if not isinstance(proof_v, list) or len(proof_v) > MAX_PROOF:
        raise invalid_params(f"proof must be a list of at most {MAX_PROOF} hashes")
    try:
        proof = [from_hex(p, "proof hash", 32) for p in proof_v]
    except ValueError as exc:
        raise invalid_params(str(exc)) from None

    def read(rt: Runtime) -> dict[str, Any]:
        rec = rt.telemetry.batch(dev, seq)
        if rec is None:
            return {"valid": False, "root": None, "count": None, "twin": None}
        ok = verify_reading(rec.root, reading, index, rec.count, proof)
        return {"valid": ok, "root": to_hex(rec.root), "count": rec.count, "twin": rec.twin}

    return _read(client, at, read)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- roles and metrics


def roles(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    who_v, at = _bind(params, ("account", "at"), 1)
    who = _account(who_v)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [{"role": r, **to_json(g)} for r, g in sorted(rt.roles.roles_of(who))]

    return _read(client, at, read)  # type: ignore[no-any-return]


def metrics(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    (at,) = _bind(params, ("at",), 0)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [{"id": m, **to_json(info)} for m, info in sorted(rt.telemetry.Metrics.iter())]

    return _read(client, at, read)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- registration

TWIN_METHODS: dict[str, TwinMethod] = {
    "twin_facilities": facilities,
    "twin_facility": facility,
    "twin_equipment": equipment,
    "twin_equipmentOf": equipment_of,
    "twin_device": device,
    "twin_telemetryBatches": telemetry_batches,
    "twin_telemetryAggregates": telemetry_aggregates,
    "twin_verifyReading": verify_reading_proof,
    "twin_roles": roles,
    "twin_metrics": metrics,
}


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
    """The registry's methods and those of the operations pallets (one module each)."""
    from twinchain.rpc import twin_analytics, twin_benchmark, twin_maintenance, twin_simulation

    out = dict(TWIN_METHODS)
    for mod in (twin_benchmark, twin_maintenance, twin_analytics, twin_simulation):
        clash = set(out) & set(mod.METHODS)
        if clash:
            raise RuntimeError(f"twin RPC methods defined twice: {sorted(clash)}")
        out.update(mod.METHODS)
    return out


def register(rpc: Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]) -> None:
    """Add every ``twin_*`` method through the method table's ``rpc(name)`` decorator."""
    for name, fn in all_methods().items():
        rpc(name)(_handler(fn))
