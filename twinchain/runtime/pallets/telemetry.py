"""Telemetry: device-signed sensor and operational data of the equipment twins.

The owner of a twin binds device keys to it (optionally pinned to one gateway). A device
signs each batch of its readings at the source; a gateway (Gateway role) submits batches in
an extrinsic it signs itself. On chain:

* every device signature is checked: all batches of one extrinsic in one
  ``native.verify_batch`` call, or none at all when the executive verified them for the whole
  block beforehand (:meth:`Telemetry.pre_verify`); one bad signature fails the extrinsic;
* per-device sequence numbers reject duplicates and replays; gaps are recorded;
* readings are checked against the equipment's operating envelope (manufacturer spec) and the
  twin's capture configuration; out-of-range, too-fast, stale, from-the-future and
  implausible-jump readings raise ``ReadingFlagged`` events: flagged, never dropped;
* the raw readings are not stored: each batch leaves its Merkle root (over
  :func:`reading_leaf` of each reading) and the per-metric aggregates (count, min, max, sum,
  last) of fixed time windows. Any single reading can later be disclosed with
  :func:`reading_proof` and checked with :func:`verify_reading` against the on-chain root;
* a reading in a later window closes the twin's open one: the close is queued, and each
  block's ``on_initialize`` hands at most ``MAX_CLOSES_PER_BLOCK`` queued windows, oldest
  first, to the operations pallets' ``on_window_closed`` hooks.

Readings are ``(metric, timestamp ms, value)`` with an i64 fixed-point value in the metric's
scale (``value / 10**scale`` units). Production counts, good and bad parts, material and
energy use are metrics like the others (see ``DEFAULT_METRICS``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain import native
from twinchain.native import fallback as native_fallback
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
    Str,
    Tuple,
    Type,
    Vec,
)
from twinchain.primitives.keys import is_valid_public, parse_account
from twinchain.protocol.telemetry import (
    BATCH_CHUNK,
    BATCH_RECORD,
    DEFAULT_METRICS,
    MAX_BATCHES,
    MAX_FUTURE_DRIFT_MS,
    MAX_METRIC_NAME,
    MAX_READINGS,
    MAX_UNIT,
    READING,
    Batch,
    BatchRecord,
    MetricInfo,
    MetricKind,
    Triple,
    batch_message,
    batch_root,
    chunk_record,
    packed_readings,
    survey_readings,
    verify_device_signatures,
)
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
    DispatchError,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.pallets.equipment import OPERATE, TwinId
from twinchain.runtime.pallets.roles import DEVICE, GATEWAY

if TYPE_CHECKING:
    from twinchain.runtime.framework import CallDef

MAX_DEVICES_PER_TWIN = 64

DEFAULT_WINDOW_MS = 3_600_000
DEFAULT_MAX_AGE_MS = 86_400_000  # gateways may spool a day of data while offline

# Re-measured with bench/telemetry.py (2026-11-23, one core, cold import: every signature
# checked, state root and write included): 12-reading batches cost ~150 us each, 100-reading
# batches ~177 us (a reading adds well under 1 us: checks and aggregates run in C). Charged:
# 229 us and 400 us (1.5x and 2.3x); a block of 100-reading batches is full at 500,000
# readings. The old charge (14 us a reading) was set when import was 8x slower, and cut
# blocks on the devnet at ~2/3 of what the author could apply.
W_SUBMIT_BASE = 50_000
W_PER_BATCH = 200_000  # a signature check, a Merkle root, the batch's records
W_PER_READING = 2_000  # checks, aggregates, its share of the state root
W_SMALL = 40_000
# Closing a twin's window: its aggregates read once and handed to the operations pallets
# (benchmark, maintenance, analytics, simulation), in on_initialize, for the closes queued.
# bench/operations.py (import on one core, state root included; 15 metrics, a class of 256
# ranked peers, the Analytics period closing in it; 2026-11-23): 1.8-3.6 ms a close across
# runs, whether plain, raising 7 alerts or completing a work order (at most one per close);
# --repeat 5: 2.0, 2.6 and 2.7 ms; queued, run by on_initialize: 1.7, 2.6 and 2.6 ms. It was
# 7-10.7 ms when this was set at 15 ms; 7.5 ms keeps a 2x margin over the worst measured.
W_WINDOW_CLOSE = 7_500_000
# Twins' windows end together (their readings cross the boundary together), so their closes
# arrive together: on the 168-twin devnet one block in five held all of them, took its peers
# 2-3x longer to import than the others, and left the next author late. Queued, they spread
# over the next blocks: at most this many a block (360 ms of weight, 18 % of a block; a
# wave of 168 drains in 4 blocks). As Analytics' period closes, a close is the chain's own
# work, counted in the weight of the block that runs it; a submit pays for queueing.
MAX_CLOSES_PER_BLOCK = 48
# Queueing a close (an entry, the queue's bounds): charged per batch, the bound (a batch
# closes at most its twin's window). Counting the closes exactly, as the weight once did,
# cost ~5 % of a loaded validator's CPU: every batch's readings surveyed again to weigh it.
W_CLOSE_QUEUE = 50_000
W_CLOSE_INIT = 10_000  # on_initialize reading the queue's bounds

FLAGS = ("OutOfRange", "TooFast", "Stale", "ImplausibleJump", "FromFuture")
Flag = Enum("ReadingFlag", FLAGS)
# native.readings_scan's flag bits, in the order a reading's events are raised.
_FLAG_BITS = (
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


class _LastReadings(Type):
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
        "last": _LastReadings(),
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


def empty_aggregate() -> Aggregate:
    return Aggregate(0, 0, 0, 0, 0, 0, 0)


# A twin's window and a device's latest readings are each read and written once per batch,
# every metric at once, as one bin of fixed-size big-endian records sorted by metric: a value
# per metric cost a storage key, a read, a decode, an encode and a write per metric and batch.
_MAX_METRIC_RECORDS = 1 << 16
_AGG = struct.Struct(">HQqq16sqQQ")  # metric, count, min, max, sum (i128), last, last_ts, flagged


class _WindowAggregates(Type):
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
_BATCH_REF = 40


class _BatchRefs(Type):
    """Up to ``max_len`` (device, seq) references packed back to back: 32-byte device key,
    big-endian u64 sequence number. Kept as bytes: appending one is a concatenation."""

    name = "BatchRefs"

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def to_wire(self, value: Any) -> Any:
        if (
            type(value) is not bytes
            or len(value) % _BATCH_REF
            or len(value) > self.max_len * _BATCH_REF
        ):
            raise CodecError(f"BatchRefs: expected up to {self.max_len} 40-byte references")
        return value

    from_wire = to_wire

    def describe(self) -> Any:
        return {"packed": ["[u8; 32] device", "u64 seq"], "max": self.max_len, "byteorder": "big"}


class _BatchRecords(Type):
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


class _CaptureTable(Type):
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


# --------------------------------------------------------------------------- the pallet


@dataclass
class _Context:
    """What one ``submit`` reads once for all its batches."""

    now: int
    window: int
    newest: dict[int, int] = field(default_factory=dict)  # twin -> latest window start seen
    envelopes: dict[int, dict[int, Any]] = field(default_factory=dict)
    captures: dict[int, dict[int, CaptureConfig]] = field(default_factory=dict)


# Device signatures known good, process-wide. A verdict depends on the three byte strings
# alone (the message binds chain, device, twin, sequence and root), so it holds in any block,
# fork or runtime instance: pool admission verifies a batch when its extrinsic arrives, and
# authoring and import, which are on every reading's path to finality, do not again.
_GOOD_SIGNATURES: dict[Triple, None] = {}
_GOOD_SIGNATURES_MAX = 1 << 16


def remember_good_signatures(triples: Iterable[Triple]) -> None:
    """Record (device, message, signature) triples as verified: only after verifying them."""
    memo = _GOOD_SIGNATURES
    for t in triples:
        if len(memo) >= _GOOD_SIGNATURES_MAX:
            del memo[next(iter(memo))]  # oldest first: extrinsics are included in order
        memo[t] = None


def forget_good_signatures() -> None:
    """Drop the memo of good device signatures (a fresh process; tests and benchmarks)."""
    _GOOD_SIGNATURES.clear()


_VERIFIED = "telemetry.verified"  # BlockContext.notes: device signatures checked this block
_ROOTS = "telemetry.roots"  # BlockContext.notes: packed readings -> batch root


class Telemetry(Pallet):
    name = "Telemetry"

    Metrics = StorageMap(U16, MetricInfo.wire_type(), doc="Registered metrics.")
    WindowMs = StorageValue(U64, DEFAULT_WINDOW_MS, doc="Length of an aggregation window.")
    Devices = StorageMap(AccountId, DeviceInfo.wire_type(), doc="Device keys and their state.")
    TwinDevices = StorageDoubleMap(TwinId, AccountId, Bool, doc="Active devices of each twin.")
    TwinDeviceCount = StorageMap(TwinId, U32, 0, doc="Active devices per twin.")
    Capture = StorageMap(
        TwinId,
        _CaptureTable(),
        doc="Capture frequency per twin, by metric (one value: a batch reads it once).",
    )
    BatchChunks = StorageDoubleMap(
        AccountId,
        U64,
        _BatchRecords(BATCH_CHUNK),
        b"",
        doc="Batch records (roots) by device and chunk (sequence // BATCH_CHUNK), packed; "
        "read one with chunk_record.",
    )
    TwinBatchLog = StorageMap(
        TwinId,
        Tuple(U64, _BatchRefs(BATCH_LOG_CHUNK)),
        (0, b""),
        doc="Batches accepted per twin, and the (device, seq) of the latest ones: those since "
        "the last full chunk.",
    )
    TwinBatchChunks = StorageDoubleMap(
        TwinId,
        U64,
        _BatchRefs(BATCH_LOG_CHUNK),
        doc="(device, seq) of each twin's batches in order, in full chunks by chunk index.",
    )
    Aggregates = StorageDoubleMap(
        TwinId,
        U64,
        _WindowAggregates(),
        doc="Per-metric aggregates of each twin's windows, by window start (ms).",
    )
    OpenWindow = StorageMap(
        TwinId, U64, doc="Start of each twin's latest window with readings (not yet closed)."
    )
    CloseQueue = StorageMap(
        U64,
        Tuple(TwinId, U64, U64),
        doc="Closed windows (twin, start, window ms) whose hooks have not run, by position.",
    )
    CloseQueueBounds = StorageValue(
        Tuple(U64, U64), (0, 0), doc="CloseQueue's first position and the next free one."
    )

    class Event(PalletEvents):
        MetricRegistered = (("metric", U16), ("name", Str(MAX_METRIC_NAME)))
        DeviceBound = (("device", AccountId), ("twin", TwinId), ("gateway", Option(AccountId)))
        DeviceUnbound = (("device", AccountId), ("twin", TwinId))
        CaptureConfigured = (
            ("twin", TwinId),
            ("metric", U16),
            ("min_interval_ms", U32),
            ("max_age_ms", U64),
        )
        BatchAccepted = (
            ("twin", TwinId),
            ("device", AccountId),
            ("seq", U64),
            ("root", H256),
            ("count", U32),
            ("flagged", U32),
        )
        SequenceGap = (("device", AccountId), ("expected", U64), ("got", U64))
        WindowClosed = (("twin", TwinId), ("start", U64))
        WindowCloseFailed = (("twin", TwinId), ("start", U64))
        ReadingFlagged = (
            ("twin", TwinId),
            ("device", AccountId),
            ("seq", U64),
            ("index", U32),
            ("metric", U16),
            ("flag", Flag),
            ("value", I64),
            ("timestamp", U64),
        )

    class Error(PalletErrors):
        NotGateway = "the sender does not hold the Gateway role"
        NotOwner = "the sender is not the owner of the device's twin"
        NoPermission = "the sender is neither the twin's owner nor an OPERATE delegate"
        UnknownTwin = "no twin with this id"
        TwinNotOperational = "the twin is not commissioned, active or in maintenance"
        InvalidDeviceKey = "the device key is not a valid x-only public key"
        DeviceAlreadyBound = "the device key is bound to a twin already"
        TooManyDevices = "the twin has the maximum number of devices"
        UnknownDevice = "the device is not bound (or its Device role was revoked)"
        WrongGateway = "the device is pinned to another gateway"
        EmptyBatch = "no batches, or a batch without readings"
        UnknownMetric = "a reading names an unregistered metric"
        BadDeviceSignature = "a batch's device signature does not verify"
        DuplicateBatch = "the batch's sequence number was used already (replay)"
        InvalidCaptureConfig = "max_age_ms must be positive"
        MetricExists = "a metric with this id is registered already"
        Overflow = "a counter overflowed"

    # ------------------------------------------------------------------ binding
    @call(
        0,
        weight=W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("device", AccountId), ("gateway", Option(AccountId))),
    )
    def bind_device(self, origin: Origin, twin: int, device: bytes, gateway: bytes | None) -> None:
        """Bind a device key to a twin (the twin's owner), optionally pinned to one gateway;
        grants the key the Device role."""
        who = ensure_signed(origin)
        t = self.runtime.equipment.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.owner != who:
            raise self.Error.NotOwner()
        if t.lifecycle == "Decommissioned":
            raise self.Error.TwinNotOperational()
        if not is_valid_public(device):
            raise self.Error.InvalidDeviceKey()
        d: DeviceInfo | None = self.Devices.get(device)
        if d is not None and d.active:
            raise self.Error.DeviceAlreadyBound()
        self.do_bind(twin, device, gateway, who, d)

    @call(1, weight=W_SMALL, origin=SIGNED, args=(("device", AccountId),))
    def unbind_device(self, origin: Origin, device: bytes) -> None:
        """Unbind a device (the owner of its twin); its sequence state stays."""
        who = ensure_signed(origin)
        d: DeviceInfo | None = self.Devices.get(device)
        if d is None or not d.active:
            raise self.Error.UnknownDevice()
        t = self.runtime.equipment.twin(d.twin)
        if t is None or t.owner != who:
            raise self.Error.NotOwner()
        d.active = False
        self.Devices.insert(device, d)
        self.TwinDevices.remove(d.twin, device)
        self.TwinDeviceCount.insert(d.twin, self.TwinDeviceCount.get(d.twin) - 1)
        self.runtime.roles.revoke_internal(device, DEVICE, who)
        self.deposit(self.Event.DeviceUnbound(device, d.twin))

    @call(
        2,
        weight=W_SMALL,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("metric", U16),
            ("min_interval_ms", U32),
            ("max_age_ms", U64),
        ),
    )
    def set_capture_config(
        self, origin: Origin, twin: int, metric: int, min_interval_ms: int, max_age_ms: int
    ) -> None:
        """Configure the capture frequency of a metric (the owner or an OPERATE delegate)."""
        who = ensure_signed(origin)
        eq = self.runtime.equipment
        t = eq.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.lifecycle == "Decommissioned" or not eq.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        if not self.Metrics.contains(metric):
            raise self.Error.UnknownMetric()
        if max_age_ms == 0:
            raise self.Error.InvalidCaptureConfig()
        self._set_capture(twin, metric, CaptureConfig(min_interval_ms, max_age_ms))
        self.deposit(self.Event.CaptureConfigured(twin, metric, min_interval_ms, max_age_ms))

    @call(
        3,
        weight=W_SMALL,
        origin=ROOT,
        args=(
            ("metric", U16),
            ("name", Str(MAX_METRIC_NAME)),
            ("unit", Str(MAX_UNIT)),
            ("scale", U8),
            ("kind", MetricKind),
        ),
    )
    def register_metric(
        self, origin: Origin, metric: int, name: str, unit: str, scale: int, kind: str
    ) -> None:
        """Register a new metric (root: governance)."""
        ensure_root(origin)
        if self.Metrics.contains(metric):
            raise self.Error.MetricExists()
        self.Metrics.insert(metric, MetricInfo(name, unit, scale, kind))
        self.deposit(self.Event.MetricRegistered(metric, name))

    # ------------------------------------------------------------------ submission
    @call(
        4,
        weight=lambda rt, batches: (
            W_SUBMIT_BASE
            + (W_PER_BATCH + W_CLOSE_QUEUE) * len(batches)
            + W_PER_READING * sum(len(b.readings) for b in batches)
        ),
        origin=SIGNED,
        args=(("batches", Vec(Batch.wire_type(), MAX_BATCHES)),),
    )
    def submit(self, origin: Origin, batches: list[Batch]) -> None:
        """Submit device-signed batches (Gateway). Fails whole on any bad device signature,
        replayed sequence number, unknown device or metric; flags odd readings in events."""
        gateway = ensure_signed(origin)
        roles = self.runtime.roles
        if not roles.has(gateway, GATEWAY):
            raise self.Error.NotGateway()
        if not batches:
            raise self.Error.EmptyBatch()
        # 1. Checks and roots, no writes.
        devices: dict[bytes, DeviceInfo] = {}
        expected: dict[bytes, int] = {}
        known_metrics: set[int] = set()
        roots: list[bytes] = []
        for b in batches:
            d = devices.get(b.device)
            if d is None:
                d = self.Devices.get(b.device)
                if d is None or not d.active or not roles.has(b.device, DEVICE):
                    raise self.Error.UnknownDevice()
                if not self.runtime.equipment.is_operational(d.twin):
                    raise self.Error.TwinNotOperational()
                devices[b.device] = d
                expected[b.device] = d.next_seq
            if d.gateway is not None and d.gateway != gateway:
                raise self.Error.WrongGateway()
            if not b.readings:
                raise self.Error.EmptyBatch()
            if b.seq < expected[b.device]:
                raise self.Error.DuplicateBatch(f"seq {b.seq} < {expected[b.device]}")
            if b.seq >= U64.max:
                raise self.Error.Overflow("sequence number exhausted")
            expected[b.device] = b.seq + 1
            for m in set(survey_readings(b.readings)[0]) - known_metrics:
                if not self.Metrics.contains(m):
                    raise self.Error.UnknownMetric(str(m))
                known_metrics.add(m)
            roots.append(self._root_of(b.readings))
        # 2. Device signatures: one batch verification for what the block did not pre-verify.
        genesis = self.runtime.genesis_hash
        triples: list[Triple] = []
        for b, root in zip(batches, roots, strict=True):
            twin = devices[b.device].twin
            msg = batch_message(genesis, b.device, twin, b.seq, root, len(b.readings))
            triples.append((b.device, msg, b.signature))
        verified: set[Triple] = self.runtime.block.notes.get(_VERIFIED, set())
        good = _GOOD_SIGNATURES
        todo = [t for t in triples if t not in verified and t not in good]
        if todo:
            if not all(verify_device_signatures(todo)):
                raise self.Error.BadDeviceSignature()
            remember_good_signatures(todo)
        # 3. Apply.
        ctx = _Context(int(self.runtime.timestamp.Now.get()), self.WindowMs.get())
        for b, root in zip(batches, roots, strict=True):
            self._apply_batch(ctx, gateway, devices[b.device], b, root)
        for dev, d in devices.items():
            self.Devices.insert(dev, d)
        # 4. Windows: a reading in a later window closes the twin's open one (queued).
        closed: list[tuple[int, int, int]] = []
        for twin, newest in sorted(ctx.newest.items()):
            if newest < 0:
                continue  # only readings from the future: they open no window
            open_start: int | None = self.OpenWindow.get(twin)
            if open_start is not None and newest <= open_start:
                continue
            self.OpenWindow.insert(twin, newest)
            if open_start is not None:
                closed.append((twin, open_start, ctx.window))
        if closed:
            head, tail = self.CloseQueueBounds.get()
            for entry in closed:
                self.CloseQueue.insert(tail, entry)
                tail += 1
            self.CloseQueueBounds.put((head, tail))

    # ------------------------------------------------------------------ hooks
    def on_initialize(self, number: int) -> int:
        """Run the hooks of at most ``MAX_CLOSES_PER_BLOCK`` queued window closes, oldest
        first (a twin's windows close in order). Each close runs in its own layer: one that
        fails (a hook's bug, an encoding overflow) is reverted and reported with
        ``WindowCloseFailed``; raised from here it would fail the block, every block."""
        head, tail = self.CloseQueueBounds.get()
        if head == tail:
            return W_CLOSE_INIT
        end = min(tail, head + MAX_CLOSES_PER_BLOCK)
        for pos in range(head, end):
            twin, start, window_ms = self.CloseQueue.get(pos)
            self.CloseQueue.remove(pos)
            if not self.in_layer(lambda t=twin, s=start, w=window_ms: self.close_window(t, s, w)):
                self.deposit(self.Event.WindowCloseFailed(twin, start))
        self.CloseQueueBounds.put((end, tail))
        return W_CLOSE_INIT + W_WINDOW_CLOSE * (end - head)

    def queued_closes(self) -> int:
        """Closed windows whose hooks have not run yet."""
        head, tail = self.CloseQueueBounds.get()
        return int(tail - head)

    def close_window(self, twin: int, start: int, window_ms: int) -> None:
        """Hand a closed window's aggregates to every pallet's ``on_window_closed``."""
        aggs = {m: a for m, a in self.window_aggregates(twin, start).items() if a.count}
        if not aggs:
            return
        self.deposit(self.Event.WindowClosed(twin, start))
        for _, p in sorted(self.runtime.pallets.items()):
            p.on_window_closed(twin, start, window_ms, aggs)

    def _root_of(self, readings: Sequence[tuple[int, int, int]]) -> bytes:
        # Keyed by the readings' bytes: immune to a list changed in place after it was hashed.
        raw = packed_readings(readings)
        root: bytes | None = self.runtime.block.notes.get(_ROOTS, {}).get(raw)
        return batch_root(readings) if root is None else root

    def _apply_batch(
        self, ctx: _Context, gateway: bytes, d: DeviceInfo, b: Batch, root: bytes
    ) -> None:
        twin = d.twin
        if b.seq > d.next_seq:
            d.gaps += b.seq - d.next_seq
            self.deposit(self.Event.SequenceGap(b.device, d.next_seq, b.seq))
        d.next_seq = b.seq + 1
        now, window = ctx.now, ctx.window
        envelopes = ctx.envelopes.get(twin)
        if envelopes is None:
            envelopes = ctx.envelopes[twin] = self.runtime.equipment.envelopes(twin)
        captures = ctx.captures.get(twin)
        if captures is None:
            captures = ctx.captures[twin] = self.Capture.get_shared(twin) or {}
        lasts = d.last  # written back with the rest of ``d`` by ``submit``
        raw = packed_readings(b.readings)
        metrics, first_ts, last_ts = survey_readings(b.readings)
        # Per metric, once per batch: its envelope, capture settings and last reading; the
        # per-reading rules run in native.readings_scan (C, or its Python reference).
        slots: list[native_fallback.Slot] = []
        for m in metrics:
            cap = captures.get(m, DEFAULT_CAPTURE)
            env = envelopes.get(m)
            slots.append(
                (
                    m,
                    None if env is None else (env.min, env.max, env.max_step),
                    cap.min_interval_ms,
                    cap.max_age_ms,
                    lasts.get(m),
                )
            )
        limit = now + MAX_FUTURE_DRIFT_MS
        flags, partials, new_lasts, newest, flagged = native.readings_scan(
            raw, slots, now, limit, window, ctx.newest.get(twin, -1)
        )
        ctx.newest[twin] = newest  # a reading from the future never closes a window
        for m, last in zip(metrics, new_lasts, strict=True):
            if last is not None:
                lasts[m] = last
        if flagged:
            flag_event = self.Event.ReadingFlagged
            for i, f in enumerate(flags):
                if f:
                    m, ts, v = READING.unpack_from(raw, i * READING.size)
                    for bit, name in _FLAG_BITS:
                        if f & bit:
                            self.deposit(flag_event(twin, b.device, b.seq, i, m, name, v, ts))
        # The batch's partial aggregates merged into the stored windows, as if each reading
        # had been added in order (see Aggregate.add).
        windows: dict[int, dict[int, Aggregate]] = {}  # window start -> metric -> aggregate
        for start, m, count, lo, hi, total, last, last_at, nflag in partials:
            table = windows.get(start)
            if table is None:
                table = windows[start] = self.Aggregates.get(twin, start) or {}
            agg = table.get(m)
            if agg is None:
                table[m] = Aggregate(count, lo, hi, total, last, last_at, nflag)
                continue
            if agg.count == 0:
                agg.min, agg.max, agg.last, agg.last_ts = lo, hi, last, last_at
            else:
                if lo < agg.min:
                    agg.min = lo
                if hi > agg.max:
                    agg.max = hi
                if last_at >= agg.last_ts:
                    agg.last, agg.last_ts = last, last_at
            agg.count += count
            agg.sum += total
            agg.flagged += nflag
        for start, table in windows.items():
            self.Aggregates.insert(twin, start, table)
        count = len(b.readings)
        c = b.seq // BATCH_CHUNK
        self.BatchChunks.insert(
            b.device,
            c,
            self.BatchChunks.get(b.device, c)
            + BATCH_RECORD.pack(
                b.seq,
                twin,
                root,
                count,
                first_ts,
                last_ts,
                gateway,
                self.runtime.block.number,
                flagged,
            ),
        )
        self._log_batch(twin, b.device, b.seq)
        d.batches += 1
        d.readings += count
        d.last_seen = now
        self.deposit(self.Event.BatchAccepted(twin, b.device, b.seq, root, count, flagged))

    def _log_batch(self, twin: int, device: bytes, seq: int) -> None:
        # One storage write per batch (two were: an entry and a count), and one more per
        # chunk: the log's tail grows as bytes, never decoded here.
        count, tail = self.TwinBatchLog.get(twin)
        tail += device + seq.to_bytes(8, "big")
        count += 1
        if count % BATCH_LOG_CHUNK == 0:
            self.TwinBatchChunks.insert(twin, count // BATCH_LOG_CHUNK - 1, tail)
            tail = b""
        self.TwinBatchLog.insert(twin, (count, tail))

    # ------------------------------------------------------------------ block-level verification
    def _submits(self, calls: Iterable[tuple[Pallet, CallDef, list[Any]]]) -> Iterable[list[Batch]]:
        submit = self.calls_by_name["submit"]
        for pallet, cd, args in calls:
            if pallet is self and cd is submit:
                yield args[0]

    def collect_device_signatures(
        self, calls: Iterable[tuple[Pallet, CallDef, list[Any]]]
    ) -> list[Triple]:
        """(device, message, signature) of every batch in the block's decoded ``calls``,
        against the state at the start of the block; caches the batch roots for ``submit``.

        Batches of unknown devices are skipped (their extrinsic fails on its own), and so are
        submits nested in other calls (sudo, multisig): ``submit`` verifies those itself.
        """
        notes = self.runtime.block.notes
        roots: dict[bytes, bytes] = notes.setdefault(_ROOTS, {})
        genesis = self.runtime.genesis_hash
        out: list[Triple] = []
        twins: dict[bytes, int | None] = {}
        for batches in self._submits(calls):
            for b in batches:
                if b.device not in twins:
                    d: DeviceInfo | None = self.Devices.get_shared(b.device)
                    twins[b.device] = None if d is None else d.twin
                twin = twins[b.device]
                if twin is None or not b.readings:
                    continue
                root = roots[packed_readings(b.readings)] = batch_root(b.readings)
                msg = batch_message(genesis, b.device, twin, b.seq, root, len(b.readings))
                out.append((b.device, msg, b.signature))
        return out

    def note_verified(self, triples: Sequence[Triple], oks: Sequence[bool]) -> None:
        """Remember which device signatures verified, so ``submit`` skips them (this block,
        and any later one that carries the same batch)."""
        good = [t for t, ok in zip(triples, oks, strict=True) if ok]
        self.runtime.block.notes.setdefault(_VERIFIED, set()).update(good)
        remember_good_signatures(good)

    def unverified(self, triples: Sequence[Triple]) -> list[Triple]:
        """``triples`` less those already known good (noted as verified for this block)."""
        good = _GOOD_SIGNATURES
        known = [t for t in triples if t in good]
        if not known:
            return list(triples)
        self.runtime.block.notes.setdefault(_VERIFIED, set()).update(known)
        return [t for t in triples if t not in good]

    def pre_verify(self, calls: Iterable[tuple[Pallet, CallDef, list[Any]]]) -> int:
        """Verify every device signature of a block in ONE ``native.verify_batch`` call.

        The executive calls it once per block after ``initialize_block``, with the decoded
        ``(pallet, call, args)`` of the block's signed extrinsics (or merges
        :meth:`collect_device_signatures` into its own batch and calls :meth:`note_verified`).
        It only ever saves work: a signature it did not verify is checked by ``submit``.
        Returns how many signatures it checked.
        """
        triples = self.unverified(self.collect_device_signatures(calls))
        if triples:
            self.note_verified(triples, verify_device_signatures(triples))
        return len(triples)

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``window_ms``; ``metrics``: [[id, name, unit, scale, kind]] (default: the
        well-known set); ``devices``: [{device, twin, gateway?}]; ``capture``:
        [[twin, metric, min_interval_ms, max_age_ms]]."""
        window = int(config.get("window_ms", DEFAULT_WINDOW_MS))
        if window <= 0:
            raise ValueError("telemetry window_ms must be positive")
        self.WindowMs.put(window)
        for mid, name, unit, scale, kind in config.get("metrics", DEFAULT_METRICS):
            self.Metrics.insert(int(mid), MetricInfo(str(name), str(unit), int(scale), kind))
        for spec in config.get("devices", []):
            device = parse_account(spec["device"])
            twin = int(spec["twin"])
            t = self.runtime.equipment.twin(twin)
            if t is None:
                raise ValueError(f"genesis device bound to unknown twin {twin}")
            if self.Devices.contains(device):
                raise ValueError(f"genesis binds device {spec['device']!r} twice")
            gw = spec.get("gateway")
            try:
                self.do_bind(twin, device, None if gw is None else parse_account(gw), t.owner, None)
            except DispatchError as exc:  # chain specs report ValueError
                raise ValueError(f"genesis device {spec['device']!r}: {exc}") from exc
        for twin, metric, min_interval, max_age in config.get("capture", []):
            self._set_capture(
                int(twin), int(metric), CaptureConfig(int(min_interval), int(max_age))
            )

    def _set_capture(self, twin: int, metric: int, config: CaptureConfig) -> None:
        table: dict[int, CaptureConfig] = self.Capture.get(twin) or {}
        table[metric] = config
        self.Capture.insert(twin, table)

    # ------------------------------------------------------------------ API
    def capture(self, twin: int, metric: int) -> CaptureConfig:
        """The capture settings of a twin's metric (the defaults unless configured)."""
        table: dict[int, CaptureConfig] = self.Capture.get_shared(twin) or {}
        return table.get(metric, DEFAULT_CAPTURE)

    def do_bind(
        self,
        twin: int,
        device: bytes,
        gateway: bytes | None,
        by: bytes,
        previous: DeviceInfo | None,
    ) -> None:
        count = self.TwinDeviceCount.get(twin)
        if count >= MAX_DEVICES_PER_TWIN:
            raise self.Error.TooManyDevices()
        d = previous or DeviceInfo(twin, by, gateway, True, 0, 0, 0, 0, 0, {})
        d.twin, d.bound_by, d.gateway, d.active = twin, by, gateway, True
        self.Devices.insert(device, d)
        self.TwinDevices.insert(twin, device, True)
        self.TwinDeviceCount.insert(twin, count + 1)
        self.runtime.roles.grant_internal(device, DEVICE, by)
        self.deposit(self.Event.DeviceBound(device, twin, gateway))

    def device(self, device: bytes) -> DeviceInfo | None:
        return self.Devices.get(device)  # type: ignore[no-any-return]

    def batch(self, device: bytes, seq: int) -> BatchRecord | None:
        if not 0 <= seq < 1 << 64:
            return None
        return chunk_record(self.BatchChunks.get(device, seq // BATCH_CHUNK), seq)

    def twin_batch_count(self, twin: int) -> int:
        """How many batches the twin's devices have had accepted."""
        return self.TwinBatchLog.get(twin)[0]  # type: ignore[no-any-return]

    def twin_batch(self, twin: int, n: int) -> tuple[bytes, int] | None:
        """(device, seq) of the twin's ``n``-th accepted batch (0: the first), None past the end."""
        count, tail = self.TwinBatchLog.get(twin)
        if not 0 <= n < count:
            return None
        chunk, i = divmod(n, BATCH_LOG_CHUNK)
        refs = tail if chunk == count // BATCH_LOG_CHUNK else self.TwinBatchChunks.get(twin, chunk)
        ref = refs[i * _BATCH_REF : (i + 1) * _BATCH_REF]
        return ref[:32], int.from_bytes(ref[32:], "big")

    def aggregates(self, twin: int) -> list[tuple[tuple[int, int], Aggregate]]:
        """All aggregates of a twin, sorted by (metric, window start)."""
        return sorted(
            ((m, start), agg)
            for start, table in self.Aggregates.iter_prefix(twin)
            for m, agg in table.items()
        )

    def window_aggregates(self, twin: int, start: int) -> dict[int, Aggregate]:
        """``{metric: aggregate}`` of the twin's window starting at ``start`` (ms)."""
        return self.Aggregates.get(twin, start) or {}  # type: ignore[no-any-return]

    def aggregate(self, twin: int, metric: int, start: int) -> Aggregate | None:
        return self.window_aggregates(twin, start).get(metric)

    def last_readings(self, device: bytes) -> dict[int, tuple[int, int]]:
        """``{metric: (timestamp ms, value)}`` of the device's latest readings."""
        d: DeviceInfo | None = self.Devices.get(device)
        return {} if d is None else d.last

    def last_reading(self, device: bytes, metric: int) -> tuple[int, int] | None:
        return self.last_readings(device).get(metric)

    def constants(self) -> dict[str, Any]:
        return {
            "MaxReadingsPerBatch": MAX_READINGS,
            "MaxBatchesPerExtrinsic": MAX_BATCHES,
            "MaxDevicesPerTwin": MAX_DEVICES_PER_TWIN,
            "DefaultMaxAgeMs": DEFAULT_MAX_AGE_MS,
            "MaxFutureDriftMs": MAX_FUTURE_DRIFT_MS,
            "Flags": list(FLAGS),
            "ReadingLeaf": "u16 metric ‖ u64 timestamp_ms ‖ i64 value, big-endian",
        }
