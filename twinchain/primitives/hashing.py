"""BLAKE3 with domain separation: one 32-byte key per use, derived once from a context string.

Every hash in the chain goes through :func:`hash_for` with a :class:`Domain`, so a header can
never collide with a trie node or a signing payload. The keys come from BLAKE3's derive-key
mode; each hash is then BLAKE3 in keyed mode (one compression per 64-byte block, no extra cost
over a plain hash).

The hot callers (Merkle roots, trie nodes) go through ``twinchain.native``, which computes the
same bytes in C when the extension is built.
"""

from __future__ import annotations

import enum

from blake3 import blake3

HASH_LEN = 32
ZERO_HASH = b"\x00" * HASH_LEN

_CONTEXT_PREFIX = "twinchain 2026-11 "


class Domain(enum.Enum):
    """Hash domains. The value is the derive-key context suffix; never change a shipped one."""

    HEADER = "block header"
    EXTRINSIC = "extrinsic"
    SIGNING = "extrinsic signing payload"
    TRIE_LEAF = "state trie leaf"
    TRIE_BRANCH = "state trie branch"
    TRIE_VALUE = "state trie value"
    MERKLE_LEAF = "merkle leaf"
    MERKLE_NODE = "merkle node"
    STORAGE_PREFIX = "storage prefix"
    STORAGE_KEY = "storage map key"
    ACCOUNT_DERIVE = "account derivation"
    ADDRESS_CHECKSUM = "address checksum"
    DEV_SEED = "dev seed"
    VOTE = "finality vote"
    SEAL = "block seal"
    SIMULATION = "twin simulation"
    REQUEST = "signed rpc request"
    SESSION_KEYS = "session key ownership"


def domain_key(domain: Domain) -> bytes:
    """The 32-byte BLAKE3 key for ``domain``."""
    return _KEYS[domain]


_KEYS: dict[Domain, bytes] = {
    d: blake3(b"", derive_key_context=_CONTEXT_PREFIX + d.value).digest() for d in Domain
}


def hash_for(domain: Domain, data: bytes) -> bytes:
    """BLAKE3-keyed(domain key, data): a 32-byte digest."""
    return blake3(data, key=_KEYS[domain]).digest()


def blake3_hash(data: bytes) -> bytes:
    """Plain BLAKE3 (no domain): used only where an external format asks for it."""
    return blake3(data).digest()
