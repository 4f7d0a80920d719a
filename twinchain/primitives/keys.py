"""Keys, signatures and addresses.

BIP-340 Schnorr over secp256k1 (coincurve). An account id is the 32-byte x-only public key.
Addresses are base58 of ``version byte || account id || 2-byte checksum`` where the checksum
is the domain-separated BLAKE3 of the first 33 bytes, in the spirit of Substrate's SS58.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import base58
from coincurve import PrivateKey, PublicKeyXOnly

from twinchain.primitives.hashing import Domain, hash_for

ADDRESS_VERSION = 42  # like SS58's generic-substrate prefix; chains may pick another
SEED_LEN = 32


class InvalidKey(ValueError):
    """A malformed secret, public key or address."""


@dataclass(frozen=True)
class Keypair:
    """A secp256k1 key pair; ``public`` is the 32-byte x-only key (the account id)."""

    secret: bytes
    public: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        if len(seed) != SEED_LEN:
            raise InvalidKey("a seed is 32 bytes")
        try:
            PrivateKey(seed)  # rejects zero and values >= the curve order
        except Exception as exc:  # zero or >= curve order
            raise InvalidKey(f"invalid secret key: {exc}") from exc
        return cls(seed, PublicKeyXOnly.from_secret(seed).format())

    @classmethod
    def generate(cls) -> Keypair:
        while True:
            try:
                return cls.from_seed(os.urandom(SEED_LEN))
            except InvalidKey:  # astronomically unlikely: retry
                continue

    @classmethod
    def from_dev_name(cls, name: str) -> Keypair:
        """Well-known development key (``//Alice``...): never use on a real chain."""
        seed = hash_for(Domain.DEV_SEED, name.lstrip("/").encode())
        return cls.from_seed(seed)

    def sign(self, message32: bytes) -> bytes:
        if len(message32) != 32:
            raise ValueError("BIP-340 signs a 32-byte message digest")
        return PrivateKey(self.secret).sign_schnorr(message32, os.urandom(32))

    @property
    def address(self) -> str:
        return encode_address(self.public)


def verify(public: bytes, message32: bytes, signature: bytes) -> bool:
    """Verify one signature; malformed input is simply invalid."""
    if len(public) != 32 or len(message32) != 32 or len(signature) != 64:
        return False
    try:
        return bool(PublicKeyXOnly(public).verify(signature, message32))
    except Exception:
        return False


def is_valid_public(public: bytes) -> bool:
    if len(public) != 32:
        return False
    try:
        PublicKeyXOnly(public)
    except Exception:
        return False
    return True


def _checksum(body: bytes) -> bytes:
    return hash_for(Domain.ADDRESS_CHECKSUM, body)[:2]


def encode_address(account: bytes, version: int = ADDRESS_VERSION) -> str:
    if len(account) != 32:
        raise InvalidKey("an account id is 32 bytes")
    if not 0 <= version < 256:
        raise InvalidKey("address version is one byte")
    body = bytes([version]) + account
    return base58.b58encode(body + _checksum(body)).decode()


def decode_address(address: str, version: int | None = ADDRESS_VERSION) -> bytes:
    """Return the account id of ``address``; checks the checksum (and version if given)."""
    try:
        raw = base58.b58decode(address.encode())
    except Exception as exc:
        raise InvalidKey(f"not base58: {address!r}") from exc
    if len(raw) != 35:
        raise InvalidKey("wrong address length")
    body, check = raw[:33], raw[33:]
    if _checksum(body) != check:
        raise InvalidKey("address checksum mismatch")
    if version is not None and body[0] != version:
        raise InvalidKey(f"address is for network {body[0]}, expected {version}")
    return body[1:]


def parse_account(text: str) -> bytes:
    """Accept an address, ``0x``-hex account id or dev name (``//Alice``)."""
    if text.startswith("//"):
        return Keypair.from_dev_name(text).public
    if text.startswith("0x"):
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError as exc:
            raise InvalidKey(f"bad hex: {text}") from exc
        if len(raw) != 32:
            raise InvalidKey("an account id is 32 bytes")
        return raw
    return decode_address(text)


DEV_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
