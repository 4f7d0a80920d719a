"""GRANDPA's rounds and votes: counting votes on a chain, the GHOST of a round, equivocations.

A vote for block B counts for B and every ancestor of B. An equivocator (two different votes
of one kind in one round) is counted as voting for everything, as GRANDPA does, and both
signed messages are kept as evidence (:class:`Equivocation`). The signed vote itself is
``twinchain.primitives.finality.SignedVote`` (the runtime checks equivocation reports with it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twinchain.primitives.finality import PRECOMMIT, PREVOTE, Block, SignedVote
from twinchain.primitives.types import Header

MAX_ANCESTRY = 4096

HeaderLookup = Callable[[bytes], Header | None]


def threshold(n: int) -> int:
    """Votes needed for a supermajority of ``n``: more than two thirds."""
    return n - (n - 1) // 3


@dataclass(frozen=True)
class Equivocation:
    """Two different votes of one kind by one voter in one round: the offence's proof."""

    first: SignedVote
    second: SignedVote

    @property
    def offender(self) -> bytes:
        return self.first.voter


# ----------------------------------------------------------------------------- ancestry


def route_to(lookup: HeaderLookup, block: Block, base: Block) -> list[bytes] | None:
    """Hashes from ``block`` down to (excluding) ``base``, or None if ``block`` does not descend
    from ``base`` (or its ancestry is unknown)."""
    h, n = block
    path: list[bytes] = []
    while n > base[1]:
        if len(path) > MAX_ANCESTRY:
            return None
        path.append(h)
        hdr = lookup(h)
        if hdr is None:
            return None
        h, n = hdr.parent_hash, hdr.number - 1
    return path if (h, n) == base else None


def ghost(
    lookup: HeaderLookup,
    base: Block,
    votes: dict[bytes, Block],
    equivocators: int,
    need: int,
) -> Block | None:
    """Highest block (descending from ``base``) that ``need`` voters vote for or beyond."""
    counts: dict[bytes, int] = {}
    numbers: dict[bytes, int] = {}
    on_base = 0
    for target in votes.values():
        path = route_to(lookup, target, base)
        if path is None:
            continue
        on_base += 1
        for i, h in enumerate(path):
            counts[h] = counts.get(h, 0) + 1
            numbers[h] = target[1] - i
    best: Block | None = base if on_base + equivocators >= need else None
    for h, c in counts.items():
        if c + equivocators >= need and (best is None or numbers[h] > best[1]):
            best = (h, numbers[h])
    return best


# ----------------------------------------------------------------------------- rounds


@dataclass
class Round:
    number: int
    prevotes: dict[bytes, SignedVote] = field(default_factory=dict)
    precommits: dict[bytes, SignedVote] = field(default_factory=dict)
    equivocators: dict[int, set[bytes]] = field(
        default_factory=lambda: {PREVOTE: set(), PRECOMMIT: set()}
    )
    started_ms: int = 0
    prevoted: bool = False
    precommitted: bool = False

    def votes(self, kind: int) -> dict[bytes, SignedVote]:
        return self.prevotes if kind == PREVOTE else self.precommits

    def targets(self, kind: int) -> dict[bytes, Block]:
        bad = self.equivocators[kind]
        return {v: m.target for v, m in self.votes(kind).items() if v not in bad}
