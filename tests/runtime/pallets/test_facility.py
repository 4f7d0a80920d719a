"""Facility: registration, audits, capabilities, certifications, compliance, reputation, the
audit log and validator proposals."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.facility.types import (
    REPUTATION_AUDIT_FAILED,
    REPUTATION_AUDIT_PASSED,
    REPUTATION_INITIAL,
    REPUTATION_MAINTENANCE,
    REPUTATION_MAX,
    REPUTATION_PER_SEVERITY,
)
from twinchain.runtime.pallets.support import chain_entry

OP, OP2, AUD, AUD2, NOBODY = (
    Keypair.from_dev_name(n) for n in ("Operator", "Operator2", "Auditor", "Auditor2", "Nobody")
)
VALIDATOR = Keypair.from_dev_name("Validator")
# libp2p peer ids (identity multihashes of an Ed25519 key's protobuf): one per test node.
NODE = bytes([0, 36, 8, 1, 18, 32]) + b"\x01" * 32
NODE2 = bytes([0, 36, 8, 1, 18, 32]) + b"\x02" * 32
EVIDENCE = b"\x11" * 32
DOC = b"\x22" * 32
FAR = 10**12  # ms: far in the future
SLOT_MS = 1000


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world() -> dict[str, Any]:
    return {
        "roles": {
            "grants": [
                ["//Operator", "FacilityOperator"],
                ["//Operator2", "FacilityOperator"],
                ["//Auditor", "CertifiedAuditor"],
                ["//Auditor2", "CertifiedAuditor"],
            ]
        }
    }


@pytest.fixture
def blk(make_chain: Any) -> Any:
    chain = make_chain(extra=world())
    chain.start_block()
    return chain


def register(chain: Any, who: Keypair = OP, validator: Keypair = VALIDATOR) -> int:
    fid = chain.rt.facility.NextFacilityId.get()
    chain.dispatch(
        signed(who), "Facility", "register", "Plant A", "Berlin", ["milling", "welding"],
        validator.public,
    )  # fmt: skip
    return int(fid)


def verify(chain: Any, fid: int, passed: bool = True, expires: int = FAR) -> list[Any]:
    return chain.dispatch(signed(AUD), "Facility", "verify", fid, EVIDENCE, passed, expires)  # type: ignore[no-any-return]


def info(chain: Any, fid: int = 0) -> Any:
    return chain.rt.facility.Facilities.get(fid)


# --------------------------------------------------------------------------- registration


def test_register(blk: Any) -> None:
    fid = register(blk)
    f = info(blk, fid)
    assert (f.operator, f.name, f.location) == (OP.public, "Plant A", "Berlin")
    assert f.capabilities == ["milling", "welding"]
    assert (f.status, f.reputation, f.registered_at) == ("Pending", REPUTATION_INITIAL, 1)
    assert blk.rt.facility.ValidatorOf.get(VALIDATOR.public) == fid
    assert [e.kind for e in blk.rt.facility.audit_log(fid)] == ["Registered"]
    assert not blk.rt.facility.is_verified(fid)
    assert register(blk, OP2, NOBODY) == fid + 1


@pytest.mark.parametrize(
    ("who", "name", "caps", "validator", "error"),
    [
        (NOBODY, "P", ["a"], VALIDATOR.public, "NotOperator"),
        (AUD, "P", ["a"], VALIDATOR.public, "NotOperator"),
        (OP, "", ["a"], VALIDATOR.public, "EmptyName"),
        (OP, "P", ["a", "a"], VALIDATOR.public, "InvalidCapabilities"),
        (OP, "P", [""], VALIDATOR.public, "InvalidCapabilities"),
        (OP, "P", ["a"], b"\xff" * 32, "InvalidValidatorKey"),
    ],
)
def test_register_rejects(
    blk: Any, who: Keypair, name: str, caps: list[str], validator: bytes, error: str
) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(who), "Facility", "register", name, "x", caps, validator)
    assert err(e) == f"Facility.{error}"
    assert blk.rt.facility.NextFacilityId.get() == 0


def test_validator_key_is_unique(blk: Any) -> None:
    register(blk)
    with pytest.raises(DispatchError) as e:
        register(blk, OP2)
    assert err(e) == "Facility.ValidatorInUse"


def test_update_by_its_operator_only(blk: Any) -> None:
    fid = register(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP2), "Facility", "update", fid, "Hamburg", ["casting"])
    assert err(e) == "Facility.NotFacilityOperator"
    blk.dispatch(signed(OP), "Facility", "update", fid, "Hamburg", ["casting"])
    assert (info(blk, fid).location, info(blk, fid).capabilities) == ("Hamburg", ["casting"])


def test_set_rpc_url_by_its_operator_only(blk: Any) -> None:
    fid = register(blk)
    assert info(blk, fid).rpc_url == ""
    evs = blk.dispatch(signed(OP), "Facility", "set_rpc_url", fid, "https://plant-a.example:9944")
    assert blk.names(evs) == ["Facility.RpcUrlSet"]
    assert blk.args(evs[0]) == {"facility": fid, "url": "https://plant-a.example:9944"}
    assert info(blk, fid).rpc_url == "https://plant-a.example:9944"
    for who, url, error in [
        (OP2, "https://x", "NotFacilityOperator"),
        (NOBODY, "https://x", "NotFacilityOperator"),
        (OP, "ftp://x", "InvalidRpcUrl"),
        (OP, "https://x y", "InvalidRpcUrl"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Facility", "set_rpc_url", fid, url)
        assert err(e) == f"Facility.{error}"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Facility", "set_rpc_url", fid, "https://x")
    assert err(e) == "System.BadOrigin"
    blk.dispatch(signed(OP), "Facility", "set_rpc_url", fid, "")  # withdrawn
    assert info(blk, fid).rpc_url == ""


def test_genesis_facility_rpc_url(make_chain: Any) -> None:
    cfg = world() | {
        "facility": {"facilities": [{"operator": "//Operator", "name": "A", "rpc_url": "wss://a"}]}
    }
    assert make_chain(extra=cfg).rt.facility.facility(0).rpc_url == "wss://a"


def test_operator_losing_its_role_loses_its_facility_calls(blk: Any) -> None:
    fid = register(blk)
    blk.dispatch(Origin.root(), "Roles", "force_revoke", OP.public, "FacilityOperator")
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "update", fid, "x", ["a"])
    assert err(e) == "Facility.NotFacilityOperator"


# --------------------------------------------------------------------------- verification


def test_verify_passed_and_failed(blk: Any) -> None:
    fid = register(blk)
    evs = verify(blk, fid, True, FAR)
    assert blk.names(evs) == ["Facility.ReputationChanged", "Facility.FacilityVerified"]
    f = info(blk, fid)
    assert f.status == "Verified" and f.reputation == REPUTATION_INITIAL + REPUTATION_AUDIT_PASSED
    assert f.verification.auditor == AUD.public and f.verification.expires == FAR
    assert f.verification.evidence == EVIDENCE and f.verification.at == SLOT_MS
    assert blk.rt.facility.is_verified(fid)
    verify(blk, fid, False, 0)
    f = info(blk, fid)
    assert f.status == "Rejected" and not blk.rt.facility.is_verified(fid)
    assert f.reputation == REPUTATION_INITIAL + REPUTATION_AUDIT_PASSED + REPUTATION_AUDIT_FAILED
    kinds = [e.kind for e in blk.rt.facility.audit_log(fid)]
    assert kinds == ["Registered", "Verified", "VerificationFailed"]


def test_verify_rejects(blk: Any) -> None:
    fid = register(blk)
    cases = [
        (signed(OP), (fid, EVIDENCE, True, FAR), "Facility.NotAuditor"),
        (signed(AUD), (fid, EVIDENCE, True, SLOT_MS), "Facility.InvalidExpiry"),
        (signed(AUD), (9, EVIDENCE, True, FAR), "Facility.UnknownFacility"),
        (Origin.root(), (fid, EVIDENCE, True, FAR), "System.BadOrigin"),
    ]
    for origin, args, error in cases:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(origin, "Facility", "verify", *args)
        assert err(e) == error
    assert info(blk, fid).status == "Pending"


def test_auditor_cannot_audit_its_own_facility(blk: Any) -> None:
    blk.dispatch(Origin.root(), "Roles", "force_grant", AUD.public, "FacilityOperator")
    fid = register(blk, AUD)
    for name, args in [
        ("verify", (fid, EVIDENCE, True, FAR)),
        ("assess_capability", (fid, "milling", 50, EVIDENCE)),
        ("issue_certification", (fid, "ISO 9001", "all", 0, FAR, DOC)),
        ("report_incident", (fid, 1, EVIDENCE)),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(AUD), "Facility", name, *args)
        assert err(e) == "Facility.ConflictOfInterest"


def test_verification_expires(make_chain: Any) -> None:
    chain = make_chain(extra=world())
    chain.start_block()  # slot 1: now = 1000 ms
    fid = register(chain)
    verify(chain, fid, True, 2 * SLOT_MS + 1)
    chain.finish_block()
    chain.start_block()  # slot 2
    assert chain.rt.facility.is_verified(fid)
    chain.finish_block()
    chain.start_block()  # slot 3: expired
    assert not chain.rt.facility.is_verified(fid)
    assert info(chain, fid).status == "Verified"  # the record stays; it just stops counting
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OP), "Facility", "propose_validator", fid, NODE)
    assert err(e) == "Facility.NotVerified"


# --------------------------------------------------------------------------- capabilities


def test_assess_capability(blk: Any) -> None:
    fid = register(blk)
    evs = blk.dispatch(signed(AUD), "Facility", "assess_capability", fid, "milling", 80, EVIDENCE)
    assert blk.args(evs[-1]) == {"facility": fid, "capability": "milling", "level": 80}
    a = blk.rt.facility.Assessments.get(fid, "milling")
    assert (a.auditor, a.level, a.evidence, a.at) == (AUD.public, 80, EVIDENCE, SLOT_MS)
    for cap, level, error in [
        ("painting", 10, "UnknownCapability"),
        ("milling", 101, "InvalidLevel"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(AUD), "Facility", "assess_capability", fid, cap, level, EVIDENCE)
        assert err(e) == f"Facility.{error}"


# --------------------------------------------------------------------------- certifications


def test_certifications_issue_revoke_and_validity(blk: Any) -> None:
    fid = register(blk)
    evs = blk.dispatch(
        signed(AUD), "Facility", "issue_certification", fid, "ISO 9001", "machining", 0, FAR, DOC
    )
    assert blk.args(evs[-1]) == {
        "facility": fid, "certification": 0, "issuer": AUD.public, "standard": "ISO 9001"
    }  # fmt: skip
    certs = blk.rt.facility.certifications(fid)
    assert len(certs) == 1 and certs[0].counts_at(SLOT_MS)
    assert not certs[0].counts_at(FAR)  # the window is half-open
    # Not yet valid, revoked or expired ones do not count.
    c = certs[0]
    c.valid_from = 2 * SLOT_MS
    assert not c.counts_at(SLOT_MS)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(AUD2), "Facility", "revoke_certification", fid, 0)
    assert err(e) == "Facility.NotIssuer"
    blk.dispatch(signed(AUD), "Facility", "revoke_certification", fid, 0)
    assert blk.rt.facility.certifications(fid)[0].revoked
    assert not blk.rt.facility.certifications(fid)[0].counts_at(SLOT_MS)
    for args, error in [((fid, 0), "AlreadyRevoked"), ((fid, 7), "UnknownCertification")]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(AUD), "Facility", "revoke_certification", *args)
        assert err(e) == f"Facility.{error}"


@pytest.mark.parametrize(
    ("standard", "start", "end"),
    [("", 0, FAR), ("ISO 9001", 5, 5), ("ISO 9001", 0, SLOT_MS), ("ISO 9001", 9, 3)],
)
def test_certification_validity_window_checked(
    blk: Any, standard: str, start: int, end: int
) -> None:
    fid = register(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(
            signed(AUD), "Facility", "issue_certification", fid, standard, "s", start, end, DOC
        )
    assert err(e) == "Facility.InvalidValidity"


# --------------------------------------------------------------------------- compliance


def make_rule_set(chain: Any, **kw: Any) -> int:
    args = {
        "name": "machining-eu",
        "standards": ["ISO 9001"],
        "caps": ["milling"],
        "level": 50,
        "rep": 400,
        "verified": True,
    } | kw
    rid = chain.rt.facility.NextRuleSetId.get()
    chain.dispatch(
        Origin.root(), "Facility", "create_rule_set", args["name"], args["standards"],
        args["caps"], args["level"], args["rep"], args["verified"],
    )  # fmt: skip
    return int(rid)


def test_compliance_against_a_rule_set(make_chain: Any) -> None:
    chain = make_chain(extra=world())
    chain.start_block()
    fid = register(chain)
    rid = make_rule_set(chain)
    evs = chain.dispatch(signed(OP), "Facility", "check_compliance", fid, rid)
    assert chain.args(evs[-1]) == {"facility": fid, "rule_set": rid, "compliant": False}
    rec = chain.rt.facility.Compliance.get(fid, rid)
    assert rec.failed == ["verification", "standard:ISO 9001", "capability:milling"]
    assert (rec.compliant, rec.rule_set_version, rec.checked_by) == (False, 1, OP.public)
    verify(chain, fid)
    chain.dispatch(signed(AUD), "Facility", "assess_capability", fid, "milling", 50, EVIDENCE)
    chain.dispatch(
        signed(AUD), "Facility", "issue_certification", fid, "ISO 9001", "all", 0, 3 * SLOT_MS,
        DOC,
    )  # fmt: skip
    chain.dispatch(signed(AUD), "Facility", "check_compliance", fid, rid)
    rec = chain.rt.facility.Compliance.get(fid, rid)
    assert rec.compliant and rec.failed == [] and rec.checked_by == AUD.public
    # Three slots later the certificate has expired and stops counting.
    for _ in range(3):
        chain.finish_block()
        chain.start_block()
    chain.dispatch(signed(OP), "Facility", "check_compliance", fid, rid)
    assert chain.rt.facility.Compliance.get(fid, rid).failed == ["standard:ISO 9001"]
    # Governance raises the bar: version 2, reputation below it fails.
    chain.dispatch(
        Origin.root(), "Facility", "update_rule_set", rid, [], ["milling"], 50, 999, True, True
    )
    assert chain.rt.facility.RuleSets.get(rid).version == 2
    chain.dispatch(signed(OP), "Facility", "check_compliance", fid, rid)
    rec = chain.rt.facility.Compliance.get(fid, rid)
    assert (rec.failed, rec.rule_set_version) == (["reputation"], 2)


def test_compliance_rejects(blk: Any) -> None:
    fid = register(blk)
    rid = make_rule_set(blk)
    blk.dispatch(Origin.root(), "Facility", "update_rule_set", rid, [], [], 0, 0, False, False)
    for who, args, error in [
        (OP2, (fid, rid), "NotOperatorOrAuditor"),
        (NOBODY, (fid, rid), "NotOperatorOrAuditor"),
        (OP, (fid, 5), "UnknownRuleSet"),
        (OP, (fid, rid), "RuleSetInactive"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Facility", "check_compliance", *args)
        assert err(e) == f"Facility.{error}"


@pytest.mark.parametrize(
    "kw",
    [{"name": ""}, {"standards": ["a", "a"]}, {"caps": ["m", "m"]}, {"level": 101}, {"rep": 1001}],
)
def test_rule_set_validated(blk: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(DispatchError) as e:
        make_rule_set(blk, **kw)
    assert err(e) == "Facility.InvalidRuleSet"


def test_rule_sets_are_root_only(blk: Any) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "create_rule_set", "r", [], [], 0, 0, True)
    assert err(e) == "System.BadOrigin"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Facility", "update_rule_set", 3, [], [], 0, 0, True, True)
    assert err(e) == "Facility.UnknownRuleSet"


# --------------------------------------------------------------------------- reputation


def test_incidents_and_maintenance_move_reputation(blk: Any) -> None:
    fid = register(blk)
    evs = blk.dispatch(signed(AUD), "Facility", "report_incident", fid, 3, EVIDENCE)
    expected = REPUTATION_INITIAL + 3 * REPUTATION_PER_SEVERITY
    assert blk.args(evs[0]) == {"facility": fid, "old": REPUTATION_INITIAL, "new": expected}
    assert info(blk, fid).reputation == expected
    blk.rt.facility.note_verified_maintenance(fid, DOC)
    assert info(blk, fid).reputation == expected + REPUTATION_MAINTENANCE
    for _ in range(10):  # clamps at zero
        blk.dispatch(signed(AUD), "Facility", "report_incident", fid, 5, EVIDENCE)
    assert info(blk, fid).reputation == 0
    for severity in (0, 6):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(AUD), "Facility", "report_incident", fid, severity, EVIDENCE)
        assert err(e) == "Facility.InvalidSeverity"
    kinds = [e.kind for e in blk.rt.facility.audit_log(fid)]
    assert kinds[:3] == ["Registered", "Incident", "MaintenanceVerified"]


def test_reputation_clamps_at_the_top(blk: Any) -> None:
    fid = register(blk)
    for _ in range(20):
        verify(blk, fid)
    assert info(blk, fid).reputation == REPUTATION_MAX


# --------------------------------------------------------------------------- audit log


def test_audit_log_is_hash_chained(blk: Any) -> None:
    fid = register(blk)
    verify(blk, fid)
    blk.dispatch(signed(AUD), "Facility", "report_incident", fid, 1, EVIDENCE)
    log = blk.rt.facility.audit_log(fid)
    head = ZERO_HASH
    for entry in log:
        head = chain_entry(head, entry)
    assert head == blk.rt.facility.AuditHead.get(fid)
    assert [(e.actor, e.reference) for e in log] == [
        (OP.public, ZERO_HASH), (AUD.public, EVIDENCE), (AUD.public, EVIDENCE)
    ]  # fmt: skip
    # Rewriting an old entry would change the head.
    log[0].reference = EVIDENCE
    again = ZERO_HASH
    for entry in log:
        again = chain_entry(again, entry)
    assert again != head


# --------------------------------------------------------------------------- validators


def test_validator_proposal_lifecycle(blk: Any) -> None:
    f = blk.rt.facility
    fid = register(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "propose_validator", fid, NODE)
    assert err(e) == "Facility.NotVerified"
    verify(blk, fid)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP2), "Facility", "propose_validator", fid, NODE)
    assert err(e) == "Facility.NotFacilityOperator"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "propose_validator", fid, b"\x00\x05nope")
    assert err(e) == "Facility.InvalidPeerId"
    evs = blk.dispatch(signed(OP), "Facility", "propose_validator", fid, NODE)
    assert blk.args(evs[-1]) == {"facility": fid, "validator": VALIDATOR.public}
    # Pending: the council has not approved it, nothing changes at a boundary.
    assert f.validator_changes() == ([], []) and f.pending_validators() == []
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "propose_validator", fid, NODE)
    assert err(e) == "Facility.AlreadyProposed"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "approve_validator", fid)
    assert err(e) == "System.BadOrigin"
    evs = blk.dispatch(Origin.root(), "Facility", "approve_validator", fid)
    assert blk.names(evs) == ["Facility.NodeAdded", "Facility.ValidatorApproved"]
    assert f.nodes(fid) == [NODE] and f.authorized_nodes() == [NODE]
    assert f.pending_validators() == [(fid, VALIDATOR.public)]
    assert f.validator_changes() == ([(fid, VALIDATOR.public)], [])
    # The session code applies it.
    f.validator_applied(fid)
    assert f.ValidatorProposals.get(fid).status == "Active"
    assert f.validator_changes() == ([], []) and f.pending_validators() == []
    # Suspension removes it at the next session; its node stays while it is an authority.
    evs = blk.dispatch(Origin.root(), "Facility", "suspend", fid, EVIDENCE)
    assert blk.names(evs) == ["Facility.ValidatorRemoved", "Facility.FacilitySuspended"]
    assert f.validator_changes() == ([], [(fid, VALIDATOR.public)])
    assert f.authorized_nodes([VALIDATOR.public]) == [NODE] and f.authorized_nodes() == []
    f.validator_applied(fid)
    assert f.ValidatorProposals.get(fid) is None
    assert f.validator_changes() == ([], [])
    # A key still in the set whose facility is not verified leaves (genesis validators).
    assert f.validator_changes([VALIDATOR.public]) == ([], [(fid, VALIDATOR.public)])


def test_withdraw_and_revoke_remove_proposals(blk: Any) -> None:
    f = blk.rt.facility
    a, b = register(blk), register(blk, OP2, NOBODY)
    for fid in (a, b):
        verify(blk, fid)
    blk.dispatch(signed(OP), "Facility", "propose_validator", a, NODE)
    blk.dispatch(signed(OP2), "Facility", "propose_validator", b, NODE2)
    blk.dispatch(signed(OP), "Facility", "withdraw_validator", a)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OP), "Facility", "withdraw_validator", a)
    assert err(e) == "Facility.NoProposal"
    blk.dispatch(Origin.root(), "Facility", "revoke", b, EVIDENCE)
    assert f.validator_changes() == ([], sorted([(a, VALIDATOR.public), (b, NOBODY.public)]))
    # A withdrawn proposal can be made again.
    blk.dispatch(signed(OP), "Facility", "propose_validator", a, NODE)
    blk.dispatch(Origin.root(), "Facility", "approve_validator", a)
    assert f.pending_validators() == [(a, VALIDATOR.public)]


def test_lapsed_verification_removes_an_active_validator(make_chain: Any) -> None:
    chain = make_chain(extra=world())
    chain.start_block()
    fid = register(chain)
    verify(chain, fid, True, 2 * SLOT_MS)
    chain.dispatch(signed(OP), "Facility", "propose_validator", fid, NODE)
    chain.dispatch(Origin.root(), "Facility", "approve_validator", fid)
    chain.rt.facility.validator_applied(fid)
    chain.finish_block()
    chain.start_block()
    assert chain.rt.facility.validator_changes() == ([], [(fid, VALIDATOR.public)])
    assert chain.rt.facility.authorized_nodes() == []


# --------------------------------------------------------------------------- governance


def test_suspend_reinstate_revoke(blk: Any) -> None:
    fid = register(blk)
    verify(blk, fid)
    blk.dispatch(Origin.root(), "Facility", "suspend", fid, EVIDENCE)
    assert info(blk, fid).status == "Suspended" and not blk.rt.facility.is_verified(fid)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Facility", "suspend", fid, EVIDENCE)
    assert err(e) == "Facility.AlreadySuspended"
    verify(blk, fid)  # an audit alone does not lift a suspension
    assert info(blk, fid).status == "Suspended"
    blk.dispatch(Origin.root(), "Facility", "reinstate", fid)
    assert info(blk, fid).status == "Verified"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Facility", "reinstate", fid)
    assert err(e) == "Facility.NotSuspended"
    blk.dispatch(Origin.root(), "Facility", "revoke", fid, EVIDENCE)
    assert info(blk, fid).status == "Revoked"
    # Revocation is terminal.
    for origin, name, args in [
        (Origin.root(), "revoke", (fid, EVIDENCE)),
        (Origin.root(), "suspend", (fid, EVIDENCE)),
        (signed(AUD), "verify", (fid, EVIDENCE, True, FAR)),
        (signed(OP), "update", (fid, "x", ["a"])),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(origin, "Facility", name, *args)
        assert err(e) == "Facility.FacilityRevoked"
    kinds = [e.kind for e in blk.rt.facility.audit_log(fid)]
    assert kinds[-3:] == ["Verified", "Reinstated", "Revoked"]
    assert blk.rt.facility.audit_log(fid)[-1].actor is None


def test_reinstate_without_valid_audit_goes_back_to_pending(blk: Any) -> None:
    fid = register(blk)
    blk.dispatch(Origin.root(), "Facility", "suspend", fid, EVIDENCE)
    blk.dispatch(Origin.root(), "Facility", "reinstate", fid)
    assert info(blk, fid).status == "Pending"


# --------------------------------------------------------------------------- genesis


def test_genesis_facilities_and_rule_sets(make_chain: Any) -> None:
    extra = world() | {
        "facility": {
            "facilities": [
                {"operator": "//Operator", "name": "P", "capabilities": ["a"],
                 "verified_until": FAR},
                {"operator": "//Operator2", "name": "Q", "validator": "//Validator"},
            ],
            "rule_sets": [{"name": "base", "standards": ["ISO 9001"]}],
        }
    }  # fmt: skip
    chain = make_chain(extra=extra)
    f = chain.rt.facility
    assert f.NextFacilityId.get() == 2 and f.NextRuleSetId.get() == 1
    assert f.is_verified(0) and not f.is_verified(1)
    assert info(chain, 1).validator == VALIDATOR.public
    assert f.RuleSets.get(0).required_standards == ["ISO 9001"]
    assert [e.kind for e in f.audit_log(0)] == ["Registered"]
