"""BLAKE3 (all modes, every length class), batch hashing, Merkle roots and state roots: the C
path equals the blake3 package and the fallback bit for bit, at every SIMD level."""

from __future__ import annotations

import random
from types import ModuleType

import msgpack
import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_helpers import native_module

from twinchain import native
from twinchain.native import fallback
from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key, hash_for
from twinchain.storage.trie import NodeLoader, build_from_scratch, compute_update

# Every length class: empty, under a block, block and chunk edges, multi-chunk trees (full and
# ragged), and lengths that are no multiple of 64.
LENGTHS = [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 1023, 1024, 1025, 2047, 2048]
LENGTHS += [2049, 3071, 3072, 3073, 4095, 4096, 4097, 5000, 8191, 8193, 16385, 65537]
LENGTHS += [100_003, (1 << 20) + 13]

KEY = bytes(range(32))
MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _simd_levels() -> list[int]:
    mod = native_module()
    return list(range(mod.SIMD_MAX + 1)) if mod is not None else [0]


@pytest.mark.parametrize("n", LENGTHS)
def test_length_classes(impl: ModuleType, n: int) -> None:
    data = random.Random(n).randbytes(n)
    assert impl.blake3_hash(data) == blake3(data).digest()
    assert impl.blake3_hash(data, KEY) == blake3(data, key=KEY).digest()
    assert (
        impl.blake3_derive_key("twinchain test context", data)
        == blake3(data, derive_key_context="twinchain test context").digest()
    )


# Short inputs from hypothesis (it shrinks well there), longer ones from a seeded generator
# (every length up to four chunks is as likely as any other).
inputs = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.integers(0, 4200), st.integers(0, 2**32)).map(
        lambda t: random.Random(t[1]).randbytes(t[0])
    ),
)


@MANY
@given(data=inputs, key=st.binary(min_size=32, max_size=32), context=st.text(max_size=40))
def test_blake3_matches_package(data: bytes, key: bytes, context: str) -> None:
    for impl in (fallback, native_module()):
        if impl is None:
            continue
        assert impl.blake3_hash(data) == blake3(data).digest()
        assert impl.blake3_hash(data, key) == blake3(data, key=key).digest()
        assert (
            impl.blake3_derive_key(context, data)
            == blake3(data, derive_key_context=context).digest()
        )


def test_domain_keys_rederived(impl: ModuleType) -> None:
    """The node's domain keys come out of the derive-key mode of either path."""
    for d in Domain:
        assert impl.blake3_derive_key("twinchain 2026-11 " + d.value, b"") == domain_key(d)


def test_bad_keys_and_items(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.blake3_hash(b"x", b"short key")
    with pytest.raises(ValueError):
        impl.hash_many(b"short key", [b"x"])
    with pytest.raises(TypeError):
        impl.hash_many(KEY, [b"x", "not bytes"])
    with pytest.raises(TypeError):
        impl.blake3_derive_key(b"bytes context", b"x")


def _items(rng: random.Random, n: int) -> list[bytes]:
    sizes = [0, 1, 32, 36, 63, 64, 65, 68, 88, 200, 1023, 1024, 1025, 3000]
    return [rng.randbytes(rng.choice(sizes)) for _ in range(n)]


@pytest.mark.parametrize("simd", _simd_levels())
def test_hash_many_every_simd_level(cimpl: ModuleType, simd: int) -> None:
    """Every group size around the lane counts (4, 8, 16), mixed lengths in one group, and
    multi-chunk items interleaved with the lanes."""
    cimpl.set_simd(simd)
    rng = random.Random(simd)
    for n in [*range(1, 35), 100, 1000, 5000]:
        items = _items(rng, n)
        assert cimpl.hash_many(KEY, items) == [blake3(x, key=KEY).digest() for x in items]
    same = [rng.randbytes(64) for _ in range(4099)]  # the shape of a Merkle level
    assert cimpl.hash_many(KEY, same) == [blake3(x, key=KEY).digest() for x in same]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(inputs, max_size=40), key=st.binary(min_size=32, max_size=32))
def test_hash_many_matches_package(items: list[bytes], key: bytes) -> None:
    expected = [blake3(x, key=key).digest() for x in items]
    for impl in (fallback, native_module()):
        if impl is not None:
            assert impl.hash_many(key, items) == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.binary(max_size=300), max_size=20),
    cut=st.integers(0, 6),
    junk=st.binary(max_size=4),
    delta=st.integers(-1, 1),
)
def test_packed_lists_parse_exactly(items: list[bytes], cut: int, junk: bytes, delta: int) -> None:
    """C receives lists as msgpack arrays of bins (see cimpl._pack). Its parser accepts
    exactly what msgpack decodes to n byte strings, and rejects anything else without reading
    past the buffer: truncations, trailing bytes, wrong counts."""
    mod = native_module()
    if mod is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    from twinchain.native._native import ffi, lib

    packed = msgpack.packb(items, use_bin_type=True)
    mutated = packed[: len(packed) - cut] + junk
    n = max(0, len(items) + delta)
    out = bytearray(32 * max(n, 1))
    rc = lib.tc_hash_many(KEY, mutated, len(mutated), n, ffi.from_buffer(out), 1, 0)
    try:
        decoded = msgpack.unpackb(mutated)
        valid = (
            isinstance(decoded, list)
            and len(decoded) == n
            and all(isinstance(x, bytes) for x in decoded)
        )
    except Exception:
        valid = False
    if n == 0:
        assert rc == 0  # nothing to hash: the buffer is not looked at
    elif valid:
        assert rc == 0
        assert [bytes(out[i : i + 32]) for i in range(0, 32 * n, 32)] == [
            blake3(x, key=KEY).digest() for x in decoded
        ]
    else:
        assert rc == -2


def test_hash_many_bytes_like(impl: ModuleType) -> None:
    items = [bytearray(b"abc"), memoryview(b"defg"), b"h"]
    assert impl.hash_many(KEY, items) == [blake3(bytes(x), key=KEY).digest() for x in items]
    assert impl.hash_many(KEY, []) == []


def test_merkle_root_shapes(impl: ModuleType) -> None:
    """Empty is zero; one leaf is its leaf hash; three leaves promote the odd one."""
    leaf = [hash_for(Domain.MERKLE_LEAF, x) for x in (b"a", b"b", b"c")]
    node = hash_for(Domain.MERKLE_NODE, leaf[0] + leaf[1])
    assert impl.merkle_root([]) == ZERO_HASH
    assert impl.merkle_root([b"a"]) == leaf[0]
    assert impl.merkle_root([b"a", b"b", b"c"]) == hash_for(Domain.MERKLE_NODE, node + leaf[2])


@pytest.mark.parametrize("simd", _simd_levels())
def test_merkle_root_matches_fallback(cimpl: ModuleType, simd: int) -> None:
    cimpl.set_simd(simd)
    rng = random.Random(100 + simd)
    for n in [*range(0, 70), 255, 256, 257, 1000, 1023, 1024, 1025, 2047, 2049, 3073, 4097]:
        leaves = _items(rng, n)
        assert cimpl.merkle_root(leaves) == fallback.merkle_root(leaves), n
    big = [rng.randbytes(32) for _ in range(100_003)]  # threaded levels, odd promotions
    for threads in (1, 2, 5):
        cimpl.set_threads(threads)
        assert cimpl.merkle_root(big) == fallback.merkle_root(big)


def _state(rng: random.Random, n: int) -> dict[bytes, bytes]:
    # 32-byte map prefix + 16-byte hashed key + 8-byte raw key, as the runtime writes them.
    prefixes = [rng.randbytes(32) for _ in range(3)]
    return {
        prefixes[i % 3] + rng.randbytes(24): rng.randbytes(rng.choice([0, 8, 40, 200, 2000]))
        for i in range(n)
    }


def test_state_roots_equal(facade_path: None) -> None:
    """The state trie hashes through the facade: its roots and nodes are the same on both
    paths, for a full build and for an incremental update."""
    if native_module() is None:
        pytest.skip(f"C extension not loaded: {native.build_error}")
    rng = random.Random(9)
    state = _state(rng, 5000)
    keys = list(state)
    changes: dict[bytes, bytes | None] = {k: rng.randbytes(40) for k in rng.sample(keys, 300)}
    changes.update(dict.fromkeys(rng.sample(keys, 100)))
    changes.update(_state(rng, 100))
    results = []
    for on in (True, False):
        native.use_native(on)
        root, nodes = build_from_scratch(state)
        update = compute_update(NodeLoader(nodes.get), root, changes)
        results.append((root, nodes, update.root, update.nodes))
    assert results[0] == results[1]
    assert results[0][0] != results[0][2]
