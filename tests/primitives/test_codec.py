"""The canonical msgpack profile and the typed layer on top of it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    CodecError,
    Enum,
    Fixed,
    Lazy,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)

INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1

scalars = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.binary(max_size=300)
    | st.text(max_size=80)
)
plain = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6), max_leaves=30)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells True from 1 and bytes from str, recursively."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def as_lists(v: Any) -> Any:
    return [as_lists(x) for x in v] if isinstance(v, list | tuple) else v


# --------------------------------------------------------------------------- plain values


@given(plain)
def test_round_trip(value: Any) -> None:
    data = codec.encode(value)
    assert same(codec.decode(data), value)
    assert codec.encode(codec.decode(data)) == data


@given(st.lists(scalars, max_size=5))
def test_tuples_encode_as_lists(items: list[Any]) -> None:
    assert codec.encode(tuple(items)) == codec.encode(items)
    assert same(codec.decode(codec.encode(tuple(items))), items)


def test_bytes_likes_encode_as_bytes() -> None:
    assert codec.encode(bytearray(b"ab")) == codec.encode(b"ab") == codec.encode(memoryview(b"ab"))
    assert codec.encode(b"ab")[0] == 0xC4  # bin 8, never str


def test_integers_use_the_shortest_form() -> None:
    assert codec.encode(1) == b"\x01"
    assert codec.encode(-1) == b"\xff"
    assert codec.encode(255) == b"\xcc\xff"
    assert codec.encode(INT_MAX) == b"\xcf" + b"\xff" * 8
    assert codec.encode(INT_MIN) == b"\xd3\x80" + b"\x00" * 7


@pytest.mark.parametrize(
    "value",
    [1.5, {"a": 1}, {1, 2}, INT_MAX + 1, INT_MIN - 1, object(), [1, [2.0]], ["x", {}]],
)
def test_encode_rejects_values_outside_the_profile(value: Any) -> None:
    with pytest.raises(CodecError):
        codec.encode(value)


def test_encode_rejects_deep_nesting() -> None:
    ok: Any = None
    for _ in range(codec.MAX_DEPTH):
        ok = [ok]
    assert codec.decode(codec.encode(ok)) == ok
    with pytest.raises(CodecError, match="deep"):
        codec.encode([ok])


NON_CANONICAL = {
    "uint8 for a fixint": b"\xcc\x01",
    "uint16 for a uint8": b"\xcd\x00\xff",
    "uint64 for a fixint": b"\xcf" + b"\x00" * 7 + b"\x05",
    "int8 for a negative fixint": b"\xd0\xff",
    "int8 for a positive value": b"\xd0\x01",
    "int16 for an int8": b"\xd1\xff\x80",
    "str8 where fixstr fits": b"\xd9\x01a",
    "str16 where fixstr fits": b"\xda\x00\x01a",
    "bin16 for short bytes": b"\xc5\x00\x01x",
    "bin32 for short bytes": b"\xc6\x00\x00\x00\x01x",
    "array16 for a short list": b"\xdc\x00\x01\xc0",
    "array32 for a short list": b"\xdd\x00\x00\x00\x01\xc0",
    "trailing bytes": b"\x01\x00",
    "two values": b"\xc0\xc0",
    "fixmap": b"\x81\x01\x02",
    "empty map": b"\x80",
    "map16": b"\xde\x00\x01\x01\x02",
    "float64": b"\xcb" + b"\x00" * 8,
    "float32": b"\xca" + b"\x00" * 4,
    "fixext1": b"\xd4\x01\x00",
    "ext8": b"\xc7\x01\x05\x00",
    "invalid utf-8": b"\xa1\xff",
    "utf-8 surrogate": b"\xa3\xed\xa0\x80",
    "never used 0xc1": b"\xc1",
    "truncated bin": b"\xc4\x05ab",
    "truncated array": b"\x92\x01",
    "huge declared array": b"\xdd\xff\xff\xff\xff",
    "empty input": b"",
    "deeper than MAX_DEPTH": b"\x91" * (codec.MAX_DEPTH + 1) + b"\xc0",
    "deeper than msgpack's stack": b"\x91" * 5000 + b"\xc0",
}


@pytest.mark.parametrize("data", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_decode_rejects_non_canonical_input(data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode(data)


def test_decode_enforces_size_limit_and_input_type() -> None:
    data = codec.encode(b"x" * 100)
    assert codec.decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(CodecError, match="too large"):
        codec.decode(data, max_size=len(data) - 1)
    with pytest.raises(CodecError):
        codec.decode(b"\xc0" * 16 + data, max_size=10)
    with pytest.raises(CodecError):
        codec.decode("\x01")  # type: ignore[arg-type]
    assert codec.decode(bytearray(b"\x01")) == 1


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_canonically_or_raise_codec_error(data: bytes) -> None:
    try:
        value = codec.decode(data)
    except CodecError:
        return
    assert codec.encode(value) == data


@given(plain, st.data())
def test_mutated_encodings_decode_canonically_or_raise(value: Any, data: st.DataObject) -> None:
    raw = bytearray(codec.encode(value))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        out = codec.decode(bytes(raw))
    except CodecError:
        return
    assert codec.encode(out) == bytes(raw)


def test_profile_matches_plain_msgpack_for_valid_values() -> None:
    value = [None, True, 7, -300, b"\x00", "twin", [1, [2]]]
    assert codec.encode(value) == msgpack.packb(value, use_bin_type=True)


# --------------------------------------------------------------------------- typed layer


@pytest.mark.parametrize(
    ("t", "lo", "hi"),
    [
        (U8, 0, 255),
        (U16, 0, 65535),
        (U32, 0, 2**32 - 1),
        (U64, 0, 2**64 - 1),
        (U128, 0, 2**128 - 1),
        (I32, -(2**31), 2**31 - 1),
        (I64, -(2**63), 2**63 - 1),
    ],
)
def test_integer_types(t: Any, lo: int, hi: int) -> None:
    for v in (lo, hi, (lo + hi) // 2):
        assert t.decode(t.encode(v)) == v
    for bad in (lo - 1, hi + 1, True, "1", 1.0, None):
        with pytest.raises(CodecError):
            t.to_wire(bad)
    with pytest.raises(CodecError):
        t.decode(codec.encode(hi + 1) if hi + 1 < 2**64 else codec.encode(b"\xff" * 17))


@given(st.integers(0, 2**128 - 1))
def test_u128_is_16_big_endian_bytes(v: int) -> None:
    assert U128.to_wire(v) == v.to_bytes(16, "big")
    assert U128.decode(U128.encode(v)) == v


def test_u128_rejects_other_wire_forms() -> None:
    for wire in (5, b"\x00" * 15, b"\x00" * 17, "0" * 16):
        with pytest.raises(CodecError):
            U128.from_wire(wire)


def test_bool_bytes_fixed_str() -> None:
    assert Bool.decode(Bool.encode(True)) is True
    for bad in (1, 0, None):
        with pytest.raises(CodecError):
            Bool.to_wire(bad)
    b = Bytes(4)
    assert b.decode(b.encode(b"abcd")) == b"abcd"
    for bad in (b"abcde", "abcd", bytearray(b"ab")):
        with pytest.raises(CodecError):
            b.to_wire(bad)
    f = Fixed(32)
    assert f.decode(f.encode(b"\x01" * 32)) == b"\x01" * 32
    for bad in (b"\x01" * 31, b"\x01" * 33, "x" * 32):
        with pytest.raises(CodecError):
            f.to_wire(bad)
    s = Str(4)
    assert s.decode(s.encode("twin")) == "twin"
    for bad in ("twins", "ééé", b"twin", 4):  # the bound counts UTF-8 bytes
        with pytest.raises(CodecError):
            s.to_wire(bad)


def test_vec_option_tuple() -> None:
    v = Vec(U8, max_len=3)
    assert v.decode(v.encode([1, 2, 3])) == [1, 2, 3]
    assert v.to_wire((1, 2)) == [1, 2]
    for bad in ([1, 2, 3, 4], [256], "abc", None):
        with pytest.raises(CodecError):
            v.to_wire(bad)
    with pytest.raises(CodecError):
        v.from_wire([1, 2, 3, 4])
    o = Option(U32)
    assert o.decode(o.encode(None)) is None and o.decode(o.encode(7)) == 7
    with pytest.raises(CodecError):
        o.to_wire(-1)
    with pytest.raises(TypeError):
        Option(Option(U8))
    t = Tuple(U8, Str(8))
    assert t.decode(t.encode([1, "a"])) == (1, "a")
    for bad in ([1], [1, "a", 2], [256, "a"], "1a"):
        with pytest.raises(CodecError):
            t.to_wire(bad)
    with pytest.raises(CodecError):
        t.from_wire([1])


def test_enum_by_index() -> None:
    e = Enum("Lifecycle", ["Commissioned", "Active", "Decommissioned"])
    assert e.to_wire("Active") == 1
    assert e.decode(e.encode("Decommissioned")) == "Decommissioned"
    for bad in ("Broken", 1, None, ["Active"]):
        with pytest.raises(CodecError):
            e.to_wire(bad)
    for bad_wire in (3, -1, True, "Active"):
        with pytest.raises(CodecError):
            e.from_wire(bad_wire)


@dataclasses.dataclass
class Reading(Record):
    sensor: bytes
    value: int
    label: str | None
    FIELDS: ClassVar = {"sensor": Fixed(4), "value": I64, "label": Option(Str(16))}


def test_record_round_trip_and_checks() -> None:
    r = Reading(b"temp", -40, None)
    assert Reading.from_bytes(r.to_bytes()) == r
    assert codec.decode(r.to_bytes()) == [b"temp", -40, None]
    for bad in (Reading(b"tmp", 1, None), Reading(b"temp", 2**63, None), Reading(b"temp", 1, 5)):
        with pytest.raises(CodecError):
            bad.to_bytes()
    with pytest.raises(CodecError):
        Reading.wire_type().to_wire((b"temp", 1, None))
    with pytest.raises(CodecError):
        Reading.from_bytes(codec.encode([b"temp", 1]))

    @dataclasses.dataclass
    class Mismatch(Record):
        a: int
        FIELDS: ClassVar = {"b": U8}

    with pytest.raises(TypeError):
        Mismatch.wire_type()


def test_descriptions_are_json_and_lazy_resolves_once() -> None:
    calls = []

    def resolve() -> Any:
        calls.append(1)
        return Vec(U8, 2)

    lazy = Lazy("Later", resolve)
    assert lazy.describe() == "Later" and calls == []
    assert lazy.decode(lazy.encode([1, 2])) == [1, 2]
    lazy.to_wire([3])
    assert calls == [1]
    desc = [
        Reading.wire_type().describe(),
        Vec(Option(U128)).describe(),
        Enum("E", ["A"]).describe(),
        Tuple(U8, Bool).describe(),
    ]
    assert json.loads(json.dumps(desc)) == desc


@given(
    st.integers(0, 2**64 - 1),
    st.binary(max_size=40),
    st.lists(st.integers(0, 255), max_size=10),
    st.none() | st.text(max_size=10),
)
def test_typed_round_trips(n: int, b: bytes, items: list[int], s: str | None) -> None:
    t = Tuple(U64, Bytes(40), Vec(U8, 10), Option(Str(64)))
    value = (n, b, items, s)
    assert t.decode(t.encode(value)) == value
    assert as_lists(codec.decode(t.encode(value))) == as_lists(t.to_wire(value))


def test_str_rejects_lone_surrogates_with_codec_error() -> None:
    with pytest.raises(CodecError):
        Str().to_wire("\ud800")
