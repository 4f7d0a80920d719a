"""Binary Merkle trees over lists of byte strings: roots (native), proofs and their check.

Used for the extrinsics root of a block and for telemetry batch roots (selective disclosure:
any single reading is provable against the batch root).
"""

from __future__ import annotations

from collections.abc import Sequence

from twinchain import native
from twinchain.primitives.hashing import Domain, hash_for


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return native.merkle_root(leaves)


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf up; a promoted odd node contributes no sibling."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    level = [hash_for(Domain.MERKLE_LEAF, x) for x in leaves]
    proof: list[bytes] = []
    while len(level) > 1:
        sib = index ^ 1
        if sib < len(level):
            proof.append(level[sib])
        nxt = [
            hash_for(Domain.MERKLE_NODE, level[i] + level[i + 1])
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level, index = nxt, index // 2
    return proof


def verify_merkle_proof(
    root: bytes, leaf: bytes, index: int, count: int, proof: Sequence[bytes]
) -> bool:
    """Check that ``leaf`` is item ``index`` of a ``count``-leaf tree with ``root``."""
    if not 0 <= index < count:
        return False
    node = hash_for(Domain.MERKLE_LEAF, leaf)
    it = iter(proof)
    width = count
    while width > 1:
        sib = index ^ 1
        if sib < width:
            s = next(it, None)
            if s is None or len(s) != 32:
                return False
            node = hash_for(Domain.MERKLE_NODE, s + node if index & 1 else node + s)
        index, width = index // 2, (width + 1) // 2
    return next(it, None) is None and node == root
