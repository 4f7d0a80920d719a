"""Pure-Python reference implementations of the native functions (the fallback path)."""

from __future__ import annotations

from collections.abc import Sequence

from blake3 import blake3
from coincurve import PublicKeyXOnly

from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key

_LEAF_KEY = domain_key(Domain.MERKLE_LEAF)
_NODE_KEY = domain_key(Domain.MERKLE_NODE)


def verify_batch(
    pubkeys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> list[bool]:
    """BIP-340 verify each (x-only pubkey, 32-byte message, 64-byte signature); never raises."""
    if not len(pubkeys) == len(messages) == len(signatures):
        raise ValueError("verify_batch: inputs differ in length")
    out: list[bool] = []
    for pk, msg, sig in zip(pubkeys, messages, signatures, strict=True):
        ok = False
        if len(pk) == 32 and len(msg) == 32 and len(sig) == 64:
            try:
                ok = PublicKeyXOnly(pk).verify(sig, msg)
            except Exception:  # pubkey off the curve and similar: just invalid
                ok = False
        out.append(ok)
    return out


def hash_many(key: bytes, items: Sequence[bytes]) -> list[bytes]:
    """Keyed BLAKE3 of each item (the level-by-level node hashing of the state trie)."""
    return [blake3(x, key=key).digest() for x in items]


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
