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
    return merkle_proofs(leaves, [index])[0]


def merkle_proofs(leaves: Sequence[bytes], indices: Sequence[int]) -> list[list[bytes]]:
    """The proofs of several leaves from one pass over the tree (a disclosure of many
    readings of one batch), each as :func:`merkle_proof` gives it."""
    if any(not 0 <= i < len(leaves) for i in indices):
        raise IndexError("leaf index out of range")
    level = [hash_for(Domain.MERKLE_LEAF, x) for x in leaves]
    proofs: list[list[bytes]] = [[] for _ in indices]
    pos = list(indices)
    while len(level) > 1:
        for k, i in enumerate(pos):
            sib = i ^ 1
            if sib < len(level):
                proofs[k].append(level[sib])
            pos[k] = i // 2
        nxt = [
            hash_for(Domain.MERKLE_NODE, level[i] + level[i + 1])
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return proofs


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
