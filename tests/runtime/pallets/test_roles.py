"""Roles: root grants anything, owning roles grant theirs, granters revoke, holders renounce."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.roles import GRANTORS, ROLE_NAMES

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
OPERATOR = Keypair.from_dev_name("Operator")


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


@pytest.fixture
def blk(make_chain: Any) -> Any:
    chain = make_chain(extra={"roles": {"grants": [["//Operator", "FacilityOperator"]]}})
    chain.start_block()
    return chain


def test_genesis_grants(blk: Any) -> None:
    roles = blk.rt.roles
    assert roles.has(OPERATOR.public, "FacilityOperator")
    assert not roles.has(OPERATOR.public, "Gateway")
    assert [r for r, _ in roles.roles_of(OPERATOR.public)] == ["FacilityOperator"]


def test_genesis_rejects_unknown_role(make_chain: Any) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        make_chain(extra={"roles": {"grants": [["//Bob", "Wizard"]]}})


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_root_grants_and_revokes_every_role(blk: Any, role: str) -> None:
    evs = blk.dispatch(Origin.root(), "Roles", "force_grant", DAVE.public, role)
    assert blk.names(evs) == ["Roles.RoleGranted"]
    assert blk.args(evs[0]) == {"who": DAVE.public, "role": role, "by": None}
    assert blk.rt.roles.has(DAVE.public, role)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Roles", "force_grant", DAVE.public, role)
    assert err(e) == "Roles.AlreadyGranted"
    blk.dispatch(Origin.root(), "Roles", "force_revoke", DAVE.public, role)
    assert not blk.rt.roles.has(DAVE.public, role)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Roles", "force_revoke", DAVE.public, role)
    assert err(e) == "Roles.NotGranted"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_only_owning_roles_grant(blk: Any, role: str) -> None:
    """A facility operator grants owners, service providers and gateways, nothing else."""
    if "FacilityOperator" in GRANTORS[role]:
        blk.dispatch(signed(OPERATOR), "Roles", "grant", DAVE.public, role)
        g = blk.rt.roles.Grants.get(DAVE.public, role)
        assert g.granted_by == OPERATOR.public and g.since == 1
    else:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OPERATOR), "Roles", "grant", DAVE.public, role)
        assert err(e) == "Roles.NotGrantor"
        assert not blk.rt.roles.has(DAVE.public, role)
    # An account without roles grants nothing.
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(BOB), "Roles", "grant", CHARLIE.public, role)
    assert err(e) == "Roles.NotGrantor"


def test_trust_anchors_come_from_governance_only() -> None:
    for role in ("FacilityOperator", "CertifiedAuditor", "EquipmentManufacturer"):
        assert GRANTORS[role] == ()
    assert GRANTORS["Device"] == ("EquipmentOwner",)


def test_revoke_by_the_granter_only(blk: Any) -> None:
    blk.dispatch(signed(OPERATOR), "Roles", "grant", DAVE.public, "Gateway")
    blk.dispatch(Origin.root(), "Roles", "force_grant", BOB.public, "FacilityOperator")
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(BOB), "Roles", "revoke", DAVE.public, "Gateway")
    assert err(e) == "Roles.NotGranter"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPERATOR), "Roles", "revoke", DAVE.public, "ServiceProvider")
    assert err(e) == "Roles.NotGranted"
    evs = blk.dispatch(signed(OPERATOR), "Roles", "revoke", DAVE.public, "Gateway")
    assert blk.args(evs[0]) == {"who": DAVE.public, "role": "Gateway", "by": OPERATOR.public}
    assert not blk.rt.roles.has(DAVE.public, "Gateway")


def test_root_granted_roles_cannot_be_revoked_by_a_signed_account(blk: Any) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPERATOR), "Roles", "revoke", OPERATOR.public, "FacilityOperator")
    assert err(e) == "Roles.NotGranter"


def test_renounce(blk: Any) -> None:
    blk.dispatch(signed(OPERATOR), "Roles", "renounce", "FacilityOperator")
    assert not blk.rt.roles.has(OPERATOR.public, "FacilityOperator")
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPERATOR), "Roles", "renounce", "FacilityOperator")
    assert err(e) == "Roles.NotGranted"


@pytest.mark.parametrize("name", ["force_grant", "force_revoke"])
def test_root_calls_need_root(blk: Any, name: str) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OPERATOR), "Roles", name, DAVE.public, "Gateway")
    assert err(e) == "System.BadOrigin"


def test_grant_through_sudo_extrinsic(chain: Any) -> None:
    inner = list(chain.call("Roles", "force_grant", DAVE.public, "CertifiedAuditor").to_wire())
    chain.produce(chain.sign(ALICE, chain.call("Sudo", "sudo", inner)))
    assert chain.rt.roles.has(DAVE.public, "CertifiedAuditor")
