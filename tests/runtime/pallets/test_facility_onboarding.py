"""Onboarding a facility onto the network and the authority set, in real blocks: it registers,
an auditor verifies it, its operator proposes its validator and node, a council motion
approves, and at the session boundary its key is an authority; its node's peer id is
authorized from the approval on. Offboarding (suspension, revocation) runs the same way back.
Authorized nodes: a facility's own (add/remove by its operator), well-known ones (Root)."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.council import MAX_PROPOSAL_BYTES, required_votes, threshold_of
from twinchain.runtime.pallets.facility.types import MAX_NODES, peer_id_text

SESSION = 5  # blocks
FAR = 10**13  # ms
EVIDENCE = b"\x11" * 32
OPS = [Keypair.from_dev_name(f"Operator{i}") for i in range(1, 6)]
VALS = [Keypair.from_dev_name(f"Validator{i}") for i in range(1, 6)]
AUD, NOBODY = Keypair.from_dev_name("Auditor"), Keypair.from_dev_name("Nobody")


def node_id(i: int) -> bytes:
    """A libp2p peer id: the identity multihash of an Ed25519 public key's protobuf."""
    return bytes([0, 36, 8, 1, 18, 32]) + bytes([i]) * 32


NODES = [node_id(i) for i in range(1, 6)]
NEW = 4  # the fifth facility's index, its operator, validator and node


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world() -> dict[str, Any]:
    """Four founding facilities, each a validator with one node on chain (the genesis lists
    nodes in base58, as libp2p prints them); a fifth operator and an auditor."""
    return {
        "authority": {
            "authorities": ["0x" + v.public.hex() for v in VALS[:4]],
            "slot_duration_ms": 1000,
            "session_length": SESSION,
        },
        "roles": {
            "grants": [[f"//Operator{i}", "FacilityOperator"] for i in range(1, 6)]
            + [["//Auditor", "CertifiedAuditor"]]
        },
        "facility": {
            "facilities": [
                {
                    "operator": f"//Operator{i + 1}",
                    "name": f"Plant {i}",
                    "validator": "0x" + VALS[i].public.hex(),
                    "verified_until": FAR,
                    "nodes": [peer_id_text(NODES[i])],
                }
                for i in range(4)
            ]
        },
        "council": {"motion_duration": 20},
    }


@pytest.fixture
def chain(make_chain: Any) -> Any:
    c = make_chain(sudo=False, extra=world())
    c.start_block()
    return c


def motion(chain: Any, pallet: str, name: str, *args: Any) -> list[Any]:
    """Pass a council motion carrying the call: proposed by the first member, just enough
    ayes, closed; returns the close's events."""
    call = list(chain.call(pallet, name, *args).to_wire())
    index = int(chain.rt.council.MotionCount.get())
    members = chain.rt.council.members()
    proposer = next(k for k in OPS if k.public in members)
    chain.dispatch(signed(proposer), "Council", "propose", call, MAX_PROPOSAL_BYTES)
    need = required_votes(threshold_of(chain.rt, call), len(members))
    for k in [k for k in OPS if k.public in members and k is not proposer][: need - 1]:
        chain.dispatch(signed(k), "Council", "vote", index, True)
    evs = chain.dispatch(signed(NOBODY), "Council", "close", index, 10**12)
    assert chain.names(evs)[-1] == "Council.Executed"
    assert chain.args(evs[-1])["ok"] == "ok", chain.args(evs[-1])
    return evs  # type: ignore[no-any-return]


def next_session(chain: Any) -> None:
    """Finish the open block and open blocks up to the next session boundary (its
    on_initialize has run)."""
    chain.finish_block()
    chain.start_block()
    while chain.head_number + 1 <= 0 or (chain.head_number + 1) % SESSION != 0:
        chain.finish_block()
        chain.start_block()


def authorities(chain: Any) -> list[bytes]:
    return chain.rt.authority.Authorities.get()  # type: ignore[no-any-return]


def authorized(chain: Any) -> list[bytes]:
    """What the node admits: authorized_nodes given the current set (as the node asks)."""
    return chain.rt.facility.authorized_nodes(authorities(chain))  # type: ignore[no-any-return]


def onboard_fifth(chain: Any) -> None:
    """Register, audit and propose the fifth facility (its operator and an auditor)."""
    chain.dispatch(
        signed(OPS[NEW]), "Facility", "register", "Plant 4", "Brno", ["welding"],
        VALS[NEW].public,
    )  # fmt: skip
    chain.dispatch(signed(AUD), "Facility", "verify", NEW, EVIDENCE, True, FAR)
    chain.dispatch(signed(OPS[NEW]), "Facility", "propose_validator", NEW, NODES[NEW])


def test_fifth_facility_joins_at_the_boundary_and_leaves_after_suspension(chain: Any) -> None:
    f = chain.rt.facility
    assert authorized(chain) == sorted(NODES[:4])
    onboard_fifth(chain)
    # Proposed: neither its node nor its key counts before the council approves.
    assert NODES[NEW] not in authorized(chain)
    assert f.validator_changes(authorities(chain)) == ([], [])
    next_session(chain)  # a boundary passes: nothing changes without approval
    assert VALS[NEW].public not in authorities(chain)
    set_id = chain.rt.authority.SetId.get()

    evs = motion(chain, "Facility", "approve_validator", NEW)
    assert "Facility.ValidatorApproved" in chain.names(evs)
    # Approved: its node is authorized at once (it connects and syncs before it authors)...
    assert NODES[NEW] in authorized(chain)
    assert VALS[NEW].public not in authorities(chain)
    # ... and its key is an authority from the next session on, a new finality set.
    next_session(chain)
    assert authorities(chain) == [v.public for v in VALS]
    assert chain.rt.authority.SetId.get() == set_id + 1
    assert f.ValidatorProposals.get(NEW).status == "Active"
    assert "Facility.ValidatorActivated" in chain.names([ev for _, ev in chain.rt.state.events])
    log = [e.kind for e in f.audit_log(NEW)]
    assert log == ["Registered", "Verified", "ValidatorProposed", "ValidatorApproved"]

    # Offboarding: the council suspends it; it stays an authority (and reachable) until the
    # boundary, then its key and node are gone.
    motion(chain, "Facility", "suspend", NEW, EVIDENCE)
    assert VALS[NEW].public in authorities(chain) and NODES[NEW] in authorized(chain)
    next_session(chain)
    assert authorities(chain) == [v.public for v in VALS[:4]]
    assert chain.rt.authority.SetId.get() == set_id + 2
    assert NODES[NEW] not in authorized(chain)
    assert f.ValidatorProposals.get(NEW) is None


def test_a_revoked_founding_facility_leaves_the_set_and_the_network(chain: Any) -> None:
    """Genesis validators have no proposal: the boundary removes a key of the set whose
    facility is no longer verified all the same."""
    motion(chain, "Facility", "revoke", 3, EVIDENCE)
    assert NODES[3] in authorized(chain)  # still an authority this session
    next_session(chain)
    assert authorities(chain) == [v.public for v in VALS[:3]]
    assert authorized(chain) == sorted(NODES[:3])


def test_the_authority_set_never_empties(make_chain: Any) -> None:
    cfg = world()
    cfg["authority"]["authorities"] = ["0x" + VALS[0].public.hex()]
    chain = make_chain(sudo=False, extra=cfg)
    chain.start_block()
    motion(chain, "Facility", "suspend", 0, EVIDENCE)
    next_session(chain)
    assert authorities(chain) == [VALS[0].public]


def test_withdrawn_before_the_boundary_never_joins(chain: Any) -> None:
    onboard_fifth(chain)
    motion(chain, "Facility", "approve_validator", NEW)
    chain.dispatch(signed(OPS[NEW]), "Facility", "withdraw_validator", NEW)
    next_session(chain)
    assert VALS[NEW].public not in authorities(chain)
    assert chain.rt.facility.ValidatorProposals.get(NEW) is None
    # Its node stays authorized: the facility is verified; its operator removes it now.
    assert NODES[NEW] in authorized(chain)
    chain.dispatch(signed(OPS[NEW]), "Facility", "remove_node", NEW, NODES[NEW])
    assert NODES[NEW] not in authorized(chain)


def test_approval_needs_a_pending_proposal_of_a_verified_facility(chain: Any) -> None:
    with pytest.raises(DispatchError) as e:
        chain.dispatch(Origin.root(), "Facility", "approve_validator", 0)
    assert err(e) == "Facility.NotPending"
    onboard_fifth(chain)
    chain.dispatch(Origin.root(), "Facility", "suspend", NEW, EVIDENCE)
    with pytest.raises(DispatchError) as e:  # suspension removed the proposal
        chain.dispatch(Origin.root(), "Facility", "approve_validator", NEW)
    assert err(e) == "Facility.NotPending"
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[0]), "Facility", "propose_validator", 0, NODES[1])
    assert err(e) == "Facility.NodeInUse"  # another facility's node


def test_facility_nodes_by_their_operator(chain: Any) -> None:
    f = chain.rt.facility
    extra = node_id(9)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[1]), "Facility", "add_node", 0, extra)
    assert err(e) == "Facility.NotFacilityOperator"
    chain.dispatch(signed(OPS[0]), "Facility", "add_node", 0, extra)
    assert f.nodes(0) == [NODES[0], extra] and extra in authorized(chain)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[0]), "Facility", "add_node", 0, extra)
    assert err(e) == "Facility.NodeInUse"
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[1]), "Facility", "add_node", 1, extra)
    assert err(e) == "Facility.NodeInUse"
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[0]), "Facility", "add_node", 0, b"\x12\x20" + b"\x00" * 31)
    assert err(e) == "Facility.InvalidPeerId"
    for i in range(MAX_NODES - 2):
        chain.dispatch(signed(OPS[0]), "Facility", "add_node", 0, node_id(100 + i))
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[0]), "Facility", "add_node", 0, node_id(99))
    assert err(e) == "Facility.TooManyNodes"
    # Governance removes a node (a compromised key); an operator its own.
    chain.dispatch(Origin.root(), "Facility", "remove_node", 0, extra)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[0]), "Facility", "remove_node", 0, extra)
    assert err(e) == "Facility.UnknownNode"
    # A suspended facility's nodes stop counting once its key left the set.
    chain.dispatch(Origin.root(), "Facility", "suspend", 1, EVIDENCE)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[1]), "Facility", "add_node", 1, node_id(77))
    assert err(e) == "Facility.NotVerified"
    assert NODES[1] in authorized(chain) and NODES[1] not in f.authorized_nodes()


def test_the_validators_node_stays_while_its_proposal_lives(chain: Any) -> None:
    onboard_fifth(chain)
    motion(chain, "Facility", "approve_validator", NEW)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[NEW]), "Facility", "remove_node", NEW, NODES[NEW])
    assert err(e) == "Facility.NodeOfValidator"


def test_well_known_nodes_by_root(chain: Any) -> None:
    f = chain.rt.facility
    boot = node_id(42)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OPS[0]), "Facility", "add_well_known_node", boot)
    assert err(e) == "System.BadOrigin"
    motion(chain, "Facility", "add_well_known_node", boot)
    assert f.well_known_nodes() == [boot] and boot in authorized(chain)
    with pytest.raises(DispatchError) as e:  # one owner per peer id
        chain.dispatch(signed(OPS[0]), "Facility", "add_node", 0, boot)
    assert err(e) == "Facility.NodeInUse"
    chain.dispatch(Origin.root(), "Facility", "remove_well_known_node", boot)
    assert boot not in authorized(chain)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(Origin.root(), "Facility", "remove_well_known_node", boot)
    assert err(e) == "Facility.UnknownNode"


def test_genesis_peer_ids_are_checked(make_chain: Any) -> None:
    cfg = world()
    cfg["facility"]["well_known_nodes"] = [peer_id_text(NODES[0])]  # facility 0's too
    with pytest.raises(ValueError, match="listed twice"):
        make_chain(sudo=False, extra=cfg)
    cfg["facility"]["well_known_nodes"] = ["not-a-peer-id"]
    with pytest.raises(ValueError, match="not a peer id"):
        make_chain(sudo=False, extra=cfg)
