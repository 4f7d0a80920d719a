"""Timestamp: one inherent per block, inside the block's slot, not too early, none origin."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.types import Extrinsic
from twinchain.runtime.executive import InvalidBlock, InvalidTransaction
from twinchain.runtime.framework import DispatchError, Origin


def ts(chain: Any, now: int) -> bytes:
    return Extrinsic(chain.call("Timestamp", "set", now)).encode()


def bad_inherent(chain: Any, now: int) -> str:
    with pytest.raises(InvalidTransaction) as e:
        chain.ex.apply_extrinsic(ts(chain, now))
    assert e.value.code == "BadInherent"
    return e.value.detail


def test_set_once_per_block(chain: Any) -> None:
    chain.start_block(slot=3)
    t = chain.rt.timestamp
    assert t.Now.get() == 3000 and t.DidUpdate.get() is True
    assert "AlreadySet" in bad_inherent(chain, 3001)
    chain.finish_block()
    assert chain.rt.timestamp.Now.get() == 3000
    assert chain.rt.timestamp.DidUpdate.get() is False  # cleared for the next block


def test_missing_inherent_rejects_the_block(chain: Any) -> None:
    chain.start_block(inherent=False)
    with pytest.raises(InvalidBlock, match="timestamp"):
        chain.finish_block()


def test_must_fall_in_the_slot(chain: Any) -> None:
    chain.start_block(slot=4, inherent=False)
    assert "WrongSlot" in bad_inherent(chain, 3999)
    assert "WrongSlot" in bad_inherent(chain, 5000)
    assert chain.apply(ts(chain, 4999)).success
    assert chain.rt.timestamp.Now.get() == 4999


def test_too_early_after_the_previous_block(chain: Any) -> None:
    chain.start_block(slot=1, inherent=False)
    chain.apply(ts(chain, 1999))
    chain.finish_block()
    # Slot 2 starts 1 ms later: less than half a slot after the previous timestamp.
    chain.start_block(slot=2, inherent=False)
    assert "TooEarly" in bad_inherent(chain, 2000)
    assert "TooEarly" in bad_inherent(chain, 2498)
    assert chain.apply(ts(chain, 2499)).success


def test_genesis_time(make_chain: Any) -> None:
    chain = make_chain(extra={"timestamp": {"now": 123}})
    assert chain.rt.timestamp.Now.get() == 123


def test_needs_the_none_origin(block: Any) -> None:
    for origin in (Origin.signed(b"\x01" * 32), Origin.root()):
        with pytest.raises(DispatchError) as e:
            block.rt.timestamp.set(origin, 1500)
        assert (e.value.module, e.value.error) == ("System", "BadOrigin")
        with pytest.raises(DispatchError) as e:
            block.dispatch(origin, "Timestamp", "set", 1500)
        assert e.value.error == "BadOrigin"
    assert block.rt.timestamp.Now.get() == 1000


def test_inherent_call_wire_matches_call_by_name(chain: Any) -> None:
    wire = chain.rt.timestamp.inherent_call_wire(5000)
    assert wire == list(chain.call("Timestamp", "set", 5000).to_wire())
    assert chain.ex.inherents(5000) == [ts(chain, 5000)]
