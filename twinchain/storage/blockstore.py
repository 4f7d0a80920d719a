"""Blocks, headers, canonical index, justifications and head pointers on the key/value store.

Every imported block is written with ONE WriteBatch: the block, its header, its state nodes
(via StateDB), the number indices, the extrinsic index and the best/finalized pointers. LevelDB
applies a batch atomically, so a node killed at any instant restarts on its last committed
block with a state that matches it.
"""

from __future__ import annotations

from collections.abc import Iterable

from twinchain.primitives.types import Block, Header, extrinsic_hash
from twinchain.storage import columns as col
from twinchain.storage.abc import KeyValueStore, WriteBatch
from twinchain.storage.statedb import StateDB
from twinchain.storage.trie import TrieUpdate

META_GENESIS = b"genesis"
META_BEST = b"best"
META_FINALIZED = b"finalized"
META_SPEC = b"spec-id"
META_BODIES_PRUNED = b"bodies-pruned"  # highest block number whose body was dropped

# Bodies dropped per finalization at most: a node that turns pruning on over a long history
# catches up over the next finalizations instead of in one huge write batch.
MAX_PRUNED_PER_FINALIZATION = 1024


_num = col.number_key


class ChainStoreError(Exception):
    """The database does not hold what the caller expects (unknown block, other chain...)."""


class BlockStore:
    """Block data and head pointers. Reads go to the store; writes go through one batch.

    ``blocks_pruning`` = N drops the body (and extrinsic index) of each canonical block once
    N blocks after it are final, as Substrate's ``--blocks-pruning N``; headers and
    justifications stay, so the chain still verifies. None keeps every body (an archive
    node)."""

    def __init__(
        self, kv: KeyValueStore, statedb: StateDB, *, blocks_pruning: int | None = None
    ) -> None:
        if blocks_pruning is not None and blocks_pruning < 1:
            raise ValueError("blocks pruning must keep at least 1 block (or None: archive)")
        self.kv = kv
        self.statedb = statedb
        self.blocks_pruning = blocks_pruning
        self._header_cache: dict[bytes, Header] = {}

    # -- reads
    def meta(self, key: bytes) -> bytes | None:
        return self.kv.get(col.col(col.META, key))

    @property
    def genesis_hash(self) -> bytes | None:
        return self.meta(META_GENESIS)

    @property
    def best_hash(self) -> bytes:
        h = self.meta(META_BEST)
        if h is None:
            raise ChainStoreError("empty database")
        return h

    @property
    def finalized_hash(self) -> bytes:
        h = self.meta(META_FINALIZED)
        if h is None:
            raise ChainStoreError("empty database")
        return h

    def header(self, block_hash: bytes) -> Header | None:
        h = self._header_cache.get(block_hash)
        if h is None:
            raw = self.kv.get(col.col(col.HEADER, block_hash))
            if raw is None:
                return None
            h = Header.decode(raw)
            if len(self._header_cache) > 4096:
                self._header_cache.clear()
            self._header_cache[block_hash] = h
        return h

    def block(self, block_hash: bytes) -> Block | None:
        raw = self.kv.get(col.col(col.BLOCK, block_hash))
        return None if raw is None else Block.decode(raw)

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        return self.kv.get(col.col(col.BLOCK, block_hash))

    def hash_at(self, number: int) -> bytes | None:
        """Canonical block hash at ``number``."""
        return self.kv.get(col.col(col.CANON, _num(number)))

    def justification(self, block_hash: bytes) -> bytes | None:
        return self.kv.get(col.col(col.JUSTIFICATION, block_hash))

    def extrinsic_location(self, xt_hash: bytes) -> tuple[bytes, int] | None:
        raw = self.kv.get(col.col(col.TX_INDEX, xt_hash))
        return None if raw is None else (raw[:32], int.from_bytes(raw[32:], "big"))

    def best_header(self) -> Header:
        h = self.header(self.best_hash)
        assert h is not None
        return h

    def finalized_header(self) -> Header:
        h = self.header(self.finalized_hash)
        assert h is not None
        return h

    def hashes_at(self, number: int) -> list[bytes]:
        """Every known block (any fork) at ``number``."""
        p = col.col(col.BY_NUMBER, _num(number))
        return [k[len(p) :] for k, _ in self.kv.iterate(p)]

    # -- writes
    def write_block(
        self,
        batch: WriteBatch,
        block: Block,
        update: TrieUpdate,
        *,
        set_best: bool,
        justification: bytes | None = None,
    ) -> bytes:
        """Add ``block`` and its state to ``batch``; returns its hash. Nothing is written yet."""
        header = block.header
        h = header.hash
        batch.put(col.col(col.BLOCK, h), block.encode())
        batch.put(col.col(col.HEADER, h), header.encode())
        batch.put(col.col(col.BY_NUMBER, _num(header.number) + h), b"")
        for i, raw in enumerate(block.extrinsics):
            batch.put(col.col(col.TX_INDEX, extrinsic_hash(raw)), h + i.to_bytes(4, "big"))
        if justification is not None:
            batch.put(col.col(col.JUSTIFICATION, h), justification)
        self.statedb.commit(batch, update, h, header.number)
        self._header_cache[h] = header
        if set_best:
            self.set_best(batch, header)
        return h

    def set_best(self, batch: WriteBatch, header: Header) -> None:
        """Point the canonical index at ``header``'s branch (a re-org rewrites the tail)."""
        h = header.hash
        old_best = self.meta(META_BEST)
        old_best_n = self.header(old_best).number if old_best else -1  # type: ignore[union-attr]
        for n in range(header.number + 1, old_best_n + 1):
            batch.delete(col.col(col.CANON, _num(n)))
        cur: Header | None = header
        while cur is not None:
            key = col.col(col.CANON, _num(cur.number))
            found, pending = batch.pending(key)
            existing = pending if found else self.kv.get(key)
            if existing == cur.hash:
                break
            batch.put(key, cur.hash)
            if cur.number == 0:
                break
            cur = self.header(cur.parent_hash)
        batch.put(col.col(col.META, META_BEST), h)

    def set_finalized(
        self, batch: WriteBatch, block_hash: bytes, justification: bytes | None = None
    ) -> None:
        """Mark ``block_hash`` (on the canonical chain) final and prune what that allows."""
        header = self.header(block_hash)
        if header is None:
            raise ChainStoreError("unknown block")
        if self.hash_at(header.number) != block_hash and batch.pending(
            col.col(col.CANON, _num(header.number))
        ) != (True, block_hash):
            raise ChainStoreError("can only finalize a block on the best chain")
        old = self.meta(META_FINALIZED)
        old_n = self.header(old).number if old else -1  # type: ignore[union-attr]
        if header.number <= old_n:
            return
        canonical: list[tuple[int, bytes]] = []
        discarded: list[bytes] = []
        cur: Header | None = header
        while cur is not None and cur.number > old_n:
            canonical.append((cur.number, cur.hash))
            cur = self.header(cur.parent_hash) if cur.number else None
        canonical.reverse()
        for n, ch in canonical:
            discarded.extend(x for x in self.hashes_at(n) if x != ch)
        self.statedb.finalize(batch, canonical, discarded)
        if self.blocks_pruning is not None:
            self._prune_bodies(batch, header.number - self.blocks_pruning)
        if justification is not None:
            batch.put(col.col(col.JUSTIFICATION, block_hash), justification)
        batch.put(col.col(col.META, META_FINALIZED), block_hash)

    def bodies_pruned_to(self) -> int:
        """The highest block number whose body this store dropped (0: none)."""
        raw = self.meta(META_BODIES_PRUNED)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def _prune_bodies(self, batch: WriteBatch, upto: int) -> None:
        """Drop the bodies of canonical blocks up to ``upto`` (finalized, so canonical for
        good), in the finalization's own write batch: a crash leaves both or neither."""
        done = self.bodies_pruned_to()
        last = min(upto, done + MAX_PRUNED_PER_FINALIZATION)
        if last <= done:
            return
        for n in range(done + 1, last + 1):
            h = self.hash_at(n)
            if h is None:
                continue
            raw = self.kv.get(col.col(col.BLOCK, h))
            if raw is None:
                continue
            for xt in Block.decode(raw).extrinsics:
                batch.delete(col.col(col.TX_INDEX, extrinsic_hash(xt)))
            batch.delete(col.col(col.BLOCK, h))
        batch.put(col.col(col.META, META_BODIES_PRUNED), last.to_bytes(8, "big"))

    def init_genesis(self, batch: WriteBatch, block: Block, update: TrieUpdate) -> bytes:
        h = self.write_block(batch, block, update, set_best=True)
        batch.put(col.col(col.META, META_GENESIS), h)
        batch.put(col.col(col.META, META_FINALIZED), h)
        return h

    def commit(self, batch: WriteBatch, sync: bool = True) -> None:
        self.kv.write(batch, sync=sync)

    def drop_cached(self, hashes: Iterable[bytes]) -> None:
        for h in hashes:
            self._header_cache.pop(h, None)
