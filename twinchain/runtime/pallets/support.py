"""Helpers the twin pallets share (like FRAME's ``frame_support`` for its pallets).

* **Get-or-raise reads**: :func:`found` and :func:`live` turn a record read from storage (or
  from a sibling pallet's getter) into the record or the calling pallet's error, so that each
  pallet raises its own ``UnknownX`` / ``XRetired`` variants from one implementation.
* **Hash-chained logs**: :func:`chain_entry` is the next head of an append-only log (a twin's
  provenance, a facility's audit log).
"""

from __future__ import annotations

from typing import TypeVar

from twinchain.primitives.codec import Record
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.runtime.framework import ErrorVariant

T = TypeVar("T")


def found(value: T | None, missing: ErrorVariant) -> T:
    """``value``, or the ``missing`` error raised when it is None (nothing stored)."""
    if value is None:
        raise missing()
    return value


def live(
    value: T | None, missing: ErrorVariant, *, field: str, ended: str, gone: ErrorVariant
) -> T:
    """``value`` when it exists and its ``field`` is not the terminal state ``ended``; else
    ``missing`` (nothing stored) or ``gone`` (retired for good) raised."""
    v = found(value, missing)
    if getattr(v, field) == ended:
        raise gone()
    return v


def chain_entry(head: bytes, entry: Record) -> bytes:
    """Next head of a hash-chained log: any rewrite of an older entry changes every later head."""
    return hash_for(Domain.MERKLE_NODE, head + hash_for(Domain.MERKLE_LEAF, entry.to_bytes()))
