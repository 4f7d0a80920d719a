"""Binary Merkle roots and proofs, checked against an independent implementation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinchain import native
from twinchain.native import fallback
from twinchain.native.merkle import merkle_proof, merkle_root, verify_merkle_proof
from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key, hash_for


def reference_root(leaves: list[bytes]) -> bytes:
    """The spec, written recursively: hash leaves, pair neighbours, carry an odd one up."""

    def up(level: list[bytes]) -> bytes:
        if len(level) == 1:
            return level[0]
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        return up(
            [hash_for(Domain.MERKLE_NODE, p[0] + p[1]) if len(p) == 2 else p[0] for p in pairs]
        )

    if not leaves:
        return ZERO_HASH
    return up([hash_for(Domain.MERKLE_LEAF, x) for x in leaves])


def leaves_of(n: int) -> list[bytes]:
    return [f"reading {i}".encode() for i in range(n)]


@pytest.mark.parametrize("n", range(0, 34))
def test_root_matches_reference(n: int) -> None:
    leaves = leaves_of(n)
    assert merkle_root(leaves) == reference_root(leaves)
    assert native.merkle_root(leaves) == fallback.merkle_root(leaves) == merkle_root(leaves)


@given(st.lists(st.binary(max_size=64), max_size=40))
def test_root_matches_reference_on_random_leaves(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == reference_root(leaves)


def test_root_properties() -> None:
    assert merkle_root([]) == ZERO_HASH
    assert merkle_root([b"a"]) == hash_for(Domain.MERKLE_LEAF, b"a")
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])
    assert merkle_root([b"a"]) != merkle_root([b"a", b"a"])
    # Domain separation: a leaf made of two child hashes does not pose as their parent.
    la, lb = hash_for(Domain.MERKLE_LEAF, b"a"), hash_for(Domain.MERKLE_LEAF, b"b")
    assert merkle_root([la + lb]) != merkle_root([b"a", b"b"])


@pytest.mark.parametrize("n", range(1, 34))
def test_every_proof_verifies(n: int) -> None:
    leaves = leaves_of(n)
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, i)
        assert len(proof) <= max(1, (n - 1).bit_length())
        assert verify_merkle_proof(root, leaf, i, n, proof)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 33])
def test_tampered_proofs_fail(n: int) -> None:
    leaves = leaves_of(n)
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, i)
        assert not verify_merkle_proof(root, leaf + b"!", i, n, proof)
        assert not verify_merkle_proof(root, leaf, (i + 1) % n, n, proof)
        assert not verify_merkle_proof(b"\x00" * 32, leaf, i, n, proof)
        assert not verify_merkle_proof(root, leaf, i, n, [*proof, b"\x00" * 32])
        if proof:
            assert not verify_merkle_proof(root, leaf, i, n, proof[:-1])
            for j in range(len(proof)):
                bent = [*proof]
                bent[j] = bytes([bent[j][0] ^ 1]) + bent[j][1:]
                assert not verify_merkle_proof(root, leaf, i, n, bent)
            assert not verify_merkle_proof(root, leaf, i, n, [p[:31] for p in proof])


def test_out_of_range_indices() -> None:
    leaves = leaves_of(4)
    root = merkle_root(leaves)
    for i in (-1, 4):
        with pytest.raises(IndexError):
            merkle_proof(leaves, i)
        assert not verify_merkle_proof(root, leaves[0], i, 4, [])
    assert not verify_merkle_proof(root, leaves[0], 0, 0, [])


def test_single_leaf_proof_is_empty() -> None:
    root = merkle_root([b"only"])
    assert merkle_proof([b"only"], 0) == []
    assert verify_merkle_proof(root, b"only", 0, 1, [])


def test_hash_many_matches_hash_for() -> None:
    items = [b"", b"x", b"y" * 100]
    key = domain_key(Domain.TRIE_LEAF)
    assert native.hash_many(key, items) == [hash_for(Domain.TRIE_LEAF, x) for x in items]
    assert fallback.hash_many(key, items) == native.hash_many(key, items)
