"""Session: set_keys queues a validator's new session key (origin, ownership proof, keys in use),
and the key replaces the validator's authority entry exactly at the next session boundary."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.session import ownership_message

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
NEW, NEWER = Keypair.from_seed(b"\x01" * 32), Keypair.from_seed(b"\x02" * 32)


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def proof(chain: Any, key: Keypair, account: bytes) -> bytes:
    return key.sign(ownership_message(chain.rt.genesis_hash, account))


def set_keys(chain: Any, who: Keypair, key: Keypair, *, by: Keypair | None = None) -> Any:
    """set_keys by ``who`` for ``key``, its proof signed by ``by`` (default: ``key``)."""
    return chain.dispatch(
        Origin.signed(who.public),
        "Session",
        "set_keys",
        key.public,
        proof(chain, by or key, who.public),
    )


@pytest.fixture
def two(make_chain: Any) -> Any:
    """Alice and Bob are the authorities; sessions of 3 blocks; block 1 open."""
    chain = make_chain(
        session_length=3,
        extra={
            "authority": {
                "authorities": ["//Alice", "//Bob"],
                "slot_duration_ms": 1000,
                "session_length": 3,
            }
        },
    )
    chain.start_block()
    return chain


def test_set_keys_queues_the_key(two: Any) -> None:
    events = set_keys(two, ALICE, NEW)
    assert two.names(events) == ["Session.KeysQueued"]
    assert two.args(events[0]) == {"account": ALICE.public, "key": NEW.public}
    s = two.rt.session
    assert s.QueuedKeys.get(ALICE.public) == NEW.public
    assert s.account_of(NEW.public) == ALICE.public
    # Nothing changes before the boundary.
    assert s.key_of(ALICE.public) == ALICE.public
    assert two.rt.authority.authorities() == [ALICE.public, BOB.public]


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()])
def test_set_keys_needs_a_signed_origin(two: Any, origin: Origin) -> None:
    with pytest.raises(DispatchError) as e:
        two.dispatch(origin, "Session", "set_keys", NEW.public, proof(two, NEW, ALICE.public))
    assert err(e) == "System.BadOrigin"


def test_only_a_validator_account_sets_keys(two: Any) -> None:
    with pytest.raises(DispatchError) as e:
        set_keys(two, CHARLIE, NEW)
    assert err(e) == "Session.NotValidator"
    assert two.rt.session.QueuedKeys.get(CHARLIE.public) is None


def test_a_queued_authority_may_set_keys(two: Any) -> None:
    two.dispatch(Origin.root(), "Authority", "set_authorities", [ALICE.public, CHARLIE.public])
    set_keys(two, CHARLIE, NEW)
    assert two.rt.session.QueuedKeys.get(CHARLIE.public) == NEW.public


def test_a_facility_validator_key_may_set_keys(make_chain: Any) -> None:
    chain = make_chain(
        extra={"facility": {"facilities": [{"operator": "//Dave", "name": "Plant D"}]}}
    )
    chain.start_block()
    set_keys(chain, DAVE, NEW)
    assert chain.rt.session.QueuedKeys.get(DAVE.public) == NEW.public


@pytest.mark.parametrize(
    ("make_proof", "error"),
    [
        # Signed by the account, not by the new key: anyone could claim any key.
        (lambda c: ALICE.sign(ownership_message(c.rt.genesis_hash, ALICE.public)), "BadProof"),
        # The new key's signature for another account.
        (lambda c: NEW.sign(ownership_message(c.rt.genesis_hash, BOB.public)), "BadProof"),
        # ... or for another chain.
        (lambda c: NEW.sign(ownership_message(b"\x07" * 32, ALICE.public)), "BadProof"),
        (lambda c: b"\x00" * 64, "BadProof"),
        (lambda c: b"", "BadProof"),
    ],
)
def test_the_proof_is_the_new_keys_signature_over_the_account(
    two: Any, make_proof: Any, error: str
) -> None:
    with pytest.raises(DispatchError) as e:
        two.dispatch(
            Origin.signed(ALICE.public), "Session", "set_keys", NEW.public, make_proof(two)
        )
    assert err(e) == f"Session.{error}"
    assert two.rt.session.QueuedKeys.get(ALICE.public) is None


def test_an_invalid_key_is_refused(two: Any) -> None:
    with pytest.raises(DispatchError) as e:
        two.dispatch(Origin.signed(ALICE.public), "Session", "set_keys", b"\xff" * 32, b"\1" * 64)
    assert err(e) == "Session.InvalidKey"


def test_a_key_in_use_by_another_validator_is_refused(two: Any) -> None:
    # Bob's own key: it stands in the set for Bob.
    with pytest.raises(DispatchError) as e:
        set_keys(two, ALICE, BOB)
    assert err(e) == "Session.KeyInUse"
    # A key Bob queued.
    set_keys(two, BOB, NEW)
    with pytest.raises(DispatchError) as e:
        set_keys(two, ALICE, NEW)
    assert err(e) == "Session.KeyInUse"
    assert two.rt.session.account_of(NEW.public) == BOB.public


def test_a_session_key_is_not_an_account(two: Any) -> None:
    """After Bob rotates to NEW, NEW cannot act as a validator account of its own (it would
    claim Bob's place in the set)."""
    set_keys(two, BOB, NEW)
    two.finish_block()
    two.produce()
    two.produce()  # block 3: session 1, NEW active
    assert two.rt.authority.authorities() == [ALICE.public, NEW.public]
    two.start_block()
    with pytest.raises(DispatchError) as e:
        set_keys(two, NEW, NEWER)
    assert err(e) == "Session.NotValidator"
    # Bob's old key is still Bob's account: nobody else may take it.
    with pytest.raises(DispatchError) as e:
        set_keys(two, ALICE, BOB)
    assert err(e) == "Session.KeyInUse"


def test_setting_again_replaces_the_queued_key(two: Any) -> None:
    set_keys(two, ALICE, NEW)
    set_keys(two, ALICE, NEWER)
    s = two.rt.session
    assert s.QueuedKeys.get(ALICE.public) == NEWER.public
    assert s.KeyOwner.get(NEW.public) is None  # free for others again
    set_keys(two, BOB, NEW)


def test_purge_keys_drops_the_queued_key(two: Any) -> None:
    set_keys(two, ALICE, NEW)
    two.dispatch(Origin.signed(ALICE.public), "Session", "purge_keys")
    assert two.rt.session.QueuedKeys.get(ALICE.public) is None
    assert two.rt.session.KeyOwner.get(NEW.public) is None
    with pytest.raises(DispatchError) as e:
        two.dispatch(Origin.signed(ALICE.public), "Session", "purge_keys")
    assert err(e) == "Session.NothingQueued"


def signed_set_keys(chain: Any, who: Keypair, key: Keypair) -> bytes:
    return chain.sign(
        who, chain.call("Session", "set_keys", key.public, proof(chain, key, who.public))
    )


def test_the_key_takes_effect_exactly_at_the_next_boundary(two: Any) -> None:
    two.finish_block()  # block 1 (session 0: blocks 0..2)
    auth = two.rt.authority
    assert auth.SetId.get() == 0
    (out,) = two.produce(signed_set_keys(two, ALICE, NEW))  # block 2
    assert out.success, out.error
    assert auth.authorities() == [ALICE.public, BOB.public]
    assert auth.SetId.get() == 0
    assert two.rt.session.key_of(ALICE.public) == ALICE.public

    two.produce()  # block 3 opens session 1: the new key stands in Alice's place
    assert auth.authorities() == [NEW.public, BOB.public]
    assert auth.SetId.get() == 1  # a new finality voter set
    assert auth.CurrentSession.get() == 1
    events = {e["event"]: e for e in two.events()}
    assert events["KeysActivated"]["args"] == {
        "account": ALICE.public,
        "old": ALICE.public,
        "key": NEW.public,
    }
    assert events["KeysActivated"]["phase"] == "initialization"
    assert events["NewSession"]["args"]["authorities"] == [NEW.public, BOB.public]
    s = two.rt.session
    assert s.key_of(ALICE.public) == NEW.public
    assert s.account_of(NEW.public) == ALICE.public
    assert s.QueuedKeys.get(ALICE.public) is None

    two.produce()  # block 4: nothing queued, the set stays
    assert auth.SetId.get() == 1


def test_a_key_set_in_the_boundary_block_waits_for_the_next_session(two: Any) -> None:
    two.finish_block()  # 1
    two.produce()  # 2
    two.produce(signed_set_keys(two, BOB, NEW))  # 3: the boundary ran before the extrinsic
    auth = two.rt.authority
    assert auth.authorities() == [ALICE.public, BOB.public]
    two.produce()  # 4
    two.produce()  # 5
    assert auth.authorities() == [ALICE.public, BOB.public]
    two.produce()  # 6: session 2
    assert auth.authorities() == [ALICE.public, NEW.public]


def test_rotating_twice_and_back_to_the_account_key(two: Any) -> None:
    two.finish_block()
    two.produce(signed_set_keys(two, ALICE, NEW))  # 2
    two.produce()  # 3: NEW active
    s, auth = two.rt.session, two.rt.authority
    two.produce(signed_set_keys(two, ALICE, NEWER))  # 4: signed by the account, not the key
    two.produce()  # 5
    two.produce()  # 6: NEWER active, NEW free
    assert auth.authorities() == [NEWER.public, BOB.public]
    assert s.KeyOwner.get(NEW.public) is None
    assert s.account_of(NEWER.public) == ALICE.public
    two.produce(signed_set_keys(two, ALICE, ALICE))  # 7
    two.produce()  # 8
    two.produce()  # 9: back to the account key
    assert auth.authorities() == [ALICE.public, BOB.public]
    assert s.Keys.get(ALICE.public) is None
    assert s.KeyOwner.get(NEWER.public) is None
    assert auth.SetId.get() == 3


def test_queued_keys_apply_to_a_set_queued_by_governance(two: Any) -> None:
    """A set change and a key change at the same boundary: the key lands in the new set."""
    two.dispatch(
        Origin.root(), "Authority", "set_authorities", [BOB.public, ALICE.public, CHARLIE.public]
    )
    set_keys(two, ALICE, NEW)
    two.finish_block()
    two.produce()
    two.produce()  # 3
    assert two.rt.authority.authorities() == [BOB.public, NEW.public, CHARLIE.public]
    assert two.rt.authority.SetId.get() == 1


def test_a_rotated_facility_validator_is_offboarded_by_its_account(make_chain: Any) -> None:
    """The facility names its validator by account; the set holds the session key. Revoking
    the facility removes the rotated key at the next boundary all the same."""
    vals = [Keypair.from_dev_name(f"Validator{i}") for i in range(3)]
    chain = make_chain(
        extra={
            "authority": {
                "authorities": ["0x" + v.public.hex() for v in vals],
                "slot_duration_ms": 1000,
                "session_length": 3,
            },
            "roles": {"grants": [[f"//Operator{i}", "FacilityOperator"] for i in range(3)]},
            "facility": {
                "facilities": [
                    {
                        "operator": f"//Operator{i}",
                        "name": f"Plant {i}",
                        "validator": "0x" + vals[i].public.hex(),
                        "verified_until": 10**13,
                    }
                    for i in range(3)
                ]
            },
        }
    )
    chain.start_block()
    set_keys(chain, vals[2], NEW)
    chain.finish_block()
    chain.produce()
    chain.produce()  # 3: NEW in Validator2's place
    auth = chain.rt.authority
    assert auth.authorities() == [vals[0].public, vals[1].public, NEW.public]
    chain.start_block()
    chain.dispatch(Origin.root(), "Facility", "revoke", 2, b"\x11" * 32)
    chain.finish_block()
    chain.produce()
    chain.produce()  # 6
    assert auth.authorities() == [vals[0].public, vals[1].public]


def test_a_validator_joining_after_it_rotated_joins_with_its_session_key(two: Any) -> None:
    """Governance names validators by account (as facilities do): a set that names Charlie
    after Charlie rotated holds Charlie's session key, not the account."""
    two.dispatch(Origin.root(), "Authority", "set_authorities", [ALICE.public, CHARLIE.public])
    set_keys(two, CHARLIE, NEW)
    two.finish_block()
    two.produce()
    two.produce()  # 3: Charlie joins with NEW
    assert two.rt.authority.authorities() == [ALICE.public, NEW.public]
    two.start_block()
    # Governance names validators by account: Bob comes back, Charlie stays by its account.
    two.dispatch(
        Origin.root(), "Authority", "set_authorities", [ALICE.public, CHARLIE.public, BOB.public]
    )
    two.finish_block()
    two.produce()
    two.produce()  # 6
    assert two.rt.authority.authorities() == [ALICE.public, NEW.public, BOB.public]
