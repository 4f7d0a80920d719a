"""The finality gadget: GRANDPA-style rounds of prevotes and precommits on chains.

A vote for block B counts for B and every ancestor of B. With ``n`` equal-weight voters and
``t = n - (n - 1) // 3`` (more than 2/3), a round runs:

1. **prevote** the head of the best chain that contains the previous round's estimate;
2. the **prevote GHOST** ``g`` is the highest block with ``t`` prevotes; **precommit** ``g``;
3. the highest block with ``t`` precommits is **final**; its justification is those precommits
   plus the headers linking each precommit target down to it;
4. the round's **estimate** is the highest ancestor of ``g`` that could still collect ``t``
   precommits; the next round starts once the round is completable (``t`` precommits seen,
   and no child of ``g`` can still reach ``t``, or the estimate is below ``g``), and honest
   prevotes in it must build on that estimate — this is what makes two conflicting
   finalizations need more than a third of the voters to equivocate.

An equivocator (two different votes of one kind in one round) is counted as voting for
everything, as GRANDPA does, and both signed messages are kept as evidence.

Restarts and lagging voters (as GRANDPA's voter persistence and catch-up):

* a voter with a :class:`VoterStore` records each vote durably *before* it is returned to be
  sent, and its round and estimate at each round start; after a restart it resumes that
  round with the same votes, so a restart never signs a second, different vote for one
  (set, round, stage) and is never taken for an equivocation;
* a voter that sees authorities' votes two or more rounds ahead of its own (or one round
  ahead while its own round is stuck) asks a peer for a :class:`CatchUp`: the prevotes and
  precommits of a round the peer completed. Checked (a supermajority of each, signed by
  distinct authorities), it adopts that round's estimate and moves to the next round.

The gadget is synchronous and network-agnostic: the node feeds it messages and ticks, and
sends what it returns. This module is the voter; vote counting and rounds are in
:mod:`twinchain.consensus.rounds`, justifications and catch-ups in
:mod:`twinchain.consensus.proofs`, and the signed vote in :mod:`twinchain.primitives.finality`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twinchain.consensus.proofs import CatchUp, CatchUpError, encode_justification
from twinchain.consensus.rounds import (
    Equivocation,
    HeaderLookup,
    Round,
    ghost,
    route_to,
    threshold,
)
from twinchain.primitives.faults import crash_point
from twinchain.primitives.finality import PRECOMMIT, PREVOTE, Block, SignedVote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Header

log = logging.getLogger("twinchain.grandpa")

#: Votes of rounds further ahead than this are checked (they show we are behind) but not kept.
FUTURE_ROUNDS = 64
#: Ask for a catch-up when authorities vote this many rounds ahead of us (GRANDPA's threshold),
CATCH_UP_THRESHOLD = 2
#: ... or one round ahead while our own round has been stuck for this many slots.
STUCK_SLOTS = 2
#: Rounds whose own votes the store keeps (older ones are pruned at each round start).
KEEP_ROUNDS = 16


@dataclass
class Finalized:
    """Output of the gadget: a block became final, with its encoded justification."""

    block: Block
    justification: bytes


@dataclass
class PersistedVoter:
    """What a :class:`VoterStore` gives back after a restart, for one authority set."""

    round: int
    estimate: Block
    votes: list[SignedVote]


class VoterStore(Protocol):
    """Durable memory of one voter, so that a restart resumes where it stopped.

    ``save_vote`` must not return before the vote would survive a crash or power loss: the
    voter sends a vote only after it returned, so a vote that was ever sent is always found by
    ``load`` again, and the voter re-sends that same vote instead of signing a new one.
    """

    def load(self, set_id: int) -> PersistedVoter | None:
        """The saved round, estimate and own votes of set ``set_id``; None if none saved."""
        ...

    def save_vote(self, vote: SignedVote) -> None:
        """Record this voter's ``vote`` durably (synced to disk)."""
        ...

    def save_round(self, set_id: int, round: int, estimate: Block) -> None:
        """Record that the voter entered ``round`` with ``estimate`` as its base."""
        ...


class Voter:
    """One node's view of the finality protocol for one authority set.

    ``best_chain_containing(block)`` returns the head of this node's best chain if it contains
    ``block``, else ``block`` itself. ``now_ms`` drives the round timers (one slot each).
    ``store``: where own votes and the round are kept across restarts (None: memory only).
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
        store: VoterStore | None = None,
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
        self.store = store if self.keypair is not None else None
        self.rounds: dict[int, Round] = {1: Round(1, started_ms=now_ms)}
        self.current = 1
        self.last_estimate: Block = finalized
        self.evidence: list[Equivocation] = []
        #: Highest round any authority was seen voting in (a valid, signed vote).
        self.highest_seen = 0
        self._catch_up_asked_ms = -(1 << 62)
        #: Counters for metrics: catch-ups applied, rounds completed.
        self.catch_ups = 0
        self.rounds_completed = 0
        self._resume(now_ms)

    def _resume(self, now_ms: int) -> None:
        """Take up the saved round and own votes after a restart."""
        if self.store is None:
            return
        saved = self.store.load(self.set_id)
        if saved is None:
            return
        me = self.keypair.public if self.keypair else b""
        current = max([saved.round] + [v.round for v in saved.votes])
        for v in saved.votes:
            if v.voter != me or v.set_id != self.set_id or v.round + KEEP_ROUNDS < current:
                continue
            rnd = self.rounds.setdefault(v.round, Round(v.round))
            rnd.votes(v.kind)[me] = v
            if v.kind == PREVOTE:
                rnd.prevoted = True
            else:
                rnd.precommitted = True
        est = saved.estimate
        if est[1] > self.finalized[1] and route_to(self.lookup, est, self.finalized) is not None:
            self.last_estimate = est
        self.current = current
        self.rounds.setdefault(current, Round(current)).started_ms = now_ms
        self.highest_seen = current
        log.info(
            "finality voter resumes round %d of set %d (%d own votes kept, estimate #%d)",
            current,
            self.set_id,
            len(saved.votes),
            self.last_estimate[1],
        )
        self._forget_old()

    # -- incoming
    def on_vote(self, vote: SignedVote) -> tuple[bool | None, Equivocation | None]:
        """Check and record a vote. Returns (valid, equivocation-if-any); valid is None for a
        well-formed vote of a round too old to matter (stale, not malicious)."""
        if vote.set_id != self.set_id or vote.voter not in self.authorities:
            return False, None
        if vote.round + FUTURE_ROUNDS < self.current:
            return None, None
        if not vote.verify(self.genesis_hash):
            return False, None
        if vote.round > self.highest_seen:
            self.highest_seen = vote.round
            if vote.round > self.current:
                log.debug(
                    "vote of round %d seen in round %d (from 0x%s)",
                    vote.round,
                    self.current,
                    vote.voter.hex()[:8],
                )
        if vote.round > self.current + FUTURE_ROUNDS:
            # Proof that we are behind (it triggers a catch-up), but too far ahead to keep.
            return True, None
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
            log.warning(
                "equivocation by 0x%s in round %d (%s)",
                vote.voter.hex()[:8],
                vote.round,
                "prevote" if vote.kind == PREVOTE else "precommit",
            )
            return True, ev
        book[vote.voter] = vote
        return True, None

    # -- progress
    def own_votes(self) -> list[SignedVote]:
        """This voter's votes in the current and the previous round, for periodic re-broadcast:
        gossip does not replay old messages, a voter that restarted learns the round from
        them, and a voter still in the previous round may need ours to complete it."""
        if self.keypair is None:
            return []
        me = self.keypair.public
        out: list[SignedVote] = []
        for r in (self.current - 1, self.current):
            rnd = self.rounds.get(r)
            if rnd is not None:
                out += [m for m in (rnd.prevotes.get(me), rnd.precommits.get(me)) if m]
        return out

    def note_finalized(self, block: Block) -> None:
        """A block was finalized by a justification from elsewhere (sync, import, commit)."""
        if block[1] > self.finalized[1]:
            self.finalized = block
            if self.last_estimate[1] < block[1]:
                self.last_estimate = block

    def tick(self, now_ms: int) -> tuple[list[SignedVote], list[Finalized]]:
        """Advance the protocol: votes to broadcast and blocks newly finalized."""
        out: list[SignedVote] = []
        done: list[Finalized] = []
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
                log.debug("round %d finalizes #%d", r, f[1])
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
                self.rounds_completed += 1
                self._start_round(self.current + 1, now_ms, est)
                if self.keypair is not None:
                    out.append(self._cast(self.rounds[self.current], PREVOTE, head))
        self._forget_old()
        return out, done

    def _cast(self, rnd: Round, kind: int, target: Block) -> SignedVote:
        """Sign, record durably, then return (to be sent) our vote of ``kind`` in ``rnd``.

        A vote of ours already in the round (one we sent before a restart) is returned as it
        is: a voter never signs two different votes for one (set, round, stage)."""
        assert self.keypair is not None
        mine = rnd.votes(kind).get(self.keypair.public)
        if mine is None:
            mine = SignedVote.sign(
                self.keypair, kind, rnd.number, self.set_id, target, self.genesis_hash
            )
            crash_point("vote-decided")
            if self.store is not None:
                self.store.save_vote(mine)
            crash_point("vote-recorded")
            rnd.votes(kind)[mine.voter] = mine
            log.debug(
                "round %d: %s #%d (0x%s…)",
                rnd.number,
                "prevote" if kind == PREVOTE else "precommit",
                target[1],
                target[0].hex()[:12],
            )
        if kind == PREVOTE:
            rnd.prevoted = True
        else:
            rnd.precommitted = True
        return mine

    def _start_round(self, number: int, now_ms: int, estimate: Block) -> None:
        self.last_estimate = estimate
        self.current = number
        rnd = self.rounds.setdefault(number, Round(number))
        rnd.started_ms = now_ms
        if self.store is not None:
            self.store.save_round(self.set_id, number, estimate)
        log.debug("round %d starts on estimate #%d", number, estimate[1])

    # -- catch-up
    def wants_catch_up(self, now_ms: int) -> bool:
        """Whether to ask a peer for a catch-up now: authorities vote ``CATCH_UP_THRESHOLD``
        rounds ahead of us, or one round ahead while our round has been stuck for
        ``STUCK_SLOTS`` slots (its votes were lost to us). At most one ask per two slots."""
        behind = self.highest_seen - self.current
        stuck = now_ms - self.rounds[self.current].started_ms >= STUCK_SLOTS * self.slot_ms
        if behind < CATCH_UP_THRESHOLD and not (behind >= 1 and stuck):
            return False
        if now_ms - self._catch_up_asked_ms < 2 * self.slot_ms:
            return False
        self._catch_up_asked_ms = now_ms
        log.debug(
            "round %d, votes seen in round %d: asking for a catch-up",
            self.current,
            self.highest_seen,
        )
        return True

    def catch_up_for(self, round: int) -> CatchUp | None:
        """Answer a voter in ``round``: the votes of our latest completed round if it is at
        least ``round`` (and we hold a supermajority of each kind), else None."""
        for r in sorted(self.rounds, reverse=True):
            if r < round:
                break
            if r >= self.current:
                continue
            rnd = self.rounds[r]
            prevotes = _first_per_voter(rnd.prevotes)
            precommits = _first_per_voter(rnd.precommits)
            if len(prevotes) >= self.t and len(precommits) >= self.t:
                return CatchUp(self.set_id, r, tuple(prevotes), tuple(precommits))
        return None

    def on_catch_up(self, msg: CatchUp, now_ms: int) -> bool:
        """Adopt a peer's completed round ``msg.round`` and move to the next one. False if
        it is of no use to us (another set, not ahead); CatchUpError if it proves nothing."""
        if msg.set_id != self.set_id or msg.round < self.current:
            return False
        rnd = Round(msg.round)
        for kind, votes in ((PREVOTE, msg.prevotes), (PRECOMMIT, msg.precommits)):
            book = rnd.votes(kind)
            for m in votes:
                if m.kind != kind or m.round != msg.round or m.set_id != self.set_id:
                    raise CatchUpError("a vote of another round, set or kind")
                if m.voter not in self.authorities or m.voter in book:
                    raise CatchUpError("a vote of an unknown or repeated voter")
                if not m.verify(self.genesis_hash):
                    raise CatchUpError("a bad vote signature")
                book[m.voter] = m
            if len(book) < self.t:
                raise CatchUpError(f"{len(book)} of {self.n} votes is not a supermajority")
        # Our own votes of that round (sent before a restart) stay ours.
        old = self.rounds.get(msg.round)
        if old is not None and self.keypair is not None:
            me = self.keypair.public
            for kind in (PREVOTE, PRECOMMIT):
                if me in old.votes(kind):
                    rnd.votes(kind)[me] = old.votes(kind)[me]
            rnd.prevoted, rnd.precommitted = old.prevoted, old.precommitted
        self.rounds[msg.round] = rnd
        g = self._prevote_ghost(rnd)
        # The round's estimate from its votes (missing precommits counted as possible, so it
        # is at least every block the round finalized); with every vote at or below our
        # finalized block, that block is the estimate.
        est = (self._estimate(rnd, g) if g is not None else None) or self.finalized
        if est[1] < self.finalized[1]:
            est = self.finalized
        self.catch_ups += 1
        log.info(
            "caught up from round %d to round %d (estimate #%d)",
            self.current,
            msg.round + 1,
            est[1],
        )
        self._start_round(msg.round + 1, now_ms, est)
        self._forget_old()
        return True

    # -- diagnostics
    def round_state(self) -> dict[str, object]:
        """The rounds in progress, in the shape of Substrate's ``grandpa_roundState`` (the
        missing voters as raw public keys; the RPC layer renders them)."""

        def one(rnd: Round) -> dict[str, object]:
            def stage(kind: int) -> dict[str, object]:
                votes = rnd.votes(kind)
                return {
                    "currentWeight": len(votes),
                    "missing": [a for a in self.authorities if a not in votes],
                }

            return {
                "round": rnd.number,
                "totalWeight": self.n,
                "thresholdWeight": self.t,
                "prevotes": stage(PREVOTE),
                "precommits": stage(PRECOMMIT),
            }

        return {
            "setId": self.set_id,
            "best": one(self.rounds[self.current]),
            "background": [
                one(self.rounds[r]) for r in sorted(self.rounds, reverse=True) if r < self.current
            ],
        }

    # -- helpers
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
        """As GRANDPA (and the finality-grandpa crate): a round is completable only once the
        precommits seen reach the threshold, and then if its estimate is below the
        prevote-GHOST or no child of the GHOST can still reach ``t`` precommits.

        Without the first condition two voters of four left a round on their own two
        precommits: no one then held ``t`` precommits of it, so no one could ever finalize
        in it or answer a catch-up for it, and a voter still in it (it had missed a prevote)
        stayed there once the others had moved two rounds on and stopped re-sending it.
        """
        if len(rnd.precommits) < self.t:
            return False
        est = self._estimate(rnd, g)
        if est is None:
            return False
        if est != g:
            return True
        # g itself is the estimate: complete only once no child of g can reach t precommits.
        return self._settled(rnd, PRECOMMIT, g)

    def _forget_old(self) -> None:
        # Rounds ahead of us are kept only within the window on_vote accepts.
        for r in [
            r for r in self.rounds if r < self.current - 2 or r > self.current + FUTURE_ROUNDS
        ]:
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


def _first_per_voter(book: dict[bytes, SignedVote]) -> list[SignedVote]:
    """One vote per voter (an equivocator's first: the book keeps it), in a stable order."""
    return [book[v] for v in sorted(book)]
