"""Aura: slot-based authorship. The author of slot ``s`` is ``authorities[s mod n]``, the set in
the parent block's state (the node reads it through the runtime and passes it in); a block must
be sealed by that author, its slot must advance past its parent's, and a block from a future
slot waits until its slot has begun."""

from __future__ import annotations

import time

from twinchain.primitives.keys import verify
from twinchain.primitives.types import Header

# A block may arrive this early (clock skew between facilities) before it is put on hold.
MAX_DRIFT_MS = 500


class BadSeal(Exception):
    """The seal is missing, by the wrong author, or the signature does not verify."""


class FutureBlock(Exception):
    """The block's slot has not started yet on this node's clock: retry later."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def current_slot(slot_duration_ms: int, at_ms: int | None = None) -> int:
    return (now_ms() if at_ms is None else at_ms) // slot_duration_ms


def slot_author(auths: list[bytes], slot: int) -> bytes:
    if not auths:
        raise BadSeal("empty authority set")
    return auths[slot % len(auths)]


def check_header(
    authorities: list[bytes],
    parent: Header,
    header: Header,
    slot_duration_ms: int,
    now_ms: int | None = None,
) -> bytes:
    """Check slot and seal against ``authorities`` (the set in the parent's state); return the
    author. ``now_ms=None`` skips the clock check (replay of stored blocks)."""
    if header.number > 0 and header.slot <= parent.slot:
        raise BadSeal(f"slot {header.slot} does not advance past parent slot {parent.slot}")
    if now_ms is not None and header.slot * slot_duration_ms > now_ms + MAX_DRIFT_MS:
        raise FutureBlock(f"slot {header.slot} starts in the future")
    author = slot_author(authorities, header.slot)
    if len(header.seal) != 64 or not verify(author, header.seal_message(), header.seal):
        raise BadSeal(f"block #{header.number} is not sealed by the slot's author")
    return author
