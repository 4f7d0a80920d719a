"""Interfaces at the storage seam: a raw key/value store and a read-only view of a state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator


class WriteBatch:
    """Puts and deletes collected in order and applied atomically by :meth:`KeyValueStore.write`.

    A later operation on the same key wins. Everything one block import changes goes into one
    batch, so a crash leaves either all of it or none of it on disk.
    """

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: dict[bytes, bytes | None] = {}

    def put(self, key: bytes, value: bytes) -> None:
        self.ops[key] = value

    def delete(self, key: bytes) -> None:
        self.ops[key] = None

    def pending(self, key: bytes) -> tuple[bool, bytes | None]:
        """(True, value-or-None) if this batch already writes ``key``, else (False, None)."""
        if key in self.ops:
            return True, self.ops[key]
        return False, None

    def __len__(self) -> int:
        return len(self.ops)


class KeyValueStore(ABC):
    """An ordered byte-string key/value store (LevelDB on disk, a dict in memory)."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value stored at ``key``, or None."""

    @abstractmethod
    def iterate(
        self, prefix: bytes, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with ``prefix``, in key order, from ``start`` (inclusive)."""

    @abstractmethod
    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        """Apply every operation of ``batch`` atomically (``sync`` waits for the disk)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; further calls are errors."""


class StateReader(ABC):
    """Read-only access to one committed state (the state at one block's state root)."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value of storage key ``key``, or None if absent."""

    @abstractmethod
    def iter_prefix(
        self, prefix: bytes, start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``prefix``, in ascending key order, keys > ``start_after``."""
