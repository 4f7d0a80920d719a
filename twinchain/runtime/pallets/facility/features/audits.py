"""Facility audits: site verification, capability assessments, certifications and incidents
by certified auditors, each moving the reputation and landing in the audit log."""

from __future__ import annotations

from twinchain.primitives.codec import H256, U8, U32, U64, Bool, Str
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.facility.types import (
    MAX_CAPABILITY,
    MAX_CERTIFICATIONS,
    MAX_SCOPE,
    MAX_SEVERITY,
    MAX_STANDARD,
    REPUTATION_AUDIT_FAILED,
    REPUTATION_AUDIT_PASSED,
    REPUTATION_MAINTENANCE,
    REPUTATION_PER_SEVERITY,
    Assessment,
    Certification,
    FacilityId,
    Verification,
)
from twinchain.runtime.pallets.roles import CERTIFIED_AUDITOR
from twinchain.runtime.weights import facility as weights


class AuditsFeature:
    """Auditors' acts on the Facility pallet's sites."""

    def _ensure_auditor(self, who: bytes) -> None:
        if not self.config.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotAuditor()

    @call(
        2,
        weight=weights.W_AUDIT,
        origin=SIGNED,
        args=(
            ("facility", FacilityId),
            ("evidence", H256),
            ("passed", Bool),
            ("expires", U64),
        ),
    )
    def verify(
        self, origin: Origin, facility: int, evidence: bytes, passed: bool, expires: int
    ) -> None:
        """Record an identity/site audit (CertifiedAuditor): Verified until ``expires``, or
        Rejected. A suspended facility stays suspended until governance reinstates it."""
        who = ensure_signed(origin)
        self._ensure_auditor(who)
        f = self._live(facility)
        if f.operator == who:
            raise self.Error.ConflictOfInterest()
        now = self._now()
        if passed and expires <= now:
            raise self.Error.InvalidExpiry()
        f.verification = Verification(who, evidence, passed, now, expires if passed else now)
        if f.status != "Suspended":
            f.status = "Verified" if passed else "Rejected"
        self._move_reputation(
            facility, f, REPUTATION_AUDIT_PASSED if passed else REPUTATION_AUDIT_FAILED
        )
        self.Facilities.insert(facility, f)
        if not passed:
            self._remove_proposal(facility)
        kind = "Verified" if passed else "VerificationFailed"
        self._log(facility, kind, who, evidence, f.reputation)
        self.deposit(self.Event.FacilityVerified(facility, who, passed, f.verification.expires))

    @call(
        3,
        weight=weights.W_AUDIT,
        origin=SIGNED,
        args=(
            ("facility", FacilityId),
            ("capability", Str(MAX_CAPABILITY)),
            ("level", U8),
            ("evidence", H256),
        ),
    )
    def assess_capability(
        self, origin: Origin, facility: int, capability: str, level: int, evidence: bytes
    ) -> None:
        """Assess a declared capability at ``level`` 0..100 (CertifiedAuditor)."""
        who = ensure_signed(origin)
        self._ensure_auditor(who)
        f = self._live(facility)
        if f.operator == who:
            raise self.Error.ConflictOfInterest()
        if capability not in f.capabilities:
            raise self.Error.UnknownCapability()
        if level > 100:
            raise self.Error.InvalidLevel()
        self.Assessments.insert(facility, capability, Assessment(who, level, evidence, self._now()))
        self._log(facility, "CapabilityAssessed", who, evidence, f.reputation)
        self.deposit(self.Event.CapabilityAssessed(facility, capability, level))

    @call(
        4,
        weight=weights.W_AUDIT,
        origin=SIGNED,
        args=(
            ("facility", FacilityId),
            ("standard", Str(MAX_STANDARD)),
            ("scope", Str(MAX_SCOPE)),
            ("valid_from", U64),
            ("valid_until", U64),
            ("document", H256),
        ),
    )
    def issue_certification(
        self,
        origin: Origin,
        facility: int,
        standard: str,
        scope: str,
        valid_from: int,
        valid_until: int,
        document: bytes,
    ) -> None:
        """Certify the facility against ``standard`` for a validity window (CertifiedAuditor)."""
        who = ensure_signed(origin)
        self._ensure_auditor(who)
        f = self._live(facility)
        if f.operator == who:
            raise self.Error.ConflictOfInterest()
        if not standard or valid_until <= valid_from or valid_until <= self._now():
            raise self.Error.InvalidValidity()
        n = self.CertificationCount.get(facility)
        if n >= MAX_CERTIFICATIONS:
            raise self.Error.TooManyCertifications()
        cert = Certification(who, standard, scope, valid_from, valid_until, document, False)
        self.Certifications.insert(facility, n, cert)
        self.CertificationCount.insert(facility, n + 1)
        self._log(facility, "CertificationIssued", who, document, f.reputation)
        self.deposit(self.Event.CertificationIssued(facility, n, who, standard))

    @call(
        5,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("facility", FacilityId), ("certification", U32)),
    )
    def revoke_certification(self, origin: Origin, facility: int, certification: int) -> None:
        """Revoke a certification (its issuer, who must still be a certified auditor)."""
        who = ensure_signed(origin)
        f = self._get(facility)
        cert: Certification | None = self.Certifications.get(facility, certification)
        if cert is None:
            raise self.Error.UnknownCertification()
        if cert.issuer != who or not self.config.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotIssuer()
        if cert.revoked:
            raise self.Error.AlreadyRevoked()
        cert.revoked = True
        self.Certifications.insert(facility, certification, cert)
        self._log(facility, "CertificationRevoked", who, cert.document, f.reputation)
        self.deposit(self.Event.CertificationRevoked(facility, certification))

    @call(
        9,
        weight=weights.W_AUDIT,
        origin=SIGNED,
        args=(("facility", FacilityId), ("severity", U8), ("evidence", H256)),
    )
    def report_incident(
        self, origin: Origin, facility: int, severity: int, evidence: bytes
    ) -> None:
        """Report an incident of severity 1..5 (CertifiedAuditor); reputation drops with it."""
        who = ensure_signed(origin)
        self._ensure_auditor(who)
        f = self._live(facility)
        if f.operator == who:
            raise self.Error.ConflictOfInterest()
        if not 1 <= severity <= MAX_SEVERITY:
            raise self.Error.InvalidSeverity()
        self._move_reputation(facility, f, REPUTATION_PER_SEVERITY * severity)
        self.Facilities.insert(facility, f)
        self._log(facility, "Incident", who, evidence, f.reputation)
        self.deposit(self.Event.IncidentReported(facility, severity, evidence))

    # ------------------------------------------------------------------ API for other pallets
    def certifications(self, fid: int) -> list[Certification]:
        return [c for _, c in sorted(self.Certifications.iter_prefix(fid))]

    def note_verified_maintenance(self, fid: int, reference: bytes) -> None:
        """The maintenance pallet verified a completed work order at this facility."""
        f = self._live(fid)
        self._move_reputation(fid, f, REPUTATION_MAINTENANCE)
        self.Facilities.insert(fid, f)
        self._log(fid, "MaintenanceVerified", None, reference, f.reputation)
