"""Telemetry's protocol: what a device, a gateway, the chain, the facility archive and a
verifier agree on.

* **Metric registry.** Well-known metric ids (``TEMPERATURE`` ... ``CURRENT``) and
  ``DEFAULT_METRICS``, the set every chain starts with (genesis may replace it): the one
  source of metric ids for the pallet, the gateway, the off-chain worker and the tools.
  ``DEFAULT_PUBLIC`` is the disclosure policy a twin starts with: condition metrics public,
  production, scrap, material, energy and utilisation private.
* **Wire format.** A reading is ``(metric, timestamp ms, value)`` with an i64 fixed-point
  value in the metric's scale (``value / 10**scale`` units). A batch's readings travel packed
  (:class:`Readings`): one bin of 18-byte big-endian records, each the reading's Merkle leaf
  (:func:`reading_leaf`); decoded they stay packed (:class:`PackedReadings`).
* **Batches and commitments.** A device signs each batch of its readings at the source
  (:func:`sign_batch`). The signature covers :func:`commitment_message`: the chain, the
  device, its twin, the sequence number, the count, the time span, the batch's Merkle root
  (:func:`batch_root`) and the public summaries (:class:`MetricSummary`, one per public
  metric present). The chain receives only the :class:`Commitment` (the batch without its
  readings, :meth:`Batch.commitment`); the readings go to the owner's facility archive, which
  checks them against the finalized commitment (:func:`check_batch`).
  :func:`verify_device_signatures` checks many (device, message, signature) triples in one
  ``native.verify_batch`` call.
* **Reading proofs.** Any single reading can be disclosed with :func:`reading_proof` and
  checked with :func:`verify_reading` against the batch root the chain keeps.
* **Batch records.** The chain keeps each accepted commitment's record (its root among
  others), packed in chunks of ``BATCH_CHUNK`` consecutive sequence numbers per device; a
  gateway or verifier reads a chunk from storage and finds a batch in it with
  :func:`chunk_record`.

Imports only ``primitives`` and ``native``: the runtime builds on it, and the edge programs
use it without importing any on-chain code.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from twinchain import native
from twinchain.native import fallback as native_fallback
from twinchain.native.merkle import merkle_proof, verify_merkle_proof
from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    U8,
    U32,
    U64,
    AccountId,
    CodecError,
    Enum,
    Record,
    Signature,
    Str,
    Type,
)
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair

__all__ = [
    "BAD_UNITS",
    "BATCH_CHUNK",
    "BATCH_RECORD",
    "CO2_EMITTED",
    "CURRENT",
    "DEFAULT_METRICS",
    "DEFAULT_PUBLIC",
    "DELTAS",
    "DOWNTIME",
    "ENERGY",
    "GAUGES",
    "GOOD_UNITS",
    "HUMIDITY",
    "MATERIAL_USED",
    "MAX_BATCHES",
    "MAX_FUTURE_DRIFT_MS",
    "MAX_METRIC_NAME",
    "MAX_PUBLIC",
    "MAX_READINGS",
    "MAX_UNIT",
    "POWER",
    "PRESSURE",
    "READING",
    "RUN_TIME",
    "SPINDLE_SPEED",
    "TEMPERATURE",
    "UNITS_PRODUCED",
    "VIBRATION",
    "Batch",
    "BatchRecord",
    "Commitment",
    "MetricInfo",
    "MetricKind",
    "MetricSummary",
    "PackedReadings",
    "Readings",
    "Summaries",
    "Triple",
    "batch_root",
    "check_batch",
    "chunk_record",
    "commitment_message",
    "packed_readings",
    "reading_leaf",
    "reading_proof",
    "sign_batch",
    "summarize",
    "survey_readings",
    "verify_device_signatures",
    "verify_reading",
]

# --------------------------------------------------------------------------- limits

# Per batch. Its readings never reach the chain (only its commitment: ~160 bytes and 46 per
# public metric), so a batch is as large as what a device samples between two cuts; the
# larger, the fewer chain bytes per reading. 147 KB of readings at most, delivered to the
# facility archive in one piece.
MAX_READINGS = 8192
MAX_BATCHES = 256  # per extrinsic
MAX_PUBLIC = 32  # public metric summaries per batch
MAX_METRIC_NAME = 32
MAX_UNIT = 16
MAX_FUTURE_DRIFT_MS = 60_000  # device clocks may run this far ahead of the block time

# --------------------------------------------------------------------------- metric registry

TEMPERATURE = 1
VIBRATION = 2
PRESSURE = 3
POWER = 4
ENERGY = 5
SPINDLE_SPEED = 6
UNITS_PRODUCED = 7
GOOD_UNITS = 8
BAD_UNITS = 9
MATERIAL_USED = 10
RUN_TIME = 11
DOWNTIME = 12
CO2_EMITTED = 13
HUMIDITY = 14
CURRENT = 15

# Well-known metrics every chain starts with (genesis may replace them):
# (id, name, unit, decimal scale, kind). A Delta metric's sum over a window is its total.
DEFAULT_METRICS: tuple[tuple[int, str, str, int, str], ...] = (
    (TEMPERATURE, "temperature", "degC", 3, "Gauge"),
    (VIBRATION, "vibration_rms", "mm/s", 3, "Gauge"),
    (PRESSURE, "pressure", "kPa", 3, "Gauge"),
    (POWER, "power", "W", 0, "Gauge"),
    (ENERGY, "energy", "Wh", 0, "Delta"),
    (SPINDLE_SPEED, "spindle_speed", "rpm", 0, "Gauge"),
    (UNITS_PRODUCED, "units_produced", "units", 0, "Delta"),
    (GOOD_UNITS, "good_units", "units", 0, "Delta"),
    (BAD_UNITS, "bad_units", "units", 0, "Delta"),
    (MATERIAL_USED, "material_used", "g", 0, "Delta"),
    (RUN_TIME, "run_time", "s", 0, "Delta"),
    (DOWNTIME, "downtime", "s", 0, "Delta"),
    (CO2_EMITTED, "co2_emitted", "g", 0, "Delta"),
    (HUMIDITY, "humidity", "%RH", 2, "Gauge"),
    (CURRENT, "current", "A", 3, "Gauge"),
)
# The well-known metrics by kind, in id order: a gauge is sampled, a delta counts since the
# device's previous reading of it.
GAUGES: tuple[int, ...] = tuple(m[0] for m in DEFAULT_METRICS if m[4] == "Gauge")
DELTAS: tuple[int, ...] = tuple(m[0] for m in DEFAULT_METRICS if m[4] == "Delta")

# The disclosure policy a twin starts with: what a careful plant manager lets competitors
# see. Condition metrics (how the machine feels) are public, so that the consortium's
# benchmarks, maintenance and simulation can use them; what the plant makes, wastes and
# spends (units, scrap, material, energy, power, current, run and down time, CO2) is
# private. A metric not registered here (one a chain adds) starts private.
DEFAULT_PUBLIC: frozenset[int] = frozenset({TEMPERATURE, VIBRATION, PRESSURE, HUMIDITY})

MetricKind = Enum("MetricKind", ("Gauge", "Delta"))


@dataclass
class MetricInfo(Record):
    """A registered metric: its name, unit, decimal scale and kind."""

    name: str
    unit: str
    scale: int
    kind: str
    FIELDS: ClassVar = {
        "name": Str(MAX_METRIC_NAME),
        "unit": Str(MAX_UNIT),
        "scale": U8,
        "kind": MetricKind,
    }


# --------------------------------------------------------------------------- readings

# A reading packed: its Merkle leaf and its wire form (one definition, shared with C).
READING = native_fallback.READING


class PackedReadings(Sequence[tuple[int, int, int]]):
    """A decoded batch's readings, kept as their wire bytes (``raw``: 18 per reading, the
    Merkle leaves back to back); immutable.

    Import never needs them as Python tuples: the batch's root, checks and aggregates are
    computed from ``raw`` (``native.readings_scan``), and its metrics and time span are
    surveyed once (``survey``, also what the weight and every pool revalidation read). Tuples
    are built only when something indexes or iterates it. Equal to a list or tuple of the same
    readings, as the decoded list it replaces was.
    """

    __slots__ = ("_items", "_survey", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._items: tuple[tuple[int, int, int], ...] | None = None
        self._survey: tuple[tuple[int, ...], int, int] | None = None

    def survey(self) -> tuple[tuple[int, ...], int, int]:
        """(distinct metrics in order of first appearance, first and last timestamp)."""
        if self._survey is None:
            self._survey = native.readings_survey(self.raw)
        return self._survey

    def _tuples(self) -> tuple[tuple[int, int, int], ...]:
        if self._items is None:
            self._items = tuple(READING.iter_unpack(self.raw))
        return self._items

    def __len__(self) -> int:
        return len(self.raw) // READING.size

    def __getitem__(self, i: Any) -> Any:
        return self._tuples()[i]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter(self._tuples())

    def __eq__(self, other: object) -> bool:
        if type(other) is PackedReadings:
            return self.raw == other.raw
        if isinstance(other, list | tuple):
            return len(other) == len(self) and all(
                tuple(r) == t for r, t in zip(other, self._tuples(), strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the list it stands for

    def __add__(self, other: object) -> list[tuple[int, int, int]]:
        if isinstance(other, list | tuple | PackedReadings):
            return [*self._tuples(), *other]
        return NotImplemented

    def __radd__(self, other: object) -> list[tuple[int, int, int]]:
        if isinstance(other, list | tuple):
            return [*other, *self._tuples()]
        return NotImplemented

    def __repr__(self) -> str:
        return f"PackedReadings({list(self._tuples())!r})"


class Readings(Type):
    """A batch's readings on the wire: one bin of consecutive 18-byte records, each the
    reading's Merkle leaf (:func:`reading_leaf`: big-endian u16 metric, u64 ms, i64 value).

    As a msgpack array of 3-item arrays every reading cost a Python-level type check per
    field in every decode and encode of the extrinsic (pool, author, each importer); packed,
    a batch decodes in one C call, and the bytes are 18 per reading instead of up to 24."""

    name = "Readings"

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def to_wire(self, value: Any) -> Any:
        if type(value) is PackedReadings:
            if len(value) > self.max_len:
                raise CodecError(f"Readings: expected a list of at most {self.max_len}")
            return value.raw
        if not isinstance(value, list | tuple) or len(value) > self.max_len:
            raise CodecError(f"Readings: expected a list of at most {self.max_len}")
        pack = READING.pack
        try:
            for r in value:
                if type(r) is not tuple and type(r) is not list:
                    raise CodecError(f"Readings: expected (metric, ts, value), got {r!r:.40}")
                if len(r) != 3 or type(r[0]) is not int or type(r[1]) is not int:
                    raise CodecError(f"Readings: expected (metric, ts, value), got {r!r:.40}")
                if type(r[2]) is not int:
                    raise CodecError(f"Readings: expected an integer value, got {r!r:.40}")
            return b"".join([pack(*r) for r in value])
        except struct.error as exc:
            raise CodecError(f"Readings: out of range: {exc}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % READING.size or len(wire) > self.max_len * 18:
            raise CodecError(f"Readings: expected a bin of at most {self.max_len} 18-byte records")
        return PackedReadings(wire)

    def describe(self) -> Any:
        return {"packed": ["u16", "u64", "i64"], "max": self.max_len, "byteorder": "big"}


def packed_readings(readings: Sequence[tuple[int, int, int]]) -> bytes:
    """``readings`` as their wire bytes (CodecError: not (u16, u64, i64) triples)."""
    if type(readings) is PackedReadings:
        return readings.raw
    return Readings(len(readings)).to_wire(readings)  # type: ignore[no-any-return]


def survey_readings(readings: Sequence[tuple[int, int, int]]) -> tuple[tuple[int, ...], int, int]:
    """(distinct metrics in order of first appearance, first and last timestamp); 0, 0 for
    none. Cached on a decoded batch's readings."""
    if type(readings) is PackedReadings:
        return readings.survey()
    return native.readings_survey(packed_readings(readings))  # type: ignore[no-any-return]


def reading_leaf(metric: int, ts: int, value: int) -> bytes:
    """The Merkle leaf of one reading: 18 bytes, big-endian u16 ‖ u64 ‖ i64."""
    return READING.pack(metric, ts, value)


# --------------------------------------------------------------------------- summaries

# One public metric's summary of one batch: metric, count, min, max, sum, the latest
# reading's timestamp and value. On the wire (see :class:`Summaries`) they are msgpack
# integers, so each takes the bytes its value needs: ~18 bytes a summary where a fixed
# record took 46, which is most of a commitment's size after its signature and root.
_U16_MAX, _U32_MAX, _U64_MAX = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_SUMMARY_FIELDS = 7


class MetricSummary(NamedTuple):
    """What a batch makes public of one metric: exactly what the chain's window aggregates
    and the pallets built on them need, never a single reading. ``last`` is the value of the
    reading with the latest timestamp (the later one in the batch on a tie)."""

    metric: int
    count: int
    min: int
    max: int
    sum: int
    last_ts: int
    last: int


def _summary_ok(m: MetricSummary) -> bool:
    return (
        all(type(v) is int for v in m)
        and 0 <= m.metric <= _U16_MAX
        and 1 <= m.count <= _U32_MAX
        and _I64_MIN <= m.min <= m.max <= _I64_MAX
        and _I64_MIN <= m.sum <= _I64_MAX
        and _I64_MIN <= m.last <= _I64_MAX
        and 0 <= m.last_ts <= _U64_MAX
    )


class Summaries(Type):
    """A batch's public summaries on the wire, in strictly ascending metric order, at most
    ``MAX_PUBLIC``; decoded, a tuple of :class:`MetricSummary`.

    The wire is one flat list of integers: ``[]`` for none, else the latest ``last_ts`` of
    them (``base``) followed by ``metric, count, min, max, sum, base - last_ts, last`` per
    summary. Timestamps are the one field always 8 bytes wide, so they go relative to a base
    once per batch. What the device signs is this list's canonical encoding
    (:func:`commitment_message`)."""

    name = "Summaries"

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, tuple | list) or len(value) > MAX_PUBLIC:
            raise CodecError(f"Summaries: expected at most {MAX_PUBLIC} metric summaries")
        if not value:
            return []
        previous = -1
        for m in value:
            if not isinstance(m, MetricSummary) or not _summary_ok(m):
                raise CodecError(f"Summaries: MetricSummary out of range: {m!r:.60}")
            if m.metric <= previous:
                raise CodecError(f"Summaries: metrics out of order: {m!r:.60}")
            previous = m.metric
        base = max(m.last_ts for m in value)
        out = [base]
        for m in value:
            out += (m.metric, m.count, m.min, m.max, m.sum, base - m.last_ts, m.last)
        return out

    def from_wire(self, wire: Any) -> Any:
        if (
            type(wire) is not list
            or (wire and (len(wire) - 1) % _SUMMARY_FIELDS)
            or len(wire) > 1 + MAX_PUBLIC * _SUMMARY_FIELDS
        ):
            raise CodecError(
                f"Summaries: expected a list of a base and at most {MAX_PUBLIC} summaries"
            )
        if not wire:
            return ()
        base = wire[0]
        if type(base) is not int or not 0 <= base <= _U64_MAX:
            raise CodecError("Summaries: the base timestamp must be a u64")
        out = []
        previous = -1
        for i in range(1, len(wire), _SUMMARY_FIELDS):
            metric, count, lo, hi, total, back, last = wire[i : i + _SUMMARY_FIELDS]
            if type(back) is not int or back < 0:
                raise CodecError("Summaries: a summary's timestamp must not follow the base")
            m = MetricSummary(metric, count, lo, hi, total, base - back, last)
            if not _summary_ok(m) or m.metric <= previous:
                raise CodecError(f"Summaries: malformed or out of order: {m!r:.60}")
            previous = m.metric
            out.append(m)
        if out and max(m.last_ts for m in out) != base:
            # One encoding per value: the base is the latest timestamp, never an earlier one.
            raise CodecError("Summaries: the base must be the latest summary timestamp")
        return tuple(out)

    def describe(self) -> Any:
        # "based": flat records after one base; the "relative" field is base minus it.
        return {
            "based": ["u16 metric", "u32 count", "i64 min", "i64 max", "i64 sum",
                      "u64 last_ts", "i64 last"],
            "relative": "last_ts",
            "max": MAX_PUBLIC,
        }  # fmt: skip


SUMMARIES = Summaries()


def summarize(
    readings: Sequence[tuple[int, int, int]], public: Collection[int]
) -> tuple[MetricSummary, ...]:
    """The summaries of the ``public`` metrics present in ``readings``, in metric order
    (CodecError: a sum beyond i64: such a batch must be cut smaller)."""
    acc: dict[int, list[int]] = {}  # metric -> [count, min, max, sum, last_ts, last]
    raw = packed_readings(readings)
    for m, ts, v in READING.iter_unpack(raw):
        if m not in public:
            continue
        a = acc.get(m)
        if a is None:
            acc[m] = [1, v, v, v, ts, v]
            continue
        a[0] += 1
        if v < a[1]:
            a[1] = v
        elif v > a[2]:
            a[2] = v
        a[3] += v
        if ts >= a[4]:
            a[4], a[5] = ts, v
    out = []
    for m in sorted(acc):
        count, lo, hi, total, last_ts, last = acc[m]
        if not _I64_MIN <= total <= _I64_MAX:
            raise CodecError(f"summarize: the sum of metric {m} overflows i64; cut smaller batches")
        out.append(MetricSummary(m, count, lo, hi, total, last_ts, last))
    return tuple(out)


# --------------------------------------------------------------------------- batches


def batch_root(readings: Sequence[tuple[int, int, int]]) -> bytes:
    """The Merkle root over the readings' leaves (:func:`reading_leaf`), in order."""
    return native.merkle_root_packed(packed_readings(readings), READING.size)  # type: ignore[no-any-return]


def commitment_message(
    genesis_hash: bytes,
    device: bytes,
    twin: int,
    seq: int,
    count: int,
    first_ts: int,
    last_ts: int,
    root: bytes,
    public: Sequence[MetricSummary],
) -> bytes:
    """The 32-byte digest a device signs: bound to the chain, the device, its twin and the
    sequence number (no replay on another chain, twin or position), and covering the count,
    time span, Merkle root and public summaries (nothing the chain sees can be altered)."""
    payload = codec.encode(
        [
            b"telemetry-commitment",
            genesis_hash,
            device,
            twin,
            seq,
            count,
            first_ts,
            last_ts,
            root,
            SUMMARIES.to_wire(tuple(public)),
        ]
    )
    return hash_for(Domain.SIGNING, payload)


@dataclass
class Commitment(Record):
    """What the chain receives of a device batch: everything but the readings, signed by the
    device (see :func:`commitment_message`)."""

    device: bytes
    seq: int
    count: int
    first_ts: int
    last_ts: int
    root: bytes
    public: tuple[MetricSummary, ...]
    signature: bytes
    FIELDS: ClassVar = {
        "device": AccountId,
        "seq": U64,
        "count": U32,
        "first_ts": U64,
        "last_ts": U64,
        "root": H256,
        "public": SUMMARIES,
        "signature": Signature,
    }

    def message(self, genesis_hash: bytes, twin: int) -> bytes:
        """The digest the device signed, for a batch of ``twin`` on the chain ``genesis_hash``."""
        return commitment_message(
            genesis_hash, self.device, twin, self.seq, self.count, self.first_ts,
            self.last_ts, self.root, self.public,
        )  # fmt: skip


@dataclass
class Batch(Record):
    """Readings of one device with the summaries it made public, signed by the device key
    over the batch's :class:`Commitment`. Travels only from the device to its owner's
    facility archive; the chain gets :meth:`commitment`."""

    device: bytes
    seq: int
    readings: Sequence[tuple[int, int, int]]  # PackedReadings once signed or decoded
    public: tuple[MetricSummary, ...]
    signature: bytes
    FIELDS: ClassVar = {
        "device": AccountId,
        "seq": U64,
        "readings": Readings(MAX_READINGS),
        "public": SUMMARIES,
        "signature": Signature,
    }

    def commitment(self) -> Commitment:
        """The batch without its readings: count, time span and Merkle root computed from
        them (CodecError: no readings)."""
        if not len(self.readings):
            raise CodecError("a batch without readings has no commitment")
        _, first_ts, last_ts = survey_readings(self.readings)
        return Commitment(
            self.device, self.seq, len(self.readings), first_ts, last_ts,
            batch_root(self.readings), tuple(self.public), self.signature,
        )  # fmt: skip


def sign_batch(
    device: Keypair,
    genesis_hash: bytes,
    twin: int,
    seq: int,
    readings: Sequence[tuple[int, int, int]],
    public: Collection[int] = (),
) -> Batch:
    """Build and sign a batch at the source (the device's side of the protocol), summarizing
    the ``public`` metrics (the twin's disclosure policy).

    The readings are packed once: the root hashes those bytes and the batch keeps them
    (``PackedReadings``), so encoding it packs nothing again (CodecError: not (u16, u64,
    i64) triples, none, or more than MAX_READINGS)."""
    rs = PackedReadings(Readings(MAX_READINGS).to_wire([tuple(r) for r in readings]))
    if not len(rs):
        raise CodecError("a batch needs at least one reading")
    summaries = summarize(rs, public)
    _, first_ts, last_ts = rs.survey()
    root = batch_root(rs)
    msg = commitment_message(
        genesis_hash, device.public, twin, seq, len(rs), first_ts, last_ts, root, summaries
    )
    return Batch(device.public, seq, rs, summaries, device.sign(msg))


def check_batch(batch: Batch, record: BatchRecord) -> str | None:
    """Whether a delivered batch is the one the chain accepted (``record``, its finalized
    batch record): None if its readings give the record's root, count and time span and its
    summaries are what its readings give, else why not. A batch that passes is exactly what
    the device signed: the chain checked that signature over these values."""
    if not len(batch.readings):
        return "no readings"
    c = batch.commitment()
    if c.root != record.root:
        return "the readings do not give the committed Merkle root"
    if c.count != record.count or (c.first_ts, c.last_ts) != (record.first_ts, record.last_ts):
        return "count or time span differ from the commitment"
    try:
        again = summarize(batch.readings, {m.metric for m in batch.public})
    except CodecError as exc:
        return str(exc)
    if again != tuple(batch.public):
        return "the public summaries are not those of the readings"
    return None


Triple = tuple[bytes, bytes, bytes]  # (device key, message, signature)


def verify_device_signatures(triples: Sequence[Triple]) -> list[bool]:
    """Verify (device key, :func:`commitment_message`, signature) triples in ONE native batch
    verification; one verdict per triple, in order."""
    return native.verify_batch(  # type: ignore[no-any-return]
        [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]
    )


# --------------------------------------------------------------------------- reading proofs


def reading_proof(readings: Sequence[tuple[int, int, int]], index: int) -> list[bytes]:
    """Merkle proof of reading ``index`` of a batch (selective disclosure)."""
    return merkle_proof([READING.pack(*r) for r in readings], index)


def verify_reading(
    root: bytes,
    reading: tuple[int, int, int],
    index: int,
    count: int,
    proof: Sequence[bytes],
) -> bool:
    """Whether ``reading`` is item ``index`` of the ``count``-reading batch with ``root``."""
    try:
        leaf = READING.pack(*reading)
    except (struct.error, TypeError):
        return False
    return verify_merkle_proof(root, leaf, index, count, proof)


# --------------------------------------------------------------------------- batch records

# A device's batch records, packed, in chunks of this many consecutive sequence numbers.
BATCH_CHUNK = 16
# A packed batch record: seq, twin, root, count, first_ts, last_ts, gateway, block, flagged
# (BatchRecord's fields and widths, after the sequence number it is the record of).
BATCH_RECORD = struct.Struct(">QQ32sIQQ32sQI")


@dataclass
class BatchRecord(Record):
    """What the chain keeps of an accepted batch (the readings themselves are not kept)."""

    twin: int
    root: bytes
    count: int
    first_ts: int
    last_ts: int
    gateway: bytes
    block: int
    flagged: int
    FIELDS: ClassVar = {
        "twin": U64,
        "root": H256,
        "count": U32,
        "first_ts": U64,
        "last_ts": U64,
        "gateway": AccountId,
        "block": U64,
        "flagged": U32,
    }


def chunk_record(chunk: bytes, seq: int) -> BatchRecord | None:
    """The record of batch ``seq`` in a device's packed chunk (``BatchChunks``), if there."""
    for s, *fields in BATCH_RECORD.iter_unpack(chunk):
        if s == seq:
            return BatchRecord(*fields)
        if s > seq:
            break
    return None
