"""The node's side of finality: it runs the GRANDPA voter of the current authority set, feeds
it what peers send (votes, commits, justifications, catch-ups), sends what it returns and
finalizes what it (or a peer's proof) finalizes.

The voter itself (``twinchain.consensus.grandpa``) is synchronous and knows no network; this
is the glue. A vote or an imported block wakes the finality loop at once (``wake``), and it
steps at least every ``VOTER_TICK_S`` for the round timers.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from twinchain.consensus import aura
from twinchain.consensus.grandpa import Voter
from twinchain.consensus.proofs import (
    CatchUp,
    CatchUpError,
    GrandpaJustification,
    JustificationError,
)
from twinchain.consensus.voter_store import KVVoterStore
from twinchain.node.blockchain import Blockchain
from twinchain.node.equivocation import EquivocationReporter
from twinchain.p2p.abc import Verdict
from twinchain.primitives.codec import CodecError
from twinchain.primitives.faults import crash_point
from twinchain.primitives.finality import SignedVote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import SigningKeys
from twinchain.primitives.types import Header

if TYPE_CHECKING:
    from twinchain.p2p.service import NetworkService

log = logging.getLogger("twinchain.node")

VOTER_TICK_S = 0.2
# A round that has not completed re-sends this node's votes every few slots.
REBROADCAST_SLOTS = 3
# A block a finality message names and we lack is asked for again after this long.
WANTED_RETRY_S = 2.0


class NodeFinality:
    """The finality voter of one node and the finality messages it exchanges with peers.

    ``keypair``: the voter's key (None: follow finality without voting); ``keys``: every key
    it may vote with (default: ``keypair`` alone): each set votes with the key it names, so a
    rotated session key votes from the set that holds it on. ``is_syncing``: a major sync is
    running (finalizations are then not synced to disk one by one).
    """

    def __init__(
        self,
        chain: Blockchain,
        network: NetworkService | None,
        keypair: Keypair | None,
        reporter: EquivocationReporter,
        is_syncing: Callable[[], bool],
        keys: SigningKeys | None = None,
    ) -> None:
        self.chain = chain
        self.network = network
        self.keypair = keypair
        self.keys = keys if keys is not None else SigningKeys(None, *filter(None, [keypair]))
        self.reporter = reporter
        self._is_syncing = is_syncing
        self.voter = self._new_voter()
        self._last_vote_broadcast = 0
        #: The peer that relayed the highest-round finality vote: the first to ask for a
        #: catch-up when our voter falls behind.
        self._ahead_peer: tuple[int, str] | None = None
        #: Blocks named by finality messages that we lack, and when we last asked for them.
        self._wanted: dict[bytes, float] = {}
        #: Set when a vote or block arrives: wakes the finality loop (see ``run``).
        self._due = trio.Event()

    # ------------------------------------------------------------------ the voter
    def _new_voter(self) -> Voter:
        fin = self.chain.finalized
        authorities = self.chain.authorities_at(fin.hash)
        return Voter(
            genesis_hash=self.chain.genesis_hash,
            authorities=authorities,
            set_id=self.chain.set_id_at(fin.hash),
            finalized=(fin.hash, fin.number),
            lookup=self.chain.blocks.header,
            best_chain_containing=self._best_containing,
            keypair=None if self.keypair is None else self.keys.first_of(authorities),
            slot_ms=self.chain.slot_duration(),
            now_ms=aura.now_ms(),
            store=KVVoterStore(self.chain.kv),
        )

    def _maybe_new_voter_set(self) -> None:
        """Once a block that enacted a new authority set is final, vote in the new set."""
        fin = self.chain.finalized
        if self.chain.set_id_at(fin.hash) != self.voter.set_id:
            log.info("authority set changed at #%d: new finality voter set", fin.number)
            self.voter = self._new_voter()

    def _ask_catch_up(self) -> None:
        """Ask a peer for the votes of a round we missed: first the one that relayed the
        highest-round vote, else any peer (in random order)."""
        assert self.network is not None
        peers = [p["peerId"] for p in self.network.peers()]
        random.shuffle(peers)
        if self._ahead_peer is not None and self._ahead_peer[1] in peers:
            peers.remove(self._ahead_peer[1])
            peers.insert(0, self._ahead_peer[1])
            self._ahead_peer = None  # if it cannot help, the next ask tries another
        for peer in peers:
            if self.network.request_catch_up(peer, self.voter.set_id, self.voter.current):
                log.debug("asked %s for a finality catch-up (round %d)", peer, self.voter.current)
                return

    def _best_containing(self, base: tuple[bytes, int]) -> tuple[bytes, int]:
        best = self.chain.best
        anc = self.chain.blocks.header(base[0])
        if anc is None or not self.chain.descends_from(best, anc):
            return base
        # GRANDPA's voting limit: a set votes at most up to the block that enacts the next
        # set (the last block whose parent is in this set). That block is final by this set's
        # justification, which every node checks against this set; a vote past it would
        # finalize blocks whose justification names the wrong set, and the next set's voters
        # (a rotated key among them) would never be asked.
        head: Header | None = best
        set_id = self.voter.set_id
        while (
            head is not None
            and head.number > base[1]
            and self.chain.set_id_at(head.parent_hash) != set_id
        ):
            head = self.chain.blocks.header(head.parent_hash)
        return base if head is None else (head.hash, head.number)

    def step(self, now_ms: int) -> None:
        """Tick the voter: send its votes, finalize what it finalized, ask for a catch-up if
        it fell behind, switch sets, report equivocations."""
        votes, done = self.voter.tick(now_ms)
        if not votes and now_ms - self._last_vote_broadcast >= REBROADCAST_SLOTS * (
            self.chain.slot_duration()
        ):
            votes = self.voter.own_votes()
        if votes:
            self._last_vote_broadcast = now_ms
        for v in votes:
            if self.network is not None:
                self.network.publish_vote(v.encode())
                crash_point("vote-sent")
        for f in done:
            if f.block[1] > self.chain.finalized.number:
                self.chain.finalize(f.block[0], f.justification)
                log.info("🔒 finalized #%d (0x%s…)", f.block[1], f.block[0].hex()[:12])
                # The commit lets a node that missed this round's votes finalize at once.
                if self.network is not None:
                    self.network.publish_commit(f.justification)
        if self.network is not None and self.voter.wants_catch_up(now_ms):
            self._ask_catch_up()
        self._maybe_new_voter_set()
        for ev in self.voter.evidence:
            self.reporter.report_votes(ev)
        self.voter.evidence.clear()

    def wake(self) -> None:
        """Step again at once (a vote, a block or a catch-up arrived)."""
        self._due.set()

    async def run(self) -> None:
        """Step the voter until cancelled."""
        while True:
            self._due = trio.Event()
            self.step(aura.now_ms())
            # Step again at once when a vote or a block arrived meanwhile (each vote hop of a
            # round otherwise waits up to a tick: ~0.1 s of finality latency on average).
            with trio.move_on_after(VOTER_TICK_S):
                await self._due.wait()

    # ------------------------------------------------------------------ from peers
    def finalize_justified(self, h: bytes, number: int, justification: bytes) -> Verdict:
        """Finalize known block ``h`` by a justification from a peer, if it proves it."""
        try:
            self.chain.verify_justification(h, justification)
        except JustificationError as exc:
            log.warning("bad justification for #%d: %s", number, exc)
            return Verdict.REJECT
        self.chain.finalize(h, justification, durable=not self._is_syncing())
        self.voter.note_finalized((h, number))
        self._maybe_new_voter_set()
        log.debug("finalized #%d by a peer's justification", number)
        return Verdict.ACCEPT

    def _want_block(self, peer_id: str, block_hash: bytes, number: int) -> None:
        """A finality message names a block we lack (a branch we never imported: a vote
        for it counts for nothing here, and a round whose votes split over branches we do
        not all hold never completes). Fetch it and its ancestry from the sender."""
        fin = self.chain.finalized.number
        if self.network is None or number <= fin or self.chain.blocks.header(block_hash):
            return
        now = time.monotonic()
        if now - self._wanted.get(block_hash, -1e9) < WANTED_RETRY_S:
            return
        if len(self._wanted) > 256:
            self._wanted = {h: t for h, t in self._wanted.items() if now - t < WANTED_RETRY_S}
        if self.network.request_ancestry(peer_id, block_hash, number - fin):
            self._wanted[block_hash] = now
            log.debug(
                "fetching #%d (0x%s…) named by a finality message from %s",
                number,
                block_hash.hex()[:12],
                peer_id,
            )

    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        try:
            vote = SignedVote.decode(raw)
        except CodecError:
            return Verdict.REJECT
        ok, ev = self.voter.on_vote(vote)
        if ok and vote.set_id == self.voter.set_id:
            self._want_block(peer_id, vote.target_hash, vote.target_number)
        if (
            ok
            and vote.round > self.voter.current
            and (self._ahead_peer is None or vote.round >= self._ahead_peer[0])
        ):
            self._ahead_peer = (vote.round, peer_id)
        if ev is not None:
            self.reporter.report_votes(ev)
        if ok is None:
            return Verdict.IGNORE
        if ok:
            self.wake()
        return Verdict.ACCEPT if ok else Verdict.REJECT

    def on_commit(self, peer_id: str, raw: bytes) -> Verdict:
        try:
            h, number = GrandpaJustification.decode(raw).block
        except CodecError:
            return Verdict.REJECT
        if number > self.chain.finalized.number and self.chain.blocks.header(h) is None:
            self._want_block(peer_id, h, number)
            return Verdict.IGNORE  # its branch is fetched; the justification comes by status
        if number <= self.chain.finalized.number:
            return Verdict.IGNORE
        verdict = self.finalize_justified(h, number, raw)
        if verdict is Verdict.ACCEPT:
            log.info("🔒 finalized #%d (0x%s…) by a commit", number, h.hex()[:12])
        return verdict

    def import_justification(self, peer_id: str, block_hash: bytes, raw: bytes) -> Verdict:
        header = self.chain.blocks.header(block_hash)
        if header is None:
            try:
                number = GrandpaJustification.decode(raw).block[1]
            except CodecError:
                return Verdict.REJECT
            self._want_block(peer_id, block_hash, number)
            return Verdict.IGNORE
        if header.number <= self.chain.finalized.number:
            return Verdict.IGNORE
        try:
            if GrandpaJustification.decode(raw).block != (block_hash, header.number):
                return Verdict.REJECT
        except CodecError:
            return Verdict.REJECT
        verdict = self.finalize_justified(block_hash, header.number, raw)
        if verdict is Verdict.ACCEPT:
            log.info(
                "🔒 finalized #%d (0x%s…) by a peer's justification",
                header.number,
                block_hash.hex()[:12],
            )
        return verdict

    def catch_up_for(self, set_id: int, round: int) -> bytes | None:
        if set_id != self.voter.set_id:
            return None
        msg = self.voter.catch_up_for(round)
        return None if msg is None else msg.encode()

    def on_catch_up(self, peer_id: str, raw: bytes) -> Verdict:
        try:
            msg = CatchUp.decode(raw)
            useful = self.voter.on_catch_up(msg, aura.now_ms())
        except (CodecError, CatchUpError) as exc:
            log.debug("catch-up from %s refused: %s", peer_id, exc)
            return Verdict.REJECT
        if not useful:
            return Verdict.IGNORE
        self.wake()
        return Verdict.ACCEPT
