"""Council governance: members are the verified facilities' operators; motions, votes, closes
and their thresholds; expiry; membership following Facility and Roles; every Root call of
every pallet reachable through a motion and refused without one; the specs' sudo."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from twinchain.node.chain_spec import (
    ChainSpecError,
    FoundingFacility,
    add_consortium_args,
    consortium_from_args,
    consortium_spec,
    dev_spec,
    local_spec,
    resolve,
)
from twinchain.primitives.codec import (
    Bytes,
    Enum,
    Fixed,
    Lazy,
    Option,
    Str,
    Struct,
    Tuple,
    Vec,
)
from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import ROOT, DispatchError, Origin, RuntimeCall
from twinchain.runtime.pallets.council import (
    MAJORITY,
    MAX_PROPOSAL_BYTES,
    TWO_THIRDS,
    required_votes,
    threshold_of,
)
from twinchain.runtime.pallets.facility.types import parse_peer_id, peer_id_text
from twinchain.runtime.runtime import Runtime

OPS = [Keypair.from_dev_name(f"Operator{i}") for i in range(1, 6)]
NEWOP, AUD, NOBODY = (Keypair.from_dev_name(n) for n in ("Operator9", "Auditor", "Nobody"))
FAR = 10**13  # ms
DURATION = 10  # blocks a motion stays open in these tests
BIG = 10**12  # a weight bound that covers any call


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world(members: int = 5) -> dict[str, Any]:
    """``members`` founding facilities, each verified and operated by its own operator;
    one certified auditor; NEWOP holds FacilityOperator but has no facility yet."""
    ops = [f"//Operator{i}" for i in range(1, members + 1)]
    return {
        "roles": {
            "grants": [[o, "FacilityOperator"] for o in [*ops, "//Operator9"]]
            + [["//Auditor", "CertifiedAuditor"]]
        },
        "facility": {
            "facilities": [
                {"operator": o, "name": f"Plant {i}", "verified_until": FAR}
                for i, o in enumerate(ops)
            ]
        },
        "council": {"motion_duration": DURATION},
    }


@pytest.fixture
def blk(make_chain: Any) -> Any:
    """Five council members, no sudo key, block 1 open."""
    chain = make_chain(sudo=False, extra=world())
    chain.start_block()
    return chain


def wire(chain: Any, pallet: str, name: str, *args: Any) -> list[Any]:
    return list(chain.call(pallet, name, *args).to_wire())


def propose(chain: Any, who: Keypair, call: list[Any]) -> int:
    index = int(chain.rt.council.MotionCount.get())
    chain.dispatch(signed(who), "Council", "propose", call, MAX_PROPOSAL_BYTES)
    return index


def vote(chain: Any, who: Keypair, motion: int, approve: bool = True) -> list[Any]:
    return chain.dispatch(signed(who), "Council", "vote", motion, approve)  # type: ignore[no-any-return]


def close(chain: Any, motion: int, by: Keypair = NOBODY) -> list[Any]:
    return chain.dispatch(signed(by), "Council", "close", motion, BIG)  # type: ignore[no-any-return]


def pass_motion(chain: Any, call: list[Any], ayes: int | None = None) -> list[Any]:
    """Propose ``call`` (first member), get ``ayes`` ayes (default: just enough) and close it;
    returns the close's events."""
    members = chain.rt.council.members()
    motion = propose(chain, OPS[0], call)
    need = ayes or required_votes(threshold_of(chain.rt, call), len(members))
    for k in OPS[1:need]:
        vote(chain, k, motion)
    return close(chain, motion)


def executed(chain: Any, events: list[Any]) -> dict[str, Any]:
    ev = next(e for e in events if (e.module, e.name) == ("Council", "Executed"))
    return chain.args(ev)  # type: ignore[no-any-return]


def next_block(chain: Any) -> None:
    chain.finish_block()
    chain.start_block()


# --------------------------------------------------------------------------- membership


def test_founding_members_are_the_verified_facilities_operators(blk: Any) -> None:
    assert blk.rt.council.members() == sorted(k.public for k in OPS)
    assert not blk.rt.council.is_member(NEWOP.public)  # an operator without a facility
    assert blk.rt.sudo.Key.get() is None


def test_a_pending_or_unverified_facility_founds_no_member(make_chain: Any) -> None:
    cfg = world(2)
    cfg["facility"]["facilities"].append({"operator": "//Operator9", "name": "Pending plant"})
    chain = make_chain(sudo=False, extra=cfg)
    assert chain.rt.council.members() == sorted(k.public for k in OPS[:2])


# --------------------------------------------------------------------------- motions


def test_a_passed_motion_dispatches_its_call_as_root(blk: Any) -> None:
    call = wire(blk, "System", "set_chain_name", "Consortium")
    motion = propose(blk, OPS[0], call)
    (m,) = [m for i, m in blk.rt.council.open_motions() if i == motion]
    assert (m.threshold, m.ayes) == (TWO_THIRDS, [OPS[0].public])  # a runtime change
    for k in OPS[1:3]:
        vote(blk, k, motion)
    with pytest.raises(DispatchError) as e:  # 3 of 5 ayes: two thirds need 4
        close(blk, motion)
    assert err(e) == "Council.TooEarly"
    evs = vote(blk, OPS[3], motion)
    assert blk.args(evs[0]) == {
        "who": OPS[3].public,
        "motion": motion,
        "approve": True,
        "yes": 4,
        "no": 0,
    }
    evs = close(blk, motion)
    names = blk.names(evs)
    assert names[:2] == ["Council.Closed", "Council.Approved"]
    assert names[-1] == "Council.Executed"
    assert executed(blk, evs) == {"motion": motion, "hash": m.hash, "ok": "ok", "error": ""}
    assert blk.rt.system.chain_name() == "Consortium"
    assert blk.rt.council.open_motions() == []
    with pytest.raises(DispatchError) as e:
        close(blk, motion)  # closed once, for good
    assert err(e) == "Council.UnknownMotion"


def test_the_whole_flow_in_signed_extrinsics(make_chain: Any) -> None:
    cfg = world(3)
    cfg["balances"] = {"balances": [[f"//Operator{i}", 10**15] for i in (1, 2, 3)]}
    chain = make_chain(sudo=False, extra=cfg)
    inner = wire(chain, "Roles", "force_grant", NOBODY.public, "ServiceProvider")
    outs = chain.produce(chain.sign(OPS[0], chain.call("Council", "propose", inner, 200)))
    assert outs[0].success, outs[0]
    assert "Council.Proposed" in [f"{e['pallet']}.{e['event']}" for e in chain.events()]
    outs = chain.produce(
        chain.sign(OPS[1], chain.call("Council", "vote", 0, True)),
        chain.sign(OPS[2], chain.call("Council", "close", 0, 100_000)),
    )
    assert all(o.success for o in outs), outs
    names = [f"{e['pallet']}.{e['event']}" for e in chain.events()]
    assert "Roles.RoleGranted" in names and "Council.Executed" in names
    assert chain.rt.roles.has(NOBODY.public, "ServiceProvider")


def test_a_motion_one_vote_short_never_dispatches(blk: Any) -> None:
    # Majority of 5 is 3: two ayes are one short, whatever else happens.
    call = wire(blk, "Roles", "force_grant", NOBODY.public, "ServiceProvider")
    motion = propose(blk, OPS[0], call)
    vote(blk, OPS[1], motion)
    with pytest.raises(DispatchError) as e:
        close(blk, motion)
    assert err(e) == "Council.TooEarly"
    vote(blk, OPS[2], motion, False)
    vote(blk, OPS[3], motion, False)
    with pytest.raises(DispatchError) as e:  # 2 ayes, 2 nays: the last vote decides
        close(blk, motion)
    assert err(e) == "Council.TooEarly"
    vote(blk, OPS[4], motion, False)
    evs = close(blk, motion)  # 3 nays: it can no longer pass
    assert blk.names(evs) == ["Council.Closed", "Council.Disapproved"]
    assert blk.args(evs[0]) == {"motion": motion, "yes": 2, "no": 3}
    assert not blk.rt.roles.has(NOBODY.public, "ServiceProvider")


def test_two_thirds_one_vote_short_never_dispatches(blk: Any) -> None:
    call = wire(blk, "Authority", "set_authorities", [OPS[0].public])
    motion = propose(blk, OPS[0], call)
    for k in OPS[1:3]:
        vote(blk, k, motion)
    vote(blk, OPS[3], motion, False)
    with pytest.raises(DispatchError):
        close(blk, motion)  # 3 ayes of the 4 needed, 1 nay: still open
    vote(blk, OPS[4], motion, False)
    evs = close(blk, motion)
    assert blk.names(evs) == ["Council.Closed", "Council.Disapproved"]
    assert blk.rt.authority.NextAuthorities.get() is None


def test_an_expired_motion_cannot_be_closed_into_effect(blk: Any) -> None:
    call = wire(blk, "Roles", "force_grant", NOBODY.public, "ServiceProvider")
    motion = propose(blk, OPS[0], call)
    vote(blk, OPS[1], motion)
    for _ in range(DURATION):  # the motion's last block: still open
        next_block(blk)
    vote(blk, OPS[2], motion, False)
    next_block(blk)  # past its end
    with pytest.raises(DispatchError) as e:
        vote(blk, OPS[3], motion)  # the deciding aye comes too late
    assert err(e) == "Council.MotionExpired"
    evs = close(blk, motion)
    assert blk.names(evs) == [
        "Council.Expired",
        "Council.Closed",
        "Council.Disapproved",
    ]
    assert not blk.rt.roles.has(NOBODY.public, "ServiceProvider")


def test_enough_ayes_do_not_survive_expiry(blk: Any) -> None:
    # Approved in time but closed too late: expired, it never dispatches.
    call = wire(blk, "Roles", "force_grant", NOBODY.public, "ServiceProvider")
    motion = propose(blk, OPS[0], call)
    for k in OPS[1:4]:
        vote(blk, k, motion)
    for _ in range(DURATION + 1):
        next_block(blk)
    evs = close(blk, motion)
    assert "Council.Executed" not in blk.names(evs)
    assert "Council.Expired" in blk.names(evs)
    assert not blk.rt.roles.has(NOBODY.public, "ServiceProvider")


def test_non_members_cannot_propose_or_vote(blk: Any) -> None:
    call = wire(blk, "System", "remark", b"x")
    for who in (NOBODY, NEWOP, AUD):
        with pytest.raises(DispatchError) as e:
            propose(blk, who, call)
        assert err(e) == "Council.NotMember"
    motion = propose(blk, OPS[0], call)
    with pytest.raises(DispatchError) as e:
        vote(blk, NOBODY, motion)
    assert err(e) == "Council.NotMember"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Council", "propose", call, 100)  # root is no member
    assert err(e) == "System.BadOrigin"


def test_one_vote_each_which_may_change(blk: Any) -> None:
    call = wire(blk, "System", "remark", b"x")
    motion = propose(blk, OPS[0], call)
    with pytest.raises(DispatchError) as e:
        vote(blk, OPS[0], motion)  # the proposer's aye is cast already
    assert err(e) == "Council.DuplicateVote"
    vote(blk, OPS[1], motion, False)
    with pytest.raises(DispatchError) as e:
        vote(blk, OPS[1], motion, False)
    assert err(e) == "Council.DuplicateVote"
    evs = vote(blk, OPS[1], motion, True)  # changed: moves from nays to ayes
    assert blk.args(evs[0])["yes"] == 2 and blk.args(evs[0])["no"] == 0
    (m,) = [m for _, m in blk.rt.council.open_motions()]
    assert m.ayes == sorted([OPS[0].public, OPS[1].public]) and m.nays == []


def test_proposals_are_bounded_and_unique(blk: Any) -> None:
    call = wire(blk, "System", "remark", b"x" * 100)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPS[0]), "Council", "propose", call, 50)
    assert err(e) == "Council.WrongProposalLength"
    big = [0, 0, [b"x" * (MAX_PROPOSAL_BYTES + 1)]]
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPS[0]), "Council", "propose", big, 10**6)
    assert err(e) == "Council.ProposalTooLarge"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPS[0]), "Council", "propose", [99, 0, []], 100)
    assert err(e) == "Council.InvalidCall"
    propose(blk, OPS[0], call)
    with pytest.raises(DispatchError) as e:
        propose(blk, OPS[1], call)
    assert err(e) == "Council.DuplicateProposal"


def test_close_needs_a_weight_bound_covering_the_call(blk: Any) -> None:
    call = wire(blk, "System", "set_chain_name", "X")
    motion = propose(blk, OPS[0], call)
    for k in OPS[1:4]:
        vote(blk, k, motion)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(NOBODY), "Council", "close", motion, 1)
    assert err(e) == "Council.WrongProposalWeight"
    (m,) = [m for _, m in blk.rt.council.open_motions()]
    blk.dispatch(signed(NOBODY), "Council", "close", motion, m.weight)


def test_a_failing_call_is_reported_and_reverted(blk: Any) -> None:
    call = wire(blk, "Facility", "suspend", 77, b"\x00" * 32)  # no facility 77
    evs = pass_motion(blk, call)
    assert executed(blk, evs)["error"] == "Facility.UnknownFacility"


# --------------------------------------------------------------------------- thresholds


def test_required_votes() -> None:
    assert [required_votes(MAJORITY, n) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 2, 3, 3, 4]
    assert [required_votes(TWO_THIRDS, n) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 2, 3, 4, 4]
    assert required_votes(MAJORITY, 0) == required_votes(TWO_THIRDS, 0) == 1


def test_thresholds_by_kind_of_call(blk: Any) -> None:
    def t(pallet: str, name: str, *args: Any) -> str:
        return threshold_of(blk.rt, wire(blk, pallet, name, *args))

    acct = NOBODY.public
    # membership, authority, runtime, the council's own rules, trust anchors: two thirds
    assert t("Facility", "suspend", 0, b"\x00" * 32) == TWO_THIRDS
    assert t("Facility", "reinstate", 0) == TWO_THIRDS
    assert t("Facility", "revoke", 0, b"\x00" * 32) == TWO_THIRDS
    assert t("Facility", "approve_validator", 0) == TWO_THIRDS
    assert t("Facility", "add_well_known_node", b"\x00" * 38) == TWO_THIRDS
    assert t("Authority", "set_authorities", [acct]) == TWO_THIRDS
    assert t("System", "set_chain_name", "x") == TWO_THIRDS
    assert t("Council", "set_motion_duration", 100) == TWO_THIRDS
    for role in ("FacilityOperator", "CertifiedAuditor", "EquipmentManufacturer"):
        assert t("Roles", "force_grant", acct, role) == TWO_THIRDS
        assert t("Roles", "force_revoke", acct, role) == TWO_THIRDS
    # everything else: a simple majority
    assert t("Roles", "force_grant", acct, "ServiceProvider") == MAJORITY
    assert t("Balances", "force_set_balance", acct, 1) == MAJORITY
    assert t("Telemetry", "register_metric", 9, "temp", "C", 0, "Gauge") == MAJORITY


def test_a_majority_motion_passes_with_three_of_five(blk: Any) -> None:
    evs = pass_motion(blk, wire(blk, "Roles", "force_grant", NOBODY.public, "Gateway"), 3)
    assert executed(blk, evs)["ok"] == "ok"
    # the same three ayes do not grant a trust anchor
    call = wire(blk, "Roles", "force_grant", NOBODY.public, "CertifiedAuditor")
    motion = propose(blk, OPS[0], call)
    for k in OPS[1:3]:
        vote(blk, k, motion)
    with pytest.raises(DispatchError):
        close(blk, motion)
    vote(blk, OPS[3], motion)
    assert executed(blk, close(blk, motion))["ok"] == "ok"
    assert blk.rt.roles.has(NOBODY.public, "CertifiedAuditor")


def test_motion_duration_is_governed(blk: Any) -> None:
    evs = pass_motion(blk, wire(blk, "Council", "set_motion_duration", 50))
    assert executed(blk, evs)["ok"] == "ok"
    assert blk.rt.council.MotionDuration.get() == 50
    evs = pass_motion(blk, wire(blk, "Council", "set_motion_duration", 1))
    assert executed(blk, evs)["error"] == "Council.InvalidDuration"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPS[0]), "Council", "set_motion_duration", 50)
    assert err(e) == "System.BadOrigin"


# --------------------------------------------------------------------------- membership sync


def test_membership_follows_facility_suspend_reinstate_revoke(blk: Any) -> None:
    gone = OPS[4]
    # An open motion gone's aye counts on, until gone leaves.
    remark = wire(blk, "System", "remark", b"pending")
    pending = propose(blk, OPS[0], remark)
    vote(blk, gone, pending)
    evs = pass_motion(blk, wire(blk, "Facility", "suspend", 4, b"\x01" * 32))
    assert executed(blk, evs)["ok"] == "ok"
    next_block(blk)  # the council follows at the end of the block
    assert blk.rt.council.members() == sorted(k.public for k in OPS[:4])
    names = [f"{e['pallet']}.{e['event']}" for e in blk.events()]
    assert "Council.MemberRemoved" in names
    (m,) = [m for i, m in blk.rt.council.open_motions() if i == pending]
    assert m.ayes == [OPS[0].public]  # gone's vote went with it
    with pytest.raises(DispatchError) as e:
        vote(blk, gone, pending)
    assert err(e) == "Council.NotMember"

    # Four members now: two thirds is 3.
    evs = pass_motion(blk, wire(blk, "Facility", "reinstate", 4), 3)
    assert executed(blk, evs)["ok"] == "ok"
    next_block(blk)
    assert blk.rt.council.is_member(gone.public)

    evs = pass_motion(blk, wire(blk, "Facility", "revoke", 4, b"\x02" * 32))
    assert executed(blk, evs)["ok"] == "ok"
    next_block(blk)
    assert not blk.rt.council.is_member(gone.public)
    assert len(blk.rt.council.members()) == 4


def register(chain: Any, name: str) -> None:
    chain.dispatch(signed(NEWOP), "Facility", "register", name, "Lyon", ["milling"], NEWOP.public)


def test_a_newly_verified_facility_brings_its_operator_in(blk: Any) -> None:
    register(blk, "New plant")
    fid = blk.rt.facility.NextFacilityId.get() - 1
    next_block(blk)
    assert not blk.rt.council.is_member(NEWOP.public)  # registered, not yet verified
    blk.dispatch(signed(AUD), "Facility", "verify", fid, b"\x11" * 32, True, FAR)
    next_block(blk)
    assert blk.rt.council.is_member(NEWOP.public)
    assert len(blk.rt.council.members()) == 6


def test_losing_the_operator_role_leaves_the_council(blk: Any) -> None:
    evs = pass_motion(blk, wire(blk, "Roles", "force_revoke", OPS[4].public, "FacilityOperator"))
    assert executed(blk, evs)["ok"] == "ok"
    next_block(blk)
    assert not blk.rt.council.is_member(OPS[4].public)


def test_a_lapsed_verification_leaves_on_sync(blk: Any) -> None:
    register(blk, "Brief plant")
    fid = blk.rt.facility.NextFacilityId.get() - 1
    soon = blk.rt.now() + 3_000
    blk.dispatch(signed(AUD), "Facility", "verify", fid, b"\x11" * 32, True, soon)
    next_block(blk)
    assert blk.rt.council.is_member(NEWOP.public)
    for _ in range(4):
        next_block(blk)
    assert not blk.rt.facility.is_verified(fid)
    evs = blk.dispatch(signed(NOBODY), "Council", "sync_member", NEWOP.public)
    assert blk.names(evs) == ["Council.MemberRemoved"]
    assert not blk.rt.council.is_member(NEWOP.public)
    assert blk.dispatch(signed(NOBODY), "Council", "sync_member", NEWOP.public) == []


# --------------------------------------------------------------------------- permission matrix


def sample(t: Any) -> Any:
    """A value of codec type ``t`` that encodes (the call's own checks may still refuse it)."""
    if isinstance(t, Lazy):
        return sample(t._resolve())
    if isinstance(t, Struct):
        return t.cls(*(sample(ft) for _, ft in t.fields))
    if isinstance(t, Tuple):
        return tuple(sample(i) for i in t.items)
    if isinstance(t, Vec):
        return [sample(t.inner)] if t.max_len else []
    if isinstance(t, Option):
        return sample(t.inner)
    if isinstance(t, Enum):
        return t.variants[0]
    if isinstance(t, Fixed):
        return b"\x01" * t.n
    if isinstance(t, Bytes):
        return b"\x01"
    if isinstance(t, Str):
        return "x"
    if t is RuntimeCall:
        return [0, 0, [b""]]
    for candidate in (1, True, "x", b"\x01", []):
        try:
            t.to_wire(candidate)
        except Exception:  # try the next kind of value
            continue
        return candidate
    raise AssertionError(f"no sample value for {t.name}")


def root_calls(rt: Runtime) -> list[tuple[str, str, str]]:
    """(pallet, call, declared origin) of every call that accepts the Root origin, from the
    runtime's metadata."""
    return [
        (p["name"], c["name"], c["origin"])
        for p in rt.metadata()["pallets"]
        for c in p["calls"]
        if ROOT in c["origin"].split("|")
    ]


def test_the_matrix_covers_every_pallet_that_has_root_calls() -> None:
    found = {p for p, _, _ in root_calls(Runtime())}
    assert {"System", "Authority", "Balances", "Roles", "Facility", "Council"} <= found
    assert len(root_calls(Runtime())) >= 20


def test_every_root_call_is_refused_signed_and_reachable_by_motion(blk: Any) -> None:
    calls = root_calls(blk.rt)
    reached = []
    for pallet, name, declared in calls:
        cd = blk.rt.by_name[pallet].calls_by_name[name]
        args = [sample(t) for _, t in cd.args]
        # Without a motion: refused, for a member and for anyone else.
        for who in (OPS[0], NOBODY):
            with pytest.raises(DispatchError) as e:
                blk.dispatch(signed(who), pallet, name, *args)
            if declared == ROOT:
                assert err(e) == "System.BadOrigin", (pallet, name)
        with pytest.raises(DispatchError) as e:
            blk.dispatch(Origin.none(), pallet, name, *args)
        assert err(e) == "System.BadOrigin", (pallet, name)
        # Through a passed motion: the call runs as Root and reaches its own checks.
        evs = pass_motion(blk, wire(blk, pallet, name, *args))
        result = executed(blk, evs)
        assert result["error"] not in ("System.BadOrigin", "System.CallFiltered"), (
            pallet,
            name,
            result,
        )
        reached.append((pallet, name, result["ok"]))
    assert len(reached) == len(calls)
    assert any(ok == "ok" for _, _, ok in reached)


# --------------------------------------------------------------------------- specs


def test_only_the_dev_spec_has_sudo() -> None:
    assert dev_spec().genesis["sudo"] == {"key": "//Alice"}
    for spec in (local_spec(["//Alice", "//Bob"]), resolve(False, "local")):
        assert "sudo" not in spec.genesis
        assert spec.genesis_block()  # builds


def test_local_spec_is_governed_by_its_validators(make_chain: Any) -> None:
    spec = local_spec(["//Alice", "//Bob", "//Charlie"])
    rt = Runtime()
    rt.build_genesis(spec.genesis)
    alice, bob, charlie = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie"))
    assert rt.council.members() == sorted([alice.public, bob.public, charlie.public])
    assert rt.sudo.Key.get() is None
    assert rt.authority.Authorities.get() == [alice.public, bob.public, charlie.public]


def test_consortium_spec_from_build_spec_flags() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--chain")
    p.add_argument("--dev", action="store_true")
    add_consortium_args(p)
    args = p.parse_args(
        [
            "--chain", "consortium", "--name", "Acme", "--id", "acme",
            "--facility", "Plant A,//Operator1", "--facility", "Plant B,//Operator2,//Validator2",
            "--auditor", "//Auditor", "--motion-duration", "100",
        ]
    )  # fmt: skip
    spec = consortium_from_args(args)
    assert spec is not None and (spec.name, spec.id) == ("Acme", "acme")
    assert "sudo" not in spec.genesis
    assert spec.genesis["authority"]["authorities"] == ["//Operator1", "//Validator2"]
    rt = Runtime()
    rt.build_genesis(spec.genesis)
    assert rt.council.members() == sorted(k.public for k in OPS[:2])
    assert rt.council.MotionDuration.get() == 100
    assert rt.roles.has(AUD.public, "CertifiedAuditor")
    assert rt.balances.data(OPS[0].public).free > 0
    assert consortium_from_args(p.parse_args(["--chain", "local"])) is None


def test_consortium_spec_refuses_bad_founders() -> None:

    with pytest.raises(ChainSpecError):
        consortium_spec("X", "x", [])
    dup = [FoundingFacility("A", "//Operator1", "//V"), FoundingFacility("B", "//Operator2", "//V")]
    with pytest.raises(ChainSpecError):
        consortium_spec("X", "x", dup)
    with pytest.raises(ChainSpecError):
        consortium_spec("X", "x", [FoundingFacility("A", "not-an-address")])


def test_open_motions_are_bounded_and_expired_ones_make_room(
    blk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twinchain.runtime.pallets import council

    monkeypatch.setattr(council, "MAX_MOTIONS", 3)
    for i in range(3):
        propose(blk, OPS[0], wire(blk, "System", "remark", bytes([i])))
    with pytest.raises(DispatchError) as e:
        propose(blk, OPS[0], wire(blk, "System", "remark", b"more"))
    assert err(e) == "Council.TooManyMotions"
    for _ in range(DURATION + 1):
        next_block(blk)
    more = wire(blk, "System", "remark", b"more")
    evs = blk.dispatch(signed(OPS[0]), "Council", "propose", more, 100)
    assert blk.names(evs).count("Council.Expired") == 3
    assert [i for i, _ in blk.rt.council.open_motions()] == [3]
    # an expired motion's call may be proposed again
    propose(blk, OPS[1], wire(blk, "System", "remark", bytes([0])))


def test_consortium_spec_lists_founding_nodes_and_peer_id_boot_nodes() -> None:
    # The founders' nodes and the boot nodes are admitted: the network is permissioned.
    node, boot = (peer_id_text(bytes([0, 36, 8, 1, 18, 32]) + bytes([i]) * 32) for i in (1, 2))
    p = argparse.ArgumentParser()
    p.add_argument("--chain")
    add_consortium_args(p)
    args = p.parse_args(
        [
            "--chain", "consortium", "--facility", f"Plant A,//Operator1,,{node}",
            "--facility", "Plant B,//Operator2",
            "--bootnode", f"/ip4/10.0.0.1/tcp/30333/p2p/{boot}",
        ]
    )  # fmt: skip
    spec = consortium_from_args(args)
    assert spec is not None
    assert spec.genesis["authority"]["authorities"] == ["//Operator1", "//Operator2"]
    rt = Runtime()
    rt.build_genesis(spec.genesis)
    assert set(rt.facility.authorized_nodes()) == {parse_peer_id(node), parse_peer_id(boot)}
    for bad in ("Plant A,//Operator1,,not-a-peer-id", "Plant A,//Operator1,,"):
        with pytest.raises(ChainSpecError):
            consortium_from_args(p.parse_args(["--chain", "consortium", "--facility", bad]))
