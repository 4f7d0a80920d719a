"""Facility's records, statuses, reputation steps and bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import base58

from twinchain.primitives.codec import (
    H256,
    U8,
    U32,
    U64,
    AccountId,
    Bool,
    Bytes,
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
# Authorized nodes (pallet-node-authorization's bounds): a libp2p peer id is a multihash of
# the node's public key, 34..~42 bytes; a facility runs a few nodes (validator, replicas).
MAX_PEER_ID = 64
MAX_NODES = 8
MAX_WELL_KNOWN_NODES = 64

REPUTATION_INITIAL = 500
REPUTATION_MAX = 1000
REPUTATION_AUDIT_PASSED = 50
REPUTATION_AUDIT_FAILED = -100
REPUTATION_PER_SEVERITY = -20
REPUTATION_MAINTENANCE = 5
MAX_SEVERITY = 5

STATUSES = ("Pending", "Verified", "Rejected", "Suspended", "Revoked")
Status = Enum("FacilityStatus", STATUSES)
# Pending: waits for the council; Approved: waits for the session boundary; Active: in the
# authority set; Removed: leaves it at the next boundary.
PROPOSAL_STATUSES = ("Pending", "Active", "Removed", "Approved")
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
    "ValidatorApproved",
    "NodeAdded",
    "NodeRemoved",
)
AuditKind = Enum("AuditKind", AUDIT_KINDS)

FacilityId = U32
Capabilities = Vec(Str(MAX_CAPABILITY), MAX_CAPABILITIES)
Standards = Vec(Str(MAX_STANDARD), MAX_RULES)
RequiredCapabilities = Vec(Str(MAX_CAPABILITY), MAX_RULES)
PeerId = Bytes(MAX_PEER_ID)
NodeList = Vec(PeerId, MAX_NODES)
WellKnownNodes = Vec(PeerId, MAX_WELL_KNOWN_NODES)


def is_peer_id(raw: bytes) -> bool:
    """A libp2p peer id's bytes: the multihash of a public key, either inline (identity,
    code 0: Ed25519 and secp256k1 keys) or its SHA-256 (code 0x12, 32 bytes: larger keys).
    Checked without libp2p: the runtime cannot import the network layer."""
    n = len(raw)
    inline = 4 <= n <= MAX_PEER_ID and raw[0] == 0x00 and raw[1] == n - 2
    hashed = n == 34 and raw[0] == 0x12 and raw[1] == 0x20
    return inline or hashed


def parse_peer_id(text: str) -> bytes:
    """A peer id's bytes from its base58 text (as libp2p prints it) or ``0x``-hex; ValueError
    if it is neither (chain specs and command lines hold text)."""
    raw = text.strip()
    if "/p2p/" in raw:  # a multiaddr ending in /p2p/<id>
        raw = raw.rsplit("/p2p/", 1)[1].split("/", 1)[0]
    try:
        pid = bytes.fromhex(raw[2:]) if raw.startswith("0x") else base58.b58decode(raw)
    except ValueError:
        raise ValueError(f"not a peer id: {text!r}") from None
    if not is_peer_id(pid):
        raise ValueError(f"not a peer id: {text!r}")
    return pid


def peer_id_text(pid: bytes) -> str:
    """A peer id's base58 text, as libp2p prints it."""
    return base58.b58encode(pid).decode()


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
    """A facility's validator: its key, and the peer id of the node that runs it (authorized
    on the network once the council approves)."""

    validator: bytes
    proposed_at: int
    status: str
    node: bytes
    FIELDS: ClassVar = {
        "validator": AccountId,
        "proposed_at": U64,
        "status": ProposalStatus,
        "node": PeerId,
    }
