"""Facility: verification of the production sites of the network.

A facility operator registers its site (name, location, declared capabilities and the
validator key it would run). Certified auditors verify it (evidence hash, result, expiry),
assess its capabilities, issue certifications (ISO-style: standard, scope, validity window;
an expired or revoked one stops counting) and report incidents. Compliance is checked on
chain against rule sets that governance configures. A reputation score (0..1000) moves
with audits, incidents and verified maintenance, and every one of these acts lands in an
append-only, hash-chained audit log per facility.

A verified facility may propose its validator key, with the peer id of the node running it;
the council approves it (Root), the node is authorized on the network at once and the key
joins the authority set at the next session boundary (the Authority pallet reads
:meth:`Facility.validator_changes` and acknowledges with :meth:`Facility.validator_applied`).
Suspension, revocation or a lapsed verification remove it there again, and its nodes from
the authorized set (``features/validators.py``).

Time is the Timestamp pallet's ``Now`` (milliseconds); all arithmetic is integer.
"""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import H256, U8, U32, U64, AccountId, Bool, Str
from twinchain.primitives.hashing import ZERO_HASH
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
from twinchain.runtime.pallets.facility.config import Config
from twinchain.runtime.pallets.facility.features.audits import AuditsFeature
from twinchain.runtime.pallets.facility.features.compliance import ComplianceFeature
from twinchain.runtime.pallets.facility.features.validators import ValidatorsFeature
from twinchain.runtime.pallets.facility.types import (
    MAX_CAPABILITY,
    MAX_CERTIFICATIONS,
    MAX_LOCATION,
    MAX_NAME,
    MAX_NODES,
    MAX_RPC_URL,
    MAX_STANDARD,
    REPUTATION_AUDIT_FAILED,
    REPUTATION_AUDIT_PASSED,
    REPUTATION_INITIAL,
    REPUTATION_MAINTENANCE,
    REPUTATION_MAX,
    REPUTATION_PER_SEVERITY,
    RPC_URL_SCHEMES,
    Assessment,
    AuditEntry,
    Capabilities,
    Certification,
    ComplianceRecord,
    FacilityId,
    FacilityInfo,
    NodeList,
    PeerId,
    RuleSet,
    ValidatorProposal,
    Verification,
    WellKnownNodes,
    parse_peer_id,
)
from twinchain.runtime.pallets.roles import FACILITY_OPERATOR
from twinchain.runtime.pallets.support import chain_entry, found, live
from twinchain.runtime.weights import facility as weights


def _bad_capabilities(caps: list[str]) -> bool:
    return len(set(caps)) != len(caps) or any(not c for c in caps)


class Facility(AuditsFeature, ComplianceFeature, ValidatorsFeature, Pallet):
    name = "Facility"
    config: Config

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
    Nodes = StorageMap(
        FacilityId, NodeList, [], doc="Each facility's authorized node peer ids (libp2p)."
    )
    NodeOwner = StorageMap(PeerId, FacilityId, doc="The facility of each authorized node.")
    WellKnown = StorageValue(
        WellKnownNodes, [], doc="Authorized nodes of no facility (Root), sorted."
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
        ValidatorApproved = (
            ("facility", FacilityId),
            ("validator", AccountId),
            ("node", PeerId),
        )
        ValidatorActivated = (("facility", FacilityId), ("validator", AccountId))
        NodeAdded = (("facility", FacilityId), ("node", PeerId))
        NodeRemoved = (("facility", FacilityId), ("node", PeerId))
        WellKnownNodeAdded = (("node", PeerId),)
        WellKnownNodeRemoved = (("node", PeerId),)
        FacilitySuspended = (("facility", FacilityId), ("reason", H256))
        FacilityReinstated = (("facility", FacilityId),)
        FacilityRevoked = (("facility", FacilityId), ("reason", H256))
        RpcUrlSet = (("facility", FacilityId), ("url", Str(MAX_RPC_URL)))

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
        InvalidRpcUrl = "an RPC URL starts with http://, https://, ws:// or wss:// (or is empty)"
        NotPending = "the facility has no validator proposal waiting for approval"
        InvalidPeerId = "not a libp2p peer id (the multihash of a public key)"
        NodeInUse = "this peer id is already authorized (for this or another facility)"
        UnknownNode = "this peer id is not among the authorized nodes"
        TooManyNodes = "too many authorized nodes"
        NodeOfValidator = "the node runs the facility's validator: withdraw the validator first"

    # ------------------------------------------------------------------ helpers
    def _get(self, fid: int) -> FacilityInfo:
        return found(self.Facilities.get(fid), self.Error.UnknownFacility)

    def _live(self, fid: int) -> FacilityInfo:
        return live(
            self.Facilities.get(fid),
            self.Error.UnknownFacility,
            field="status",
            ended="Revoked",
            gone=self.Error.FacilityRevoked,
        )

    def _ensure_operator_of(self, who: bytes, fid: int) -> FacilityInfo:
        f = self._live(fid)
        if f.operator != who or not self.config.roles.has(who, FACILITY_OPERATOR):
            raise self.Error.NotFacilityOperator()
        return f

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

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=lambda rt, name, location, caps, validator: (
            weights.W_REGISTER + weights.W_PER_CAPABILITY * len(caps)
        ),
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
        if not self.config.roles.has(who, FACILITY_OPERATOR):
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
            "",
        )
        self.Facilities.insert(fid, f)
        self.ValidatorOf.insert(validator, fid)
        self._log(fid, "Registered", who, ZERO_HASH, f.reputation)
        self.deposit(self.Event.FacilityRegistered(fid, who))

    @call(
        1,
        weight=lambda rt, fid, location, caps: (
            weights.W_SMALL + weights.W_PER_CAPABILITY * len(caps)
        ),
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
        12, weight=weights.W_SMALL, origin=ROOT, args=(("facility", FacilityId), ("reason", H256))
    )
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

    @call(13, weight=weights.W_SMALL, origin=ROOT, args=(("facility", FacilityId),))
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

    @call(
        14, weight=weights.W_SMALL, origin=ROOT, args=(("facility", FacilityId), ("reason", H256))
    )
    def revoke(self, origin: Origin, facility: int, reason: bytes) -> None:
        """Revoke a facility for good (root); its validator key stays reserved."""
        ensure_root(origin)
        f = self._live(facility)
        f.status = "Revoked"
        self.Facilities.insert(facility, f)
        self._remove_proposal(facility)
        self._log(facility, "Revoked", None, reason, f.reputation)
        self.deposit(self.Event.FacilityRevoked(facility, reason))

    @call(
        15,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("facility", FacilityId), ("url", Str(MAX_RPC_URL))),
    )
    def set_rpc_url(self, origin: Origin, facility: int, url: str) -> None:
        """Publish where the facility's node answers authorized reads of its archive (the
        facility's operator; empty: none)."""
        who = ensure_signed(origin)
        f = self._ensure_operator_of(who, facility)
        if url and (not url.startswith(RPC_URL_SCHEMES) or any(c.isspace() for c in url)):
            raise self.Error.InvalidRpcUrl()
        f.rpc_url = url
        self.Facilities.insert(facility, f)
        self.deposit(self.Event.RpcUrlSet(facility, url))

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``facilities``: [{operator, name, location, capabilities, validator,
        verified_until?, rpc_url?, nodes?}] (``nodes``: authorized peer ids, base58 or
        0x-hex); ``well_known_nodes``: peer ids of no facility; ``rule_sets``: [{name,
        standards, capabilities, ...}]."""
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
                str(spec.get("rpc_url", "")),
            )
            self.Facilities.insert(i, f)
            self.ValidatorOf.insert(validator, i)
            self._log(i, "Registered", None, ZERO_HASH, f.reputation)
            self.NextFacilityId.put(i + 1)
            nodes = spec.get("nodes", [])
            if len(nodes) > MAX_NODES:
                raise ValueError(f"genesis facility {i}: more than {MAX_NODES} nodes")
            for n in nodes:
                pid = self._genesis_peer_id(n)
                self.NodeOwner.insert(pid, i)
                self.Nodes.insert(i, [*self.Nodes.get(i), pid])
        for n in config.get("well_known_nodes", []):
            self.WellKnown.put(sorted([*self.WellKnown.get(), self._genesis_peer_id(n)]))
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

    def _genesis_peer_id(self, text: str) -> bytes:
        """A genesis peer id, listed once in the whole section (ValueError otherwise)."""
        pid = parse_peer_id(text)
        if self.NodeOwner.contains(pid) or pid in self.WellKnown.get():
            raise ValueError(f"genesis peer id {text} listed twice")
        return pid

    # ------------------------------------------------------------------ API for other pallets
    def facility(self, fid: int) -> FacilityInfo | None:
        return self.Facilities.get(fid)  # type: ignore[no-any-return]

    def is_verified(self, fid: int) -> bool:
        """Verified by an unexpired passed audit, and neither suspended nor revoked."""
        f: FacilityInfo | None = self.Facilities.get(fid)
        if f is None or f.status != "Verified" or f.verification is None:
            return False
        return f.verification.passed and f.verification.expires > self._now()

    def audit_log(self, fid: int) -> list[AuditEntry]:
        return [self.AuditLog.get(fid, i) for i in range(self.AuditLogLen.get(fid))]

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
