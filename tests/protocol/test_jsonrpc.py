"""The JSON shapes the RPC server and its clients share: hex, block numbers, headers and
error objects, each read back as it was written and refused with a reason when malformed."""

from __future__ import annotations

import pytest

from twinchain.primitives.types import Header
from twinchain.protocol.jsonrpc import (
    INVALID_PARAMS,
    SERVER_ERROR,
    RpcError,
    from_hex,
    header_from_json,
    header_to_json,
    number_from_json,
    number_to_hex,
    to_hex,
)


def test_hex_round_trips_and_refuses_malformed_input() -> None:
    assert to_hex(b"\x00\xab") == "0x00ab" and from_hex("0x00ab") == b"\x00\xab"
    assert from_hex("0x", "empty") == b""
    with pytest.raises(ValueError, match="hash must be a 0x-prefixed hex string"):
        from_hex("00ab", "hash")
    with pytest.raises(ValueError, match="not valid hex"):
        from_hex("0xzz")
    with pytest.raises(ValueError, match="must be 32 bytes"):
        from_hex("0x00", "hash", 32)
    with pytest.raises(ValueError):
        from_hex(12)


def test_block_numbers_are_minimal_hex_and_read_from_either_form() -> None:
    assert number_to_hex(0) == "0x0" and number_to_hex(26) == "0x1a"
    assert number_from_json("0x1a") == number_from_json(26) == 26
    for bad in ("0x", "26", -1, 2**64, "0x1" + "0" * 16, True, 1.5):
        with pytest.raises(ValueError):
            number_from_json(bad)


def test_a_header_reads_back_to_the_same_hash() -> None:
    h = Header(b"\x01" * 32, 7, b"\x02" * 32, b"\x03" * 32, 99, ((b"aura", b"\x05"),), b"\x06" * 64)
    j = header_to_json(h)
    assert j["number"] == "0x7" and j["slot"] == "0x63"
    back = header_from_json(j)
    assert back == h and back.hash == h.hash
    with pytest.raises(ValueError, match="malformed header"):
        header_from_json({k: v for k, v in j.items() if k != "stateRoot"})
    with pytest.raises(ValueError):
        header_from_json([])


def test_error_objects_keep_code_message_and_data() -> None:
    e = RpcError(INVALID_PARAMS, data="count")
    assert e.to_json() == {"code": INVALID_PARAMS, "message": "Invalid params", "data": "count"}
    back = RpcError.from_json(e.to_json())
    assert (back.code, back.message, back.data) == (e.code, e.message, e.data)
    odd = RpcError.from_json({"code": "x", "message": 5})
    assert (odd.code, odd.message) == (SERVER_ERROR, "Server error")
    assert RpcError.from_json("nope").code == SERVER_ERROR
