"""Key/value stores: LevelDB on disk (plyvel) and an in-memory dict with the same behaviour."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path

import plyvel

from twinchain.storage.abc import KeyValueStore, WriteBatch


class StorageError(BaseException):
    """The database cannot be written or opened: the node must stop, not carry on.

    A BaseException (as SystemExit is) on purpose: no caller can work around a store that no
    longer takes writes, and the catch-alls that keep sync and RPC going after a bug
    (``except Exception``) must let it through to the top level, which logs it in one line
    and exits non-zero (``twinchain.cli``). LevelDB applies a write batch atomically, so
    what failed is simply absent after a restart.
    """


class DiskFull(StorageError):
    """LevelDB got ENOSPC: the node stops; restarted once space is back, it goes on."""


def _storage_error(path: Path, exc: plyvel.Error) -> StorageError:
    arg = exc.args[0] if exc.args else exc
    msg = arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)  # plyvel: bytes
    if "No space left" in msg or "ENOSPC" in msg:
        return DiskFull(f"disk full: {path}: {msg}")
    return StorageError(f"database error: {path}: {msg}")


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes([p[-1] + 1])


class LevelDBStore(KeyValueStore):
    """A LevelDB database; each :class:`WriteBatch` is applied as one LevelDB write batch."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        try:
            self._db = self._open(create)
        except (plyvel.IOError, plyvel.CorruptionError) as exc:
            raise _storage_error(self.path, exc) from exc

    def _open(self, create: bool) -> plyvel.DB:
        return plyvel.DB(
            str(self.path),
            create_if_missing=create,
            bloom_filter_bits=10,  # point reads of absent trie nodes skip most disk blocks
            lru_cache_size=64 << 20,
            # Most bytes written are trie nodes under hash keys: incompressible, random, and
            # rewritten level after level by compaction. With snappy, compaction took ~40 % of
            # a loaded validator's CPU (perf: the LevelDB thread, mostly CompressFragment);
            # without it and with a 32 MiB memtable (fewer, larger L0 flushes, ~2x less
            # rewriting) ~10 %. Blocks written by older builds stay readable either way.
            compression=None,
            write_buffer_size=32 << 20,
        )

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def iterate(
        self, prefix: bytes, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys starting with ``prefix`` from ``start`` inclusive.

        Forward: ascending keys >= ``start``. Reverse: descending keys <= ``start``.
        """
        # plyvel refuses prefix= together with start/stop, so the prefix becomes a range.
        end = prefix_end(prefix)
        if not reverse:
            lo = prefix if start is None or start < prefix else start
            it = self._db.iterator(start=lo, stop=end)
        elif start is None or (end is not None and start >= end):
            it = self._db.iterator(start=prefix, stop=end, reverse=True)
        elif start < prefix:
            return iter(())
        else:
            it = self._db.iterator(start=prefix, stop=start, include_stop=True, reverse=True)
        return self._drain(it)

    @staticmethod
    def _drain(it: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        try:
            yield from it
        finally:
            it.close()  # type: ignore[attr-defined]

    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        # transaction=True: if anything fails while filling the batch, nothing is written.
        try:
            with self._db.write_batch(transaction=True, sync=sync) as wb:
                for key, value in batch.ops.items():
                    if value is None:
                        wb.delete(key)
                    else:
                        wb.put(key, value)
        except plyvel.IOError as exc:  # ENOSPC, EIO: LevelDB refuses every later write too
            raise _storage_error(self.path, exc) from exc

    def close(self) -> None:
        self._db.close()


class MemoryStore(KeyValueStore):
    """A dict plus a lazily rebuilt sorted key list for ordered iteration."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = []  # None: stale, rebuilt on the next iterate()
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        if self._closed:
            raise RuntimeError("store is closed")
        return self._data.get(key)

    def iterate(
        self, prefix: bytes, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Same contract as :meth:`LevelDBStore.iterate`; iterates a snapshot of the keys."""
        if self._closed:
            raise RuntimeError("store is closed")
        if self._sorted is None:
            self._sorted = sorted(self._data)
        keys = self._sorted
        end = prefix_end(prefix)
        lo = bisect.bisect_left(keys, prefix)
        hi = len(keys) if end is None else bisect.bisect_left(keys, end)
        if start is not None:
            if reverse:
                hi = min(hi, bisect.bisect_right(keys, start))
            else:
                lo = max(lo, bisect.bisect_left(keys, start))
        return self._gen(keys[lo:hi][::-1] if reverse else keys[lo:hi])

    def _gen(self, keys: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
        data = self._data
        for k in keys:
            v = data.get(k)
            if v is not None:  # deleted after the snapshot was taken
                yield k, v

    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        if self._closed:
            raise RuntimeError("store is closed")
        data = self._data
        keyset_changed = False
        for key, value in batch.ops.items():
            if value is None:
                if data.pop(key, None) is not None:
                    keyset_changed = True
            else:
                if key not in data:
                    keyset_changed = True
                data[key] = value
        if keyset_changed:  # value-only updates keep the sorted key list valid
            self._sorted = None

    def close(self) -> None:
        self._closed = True

    def __len__(self) -> int:
        return len(self._data)


def open_store(path: str | Path | None) -> KeyValueStore:
    """LevelDB at ``path`` (created if missing), or a fresh MemoryStore for None."""
    if path is None:
        return MemoryStore()
    Path(path).mkdir(parents=True, exist_ok=True)
    return LevelDBStore(path)
