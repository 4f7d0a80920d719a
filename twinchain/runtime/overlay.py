"""The executive's view of state while a block runs: writes over a committed base state, in
nested transactional layers (a failed call reverts its own layer, events included)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from twinchain.storage.abc import StateReader

MAX_LAYERS = 16

_MISSING = object()


class Overlay:
    """Changes of one block over ``base``; ``changes()`` is what the state trie commits."""

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.committed: dict[bytes, bytes | None] = {}
        self.layers: list[dict[bytes, bytes | None]] = []
        self._event_marks: list[int] = []
        self.events: list[tuple[Any, Any]] = []
        self._base_cache: dict[bytes, bytes | None] = {}
        self.phase: Any = (0, 0)

    # -- reads and writes
    def get(self, key: bytes) -> bytes | None:
        for layer in reversed(self.layers):
            v = layer.get(key, _MISSING)
            if v is not _MISSING:
                return v  # type: ignore[return-value]
        v = self.committed.get(key, _MISSING)
        if v is not _MISSING:
            return v  # type: ignore[return-value]
        v = self._base_cache.get(key, _MISSING)
        if v is _MISSING:
            v = self.base.get(key)
            self._base_cache[key] = v  # type: ignore[assignment]
        return v  # type: ignore[return-value]

    def set(self, key: bytes, value: bytes) -> None:
        (self.layers[-1] if self.layers else self.committed)[key] = value

    def delete(self, key: bytes) -> None:
        (self.layers[-1] if self.layers else self.committed)[key] = None

    def iter_prefix(
        self, prefix: bytes, start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Merged iteration of the base state and every layer, in key order.

        The overlay's matching keys are snapshotted first, so callers may write while they
        iterate (they see the state as it was when iteration began for overlay keys).
        """
        mine: dict[bytes, bytes | None] = {}
        for d in (self.committed, *self.layers):
            for k, v in d.items():
                if k.startswith(prefix) and (start_after is None or k > start_after):
                    mine[k] = v
        ours = sorted(mine.items())
        theirs = ((k, v) for k, v in self.base.iter_prefix(prefix, start_after) if k not in mine)
        for k, v in heapq.merge(ours, theirs, key=lambda kv: kv[0]):
            if v is not None:
                yield k, v

    # -- transactional layers
    def start_transaction(self) -> None:
        if len(self.layers) >= MAX_LAYERS:
            raise RuntimeError("transactional layers nested too deeply")
        self.layers.append({})
        self._event_marks.append(len(self.events))

    def commit_transaction(self) -> None:
        top = self.layers.pop()
        self._event_marks.pop()
        (self.layers[-1] if self.layers else self.committed).update(top)

    def rollback_transaction(self) -> None:
        self.layers.pop()
        del self.events[self._event_marks.pop() :]

    @property
    def depth(self) -> int:
        return len(self.layers)

    # -- events
    def deposit_event(self, event: Any) -> None:
        self.events.append((self.phase, event))

    def changes(self) -> dict[bytes, bytes | None]:
        if self.layers:
            raise RuntimeError("open transactional layer at the end of the block")
        return dict(self.committed)
