"""Balances: transfers, existential deposit and reaping, root calls, reserves, issuance."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinchain.primitives.keys import Keypair
from twinchain.runtime.executive import InvalidTransaction
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.balances import EXISTENTIAL_DEPOSIT as ED

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
UNIT = 10**12
ENDOWMENT = 1_000 * UNIT


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def snapshot(chain: Any) -> tuple[Any, ...]:
    who = (ALICE, BOB, CHARLIE, DAVE)
    return (chain.issuance(), *((chain.free(k.public), chain.reserved(k.public)) for k in who))


# --------------------------------------------------------------------------- genesis


def test_genesis_endows_and_sets_issuance(chain: Any) -> None:
    for k in (ALICE, BOB, CHARLIE):
        assert chain.free(k.public) == ENDOWMENT
        assert chain.rt.system.account(k.public).providers == 1
    assert chain.free(DAVE.public) == 0
    assert chain.issuance() == 3 * ENDOWMENT == chain.total_balance()


def test_genesis_rejects_balance_below_existential_deposit(make_chain: Any) -> None:
    extra = {"balances": {"balances": [["//Dave", ED - 1]]}}
    with pytest.raises(ValueError, match="existential"):
        make_chain(extra=extra)


# --------------------------------------------------------------------------- transfer


def test_transfer_to_new_account(block: Any) -> None:
    evs = block.dispatch(signed(BOB), "Balances", "transfer", DAVE.public, 5 * UNIT)
    assert block.names(evs) == ["System.NewAccount", "Balances.Endowed", "Balances.Transfer"]
    assert block.args(evs[-1]) == {"from": BOB.public, "to": DAVE.public, "amount": 5 * UNIT}
    assert block.args(evs[1]) == {"account": DAVE.public, "free": 5 * UNIT}
    assert block.free(BOB.public) == ENDOWMENT - 5 * UNIT
    assert block.free(DAVE.public) == 5 * UNIT
    assert block.issuance() == block.total_balance()


def test_transfer_to_existing_account(block: Any) -> None:
    evs = block.dispatch(signed(BOB), "Balances", "transfer_keep_alive", CHARLIE.public, UNIT)
    assert block.names(evs) == ["Balances.Transfer"]
    assert block.free(CHARLIE.public) == ENDOWMENT + UNIT


@pytest.mark.parametrize(
    ("name", "sender", "dest", "value", "error"),
    [
        ("transfer", BOB, CHARLIE, 0, "ZeroAmount"),
        ("transfer", BOB, CHARLIE, ENDOWMENT + 1, "InsufficientBalance"),
        ("transfer", DAVE, CHARLIE, 1, "InsufficientBalance"),
        ("transfer", BOB, DAVE, ED - 1, "ExistentialDeposit"),
        ("transfer_keep_alive", BOB, CHARLIE, ENDOWMENT - ED + 1, "KeepAlive"),
        ("transfer_keep_alive", BOB, CHARLIE, ENDOWMENT, "KeepAlive"),
    ],
)
def test_transfer_errors_change_nothing(
    block: Any, name: str, sender: Keypair, dest: Keypair, value: int, error: str
) -> None:
    before = snapshot(block)
    with pytest.raises(DispatchError) as e:
        block.dispatch(signed(sender), "Balances", name, dest.public, value)
    assert err(e) == f"Balances.{error}"
    assert snapshot(block) == before


def test_keep_alive_allows_leaving_exactly_the_deposit(block: Any) -> None:
    block.dispatch(signed(BOB), "Balances", "transfer_keep_alive", CHARLIE.public, ENDOWMENT - ED)
    assert block.free(BOB.public) == ED


def test_transfer_to_self_is_a_no_op(block: Any) -> None:
    evs = block.dispatch(signed(BOB), "Balances", "transfer", BOB.public, UNIT)
    assert evs == [] and block.free(BOB.public) == ENDOWMENT


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()])
def test_transfers_need_a_signed_origin(block: Any, origin: Origin) -> None:
    for name in ("transfer", "transfer_keep_alive"):
        with pytest.raises(DispatchError) as e:
            block.dispatch(origin, "Balances", name, DAVE.public, UNIT)
        assert err(e) == "System.BadOrigin"
        with pytest.raises(DispatchError) as e:
            getattr(block.rt.balances, name)(origin, DAVE.public, UNIT)
        assert err(e) == "System.BadOrigin"
    assert block.free(DAVE.public) == 0


# --------------------------------------------------------------------------- reaping


def test_reaped_account_keeps_its_nonce(chain: Any) -> None:
    # Bob sends everything but a little dust: his account is reaped and the dust burned.
    probe = chain.sign(BOB, chain.call("Balances", "transfer", CHARLIE.public, 1), 0)
    fee = chain.ex.validate_transaction(chain.state, probe, 0, chain.head_hash).fee
    dust = ED // 2
    send = ENDOWMENT - fee - dust
    raw = chain.sign(BOB, chain.call("Balances", "transfer", CHARLIE.public, send), 0)
    issuance = chain.issuance()
    (out,) = chain.produce(raw)
    assert out.success and out.fee == fee
    assert not chain.rt.balances.Account.contains(BOB.public)
    lost = [e for e in chain.events() if e["event"] == "DustLost"]
    assert lost[0]["args"] == {"account": BOB.public, "amount": dust}
    burned_fee = fee - fee * 80 // 100
    assert chain.issuance() == issuance - dust - burned_fee == chain.total_balance()
    info = chain.rt.system.account(BOB.public)
    assert (info.nonce, info.providers) == (1, 0)

    # Funded again: the old transaction stays dead, the next nonce is 1.
    chain.produce(chain.sign(CHARLIE, chain.call("Balances", "transfer", BOB.public, 10 * UNIT)))
    assert chain.free(BOB.public) == 10 * UNIT
    assert chain.nonce(BOB.public) == 1
    with pytest.raises(InvalidTransaction, match="Stale"):
        chain.ex.validate_transaction(chain.state, raw, chain.head_number, chain.head_hash)


def test_reserved_balance_keeps_the_account_alive(block: Any) -> None:
    block.rt.balances.reserve(BOB.public, ED)
    block.dispatch(signed(BOB), "Balances", "transfer", CHARLIE.public, ENDOWMENT - ED)
    assert block.rt.balances.Account.contains(BOB.public)
    assert (block.free(BOB.public), block.reserved(BOB.public)) == (0, ED)


# --------------------------------------------------------------------------- root calls


def test_force_transfer_is_root_only(block: Any) -> None:
    with pytest.raises(DispatchError) as e:
        block.dispatch(signed(BOB), "Balances", "force_transfer", CHARLIE.public, BOB.public, 1)
    assert err(e) == "System.BadOrigin"
    with pytest.raises(DispatchError) as e:
        block.rt.balances.force_transfer(signed(BOB), CHARLIE.public, BOB.public, 1)
    assert err(e) == "System.BadOrigin"
    evs = block.dispatch(
        Origin.root(), "Balances", "force_transfer", CHARLIE.public, BOB.public, UNIT
    )
    assert block.names(evs) == ["Balances.Transfer"]
    assert block.free(BOB.public) == ENDOWMENT + UNIT
    assert block.free(CHARLIE.public) == ENDOWMENT - UNIT


def test_force_set_balance_mints_and_burns(block: Any) -> None:
    with pytest.raises(DispatchError) as e:
        block.dispatch(signed(ALICE), "Balances", "force_set_balance", BOB.public, 1)
    assert err(e) == "System.BadOrigin"
    issuance = block.issuance()
    evs = block.dispatch(Origin.root(), "Balances", "force_set_balance", BOB.public, 3 * ENDOWMENT)
    assert block.names(evs) == ["Balances.BalanceSet"]
    assert block.issuance() == issuance + 2 * ENDOWMENT == block.total_balance()
    block.dispatch(Origin.root(), "Balances", "force_set_balance", DAVE.public, UNIT)
    assert block.free(DAVE.public) == UNIT and block.issuance() == block.total_balance()
    # Below the deposit: an existing account is reaped, a new one refused.
    block.dispatch(Origin.root(), "Balances", "force_set_balance", BOB.public, 0)
    assert not block.rt.balances.Account.contains(BOB.public)
    eve = Keypair.from_dev_name("Eve")
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.root(), "Balances", "force_set_balance", eve.public, ED - 1)
    assert err(e) == "Balances.ExistentialDeposit"
    assert block.issuance() == block.total_balance()


# --------------------------------------------------------------------------- reserves


def test_reserve_and_unreserve(block: Any) -> None:
    bal = block.rt.balances
    block.rt.state.events.clear()
    bal.reserve(BOB.public, 7 * UNIT)
    assert (block.free(BOB.public), block.reserved(BOB.public)) == (ENDOWMENT - 7 * UNIT, 7 * UNIT)
    with pytest.raises(DispatchError) as e:
        bal.reserve(BOB.public, ENDOWMENT)
    assert err(e) == "Balances.InsufficientBalance"
    with pytest.raises(DispatchError) as e:
        bal.reserve(DAVE.public, 1)
    assert err(e) == "Balances.InsufficientBalance"
    with pytest.raises(DispatchError) as e:
        bal.unreserve(BOB.public, 7 * UNIT + 1)
    assert err(e) == "Balances.InsufficientReserve"
    bal.unreserve(BOB.public, 3 * UNIT)
    assert block.reserved(BOB.public) == 4 * UNIT
    events = [ev for _, ev in block.rt.state.events]
    assert block.names(events) == ["Balances.Reserved", "Balances.Unreserved"]
    assert block.args(events[0]) == {"who": BOB.public, "amount": 7 * UNIT}
    assert block.issuance() == block.total_balance()


def test_repatriate_reserved(block: Any) -> None:
    bal = block.rt.balances
    bal.reserve(BOB.public, 10 * UNIT)
    with pytest.raises(DispatchError) as e:
        bal.repatriate_reserved(BOB.public, CHARLIE.public, 10 * UNIT + 1)
    assert err(e) == "Balances.InsufficientReserve"
    with pytest.raises(DispatchError) as e:
        bal.repatriate_reserved(BOB.public, DAVE.public, ED - 1)
    assert err(e) == "Balances.ExistentialDeposit"
    bal.repatriate_reserved(BOB.public, CHARLIE.public, 4 * UNIT)
    bal.repatriate_reserved(BOB.public, DAVE.public, 6 * UNIT)
    assert block.reserved(BOB.public) == 0
    assert block.free(CHARLIE.public) == ENDOWMENT + 4 * UNIT
    assert block.free(DAVE.public) == 6 * UNIT
    assert block.issuance() == block.total_balance()


def test_mint_and_fee_burn(block: Any) -> None:
    bal = block.rt.balances
    issuance = block.issuance()
    bal.mint(DAVE.public, 2 * UNIT)
    assert block.free(DAVE.public) == 2 * UNIT and block.issuance() == issuance + 2 * UNIT
    # No author: the whole fee is burned. An author that cannot exist yet: burned too.
    bal.distribute_fee(1_000, None)
    assert block.issuance() == issuance + 2 * UNIT - 1_000
    eve = Keypair.from_dev_name("Eve")
    bal.distribute_fee(1_000, eve.public)
    assert block.free(eve.public) == 0
    assert block.issuance() == issuance + 2 * UNIT - 2_000


def test_compute_fee_formula(chain: Any) -> None:
    bal = chain.rt.balances
    assert bal.compute_fee(100, 1_000, 5) == bal.compute_fee(0, 0, 0) + 100 * 1_000 + 1_000 + 5
    assert bal.constants()["ExistentialDeposit"] == ED


# --------------------------------------------------------------------------- invariants


ACCOUNTS = [Keypair.from_dev_name(n).public for n in ("Alice", "Bob", "Charlie", "Dave", "Eve")]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["transfer", "transfer_keep_alive", "reserve", "unreserve"]),
            st.integers(0, 4),
            st.integers(0, 4),
            st.integers(0, 2 * ENDOWMENT),
        ),
        max_size=12,
    )
)
def test_issuance_equals_sum_of_balances(make_chain: Any, ops: list[Any]) -> None:
    chain = make_chain()
    chain.start_block()
    bal = chain.rt.balances
    for name, a, b, value in ops:
        src, dst = ACCOUNTS[a], ACCOUNTS[b]
        try:
            if name in ("reserve", "unreserve"):
                getattr(bal, name)(src, value)
            else:
                chain.dispatch(Origin.signed(src), "Balances", name, dst, value)
        except DispatchError:
            pass
        for who in ACCOUNTS:
            d = bal.data(who)
            assert d.free + d.reserved == 0 or d.free + d.reserved >= ED
    assert chain.issuance() == chain.total_balance()
