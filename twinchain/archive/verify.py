"""Verify an archive against the chain: every archived batch's Merkle root is recomputed
from its rows and compared with the root of the batch's finalized record.

Reads only the Parquet files (one twin's day at a time) and asks the chain for the records
through a :data:`RecordLookup`: over JSON-RPC ``twin_batchRecord`` (:func:`rpc_records`,
what ``twinchain archive verify --rpc URL`` uses) or a :class:`ChainView` in the node's own
process (:func:`chain_records`). A row changed, added, dropped or moved in a file gives
another root, or breaks the batch's leaf indexes: the batch is reported as a mismatch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from twinchain.archive import parquet
from twinchain.archive.chain import ChainView
from twinchain.protocol.telemetry import BatchRecord, PackedReadings, batch_root

#: Records of many (device, seq) batches at once, in order; None where the chain has none.
RecordLookup = Callable[[Sequence[tuple[bytes, int]]], list[BatchRecord | None]]


class RpcBatchCaller(Protocol):
    """What :func:`rpc_records` needs of an RPC client (``twinchain.client.RpcClient``)."""

    def call(self, method: str, *params: Any) -> Any: ...

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]: ...


@dataclass
class Mismatch:
    twin: int
    device: bytes
    seq: int
    reason: str


@dataclass
class VerifyReport:
    """What a verification found: batches and readings checked, those that match the chain,
    the mismatches (with why), and how fast."""

    batches: int = 0
    readings: int = 0
    verified: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "readings": self.readings,
            "verified": self.verified,
            "mismatched": len(self.mismatches),
            "mismatches": [
                {"twin": m.twin, "device": "0x" + m.device.hex(), "seq": m.seq, "reason": m.reason}
                for m in self.mismatches
            ],
            "seconds": round(self.seconds, 3),
            "readings_per_s": round(self.readings_per_s),
        }


def chain_records(view: ChainView) -> RecordLookup:
    """Records from a :class:`ChainView` (finalized)."""
    return lambda keys: [view.batch_record(d, s) for d, s in keys]


def record_from_json(value: Any) -> BatchRecord | None:
    """A ``twin_batchRecord`` answer (camelCase or snake_case fields, 0x-hex bytes)."""
    if value is None:
        return None

    def get(name: str, camel: str) -> Any:
        return value[camel] if camel in value else value[name]

    def hexb(v: Any) -> bytes:
        return bytes.fromhex(v.removeprefix("0x")) if isinstance(v, str) else b""

    return BatchRecord(
        twin=int(get("twin", "twin")),
        root=hexb(get("root", "root")),
        count=int(get("count", "count")),
        first_ts=int(get("first_ts", "firstTs")),
        last_ts=int(get("last_ts", "lastTs")),
        gateway=hexb(value.get("gateway")),
        block=int(value.get("block") or 0),
        flagged=int(value.get("flagged") or 0),
    )


def rpc_records(client: RpcBatchCaller, at: bytes | str | None = None) -> RecordLookup:
    """Records over JSON-RPC ``twin_batchRecord(device, seq, at)``, one batch request per
    lookup, read at ``at`` (default: the finalized head when the lookup is made)."""
    head = at if at is not None else client.call("chain_getFinalizedHead")
    at_hex = head if isinstance(head, str) else "0x" + head.hex()

    def lookup(keys: Sequence[tuple[bytes, int]]) -> list[BatchRecord | None]:
        if not keys:
            return []
        answers = client.batch([("twin_batchRecord", ["0x" + d.hex(), s, at_hex]) for d, s in keys])
        return [record_from_json(a) for a in answers]

    return lookup


def _partitions(path: Path, twin: int | None) -> list[Path]:
    root = path / parquet.READINGS_DIR
    pattern = f"twin={twin}/day=*" if twin is not None else "twin=*/day=*"
    return sorted(p for p in root.glob(pattern) if p.is_dir())


def _twin_of(folder: Path) -> int:
    return int(folder.parent.name.split("=", 1)[1])


def verify_archive(
    path: str | Path, records: RecordLookup, twin: int | None = None, *, lookup_size: int = 256
) -> VerifyReport:
    """Check every batch in the archive at ``path`` (of ``twin`` only, if given) against
    the chain's records."""
    report = VerifyReport()
    started = time.perf_counter()
    for folder in _partitions(Path(path), twin):
        files = sorted(folder.glob("*.parquet"))
        if not files:
            continue
        table = ds.dataset(files, format="parquet", schema=parquet.SCHEMA).to_table(
            columns=["device", "seq", "idx", "metric", "ts_ms", "value"]
        )
        table = table.sort_by([("device", "ascending"), ("seq", "ascending"), ("idx", "ascending")])
        _verify_partition(_twin_of(folder), table, records, report, lookup_size)
    report.seconds = time.perf_counter() - started
    return report


def _verify_partition(
    twin: int, table: Any, records: RecordLookup, report: VerifyReport, lookup_size: int
) -> None:
    if not table.num_rows:
        return
    encoded = pc.dictionary_encode(table["device"]).combine_chunks()
    code = encoded.indices.to_numpy()
    names = encoded.dictionary.to_pylist()
    seq = table["seq"].to_numpy()
    idx = table["idx"].to_numpy()
    metric, ts, value = (table[c].to_numpy() for c in ("metric", "ts_ms", "value"))
    change = np.flatnonzero((seq[1:] != seq[:-1]) | (code[1:] != code[:-1])) + 1
    bounds = list(zip(np.r_[0, change].tolist(), np.r_[change, len(seq)].tolist(), strict=True))
    for i in range(0, len(bounds), lookup_size):
        part = bounds[i : i + lookup_size]
        keys = [(bytes.fromhex(names[code[lo]]), int(seq[lo])) for lo, _ in part]
        for (dev, s), (lo, hi), rec in zip(keys, part, records(keys), strict=True):
            n = hi - lo
            report.batches += 1
            report.readings += n
            reason = _check(rec, twin, idx[lo:hi], metric[lo:hi], ts[lo:hi], value[lo:hi])
            if reason is None:
                report.verified += 1
            else:
                report.mismatches.append(Mismatch(twin, dev, s, reason))


def _check(
    rec: BatchRecord | None,
    twin: int,
    idx: np.ndarray,
    metric: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
) -> str | None:
    if rec is None:
        return "no finalized record on chain"
    if rec.twin != twin:
        return f"the chain records it for twin {rec.twin}"
    if len(idx) != rec.count:
        return f"{len(idx)} rows, the commitment counts {rec.count}"
    if not np.array_equal(idx, np.arange(len(idx))):
        return "leaf indexes are not 0..count-1 (rows duplicated or missing)"
    raw = parquet.packed_rows(metric, ts, value)
    if batch_root(PackedReadings(raw)) != rec.root:
        return "the rows do not give the committed Merkle root"
    if (int(ts.min()), int(ts.max())) != (rec.first_ts, rec.last_ts):
        return "time span differs from the commitment"
    return None


__all__ = [
    "Mismatch",
    "RecordLookup",
    "RpcBatchCaller",
    "VerifyReport",
    "chain_records",
    "record_from_json",
    "rpc_records",
    "verify_archive",
]
