"""Equipment: every physical asset as a non-fungible twin token.

A manufacturer mints a twin with its class, model, serial number and manufacturer
specification (rated values and the operating envelope the telemetry pallet checks readings
against). The twin has exactly one owner at a time; transfers, lifecycle changes,
calibrations, service records and the other acts on it are appended to a hash-chained
provenance history that nothing rewrites. Owners delegate rights (read telemetry, operate,
service) to other accounts until an expiry. Certified auditors issue calibration
certificates; the manufacturer sets warranty terms; owners or operators update the location
of mobile equipment.

Lifecycle: Manufactured → Commissioned → Active ⇄ Maintenance, and Commissioned, Active or
Maintenance → Decommissioned (see ``TRANSITIONS``); nothing leaves Decommissioned.

Critical equipment: the owner may configure an M-of-N multisig account (the Multisig
pallet's ``multi_account_id``); from then on transfer and decommission must come from that
account (an ``as_multi`` of the signatories), and only it may change or clear the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

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
from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
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
    ensure_signed,
)
from twinchain.runtime.pallets.facility import chain_entry
from twinchain.runtime.pallets.multisig import MAX_SIGNATORIES, multi_account_id
from twinchain.runtime.pallets.roles import (
    CERTIFIED_AUDITOR,
    EQUIPMENT_MANUFACTURER,
    EQUIPMENT_OWNER,
    SERVICE_PROVIDER,
)

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

W_MINT = 120_000
W_SMALL = 40_000
W_TRANSFER = 80_000
W_MULTISIG = 60_000

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


class Equipment(Pallet):
    name = "Equipment"

    NextTwinId = StorageValue(TwinId, 0, doc="Id the next minted twin gets.")
    Twins = StorageMap(TwinId, TwinInfo.wire_type(), doc="Twin tokens.")
    Specs = StorageMap(TwinId, Spec.wire_type(), doc="Manufacturer specification per twin.")
    OwnedBy = StorageDoubleMap(AccountId, TwinId, Bool, doc="Twins by owner (an index).")
    ByClass = StorageDoubleMap(EquipmentClass, TwinId, Bool, doc="Twins by class (an index).")
    BySerial = StorageMap(
        Tuple(AccountId, Str(MAX_SERIAL)), TwinId, doc="Twin of (manufacturer, serial)."
    )
    Documents = StorageMap(TwinId, Documents, doc="Document hashes (manuals, drawings).")
    Warranties = StorageMap(TwinId, Warranty.wire_type(), doc="Warranty terms.")
    Locations = StorageMap(TwinId, Location.wire_type(), doc="Latest known location.")
    Access = StorageDoubleMap(
        TwinId, AccountId, AccessGrant.wire_type(), doc="Delegated rights with expiry."
    )
    Calibrations = StorageDoubleMap(
        TwinId, U32, Calibration.wire_type(), doc="Calibration certificates."
    )
    CalibrationCount = StorageMap(TwinId, U32, 0, doc="Calibrations per twin.")
    ServiceHistory = StorageDoubleMap(
        TwinId, U32, ServiceRecord.wire_type(), doc="Maintenance and service records."
    )
    ServiceCount = StorageMap(TwinId, U32, 0, doc="Service records per twin.")
    Provenance = StorageDoubleMap(
        TwinId, U32, ProvenanceEntry.wire_type(), doc="Append-only history per twin."
    )
    ProvenanceLen = StorageMap(TwinId, U32, 0, doc="Entries in each twin's history.")
    ProvenanceHead = StorageMap(TwinId, H256, ZERO_HASH, doc="Hash chain head of each history.")

    class Event(PalletEvents):
        Minted = (
            ("twin", TwinId),
            ("manufacturer", AccountId),
            ("owner", AccountId),
            ("class", EquipmentClass),
        )
        Transferred = (("twin", TwinId), ("from", AccountId), ("to", AccountId))
        LifecycleChanged = (("twin", TwinId), ("from", Lifecycle), ("to", Lifecycle))
        AccessGranted = (("twin", TwinId), ("who", AccountId), ("rights", U8), ("expires", U64))
        AccessRevoked = (("twin", TwinId), ("who", AccountId))
        WarrantySet = (("twin", TwinId), ("starts", U64), ("ends", U64))
        Calibrated = (("twin", TwinId), ("index", U32), ("metric", U16), ("passed", Bool))
        Relocated = (("twin", TwinId), ("lat", I32), ("lon", I32))
        DocumentAdded = (("twin", TwinId), ("kind", Str(MAX_DOC_KIND)), ("hash", H256))
        ServiceRecorded = (("twin", TwinId), ("index", U32), ("provider", AccountId))
        CriticalMultisigSet = (("twin", TwinId), ("multisig", Option(AccountId)))

    class Error(PalletErrors):
        NotManufacturer = "the sender is not an EquipmentManufacturer (or not this twin's)"
        NotOwner = "the sender is not the twin's owner"
        NoPermission = "the sender is neither the owner nor holds the delegated right"
        NotAuditor = "the sender does not hold the CertifiedAuditor role"
        NotServiceProvider = "the sender does not hold the ServiceProvider role"
        MultisigRequired = "this critical action must come from the configured multisig"
        ConflictOfInterest = "an auditor cannot calibrate equipment it owns"
        UnknownTwin = "no twin with this id"
        UnknownFacility = "no facility with this id"
        FacilityNotVerified = "equipment is commissioned only at a verified facility"
        InvalidTransition = "this lifecycle transition is not allowed"
        TwinDecommissioned = "the twin is decommissioned"
        InvalidSpec = "the specification repeats a metric or has min > max"
        DuplicateSerial = "this manufacturer already minted a twin with this serial"
        EmptyField = "class, model and serial must not be empty"
        RecipientNotOwner = "the recipient does not hold the EquipmentOwner role"
        TransferToSelf = "the recipient already owns the twin"
        InvalidRights = "rights must be a non-empty subset of read/operate/service"
        InvalidExpiry = "the expiry is not in the future"
        NoAccess = "the account has no delegated access to this twin"
        InvalidValidity = "the validity window is empty or already over"
        UnknownMetric = "the specification has no such metric"
        TooManyDocuments = "the twin already has the maximum number of documents"
        InvalidLocation = "latitude/longitude out of range"
        InvalidMultisig = "signatories must be 2..100 sorted unique accounts, threshold 2..N"
        NoMultisig = "no multisig is configured for this twin"
        Overflow = "too many twins or records"

    # ------------------------------------------------------------------ helpers
    def _get(self, twin: int) -> TwinInfo:
        t: TwinInfo | None = self.Twins.get(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        return t

    def _live(self, twin: int) -> TwinInfo:
        t = self._get(twin)
        if t.lifecycle == "Decommissioned":
            raise self.Error.TwinDecommissioned()
        return t

    def _ensure_owner(self, who: bytes, twin: int) -> TwinInfo:
        t = self._live(twin)
        if t.owner != who:
            raise self.Error.NotOwner()
        return t

    def _ensure_right(self, who: bytes, twin: int, right: int) -> TwinInfo:
        t = self._live(twin)
        if not self.has_right(twin, who, right, t):
            raise self.Error.NoPermission()
        return t

    def _ensure_critical(self, who: bytes, twin: int) -> TwinInfo:
        """Owner, or the configured multisig account when there is one."""
        t = self._live(twin)
        if t.critical_multisig is not None:
            if who == t.critical_multisig:
                return t
            raise self.Error.MultisigRequired() if who == t.owner else self.Error.NotOwner()
        if t.owner != who:
            raise self.Error.NotOwner()
        return t

    def _ensure_recipient(self, who: bytes, manufacturer: bytes) -> None:
        if who != manufacturer and not self.runtime.roles.has(who, EQUIPMENT_OWNER):
            raise self.Error.RecipientNotOwner()

    def _record(
        self, twin: int, t: TwinInfo, kind: str, actor: bytes | None, ref: bytes = ZERO_HASH
    ) -> None:
        n = self.ProvenanceLen.get(twin)
        entry = ProvenanceEntry(
            kind, actor, t.owner, t.lifecycle, self.runtime.block.number, self._now(), ref
        )
        self.Provenance.insert(twin, n, entry)
        self.ProvenanceLen.insert(twin, n + 1)
        self.ProvenanceHead.insert(twin, chain_entry(self.ProvenanceHead.get(twin), entry))

    def _transition(self, twin: int, t: TwinInfo, to: str, actor: bytes | None) -> None:
        if to not in TRANSITIONS[t.lifecycle]:
            raise self.Error.InvalidTransition(f"{t.lifecycle} -> {to}")
        old = t.lifecycle
        t.lifecycle = to
        self.Twins.insert(twin, t)
        self._record(twin, t, ARRIVAL[to], actor)
        self.deposit(self.Event.LifecycleChanged(twin, old, to))

    def _check_spec(self, spec: Spec) -> None:
        env = [e.metric for e in spec.envelope]
        rated = [m for m, _ in spec.rated]
        if (
            len(set(env)) != len(env)
            or len(set(rated)) != len(rated)
            or any(e.min > e.max for e in spec.envelope)
        ):
            raise self.Error.InvalidSpec()

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=lambda rt, cls, model, serial, spec, owner: (
            W_MINT + 2_000 * (len(spec.rated) + len(spec.envelope))
        ),
        origin=SIGNED,
        args=(
            ("equipment_class", EquipmentClass),
            ("model", Str(MAX_MODEL)),
            ("serial", Str(MAX_SERIAL)),
            ("spec", Spec.wire_type()),
            ("owner", AccountId),
        ),
    )
    def mint(
        self,
        origin: Origin,
        equipment_class: str,
        model: str,
        serial: str,
        spec: Spec,
        owner: bytes,
    ) -> None:
        """Mint a twin (EquipmentManufacturer) owned by ``owner``: the manufacturer itself or
        an account holding the EquipmentOwner role."""
        who = ensure_signed(origin)
        if not self.runtime.roles.has(who, EQUIPMENT_MANUFACTURER):
            raise self.Error.NotManufacturer()
        self.do_mint(who, equipment_class, model, serial, spec, owner)

    @call(1, weight=W_TRANSFER, origin=SIGNED, args=(("twin", TwinId), ("to", AccountId)))
    def transfer(self, origin: Origin, twin: int, to: bytes) -> None:
        """Transfer ownership (the owner, or the multisig of critical equipment). Delegated
        access and the multisig setting end with the old owner."""
        who = ensure_signed(origin)
        t = self._ensure_critical(who, twin)
        if to == t.owner:
            raise self.Error.TransferToSelf()
        self._ensure_recipient(to, t.manufacturer)
        old = t.owner
        self.OwnedBy.remove(old, twin)
        self.OwnedBy.insert(to, twin, True)
        self.Access.remove_prefix(twin)
        t.owner = to
        t.critical_multisig = None
        self.Twins.insert(twin, t)
        self._record(twin, t, "Transferred", who)
        self.deposit(self.Event.Transferred(twin, old, to))

    @call(2, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("facility", U32)))
    def commission(self, origin: Origin, twin: int, facility: int) -> None:
        """Install the twin at a verified facility (the owner): Manufactured → Commissioned."""
        who = ensure_signed(origin)
        t = self._ensure_owner(who, twin)
        fac = self.runtime.facility
        if fac.facility(facility) is None:
            raise self.Error.UnknownFacility()
        if not fac.is_verified(facility):
            raise self.Error.FacilityNotVerified()
        if "Commissioned" not in TRANSITIONS[t.lifecycle]:
            raise self.Error.InvalidTransition(f"{t.lifecycle} -> Commissioned")
        t.facility = facility
        self._transition(twin, t, "Commissioned", who)

    @call(3, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def activate(self, origin: Origin, twin: int) -> None:
        """Put into service, or back from maintenance (the owner or an OPERATE delegate)."""
        who = ensure_signed(origin)
        t = self._ensure_right(who, twin, OPERATE)
        self._transition(twin, t, "Active", who)

    @call(4, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def begin_maintenance(self, origin: Origin, twin: int) -> None:
        """Take an active twin into maintenance (owner, OPERATE or SERVICE delegate)."""
        who = ensure_signed(origin)
        t = self._ensure_right(who, twin, OPERATE | SERVICE)
        self._transition(twin, t, "Maintenance", who)

    @call(5, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def decommission(self, origin: Origin, twin: int) -> None:
        """Retire the twin for good (the owner, or the multisig of critical equipment)."""
        who = ensure_signed(origin)
        t = self._ensure_critical(who, twin)
        self._transition(twin, t, "Decommissioned", who)
        self.Access.remove_prefix(twin)

    @call(
        6,
        weight=W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("who", AccountId), ("rights", U8), ("expires", U64)),
    )
    def grant_access(
        self, origin: Origin, twin: int, who: bytes, rights: int, expires: int
    ) -> None:
        """Delegate rights (bit mask: 1 read telemetry, 2 operate, 4 service) until ``expires``
        (the owner); replaces an earlier grant to the same account."""
        sender = ensure_signed(origin)
        t = self._ensure_owner(sender, twin)
        if rights == 0 or rights & ~ALL_RIGHTS or who == t.owner:
            raise self.Error.InvalidRights()
        if expires <= self._now():
            raise self.Error.InvalidExpiry()
        self.Access.insert(twin, who, AccessGrant(rights, expires, sender))
        self.deposit(self.Event.AccessGranted(twin, who, rights, expires))

    @call(7, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("who", AccountId)))
    def revoke_access(self, origin: Origin, twin: int, who: bytes) -> None:
        """End a delegation (the owner)."""
        sender = ensure_signed(origin)
        self._ensure_owner(sender, twin)
        if not self.Access.contains(twin, who):
            raise self.Error.NoAccess()
        self.Access.remove(twin, who)
        self.deposit(self.Event.AccessRevoked(twin, who))

    @call(
        8,
        weight=W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("starts", U64), ("ends", U64), ("terms", H256)),
    )
    def set_warranty(self, origin: Origin, twin: int, starts: int, ends: int, terms: bytes) -> None:
        """Set the warranty terms (the twin's manufacturer)."""
        who = ensure_signed(origin)
        t = self._live(twin)
        if t.manufacturer != who or not self.runtime.roles.has(who, EQUIPMENT_MANUFACTURER):
            raise self.Error.NotManufacturer()
        if ends <= starts or ends <= self._now():
            raise self.Error.InvalidValidity()
        self.Warranties.insert(twin, Warranty(who, starts, ends, terms))
        self._record(twin, t, "WarrantySet", who, terms)
        self.deposit(self.Event.WarrantySet(twin, starts, ends))

    @call(
        9,
        weight=W_SMALL,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("metric", U16),
            ("certificate", H256),
            ("valid_until", U64),
            ("passed", Bool),
        ),
    )
    def issue_calibration(
        self,
        origin: Origin,
        twin: int,
        metric: int,
        certificate: bytes,
        valid_until: int,
        passed: bool,
    ) -> None:
        """Certify the calibration of one measured metric (CertifiedAuditor)."""
        who = ensure_signed(origin)
        if not self.runtime.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotAuditor()
        t = self._live(twin)
        if t.owner == who:
            raise self.Error.ConflictOfInterest()
        spec: Spec = self.Specs.get(twin)
        if metric not in {e.metric for e in spec.envelope} | {m for m, _ in spec.rated}:
            raise self.Error.UnknownMetric()
        now = self._now()
        if valid_until <= now:
            raise self.Error.InvalidValidity()
        n = self.CalibrationCount.get(twin)
        if n >= U32.max:
            raise self.Error.Overflow()
        self.Calibrations.insert(
            twin, n, Calibration(who, metric, certificate, now, valid_until, passed)
        )
        self.CalibrationCount.insert(twin, n + 1)
        self._record(twin, t, "Calibrated", who, certificate)
        self.deposit(self.Event.Calibrated(twin, n, metric, passed))

    @call(10, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("lat", I32), ("lon", I32)))
    def update_location(self, origin: Origin, twin: int, lat: int, lon: int) -> None:
        """Report the position of mobile equipment (the owner or an OPERATE delegate)."""
        who = ensure_signed(origin)
        self._ensure_right(who, twin, OPERATE)
        if not (-90 * MICRO_DEGREES <= lat <= 90 * MICRO_DEGREES) or not (
            -180 * MICRO_DEGREES <= lon <= 180 * MICRO_DEGREES
        ):
            raise self.Error.InvalidLocation()
        self.Locations.insert(twin, Location(lat, lon, self._now(), who))
        self.deposit(self.Event.Relocated(twin, lat, lon))

    @call(
        11,
        weight=W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("kind", Str(MAX_DOC_KIND)), ("hash", H256)),
    )
    def add_document(self, origin: Origin, twin: int, kind: str, hash: bytes) -> None:
        """Attach a document hash (manual, drawing, certificate): the owner or manufacturer."""
        who = ensure_signed(origin)
        t = self._live(twin)
        is_maker = t.manufacturer == who and self.runtime.roles.has(who, EQUIPMENT_MANUFACTURER)
        if who != t.owner and not is_maker:
            raise self.Error.NoPermission()
        docs = self.Documents.get(twin) or []
        if len(docs) >= MAX_DOCUMENTS:
            raise self.Error.TooManyDocuments()
        self.Documents.insert(twin, [*docs, (kind, hash)])
        self._record(twin, t, "DocumentAdded", who, hash)
        self.deposit(self.Event.DocumentAdded(twin, kind, hash))

    @call(
        12,
        weight=W_SMALL,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("kind", Str(MAX_SERVICE_KIND)),
            ("report", H256),
            ("cost", U128),
        ),
    )
    def record_service(
        self, origin: Origin, twin: int, kind: str, report: bytes, cost: int
    ) -> None:
        """Record a service visit (a ServiceProvider holding the SERVICE right on the twin)."""
        who = ensure_signed(origin)
        if not self.runtime.roles.has(who, SERVICE_PROVIDER):
            raise self.Error.NotServiceProvider()
        t = self._live(twin)
        if not self.has_right(twin, who, SERVICE, t) or who == t.owner:
            raise self.Error.NoPermission()
        self.record_service_by(twin, who, kind, report, cost, None)

    @call(
        13,
        weight=W_MULTISIG,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("signatories", Vec(AccountId, MAX_SIGNATORIES)),
            ("threshold", U16),
        ),
    )
    def set_critical_multisig(
        self, origin: Origin, twin: int, signatories: list[bytes], threshold: int
    ) -> None:
        """Mark the twin critical: transfer and decommission then need this M-of-N multisig.
        The owner sets it first; afterwards only the multisig may change it."""
        who = ensure_signed(origin)
        t = self._live(twin)
        current = t.critical_multisig
        if current is None and who != t.owner:
            raise self.Error.NotOwner()
        if current is not None and who != current:
            raise self.Error.MultisigRequired() if who == t.owner else self.Error.NotOwner()
        if (
            not 2 <= len(signatories) <= MAX_SIGNATORIES
            or any(not a < b for a, b in pairwise(signatories))
            or not 2 <= threshold <= len(signatories)
        ):
            raise self.Error.InvalidMultisig()
        t.critical_multisig = multi_account_id(signatories, threshold)
        self.Twins.insert(twin, t)
        self._record(twin, t, "MultisigSet", who, t.critical_multisig)
        self.deposit(self.Event.CriticalMultisigSet(twin, t.critical_multisig))

    @call(14, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId),))
    def clear_critical_multisig(self, origin: Origin, twin: int) -> None:
        """Drop the multisig requirement (only the multisig itself may)."""
        who = ensure_signed(origin)
        t = self._live(twin)
        if t.critical_multisig is None:
            raise self.Error.NoMultisig()
        if who != t.critical_multisig:
            raise self.Error.MultisigRequired()
        t.critical_multisig = None
        self.Twins.insert(twin, t)
        self._record(twin, t, "MultisigCleared", who)
        self.deposit(self.Event.CriticalMultisigSet(twin, None))

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``twins``: [{manufacturer, owner?, class, model, serial, lifecycle?, facility?,
        rated?: [[metric, value]], envelope?: [[metric, min, max, max_step]]}]."""
        for spec_cfg in config.get("twins", []):
            maker = parse_account(spec_cfg["manufacturer"])
            owner = parse_account(spec_cfg.get("owner", spec_cfg["manufacturer"]))
            rated = [(int(m), int(v)) for m, v in spec_cfg.get("rated", [])]
            envelope = [Envelope(*map(int, e)) for e in spec_cfg.get("envelope", [])]
            spec = Spec(rated, envelope)
            try:
                twin = self.do_mint(
                    maker,
                    str(spec_cfg["class"]),
                    str(spec_cfg.get("model", spec_cfg["class"])),
                    str(spec_cfg["serial"]),
                    spec,
                    owner,
                    check_recipient=False,
                )
            except DispatchError as exc:  # chain specs report ValueError
                raise ValueError(f"genesis twin {spec_cfg.get('serial')!r}: {exc}") from exc
            lifecycle = str(spec_cfg.get("lifecycle", "Manufactured"))
            if lifecycle not in LIFECYCLE:
                raise ValueError(f"unknown lifecycle state {lifecycle!r}")
            t = self._get(twin)
            facility = spec_cfg.get("facility")
            t.facility = None if facility is None else int(facility)
            t.lifecycle = lifecycle
            self.Twins.insert(twin, t)
            if lifecycle in ARRIVAL:
                self._record(twin, t, ARRIVAL[lifecycle], None)

    # ------------------------------------------------------------------ API for other pallets
    def do_mint(
        self,
        maker: bytes,
        equipment_class: str,
        model: str,
        serial: str,
        spec: Spec,
        owner: bytes,
        *,
        check_recipient: bool = True,
    ) -> int:
        if not equipment_class or not model or not serial:
            raise self.Error.EmptyField()
        self._check_spec(spec)
        if self.BySerial.contains((maker, serial)):
            raise self.Error.DuplicateSerial()
        if check_recipient:
            self._ensure_recipient(owner, maker)
        twin = self.NextTwinId.get()
        if twin >= TwinId.max:
            raise self.Error.Overflow()
        self.NextTwinId.put(twin + 1)
        t = TwinInfo(
            equipment_class,
            model,
            serial,
            maker,
            owner,
            "Manufactured",
            None,
            None,
            self.runtime.block.number,
        )
        self.Twins.insert(twin, t)
        self.Specs.insert(twin, spec)
        self.OwnedBy.insert(owner, twin, True)
        self.ByClass.insert(equipment_class, twin, True)
        self.BySerial.insert((maker, serial), twin)
        self._record(twin, t, "Minted", maker)
        self.deposit(self.Event.Minted(twin, maker, owner, equipment_class))
        return twin

    def twin(self, twin: int) -> TwinInfo | None:
        return self.Twins.get(twin)  # type: ignore[no-any-return]

    def spec(self, twin: int) -> Spec | None:
        return self.Specs.get(twin)  # type: ignore[no-any-return]

    def envelopes(self, twin: int) -> dict[int, Envelope]:
        """The twin's operating envelope per metric; read-only (shared decoded records)."""
        spec: Spec | None = self.Specs.get_shared(twin)
        return {} if spec is None else {e.metric: e for e in spec.envelope}

    def is_operational(self, twin: int) -> bool:
        t: TwinInfo | None = self.Twins.get_shared(twin)
        return t is not None and t.lifecycle in OPERATIONAL

    def has_right(self, twin: int, who: bytes, right: int, t: TwinInfo | None = None) -> bool:
        """Whether ``who`` owns the twin or holds an unexpired delegation of ``right``."""
        t = t or self.Twins.get(twin)
        if t is None:
            return False
        if t.owner == who:
            return True
        g: AccessGrant | None = self.Access.get(twin, who)
        return g is not None and bool(g.rights & right) and g.expires > self._now()

    def provenance(self, twin: int) -> list[ProvenanceEntry]:
        return [self.Provenance.get(twin, i) for i in range(self.ProvenanceLen.get(twin))]

    def record_service_by(
        self,
        twin: int,
        provider: bytes,
        kind: str,
        report: bytes,
        cost: int,
        work_order: int | None,
    ) -> int:
        """Append a service record (the maintenance pallet calls this when a work order is
        completed and verified); returns its index."""
        t = self._live(twin)
        n = self.ServiceCount.get(twin)
        if n >= U32.max:
            raise self.Error.Overflow()
        rec = ServiceRecord(provider, kind, report, cost, self._now(), work_order)
        self.ServiceHistory.insert(twin, n, rec)
        self.ServiceCount.insert(twin, n + 1)
        self._record(twin, t, "Serviced", provider, report)
        self.deposit(self.Event.ServiceRecorded(twin, n, provider))
        return n

    def service_history(self, twin: int) -> list[ServiceRecord]:
        return [self.ServiceHistory.get(twin, i) for i in range(self.ServiceCount.get(twin))]

    def set_lifecycle_by(self, twin: int, to: str, actor: bytes | None) -> None:
        """Move the twin along an allowed transition on behalf of another pallet (maintenance
        work orders start and end maintenance)."""
        if to not in ARRIVAL:
            raise self.Error.InvalidTransition(f"-> {to}")
        self._transition(twin, self._get(twin), to, actor)

    def constants(self) -> dict[str, Any]:
        return {
            "Rights": {"ReadTelemetry": READ_TELEMETRY, "Operate": OPERATE, "Service": SERVICE},
            "Transitions": {k: sorted(v) for k, v in TRANSITIONS.items()},
            "MaxDocuments": MAX_DOCUMENTS,
            "MaxMetrics": MAX_METRICS,
        }
