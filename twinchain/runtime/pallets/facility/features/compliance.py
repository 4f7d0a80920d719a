"""Facility compliance: rule sets governance configures (standards, capabilities, reputation,
verification) and the checks of a facility against them."""

from __future__ import annotations

from twinchain.primitives import codec
from twinchain.primitives.codec import U8, U32, Bool, Str
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.runtime.framework import ROOT, SIGNED, Origin, call, ensure_root, ensure_signed
from twinchain.runtime.pallets.facility.types import (
    MAX_CERTIFICATIONS,
    MAX_NAME,
    REPUTATION_MAX,
    Assessment,
    ComplianceRecord,
    FacilityId,
    RequiredCapabilities,
    RuleSet,
    Standards,
)
from twinchain.runtime.pallets.roles import CERTIFIED_AUDITOR, FACILITY_OPERATOR
from twinchain.runtime.weights import facility as weights


class ComplianceFeature:
    """Rule sets and compliance checks of the Facility pallet."""

    @call(
        6,
        weight=weights.W_SMALL,
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
        weight=weights.W_SMALL,
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
        weight=weights.W_COMPLIANCE_BASE + weights.W_PER_CERT * MAX_CERTIFICATIONS,
        origin=SIGNED,
        args=(("facility", FacilityId), ("rule_set", U32)),
    )
    def check_compliance(self, origin: Origin, facility: int, rule_set: int) -> None:
        """Evaluate the facility against a rule set now and store the result (the facility's
        operator or a certified auditor)."""
        who = ensure_signed(origin)
        f = self._live(facility)
        is_op = f.operator == who and self.config.roles.has(who, FACILITY_OPERATOR)
        if not is_op and not self.config.roles.has(who, CERTIFIED_AUDITOR):
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
