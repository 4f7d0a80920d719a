"""Trie node storage with reference counts, per-block journals and pruning of old states.

Records (see :mod:`twinchain.storage.columns`):

* ``STATE_NODE + hash`` -> u32 big-endian reference count || canonical node encoding. The
  count lives in the node record so that a commit costs one read and one write per node.
* ``STATE_JOURNAL + block_hash`` -> msgpack ``[number, inserted_hashes, replaced_hashes]``:
  the nodes the block's update created and the parent nodes it removed from its state.
* ``STATE_PRUNE + u64be(number) + block_hash`` -> b"": finalized canonical blocks whose
  "replaced" sets are applied once they fall out of the pruning window.

Reference counts. Every commit that inserts a node adds 1 (content addressing lets the same
node be re-created, e.g. when a value is set back). Along one chain, a node's insertions and
removals alternate, so applying the removals of blocks that are out of the window
(decrement, delete at zero) keeps exactly the nodes of the retained states; a fork block
that can never become final gives back its own insertions instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgpack

from twinchain.primitives.hashing import ZERO_HASH
from twinchain.storage.abc import KeyValueStore, WriteBatch
from twinchain.storage.columns import STATE_JOURNAL, STATE_NODE, STATE_PRUNE, number_key
from twinchain.storage.trie import (
    NodeLoader,
    StateError,
    TrieUpdate,
    TrieView,
    compute_update,
    prove_many,
)

_COUNT_LEN = 4
_MISSING = object()
_ONE = (1).to_bytes(_COUNT_LEN, "big")
_MAX_COUNT = (1 << (8 * _COUNT_LEN)) - 1


class StateDB:
    """All retained states of the chain, sharing their nodes.

    ``pruning`` = N keeps the states of the last N finalized blocks (and everything newer);
    None is archive mode, which never deletes a node.
    """

    def __init__(
        self,
        store: KeyValueStore,
        pruning: int | None = 256,
        cache_nodes: int = 200_000,
        cache_values: int = 100_000,
    ) -> None:
        if pruning is not None and pruning < 0:
            raise ValueError("pruning window must be >= 0 (or None for archive)")
        self.store = store
        self.pruning = pruning
        self.loader = NodeLoader(self._fetch, cache_nodes)
        # The batch most recently handed to commit()/finalize(): reads fall back to it, so a
        # block can be executed on a parent committed into the same, still unwritten batch.
        self._batch: WriteBatch | None = None
        self._batch_queue: list[bytes] = []  # prune-queue keys put into that batch
        # Flat value cache of one state, the one prepared last (the chain's newest block, on
        # which the next block is built and against which the pool validates): a read there
        # costs a dict lookup instead of a walk of ~20 trie nodes. ``prepare`` moves it to
        # the child state by applying the changes it hashed, so it is exact by construction;
        # a block on any other parent starts it afresh.
        self._flat_root: bytes | None = None
        self._flat: dict[bytes, bytes | None] = {}
        self._flat_limit = cache_values

    # ------------------------------------------------------------------ reading

    def _fetch(self, h: bytes) -> bytes | None:
        k = STATE_NODE + h
        rec = self.store.get(k)
        if rec is None and self._batch is not None:
            rec = self._batch.ops.get(k)
        return None if rec is None else rec[_COUNT_LEN:]

    def _read(self, batch: WriteBatch, key: bytes) -> bytes | None:
        found, value = batch.pending(key)
        return value if found else self.store.get(key)

    def _use(self, batch: WriteBatch) -> None:
        if batch is not self._batch:
            self._batch = batch
            self._batch_queue = []

    def has_state(self, root: bytes) -> bool:
        if root == ZERO_HASH:
            return True
        try:
            self.loader.load(root)
        except StateError:
            return False
        return True

    def at(self, root: bytes) -> TrieView:
        """A reader of the state with ``root``; StateError if it is pruned or unknown."""
        if root != ZERO_HASH:
            self.loader.load(root)
        return _CachedView(self, root)

    def prove(self, root: bytes, keys: Iterable[bytes]) -> list[bytes]:
        """Read proof (deduplicated nodes) of ``keys`` in the state ``root``."""
        return prove_many(self.loader, root, keys)

    # ------------------------------------------------------------------ writing

    def prepare(self, parent_root: bytes, changes: Mapping[bytes, bytes | None]) -> TrieUpdate:
        """The new state of ``changes`` applied to ``parent_root`` (nothing is written)."""
        update = compute_update(self.loader, parent_root, changes)
        flat = self._flat
        if parent_root != self._flat_root:
            flat.clear()
        elif flat:
            # Only keys already cached: most written keys (per-batch records, events) are
            # never read back, and the cache holds what blocks read.
            for k, v in changes.items():
                if k in flat:
                    flat[k] = v
        self._flat_root = update.root
        return update

    def _cached_get(self, view: TrieView, key: bytes) -> bytes | None:
        if view.root != self._flat_root:
            return TrieView.get(view, key)
        flat = self._flat
        v = flat.get(key, _MISSING)
        if v is _MISSING:
            v = TrieView.get(view, key)
            if len(flat) >= self._flat_limit:
                flat.clear()
            flat[key] = v
        return v  # type: ignore[return-value]

    def commit(self, batch: WriteBatch, update: TrieUpdate, block_hash: bytes, number: int) -> None:
        """Add ``update`` as the state of block ``block_hash`` to ``batch``.

        Puts the new nodes (count + 1 each) and the block's journal. The caller writes the
        batch; several blocks may be committed (and finalized) into one batch before that.
        Each block must be committed once: a second commit raises StateError.
        """
        self._use(batch)
        jkey = STATE_JOURNAL + block_hash
        if self._read(batch, jkey) is not None:
            raise StateError(f"state of block {block_hash.hex()} is already committed")
        kids = update.kids
        fresh: set[bytes] = set()  # new nodes not stored before (nodes: children first)
        for h, enc in update.nodes.items():
            k = STATE_NODE + h
            below = kids.get(h)
            if below is not None and any(c in fresh for c in below):
                rec = None  # a child was never stored, so neither was this node
            else:
                rec = self._read(batch, k)
            if rec is None:
                fresh.add(h)
                batch.put(k, _ONE + enc)
            else:
                n = int.from_bytes(rec[:_COUNT_LEN], "big")
                if n >= _MAX_COUNT:
                    raise StateError(f"reference count overflow on node {h.hex()}")
                batch.put(k, (n + 1).to_bytes(_COUNT_LEN, "big") + rec[_COUNT_LEN:])
        journal = [number, sorted(update.nodes), sorted(update.replaced)]
        batch.put(jkey, msgpack.packb(journal, use_bin_type=True))
        self.loader.seed(update.nodes)

    def _journal(self, batch: WriteBatch, block_hash: bytes) -> list | None:
        rec = self._read(batch, STATE_JOURNAL + block_hash)
        return None if rec is None else msgpack.unpackb(rec)

    def _decref(self, batch: WriteBatch, h: bytes) -> None:
        k = STATE_NODE + h
        rec = self._read(batch, k)
        if rec is None:
            raise StateError(f"reference count underflow: node {h.hex()} is not stored")
        n = int.from_bytes(rec[:_COUNT_LEN], "big")
        if n <= 1:
            batch.delete(k)
            self.loader.evict(h)
        else:
            batch.put(k, (n - 1).to_bytes(_COUNT_LEN, "big") + rec[_COUNT_LEN:])

    def finalize(
        self,
        batch: WriteBatch,
        canonical: Sequence[tuple[int, bytes]],
        discarded: Iterable[bytes],
    ) -> None:
        """Record newly final blocks and prune what no retained state needs, into ``batch``.

        Contract:

        * ``canonical``: the (number, block_hash) of blocks that became final in this call
          (each finalized block exactly once over the node's life, every one committed
          before, or in the same batch). F = the highest number in it.
        * ``discarded``: hashes of committed blocks that can never become final (siblings of
          final blocks, and their descendants now or in a later call). Hashes without a
          journal (unknown, or already handled) are ignored, so passing one twice is safe.
        * Each discarded block's own insertions are undone (nodes whose count drops to zero
          are deleted) and its journal is dropped. Its descendants' states may then be
          incomplete: they can never be final either, and give back their own insertions
          when they are discarded in turn.
        * With a window of N, every finalized canonical block with number <= F - N (from
          this or an earlier call) has its "replaced" set applied the same way and its
          journal dropped. Hence the states of finalized blocks numbered >= F - N, and of
          every non-discarded block above F, stay whole, while the state of a block below
          F - N is gone (reading it raises StateError), unless an equal state is retained.
        * Archive mode (None) deletes no node: journals of discarded and finalized blocks
          are simply dropped.
        """
        self._use(batch)
        archive = self.pruning is None
        for bh in discarded:
            journal = self._journal(batch, bh)
            if journal is None:
                continue
            # A discarded fork's nodes go: the cache must not outlive a state it mirrors.
            self._flat_root = None
            self._flat.clear()
            if not archive:
                for h in journal[1]:
                    self._decref(batch, h)
            batch.delete(STATE_JOURNAL + bh)
        if not canonical:
            return
        if archive:
            for _, bh in canonical:
                batch.delete(STATE_JOURNAL + bh)
            return
        for number, bh in canonical:
            qk = STATE_PRUNE + number_key(number) + bh
            batch.put(qk, b"")
            self._batch_queue.append(qk)
        limit = max(n for n, _ in canonical) - self.pruning  # type: ignore[operator]
        if limit < 0:
            return
        end = STATE_PRUNE + number_key(limit + 1)
        due = {qk for qk in self._batch_queue if qk < end}
        for qk, _ in self.store.iterate(STATE_PRUNE):
            if qk >= end:
                break
            due.add(qk)
        for qk in sorted(due):
            found, value = batch.pending(qk)
            if found and value is None:  # pruned earlier in this batch
                continue
            bh = qk[len(STATE_PRUNE) + 8 :]
            journal = self._journal(batch, bh)
            if journal is not None:
                for h in journal[2]:
                    self._decref(batch, h)
                batch.delete(STATE_JOURNAL + bh)
            batch.delete(qk)

    def node_count(self) -> int:
        """Number of stored trie nodes (a full scan: for tests and diagnostics)."""
        return sum(1 for _ in self.store.iterate(STATE_NODE))


class _CachedView(TrieView):
    """A :class:`TrieView` that reads through its StateDB's flat value cache when its root is
    the cached state (a view outlives the cache's move to a newer state: it then walks)."""

    __slots__ = ("db",)

    def __init__(self, db: StateDB, root: bytes) -> None:
        super().__init__(db.loader, root)
        self.db = db

    def get(self, key: bytes) -> bytes | None:
        return self.db._cached_get(self, key)
