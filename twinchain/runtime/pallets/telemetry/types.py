"""Telemetry's constants, storage records and their packed encodings."""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.primitives.codec import (
    H256,
    I64,
    U8,
    U16,
    U32,
    U64,
    AccountId,
    Bool,
    CodecError,
    Enum,
    Option,
    Record,
    Type,
)
from twinchain.protocol.telemetry import BATCH_RECORD, MAX_PUBLIC, READING
from twinchain.runtime.pallets.equipment.types import TwinId

MAX_DEVICES_PER_TWIN = 64

DEFAULT_WINDOW_MS = 3_600_000
DEFAULT_MAX_AGE_MS = 86_400_000  # gateways may spool a day of data while offline
# Twins' windows end together (their readings cross the boundary together), so their closes
# arrive together: on the 168-twin devnet one block in five held all of them, took its peers
# 2-3x longer to import than the others, and left the next author late. Queued, they spread
# over the next blocks: at most this many a block (360 ms of weight, 18 % of a block; a
# wave of 168 drains in 4 blocks). As Analytics' period closes, a close is the chain's own
# work, counted in the weight of the block that runs it; a submit pays for queueing.
MAX_CLOSES_PER_BLOCK = 48

# What the chain can flag of a batch without its readings (the per-reading rules, too fast
# and implausible jumps, are the facility archive's): a public summary outside the twin's
# operating envelope, a batch reaching past the block time plus the clock drift allowed, a
# batch starting longer ago than the max age. The time flags concern the whole batch: their
# event names metric BATCH_WIDE.
FLAGS = ("OutOfRange", "FromFuture", "Stale")
Flag = Enum("BatchFlag", FLAGS)
BATCH_WIDE = 0  # the metric a batch-wide flag's event names (no metric has id 0)

# A twin's disclosure policy holds at most this many public metrics (a batch carries at most
# MAX_PUBLIC summaries); a twin keeps at most MAX_GRANTS live disclosure grants (may_read
# scans them) and anchors any number of results.
MAX_PUBLIC_METRICS = MAX_PUBLIC
MAX_GRANTS = 64
# Anchored result kinds (u8; others are the facilities' own): a KPI report computed off
# chain, an alert, any other signed report.
ANCHOR_KPI, ANCHOR_ALERT, ANCHOR_REPORT = 0, 1, 2


class _I128(Type):
    """Signed 128-bit integer as 16 big-endian bytes (window sums outgrow i64)."""

    name = "i128"
    lo, hi = -(1 << 127), (1 << 127) - 1

    def to_wire(self, value: Any) -> Any:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise CodecError(f"i128 expected, got {value!r}")
        return value.to_bytes(16, "big", signed=True)

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) != 16:
            raise CodecError("i128: expected 16-byte bin")
        return int.from_bytes(wire, "big", signed=True)


I128 = _I128()


class LastReadings(Type):
    """``{metric: (timestamp ms, value)}`` of one device, packed as reading leaves."""

    name = "LastReadings"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not dict or len(value) > _MAX_METRIC_RECORDS:
            raise CodecError("LastReadings: expected a dict of metric -> (ts, value)")
        try:
            return b"".join([READING.pack(m, *value[m]) for m in sorted(value)])
        except (struct.error, TypeError) as exc:
            raise CodecError(f"LastReadings: {exc}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % READING.size:
            raise CodecError(f"LastReadings: expected a bin of {READING.size}-byte records")
        return {m: (ts, v) for m, ts, v in READING.iter_unpack(wire)}

    def describe(self) -> Any:
        return {"packed": ["u16 metric", "u64 timestamp_ms", "i64 value"], "byteorder": "big"}


@dataclass
class DeviceInfo(Record):
    """A device key's binding, its sequence state (kept after unbinding, so that a rebound
    key can never replay its old batches) and the latest reading of each metric its batches
    made public (from their summaries: never a private metric).

    ``last`` lives here rather than in a map of its own because both are rewritten with every
    batch: one storage key per batch fewer is one trie path fewer to rehash and store."""

    twin: int
    bound_by: bytes
    gateway: bytes | None
    active: bool
    next_seq: int
    gaps: int
    batches: int
    readings: int
    last_seen: int
    last: dict[int, tuple[int, int]]  # metric -> (timestamp ms, value)
    FIELDS: ClassVar = {
        "twin": TwinId,
        "bound_by": AccountId,
        "gateway": Option(AccountId),
        "active": Bool,
        "next_seq": U64,
        "gaps": U64,
        "batches": U64,
        "readings": U64,
        "last_seen": U64,
        "last": LastReadings(),
    }


@dataclass
class CaptureConfig(Record):
    """Configured capture frequency of one metric of a twin: readings closer than
    ``min_interval_ms`` are too fast (checked by the facility archive, which has them), a
    batch starting more than ``max_age_ms`` before the block time is stale (on chain: the
    strictest max age of the metrics it makes public)."""

    min_interval_ms: int
    max_age_ms: int
    FIELDS: ClassVar = {"min_interval_ms": U32, "max_age_ms": U64}


DEFAULT_CAPTURE = CaptureConfig(0, DEFAULT_MAX_AGE_MS)


@dataclass
class Aggregate(Record):
    """Per-metric aggregate of one time window, merged from the batches' public summaries;
    ``last`` is the value of the latest reading (by timestamp; the later-submitted one on a
    tie); ``flagged`` counts the readings of summaries that were flagged."""

    count: int
    min: int
    max: int
    sum: int
    last: int
    last_ts: int
    flagged: int
    FIELDS: ClassVar = {
        "count": U64,
        "min": I64,
        "max": I64,
        "sum": I128,
        "last": I64,
        "last_ts": U64,
        "flagged": U64,
    }

    def merge(self, count: int, lo: int, hi: int, total: int, last_ts: int, last: int,
              flagged: int) -> None:  # fmt: skip
        """Add a batch's summary of this metric (as if its readings were added in order)."""
        if self.count == 0:
            self.min, self.max, self.last, self.last_ts = lo, hi, last, last_ts
        else:
            if lo < self.min:
                self.min = lo
            if hi > self.max:
                self.max = hi
            if last_ts >= self.last_ts:
                self.last, self.last_ts = last, last_ts
        self.count += count
        self.sum += total
        self.flagged += flagged


# A twin's window and a device's latest readings are each read and written once per batch,
# every metric at once, as one bin of fixed-size big-endian records sorted by metric: a value
# per metric cost a storage key, a read, a decode, an encode and a write per metric and batch.
_MAX_METRIC_RECORDS = 1 << 16
_AGG = struct.Struct(">HQqq16sqQQ")  # metric, count, min, max, sum (i128), last, last_ts, flagged


class WindowAggregates(Type):
    """``{metric: Aggregate}`` of one window, packed (see ``_AGG``)."""

    name = "WindowAggregates"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not dict or len(value) > _MAX_METRIC_RECORDS:
            raise CodecError("WindowAggregates: expected a dict of metric -> Aggregate")
        out = []
        try:
            for m in sorted(value):
                a = value[m]
                if type(a) is not Aggregate:
                    raise CodecError(f"WindowAggregates: Aggregate expected, got {a!r:.40}")
                total = I128.to_wire(a.sum)
                out.append(_AGG.pack(m, a.count, a.min, a.max, total, a.last, a.last_ts, a.flagged))
        except (struct.error, TypeError) as exc:
            raise CodecError(f"WindowAggregates: {exc}") from None
        return b"".join(out)

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % _AGG.size:
            raise CodecError(f"WindowAggregates: expected a bin of {_AGG.size}-byte records")
        out: dict[int, Aggregate] = {}
        for m, count, lo, hi, total, last, last_ts, flagged in _AGG.iter_unpack(wire):
            out[m] = Aggregate(
                count, lo, hi, int.from_bytes(total, "big", signed=True), last, last_ts, flagged
            )
        return out

    def describe(self) -> Any:
        return {
            "packed": ["u16 metric", "u64 count", "i64 min", "i64 max", "i128 sum", "i64 last",
                       "u64 last_ts", "u64 flagged"],
            "byteorder": "big",
        }  # fmt: skip


# A twin's batch log holds (device, seq) references, 40 bytes each, in chunks of this many.
BATCH_LOG_CHUNK = 32
BATCH_REF_SIZE = 40


class BatchRefs(Type):
    """Up to ``max_len`` (device, seq) references packed back to back: 32-byte device key,
    big-endian u64 sequence number. Kept as bytes: appending one is a concatenation."""

    name = "BatchRefs"

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def to_wire(self, value: Any) -> Any:
        if (
            type(value) is not bytes
            or len(value) % BATCH_REF_SIZE
            or len(value) > self.max_len * BATCH_REF_SIZE
        ):
            raise CodecError(f"BatchRefs: expected up to {self.max_len} 40-byte references")
        return value

    from_wire = to_wire

    def describe(self) -> Any:
        return {"packed": ["[u8; 32] device", "u64 seq"], "max": self.max_len, "byteorder": "big"}


class BatchRecords(Type):
    """The records of up to ``max_len`` batches of one device, packed back to back in
    ascending sequence order (``BATCH_RECORD``, 112 bytes each); a chunk holds the
    sequence numbers ``[BATCH_CHUNK * c, BATCH_CHUNK * (c + 1))`` that were accepted. Kept as
    bytes: adding a batch is a concatenation, and one key per device and block is written
    instead of one per batch (a third of a loaded block's state writes)."""

    name = "BatchRecords"

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def to_wire(self, value: Any) -> Any:
        size = BATCH_RECORD.size
        if type(value) is not bytes or len(value) % size or len(value) > self.max_len * size:
            raise CodecError(f"BatchRecords: expected up to {self.max_len} {size}-byte records")
        return value

    from_wire = to_wire

    def describe(self) -> Any:
        return {
            "packed": [
                "u64 seq", "u64 twin", "[u8; 32] root", "u32 count", "u64 first_ts",
                "u64 last_ts", "[u8; 32] gateway", "u64 block", "u32 flagged",
            ],
            "max": self.max_len,
            "byteorder": "big",
        }  # fmt: skip


_CAPTURE = struct.Struct(">HIQ")  # metric, min_interval_ms, max_age_ms


class CaptureTable(Type):
    """``{metric: CaptureConfig}`` of one twin, packed (sorted by metric)."""

    name = "CaptureTable"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not dict or len(value) > _MAX_METRIC_RECORDS:
            raise CodecError("CaptureTable: expected a dict of metric -> CaptureConfig")
        try:
            return b"".join(
                [
                    _CAPTURE.pack(m, c.min_interval_ms, c.max_age_ms)
                    for m, c in sorted(value.items())
                ]
            )
        except (struct.error, TypeError, AttributeError) as exc:
            raise CodecError(f"CaptureTable: {exc}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % _CAPTURE.size:
            raise CodecError(f"CaptureTable: expected a bin of {_CAPTURE.size}-byte records")
        return {m: CaptureConfig(i, a) for m, i, a in _CAPTURE.iter_unpack(wire)}

    def describe(self) -> Any:
        return {
            "packed": ["u16 metric", "u32 min_interval_ms", "u64 max_age_ms"],
            "byteorder": "big",
        }


class MetricSet(Type):
    """A set of metric ids (a twin's public metrics), stored as a bin of big-endian u16 in
    ascending order; decoded, a frozenset."""

    name = "MetricSet"

    def __init__(self, max_len: int = MAX_PUBLIC_METRICS) -> None:
        self.max_len = max_len

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, frozenset | set | list | tuple) or len(value) > self.max_len:
            raise CodecError(f"MetricSet: expected at most {self.max_len} metric ids")
        try:
            return b"".join(m.to_bytes(2, "big") for m in sorted(set(value)))
        except (OverflowError, AttributeError, TypeError) as exc:
            raise CodecError(f"MetricSet: {exc}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % 2 or len(wire) > 2 * self.max_len:
            raise CodecError(f"MetricSet: expected a bin of at most {self.max_len} u16")
        ms = [int.from_bytes(wire[i : i + 2], "big") for i in range(0, len(wire), 2)]
        if any(a >= b for a, b in itertools.pairwise(ms)):
            raise CodecError("MetricSet: ids not strictly ascending")
        return frozenset(ms)

    def describe(self) -> Any:
        return {"packed": ["u16 metric"], "max": self.max_len, "byteorder": "big"}


@dataclass
class DisclosureGrant(Record):
    """A later disclosure: the owner lets ``reader`` (None: everyone) read the readings of
    ``metric`` in ``[from_ms, to_ms]`` from the owner's archive, with their proofs."""

    metric: int
    from_ms: int
    to_ms: int
    reader: bytes | None
    at: int  # the block time it was made (ms)
    FIELDS: ClassVar = {
        "metric": U16,
        "from_ms": U64,
        "to_ms": U64,
        "reader": Option(AccountId),
        "at": U64,
    }

    def covers(self, metric: int, who: bytes, from_ms: int, to_ms: int) -> bool:
        return (
            self.metric == metric
            and (self.reader is None or self.reader == who)
            and self.from_ms <= from_ms
            and to_ms <= self.to_ms
        )


@dataclass
class AnchoredResult(Record):
    """A result computed off chain over a twin's data (a KPI report, an alert; ``kind``),
    anchored by its digest: the signed document itself stays with its facility."""

    kind: int
    from_ms: int
    to_ms: int
    digest: bytes
    by: bytes
    block: int
    FIELDS: ClassVar = {
        "kind": U8,
        "from_ms": U64,
        "to_ms": U64,
        "digest": H256,
        "by": AccountId,
        "block": U64,
    }
