"""StateDB on LevelDB: reference counts, journals, pruning window, archive mode and forks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from twinchain.primitives.hashing import ZERO_HASH, Domain, hash_for
from twinchain.storage.abc import KeyValueStore, WriteBatch
from twinchain.storage.columns import STATE_JOURNAL, STATE_NODE, STATE_PRUNE
from twinchain.storage.kv import LevelDBStore, MemoryStore
from twinchain.storage.proof import verify_read_proof
from twinchain.storage.statedb import StateDB
from twinchain.storage.trie import StateError, TrieView, build_from_scratch

PREFIX = hash_for(Domain.STORAGE_PREFIX, b"Test Map")
K = [PREFIX + i.to_bytes(8, "big") for i in range(40)]

Model = dict[bytes, bytes]
Changes = dict[bytes, bytes | None]


def bh(tag: str) -> bytes:
    return hash_for(Domain.HEADER, tag.encode())


def applied(model: Model, changes: Changes) -> Model:
    out = dict(model)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def diff(a: Model, b: Model) -> Changes:
    """The changes turning state ``a`` into state ``b``."""
    ch: Changes = {k: None for k in a if k not in b}
    ch.update((k, v) for k, v in b.items() if a.get(k) != v)
    return ch


def linear_changes() -> list[Changes]:
    """Block 0 (genesis) .. 10 with overlapping edits, values set back, and block 8
    returning the whole state to that of block 4 (its root is re-created)."""
    blocks: list[Changes] = [{k: b"g%d" % i for i, k in enumerate(K[:24])}]
    blocks += [
        {K[1]: b"a1", K[2]: b"a2", K[3]: None},
        {K[1]: b"b1", K[4]: b"b4", K[30]: b"x30"},
        {K[2]: b"c2", K[5]: None, K[1]: b"c1"},
        {K[1]: b"d1", K[30]: None, K[31]: b"d31"},
        {K[1]: b"b1", K[6]: b"e6"},  # leaf (K1, b1) of block 2 re-created
        {K[7]: None, K[8]: b"f8", K[2]: b"a2"},
        {K[9]: b"h9", K[31]: b"h31", K[32]: b"h32"},
    ]
    models = [{}]
    for ch in blocks:
        models.append(applied(models[-1], ch))
    blocks.append(diff(models[-1], models[5]))  # block 8: state of block 4 again
    blocks += [{K[10]: b"i10"}, {K[1]: b"g1", K[3]: b"g3"}]
    return blocks


class Node:
    """A minimal block importer: one batch per import and per finality step."""

    def __init__(self, store: KeyValueStore, pruning: int | None) -> None:
        self.store = store
        self.sdb = StateDB(store, pruning=pruning, cache_nodes=1000)
        self.roots: dict[bytes, bytes] = {}  # block hash -> state root
        self.models: dict[bytes, Model] = {}
        self.inserted: dict[bytes, set[bytes]] = {}

    def import_block(self, parent: bytes | None, block: bytes, number: int, ch: Changes) -> None:
        parent_root = self.roots[parent] if parent else ZERO_HASH
        up = self.sdb.prepare(parent_root, ch)
        b = WriteBatch()
        self.sdb.commit(b, up, block, number)
        self.store.write(b)
        self.roots[block] = up.root
        self.models[block] = applied(self.models[parent] if parent else {}, ch)
        self.inserted[block] = set(up.nodes)

    def finalize(self, canonical: list[tuple[int, bytes]], discarded: Iterable[bytes] = ()) -> None:
        b = WriteBatch()
        self.sdb.finalize(b, canonical, list(discarded))
        self.store.write(b)

    def live_nodes(self, blocks: list[bytes]) -> set[bytes]:
        out: set[bytes] = set()
        for blk in blocks:
            stack = [self.roots[blk]] if self.roots[blk] != ZERO_HASH else []
            while stack:
                h = stack.pop()
                if h in out:
                    continue
                out.add(h)
                n = self.sdb.loader.load(h)
                if n[0]:
                    stack += [n[2], n[3]]
        return out

    def assert_whole(self, block: bytes) -> None:
        view = self.sdb.at(self.roots[block])
        model = self.models[block]
        assert list(view.iter_prefix(b"")) == sorted(model.items())
        for k in K:
            assert view.get(k) == model.get(k)

    def assert_gone(self, block: bytes) -> None:
        with pytest.raises(StateError, match="pruned/missing"):
            self.sdb.at(self.roots[block])
        with pytest.raises(StateError):
            list(TrieView(self.sdb.loader, self.roots[block]).iter_prefix(b""))
        assert not self.sdb.has_state(self.roots[block])

    def stored_nodes(self) -> dict[bytes, int]:
        return {k[1:]: int.from_bytes(v[:4], "big") for k, v in self.store.iterate(STATE_NODE)}


def count(store: KeyValueStore, prefix: bytes) -> int:
    return sum(1 for _ in store.iterate(prefix))


@pytest.mark.parametrize("pruning", [3, None])
def test_linear_chain_pruning_window(tmp_path: Path, pruning: int | None) -> None:
    store: KeyValueStore = LevelDBStore(tmp_path / "db")
    node = Node(store, pruning)
    chain: list[bytes] = []
    gone = 0
    for n, ch in enumerate(linear_changes()):
        blk = bh(f"block-{n}")
        node.import_block(chain[-1] if chain else None, blk, n, ch)
        chain.append(blk)
        node.finalize([(n, blk)])
        if n == 5:  # restart mid-way: the pruning queue and journals are on disk
            store.close()
            store = LevelDBStore(tmp_path / "db")
            node.store = store
            node.sdb = StateDB(store, pruning=pruning, cache_nodes=1000)

        first_kept = 0 if pruning is None else max(0, n - pruning)
        kept = chain[first_kept:]
        kept_roots = {node.roots[b] for b in kept}
        for b in kept:
            node.assert_whole(b)
        for b in chain[:first_kept]:
            if node.roots[b] in kept_roots:  # an equal state is retained (block 4 == 8)
                node.assert_whole(b)
            else:
                node.assert_gone(b)
                gone += 1
        # Exactly the nodes of the retained states are stored, none leaked.
        stored = node.stored_nodes()
        assert set(stored) == node.live_nodes(kept)
        assert all(c >= 1 for c in stored.values())
        if pruning is None:
            assert count(store, STATE_JOURNAL) == 0 and count(store, STATE_PRUNE) == 0
        else:
            # Journals remain for the blocks above F - N: their "replaced" sets are pending.
            assert count(store, STATE_JOURNAL) == min(len(chain), pruning)
            assert count(store, STATE_PRUNE) == min(len(chain), pruning)

    # Steps n = 4..10 each see n - 3 pruned states (28), minus block 4 while it equals 8.
    assert gone == (0 if pruning is None else 25)
    roots = [node.roots[b] for b in chain]
    assert roots[8] == roots[4] and len(set(roots)) == len(roots) - 1
    assert roots[-1] == build_from_scratch(node.models[chain[-1]])[0]
    store.close()


def test_forks_are_discarded_shared_nodes_survive(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    node = Node(store, pruning=2)
    canon = [bh(f"c{n}") for n in range(8)]
    changes = linear_changes()
    for n in range(8):
        node.import_block(canon[n - 1] if n else None, canon[n], n, changes[n])
    # F1 forks from block 2: block 3's edit of K2 (a shared leaf) plus unique keys;
    # F2 builds on F1; G is a sibling of block 5 with exactly block 5's changes (all shared).
    f1, f2, g = bh("f1"), bh("f2"), bh("g")
    node.import_block(canon[2], f1, 3, {K[2]: b"c2", K[33]: b"fork1", K[11]: None})
    node.import_block(f1, f2, 4, {K[34]: b"fork2", K[12]: b"fork-edit"})
    node.import_block(canon[4], g, 5, changes[5])
    assert node.roots[g] == node.roots[canon[5]]
    shared = node.inserted[f1] & node.live_nodes([canon[3]])
    assert shared  # the (K2, c2) leaf at least
    unique = (node.inserted[f1] | node.inserted[f2]) - node.live_nodes(canon)
    assert unique

    node.finalize([(n, canon[n]) for n in range(3)])
    for b in (f1, f2, g, *canon):
        node.assert_whole(b)  # nothing discarded yet, window not reached
    node.finalize([(3, canon[3])], [f1, f2])
    for b in (f1, f2):
        node.assert_gone(b)
    stored = node.stored_nodes()
    assert not unique & set(stored)
    assert shared <= set(stored)
    node.assert_whole(canon[3])
    node.finalize([(5, canon[5]), (4, canon[4])], [g])
    node.assert_whole(canon[5])  # G's nodes were all shared with block 5
    kept = canon[3:]
    for b in kept:
        node.assert_whole(b)
    assert set(node.stored_nodes()) == node.live_nodes(kept)
    node.finalize([(7, canon[7]), (6, canon[6])])
    assert set(node.stored_nodes()) == node.live_nodes(canon[5:])
    node.finalize([], [f1, g])  # already discarded: ignored
    assert set(node.stored_nodes()) == node.live_nodes(canon[5:])
    store.close()


def test_archive_keeps_discarded_forks(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    node = Node(store, pruning=None)
    changes = linear_changes()
    node.import_block(None, bh("0"), 0, changes[0])
    node.import_block(bh("0"), bh("1"), 1, changes[1])
    node.import_block(bh("0"), bh("1'"), 1, {K[35]: b"fork"})
    node.finalize([(0, bh("0")), (1, bh("1"))], [bh("1'")])
    for b in ("0", "1", "1'"):
        node.assert_whole(bh(b))
    assert count(store, STATE_JOURNAL) == 0
    store.close()


@pytest.mark.parametrize("pruning", [2, None])
def test_many_blocks_in_one_batch_equals_block_by_block(pruning: int | None) -> None:
    changes = linear_changes()
    one_by_one = Node(MemoryStore(), pruning)
    for n, ch in enumerate(changes):
        one_by_one.import_block(bh(str(n - 1)) if n else None, bh(str(n)), n, ch)
        one_by_one.finalize([(n, bh(str(n)))])

    # The same chain imported and finalized block by block into ONE unwritten batch: each
    # block executes on a parent state that exists only in that batch.
    store = MemoryStore()
    sdb = StateDB(store, pruning=pruning)
    batch = WriteBatch()
    root = ZERO_HASH
    model: Model = {}
    for n, ch in enumerate(changes):
        view = sdb.at(root)
        assert list(view.iter_prefix(b"")) == sorted(model.items())
        up = sdb.prepare(root, ch)
        sdb.commit(batch, up, bh(str(n)), n)
        sdb.finalize(batch, [(n, bh(str(n)))], [])
        root, model = up.root, applied(model, ch)
    store.write(batch)
    assert root == one_by_one.roots[bh(str(len(changes) - 1))]
    assert dict(store.iterate(b"")) == dict(one_by_one.store.iterate(b""))


def test_commit_twice_and_unknown_roots(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    sdb = StateDB(store, pruning=4)
    up = sdb.prepare(ZERO_HASH, {K[0]: b"a"})
    b = WriteBatch()
    sdb.commit(b, up, bh("x"), 0)
    with pytest.raises(StateError):
        sdb.commit(b, up, bh("x"), 0)
    store.write(b)
    with pytest.raises(StateError, match="pruned/missing"):
        sdb.at(b"\x42" * 32)
    with pytest.raises(StateError):
        sdb.prepare(b"\x42" * 32, {K[0]: b"b"})
    assert sdb.at(ZERO_HASH).get(K[0]) is None
    assert sdb.at(up.root).get(K[0]) == b"a"
    # Read proofs come from the retained state and verify stand-alone.
    proof = sdb.prove(up.root, [K[0], K[1]])
    assert verify_read_proof(up.root, [K[0], K[1]], proof) == {K[0]: b"a", K[1]: None}
    store.close()


def test_refcount_of_recreated_node() -> None:
    store = MemoryStore()
    node = Node(store, pruning=1)
    node.import_block(None, bh("0"), 0, {K[0]: b"a", K[1]: b"b"})
    node.import_block(bh("0"), bh("1"), 1, {K[0]: b"z"})
    node.import_block(bh("1"), bh("2"), 2, {K[0]: b"a"})  # back to the state of block 0
    assert node.roots[bh("2")] == node.roots[bh("0")]
    counts = node.stored_nodes()
    assert counts[node.roots[bh("0")]] == 2  # inserted by block 0 and again by block 2
    for n in range(3):
        node.finalize([(n, bh(str(n)))])
    # Window 1 at F=2: states of blocks 1 and 2 kept; block 0's state equals block 2's.
    node.assert_whole(bh("0"))
    node.assert_whole(bh("1"))
    assert set(node.stored_nodes()) == node.live_nodes([bh("1"), bh("2")])
    assert node.stored_nodes()[node.roots[bh("2")]] == 1


def test_flat_value_cache_matches_the_trie_across_forks_and_stale_views() -> None:
    """Reads through the flat cache equal the trie's, whatever parent a block builds on,
    with views kept across later blocks and updates prepared but never committed."""
    import random

    rng = random.Random(7)
    node = Node(MemoryStore(), pruning=None)
    node.sdb._flat_limit = 16  # small: the clear-when-full path runs too
    node.import_block(None, bh("0"), 0, {k: b"v0-%d" % i for i, k in enumerate(K[:20])})
    chain = [bh("0")]
    numbers = {bh("0"): 0}
    views = []
    for step in range(1, 160):
        parent = chain[-1] if rng.random() < 0.8 else rng.choice(chain)
        ch: Changes = {
            rng.choice(K): (None if rng.random() < 0.2 else b"s%d-%d" % (step, i))
            for i in range(rng.randint(1, 6))
        }
        if rng.random() < 0.1:  # prepared, then dropped (a block whose root mismatched)
            node.sdb.prepare(node.roots[parent], ch)
            continue
        blk = bh(f"b{step}")
        node.import_block(parent, blk, numbers[parent] + 1, ch)
        numbers[blk] = numbers[parent] + 1
        chain.append(blk)
        views.append((blk, node.sdb.at(node.roots[blk])))
        for b, view in rng.sample(views, min(len(views), 6)):
            for k in rng.sample(K, 8):
                assert view.get(k) == node.models[b].get(k)
    # The newest block's reads are served from the cache, and stay right.
    last = chain[-1]
    node.sdb.prepare(node.roots[chain[-2]], {})  # move the cache away ...
    node.import_block(last, bh("top"), numbers[last] + 1, {K[0]: b"top"})
    view = node.sdb.at(node.roots[bh("top")])
    assert [view.get(k) for k in K] == [node.models[bh("top")].get(k) for k in K]
    assert node.sdb._flat_root == node.roots[bh("top")] and node.sdb._flat


def test_the_next_update_walks_the_nodes_just_written_without_reading_the_store() -> None:
    # Nodes written by a commit are cached: the next block rewrites the same paths, and each
    # node it loaded from LevelDB cost a read and a decode.
    store = MemoryStore()
    node = Node(store, pruning=None)
    node.sdb.loader = type(node.sdb.loader)(node.sdb._fetch, 100_000)
    node.import_block(None, bh("0"), 0, {k: b"v%d" % i for i, k in enumerate(K)})
    node.import_block(bh("0"), bh("1"), 1, {K[3]: b"x", K[17]: b"y"})
    reads: list[bytes] = []
    real_get = store.get
    store.get = lambda k: reads.append(k) or real_get(k)  # type: ignore[method-assign]
    node.sdb.prepare(node.roots[bh("1")], {K[3]: b"z", K[17]: None, K[33]: b"w"})
    assert not [k for k in reads if k.startswith(STATE_NODE)]


def test_commit_reads_only_what_a_fresh_child_does_not_settle() -> None:
    # A block of new keys: each new leaf is looked up once, and every new branch above a new
    # leaf is known to be absent without a read (nothing stored can contain a new node).
    store = MemoryStore()
    node = Node(store, pruning=None)
    node.import_block(None, bh("0"), 0, {k: b"v%d" % i for i, k in enumerate(K[:20])})
    ch: Changes = {k: b"new" for k in K[20:]}
    up = node.sdb.prepare(node.roots[bh("0")], ch)
    branches = sum(1 for h in up.nodes if h in up.kids)
    assert branches >= len(ch)  # every new leaf hangs under at least one new branch
    reads: list[bytes] = []
    real_get = store.get
    store.get = lambda k: reads.append(k) or real_get(k)  # type: ignore[method-assign]
    node.sdb.commit(WriteBatch(), up, bh("1"), 1)
    assert len([k for k in reads if k.startswith(STATE_NODE)]) == len(up.nodes) - branches


@pytest.mark.parametrize("seed", range(6))
def test_commit_without_reads_of_settled_nodes_stores_what_reading_every_node_stores(
    seed: int,
) -> None:
    """Random forks that re-create old values, subtrees and whole states, finalized and
    pruned: the node store (reference counts included) equals that of a commit which reads
    every new node's count, after every block and every finality step."""
    import random

    rng = random.Random(seed)
    fast, slow = Node(MemoryStore(), pruning=2), Node(MemoryStore(), pruning=2)
    values = [b"a", b"b", b"c"]  # few values: leaves and subtrees recur often
    genesis = bh(f"{seed}-g")
    first: Changes = {k: rng.choice(values) for k in K[:16]}
    for node in (fast, slow):
        node.import_block(None, genesis, 0, first)
    parent_of: dict[bytes, bytes] = {}
    number_of = {genesis: 0}
    live = [genesis]  # blocks that may still be built on
    final = genesis
    for i in range(80):
        parent = rng.choice(live[-4:])
        number = number_of[parent]
        back = parent_of.get(parent_of.get(parent, parent), parent)
        if rng.random() < 0.2 and back != parent:
            # Back to an ancestor's state exactly: the whole root is re-created.
            ch = diff(fast.models[parent], fast.models[back])
        else:
            ch = {rng.choice(K): rng.choice([*values, None]) for _ in range(rng.randint(1, 6))}
        blk = bh(f"{seed}-{i}")
        fast.import_block(parent, blk, number + 1, ch)
        up = slow.sdb.prepare(slow.roots[parent], ch)
        up.kids.clear()  # the reference: every new node's count read from the store
        b = WriteBatch()
        slow.sdb.commit(b, up, blk, number + 1)
        slow.store.write(b)
        slow.roots[blk], slow.models[blk] = up.root, applied(slow.models[parent], ch)
        assert fast.roots[blk] == up.root
        assert dict(fast.store.iterate(b"")) == dict(slow.store.iterate(b""))
        parent_of[blk], number_of[blk] = parent, number + 1
        live.append(blk)
        # Finalize the best tip's ancestor three below it; drop what does not descend from it.
        best = max(live, key=lambda h: number_of[h])
        target = best
        for _ in range(3):
            target = parent_of.get(target, target)
        if number_of[target] > number_of[final]:
            path = [target]
            while parent_of[path[-1]] != final:
                path.append(parent_of[path[-1]])

            def descends(h: bytes, anc: bytes = target) -> bool:
                while h != anc and h in parent_of:
                    h = parent_of[h]
                return h == anc

            ancestors = {final, *path}
            dead = [h for h in live if not descends(h) and h not in ancestors]
            for node in (fast, slow):
                node.finalize([(number_of[h], h) for h in reversed(path)], dead)
            final = target
            live = [h for h in live if descends(h)]
            assert dict(fast.store.iterate(b"")) == dict(slow.store.iterate(b""))
    for h in live[-3:]:
        fast.assert_whole(h)
