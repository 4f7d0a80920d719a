"""Chain types: headers, blocks, extrinsics and eras; round trips and hostile input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair, verify
from twinchain.primitives.types import (
    EXTRINSIC_VERSION,
    MAX_DIGEST_ITEMS,
    Block,
    Call,
    Era,
    Extrinsic,
    Header,
    SignedPart,
    extrinsic_hash,
    signing_payload,
)

ALICE = Keypair.from_dev_name("Alice")
GENESIS = hash_for(Domain.HEADER, b"test genesis")

h32 = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, 2**64 - 1)
headers = st.builds(
    Header,
    parent_hash=h32,
    number=u64,
    state_root=h32,
    extrinsics_root=h32,
    slot=u64,
    digest=st.lists(
        st.tuples(st.binary(min_size=4, max_size=4), st.binary(max_size=64)),
        max_size=MAX_DIGEST_ITEMS,
    ).map(tuple),
    seal=st.sampled_from([b"", b"\x07" * 64]),
)
arg_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(0, 2**32)
    | st.binary(max_size=20)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=8,
)
calls = st.builds(
    Call,
    pallet=st.integers(0, 255),
    index=st.integers(0, 255),
    args=st.lists(arg_values, max_size=4).map(tuple),
)
eras = st.just(Era.immortal()) | st.builds(
    lambda exp, phase: Era(1 << exp, phase % (1 << exp)), st.integers(2, 16), u64
)
signed_parts = st.builds(
    SignedPart,
    signer=h32,
    signature=st.binary(min_size=64, max_size=64),
    nonce=u64,
    tip=st.integers(0, 2**128 - 1),
    era=eras,
)


# --------------------------------------------------------------------------- round trips


@given(headers)
def test_header_round_trip(h: Header) -> None:
    assert Header.decode(h.encode()) == h
    assert Header.decode(h.encode()).hash == h.hash


def test_header_hash_covers_every_field_and_seal_message_excludes_the_seal() -> None:
    h = Header(GENESIS, 1, b"\x01" * 32, b"\x02" * 32, 9, ((b"aura", b"\x09"),))
    variants = [
        replace(h, parent_hash=b"\x00" * 32),
        replace(h, number=2),
        replace(h, state_root=b"\x03" * 32),
        replace(h, extrinsics_root=b"\x03" * 32),
        replace(h, slot=10),
        replace(h, digest=()),
        replace(h, seal=b"\x05" * 64),
    ]
    assert len({h.hash, *(v.hash for v in variants)}) == len(variants) + 1
    sealed = h.sealed(ALICE)
    assert sealed.seal_message() == h.seal_message()
    assert verify(ALICE.public, h.seal_message(), sealed.seal)
    assert not verify(ALICE.public, replace(h, slot=10).seal_message(), sealed.seal)
    assert Header.decode(sealed.encode()) == sealed


@given(headers, st.lists(st.binary(max_size=100), max_size=8))
def test_block_round_trip(h: Header, xts: list[bytes]) -> None:
    b = Block(h, tuple(xts))
    assert Block.decode(b.encode()) == b
    assert b.hash == h.hash


@given(calls, st.none() | signed_parts)
def test_extrinsic_round_trip(call: Call, signed: SignedPart | None) -> None:
    xt = Extrinsic(call, signed)
    raw = xt.encode()
    assert Extrinsic.decode(raw) == xt
    assert xt.hash == extrinsic_hash(raw) == hash_for(Domain.EXTRINSIC, raw)


def test_signed_extrinsic_verifies_against_its_payload() -> None:
    call = Call(3, 0, (b"\x01" * 32, b"\x00" * 16))
    era = Era.mortal(64, 100)
    birth = b"\x0b" * 32
    xt = Extrinsic.sign(call, ALICE, 5, GENESIS, 1, tip=3, era=era, birth_hash=birth)
    assert xt.signed is not None
    msg = signing_payload(call, 5, 3, era, GENESIS, 1, birth)
    assert verify(ALICE.public, msg, xt.signed.signature)
    for changed in (
        signing_payload(call, 6, 3, era, GENESIS, 1, birth),
        signing_payload(call, 5, 4, era, GENESIS, 1, birth),
        signing_payload(call, 5, 3, Era.immortal(), GENESIS, 1, birth),
        signing_payload(call, 5, 3, era, b"\x00" * 32, 1, birth),
        signing_payload(call, 5, 3, era, GENESIS, 2, birth),
        signing_payload(call, 5, 3, era, GENESIS, 1, GENESIS),
        signing_payload(Call(3, 1, call.args), 5, 3, era, GENESIS, 1, birth),
    ):
        assert changed != msg
        assert not verify(ALICE.public, changed, xt.signed.signature)
    with pytest.raises(ValueError, match="birth_hash"):
        Extrinsic.sign(call, ALICE, 0, GENESIS, 1, era=era)
    # Immortal transactions are born at genesis.
    imm = Extrinsic.sign(call, ALICE, 0, GENESIS, 1)
    assert imm.signed is not None
    immortal_msg = signing_payload(call, 0, 0, Era.immortal(), GENESIS, 1, GENESIS)
    assert verify(ALICE.public, immortal_msg, imm.signed.signature)


# --------------------------------------------------------------------------- eras


def test_immortal_era() -> None:
    e = Era.immortal()
    assert e.is_immortal and e.to_wire() is None
    assert e.birth(12345) == 0 and e.death(12345) == 2**64 - 1
    assert Era.from_wire(None) == e


@pytest.mark.parametrize(
    ("period", "current", "expected"),
    [(1, 10, 4), (4, 10, 4), (5, 10, 8), (64, 1000, 64), (100, 3, 128), (10**6, 7, 65536)],
)
def test_mortal_period_rounding(period: int, current: int, expected: int) -> None:
    e = Era.mortal(period, current)
    assert e.period == expected and e.phase == current % expected
    assert e.birth(current) == current
    assert e.death(current) == current + expected


@given(st.integers(2, 16), st.integers(0, 10**9), st.integers(0, 70000))
def test_era_birth_and_death_arithmetic(exp: int, current: int, later: int) -> None:
    period = 1 << exp
    era = Era.mortal(period, current)
    birth = era.birth(current)
    assert birth == current  # the current block is the birth block
    n = current + later
    b = era.birth(n)
    assert b <= n < era.death(n) == b + period
    assert b % period == era.phase
    # The birth only moves once a whole period has passed.
    assert (b == birth) == (later < period)
    assert Era.from_wire(era.to_wire()) == era


def test_era_birth_before_its_phase_is_in_the_future() -> None:
    e = Era(64, 10)
    assert e.birth(3) == 10 > 3


@pytest.mark.parametrize(
    "wire",
    [
        [3, 0],
        [2, 0],
        [0, 0],
        [6, 1],
        [131072, 0],
        [8, 8],
        [8, -1],
        [True, 0],
        [8, None],
        [8],
        [8, 0, 0],
        (8, 0),
        "8,0",
        0,
    ],
)
def test_invalid_era_wire(wire: Any) -> None:
    with pytest.raises(CodecError):
        Era.from_wire(wire)


@pytest.mark.parametrize(
    "wire",
    [[256, 0, []], [0, 256, []], [-1, 0, []], [0, 0], [0, 0, ()], [True, 0, []], [0, 0, {}], None],
)
def test_invalid_call_wire(wire: Any) -> None:
    with pytest.raises(CodecError):
        Call.from_wire(wire)


# --------------------------------------------------------------------------- hostile input


def _only_codec_errors(fn: Any, data: bytes) -> None:
    try:
        fn(data)
    except CodecError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_codec_error(data: bytes) -> None:
    for fn in (Header.decode, Block.decode, Extrinsic.decode):
        _only_codec_errors(fn, data)


any_plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=70),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=12,
)


@settings(max_examples=150)
@given(any_plain)
def test_well_formed_msgpack_of_any_shape_raises_only_codec_error(value: Any) -> None:
    data = codec.encode(value)
    for fn in (Header.decode, Block.decode, Extrinsic.decode):
        _only_codec_errors(fn, data)


# Field values near the valid ones (right sizes, small ints, short lists) get past the outer
# shape checks and exercise each field's own check.
near_field = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2**64 - 1)
    | st.sampled_from([0, 1, 255, 256, 2**63, 2**64 - 1])
    | st.sampled_from([b"", b"aura", b"\x01" * 32, b"\x02" * 63, b"\x03" * 64])
    | st.lists(st.none() | st.integers(0, 300) | st.binary(max_size=5), max_size=3)
)


@settings(max_examples=300)
@given(
    st.lists(near_field, min_size=7, max_size=7),
    st.lists(near_field, min_size=5, max_size=5),
    near_field,
)
def test_right_arity_wrong_fields_raise_only_codec_error(
    header_fields: list[Any], signed_fields: list[Any], call: Any
) -> None:
    _only_codec_errors(Header.decode, codec.encode(header_fields))
    _only_codec_errors(Block.decode, codec.encode([header_fields, [b""]]))
    _only_codec_errors(Extrinsic.decode, codec.encode([EXTRINSIC_VERSION, signed_fields, call]))


@given(headers, st.data())
def test_mutated_headers_decode_or_raise_codec_error(h: Header, data: st.DataObject) -> None:
    raw = bytearray(h.encode())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    try:
        out = Header.decode(bytes(raw))
    except CodecError:
        return
    assert out.encode() == bytes(raw)  # anything accepted is canonical


def test_size_limits() -> None:
    big = Extrinsic(Call(0, 0, (b"x" * (600 * 1024),))).encode()
    with pytest.raises(CodecError):
        Extrinsic.decode(big)
    h = Header(GENESIS, 1, GENESIS, GENESIS, 1, tuple((b"aura", b"") for _ in range(17)))
    with pytest.raises(CodecError):
        Header.decode(h.encode())
    with pytest.raises(CodecError):
        Header.decode(replace(h, digest=(), seal=b"\x01" * 63).encode())
    with pytest.raises(CodecError):
        Extrinsic.decode(codec.encode([2, None, [0, 0, []]]))


def test_extrinsic_version_must_be_an_integer() -> None:
    with pytest.raises(CodecError):
        Extrinsic.decode(codec.encode([True, None, [0, 0, []]]))
