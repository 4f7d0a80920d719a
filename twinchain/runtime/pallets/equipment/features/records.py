"""Equipment records: warranty terms, calibration certificates, location, document hashes and
service records, each act appended to the twin's provenance."""

from __future__ import annotations

from twinchain.primitives.codec import H256, I32, U16, U32, U64, U128, Bool, Str
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.equipment.types import (
    MAX_DOC_KIND,
    MAX_DOCUMENTS,
    MAX_SERVICE_KIND,
    MICRO_DEGREES,
    OPERATE,
    SERVICE,
    Calibration,
    Location,
    ServiceRecord,
    Spec,
    TwinId,
    Warranty,
)
from twinchain.runtime.pallets.roles import (
    CERTIFIED_AUDITOR,
    EQUIPMENT_MANUFACTURER,
    SERVICE_PROVIDER,
)
from twinchain.runtime.weights import equipment as weights


class RecordsFeature:
    """Warranty, calibrations, location, documents and service history of the Equipment
    pallet's twins."""

    @call(
        8,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("starts", U64), ("ends", U64), ("terms", H256)),
    )
    def set_warranty(self, origin: Origin, twin: int, starts: int, ends: int, terms: bytes) -> None:
        """Set the warranty terms (the twin's manufacturer)."""
        who = ensure_signed(origin)
        t = self._live(twin)
        if t.manufacturer != who or not self.config.roles.has(who, EQUIPMENT_MANUFACTURER):
            raise self.Error.NotManufacturer()
        if ends <= starts or ends <= self._now():
            raise self.Error.InvalidValidity()
        self.Warranties.insert(twin, Warranty(who, starts, ends, terms))
        self._record(twin, t, "WarrantySet", who, terms)
        self.deposit(self.Event.WarrantySet(twin, starts, ends))

    @call(
        9,
        weight=weights.W_SMALL,
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
        if not self.config.roles.has(who, CERTIFIED_AUDITOR):
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

    @call(
        10,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("lat", I32), ("lon", I32)),
    )
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
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("kind", Str(MAX_DOC_KIND)), ("hash", H256)),
    )
    def add_document(self, origin: Origin, twin: int, kind: str, hash: bytes) -> None:
        """Attach a document hash (manual, drawing, certificate): the owner or manufacturer."""
        who = ensure_signed(origin)
        t = self._live(twin)
        is_maker = t.manufacturer == who and self.config.roles.has(who, EQUIPMENT_MANUFACTURER)
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
        weight=weights.W_SMALL,
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
        if not self.config.roles.has(who, SERVICE_PROVIDER):
            raise self.Error.NotServiceProvider()
        t = self._live(twin)
        if not self.has_right(twin, who, SERVICE, t) or who == t.owner:
            raise self.Error.NoPermission()
        self.record_service_by(twin, who, kind, report, cost, None)

    # ------------------------------------------------------------------ API for other pallets
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
