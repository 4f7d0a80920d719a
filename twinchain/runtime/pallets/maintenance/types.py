"""Maintenance's records, enums and bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from twinchain.primitives.codec import (
    H256,
    I32,
    U8,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    Enum,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)
from twinchain.runtime.pallets.equipment.types import TwinId

BP = 10_000
DEFAULT_VERIFY_WINDOWS = 3
DEFAULT_DEADLINE_BLOCKS = 14_400  # four hours of 1 s blocks
MAX_MIN_WINDOWS = 16
MAX_OPEN_ORDERS = 4  # unfinished work orders per twin (bounds the window hook)
MAX_COMPLETIONS_PER_CLOSE = 1  # telemetry-verified orders completed by one window close
MAX_LINE_DOWNTIMES = 64  # scheduled windows per production line
MAX_EXPIRIES_PER_BLOCK = 64
MAX_DEADLINE_PUSH = 64  # blocks a deadline may move on because blocks are full
MAX_PARTS = 32
MAX_PART = 64
MAX_DOWNTIME_MS = 30 * 86_400_000
NO_FACILITY = 2**32 - 1  # line scope of twins without a facility
COUNTER_MAX = 255

AlertKind = Enum("AlertKind", ("Deviation", "Predicted"))
AlertStatus = Enum("AlertStatus", ("Open", "Cleared", "Dismissed", "Resolved"))
OrderKind = Enum("OrderKind", ("Corrective", "Preventive"))
Verification = Enum("Verification", ("Telemetry", "Inspector"))
ORDER_STATUSES = (
    "Created",
    "Assigned",
    "Scheduled",
    "InProgress",
    "Claimed",
    "Verified",
    "Expired",
    "Cancelled",
)
OrderStatus = Enum("OrderStatus", ORDER_STATUSES)
TERMINAL = frozenset({"Verified", "Expired", "Cancelled"})
LineKey = Tuple(U32, U32)  # (facility or NO_FACILITY, line)


@dataclass
class Threshold(Record):
    """Raise at ``|deviation| >= raise_bp``, clear at ``|deviation| <= clear_bp``, each after
    ``min_windows`` consecutive windows."""

    raise_bp: int
    clear_bp: int
    min_windows: int
    FIELDS: ClassVar = {"raise_bp": U32, "clear_bp": U32, "min_windows": U8}


@dataclass
class Alert(Record):
    twin: int
    kind: str
    metric: int | None
    deviation_bp: int
    probability_bp: int
    horizon_ms: int
    model: bytes | None
    evidence: bytes | None
    raised_by: bytes | None
    raised_at: int
    block: int
    status: str
    work_order: int | None
    FIELDS: ClassVar = {
        "twin": TwinId,
        "kind": AlertKind,
        "metric": Option(U16),
        "deviation_bp": I32,
        "probability_bp": U16,
        "horizon_ms": U64,
        "model": Option(H256),
        "evidence": Option(H256),
        "raised_by": Option(AccountId),
        "raised_at": U64,
        "block": U64,
        "status": AlertStatus,
        "work_order": Option(U64),
    }


@dataclass
class Part(Record):
    """A line of the parts replaced: part number, quantity and the line's total cost."""

    part: str
    quantity: int
    cost: int
    FIELDS: ClassVar = {"part": Str(MAX_PART), "quantity": U32, "cost": U128}


@dataclass
class WorkOrder(Record):
    twin: int
    payer: bytes
    alert: int | None
    kind: str
    description: bytes
    payment: int
    verification: str
    provider: bytes | None
    status: str
    window: tuple[int, int] | None
    line: tuple[int, int] | None
    created_at: int
    started_at: int
    claimed_at: int
    completed_at: int
    deadline: int
    report: bytes | None
    parts: list[Part]
    ok_windows: int
    verified_by: bytes | None
    FIELDS: ClassVar = {
        "twin": TwinId,
        "payer": AccountId,
        "alert": Option(U64),
        "kind": OrderKind,
        "description": H256,
        "payment": U128,
        "verification": Verification,
        "provider": Option(AccountId),
        "status": OrderStatus,
        "window": Option(Tuple(U64, U64)),
        "line": Option(LineKey),
        "created_at": U64,
        "started_at": U64,
        "claimed_at": U64,
        "completed_at": U64,
        "deadline": U64,
        "report": Option(H256),
        "parts": Vec(Part.wire_type(), MAX_PARTS),
        "ok_windows": U8,
        "verified_by": Option(AccountId),
    }


@dataclass
class PartRecord(Record):
    part: str
    quantity: int
    cost: int
    order: int
    at: int
    FIELDS: ClassVar = {
        "part": Str(MAX_PART),
        "quantity": U32,
        "cost": U128,
        "order": U64,
        "at": U64,
    }


@dataclass
class Costs(Record):
    orders: int
    service: int
    parts: int
    FIELDS: ClassVar = {"orders": U32, "service": U128, "parts": U128}


@dataclass
class ProviderStats(Record):
    completed: int
    expired: int
    earned: int
    FIELDS: ClassVar = {"completed": U32, "expired": U32, "earned": U128}


# --------------------------------------------------------------------------- spec 5

MAX_MODE = 32  # a failure mode's name (classdef.MAX_MODE_NAME)
ANOMALY = "anomaly"  # the mode of a prognosis that names no failure mode of the class
MAX_COMMENT = 256  # bytes of one comment on an alert
MAX_COMMENTS = 32  # comments on one alert
# What the alarm lifecycle shows of an alert (derived, not stored): open and not yet
# acknowledged, open and acknowledged, or closed (cleared by its telemetry, dismissed, or
# resolved by a verified work order).
ALERT_STATES = ("ActiveUnacknowledged", "Acknowledged", "Cleared")


@dataclass
class Prognosis(Record):
    """What a predictive worker estimates for a failure mode of a twin: the probability of
    failing within ``horizon_ms`` (basis points) and the remaining useful life's P10/P50/P90
    (ms from ``at``)."""

    mode: str
    probability_bp: int
    horizon_ms: int
    rul_p10_ms: int
    rul_p50_ms: int
    rul_p90_ms: int
    at: int
    FIELDS: ClassVar = {
        "mode": Str(MAX_MODE),
        "probability_bp": U16,
        "horizon_ms": U64,
        "rul_p10_ms": U64,
        "rul_p50_ms": U64,
        "rul_p90_ms": U64,
        "at": U64,
    }


@dataclass
class AlertAction(Record):
    """Who acknowledged (or assigned) an alert, and when (block time, ms)."""

    by: bytes
    at: int
    FIELDS: ClassVar = {"by": AccountId, "at": U64}


@dataclass
class Assignment(Record):
    """An alert's assignee, who assigned it and when (ms)."""

    assignee: bytes
    by: bytes
    at: int
    FIELDS: ClassVar = {"assignee": AccountId, "by": AccountId, "at": U64}


@dataclass
class Comment(Record):
    """A comment on an alert: its author, when (ms) and the text."""

    by: bytes
    at: int
    text: str
    FIELDS: ClassVar = {"by": AccountId, "at": U64, "text": Str(MAX_COMMENT)}
