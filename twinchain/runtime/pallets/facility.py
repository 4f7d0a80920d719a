"""Facility: verification of the production sites of the network.

A facility operator registers its site (name, location, declared capabilities and the
validator key it would run). Certified auditors verify it (evidence hash, result, expiry),
assess its capabilities, issue certifications (ISO-style: standard, scope, validity window;
an expired or revoked one stops counting) and report incidents. Compliance is checked on
chain against rule sets that governance configures. A reputation score (0..1000) moves
with audits, incidents and verified maintenance, and every one of these acts lands in an
append-only, hash-chained audit log per facility.

A verified facility may propose its validator key for the authority set. The authority
pallet's session code reads :meth:`Facility.validator_changes` at a session boundary and
acknowledges with :meth:`Facility.validator_applied`; suspension, revocation or a lapsed
verification turn a proposal into a removal there.

Time is the Timestamp pallet's ``Now`` (milliseconds); all arithmetic is integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    U8,
    U32,
    U64,
    AccountId,
    Bool,
    Enum,
    Option,
    Record,
    Str,
    Vec,
)
from twinchain.primitives.hashing import ZERO_HASH, Domain, hash_for
from twinchain.primitives.keys import is_valid_public, parse_account
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
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
from twinchain.runtime.pallets.roles import CERTIFIED_AUDITOR, FACILITY_OPERATOR

MAX_NAME = 64
MAX_LOCATION = 128
MAX_CAPABILITY = 32
MAX_CAPABILITIES = 32
MAX_STANDARD = 64
MAX_SCOPE = 128
MAX_RULES = 16
MAX_CERTIFICATIONS = 256
MAX_FAILED = 64

REPUTATION_INITIAL = 500
REPUTATION_MAX = 1000
REPUTATION_AUDIT_PASSED = 50
REPUTATION_AUDIT_FAILED = -100
REPUTATION_PER_SEVERITY = -20
REPUTATION_MAINTENANCE = 5
MAX_SEVERITY = 5

W_REGISTER = 80_000
W_SMALL = 40_000
W_AUDIT = 60_000
W_COMPLIANCE_BASE = 60_000
W_PER_CERT = 3_000

STATUSES = ("Pending", "Verified", "Rejected", "Suspended", "Revoked")
Status = Enum("FacilityStatus", STATUSES)
PROPOSAL_STATUSES = ("Pending", "Active", "Removed")
ProposalStatus = Enum("ProposalStatus", PROPOSAL_STATUSES)
AUDIT_KINDS = (
    "Registered",
    "Updated",
    "Verified",
    "VerificationFailed",
    "CapabilityAssessed",
    "CertificationIssued",
    "CertificationRevoked",
    "ComplianceChecked",
    "Incident",
    "MaintenanceVerified",
    "ValidatorProposed",
    "ValidatorWithdrawn",
    "Suspended",
    "Reinstated",
    "Revoked",
)
AuditKind = Enum("AuditKind", AUDIT_KINDS)

FacilityId = U32
Capabilities = Vec(Str(MAX_CAPABILITY), MAX_CAPABILITIES)
Standards = Vec(Str(MAX_STANDARD), MAX_RULES)
RequiredCapabilities = Vec(Str(MAX_CAPABILITY), MAX_RULES)


@dataclass
class Verification(Record):
    """The latest audit of a facility's identity and site."""

    auditor: bytes
    evidence: bytes
    passed: bool
    at: int
    expires: int
    FIELDS: ClassVar = {
        "auditor": AccountId,
        "evidence": H256,
        "passed": Bool,
        "at": U64,
        "expires": U64,
    }


@dataclass
class FacilityInfo(Record):
    operator: bytes
    name: str
    location: str
    capabilities: list[str]
    validator: bytes
    status: str
    reputation: int
    registered_at: int
    verification: Verification | None
    FIELDS: ClassVar = {
        "operator": AccountId,
        "name": Str(MAX_NAME),
        "location": Str(MAX_LOCATION),
        "capabilities": Capabilities,
        "validator": AccountId,
        "status": Status,
        "reputation": U32,
        "registered_at": U64,
        "verification": Option(Verification.wire_type()),
    }


@dataclass
class Assessment(Record):
    auditor: bytes
    level: int
    evidence: bytes
    at: int
    FIELDS: ClassVar = {"auditor": AccountId, "level": U8, "evidence": H256, "at": U64}


@dataclass
class Certification(Record):
    issuer: bytes
    standard: str
    scope: str
    valid_from: int
    valid_until: int
    document: bytes
    revoked: bool
    FIELDS: ClassVar = {
        "issuer": AccountId,
        "standard": Str(MAX_STANDARD),
        "scope": Str(MAX_SCOPE),
        "valid_from": U64,
        "valid_until": U64,
        "document": H256,
        "revoked": Bool,
    }

    def counts_at(self, now: int) -> bool:
        return not self.revoked and self.valid_from <= now < self.valid_until


@dataclass
class RuleSet(Record):
    """A configurable compliance rule set; ``version`` grows with every update."""

    name: str
    required_standards: list[str]
    required_capabilities: list[str]
    min_capability_level: int
    min_reputation: int
    requires_verification: bool
    active: bool
    version: int
    FIELDS: ClassVar = {
        "name": Str(MAX_NAME),
        "required_standards": Standards,
        "required_capabilities": RequiredCapabilities,
        "min_capability_level": U8,
        "min_reputation": U32,
        "requires_verification": Bool,
        "active": Bool,
        "version": U32,
    }


@dataclass
class ComplianceRecord(Record):
    rule_set_version: int
    compliant: bool
    failed: list[str]
    checked_at: int
    checked_by: bytes
    FIELDS: ClassVar = {
        "rule_set_version": U32,
        "compliant": Bool,
        "failed": Vec(Str(MAX_STANDARD + 16), MAX_FAILED),
        "checked_at": U64,
        "checked_by": AccountId,
    }


@dataclass
class AuditEntry(Record):
    """One act on a facility; ``actor`` is None for root (governance)."""

    kind: str
    actor: bytes | None
    block: int
    at: int
    reference: bytes
    reputation: int
    FIELDS: ClassVar = {
        "kind": AuditKind,
        "actor": Option(AccountId),
        "block": U64,
        "at": U64,
        "reference": H256,
        "reputation": U32,
    }


@dataclass
class ValidatorProposal(Record):
    validator: bytes
    proposed_at: int
    status: str
    FIELDS: ClassVar = {"validator": AccountId, "proposed_at": U64, "status": ProposalStatus}


def chain_entry(head: bytes, entry: Record) -> bytes:
    """Next head of a hash-chained log: any rewrite of an older entry changes every later head."""
    return hash_for(Domain.MERKLE_NODE, head + hash_for(Domain.MERKLE_LEAF, entry.to_bytes()))


def _bad_capabilities(caps: list[str]) -> bool:
    return len(set(caps)) != len(caps) or any(not c for c in caps)


class Facility(Pallet):
    name = "Facility"

    NextFacilityId = StorageValue(FacilityId, 0, doc="Id the next registered facility gets.")
    Facilities = StorageMap(FacilityId, FacilityInfo.wire_type(), doc="Registered facilities.")
    ValidatorOf = StorageMap(AccountId, FacilityId, doc="Facility of each validator key.")
    Assessments = StorageDoubleMap(
        FacilityId, Str(MAX_CAPABILITY), Assessment.wire_type(), doc="Capability assessments."
    )
    Certifications = StorageDoubleMap(
        FacilityId, U32, Certification.wire_type(), doc="Certifications by facility and id."
    )
    CertificationCount = StorageMap(FacilityId, U32, 0, doc="Certifications issued per facility.")
    NextRuleSetId = StorageValue(U32, 0, doc="Id the next rule set gets.")
    RuleSets = StorageMap(U32, RuleSet.wire_type(), doc="Compliance rule sets.")
    Compliance = StorageDoubleMap(
        FacilityId, U32, ComplianceRecord.wire_type(), doc="Latest check per rule set."
    )
    AuditLog = StorageDoubleMap(
        FacilityId, U32, AuditEntry.wire_type(), doc="Append-only audit log per facility."
    )
    AuditLogLen = StorageMap(FacilityId, U32, 0, doc="Entries in each facility's audit log.")
    AuditHead = StorageMap(FacilityId, H256, ZERO_HASH, doc="Hash chain head of each log.")
    ValidatorProposals = StorageMap(
        FacilityId, ValidatorProposal.wire_type(), doc="Validator key proposals per facility."
    )

    class Event(PalletEvents):
        FacilityRegistered = (("facility", FacilityId), ("operator", AccountId))
        FacilityUpdated = (("facility", FacilityId),)
        FacilityVerified = (
            ("facility", FacilityId),
            ("auditor", AccountId),
            ("passed", Bool),
            ("expires", U64),
        )
        CapabilityAssessed = (
            ("facility", FacilityId),
            ("capability", Str(MAX_CAPABILITY)),
            ("level", U8),
        )
        CertificationIssued = (
            ("facility", FacilityId),
            ("certification", U32),
            ("issuer", AccountId),
            ("standard", Str(MAX_STANDARD)),
        )
        CertificationRevoked = (("facility", FacilityId), ("certification", U32))
        RuleSetCreated = (("rule_set", U32), ("name", Str(MAX_NAME)))
        RuleSetUpdated = (("rule_set", U32), ("version", U32), ("active", Bool))
        ComplianceChecked = (("facility", FacilityId), ("rule_set", U32), ("compliant", Bool))
        IncidentReported = (("facility", FacilityId), ("severity", U8), ("evidence", H256))
        ReputationChanged = (("facility", FacilityId), ("old", U32), ("new", U32))
        ValidatorProposed = (("facility", FacilityId), ("validator", AccountId))
        ValidatorRemoved = (("facility", FacilityId), ("validator", AccountId))
        FacilitySuspended = (("facility", FacilityId), ("reason", H256))
        FacilityReinstated = (("facility", FacilityId),)
        FacilityRevoked = (("facility", FacilityId), ("reason", H256))

    class Error(PalletErrors):
        NotOperator = "the sender does not hold the FacilityOperator role"
        NotFacilityOperator = "the sender is not this facility's operator"
        NotAuditor = "the sender does not hold the CertifiedAuditor role"
        NotOperatorOrAuditor = "only the facility's operator or a certified auditor may do this"
        ConflictOfInterest = "an auditor cannot audit a facility it operates"
        UnknownFacility = "no facility with this id"
        FacilityRevoked = "the facility is revoked"
        EmptyName = "the facility name is empty"
        InvalidCapabilities = "capabilities must be non-empty and unique"
        InvalidValidatorKey = "the validator key is not a valid x-only public key"
        ValidatorInUse = "another facility already registered this validator key"
        InvalidExpiry = "the expiry is not in the future"
        UnknownCapability = "the facility does not declare this capability"
        InvalidLevel = "a capability level is 0..100"
        InvalidValidity = "the validity window is empty or already over"
        TooManyCertifications = "the facility has too many certifications"
        UnknownCertification = "no such certification"
        NotIssuer = "only the issuer may revoke a certification"
        AlreadyRevoked = "the certification is already revoked"
        UnknownRuleSet = "no rule set with this id"
        RuleSetInactive = "the rule set is not active"
        InvalidRuleSet = "a rule set needs a name and unique rules"
        InvalidSeverity = "incident severity is 1..5"
        NotVerified = "the facility is not verified (or its verification expired)"
        AlreadyProposed = "the facility's validator is already proposed or active"
        NoProposal = "the facility has no validator proposal to withdraw"
        AlreadySuspended = "the facility is already suspended"
        NotSuspended = "the facility is not suspended"
        Overflow = "too many facilities or rule sets"

    # ------------------------------------------------------------------ helpers
    def _get(self, fid: int) -> FacilityInfo:
        f: FacilityInfo | None = self.Facilities.get(fid)
        if f is None:
            raise self.Error.UnknownFacility()
        return f

    def _live(self, fid: int) -> FacilityInfo:
        f = self._get(fid)
        if f.status == "Revoked":
            raise self.Error.FacilityRevoked()
        return f

    def _ensure_operator_of(self, who: bytes, fid: int) -> FacilityInfo:
        f = self._live(fid)
        if f.operator != who or not self.runtime.roles.has(who, FACILITY_OPERATOR):
            raise self.Error.NotFacilityOperator()
        return f

    def _ensure_auditor(self, who: bytes) -> None:
        if not self.runtime.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotAuditor()

    def _log(
        self, fid: int, kind: str, actor: bytes | None, reference: bytes, reputation: int
    ) -> None:
        n = self.AuditLogLen.get(fid)
        entry = AuditEntry(
            kind, actor, self.runtime.block.number, self._now(), reference, reputation
        )
        self.AuditLog.insert(fid, n, entry)
        self.AuditLogLen.insert(fid, n + 1)
        self.AuditHead.insert(fid, chain_entry(self.AuditHead.get(fid), entry))

    def _move_reputation(self, fid: int, f: FacilityInfo, delta: int) -> None:
        old = f.reputation
        f.reputation = max(0, min(REPUTATION_MAX, old + delta))
        if f.reputation != old:
            self.deposit(self.Event.ReputationChanged(fid, old, f.reputation))

    def _remove_proposal(self, fid: int) -> None:
        p: ValidatorProposal | None = self.ValidatorProposals.get(fid)
        if p is not None and p.status != "Removed":
            p.status = "Removed"
            self.ValidatorProposals.insert(fid, p)
            self.deposit(self.Event.ValidatorRemoved(fid, p.validator))

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=lambda rt, name, location, caps, validator: W_REGISTER + 2_000 * len(caps),
        origin=SIGNED,
        args=(
            ("name", Str(MAX_NAME)),
            ("location", Str(MAX_LOCATION)),
            ("capabilities", Capabilities),
            ("validator", AccountId),
        ),
    )
    def register(
        self, origin: Origin, name: str, location: str, capabilities: list[str], validator: bytes
    ) -> None:
        """Register a facility operated by the sender (FacilityOperator); it starts Pending."""
        who = ensure_signed(origin)
        if not self.runtime.roles.has(who, FACILITY_OPERATOR):
            raise self.Error.NotOperator()
        if not name:
            raise self.Error.EmptyName()
        if _bad_capabilities(capabilities):
            raise self.Error.InvalidCapabilities()
        if not is_valid_public(validator):
            raise self.Error.InvalidValidatorKey()
        if self.ValidatorOf.contains(validator):
            raise self.Error.ValidatorInUse()
        fid = self.NextFacilityId.get()
        if fid >= FacilityId.max:
            raise self.Error.Overflow()
        self.NextFacilityId.put(fid + 1)
        f = FacilityInfo(
            who,
            name,
            location,
            capabilities,
            validator,
            "Pending",
            REPUTATION_INITIAL,
            self.runtime.block.number,
            None,
        )
        self.Facilities.insert(fid, f)
        self.ValidatorOf.insert(validator, fid)
        self._log(fid, "Registered", who, ZERO_HASH, f.reputation)
        self.deposit(self.Event.FacilityRegistered(fid, who))

    @call(
        1,
        weight=lambda rt, fid, location, caps: W_SMALL + 2_000 * len(caps),
        origin=SIGNED,
        args=(
            ("facility", FacilityId),
            ("location", Str(MAX_LOCATION)),
            ("capabilities", Capabilities),
        ),
    )
    def update(self, origin: Origin, facility: int, location: str, capabilities: list[str]) -> None:
        """Change the declared location and capabilities (the facility's operator)."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        if _bad_capabilities(capabilities):
            raise self.Error.InvalidCapabilities()
        f.location, f.capabilities = location, capabilities
        self.Facilities.insert(facility, f)
        self._log(facility, "Updated", who, ZERO_HASH, f.reputation)
        self.deposit(self.Event.FacilityUpdated(facility))

    @call(
        2,
        weight=W_AUDIT,
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
        weight=W_AUDIT,
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
        weight=W_AUDIT,
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
        weight=W_SMALL,
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
        if cert.issuer != who or not self.runtime.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotIssuer()
        if cert.revoked:
            raise self.Error.AlreadyRevoked()
        cert.revoked = True
        self.Certifications.insert(facility, certification, cert)
        self._log(facility, "CertificationRevoked", who, cert.document, f.reputation)
        self.deposit(self.Event.CertificationRevoked(facility, certification))

    @call(
        6,
        weight=W_SMALL,
        origin=ROOT,
        args=(
            ("name", Str(MAX_NAME)),
            ("required_standards", Standards),
            ("required_capabilities", RequiredCapabilities),
            ("min_capability_level", U8),
            ("min_reputation", U32),
            ("requires_verification", Bool),
        ),
    )
    def create_rule_set(
        self,
        origin: Origin,
        name: str,
        required_standards: list[str],
        required_capabilities: list[str],
        min_capability_level: int,
        min_reputation: int,
        requires_verification: bool,
    ) -> None:
        """Create an active compliance rule set (root: governance)."""
        ensure_root(origin)
        rs = RuleSet(
            name,
            required_standards,
            required_capabilities,
            min_capability_level,
            min_reputation,
            requires_verification,
            True,
            1,
        )
        self._check_rule_set(rs)
        rid = self.NextRuleSetId.get()
        if rid >= U32.max:
            raise self.Error.Overflow()
        self.NextRuleSetId.put(rid + 1)
        self.RuleSets.insert(rid, rs)
        self.deposit(self.Event.RuleSetCreated(rid, name))

    @call(
        7,
        weight=W_SMALL,
        origin=ROOT,
        args=(
            ("rule_set", U32),
            ("required_standards", Standards),
            ("required_capabilities", RequiredCapabilities),
            ("min_capability_level", U8),
            ("min_reputation", U32),
            ("requires_verification", Bool),
            ("active", Bool),
        ),
    )
    def update_rule_set(
        self,
        origin: Origin,
        rule_set: int,
        required_standards: list[str],
        required_capabilities: list[str],
        min_capability_level: int,
        min_reputation: int,
        requires_verification: bool,
        active: bool,
    ) -> None:
        """Reconfigure a rule set; its version grows so old compliance records show their age."""
        ensure_root(origin)
        rs: RuleSet | None = self.RuleSets.get(rule_set)
        if rs is None:
            raise self.Error.UnknownRuleSet()
        rs.required_standards = required_standards
        rs.required_capabilities = required_capabilities
        rs.min_capability_level = min_capability_level
        rs.min_reputation = min_reputation
        rs.requires_verification = requires_verification
        rs.active = active
        rs.version += 1
        self._check_rule_set(rs)
        self.RuleSets.insert(rule_set, rs)
        self.deposit(self.Event.RuleSetUpdated(rule_set, rs.version, active))

    @call(
        8,
        # Bounded by the certification cap: weights never read state.
        weight=W_COMPLIANCE_BASE + W_PER_CERT * MAX_CERTIFICATIONS,
        origin=SIGNED,
        args=(("facility", FacilityId), ("rule_set", U32)),
    )
    def check_compliance(self, origin: Origin, facility: int, rule_set: int) -> None:
        """Evaluate the facility against a rule set now and store the result (the facility's
        operator or a certified auditor)."""
        who = ensure_signed(origin)
        f = self._live(facility)
        is_op = f.operator == who and self.runtime.roles.has(who, FACILITY_OPERATOR)
        if not is_op and not self.runtime.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotOperatorOrAuditor()
        rs: RuleSet | None = self.RuleSets.get(rule_set)
        if rs is None:
            raise self.Error.UnknownRuleSet()
        if not rs.active:
            raise self.Error.RuleSetInactive()
        failed = self.evaluate(facility, rs)
        now = self._now()
        self.Compliance.insert(
            facility, rule_set, ComplianceRecord(rs.version, not failed, failed, now, who)
        )
        ref = hash_for(Domain.MERKLE_LEAF, codec.encode([rule_set, rs.version, failed]))
        self._log(facility, "ComplianceChecked", who, ref, f.reputation)
        self.deposit(self.Event.ComplianceChecked(facility, rule_set, not failed))

    @call(
        9,
        weight=W_AUDIT,
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

    @call(10, weight=W_SMALL, origin=SIGNED, args=(("facility", FacilityId),))
    def propose_validator(self, origin: Origin, facility: int) -> None:
        """Propose the facility's validator key for the authority set (its operator; the
        facility must be verified). It joins at a session boundary."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        if not self.is_verified(facility):
            raise self.Error.NotVerified()
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is not None and p.status != "Removed":
            raise self.Error.AlreadyProposed()
        self.ValidatorProposals.insert(
            facility, ValidatorProposal(f.validator, self.runtime.block.number, "Pending")
        )
        self._log(facility, "ValidatorProposed", who, ZERO_HASH, f.reputation)
        self.deposit(self.Event.ValidatorProposed(facility, f.validator))

    @call(11, weight=W_SMALL, origin=SIGNED, args=(("facility", FacilityId),))
    def withdraw_validator(self, origin: Origin, facility: int) -> None:
        """Withdraw the facility's validator (its operator): removed at the next session."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        p: ValidatorProposal | None = self.ValidatorProposals.get(facility)
        if p is None or p.status == "Removed":
            raise self.Error.NoProposal()
        self._remove_proposal(facility)
        self._log(facility, "ValidatorWithdrawn", who, ZERO_HASH, f.reputation)

    @call(12, weight=W_SMALL, origin=ROOT, args=(("facility", FacilityId), ("reason", H256)))
    def suspend(self, origin: Origin, facility: int, reason: bytes) -> None:
        """Suspend a facility (root: governance); its validator leaves at the next session."""
        ensure_root(origin)
        f = self._live(facility)
        if f.status == "Suspended":
            raise self.Error.AlreadySuspended()
        f.status = "Suspended"
        self.Facilities.insert(facility, f)
        self._remove_proposal(facility)
        self._log(facility, "Suspended", None, reason, f.reputation)
        self.deposit(self.Event.FacilitySuspended(facility, reason))

    @call(13, weight=W_SMALL, origin=ROOT, args=(("facility", FacilityId),))
    def reinstate(self, origin: Origin, facility: int) -> None:
        """Lift a suspension (root): Verified again if the last audit passed and is unexpired,
        else Pending until an auditor verifies it."""
        ensure_root(origin)
        f = self._live(facility)
        if f.status != "Suspended":
            raise self.Error.NotSuspended()
        v = f.verification
        ok = v is not None and v.passed and v.expires > self._now()
        f.status = "Verified" if ok else "Pending"
        self.Facilities.insert(facility, f)
        self._log(facility, "Reinstated", None, ZERO_HASH, f.reputation)
        self.deposit(self.Event.FacilityReinstated(facility))

    @call(14, weight=W_SMALL, origin=ROOT, args=(("facility", FacilityId), ("reason", H256)))
    def revoke(self, origin: Origin, facility: int, reason: bytes) -> None:
        """Revoke a facility for good (root); its validator key stays reserved."""
        ensure_root(origin)
        f = self._live(facility)
        f.status = "Revoked"
        self.Facilities.insert(facility, f)
        self._remove_proposal(facility)
        self._log(facility, "Revoked", None, reason, f.reputation)
        self.deposit(self.Event.FacilityRevoked(facility, reason))

    # ------------------------------------------------------------------ rules
    def _check_rule_set(self, rs: RuleSet) -> None:
        if (
            not rs.name
            or len(set(rs.required_standards)) != len(rs.required_standards)
            or len(set(rs.required_capabilities)) != len(rs.required_capabilities)
            or rs.min_capability_level > 100
            or rs.min_reputation > REPUTATION_MAX
        ):
            raise self.Error.InvalidRuleSet()

    def evaluate(self, fid: int, rs: RuleSet) -> list[str]:
        """The rules of ``rs`` that facility ``fid`` fails now (empty: compliant)."""
        f = self._get(fid)
        now = self._now()
        failed: list[str] = []
        if rs.requires_verification and not self.is_verified(fid):
            failed.append("verification")
        held = {c.standard for c in self.certifications(fid) if c.counts_at(now)}
        failed += [f"standard:{s}" for s in rs.required_standards if s not in held]
        for cap in rs.required_capabilities:
            a: Assessment | None = self.Assessments.get(fid, cap)
            if cap not in f.capabilities or a is None or a.level < rs.min_capability_level:
                failed.append(f"capability:{cap}")
        if f.reputation < rs.min_reputation:
            failed.append("reputation")
        return failed

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``facilities``: [{operator, name, location, capabilities, validator,
        verified_until?}]; ``rule_sets``: [{name, standards, capabilities, ...}]."""
        for i, spec in enumerate(config.get("facilities", [])):
            validator = parse_account(spec.get("validator", spec["operator"]))
            until = int(spec.get("verified_until", 0))
            f = FacilityInfo(
                parse_account(spec["operator"]),
                str(spec["name"]),
                str(spec.get("location", "")),
                list(spec.get("capabilities", [])),
                validator,
                "Verified" if until else "Pending",
                REPUTATION_INITIAL,
                0,
                Verification(ZERO_HASH, ZERO_HASH, True, 0, until) if until else None,
            )
            self.Facilities.insert(i, f)
            self.ValidatorOf.insert(validator, i)
            self._log(i, "Registered", None, ZERO_HASH, f.reputation)
            self.NextFacilityId.put(i + 1)
        for i, spec in enumerate(config.get("rule_sets", [])):
            rs = RuleSet(
                str(spec["name"]),
                list(spec.get("standards", [])),
                list(spec.get("capabilities", [])),
                int(spec.get("min_capability_level", 0)),
                int(spec.get("min_reputation", 0)),
                bool(spec.get("requires_verification", True)),
                True,
                1,
            )
            self.RuleSets.insert(i, rs)
            self.NextRuleSetId.put(i + 1)

    # ------------------------------------------------------------------ API for other pallets
    def facility(self, fid: int) -> FacilityInfo | None:
        return self.Facilities.get(fid)  # type: ignore[no-any-return]

    def is_verified(self, fid: int) -> bool:
        """Verified by an unexpired passed audit, and neither suspended nor revoked."""
        f: FacilityInfo | None = self.Facilities.get(fid)
        if f is None or f.status != "Verified" or f.verification is None:
            return False
        return f.verification.passed and f.verification.expires > self._now()

    def certifications(self, fid: int) -> list[Certification]:
        return [c for _, c in sorted(self.Certifications.iter_prefix(fid))]

    def audit_log(self, fid: int) -> list[AuditEntry]:
        return [self.AuditLog.get(fid, i) for i in range(self.AuditLogLen.get(fid))]

    def note_verified_maintenance(self, fid: int, reference: bytes) -> None:
        """The maintenance pallet verified a completed work order at this facility."""
        f = self._live(fid)
        self._move_reputation(fid, f, REPUTATION_MAINTENANCE)
        self.Facilities.insert(fid, f)
        self._log(fid, "MaintenanceVerified", None, reference, f.reputation)

    def pending_validators(self) -> list[tuple[int, bytes]]:
        """Proposals waiting for a session boundary, whose facility is still verified."""
        return [
            (fid, p.validator)
            for fid, p in self.ValidatorProposals.iter()
            if p.status == "Pending" and self.is_verified(fid)
        ]

    def validator_changes(self) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        """(to add, to remove) for the next session: pending proposals of verified facilities;
        removed proposals and active ones whose facility's verification lapsed."""
        add: list[tuple[int, bytes]] = []
        remove: list[tuple[int, bytes]] = []
        for fid, p in self.ValidatorProposals.iter():
            verified = self.is_verified(fid)
            if p.status == "Pending" and verified:
                add.append((fid, p.validator))
            elif p.status == "Removed" or (p.status == "Active" and not verified):
                remove.append((fid, p.validator))
        return sorted(add), sorted(remove)

    def validator_applied(self, fid: int) -> None:
        """The session code applied this facility's change: Pending becomes Active, a removed
        (or lapsed) proposal is dropped."""
        p: ValidatorProposal | None = self.ValidatorProposals.get(fid)
        if p is None:
            return
        if p.status == "Pending":
            p.status = "Active"
            self.ValidatorProposals.insert(fid, p)
        else:
            self.ValidatorProposals.remove(fid)

    def constants(self) -> dict[str, Any]:
        return {
            "ReputationInitial": REPUTATION_INITIAL,
            "ReputationMax": REPUTATION_MAX,
            "ReputationAuditPassed": REPUTATION_AUDIT_PASSED,
            "ReputationAuditFailed": REPUTATION_AUDIT_FAILED,
            "ReputationPerSeverity": REPUTATION_PER_SEVERITY,
            "ReputationMaintenance": REPUTATION_MAINTENANCE,
            "MaxCertifications": MAX_CERTIFICATIONS,
        }
