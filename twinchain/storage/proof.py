"""Stand-alone verification of state trie proofs (light clients, RPC consumers, bridges).

Depends only on hashing and the canonical codec, never on a store, so that anything holding a
trusted state root (from a finalized header) can check values it is handed.

Node formats (canonical msgpack), as built by :mod:`twinchain.storage.trie`:

* leaf ``[0, key, value]``, hash ``H_leaf(key || H_value(value))``;
* branch ``[1, bit, left_hash, right_hash]``, hash ``H_branch(u32be(bit) || left || right)``,
  where keys with a 0 at ``bit`` are on the left.

Bit ``i`` of a key is bit ``7 - i % 8`` of byte ``i // 8``; bits past the end read as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from twinchain.primitives.codec import CodecError, decode
from twinchain.primitives.hashing import HASH_LEN, ZERO_HASH, Domain, hash_for

LEAF = 0
BRANCH = 1
MAX_BIT = (1 << 32) - 1

Node = tuple[Any, ...]  # (0, key, value) or (1, bit, left_hash, right_hash)


class ProofError(Exception):
    """A proof that does not check out against the given root (any reason)."""


def key_bit(key: bytes, i: int) -> int:
    """Bit ``i`` of ``key``, MSB first; 0 past the end."""
    j = i >> 3
    if j >= len(key):
        return 0
    return (key[j] >> (7 - (i & 7))) & 1


def leaf_hash(key: bytes, value: bytes) -> bytes:
    return hash_for(Domain.TRIE_LEAF, key + hash_for(Domain.TRIE_VALUE, value))


def branch_hash(bit: int, left: bytes, right: bytes) -> bytes:
    return hash_for(Domain.TRIE_BRANCH, bit.to_bytes(4, "big") + left + right)


def node_hash(node: Node) -> bytes:
    """The hash of a decoded, well-formed node."""
    if node[0] == LEAF:
        return leaf_hash(node[1], node[2])
    return branch_hash(node[1], node[2], node[3])


def decode_node(data: Any) -> Node:
    """Strictly decode an untrusted node encoding; raise ProofError if it is not one."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProofError("proof node is not bytes")
    try:
        obj = decode(data)
    except CodecError as exc:
        raise ProofError(f"undecodable proof node: {exc}") from exc
    if type(obj) is list and obj and type(obj[0]) is int:
        if obj[0] == LEAF and len(obj) == 3 and type(obj[1]) is bytes and type(obj[2]) is bytes:
            return (LEAF, obj[1], obj[2])
        if (
            obj[0] == BRANCH
            and len(obj) == 4
            and type(obj[1]) is int
            and 0 <= obj[1] <= MAX_BIT
            and type(obj[2]) is bytes
            and len(obj[2]) == HASH_LEN
            and type(obj[3]) is bytes
            and len(obj[3]) == HASH_LEN
        ):
            return (BRANCH, obj[1], obj[2], obj[3])
    raise ProofError("not a trie node")


def _check_root(root: Any) -> None:
    if type(root) is not bytes or len(root) != HASH_LEN:
        raise ProofError("root must be 32 bytes")


def _check_key(key: Any) -> None:
    if type(key) is not bytes:
        raise ProofError("key must be bytes")


def verify_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> tuple[bool, bytes | None]:
    """Check a single-key proof (the nodes from the root down the walk of ``key``).

    Returns (True, value) if ``key`` is in the state with ``value``, (True, None) if the proof
    shows it is absent; raises :class:`ProofError` (and nothing else) otherwise.
    """
    try:
        return _verify_proof(root, key, proof)
    except ProofError:
        raise
    except Exception as exc:  # garbage of an unexpected shape: still just a bad proof
        raise ProofError(f"malformed proof: {type(exc).__name__}") from exc


def _verify_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> tuple[bool, bytes | None]:
    _check_root(root)
    _check_key(key)
    if not isinstance(proof, list | tuple):
        raise ProofError("proof must be a list of nodes")
    if root == ZERO_HASH:
        if proof:
            raise ProofError("the empty state takes an empty proof")
        return True, None
    expected = root
    last = len(proof) - 1
    for idx, data in enumerate(proof):
        node = decode_node(data)
        if node_hash(node) != expected:
            raise ProofError(f"proof node {idx} does not match the hash above it")
        if node[0] == LEAF:
            if idx != last:
                raise ProofError("extra nodes after the leaf")
            # The walk of an absent key ends at the leaf sharing its longest prefix.
            return True, (node[2] if node[1] == key else None)
        expected = node[3] if key_bit(key, node[1]) else node[2]
    raise ProofError("proof ends before reaching a leaf")


def verify_read_proof(
    root: bytes, keys: Iterable[bytes], nodes: Iterable[bytes]
) -> dict[bytes, bytes | None]:
    """Check a multi-key read proof given as an unordered set of encoded nodes.

    Returns {key: value or None} for every key. Every node must be used by some key's walk
    (a proof may not carry padding); a missing or malformed node raises :class:`ProofError`.
    """
    try:
        return _verify_read_proof(root, keys, nodes)
    except ProofError:
        raise
    except Exception as exc:
        raise ProofError(f"malformed proof: {type(exc).__name__}") from exc


def _verify_read_proof(
    root: bytes, keys: Iterable[bytes], nodes: Iterable[bytes]
) -> dict[bytes, bytes | None]:
    _check_root(root)
    if isinstance(nodes, bytes | bytearray | str) or isinstance(keys, bytes | bytearray | str):
        raise ProofError("keys and nodes must be collections")
    table: dict[bytes, Node] = {}
    for data in nodes:
        node = decode_node(data)
        table[node_hash(node)] = node
    used: set[bytes] = set()
    out: dict[bytes, bytes | None] = {}
    for key in keys:
        _check_key(key)
        if root == ZERO_HASH:
            out[key] = None
            continue
        h = root
        # Each step consumes a distinct node, so a walk longer than the table is impossible.
        for _ in range(len(table) + 1):
            node = table.get(h)
            if node is None:
                raise ProofError(f"proof lacks node {h.hex()}")
            used.add(h)
            if node[0] == LEAF:
                out[key] = node[2] if node[1] == key else None
                break
            h = node[3] if key_bit(key, node[1]) else node[2]
        else:
            raise ProofError("walk does not terminate")
    if len(used) != len(table):
        raise ProofError(f"{len(table) - len(used)} proof nodes are not on any key's path")
    return out
