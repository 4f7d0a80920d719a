"""The Merkle-committed state: a binary Patricia (crit-bit) trie over raw storage keys.

Shape. The key set must be prefix-free. A single key is a leaf; a larger set is a branch on
its *critical bit* (the first bit index where its keys disagree) with the keys having 0 there
on the left. The tree of a key set is therefore unique, and so is its root: it depends only on
the final key/value set, never on insertion order or batching. Left-first order is byte order,
which gives ordered prefix iteration. Node formats and hashes are described in
:mod:`twinchain.storage.proof`; the empty state has the all-zero root.

In memory, stored nodes are the tuples msgpack decodes them to: ``(0, key, value)`` and
``(1, bit, left_hash, right_hash)``. Nodes built by an update are small lists
``[hash, height, key, value]`` / ``[hash, height, bit, left, right]`` whose hash is filled in
by the level-by-level hashing pass; a child is either a stored node's hash (bytes) or one of
these lists.

Update algorithm (:func:`compute_update`), for k changed keys in a trie of depth d, O(k·d):

1. walk every changed key from the root to the leaf it ends at; the first bit where the key
   differs from that leaf is the longest prefix it shares with *any* key of the trie (the
   crit-bit property), call it D. D tells, at every branch on the way, whether the key lies
   inside that branch's subtree (D >= its bit) or splits off above it;
2. one recursive pass over the sorted changes rebuilds only the nodes on touched paths:
   untouched subtrees are kept by hash, and new keys that split off above a subtree are
   merged with it by a Cartesian-tree construction on adjacent critical bits;
3. the new nodes are hashed bottom-up, one ``native.hash_many`` call per level.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from twinchain import native
from twinchain.primitives.hashing import ZERO_HASH, Domain, domain_key
from twinchain.storage.abc import StateReader
from twinchain.storage.proof import (
    ProofError,
    verify_proof,
    verify_read_proof,
)

__all__ = [
    "NodeLoader",
    "ProofError",
    "StateError",
    "TrieUpdate",
    "TrieView",
    "build_from_scratch",
    "compute_update",
    "prove",
    "prove_many",
    "verify_proof",
    "verify_read_proof",
]

_LEAF_KEY = domain_key(Domain.TRIE_LEAF)
_BRANCH_KEY = domain_key(Domain.TRIE_BRANCH)
_VALUE_KEY = domain_key(Domain.TRIE_VALUE)

_SAME = 1 << 62  # "differs nowhere": larger than any real bit index
_PREFIX = -1  # one key is a proper prefix of the other

_pack = msgpack.Packer(use_bin_type=True).pack
_u32 = struct.Struct(">I").pack


class StateError(Exception):
    """A state operation that cannot be done: missing/pruned state, or a prefix-key clash."""


def _diff(a: bytes, b: bytes) -> int:
    """First bit index where ``a`` and ``b`` differ, _SAME if equal, _PREFIX if nested."""
    la, lb = len(a), len(b)
    n = la if la < lb else lb
    if la == lb:
        x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    elif la < lb:
        x = int.from_bytes(a, "big") ^ int.from_bytes(b[:n], "big")
    else:
        x = int.from_bytes(a[:n], "big") ^ int.from_bytes(b, "big")
    if x:
        return (n << 3) - x.bit_length()
    return _SAME if la == lb else _PREFIX


def _sep(a: bytes, b: bytes) -> int:
    """Critical bit between two distinct keys that are about to share a trie."""
    d = _diff(a, b)
    if d < 0 or d == _SAME:
        raise StateError(f"storage key {min(a, b, key=len).hex()} is a prefix of another key")
    return d


def _bit(key: bytes, i: int) -> int:
    j = i >> 3
    return (key[j] >> (7 - (i & 7))) & 1 if j < len(key) else 0


class NodeLoader:
    """Decodes stored nodes by hash, with a bounded cache shared by all views of a StateDB
    (of decoded nodes, and of seeded ones still encoded until their first load).

    ``fetch(hash)`` returns a node's canonical encoding or None. The cache is two generations
    of dicts (hits are promoted to the young one; when it is full the old one is dropped):
    LRU-like, bounded by ``cache_size`` entries, and cheaper per hit than an OrderedDict.
    """

    __slots__ = ("_cold", "_fetch", "_half", "_hot")

    def __init__(self, fetch: Callable[[bytes], bytes | None], cache_size: int = 200_000) -> None:
        self._fetch = fetch
        self._half = max(cache_size // 2, 0)
        self._hot: dict[bytes, tuple[Any, ...]] = {}
        self._cold: dict[bytes, tuple[Any, ...]] = {}

    def load(self, h: bytes) -> tuple[Any, ...]:
        node = self._hot.get(h)
        if node is not None and type(node) is not bytes:
            return node
        if node is None:
            node = self._cold.get(h)
        if node is None:
            node = self._fetch(h)
            if node is None:
                raise StateError(f"state pruned/missing: node {h.hex()} not found")
        if type(node) is bytes:  # stored, or seeded and not decoded yet
            node = msgpack.unpackb(node, use_list=False)  # trusted: we wrote it
        if self._half:
            hot = self._hot
            hot[h] = node
            if len(hot) >= self._half:
                self._cold = hot
                self._hot = {}
        return node

    def seed(self, nodes: Mapping[bytes, bytes]) -> None:
        """Cache nodes being written ({hash: encoding}). The next block's update walks the
        paths this one rewrote, so without this nearly every node it loads above the
        untouched subtrees was a miss: a LevelDB read and a decode (~6 % of a loaded
        validator's CPU)."""
        if not self._half:
            return
        hot = self._hot
        # Kept encoded until loaded: most nodes of a block's lower paths are never read again.
        for h, enc in nodes.items():
            hot[h] = enc  # type: ignore[assignment]
            if len(hot) >= self._half:
                self._cold = hot
                self._hot = hot = {}

    def evict(self, h: bytes) -> None:
        """Forget ``h`` (its node is being deleted: a pruned state must not stay readable)."""
        self._hot.pop(h, None)
        self._cold.pop(h, None)

    def clear(self) -> None:
        self._hot.clear()
        self._cold.clear()


def _encode_node(node: tuple[Any, ...]) -> bytes:
    return _pack(node)


class TrieView(StateReader):
    """Read-only view of the state with root ``root``; a missing node raises StateError."""

    __slots__ = ("loader", "root")

    def __init__(self, loader: NodeLoader, root: bytes) -> None:
        self.loader = loader
        self.root = root

    def get(self, key: bytes) -> bytes | None:
        if self.root == ZERO_HASH:
            return None
        load = self.loader.load
        node = load(self.root)
        nk = len(key)
        while node[0]:
            b = node[1]
            j = b >> 3
            node = load(node[3] if j < nk and (key[j] >> (7 - (b & 7))) & 1 else node[2])
        return node[2] if node[1] == key else None

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def iter_prefix(
        self, prefix: bytes = b"", start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        if self.root == ZERO_HASH:
            return
        load = self.loader.load
        ref = self.root
        node = load(ref)
        pbits = len(prefix) << 3
        # Descend while the branch bit lies inside the prefix: every key carrying the prefix
        # is under the node reached, and that node's keys either all carry it or none does.
        while node[0] and node[1] < pbits:
            ref = node[3] if _bit(prefix, node[1]) else node[2]
            node = load(ref)
        if start_after is None or start_after < prefix:
            stack = [ref]
        elif start_after.startswith(prefix):
            stack = self._seek(ref, node, start_after)
        else:  # start_after is above every key with this prefix
            return
        while stack:
            node = load(stack.pop())
            while node[0]:
                stack.append(node[3])
                node = load(node[2])
            if not node[1].startswith(prefix):
                return
            yield node[1], node[2]

    def _seek(self, ref: bytes, node: tuple[Any, ...], target: bytes) -> list[bytes]:
        """Stack of subtrees (popped in ascending order) holding exactly the keys > target."""
        load = self.loader.load
        path: list[tuple[bytes, tuple[Any, ...]]] = []
        while node[0]:
            path.append((ref, node))
            ref = node[3] if _bit(target, node[1]) else node[2]
            node = load(ref)
        leaf_key: bytes = node[1]
        d = _diff(target, leaf_key)
        # The subtree where the walk leaves target's bits (or the leaf) lies wholly on one
        # side of target; above it, target's own bit says which sibling is greater.
        if d == _SAME:
            cut, include = _SAME, False
        elif d == _PREFIX:
            shorter = len(target) < len(leaf_key)
            cut, include = (min(len(target), len(leaf_key)) << 3), shorter
        else:
            cut, include = d, not _bit(target, d)
        stack: list[bytes] = []
        boundary = ref
        for r, n in path:
            if n[1] >= cut:
                boundary = r
                break
            if not _bit(target, n[1]):
                stack.append(n[3])
        if include:
            stack.append(boundary)
        return stack

    def prove(self, key: bytes) -> list[bytes]:
        return prove(self.loader, self.root, key)


@dataclass(slots=True)
class TrieUpdate:
    """The result of :func:`compute_update`; nothing has been written anywhere yet."""

    parent_root: bytes
    root: bytes
    nodes: dict[bytes, bytes] = field(default_factory=dict)  # new node hash -> encoding
    replaced: set[bytes] = field(default_factory=set)  # parent nodes not in the new state
    # New branch -> its children that are new nodes too. A node whose child was never
    # stored cannot be stored either (a stored node's children are), so StateDB.commit
    # learns most branches are absent from one fresh child instead of a read each.
    kids: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)


class _Builder:
    """Creates the new nodes of one update and hashes them level by level."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: list[list[list[Any]]] = [[]]  # levels[0]: leaves, levels[h]: branches

    def leaf(self, key: bytes, value: bytes) -> list[Any]:
        n = [None, 0, key, value]
        self.levels[0].append(n)
        return n

    def branch(self, bit: int, left: Any, right: Any) -> list[Any]:
        hl = 0 if type(left) is bytes else left[1]
        hr = 0 if type(right) is bytes else right[1]
        h = (hl if hl > hr else hr) + 1
        n = [None, h, bit, left, right]
        levels = self.levels
        if h == len(levels):
            levels.append([n])
        else:
            levels[h].append(n)
        return n

    def tree(self, seq: list[Any], seps: list[int]) -> Any:
        """The crit-bit tree over ``seq`` (sorted subtrees/leaves), ``seps[i]`` being the
        critical bit between ``seq[i]`` and ``seq[i + 1]``.

        A crit-bit tree is the Cartesian tree of the separators (the smallest at the root),
        built left to right with a stack of open branches. Two equal neighbouring separators
        cannot occur in a sorted prefix-free set, so the strict comparison is exact.
        """
        cur = seq[0]
        n = len(seq)
        if n == 1:
            return cur
        levels = self.levels
        stack: list[tuple[int, Any]] = []
        for i in range(1, n + 1):
            d = seps[i - 1] if i < n else -1  # -1 closes every open branch at the end
            while stack and stack[-1][0] > d:
                b, left = stack.pop()
                # Inlined self.branch(): this loop builds every branch of a full rebuild.
                hl = 0 if type(left) is bytes else left[1]
                hr = 0 if type(cur) is bytes else cur[1]
                h = (hl if hl > hr else hr) + 1
                cur = [None, h, b, left, cur]
                if h == len(levels):
                    levels.append([cur])
                else:
                    levels[h].append(cur)
            if i < n:
                stack.append((d, cur))
                cur = seq[i]
        return cur

    def hash_all(self, kids: dict[bytes, tuple[bytes, ...]] | None = None) -> dict[bytes, bytes]:
        """Hash every new node bottom-up, one ``hash_many`` call per level (plus one for the
        leaf values); returns {hash: encoding}, leaves first, then level by level. ``kids``
        (if given) receives each new branch's new children (see TrieUpdate.kids)."""
        nodes: dict[bytes, bytes] = {}
        hash_many = native.hash_many
        pack = _pack
        leaves = self.levels[0]
        if leaves:
            vhs = hash_many(_VALUE_KEY, [n[3] for n in leaves])
            hs = hash_many(_LEAF_KEY, [n[2] + vh for n, vh in zip(leaves, vhs, strict=True)])
            for n, h in zip(leaves, hs, strict=True):
                n[0] = h
                nodes[h] = pack((0, n[2], n[3]))
        u32 = _u32
        for level in self.levels[1:]:
            if not level:
                continue
            pre = []
            for n in level:
                left = n[3]
                right = n[4]
                pre.append(
                    u32(n[2])
                    + (left if type(left) is bytes else left[0])
                    + (right if type(right) is bytes else right[0])
                )
            hs = hash_many(_BRANCH_KEY, pre)
            for n, h, p in zip(level, hs, pre, strict=True):
                n[0] = h
                nodes[h] = pack((1, n[2], p[4:36], p[36:]))
            if kids is not None:
                for n in level:
                    left = n[3]
                    right = n[4]
                    if type(left) is bytes:
                        kids[n[0]] = (right[0],)
                    elif type(right) is bytes:
                        kids[n[0]] = (left[0],)
                    else:
                        kids[n[0]] = (left[0], right[0])
        return nodes


def _root_of(tree: Any) -> bytes:
    if tree is None:
        return ZERO_HASH
    return tree if type(tree) is bytes else tree[0]


def build_from_scratch(items: Mapping[bytes, bytes | None]) -> tuple[bytes, dict[bytes, bytes]]:
    """(root, {hash: encoding}) of the trie holding ``items`` (None values are skipped), built
    from the sorted keys without reading anything. Raises StateError on prefix keys."""
    keys = sorted(k for k, v in items.items() if v is not None)
    if not keys:
        return ZERO_HASH, {}
    b = _Builder()
    seq: list[Any] = [[None, 0, k, items[k]] for k in keys]
    b.levels[0] = seq
    seps = [_sep(keys[i], keys[i + 1]) for i in range(len(keys) - 1)]
    tree = b.tree(seq, seps)
    nodes = b.hash_all()
    return _root_of(tree), nodes


def compute_update(
    loader: NodeLoader, parent_root: bytes, changes: Mapping[bytes, bytes | None]
) -> TrieUpdate:
    """The new state after applying ``changes`` (None deletes; deleting an absent key and
    writing an unchanged value are no-ops) to the state at ``parent_root``.

    Reads only the nodes on the changed keys' paths, writes nothing. Raises StateError if a
    key would be a proper prefix of another, or if a needed node of the parent is missing.
    """
    items = sorted(changes.items())
    if parent_root == ZERO_HASH:
        root, nodes = build_from_scratch(dict(items))
        return TrieUpdate(parent_root, root, nodes, set())

    # Nodes of the parent needed twice (walk, then rebuild) are kept for this update.
    memo: dict[bytes, tuple[Any, ...]] = {}
    shared_load = loader.load

    def load(h: bytes) -> tuple[Any, ...]:
        n = memo.get(h)
        if n is None:
            n = memo[h] = shared_load(h)
        return n

    # Phase 1: walk each key; keep effective changes with D (see module docstring).
    keys: list[bytes] = []
    vals: list[bytes | None] = []
    dist: list[int] = []
    max_depth = 0
    top = load(parent_root)
    for key, val in items:
        node = top
        depth = 0
        nk = len(key)
        while node[0]:
            b = node[1]
            j = b >> 3
            node = load(node[3] if j < nk and (key[j] >> (7 - (b & 7))) & 1 else node[2])
            depth += 1
        leaf_key = node[1]
        if leaf_key == key:
            if val is not None and val == node[2]:
                continue
            d = _SAME
        else:
            if val is None:
                continue
            d = _diff(key, leaf_key)
            if d == _PREFIX:
                # Legal only if the clashing keys are deleted in this same batch.
                return _deletes_first(loader, parent_root, items, key, leaf_key)
        keys.append(key)
        vals.append(val)
        dist.append(d)
        if depth > max_depth:
            max_depth = depth
    if not keys:
        return TrieUpdate(parent_root, parent_root, {}, set())

    builder = _Builder()
    new_leaf = builder.leaf
    new_branch = builder.branch
    make_tree = builder.tree
    replaced: list[bytes] = []

    def inserts(lo: int, hi: int) -> tuple[list[Any], list[int]]:
        """New leaves for keys[lo:hi] (all inserts) and the separators between them."""
        return (
            [new_leaf(keys[j], vals[j]) for j in range(lo, hi)],  # type: ignore[arg-type]
            [_sep(keys[j], keys[j + 1]) for j in range(lo, hi - 1)],
        )

    def merge_leaf(ref: bytes, node: tuple[Any, ...], lo: int, hi: int) -> Any:
        # Every change here walked to this leaf: an edit of it, or inserts around it.
        leaf_key = node[1]
        seq: list[Any] = []
        seq_keys: list[bytes] = []
        placed = False
        for j in range(lo, hi):
            k = keys[j]
            if not placed and leaf_key <= k:
                placed = True
                if leaf_key == k:
                    replaced.append(ref)
                    if vals[j] is not None:
                        seq.append(new_leaf(k, vals[j]))  # type: ignore[arg-type]
                        seq_keys.append(k)
                    continue
                seq.append(ref)
                seq_keys.append(leaf_key)
            seq.append(new_leaf(k, vals[j]))  # type: ignore[arg-type]
            seq_keys.append(k)
        if not placed:
            seq.append(ref)
            seq_keys.append(leaf_key)
        if not seq:
            return None
        return make_tree(seq, [_sep(seq_keys[i], seq_keys[i + 1]) for i in range(len(seq) - 1)])

    def update(ref: bytes, lo: int, hi: int) -> Any:
        """New subtree for the stored subtree ``ref`` and changes[lo:hi], all of which
        walked through it; None if it ends up empty."""
        node = load(ref)
        if not node[0]:
            return merge_leaf(ref, node, lo, hi)
        b = node[1]
        # Sorted changes come in three runs: keys that split off below this subtree's prefix
        # (their bit at D is 0, the subtree's is 1), keys inside it (D >= b), keys above it.
        ilo = lo
        while ilo < hi and dist[ilo] < b and not _bit(keys[ilo], dist[ilo]):
            ilo += 1
        ihi = ilo
        while ihi < hi and dist[ihi] >= b:
            ihi += 1
        inside: Any = ref
        if ilo < ihi:
            replaced.append(ref)
            # An inside key is long enough to have bit b (else it would be a prefix).
            j = b >> 3
            sh = 7 - (b & 7)
            m = ilo
            while m < ihi and not (keys[m][j] >> sh) & 1:
                m += 1
            left = update(node[2], ilo, m) if m > ilo else node[2]
            right = update(node[3], m, ihi) if ihi > m else node[3]
            if left is None:
                inside = right
            elif right is None:
                inside = left
            else:
                inside = new_branch(b, left, right)
        if ilo == lo and ihi == hi:
            return inside
        # New keys that differ from this subtree's prefix: for such a key, D is its critical
        # bit against every key of the subtree, old or newly inserted inside it.
        seq, seps = inserts(lo, ilo)
        if inside is not None:
            if ilo > lo:
                seps.append(dist[ilo - 1])
            seq.append(inside)
            if ihi < hi:
                seps.append(dist[ihi])
        elif ilo > lo and ihi < hi:
            seps.append(_sep(keys[ilo - 1], keys[ihi]))
        after, after_seps = inserts(ihi, hi)
        seq.extend(after)
        seps.extend(after_seps)
        return make_tree(seq, seps)

    # Recursion depth is the trie depth, bounded by 8 x key length; make room if needed
    # (3.11 frames of pure-Python calls do not use the C stack).
    if max_depth + 100 > sys.getrecursionlimit():
        sys.setrecursionlimit(max_depth + 1000)
    tree = update(parent_root, 0, len(keys))
    kids: dict[bytes, tuple[bytes, ...]] = {}
    nodes = builder.hash_all(kids)
    gone = set(replaced)
    gone.difference_update(nodes)  # defensive: a hash cannot be both new and removed
    return TrieUpdate(parent_root, _root_of(tree), nodes, gone, kids)


def _deletes_first(
    loader: NodeLoader,
    parent_root: bytes,
    items: list[tuple[bytes, bytes | None]],
    key: bytes,
    clash: bytes,
) -> TrieUpdate:
    """Rare path: an inserted key nests with an existing one. The final key set decides, so
    apply the deletions, then the rest (which raises if a clash survives), and express the
    two steps as one update of ``parent_root``."""
    deletes = {k: v for k, v in items if v is None}
    if clash not in deletes:
        raise StateError(f"storage key {min(key, clash, key=len).hex()} is a prefix of another key")
    first = compute_update(loader, parent_root, deletes)
    # The intermediate state's nodes exist only here: read them before the stored ones.
    fetch = loader._fetch
    overlay = NodeLoader(lambda h: first.nodes.get(h) or fetch(h), 0)
    second = compute_update(overlay, first.root, {k: v for k, v in items if v is not None})
    nodes = {h: e for h, e in first.nodes.items() if h not in second.replaced}
    nodes.update(second.nodes)
    replaced = first.replaced | (second.replaced - first.nodes.keys())
    both = replaced & nodes.keys()  # removed by the deletes, re-created by the inserts
    for h in both:
        del nodes[h]
    return TrieUpdate(parent_root, second.root, nodes, replaced - both)


def _walk_nodes(loader: NodeLoader, root: bytes, key: bytes) -> Iterator[bytes]:
    """(hash) of every node on the walk of ``key`` from ``root``."""
    if root == ZERO_HASH:
        return
    h = root
    while True:
        yield h
        node = loader.load(h)
        if not node[0]:
            return
        h = node[3] if _bit(key, node[1]) else node[2]


def prove(loader: NodeLoader, root: bytes, key: bytes) -> list[bytes]:
    """The encoded nodes from the root down the walk of ``key``: an inclusion proof if the
    key is present, a non-inclusion proof otherwise (see :func:`verify_proof`)."""
    return [_encode_node(loader.load(h)) for h in _walk_nodes(loader, root, key)]


def prove_many(loader: NodeLoader, root: bytes, keys: Iterable[bytes]) -> list[bytes]:
    """The deduplicated nodes on the walks of all ``keys`` (see :func:`verify_read_proof`)."""
    seen: dict[bytes, None] = {}
    for key in sorted(set(keys)):
        for h in _walk_nodes(loader, root, key):
            seen[h] = None
    return [_encode_node(loader.load(h)) for h in seen]
