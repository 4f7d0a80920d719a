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

Classes (spec 5): equipment classes registered from class files by a manufacturer or Root,
versioned; a twin of a registered class specifies only the class's metrics
(``features/classes.py``).

Critical equipment: the owner may configure an M-of-N multisig account (the Multisig
pallet's ``multi_account_id``); from then on transfer and decommission must come from that
account (an ``as_multi`` of the signatories), and only it may change or clear the setting.
"""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import (
    H256,
    I32,
    U8,
    U16,
    U32,
    U64,
    AccountId,
    Bool,
    Option,
    Str,
    Tuple,
)
from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import parse_account
from twinchain.protocol.classdef import FIRST_CLASS_METRIC_ID
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
from twinchain.runtime.pallets.equipment.config import Config
from twinchain.runtime.pallets.equipment.features.access import AccessFeature
from twinchain.runtime.pallets.equipment.features.classes import ClassesFeature
from twinchain.runtime.pallets.equipment.features.lifecycle import LifecycleFeature
from twinchain.runtime.pallets.equipment.features.records import RecordsFeature
from twinchain.runtime.pallets.equipment.types import (
    ALL_RIGHTS,
    ARRIVAL,
    LIFECYCLE,
    MAX_DOC_KIND,
    MAX_DOCUMENTS,
    MAX_METRICS,
    MAX_MODEL,
    MAX_SERIAL,
    OPERATE,
    READ_TELEMETRY,
    SERVICE,
    TRANSITIONS,
    AccessGrant,
    Calibration,
    ClassRecord,
    Documents,
    Envelope,
    EquipmentClass,
    Lifecycle,
    Location,
    ProvenanceEntry,
    ServiceRecord,
    Spec,
    TwinId,
    TwinInfo,
    Warranty,
)
from twinchain.runtime.pallets.roles import EQUIPMENT_MANUFACTURER, EQUIPMENT_OWNER
from twinchain.runtime.pallets.support import chain_entry, found, live
from twinchain.runtime.weights import equipment as weights


class Equipment(LifecycleFeature, AccessFeature, RecordsFeature, ClassesFeature, Pallet):
    name = "Equipment"
    config: Config

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
    Classes = StorageMap(
        EquipmentClass, ClassRecord.wire_type(), doc="Registered equipment classes (spec 5)."
    )

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
        ClassRegistered = (
            ("class", EquipmentClass),
            ("version", U32),
            ("by", Option(AccountId)),
            ("hash", H256),
        )

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
        InvalidClass = "the class definition breaks a rule (the detail names the key)"
        NotClassRegistrant = "only the class's registrant or Root may update it"
        MetricMismatch = "a metric of the class differs from the chain's metric of its id or name"
        MetricRemoved = "an update of a class must keep every metric it had"
        NoFreeMetricId = "no metric id is free for a metric the class brings"
        SpecNotOfClass = "the specification names a metric its registered class does not have"

    # ------------------------------------------------------------------ helpers
    def _get(self, twin: int) -> TwinInfo:
        return found(self.Twins.get(twin), self.Error.UnknownTwin)

    def _live(self, twin: int) -> TwinInfo:
        return live(
            self.Twins.get(twin),
            self.Error.UnknownTwin,
            field="lifecycle",
            ended="Decommissioned",
            gone=self.Error.TwinDecommissioned,
        )

    def _ensure_owner(self, who: bytes, twin: int) -> TwinInfo:
        t = self._live(twin)
        if t.owner != who:
            raise self.Error.NotOwner()
        return t

    def _ensure_recipient(self, who: bytes, manufacturer: bytes) -> None:
        if who != manufacturer and not self.config.roles.has(who, EQUIPMENT_OWNER):
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
            weights.W_MINT + weights.W_PER_SPEC_ENTRY * (len(spec.rated) + len(spec.envelope))
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
        if not self.config.roles.has(who, EQUIPMENT_MANUFACTURER):
            raise self.Error.NotManufacturer()
        self.do_mint(who, equipment_class, model, serial, spec, owner)

    @call(1, weight=weights.W_TRANSFER, origin=SIGNED, args=(("twin", TwinId), ("to", AccountId)))
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

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``twins``: [{manufacturer, owner?, class, model, serial, lifecycle?, facility?,
        rated?: [[metric, value]], envelope?: [[metric, min, max, max_step]],
        access?: [[who, rights, expires ms]]}] (``access``: the owner's delegations from the
        start, e.g. READ_TELEMETRY for the facility's predictive-maintenance worker)."""
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
            for who_v, rights, expires in spec_cfg.get("access", []):
                who = parse_account(who_v)
                if not 0 < int(rights) <= ALL_RIGHTS or who == owner:
                    raise ValueError(f"genesis twin {spec_cfg['serial']!r}: bad access grant")
                self.Access.insert(twin, who, AccessGrant(int(rights), int(expires), owner))

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
        self._check_class_spec(equipment_class, spec)
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

    def provenance(self, twin: int) -> list[ProvenanceEntry]:
        return [self.Provenance.get(twin, i) for i in range(self.ProvenanceLen.get(twin))]

    def constants(self) -> dict[str, Any]:
        return {
            "Rights": {"ReadTelemetry": READ_TELEMETRY, "Operate": OPERATE, "Service": SERVICE},
            "Transitions": {k: sorted(v) for k, v in TRANSITIONS.items()},
            "MaxDocuments": MAX_DOCUMENTS,
            "MaxMetrics": MAX_METRICS,
            "FirstClassMetricId": FIRST_CLASS_METRIC_ID,
        }
