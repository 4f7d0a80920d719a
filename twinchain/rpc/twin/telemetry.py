"""``twin_*`` reads of the Telemetry pallet: devices, batch records, public aggregates,
disclosure policies, metrics, and the check of a disclosed reading against its batch root.

The chain holds only commitments and what each twin makes public, so these answer anyone:
the latest readings and aggregates they show are those of the twin's public metrics. Raw
readings are the facility archive's (``twin_readings``, authorized).

    twin_device(device, [at])                  a device key's binding and sequence state,
                                               its latest readings of public metrics
    twin_telemetryBatches(twin, [start, count, at])   batch roots of a twin, oldest first
    twin_batchRecord(device, seq, [at])        one batch's record (root, count, span, twin,
                                               block...), null if none
    twin_disclosure(twin, [at])                the twin's public metrics
    twin_telemetryAggregates(twin, [metric, at, since])
                                               per-window aggregates of a twin (windows
                                               starting at or after ``since`` ms)
    twin_verifyReading(device, seq, reading, index, proof, [at])
                                               check a disclosed reading against the root
    twin_metrics([at])                         the registered metrics
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.protocol.jsonrpc import from_hex, to_hex
from twinchain.protocol.telemetry import verify_reading
from twinchain.rpc.errors import invalid_params
from twinchain.rpc.twin.common import (
    Params,
    TwinMethod,
    account_param,
    bind_params,
    int_param,
    read_at,
    to_json,
)

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain
    from twinchain.runtime.runtime import Runtime

MAX_BATCH_PAGE = 1000
MAX_PROOF = 64


def device(client: Blockchain, params: Params) -> dict[str, Any] | None:
    dev_v, at = bind_params(params, ("device", "at"), 1)
    dev = account_param(dev_v, "device")

    def read(rt: Runtime) -> dict[str, Any] | None:
        d = rt.telemetry.device(dev)
        if d is None:
            return None
        # Only the metrics its twin makes public now (last_readings filters).
        last = [
            {"metric": m, "timestamp": ts, "value": v}
            for m, (ts, v) in sorted(rt.telemetry.last_readings(dev).items())
        ]
        info = to_json(d)
        del info["last"]  # as "lastReadings" below
        return {"device": to_hex(dev), **info, "lastReadings": last}

    return read_at(client, at, read)  # type: ignore[no-any-return]


def batch_record(client: Blockchain, params: Params) -> dict[str, Any] | None:
    """The record the chain keeps of batch ``seq`` of ``device`` (what an archive verifier
    and a reader check readings against), null if there is none."""
    dev_v, seq_v, at = bind_params(params, ("device", "seq", "at"), 2)
    dev = account_param(dev_v, "device")
    seq = int_param(seq_v, "seq")

    def read(rt: Runtime) -> dict[str, Any] | None:
        rec = rt.telemetry.batch(dev, seq)
        if rec is None:
            return None
        return {"device": to_hex(dev), "seq": seq, **to_json(rec)}

    return read_at(client, at, read)  # type: ignore[no-any-return]


def disclosure(client: Blockchain, params: Params) -> dict[str, Any]:
    """The twin's disclosure policy: the metrics whose summaries, window aggregates and
    latest values its batches make public (what a gateway signs summaries of)."""
    tid_v, at = bind_params(params, ("twin", "at"), 1)
    tid = int_param(tid_v, "twin id")

    def read(rt: Runtime) -> dict[str, Any]:
        return {"twin": tid, "public": sorted(rt.telemetry.public_metrics(tid))}

    return read_at(client, at, read)  # type: ignore[no-any-return]


def telemetry_batches(client: Blockchain, params: Params) -> dict[str, Any]:
    tid_v, start_v, count_v, at = bind_params(params, ("twin", "start", "count", "at"), 1)
    tid = int_param(tid_v, "twin id")
    start = 0 if start_v is None else int_param(start_v, "start")
    count = 100 if count_v is None else int_param(count_v, "count", MAX_BATCH_PAGE)

    def read(rt: Runtime) -> dict[str, Any]:
        tel = rt.telemetry
        total = tel.twin_batch_count(tid)
        items = []
        for n in range(start, min(total, start + count)):
            dev, seq = tel.twin_batch(tid, n)  # type: ignore[misc]
            rec = tel.batch(dev, seq)
            items.append({"index": n, "device": to_hex(dev), "seq": seq, **to_json(rec)})
        return {"twin": tid, "total": total, "batches": items}

    return read_at(client, at, read)  # type: ignore[no-any-return]


def telemetry_aggregates(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    tid_v, metric_v, at, since_v = bind_params(params, ("twin", "metric", "at", "since"), 1)
    tid = int_param(tid_v, "twin id")
    metric = None if metric_v is None else int_param(metric_v, "metric", 2**16 - 1)
    since = 0 if since_v is None else int_param(since_v, "since (window start, ms)")

    def read(rt: Runtime) -> list[dict[str, Any]]:
        window = rt.telemetry.WindowMs.get()
        public = rt.telemetry.public_metrics(tid)  # a metric made private since: not shown
        out = []
        for (m, start), agg in rt.telemetry.aggregates(tid):
            if (metric is not None and m != metric) or start < since or m not in public:
                continue
            out.append({"metric": m, "windowStart": start, "windowMs": window, **to_json(agg)})
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


def _reading(value: Any) -> tuple[int, int, int]:
    if not isinstance(value, list) or len(value) != 3:
        raise invalid_params("reading must be [metric, timestamp_ms, value]")
    m, ts, v = value
    return (
        int_param(m, "metric", 2**16 - 1),
        int_param(ts, "timestamp"),
        int_param(v, "value", 2**63 - 1, -(2**63)),
    )


def verify_reading_proof(client: Blockchain, params: Params) -> dict[str, Any]:
    """Check a disclosed reading against the batch root (and count) stored on chain."""
    dev_v, seq_v, reading_v, index_v, proof_v, at = bind_params(
        params, ("device", "seq", "reading", "index", "proof", "at"), 5
    )
    dev = account_param(dev_v, "device")
    seq = int_param(seq_v, "seq")
    reading = _reading(reading_v)
    index = int_param(index_v, "index", 2**32 - 1)
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

    return read_at(client, at, read)  # type: ignore[no-any-return]


def metrics(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    (at,) = bind_params(params, ("at",), 0)

    def read(rt: Runtime) -> list[dict[str, Any]]:
        return [{"id": m, **to_json(info)} for m, info in sorted(rt.telemetry.Metrics.iter())]

    return read_at(client, at, read)  # type: ignore[no-any-return]


METHODS: dict[str, TwinMethod] = {
    "twin_device": device,
    "twin_telemetryBatches": telemetry_batches,
    "twin_batchRecord": batch_record,
    "twin_disclosure": disclosure,
    "twin_telemetryAggregates": telemetry_aggregates,
    "twin_verifyReading": verify_reading_proof,
    "twin_metrics": metrics,
}
