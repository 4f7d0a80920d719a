"""Equipment's records, rights, lifecycle states and bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from twinchain.primitives.codec import (
    H256,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Enum,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)
from twinchain.protocol.classdef import ClassDef

MAX_CLASS = 48
MAX_MODEL = 64
MAX_SERIAL = 64
MAX_METRICS = 32
MAX_DOCUMENTS = 32
MAX_DOC_KIND = 32
MAX_SERVICE_KIND = 32

# Delegated rights, a bit mask.
READ_TELEMETRY = 1
OPERATE = 2
SERVICE = 4
ALL_RIGHTS = READ_TELEMETRY | OPERATE | SERVICE

MICRO_DEGREES = 1_000_000

LIFECYCLE = ("Manufactured", "Commissioned", "Active", "Maintenance", "Decommissioned")
Lifecycle = Enum("Lifecycle", LIFECYCLE)
TRANSITIONS: dict[str, frozenset[str]] = {
    "Manufactured": frozenset({"Commissioned"}),
    "Commissioned": frozenset({"Active", "Decommissioned"}),
    "Active": frozenset({"Maintenance", "Decommissioned"}),
    "Maintenance": frozenset({"Active", "Decommissioned"}),
    "Decommissioned": frozenset(),
}
# Lifecycle states in which the equipment runs and may report telemetry.
OPERATIONAL = frozenset({"Commissioned", "Active", "Maintenance"})

PROVENANCE_KINDS = (
    "Minted",
    "Transferred",
    "Commissioned",
    "Activated",
    "MaintenanceStarted",
    "Decommissioned",
    "DocumentAdded",
    "WarrantySet",
    "Calibrated",
    "Serviced",
    "MultisigSet",
    "MultisigCleared",
)
ProvenanceKind = Enum("ProvenanceKind", PROVENANCE_KINDS)
# The provenance entry that records arriving in each lifecycle state.
ARRIVAL = {
    "Commissioned": "Commissioned",
    "Active": "Activated",
    "Maintenance": "MaintenanceStarted",
    "Decommissioned": "Decommissioned",
}

TwinId = U64
EquipmentClass = Str(MAX_CLASS)


@dataclass
class Envelope(Record):
    """Operating envelope of one metric (fixed-point in the metric's scale); ``max_step`` is
    the largest plausible change between two consecutive readings (0: unchecked)."""

    metric: int
    min: int
    max: int
    max_step: int
    FIELDS: ClassVar = {"metric": U16, "min": I64, "max": I64, "max_step": U64}


@dataclass
class Spec(Record):
    """Manufacturer specification: rated values and the operating envelope, per metric."""

    rated: list[tuple[int, int]]
    envelope: list[Envelope]
    FIELDS: ClassVar = {
        "rated": Vec(Tuple(U16, I64), MAX_METRICS),
        "envelope": Vec(Envelope.wire_type(), MAX_METRICS),
    }


@dataclass
class TwinInfo(Record):
    equipment_class: str
    model: str
    serial: str
    manufacturer: bytes
    owner: bytes
    lifecycle: str
    facility: int | None
    critical_multisig: bytes | None
    minted_at: int
    FIELDS: ClassVar = {
        "equipment_class": EquipmentClass,
        "model": Str(MAX_MODEL),
        "serial": Str(MAX_SERIAL),
        "manufacturer": AccountId,
        "owner": AccountId,
        "lifecycle": Lifecycle,
        "facility": Option(U32),
        "critical_multisig": Option(AccountId),
        "minted_at": U64,
    }


@dataclass
class Warranty(Record):
    provider: bytes
    starts: int
    ends: int
    terms: bytes
    FIELDS: ClassVar = {"provider": AccountId, "starts": U64, "ends": U64, "terms": H256}


@dataclass
class Location(Record):
    """Latest position in micro-degrees (WGS84), with when and by whom it was reported."""

    lat: int
    lon: int
    at: int
    by: bytes
    FIELDS: ClassVar = {"lat": I32, "lon": I32, "at": U64, "by": AccountId}


@dataclass
class AccessGrant(Record):
    rights: int
    expires: int
    granted_by: bytes
    FIELDS: ClassVar = {"rights": U8, "expires": U64, "granted_by": AccountId}


@dataclass
class Calibration(Record):
    issuer: bytes
    metric: int
    certificate: bytes
    issued: int
    valid_until: int
    passed: bool
    FIELDS: ClassVar = {
        "issuer": AccountId,
        "metric": U16,
        "certificate": H256,
        "issued": U64,
        "valid_until": U64,
        "passed": Bool,
    }


@dataclass
class ServiceRecord(Record):
    provider: bytes
    kind: str
    report: bytes
    cost: int
    at: int
    work_order: int | None
    FIELDS: ClassVar = {
        "provider": AccountId,
        "kind": Str(MAX_SERVICE_KIND),
        "report": H256,
        "cost": U128,
        "at": U64,
        "work_order": Option(U64),
    }


@dataclass
class ProvenanceEntry(Record):
    """One act in a twin's history: the owner and lifecycle state after it."""

    kind: str
    actor: bytes | None
    owner: bytes
    lifecycle: str
    block: int
    at: int
    reference: bytes
    FIELDS: ClassVar = {
        "kind": ProvenanceKind,
        "actor": Option(AccountId),
        "owner": AccountId,
        "lifecycle": Lifecycle,
        "block": U64,
        "at": U64,
        "reference": H256,
    }


Documents = Vec(Tuple(Str(MAX_DOC_KIND), H256), MAX_DOCUMENTS)


@dataclass
class ClassRecord(Record):
    """A registered equipment class: its definition (fixed-point; every metric bound to its
    chain id), the hash that names it (``classdef.class_hash``), who registered it (None:
    Root or genesis), its version (1, then one more per update) and the blocks involved."""

    definition: ClassDef
    hash: bytes
    registrant: bytes | None
    version: int
    registered_at: int
    updated_at: int
    FIELDS: ClassVar = {
        "definition": ClassDef.wire_type(),
        "hash": H256,
        "registrant": Option(AccountId),
        "version": U32,
        "registered_at": U64,
        "updated_at": U64,
    }
