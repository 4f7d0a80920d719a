"""Sudo: root dispatch by the key, inner failures in events, key changes, sudo_as."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.balances import EXISTENTIAL_DEPOSIT as ED
from twinchain.runtime.weights.sudo import SUDO_OVERHEAD
from twinchain.runtime.weights.system import EXTRINSIC_BASE_WEIGHT

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
UNIT = 10**12


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def wire(chain: Any, pallet: str, name: str, *args: Any) -> list[Any]:
    return list(chain.call(pallet, name, *args).to_wire())


def test_sudo_dispatches_as_root(block: Any) -> None:
    inner = wire(block, "Balances", "force_set_balance", DAVE.public, 7 * UNIT)
    evs = block.dispatch(Origin.signed(ALICE.public), "Sudo", "sudo", inner)
    assert block.names(evs)[-1] == "Sudo.Sudid"
    assert block.args(evs[-1]) == {"ok": "ok", "error": ""}
    assert block.free(DAVE.public) == 7 * UNIT


@pytest.mark.parametrize(
    ("inner", "error"),
    [
        (("Balances", "force_set_balance", DAVE.public, ED - 1), "Balances.ExistentialDeposit"),
        (("System", "remark", b"root cannot remark"), "System.BadOrigin"),
        (("Timestamp", "set", 5_000), "System.CallFiltered"),
    ],
)
def test_inner_failure_is_reported_not_raised(block: Any, inner: Any, error: str) -> None:
    issuance = block.issuance()
    evs = block.dispatch(Origin.signed(ALICE.public), "Sudo", "sudo", wire(block, *inner))
    assert block.names(evs) == ["Sudo.Sudid"]  # the inner call's events are reverted
    assert block.args(evs[0]) == {"ok": "err", "error": error}
    assert block.free(DAVE.public) == 0 and block.issuance() == issuance


def test_undecodable_inner_call(block: Any) -> None:
    evs = block.dispatch(Origin.signed(ALICE.public), "Sudo", "sudo", [3, 0, [b"short"]])
    assert block.args(evs[0]) == {"ok": "err", "error": "System.InvalidCall"}


def test_nesting_is_bounded(block: Any) -> None:
    # sudo_as(Alice, ...) keeps a signed origin, so sudo calls can be stacked.
    def stacked(wrappers: int) -> list[Any]:
        call = wire(block, "Sudo", "sudo", wire(block, "Balances", "force_set_balance", *target))
        for _ in range(wrappers):
            call = wire(block, "Sudo", "sudo_as", ALICE.public, call)
        return call

    target = (DAVE.public, UNIT)
    alice = Origin.signed(ALICE.public)
    # 3 wrappers + sudo + force_set_balance: five nested dispatches, one too many.
    evs = block.dispatch(alice, "Sudo", "sudo_as", ALICE.public, stacked(3))
    results = [block.args(e) for e in evs if e.module == "Sudo"]
    assert results[0] == {"ok": "err", "error": "System.CallFiltered"}
    assert all(r == {"ok": "ok", "error": ""} for r in results[1:])
    assert block.free(DAVE.public) == 0
    # Four nested dispatches are allowed.
    evs = block.dispatch(alice, "Sudo", "sudo_as", ALICE.public, stacked(2))
    assert all(block.args(e)["ok"] == "ok" for e in evs if e.module == "Sudo")
    assert block.free(DAVE.public) == UNIT


def test_only_the_key_may_sudo(block: Any) -> None:
    inner = wire(block, "Balances", "force_set_balance", DAVE.public, UNIT)
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.signed(BOB.public), "Sudo", "sudo", inner)
    assert err(e) == "Sudo.RequireSudo"
    for origin in (Origin.root(), Origin.none()):
        with pytest.raises(DispatchError) as e:
            block.dispatch(origin, "Sudo", "sudo", inner)
        assert err(e) == "System.BadOrigin"
        with pytest.raises(DispatchError) as e:
            block.rt.sudo.sudo(origin, inner)
        assert err(e) == "System.BadOrigin"
    assert block.free(DAVE.public) == 0


def test_without_a_key_every_sudo_call_fails(make_chain: Any) -> None:
    chain = make_chain(sudo=False)
    chain.start_block()
    assert chain.rt.sudo.Key.get() is None
    inner = wire(chain, "Balances", "force_set_balance", DAVE.public, UNIT)
    for name, args in (
        ("sudo", (inner,)),
        ("sudo_as", (BOB.public, inner)),
        ("set_key", (ALICE.public,)),
    ):
        with pytest.raises(DispatchError) as e:
            chain.dispatch(Origin.signed(ALICE.public), "Sudo", name, *args)
        assert err(e) == "Sudo.RequireSudo"
    assert chain.rt.sudo.Key.get() is None


def test_set_key_hands_over(block: Any) -> None:
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.signed(BOB.public), "Sudo", "set_key", BOB.public)
    assert err(e) == "Sudo.RequireSudo"
    evs = block.dispatch(Origin.signed(ALICE.public), "Sudo", "set_key", BOB.public)
    assert block.args(evs[0]) == {"old": ALICE.public, "new": BOB.public}
    assert block.rt.sudo.Key.get() == BOB.public
    inner = wire(block, "Balances", "force_set_balance", DAVE.public, UNIT)
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.signed(ALICE.public), "Sudo", "sudo", inner)
    assert err(e) == "Sudo.RequireSudo"
    block.dispatch(Origin.signed(BOB.public), "Sudo", "sudo", inner)
    assert block.free(DAVE.public) == UNIT


def test_sudo_as_dispatches_as_the_account(block: Any) -> None:
    inner = wire(block, "Balances", "transfer", DAVE.public, 2 * UNIT)
    evs = block.dispatch(Origin.signed(ALICE.public), "Sudo", "sudo_as", BOB.public, inner)
    assert block.args(evs[-1]) == {"ok": "ok", "error": ""}
    assert block.free(DAVE.public) == 2 * UNIT
    assert block.free(BOB.public) == 1_000 * UNIT - 2 * UNIT
    root_only = wire(block, "Balances", "force_set_balance", DAVE.public, UNIT)
    evs = block.dispatch(Origin.signed(ALICE.public), "Sudo", "sudo_as", BOB.public, root_only)
    assert block.args(evs[-1]) == {"ok": "err", "error": "System.BadOrigin"}
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.signed(CHARLIE.public), "Sudo", "sudo_as", BOB.public, inner)
    assert err(e) == "Sudo.RequireSudo"


def test_sudo_through_an_extrinsic_weighs_the_inner_call(chain: Any) -> None:
    inner = wire(chain, "Balances", "force_set_balance", DAVE.public, UNIT)
    call = chain.call("Sudo", "sudo", inner)
    (out,) = chain.produce(chain.sign(ALICE, call))
    assert out.success
    assert out.weight == EXTRINSIC_BASE_WEIGHT + SUDO_OVERHEAD + chain.rt.weigh_wire(inner)
    assert chain.free(DAVE.public) == UNIT
    assert chain.issuance() == chain.total_balance()


def test_inner_pallet_bug_does_not_leave_a_layer_open(chain: Any) -> None:
    chain.start_block()
    inner = wire(chain, "Balances", "force_set_balance", BOB.public, 2**128 - 1)
    out = chain.apply(chain.sign(ALICE, chain.call("Sudo", "sudo", inner)))
    assert chain.rt.state.depth == 0
    assert out.success or out.error is not None
    chain.finish_block()
