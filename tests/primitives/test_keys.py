"""Keys: BIP-340 signatures, addresses with checksum and version, account parsing, dev keys."""

from __future__ import annotations

import base58
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinchain import native
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import (
    ADDRESS_VERSION,
    DEV_NAMES,
    InvalidKey,
    Keypair,
    decode_address,
    encode_address,
    is_valid_public,
    parse_account,
    verify,
)

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MSG = hash_for(Domain.SIGNING, b"a payload")
ALICE = Keypair.from_dev_name("Alice")


def flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


# --------------------------------------------------------------------------- signatures


def test_sign_and_verify() -> None:
    sig = ALICE.sign(MSG)
    assert len(sig) == 64 and len(ALICE.public) == 32
    assert verify(ALICE.public, MSG, sig)


@settings(max_examples=30)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 63), st.integers(0, 31))
def test_tampering_breaks_the_signature(seed: bytes, sig_byte: int, msg_byte: int) -> None:
    try:
        kp = Keypair.from_seed(seed)
    except InvalidKey:
        return
    msg = hash_for(Domain.SIGNING, seed)
    sig = kp.sign(msg)
    assert verify(kp.public, msg, sig)
    assert not verify(kp.public, msg, flip(sig, sig_byte))
    assert not verify(kp.public, flip(msg, msg_byte), sig)
    assert not verify(
        ALICE.public if kp != ALICE else Keypair.from_dev_name("Bob").public, msg, sig
    )


def test_tampered_public_key_fails() -> None:
    sig = ALICE.sign(MSG)
    for i in (0, 15, 31):
        assert not verify(flip(ALICE.public, i), MSG, sig)


def test_malformed_inputs_are_simply_invalid() -> None:
    sig = ALICE.sign(MSG)
    assert not verify(ALICE.public[:31], MSG, sig)
    assert not verify(ALICE.public, MSG[:31], sig)
    assert not verify(ALICE.public, MSG, sig[:63])
    assert not verify(b"\xff" * 32, MSG, sig)  # not an x coordinate on the curve
    assert not verify(ALICE.public, MSG, b"\x00" * 64)
    with pytest.raises(ValueError):
        ALICE.sign(b"short")


def test_signatures_are_randomised_but_all_verify() -> None:
    a, b = ALICE.sign(MSG), ALICE.sign(MSG)
    assert a != b  # fresh aux randomness per signature
    assert verify(ALICE.public, MSG, a) and verify(ALICE.public, MSG, b)


def test_native_batch_verify_agrees() -> None:
    kps = [Keypair.from_dev_name(n) for n in DEV_NAMES]
    msgs = [hash_for(Domain.SIGNING, n.encode()) for n in DEV_NAMES]
    sigs = [k.sign(m) for k, m in zip(kps, msgs, strict=True)]
    sigs[2] = flip(sigs[2], 5)
    pubs = [k.public for k in kps]
    pubs[4] = b"\x00" * 31
    expected = [verify(p, m, s) for p, m, s in zip(pubs, msgs, sigs, strict=True)]
    assert native.verify_batch(pubs, msgs, sigs) == expected
    assert expected == [True, True, False, True, False, True]
    with pytest.raises(ValueError):
        native.verify_batch(pubs, msgs[:-1], sigs)


# --------------------------------------------------------------------------- key material


def test_seed_validation() -> None:
    for bad in (b"", b"\x01" * 31, b"\x01" * 33, b"\x00" * 32, CURVE_ORDER.to_bytes(32, "big")):
        with pytest.raises(InvalidKey):
            Keypair.from_seed(bad)
    kp = Keypair.from_seed((CURVE_ORDER - 1).to_bytes(32, "big"))
    assert is_valid_public(kp.public)


def test_generate_gives_fresh_valid_keys() -> None:
    a, b = Keypair.generate(), Keypair.generate()
    assert a.public != b.public
    assert is_valid_public(a.public) and verify(a.public, MSG, a.sign(MSG))


def test_dev_keys_are_deterministic_and_distinct() -> None:
    assert Keypair.from_dev_name("Alice") == ALICE
    assert Keypair.from_dev_name("//Alice") == ALICE
    assert ALICE.secret == hash_for(Domain.DEV_SEED, b"Alice")
    publics = {Keypair.from_dev_name(n).public for n in DEV_NAMES}
    assert len(publics) == len(DEV_NAMES)
    assert Keypair.from_dev_name("alice") != ALICE


def test_is_valid_public() -> None:
    assert is_valid_public(ALICE.public)
    assert not is_valid_public(ALICE.public[:31])
    assert not is_valid_public(b"\xff" * 32)


# --------------------------------------------------------------------------- addresses


@given(st.binary(min_size=32, max_size=32), st.integers(0, 255))
def test_address_round_trip(account: bytes, version: int) -> None:
    addr = encode_address(account, version)
    assert decode_address(addr, version) == account
    assert decode_address(addr, None) == account


def test_address_checksum_and_version_errors() -> None:
    addr = ALICE.address
    assert addr == encode_address(ALICE.public, ADDRESS_VERSION)
    raw = base58.b58decode(addr)
    for i in (0, 10, 33, 34):  # version byte, body, both checksum bytes
        bad = base58.b58encode(flip(raw, i)).decode()
        with pytest.raises(InvalidKey, match="checksum"):
            decode_address(bad)
    other_net = encode_address(ALICE.public, 7)
    with pytest.raises(InvalidKey, match="network 7"):
        decode_address(other_net)
    assert decode_address(other_net, 7) == ALICE.public
    for bad_text in ("", "0OIl", base58.b58encode(raw[:-1]).decode(), addr + "1"):
        with pytest.raises(InvalidKey):
            decode_address(bad_text)
    with pytest.raises(InvalidKey):
        encode_address(b"\x01" * 31)
    with pytest.raises(InvalidKey):
        encode_address(ALICE.public, 256)


def test_parse_account_forms() -> None:
    assert parse_account("//Alice") == ALICE.public
    assert parse_account(ALICE.address) == ALICE.public
    assert parse_account("0x" + ALICE.public.hex()) == ALICE.public
    for bad in ("0x" + "ab" * 31, "0xzz", "0x" + "ab" * 33, "not an address", "Alice"):
        with pytest.raises(InvalidKey):
            parse_account(bad)
