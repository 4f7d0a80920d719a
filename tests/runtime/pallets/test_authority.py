"""Authority: the Aura set, round-robin authorship, queued changes at session boundaries."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.executive import InvalidBlock
from twinchain.runtime.framework import DispatchError, Origin

ALICE, BOB, CHARLIE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie"))


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def sudo_set(chain: Any, authorities: list[bytes]) -> bytes:
    inner = list(chain.call("Authority", "set_authorities", authorities).to_wire())
    return chain.sign(ALICE, chain.call("Sudo", "sudo", inner))


def test_genesis(chain: Any) -> None:
    a = chain.rt.authority
    assert a.authorities() == [ALICE.public]
    assert a.slot_duration() == 1000
    assert a.SessionLength.get() == 600
    assert a.author_for_slot(17) == ALICE.public


def test_genesis_needs_an_authority(make_chain: Any) -> None:
    with pytest.raises(ValueError, match="authority"):
        make_chain(extra={"authority": {"authorities": []}})


def test_set_changes_only_at_the_session_boundary(make_chain: Any) -> None:
    chain = make_chain(session_length=3)
    new = [BOB.public, ALICE.public, CHARLIE.public]
    (out,) = chain.produce(sudo_set(chain, new))  # block 1
    assert out.success
    queued = [e for e in chain.events() if e["event"] == "AuthoritiesQueued"]
    assert queued[0]["args"] == {"authorities": new}
    assert chain.rt.authority.NextAuthorities.get() == new
    assert chain.rt.authority.authorities() == [ALICE.public]

    chain.produce()  # block 2: still the old set
    assert chain.rt.authority.authorities() == [ALICE.public]
    assert chain.ex.rt.block.author == ALICE.public

    chain.produce()  # block 3 opens session: the new set applies from its initialization
    assert chain.rt.authority.authorities() == new
    assert chain.rt.authority.NextAuthorities.get() is None
    new_session = [e for e in chain.events() if e["event"] == "NewSession"]
    assert new_session[0]["phase"] == "initialization"
    assert new_session[0]["args"]["authorities"] == new
    assert chain.rt.authority.CurrentSession.get() == 1
    # Block 3's author was chosen from the parent's set (Alice alone).
    assert chain.ex.rt.block.author == ALICE.public

    # From block 4 on, slot s is authored by new[s mod 3].
    chain.start_block(slot=7)
    assert chain.ex.rt.block.author == new[7 % 3]


def test_session_without_a_queued_set_keeps_the_set(make_chain: Any) -> None:
    chain = make_chain(session_length=2)
    chain.produce()
    chain.produce()
    assert chain.rt.authority.CurrentSession.get() == 1
    assert chain.rt.authority.authorities() == [ALICE.public]
    assert not [e for e in chain.events() if e["event"] == "NewSession"]


@pytest.mark.parametrize(
    ("authorities", "error"),
    [
        ([], "EmptySet"),
        ([BOB.public, BOB.public], "Duplicate"),
        ([BOB.public, b"\xff" * 32], "InvalidKey"),
    ],
)
def test_set_authorities_errors(block: Any, authorities: list[bytes], error: str) -> None:
    with pytest.raises(DispatchError) as e:
        block.dispatch(Origin.root(), "Authority", "set_authorities", authorities)
    assert err(e) == f"Authority.{error}"
    assert block.rt.authority.NextAuthorities.get() is None


def test_set_authorities_is_root_only(block: Any) -> None:
    for origin in (Origin.signed(ALICE.public), Origin.none()):
        with pytest.raises(DispatchError) as e:
            block.dispatch(origin, "Authority", "set_authorities", [BOB.public])
        assert err(e) == "System.BadOrigin"
        with pytest.raises(DispatchError) as e:
            block.rt.authority.set_authorities(origin, [BOB.public])
        assert err(e) == "System.BadOrigin"
    assert block.rt.authority.NextAuthorities.get() is None


def test_slot_must_advance(chain: Any) -> None:
    chain.start_block(slot=5)
    chain.finish_block()
    assert chain.rt.authority.CurrentSlot.get() == 5
    for slot in (5, 4):
        with pytest.raises(InvalidBlock, match="slot"):
            chain.start_block(slot=slot)
    chain.start_block(slot=6)
    chain.finish_block()
    assert chain.head_number == 2


def test_round_robin(make_chain: Any) -> None:
    chain = make_chain(extra={"authority": {"authorities": ["//Alice", "//Bob", "//Charlie"]}})
    a = chain.rt.authority
    assert [a.author_for_slot(s) for s in range(4)] == [
        ALICE.public,
        BOB.public,
        CHARLIE.public,
        ALICE.public,
    ]


def test_block_equivocation_is_recorded_once(block: Any) -> None:
    from twinchain.primitives.types import Header

    h1 = Header(b"\x01" * 32, 5, b"\x02" * 32, b"\x03" * 32, 42).sealed(ALICE)
    h2 = Header(b"\x01" * 32, 5, b"\x04" * 32, b"\x03" * 32, 42).sealed(ALICE)
    events = block.dispatch(
        Origin.signed(BOB.public),
        "Authority",
        "report_block_equivocation",
        h1.encode(),
        h2.encode(),
    )
    assert "Authority.EquivocationReported" in block.names(events)
    offences = list(block.rt.authority.Offences.iter())
    assert len(offences) == 1 and offences[0][0][:32] == ALICE.public
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public),
            "Authority",
            "report_block_equivocation",
            h2.encode(),
            h1.encode(),
        )
    assert err(e) == "Authority.DuplicateReport"


@pytest.mark.parametrize("case", ["same", "other-slot", "wrong-author", "garbage"])
def test_block_equivocation_needs_real_evidence(block: Any, case: str) -> None:
    from twinchain.primitives.types import Header

    h1 = Header(b"\x01" * 32, 5, b"\x02" * 32, b"\x03" * 32, 42).sealed(ALICE)
    h2 = {
        "same": h1,
        "other-slot": Header(b"\x01" * 32, 5, b"\x04" * 32, b"\x03" * 32, 43).sealed(ALICE),
        "wrong-author": Header(b"\x01" * 32, 5, b"\x04" * 32, b"\x03" * 32, 42).sealed(BOB),
        "garbage": None,
    }[case]
    second = b"\xc1" if h2 is None else h2.encode()
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public), "Authority", "report_block_equivocation", h1.encode(), second
        )
    assert err(e) == "Authority.InvalidEvidence"
    assert list(block.rt.authority.Offences.iter()) == []


def test_vote_equivocation_is_recorded(block: Any) -> None:
    from twinchain.primitives.finality import PREVOTE, SignedVote

    gh = block.rt.genesis_hash
    v1 = SignedVote.sign(ALICE, PREVOTE, 3, 0, (b"\x05" * 32, 2), gh)
    v2 = SignedVote.sign(ALICE, PREVOTE, 3, 0, (b"\x06" * 32, 2), gh)
    events = block.dispatch(
        Origin.signed(BOB.public), "Authority", "report_vote_equivocation", v1.encode(), v2.encode()
    )
    assert "Authority.EquivocationReported" in block.names(events)
    not_authority = SignedVote.sign(BOB, PREVOTE, 3, 0, (b"\x06" * 32, 2), gh)
    other = SignedVote.sign(BOB, PREVOTE, 3, 0, (b"\x05" * 32, 2), gh)
    with pytest.raises(DispatchError) as e:
        block.dispatch(
            Origin.signed(BOB.public),
            "Authority",
            "report_vote_equivocation",
            not_authority.encode(),
            other.encode(),
        )
    assert err(e) == "Authority.InvalidEvidence"


def test_authorities_govern_the_set_through_their_multisig(make_chain: Any) -> None:
    """Three authorities, threshold 3 (more than 2/3): the set changes only with all of them,
    and only at the session boundary; the set id moves with it."""
    from twinchain.runtime.pallets.multisig import multi_account_id

    trio_ = [ALICE, BOB, CHARLIE]
    chain = make_chain(
        session_length=4,
        extra={
            "authority": {
                "authorities": ["//Alice", "//Bob", "//Charlie"],
                "slot_duration_ms": 1000,
                "session_length": 4,
            }
        },
    )
    gov = multi_account_id([k.public for k in trio_], 3)
    assert chain.rt.authority.governance_account() == gov
    new = [BOB.public, CHARLIE.public]
    inner = list(chain.call("Authority", "set_authorities", new).to_wire())

    def others(me: Keypair) -> list[bytes]:
        return sorted(k.public for k in trio_ if k != me)

    # A plain signed origin (not the governance account) is refused.
    with pytest.raises(DispatchError) as e:
        chain.start_block()
        chain.dispatch(Origin.signed(ALICE.public), "Authority", "set_authorities", new)
    assert err(e) == "System.BadOrigin"
    chain.finish_block()

    # The governance account needs funds for nothing but its existence: approvals reserve
    # deposits from the approvers.
    outs = chain.produce(
        chain.sign(ALICE, chain.call("Multisig", "as_multi", 3, others(ALICE), None, inner, 10**6))
    )
    assert outs[0].success
    when = (chain.head_number, 1)
    outs = chain.produce(
        chain.sign(BOB, chain.call("Multisig", "as_multi", 3, others(BOB), when, inner, 10**6))
    )
    assert outs[0].success and chain.rt.authority.NextAuthorities.get() is None
    outs = chain.produce(
        chain.sign(
            CHARLIE, chain.call("Multisig", "as_multi", 3, others(CHARLIE), when, inner, 10**6)
        )
    )
    assert outs[0].success
    chain.view()
    assert chain.rt.authority.NextAuthorities.get() == new
    assert chain.rt.authority.authorities() == [k.public for k in trio_]
    queued_at = chain.head_number
    chain.produce()
    while chain.head_number % 4 != 0:
        chain.view()
        assert chain.rt.authority.authorities() == [k.public for k in trio_], "too early"
        chain.produce()
    chain.view()
    assert chain.head_number > queued_at
    assert chain.rt.authority.authorities() == new
    assert chain.rt.authority.SetId.get() == 1
