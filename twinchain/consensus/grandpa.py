"""The finality gadget: GRANDPA-style rounds of prevotes and precommits on chains.

A vote for block B counts for B and every ancestor of B. With ``n`` equal-weight voters and
``t = n - (n - 1) // 3`` (more than 2/3), a round runs:

1. **prevote** the head of the best chain that contains the previous round's estimate;
2. the **prevote GHOST** ``g`` is the highest block with ``t`` prevotes; **precommit** ``g``;
3. the highest block with ``t`` precommits is **final**; its justification is those precommits
   plus the headers linking each precommit target down to it;
4. the round's **estimate** is the highest ancestor of ``g`` that could still collect ``t``
   precommits; the next round starts once the round is completable, and honest prevotes in it
   must build on that estimate — this is what makes two conflicting finalizations need more
   than a third of the voters to equivocate.

An equivocator (two different votes of one kind in one round) is counted as voting for
everything, as GRANDPA does, and both signed messages are kept as evidence.

The gadget is synchronous and network-agnostic: the node feeds it messages and ticks, and
sends what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair, verify
from twinchain.primitives.types import Header

PREVOTE, PRECOMMIT = 0, 1
MAX_ANCESTRY = 4096

Block = tuple[bytes, int]  # (hash, number)
HeaderLookup = Callable[[bytes], Header | None]


def threshold(n: int) -> int:
    """Votes needed for a supermajority of ``n``: more than two thirds."""
    return n - (n - 1) // 3


def message_digest(genesis_hash: bytes, set_id: int, round: int, kind: int, target: Block) -> bytes:
    return hash_for(
        Domain.VOTE, codec.encode([genesis_hash, set_id, round, kind, target[0], target[1]])
    )


@dataclass(frozen=True)
class SignedVote:
    kind: int
    round: int
    set_id: int
    target_hash: bytes
    target_number: int
    voter: bytes
    signature: bytes

    @property
    def target(self) -> Block:
        return (self.target_hash, self.target_number)

    @classmethod
    def sign(
        cls,
        keypair: Keypair,
        kind: int,
        round: int,
        set_id: int,
        target: Block,
        genesis_hash: bytes,
    ) -> SignedVote:
        sig = keypair.sign(message_digest(genesis_hash, set_id, round, kind, target))
        return cls(kind, round, set_id, target[0], target[1], keypair.public, sig)

    def verify(self, genesis_hash: bytes) -> bool:
        msg = message_digest(genesis_hash, self.set_id, self.round, self.kind, self.target)
        return verify(self.voter, msg, self.signature)

    def to_wire(self) -> list[object]:
        return [
            self.kind,
            self.round,
            self.set_id,
            self.target_hash,
            self.target_number,
            self.voter,
            self.signature,
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, w: object) -> SignedVote:
        if type(w) is not list or len(w) != 7 or w[0] not in (PREVOTE, PRECOMMIT):
            raise CodecError("vote must be [kind, round, set, hash, number, voter, signature]")
        return cls(
            w[0],
            codec.U64.from_wire(w[1]),
            codec.U64.from_wire(w[2]),
            codec.H256.from_wire(w[3]),
            codec.U64.from_wire(w[4]),
            codec.AccountId.from_wire(w[5]),
            codec.Signature.from_wire(w[6]),
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedVote:
        return cls.from_wire(codec.decode(data, 4096))


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


@dataclass
class Finalized:
    """Output of the gadget: a block became final, with its encoded justification."""

    block: Block
    justification: bytes


class Voter:
    """One node's view of the finality protocol for one authority set.

    ``best_chain_containing(block)`` returns the head of this node's best chain if it contains
    ``block``, else ``block`` itself. ``now_ms`` drives the round timers (one slot each).
    """

    def __init__(
        self,
        *,
        genesis_hash: bytes,
        authorities: list[bytes],
        set_id: int,
        finalized: Block,
        lookup: HeaderLookup,
        best_chain_containing: Callable[[Block], Block],
        keypair: Keypair | None,
        slot_ms: int,
        now_ms: int = 0,
    ) -> None:
        self.genesis_hash = genesis_hash
        self.authorities = list(authorities)
        self.n = len(authorities)
        self.t = threshold(self.n)
        self.set_id = set_id
        self.finalized = finalized
        self.lookup = lookup
        self.best_chain_containing = best_chain_containing
        self.keypair = keypair if keypair and keypair.public in authorities else None
        self.slot_ms = slot_ms
        self.rounds: dict[int, Round] = {1: Round(1, started_ms=now_ms)}
        self.current = 1
        self.last_estimate: Block = finalized
        self.evidence: list[Equivocation] = []

    # -- incoming
    def on_vote(self, vote: SignedVote) -> tuple[bool | None, Equivocation | None]:
        """Check and record a vote. Returns (valid, equivocation-if-any); valid is None for a
        well-formed vote of a round too far from ours to matter (stale, not malicious)."""
        if vote.set_id != self.set_id or vote.voter not in self.authorities:
            return False, None
        if vote.round + 64 < self.current or vote.round > self.current + 64:
            return None, None
        if not vote.verify(self.genesis_hash):
            return False, None
        rnd = self.rounds.setdefault(vote.round, Round(vote.round))
        book = rnd.votes(vote.kind)
        prior = book.get(vote.voter)
        if prior is not None:
            if prior.target == vote.target:
                return True, None
            if vote.voter in rnd.equivocators[vote.kind]:
                return True, None
            rnd.equivocators[vote.kind].add(vote.voter)
            ev = Equivocation(prior, vote)
            self.evidence.append(ev)
            return True, ev
        book[vote.voter] = vote
        return True, None

    # -- progress
    def own_votes(self) -> list[SignedVote]:
        """This voter's votes in the current round, for periodic re-broadcast: gossip does
        not replay old messages, and a voter that restarted learns the round from them."""
        if self.keypair is None:
            return []
        rnd = self.rounds[self.current]
        me = self.keypair.public
        return [m for m in (rnd.prevotes.get(me), rnd.precommits.get(me)) if m is not None]

    def note_finalized(self, block: Block) -> None:
        """A block was finalized by a justification from elsewhere (sync, import)."""
        if block[1] > self.finalized[1]:
            self.finalized = block
            if self.last_estimate[1] < block[1]:
                self.last_estimate = block

    def tick(self, now_ms: int) -> tuple[list[SignedVote], list[Finalized]]:
        """Advance the protocol: votes to broadcast and blocks newly finalized."""
        out: list[SignedVote] = []
        done: list[Finalized] = []
        self._catch_up(now_ms)
        rnd = self.rounds[self.current]
        base = self.last_estimate
        if self.keypair is not None and not rnd.prevoted:
            target = self.best_chain_containing(base)
            out.append(self._cast(rnd, PREVOTE, target))
        g = self._prevote_ghost(rnd)
        waited = now_ms - rnd.started_ms >= self.slot_ms
        # As GRANDPA: precommit the prevote-GHOST once the timer ran out or once no later
        # prevote can move it. Waiting for every prevote instead let one voter still busy
        # importing a block hold finality back for up to a slot.
        if (
            self.keypair is not None
            and rnd.prevoted
            and not rnd.precommitted
            and g is not None
            and (waited or self._settled(rnd, PREVOTE, g))
        ):
            out.append(self._cast(rnd, PRECOMMIT, g))
        for r in sorted(self.rounds):
            f = self._finalizable(self.rounds[r])
            if f is not None and f[1] > self.finalized[1]:
                self.finalized = f
                done.append(Finalized(f, self.justification(self.rounds[r], f)))
        # A completable round ends once a slot has passed or, sooner, once this voter's best
        # chain has grown past the round's estimate: the next round's prevote then carries a
        # block that is new to finality. Starting it at block arrival rather than on a slot
        # timer takes up to a slot (half on average) off block-to-finality latency, and
        # keeps each voter at about two messages per block.
        if g is not None and self._completable(rnd, g):
            est = self._estimate(rnd, g) or self.last_estimate
            if est[1] < self.finalized[1]:
                est = self.finalized
            head = self.best_chain_containing(est)
            if waited or head[1] > est[1]:
                self.last_estimate = est
                self._start_round(self.current + 1, now_ms)
                if self.keypair is not None:
                    out.append(self._cast(self.rounds[self.current], PREVOTE, head))
        self._forget_old()
        return out, done

    def _cast(self, rnd: Round, kind: int, target: Block) -> SignedVote:
        assert self.keypair is not None
        vote = SignedVote.sign(
            self.keypair, kind, rnd.number, self.set_id, target, self.genesis_hash
        )
        rnd.votes(kind)[vote.voter] = vote
        if kind == PREVOTE:
            rnd.prevoted = True
        else:
            rnd.precommitted = True
        return vote

    def _start_round(self, number: int, now_ms: int) -> None:
        self.current = number
        rnd = self.rounds.setdefault(number, Round(number))
        rnd.started_ms = now_ms

    def _catch_up(self, now_ms: int) -> None:
        """Jump to a later round once more than a third of the voters are in it."""
        for r in sorted(self.rounds, reverse=True):
            if r <= self.current:
                break
            rnd = self.rounds[r]
            voters = set(rnd.prevotes) | set(rnd.precommits)
            if 3 * len(voters) > self.n:
                # The estimate is carried by the finalized block: safe, because honest prevotes
                # in round r already build on a block at least as high as that round's base.
                self.last_estimate = max(self.last_estimate, self.finalized, key=lambda b: b[1])
                self._start_round(r, now_ms)
                return

    def _prevote_ghost(self, rnd: Round) -> Block | None:
        return ghost(
            self.lookup,
            self.finalized,
            rnd.targets(PREVOTE),
            len(rnd.equivocators[PREVOTE]),
            self.t,
        )

    def _finalizable(self, rnd: Round) -> Block | None:
        return ghost(
            self.lookup,
            self.finalized,
            rnd.targets(PRECOMMIT),
            len(rnd.equivocators[PRECOMMIT]),
            self.t,
        )

    def _possible(self, rnd: Round, block: Block) -> bool:
        """Could ``block`` still collect ``t`` precommits in this round?"""
        have = 0
        for target in rnd.targets(PRECOMMIT).values():
            if route_to(self.lookup, target, block) is not None or target == block:
                have += 1
        missing = self.n - len(rnd.precommits)
        return have + missing + len(rnd.equivocators[PRECOMMIT]) >= self.t

    def _estimate(self, rnd: Round, g: Block) -> Block | None:
        cur: Block | None = g
        while cur is not None and cur[1] >= self.finalized[1]:
            if self._possible(rnd, cur):
                return cur
            hdr = self.lookup(cur[0])
            cur = None if hdr is None else (hdr.parent_hash, hdr.number - 1)
        return None

    def _settled(self, rnd: Round, kind: int, g: Block) -> bool:
        """Whether no descendant of ``g`` can still reach ``t`` votes of ``kind`` in the
        round, even if every voter yet to vote (and every equivocator) voted for it. The
        votes beyond ``g`` are counted together, an upper bound for any one descendant."""
        beyond = 0
        for target in rnd.targets(kind).values():
            if target[1] > g[1] and route_to(self.lookup, target, g) is not None:
                beyond += 1
        missing = self.n - len(rnd.votes(kind))
        return beyond + missing + len(rnd.equivocators[kind]) < self.t

    def _completable(self, rnd: Round, g: Block) -> bool:
        est = self._estimate(rnd, g)
        if est is None:
            return False
        if est != g:
            return True
        # g itself is the estimate: complete only once no child of g can reach t precommits.
        return self._settled(rnd, PRECOMMIT, g)

    def _forget_old(self) -> None:
        for r in [r for r in self.rounds if r < self.current - 2]:
            del self.rounds[r]

    # -- justifications
    def justification(self, rnd: Round, block: Block) -> bytes:
        precommits = [
            m
            for m in rnd.precommits.values()
            if m.voter not in rnd.equivocators[PRECOMMIT]
            and (m.target == block or route_to(self.lookup, m.target, block) is not None)
        ]
        ancestry: dict[bytes, Header] = {}
        for m in precommits:
            for h in route_to(self.lookup, m.target, block) or []:
                hdr = self.lookup(h)
                if hdr is not None:
                    ancestry[h] = hdr
        return encode_justification(
            rnd.number, self.set_id, block, precommits, list(ancestry.values())
        )


# ----------------------------------------------------------------------------- justifications


class JustificationError(Exception):
    """The justification does not prove finality of its block."""


def encode_justification(
    round: int, set_id: int, block: Block, precommits: Iterable[SignedVote], ancestry: list[Header]
) -> bytes:
    return codec.encode(
        [
            round,
            set_id,
            block[0],
            block[1],
            [m.to_wire() for m in precommits],
            [h.to_wire() for h in ancestry],
        ]
    )


@dataclass(frozen=True)
class GrandpaJustification:
    round: int
    set_id: int
    block: Block
    precommits: tuple[SignedVote, ...]
    ancestry: tuple[Header, ...]

    @classmethod
    def decode(cls, data: bytes) -> GrandpaJustification:
        w = codec.decode(data, 4 << 20)
        if type(w) is not list or len(w) != 6 or type(w[4]) is not list or type(w[5]) is not list:
            raise CodecError("bad justification")
        return cls(
            codec.U64.from_wire(w[0]),
            codec.U64.from_wire(w[1]),
            (codec.H256.from_wire(w[2]), codec.U64.from_wire(w[3])),
            tuple(SignedVote.from_wire(m) for m in w[4]),
            tuple(Header.from_wire(h) for h in w[5]),
        )

    def verify(self, genesis_hash: bytes, authorities: list[bytes], set_id: int) -> None:
        """Raise JustificationError unless ``t`` distinct authorities precommitted to the block
        or to descendants linked to it by the included headers."""
        if self.set_id != set_id:
            raise JustificationError("wrong authority set")
        headers = {h.hash: h for h in self.ancestry}
        voters: set[bytes] = set()
        for m in self.precommits:
            if m.kind != PRECOMMIT or m.round != self.round or m.set_id != set_id:
                raise JustificationError("vote of another round, set or kind")
            if m.voter not in authorities or m.voter in voters:
                raise JustificationError("unknown or duplicate voter")
            if not m.verify(genesis_hash):
                raise JustificationError("bad vote signature")
            if m.target != self.block and route_to(headers.get, m.target, self.block) is None:
                raise JustificationError("precommit target does not descend from the block")
            voters.add(m.voter)
        if len(voters) < threshold(len(authorities)):
            raise JustificationError(
                f"{len(voters)} of {len(authorities)} precommits is not a supermajority"
            )
