"""Telemetry's constants, storage records and their packed encodings."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.native import fallback as native_fallback
from twinchain.primitives.codec import (
    I64,
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
from twinchain.protocol.telemetry import BATCH_RECORD, READING
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

FLAGS = ("OutOfRange", "TooFast", "Stale", "ImplausibleJump", "FromFuture")
Flag = Enum("ReadingFlag", FLAGS)
# native.readings_scan's flag bits, in the order a reading's events are raised.
FLAG_BITS = (
    (native_fallback.FLAG_OUT_OF_RANGE, "OutOfRange"),
    (native_fallback.FLAG_FROM_FUTURE, "FromFuture"),
    (native_fallback.FLAG_STALE, "Stale"),
    (native_fallback.FLAG_TOO_FAST, "TooFast"),
    (native_fallback.FLAG_JUMP, "ImplausibleJump"),
)


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
    key can never replay its old batches) and its latest reading of each metric.

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
    ``min_interval_ms`` are too fast, older than ``max_age_ms`` at block time are stale."""

    min_interval_ms: int
    max_age_ms: int
    FIELDS: ClassVar = {"min_interval_ms": U32, "max_age_ms": U64}


DEFAULT_CAPTURE = CaptureConfig(0, DEFAULT_MAX_AGE_MS)


@dataclass
class Aggregate(Record):
    """Per-metric aggregate of one time window; ``last`` is the value of the latest reading
    (by timestamp; the later-submitted one on a tie)."""

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

    def add(self, ts: int, value: int, flagged: bool) -> None:
        if self.count == 0:
            self.min = self.max = value
        else:
            self.min = min(self.min, value)
            self.max = max(self.max, value)
        if self.count == 0 or ts >= self.last_ts:
            self.last, self.last_ts = value, ts
        self.count += 1
        self.sum += value
        self.flagged += int(flagged)


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
