"""Benchmark's records, the packed peer list and the bounds."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.primitives.codec import (
    I32,
    I64,
    U16,
    U32,
    U64,
    Bool,
    CodecError,
    Record,
    Str,
    Tuple,
    Type,
    Vec,
)
from twinchain.runtime.pallets.equipment.types import EquipmentClass

BP = 10_000
DEFAULT_BASELINE_WINDOWS = 5
MAX_BASELINE_WINDOWS = 1_000
MAX_RULES = 4
MAX_PEERS = 256
MAX_STANDARD_NAME = 64
RING = 8
EWMA_ALPHA_BP = 2_000  # weight of the newest window in the EWMA
DRIFT_CLAMP_BP = 1_000_000
MIN_ADJ_BP, MAX_ADJ_BP = -9_000, 40_000


@dataclass
class MetricTarget(Record):
    """Expected value of a metric for a class and the tolerance around it (metric scale)."""

    expected: int
    tolerance: int
    FIELDS: ClassVar = {"expected": I64, "tolerance": U64}


@dataclass
class ConditionRule(Record):
    """Adds ``slope_bp * (x - reference) / unit`` bp to a target, ``x`` being the driver's
    window value (``relative``: in bp of the twin's rated value of the driver)."""

    driver: int
    relative: bool
    reference: int
    slope_bp: int
    unit: int
    FIELDS: ClassVar = {
        "driver": U16,
        "relative": Bool,
        "reference": I64,
        "slope_bp": I32,
        "unit": U64,
    }


@dataclass
class Standard(Record):
    name: str
    min: int
    max: int
    FIELDS: ClassVar = {"name": Str(MAX_STANDARD_NAME), "min": I64, "max": I64}


@dataclass
class Baseline(Record):
    mean: int
    windows: int
    learned_at: int
    FIELDS: ClassVar = {"mean": I64, "windows": U32, "learned_at": U64}


@dataclass
class Drift(Record):
    """Degradation of one metric against its baseline, in basis points."""

    last_bp: int
    ewma_bp: int
    trend_bp: int
    recent: list[int]
    windows: int
    last_value: int
    FIELDS: ClassVar = {
        "last_bp": I32,
        "ewma_bp": I32,
        "trend_bp": I32,
        "recent": Vec(I32, RING),
        "windows": U32,
        "last_value": I64,
    }


@dataclass
class TwinBench(Record):
    health_bp: int
    windows: int
    last_start: int
    violations: int
    FIELDS: ClassVar = {"health_bp": U16, "windows": U64, "last_start": U64, "violations": U32}


Key = Tuple(EquipmentClass, U16)

_PEER = struct.Struct(">HQ")


class _PeerList(Type):
    """``[(health u16, twin u64)]`` (at most MAX_PEERS) packed into one binary string of
    10-byte big-endian records. Every window close of a ranked twin reads and writes its
    class's list: as a msgpack array of pairs, decoding, checking and re-encoding 256 of
    them cost several milliseconds of the close; as one bin they cost microseconds."""

    name = "PeerList"

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, list) or len(value) > MAX_PEERS:
            raise CodecError(f"PeerList: expected a list of at most {MAX_PEERS} pairs")
        try:
            return b"".join(_PEER.pack(h, t) for h, t in value)
        except (struct.error, TypeError, ValueError) as exc:
            raise CodecError(f"PeerList: {exc}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % _PEER.size or len(wire) > MAX_PEERS * _PEER.size:
            raise CodecError("PeerList: expected a bin of at most 256 10-byte records")
        return list(_PEER.iter_unpack(wire))

    def describe(self) -> Any:
        return {"packed": ["u16", "u64"], "max": MAX_PEERS, "byteorder": "big"}


PeerList = _PeerList()
