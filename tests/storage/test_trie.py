"""The crit-bit state trie: canonical roots, reads, updates and proofs, against a dict model."""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinchain.primitives import codec
from twinchain.primitives.hashing import ZERO_HASH, Domain, hash_for
from twinchain.storage.proof import (
    ProofError,
    decode_node,
    node_hash,
    verify_proof,
    verify_read_proof,
)
from twinchain.storage.trie import (
    NodeLoader,
    StateError,
    TrieView,
    build_from_scratch,
    compute_update,
    prove,
    prove_many,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Prefix-free keys: the first byte fixes the length (as a pallet/map prefix does). Few distinct
# body bytes, so that keys share long prefixes and the trie gets deep, uneven branches.
TAG_LEN = {0x00: 1, 0x01: 3, 0x7F: 0, 0x80: 2, 0xFF: 4}
BODY = [0x00, 0x01, 0x55, 0x80, 0xFE, 0xFF]

keys_st = st.sampled_from(sorted(TAG_LEN)).flatmap(
    lambda t: st.lists(st.sampled_from(BODY), min_size=TAG_LEN[t], max_size=TAG_LEN[t]).map(
        lambda body: bytes([t, *body])
    )
)
values_st = st.binary(max_size=6)
ops_st = st.lists(st.tuples(keys_st, st.none() | values_st), max_size=60)


class MemTrie:
    """A trie whose nodes live in a dict (never deleted: every old root stays readable)."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.loader = NodeLoader(self.nodes.get, cache_size=64)
        self.root = ZERO_HASH

    def apply(self, changes: dict[bytes, bytes | None]) -> None:
        before = set(self.nodes)
        up = compute_update(self.loader, self.root, changes)
        assert up.parent_root == self.root
        assert up.replaced <= before or self.root == ZERO_HASH
        self.nodes.update(up.nodes)
        self.root = up.root

    def view(self) -> TrieView:
        return TrieView(self.loader, self.root)


def reachable(nodes: dict[bytes, bytes], root: bytes) -> set[bytes]:
    out: set[bytes] = set()
    stack = [root] if root != ZERO_HASH else []
    while stack:
        h = stack.pop()
        out.add(h)
        n = msgpack.unpackb(nodes[h])
        if n[0] == 1:
            stack += [n[2], n[3]]
    return out


def run_ops(ops: list[tuple[bytes, bytes | None]], chunks: list[int]) -> tuple[MemTrie, dict]:
    """Apply ``ops`` in chunks of the given sizes (cycled); returns the trie and the model."""
    t = MemTrie()
    model: dict[bytes, bytes] = {}
    i = 0
    sizes = chunks or [1]
    c = 0
    while i < len(ops):
        n = sizes[c % len(sizes)]
        c += 1
        chunk = dict(ops[i : i + n])
        i += n
        t.apply(chunk)
        for k, v in chunk.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
    return t, model


# ----------------------------------------------------------------------------- canonical root


@FAST
@given(ops=ops_st, chunks=st.lists(st.integers(1, 10), max_size=5), seed=st.integers(0, 2**16))
def test_root_depends_only_on_final_state(
    ops: list[tuple[bytes, bytes | None]], chunks: list[int], seed: int
) -> None:
    chunked, model = run_ops(ops, chunks)
    root_scratch, nodes_scratch = build_from_scratch(model)
    assert chunked.root == root_scratch

    # One key per commit, in a random order.
    one_by_one = MemTrie()
    items = list(model.items())
    random.Random(seed).shuffle(items)
    for k, v in items:
        one_by_one.apply({k: v})
    assert one_by_one.root == root_scratch

    # One big commit from an intermediate state (mixing inserts, edits and deletes).
    half, _ = run_ops(ops[: len(ops) // 2], [3])
    half.apply({k: model.get(k) for k, _ in ops})
    assert half.root == root_scratch

    # The live nodes of the incrementally built trie are exactly the rebuilt ones.
    assert reachable(chunked.nodes, chunked.root) == set(nodes_scratch)


@FAST
@given(ops=ops_st, chunks=st.lists(st.integers(1, 10), max_size=5))
def test_replaced_and_new_nodes_are_exact(
    ops: list[tuple[bytes, bytes | None]], chunks: list[int]
) -> None:
    t, _ = run_ops(ops, chunks)
    changes = {k: (None if i % 3 == 0 else b"x%d" % i) for i, (k, _) in enumerate(ops)}
    old_live = reachable(t.nodes, t.root)
    up = compute_update(t.loader, t.root, changes)
    nodes = {**t.nodes, **up.nodes}
    new_live = reachable(nodes, up.root)
    assert set(up.nodes) == new_live - old_live
    assert up.replaced == old_live - new_live


@FAST
@given(ops=ops_st, chunks=st.lists(st.integers(1, 10), max_size=5))
def test_deleting_everything_gives_zero_root(
    ops: list[tuple[bytes, bytes | None]], chunks: list[int]
) -> None:
    t, model = run_ops(ops, chunks)
    keys = list(model)
    for i in range(0, len(keys), 3):
        t.apply(dict.fromkeys(keys[i : i + 3]))
    assert t.root == ZERO_HASH
    assert list(t.view().iter_prefix(b"")) == []


def test_empty_and_noop_updates() -> None:
    t = MemTrie()
    t.apply({b"\x01ab": None})  # deleting from the empty state
    assert t.root == ZERO_HASH
    assert build_from_scratch({}) == (ZERO_HASH, {})
    assert t.view().get(b"x") is None
    t.apply({b"\x01ab": b"v", b"\x01ac": b"w"})
    root = t.root
    up = compute_update(t.loader, root, {b"\x01ab": b"v", b"\x01zz": None})
    assert up.root == root and not up.nodes and not up.replaced


def test_hashes_follow_the_spec() -> None:
    def leaf(k: bytes, v: bytes) -> bytes:
        return hash_for(Domain.TRIE_LEAF, k + hash_for(Domain.TRIE_VALUE, v))

    root, nodes = build_from_scratch({b"\x01\x00": b"a"})
    assert root == leaf(b"\x01\x00", b"a")
    assert nodes[root] == codec.encode([0, b"\x01\x00", b"a"])
    # 0x01 0x00 vs 0x01 0x40 differ first at bit 9 (MSB-first).
    items = {b"\x01\x00": b"a", b"\x01\x40": b"b"}
    root, nodes = build_from_scratch(items)
    la, lb = leaf(b"\x01\x00", b"a"), leaf(b"\x01\x40", b"b")
    assert root == hash_for(Domain.TRIE_BRANCH, (9).to_bytes(4, "big") + la + lb)
    assert nodes[root] == codec.encode([1, 9, la, lb])
    for h, enc in nodes.items():
        assert codec.encode(codec.decode(enc)) == enc
        assert node_hash(decode_node(enc)) == h


def test_prefix_keys_are_rejected() -> None:
    t = MemTrie()
    t.apply({b"ab": b"1", b"x": b"2"})
    for bad in (b"a", b"abc", b""):
        with pytest.raises(StateError):
            t.apply({bad: b"v"})
    with pytest.raises(StateError):
        t.apply({b"q": b"1", b"qq": b"2"})  # both new, in one batch
    with pytest.raises(StateError):
        build_from_scratch({b"k": b"", b"k\x00": b""})
    root = t.root
    t.apply({b"a": None, b"abc": None})  # deleting such absent keys is a no-op
    assert t.root == root
    t.apply({b"ab": None, b"abc": b"3"})  # replacing a key by an extension in one batch
    assert t.view().get(b"abc") == b"3" and t.view().get(b"ab") is None


def _prefix_free(keys: list[bytes]) -> bool:
    ks = sorted(keys)
    return not any(b.startswith(a) for a, b in itertools.pairwise(ks))


nesting_keys_st = st.lists(st.sampled_from([0x00, 0x01, 0x80, 0xFF]), max_size=2).map(bytes)


@FAST
@given(
    batches=st.lists(
        st.dictionaries(nesting_keys_st, st.none() | values_st, max_size=6), max_size=8
    )
)
def test_state_error_iff_final_key_set_nests(
    batches: list[dict[bytes, bytes | None]],
) -> None:
    """Keys may nest across batches as long as every committed state is prefix-free (e.g. a
    key replaced by its extension in one batch); otherwise StateError and nothing changes."""
    t = MemTrie()
    model: dict[bytes, bytes] = {}
    for changes in batches:
        want = dict(model)
        for k, v in changes.items():
            if v is None:
                want.pop(k, None)
            else:
                want[k] = v
        old_live = reachable(t.nodes, t.root)
        if not _prefix_free(list(want)):
            with pytest.raises(StateError):
                compute_update(t.loader, t.root, changes)
            continue
        up = compute_update(t.loader, t.root, changes)
        assert up.root == build_from_scratch(want)[0]
        new_live = reachable({**t.nodes, **up.nodes}, up.root)
        assert set(up.nodes) == new_live - old_live
        assert up.replaced == old_live - new_live
        t.nodes.update(up.nodes)
        t.root = up.root
        model = want


def test_missing_node_raises_state_error() -> None:
    root, _ = build_from_scratch({b"\x01a": b"1", b"\x01b": b"2"})
    loader = NodeLoader({}.get)
    with pytest.raises(StateError, match="pruned/missing"):
        TrieView(loader, root).get(b"\x01a")
    with pytest.raises(StateError):
        compute_update(loader, root, {b"\x01c": b"3"})


def test_node_cache_is_bounded() -> None:
    items = {b"%05d" % i: b"v" for i in range(500)}
    root, nodes = build_from_scratch(items)
    loader = NodeLoader(nodes.get, cache_size=40)
    view = TrieView(loader, root)
    assert all(view.get(k) == b"v" for k in items)
    assert len(loader._hot) + len(loader._cold) <= 40


def test_seeded_nodes_are_served_decoded_without_a_fetch() -> None:
    items = {b"%05d" % i: b"v%d" % i for i in range(300)}
    root, nodes = build_from_scratch(items)
    fetched: list[bytes] = []
    loader = NodeLoader(lambda h: fetched.append(h) or nodes.get(h), cache_size=10_000)
    loader.seed(nodes)  # kept encoded until first loaded
    view = TrieView(loader, root)
    assert all(view.get(k) == v for k, v in items.items()) and fetched == []
    for h, enc in nodes.items():
        assert loader.load(h) == msgpack.unpackb(enc, use_list=False)
        assert loader.load(h) is loader.load(h)  # decoded once, then the same object
    cold = NodeLoader(nodes.get, cache_size=10_000)
    assert all(cold.load(h) == loader.load(h) for h in nodes)


def test_larger_random_state_matches_rebuild() -> None:
    rng = random.Random(5)
    prefixes = [rng.randbytes(32) for _ in range(3)]
    t = MemTrie()
    model: dict[bytes, bytes] = {}
    pool = [prefixes[i % 3] + rng.randbytes(24) for i in range(3000)]
    for _ in range(15):
        changes: dict[bytes, bytes | None] = {}
        for k in rng.sample(pool, 300):
            changes[k] = None if rng.random() < 0.25 else rng.randbytes(rng.randint(0, 50))
        t.apply(changes)
        for k, v in changes.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        assert t.root == build_from_scratch(model)[0]
    view = t.view()
    assert list(view.iter_prefix(prefixes[1])) == sorted(
        (k, v) for k, v in model.items() if k.startswith(prefixes[1])
    )


# ----------------------------------------------------------------------------- reads


def _prefix_candidates(model: dict[bytes, bytes], extra: list[bytes]) -> list[bytes]:
    out = {b"", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\x01\x55", b"\xff\xff\xff"}
    for k in list(model)[:6]:
        out.update(k[:i] for i in range(len(k) + 1))
    out.update(extra)
    return sorted(out)


@FAST
@given(
    ops=ops_st,
    chunks=st.lists(st.integers(1, 10), max_size=5),
    probes=st.lists(keys_st | st.binary(max_size=6), max_size=8),
)
def test_reads_match_dict_model(
    ops: list[tuple[bytes, bytes | None]], chunks: list[int], probes: list[bytes]
) -> None:
    t, model = run_ops(ops, chunks)
    view = t.view()
    for k in {k for k, _ in ops} | set(probes):
        assert view.get(k) == model.get(k)
        assert (k in view) == (k in model)
    ordered = sorted(model.items())
    assert list(view.iter_prefix(b"")) == ordered
    cands = _prefix_candidates(model, probes)
    for prefix in cands:
        want = [(k, v) for k, v in ordered if k.startswith(prefix)]
        assert list(view.iter_prefix(prefix)) == want, prefix
        for after in [*cands, *model]:
            got = list(view.iter_prefix(prefix, start_after=after))
            assert got == [(k, v) for k, v in want if k > after], (prefix, after)


# ----------------------------------------------------------------------------- proofs


@FAST
@given(
    ops=ops_st,
    chunks=st.lists(st.integers(1, 10), max_size=5),
    absent=st.lists(keys_st | st.binary(max_size=6), max_size=6),
)
def test_every_proof_verifies(
    ops: list[tuple[bytes, bytes | None]], chunks: list[int], absent: list[bytes]
) -> None:
    t, model = run_ops(ops, chunks)
    probe = set(model) | {k for k, _ in ops} | set(absent)
    for k in probe:
        assert verify_proof(t.root, k, prove(t.loader, t.root, k)) == (True, model.get(k))
    keys = sorted(probe)
    nodes = prove_many(t.loader, t.root, keys)
    assert len(set(nodes)) == len(nodes)
    assert verify_read_proof(t.root, keys, nodes) == {k: model.get(k) for k in keys}
    assert verify_read_proof(t.root, keys, list(reversed(nodes))) == {k: model.get(k) for k in keys}


def test_empty_state_proofs() -> None:
    t = MemTrie()
    assert prove(t.loader, ZERO_HASH, b"k") == []
    assert verify_proof(ZERO_HASH, b"k", []) == (True, None)
    assert verify_read_proof(ZERO_HASH, [b"a", b"b"], []) == {b"a": None, b"b": None}
    root, nodes = build_from_scratch({b"k": b"v"})
    with pytest.raises(ProofError):
        verify_proof(ZERO_HASH, b"k", [nodes[root]])
    with pytest.raises(ProofError):
        verify_proof(root, b"k", [])


def _tamper(proof: list[bytes], data: st.DataObject, present: bool) -> list[Any]:
    kinds = ["flip", "drop", "extra", "truncate_node"]
    if len(proof) >= 2:
        kinds.append("swap")
    if present:
        kinds.append("value")
    kind = data.draw(st.sampled_from(kinds), label="kind")
    p: list[Any] = list(proof)
    i = data.draw(st.integers(0, len(p) - 1), label="node")
    if kind == "flip":
        pos = data.draw(st.integers(0, len(p[i]) - 1), label="pos")
        mask = data.draw(st.integers(1, 255), label="mask")
        b = bytearray(p[i])
        b[pos] ^= mask
        p[i] = bytes(b)
    elif kind == "drop":
        del p[i]
    elif kind == "extra":
        p.insert(data.draw(st.integers(0, len(p)), label="at"), p[i])
    elif kind == "truncate_node":
        p[i] = p[i][: data.draw(st.integers(0, len(p[i]) - 1), label="len")]
    elif kind == "swap":
        j = data.draw(st.integers(0, len(p) - 1).filter(lambda j: j != i), label="other")
        p[i], p[j] = p[j], p[i]
    else:  # the leaf's value changed (re-encoded canonically: only the hash can catch it)
        leaf = codec.decode(p[-1])
        p[-1] = codec.encode([0, leaf[1], leaf[2] + b"!"])
    return p


@FAST
@given(
    ops=ops_st.filter(lambda o: any(v is not None for _, v in o)),
    data=st.data(),
)
def test_tampered_proofs_fail(ops: list[tuple[bytes, bytes | None]], data: st.DataObject) -> None:
    t, model = run_ops(ops, [4])
    if not model:
        return
    key = data.draw(st.sampled_from(sorted(model)) | keys_st, label="key")
    proof = prove(t.loader, t.root, key)
    assert verify_proof(t.root, key, proof) == (True, model.get(key))
    with pytest.raises(ProofError):
        verify_proof(t.root, key, _tamper(proof, data, key in model))
    wrong_root = bytearray(t.root)
    wrong_root[data.draw(st.integers(0, 31), label="root byte")] ^= 1
    with pytest.raises(ProofError):
        verify_proof(bytes(wrong_root), key, proof)
    # Multi-key form: a missing node, a foreign node or a flipped byte all fail.
    nodes = prove_many(t.loader, t.root, [key])
    with pytest.raises(ProofError):
        verify_read_proof(t.root, [key], nodes[1:])
    with pytest.raises(ProofError):
        verify_read_proof(t.root, [key], [*nodes, codec.encode([0, b"zz", b"pad"])])
    with pytest.raises(ProofError):
        verify_read_proof(bytes(wrong_root), [key], nodes)


_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=12,
)
_node_like = st.one_of(
    st.tuples(st.just(0), st.binary(max_size=8), st.binary(max_size=8)),
    st.tuples(
        st.sampled_from([0, 1, 2]),
        st.integers(-5, 2**33),
        st.binary(min_size=31, max_size=33),
        st.binary(min_size=32, max_size=32),
    ),
).map(lambda t: msgpack.packb(list(t)))
_garbage_node = st.binary(max_size=80) | _plain.map(msgpack.packb) | _node_like


@settings(max_examples=150, deadline=None)
@given(
    root=st.binary(min_size=31, max_size=33) | st.just(ZERO_HASH),
    key=st.binary(max_size=8),
    proof=st.lists(_garbage_node, max_size=5),
)
def test_garbage_only_raises_proof_error(root: bytes, key: bytes, proof: list[bytes]) -> None:
    for call in (
        lambda: verify_proof(root, key, proof),
        lambda: verify_read_proof(root, [key], proof),
    ):
        try:
            call()
        except ProofError:
            pass


@pytest.mark.parametrize(
    "args",
    [
        (None, b"k", []),
        (ZERO_HASH, "k", []),
        (b"\x01" * 32, b"k", None),
        (b"\x01" * 32, b"k", b"notalist"),
        (b"\x01" * 32, b"k", [None]),
        (b"\x01" * 32, b"k", [123]),
        (b"\x01" * 32, None, [b"\x93\x00\xc4\x00\xc4\x00"]),
        ("r" * 32, b"k", []),
    ],
)
def test_wrong_types_raise_proof_error(args: tuple[Any, Any, Any]) -> None:
    with pytest.raises(ProofError):
        verify_proof(*args)
    with pytest.raises(ProofError):
        verify_read_proof(args[0], [args[1]], args[2])
