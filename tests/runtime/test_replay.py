"""Replay protection: nonces, genesis hash, spec version, mortality eras, future nonces."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from twinchain.native.merkle import merkle_root
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Era, Extrinsic, Header
from twinchain.runtime.executive import Executive, InvalidBlock, InvalidTransaction
from twinchain.runtime.pallets import system as system_mod
from twinchain.runtime.runtime import Runtime

BOB, CHARLIE = Keypair.from_dev_name("Bob"), Keypair.from_dev_name("Charlie")


def remark(chain: Any, text: bytes = b"") -> Any:
    return chain.call("System", "remark", text)


def validate(chain: Any, raw: bytes) -> Any:
    """Pool validation against the chain's head."""
    return chain.ex.validate_transaction(chain.state, raw, chain.head_number, chain.head_hash)


def code_of(fn: Any, *args: Any) -> str:
    with pytest.raises(InvalidTransaction) as e:
        fn(*args)
    return e.value.code


def apply_in_new_block(chain: Any, raw: bytes) -> str:
    """Try ``raw`` in a fresh block (then drop the block); return the InvalidTransaction code."""
    chain.start_block()
    try:
        return code_of(chain.ex.apply_extrinsic, raw)
    finally:
        chain.view()


# --------------------------------------------------------------------------- nonces


def test_same_nonce_twice_is_stale(chain: Any) -> None:
    raw = chain.sign(BOB, remark(chain), 0)
    chain.start_block()
    assert chain.apply(raw).success
    assert code_of(chain.ex.apply_extrinsic, raw) == "Stale"
    # A fresh signature over the same nonce is just as stale.
    resigned = chain.sign(BOB, remark(chain, b"other"), 0)
    assert code_of(chain.ex.apply_extrinsic, resigned) == "Stale"
    chain.finish_block()
    assert chain.nonce(BOB.public) == 1
    assert code_of(validate, chain, raw) == "Stale"
    assert apply_in_new_block(chain, raw) == "Stale"


def test_future_nonce_waits_in_the_pool_but_not_in_a_block(chain: Any) -> None:
    future = chain.sign(BOB, remark(chain, b"later"), 1)
    v = validate(chain, future)
    assert v.requires == [BOB.public + (0).to_bytes(8, "big")]
    assert v.provides == [BOB.public + (1).to_bytes(8, "big")]
    assert apply_in_new_block(chain, future) == "Future"

    ts = Extrinsic(chain.call("Timestamp", "set", 1000)).encode()
    raws = [ts, future]
    block = Block(Header(chain.head_hash, 1, b"\x00" * 32, merkle_root(raws), 1), tuple(raws))
    with pytest.raises(InvalidBlock, match="Future"):
        Executive(Runtime(genesis_hash=chain.rt.genesis_hash)).execute_block(chain.state, block)

    # Once nonce 0 is in, the same transaction is includable and needs nothing.
    chain.produce(chain.sign(BOB, remark(chain), 0))
    assert validate(chain, future).requires == []
    (out,) = chain.produce(future)
    assert out.success and chain.nonce(BOB.public) == 2


# --------------------------------------------------------------------------- chain context


def test_signed_for_another_genesis_fails(chain: Any) -> None:
    raw = chain.sign(BOB, remark(chain), 0, genesis_hash=b"\x42" * 32)
    assert code_of(validate, chain, raw) == "BadProof"
    assert apply_in_new_block(chain, raw) == "BadProof"
    assert chain.nonce(BOB.public) == 0


def test_signed_for_another_spec_version_fails(chain: Any) -> None:
    raw = chain.sign(BOB, remark(chain), 0, spec_version=chain.rt.spec_version + 1)
    assert code_of(validate, chain, raw) == "BadProof"
    assert apply_in_new_block(chain, raw) == "BadProof"
    good = chain.sign(BOB, remark(chain), 0)
    assert validate(chain, good).nonce == 0


def test_signature_covers_tip_and_nonce(chain: Any) -> None:
    xt = Extrinsic.decode(chain.sign(BOB, remark(chain), 0, tip=10))
    assert xt.signed is not None
    for field, value in (("tip", 0), ("nonce", 1)):
        changed = replace(xt, signed=replace(xt.signed, **{field: value})).encode()
        assert code_of(validate, chain, changed) == "BadProof"


# --------------------------------------------------------------------------- mortality


def test_mortal_era_valid_inside_its_period_only(chain: Any) -> None:
    for _ in range(3):
        chain.produce()
    born = chain.head_number
    era = Era.mortal(4, born)
    assert (era.period, era.birth(born), era.death(born)) == (4, born, born + 4)
    first = chain.sign(BOB, remark(chain, b"a"), 0, era=era, birth_hash=chain.hashes[born])
    second = chain.sign(BOB, remark(chain, b"b"), 1, era=era, birth_hash=chain.hashes[born])

    # Includable in blocks born+1 .. born+4 (heads born .. born+3).
    for head in range(born, born + 4):
        assert chain.head_number == head
        v = validate(chain, first)
        assert v.longevity == born + 4 - head - 1
        if head < born + 3:
            chain.produce()
    (out,) = chain.produce(first)  # block born+4: the last one of the period
    assert out.success

    # Block born+5 computes a new birth block, whose hash the signature does not cover.
    assert code_of(validate, chain, second) == "BadProof"
    assert apply_in_new_block(chain, second) == "BadProof"
    assert chain.nonce(BOB.public) == 1


def test_mortal_era_signed_with_wrong_birth_hash(chain: Any) -> None:
    chain.produce()
    era = Era.mortal(8, 1)
    raw = chain.sign(BOB, remark(chain), 0, era=era, birth_hash=chain.rt.genesis_hash)
    assert code_of(validate, chain, raw) == "BadProof"


def test_birth_block_hash_pruned_is_ancient(chain: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system_mod, "BLOCK_HASH_COUNT", 1)
    chain.produce()
    chain.produce()
    era = Era.mortal(64, 2)
    raw = chain.sign(BOB, remark(chain), 0, era=era, birth_hash=chain.hashes[2])
    chain.produce()  # head 3: BlockHash[2] is still kept
    assert validate(chain, raw).nonce == 0
    chain.produce()  # head 4: block 4 pruned BlockHash[2]
    assert chain.rt.system.BlockHash.get(2) is None
    assert code_of(validate, chain, raw) == "AncientBirthBlock"
    assert apply_in_new_block(chain, raw) == "AncientBirthBlock"


def test_era_born_in_the_future_is_rejected(chain: Any) -> None:
    chain.produce()
    raw = chain.sign(BOB, remark(chain), 0, era=Era(64, 10), birth_hash=b"\x00" * 32)
    assert code_of(validate, chain, raw) == "AncientBirthBlock"
