"""Pure-Python reference implementations of the native functions (the fallback path)."""

from __future__ import annotations

from collections.abc import Sequence

from blake3 import blake3
from coincurve import PublicKeyXOnly

from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key

_LEAF_KEY = domain_key(Domain.MERKLE_LEAF)
_NODE_KEY = domain_key(Domain.MERKLE_NODE)


def as_bytes(x: object) -> bytes | None:
    """``x`` as bytes when it is bytes-like, else None (a signature check treats it as bad)."""
    if type(x) is bytes:
        return x
    try:
        return bytes(memoryview(x))  # type: ignore[arg-type]
    except TypeError:
        return None


def verify_batch(
    pubkeys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> list[bool]:
    """BIP-340 verify each (x-only pubkey, 32-byte message, 64-byte signature).

    Malformed items (wrong lengths, not bytes-like, a key off the curve, s >= n, r >= p) are
    False; only lists of different lengths raise.
    """
    if not len(pubkeys) == len(messages) == len(signatures):
        raise ValueError("verify_batch: inputs differ in length")
    out: list[bool] = []
    for pk_in, msg_in, sig_in in zip(pubkeys, messages, signatures, strict=True):
        ok = False
        pk, msg, sig = as_bytes(pk_in), as_bytes(msg_in), as_bytes(sig_in)
        if pk is not None and msg is not None and sig is not None:
            if len(pk) == 32 and len(msg) == 32 and len(sig) == 64:
                try:
                    ok = PublicKeyXOnly(pk).verify(sig, msg)
                except Exception:  # pubkey off the curve and similar: just invalid
                    ok = False
        out.append(ok)
    return out


def hash_many(key: bytes, items: Sequence[bytes]) -> list[bytes]:
    """Keyed BLAKE3 of each item (the level-by-level node hashing of the state trie)."""
    if len(key) != 32:
        raise ValueError("hash_many: a BLAKE3 key is 32 bytes")
    return [blake3(x, key=key).digest() for x in items]


def blake3_hash(data: bytes, key: bytes | None = None) -> bytes:
    """BLAKE3 of ``data`` (keyed mode when ``key``, 32 bytes, is given): 32-byte digest."""
    if key is None:
        return blake3(data).digest()
    if len(key) != 32:
        raise ValueError("blake3_hash: a BLAKE3 key is 32 bytes")
    return blake3(data, key=key).digest()


def blake3_derive_key(context: str, material: bytes) -> bytes:
    """BLAKE3 derive_key mode: a 32-byte key for the ``context`` string from ``material``."""
    if not isinstance(context, str):
        raise TypeError("blake3_derive_key: the context is a str")
    return blake3(material, derive_key_context=context).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Binary Merkle root; leaves are domain-hashed, an odd node is promoted unchanged.

    The empty list has the all-zero root.
    """
    if not leaves:
        return ZERO_HASH
    level = [blake3(x, key=_LEAF_KEY).digest() for x in leaves]
    while len(level) > 1:
        nxt = [
            blake3(level[i] + level[i + 1], key=_NODE_KEY).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
