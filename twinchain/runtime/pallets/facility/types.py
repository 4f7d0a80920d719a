"""Facility's records, statuses, reputation steps and bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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

MAX_NAME = 64
MAX_LOCATION = 128
MAX_CAPABILITY = 32
MAX_CAPABILITIES = 32
MAX_STANDARD = 64
MAX_SCOPE = 128
MAX_RULES = 16
MAX_CERTIFICATIONS = 256
MAX_FAILED = 64
MAX_RPC_URL = 256
RPC_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")

REPUTATION_INITIAL = 500
REPUTATION_MAX = 1000
REPUTATION_AUDIT_PASSED = 50
REPUTATION_AUDIT_FAILED = -100
REPUTATION_PER_SEVERITY = -20
REPUTATION_MAINTENANCE = 5
MAX_SEVERITY = 5

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
    # Where the facility's node answers authorized reads of its archive (a reader in another
    # facility asks the owner's node); empty until its operator sets it.
    rpc_url: str
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
        "rpc_url": Str(MAX_RPC_URL),
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
