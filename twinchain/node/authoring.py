"""Aura authoring: in each slot this node's key owns, build a block on the best chain, import
it and announce it.

The slot worker waits a little for the previous slot's block when its author has been producing
(``PARENT_WAIT_SHARE``), and gives the proposer a share of the slot counted from the slot's
start (``propose_budget_ms``), so that every other validator can import the block before the
next slot begins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from twinchain.consensus import aura
from twinchain.node.blockchain import Blockchain, BlockImportError, ImportResult
from twinchain.node.txpool import SOURCE_NETWORK, TransactionPool
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import SigningKeys
from twinchain.primitives.types import Block, CompactBlock, Header
from twinchain.runtime.executive import InvalidBlock, InvalidTransaction, UnsupportedRuntime

if TYPE_CHECKING:
    from twinchain.p2p.service import NetworkService

log = logging.getLogger("twinchain.node")

# Share of a slot an author may spend applying transactions before it seals. Every other
# validator must import the block (slower than building it, and on shared cores) before the
# next slot, or the next author forks: at half a slot, a loaded 4-validator devnet on 2 cores
# forked for several blocks at a time and finalized a fifth of what a quarter gives.
PROPOSE_SHARE = 0.25
# Longest an author waits, at its slot's start, for the previous slot's block (see
# ``Authoring.await_previous_block``), as a share of the slot.
PARENT_WAIT_SHARE = 0.5
# However late an author starts, it may apply transactions for this share of the slot.
MIN_PROPOSE_SHARE = 0.05


def propose_budget_ms(slot_ms: int, late_ms: int) -> float:
    """Time an author starting ``late_ms`` into its slot may spend applying transactions:
    up to ``PROPOSE_SHARE`` of the slot counted from its start, never under
    ``MIN_PROPOSE_SHARE``."""
    return max(PROPOSE_SHARE * slot_ms - late_ms, MIN_PROPOSE_SHARE * slot_ms)


class Authoring:
    """The slot worker of one node, and what it remembers of other authors' blocks.

    ``after_import(block, result)`` is the node's bookkeeping for a block it imported (the
    same as for a block from a peer); ``is_syncing``: a major sync is running (no authoring
    then). ``double_sign`` is test-only: two different blocks in each of our slots.
    """

    def __init__(
        self,
        chain: Blockchain,
        pool: TransactionPool,
        network: NetworkService | None,
        keypair: Keypair | None,
        *,
        after_import: Callable[[Block, ImportResult], None],
        is_syncing: Callable[[], bool],
        double_sign: bool = False,
        keys: SigningKeys | None = None,
    ) -> None:
        self.chain = chain
        self.pool = pool
        self.network = network
        self.keypair = keypair
        #: Every key we may author with: each slot's author is looked up in it, so that a
        #: rotated key takes over at the session boundary that makes it the author.
        self.keys = keys if keys is not None else SigningKeys(None, *filter(None, [keypair]))
        self.double_sign = double_sign
        self._after_import = after_import
        self._is_syncing = is_syncing
        self._last_authored: dict[bytes, int] = {}  # authority -> slot of its newest block seen

    def note_imported(self, header: Header) -> None:
        """A block was imported: remember its author as producing (``await_previous_block``)."""
        # Who authored it, by the set in force at its parent (as its seal was checked).
        author = aura.slot_author(self.chain.authorities_at(header.parent_hash), header.slot)
        if header.slot > self._last_authored.get(author, -1):
            self._last_authored[author] = header.slot

    async def run(self) -> None:
        """Author in each of our slots until cancelled."""
        assert self.keypair is not None
        duration = self.chain.slot_duration()
        last_slot = self.chain.best.slot
        while True:
            now = aura.now_ms()
            slot = now // duration
            if slot <= last_slot:
                await trio.sleep(((slot + 1) * duration - now) / 1000)
                continue
            last_slot = slot
            if self._is_syncing():
                continue
            auths = self.chain.authorities_at(self.chain.best.hash)
            keypair = self.keys.get(aura.slot_author(auths, slot))
            if keypair is None:
                continue
            # As Substrate's slot worker: with other authorities, no peers means no authoring.
            # After a restart our head is stale: a block on it is a fork nobody else ever sees,
            # and our first finality prevote would point at it, stalling the round.
            if len(auths) > 1 and self.network is not None and not self.network.peers():
                log.info("slot %d: no peers yet, not authoring", slot)
                continue
            await self.await_previous_block(slot, auths, duration)
            # The slot's start time: always a whole slot after the previous block's timestamp,
            # however late in its slot that block was authored (e.g. before a restart).
            try:
                late_ms = max(aura.now_ms() - slot * duration, 0)
                self.author_block(slot, slot * duration, late_ms=late_ms, keypair=keypair)
            except UnsupportedRuntime:
                pass  # a block this release cannot run: none is authored (the chain says why)
            except (InvalidBlock, InvalidTransaction, BlockImportError) as exc:
                log.error("could not author a block in slot %d: %s", slot, exc)
            await trio.sleep(0)

    async def await_previous_block(self, slot: int, auths: list[bytes], duration: int) -> None:
        """Give the previous slot's block a moment to arrive before building on our head.

        Under load a block reaches its peers late in its slot and takes them longer to import
        than its author took to build it: an author that starts on time builds on the block
        before, a fork that wastes a slot, and the next author may fork again (seen: three
        blocks at one height). If the previous slot's author has been producing (a block of
        it imported within the last two rounds), wait up to ``PARENT_WAIT_SHARE`` of the slot
        for its block: an author that is down costs its successor that much, not a fork. The
        time waited comes off the block's own (see ``author_block``).
        """
        if self.chain.best.slot >= slot - 1:
            return
        previous = aura.slot_author(auths, slot - 1)
        if self._last_authored.get(previous, -1) < slot - 1 - 2 * len(auths):
            return
        give_up = time.monotonic() + duration * PARENT_WAIT_SHARE / 1000
        while self.chain.best.slot < slot - 1 and time.monotonic() < give_up:
            await trio.sleep(0.01)

    def author_block(
        self, slot: int, now_ms: int, late_ms: int = 0, keypair: Keypair | None = None
    ) -> Block:
        """Build, import and announce a block for ``slot``.

        ``late_ms``: how far into the slot we start. The time to apply transactions is
        counted from the slot's start, as Substrate's proposer does: an author that waited
        for its parent builds a smaller block, which its peers import sooner, so the next
        author is not late in turn (counted from our own start, lateness compounded).
        """
        keypair = keypair or self.keypair
        assert keypair is not None
        budget = propose_budget_ms(self.chain.slot_duration(), late_ms)
        deadline = time.monotonic() + budget / 1000
        parent = self.chain.best
        ready = self.pool.ready()
        invalid: list[bytes] = []

        def on_invalid(h: bytes, exc: InvalidTransaction) -> None:
            ready.report_invalid(h)  # its dependants are skipped for this block
            invalid.append(h)

        block, result = self.chain.propose(
            keypair,
            slot,
            now_ms,
            ready,
            verified=self.pool.contains,
            on_invalid=on_invalid,
            deadline=deadline,
            max_bytes=None if self.network is None else self.network.max_block_bytes,
        )
        self.pool.remove(invalid)
        # Gossiped compact: by hash what reached us by gossip (our peers hold it), inline the
        # rest. Decided before the import prunes the pool.
        compact = CompactBlock.of(block, lambda h: self.pool.source(h) == SOURCE_NETWORK)
        self._after_import(block, result)
        if self.network is not None:
            self.network.publish_block(compact.encode())
        if self.double_sign:
            # Test-only equivocation: a second, different block for the same slot.
            twin, twin_result = self.chain.propose(keypair, slot, now_ms + 1, (), parent=parent)
            self._after_import(twin, twin_result)
            if self.network is not None:
                self.network.publish_block(twin.encode())
        log.info(
            "✨ authored #%d (0x%s…) slot %d: %d extrinsics in %.0f ms",
            result.number,
            result.hash.hex()[:12],
            slot,
            len(block.extrinsics),
            result.seconds * 1000,
        )
        return block
