"""The node service: one trio nursery that owns every task of a running node.

Tasks: the libp2p network (gossip, sync), the Aura authoring loop (validators), the finality
voter, the services the node hosts (JSON-RPC, metrics: ``NodeConfig.services``), and a retry
queue for blocks from future slots. SIGINT and SIGTERM cancel the nursery; the database is
closed after every task has stopped, so a clean stop and a SIGKILL both leave a consistent
database (every block is one atomic batch).

The node is also the network's :class:`~twinchain.p2p.abc.NetworkHandler`: everything peers
send arrives through the synchronous methods below, on the trio thread.
"""

from __future__ import annotations

import logging
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from twinchain import __version__
from twinchain.consensus import aura
from twinchain.consensus.grandpa import Voter
from twinchain.consensus.proofs import (
    CatchUp,
    CatchUpError,
    GrandpaJustification,
    JustificationError,
)
from twinchain.consensus.rounds import Equivocation
from twinchain.consensus.voter_store import KVVoterStore
from twinchain.node.blockchain import Blockchain, BlockImportError, ImportResult
from twinchain.node.chain_spec import ChainSpec
from twinchain.node.services import NodeService
from twinchain.node.txpool import SOURCE_IN_BLOCK, SOURCE_NETWORK, PoolError, TransactionPool
from twinchain.p2p.abc import ChainStatus, Verdict
from twinchain.primitives.codec import CodecError
from twinchain.primitives.faults import crash_point
from twinchain.primitives.finality import SignedVote, describe_vote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.types import (
    Block,
    CompactBlock,
    Extrinsic,
    Header,
    decode_block_or_compact,
    extrinsic_hash,
)
from twinchain.runtime.executive import InvalidBlock, InvalidTransaction

log = logging.getLogger("twinchain.node")

# Share of a slot an author may spend applying transactions before it seals. Every other
# validator must import the block (slower than building it, and on shared cores) before the
# next slot, or the next author forks: at half a slot, a loaded 4-validator devnet on 2 cores
# forked for several blocks at a time and finalized a fifth of what a quarter gives.
PROPOSE_SHARE = 0.25
VOTER_TICK_S = 0.2
# Longest an author waits, at its slot's start, for the previous slot's block (see
# ``_await_previous_block``), as a share of the slot.
PARENT_WAIT_SHARE = 0.5
# However late an author starts, it may apply transactions for this share of the slot.
MIN_PROPOSE_SHARE = 0.05
FUTURE_BLOCKS_MAX = 256
# A re-org deeper than this leaves the pool as it is (finality bounds re-orgs far below it).
REORG_POOL_DEPTH = 64
# A round that has not completed re-sends this node's votes every few slots.
REBROADCAST_SLOTS = 3
# A block a finality message names and we lack is asked for again after this long.
WANTED_RETRY_S = 2.0


def propose_budget_ms(slot_ms: int, late_ms: int) -> float:
    """Time an author starting ``late_ms`` into its slot may spend applying transactions:
    up to ``PROPOSE_SHARE`` of the slot counted from its start, never under
    ``MIN_PROPOSE_SHARE``."""
    return max(PROPOSE_SHARE * slot_ms - late_ms, MIN_PROPOSE_SHARE * slot_ms)


@dataclass
class NodeConfig:
    spec: ChainSpec
    base_path: Path | None = None
    name: str = "twinchain-node"
    validator: bool = False
    author_key: Keypair | None = None
    port: int | None = 30333
    #: The p2p listen address (a validator in its own network namespace listens on its IP).
    listen_host: str = "127.0.0.1"
    bootnodes: list[str] = field(default_factory=list)
    #: Started in the node's nursery, in this order (JSON-RPC, metrics: see
    #: ``twinchain.node.services``); none by default.
    services: list[NodeService] = field(default_factory=list)
    pruning: int | None = 256
    #: Test-only: author two different blocks in each of our slots (equivocation tests).
    double_sign: bool = False


class Node:
    """A running node. Satisfies ``twinchain.rpc.api.NodeHandle`` and ``NetworkHandler``."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        base = config.base_path
        if base is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="twinchain-")
            base = Path(self._tmp.name)
        self.base_path = base
        self.chain_dir = base / "chains" / config.spec.id
        self.chain = Blockchain(config.spec, base, pruning=config.pruning)
        self.keystore = Keystore(self.chain_dir / "keystore")
        self.pool = TransactionPool(
            self.chain.validate_transaction,
            validate_hashed=self.chain.validate_transaction,
            best_number=self.chain.best.number,
        )
        self.name = config.name
        self.version = __version__
        #: Port each started service listens on, by ``NodeService.name``.
        self.service_ports: dict[str, int] = {}
        self.author_key = config.author_key
        if config.validator and self.author_key is None:
            keys = self.keystore.keys("aura")
            if not keys:
                raise SystemExit(
                    "--validator needs an 'aura' key in the keystore (twinchain key insert)"
                )
            self.author_key = keys[0]
        self.network = None
        if config.port is not None:
            from twinchain.p2p.service import NetworkService

            self.network = NetworkService(
                self,
                genesis_hash=self.chain.genesis_hash,
                key_file=self.chain_dir / "network" / "secret_ed25519",
                listen_host=config.listen_host,
                listen_port=config.port,
                bootnodes=config.bootnodes,
                node_name=config.name,
            )
        self.voter = self._new_voter()
        self._future: list[tuple[int, Block]] = []
        self._last_authored: dict[bytes, int] = {}  # authority -> slot of its newest block seen
        self._slot_headers: dict[int, Header] = {}
        self._reported: set[bytes] = set()
        self._last_vote_broadcast = 0
        #: The peer that relayed the highest-round finality vote: the first to ask for a
        #: catch-up when our voter falls behind.
        self._ahead_peer: tuple[int, str] | None = None
        #: Blocks named by finality messages that we lack, and when we last asked for them.
        self._wanted: dict[bytes, float] = {}
        #: Gossiped compact blocks this node could not rebuild from its pool (fetched by sync).
        self.compact_misses = 0
        #: Set when a vote or block arrives: wakes the finality loop (see ``_finality_loop``).
        self._finality_due = trio.Event()

    # ------------------------------------------------------------------ NodeHandle
    @property
    def roles(self) -> list[str]:
        return ["Authority"] if self.config.validator else ["Full"]

    @property
    def is_syncing(self) -> bool:
        return self.network is not None and self.network.is_syncing()

    @property
    def peers(self) -> list[dict[str, object]]:
        return [] if self.network is None else list(self.network.peers())  # type: ignore[arg-type]

    @property
    def local_peer_id(self) -> str:
        return "" if self.network is None else self.network.peer_id

    @property
    def listen_addresses(self) -> list[str]:
        return [] if self.network is None else list(self.network.listen_addrs)

    def submit_extrinsic(self, raw: bytes) -> bytes:
        # Its signatures (the telemetry devices' too) in one batch, as for gossiped ones.
        self.chain.preverify([raw])
        try:
            h = self.pool.submit(raw)
        finally:
            self.chain.clear_preverified()
        if self.network is not None:
            self.network.publish_transaction(raw)
        return h

    # ------------------------------------------------------------------ finality voter
    def _new_voter(self) -> Voter:
        fin = self.chain.finalized
        return Voter(
            genesis_hash=self.chain.genesis_hash,
            authorities=self.chain.authorities_at(fin.hash),
            set_id=self.chain.set_id_at(fin.hash),
            finalized=(fin.hash, fin.number),
            lookup=self.chain.blocks.header,
            best_chain_containing=self._best_containing,
            keypair=self.author_key if self.config.validator else None,
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
        if anc is not None and self.chain.descends_from(best, anc):
            return (best.hash, best.number)
        return base

    def finality_step(self, now_ms: int) -> None:
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
            self._report_vote_equivocation(ev)
        self.voter.evidence.clear()

    # ------------------------------------------------------------------ NetworkHandler
    def status(self) -> ChainStatus:
        best, fin = self.chain.best, self.chain.finalized
        return ChainStatus(best.number, best.hash, fin.number, fin.hash, self.chain.genesis_hash)

    def on_block(self, peer_id: str, raw: bytes) -> Verdict:
        try:
            got = decode_block_or_compact(raw)
        except CodecError:
            return Verdict.REJECT
        if isinstance(got, CompactBlock):
            block = got.resolve(self.pool.get)
            if block is None:
                if self.chain.blocks.header(got.header.hash) is not None:
                    return Verdict.IGNORE  # known already (its extrinsics left the pool)
                # An extrinsic we never saw: IGNORE makes sync fetch the full block from
                # this peer, which has it.
                self.compact_misses += 1
                log.debug(
                    "compact block #%d: %d extrinsics not in the pool; fetching it by sync",
                    got.header.number,
                    len(got.missing(self.pool.get)),
                )
                return Verdict.IGNORE
            return self._import(block, None)
        return self._import(got, None)

    def import_synced(self, raw: bytes, justification: bytes | None) -> Verdict:
        try:
            block = Block.decode(raw)
        except CodecError:
            return Verdict.REJECT
        verdict = self._import(block, justification, from_sync=True)
        if verdict is Verdict.REJECT or justification is None:
            return verdict
        h = block.hash
        if block.header.number <= self.chain.finalized.number:
            return verdict
        if self.chain.blocks.header(h) is None:
            return verdict
        return self._finalize_justified(h, block.header.number, justification)

    def _finalize_justified(self, h: bytes, number: int, justification: bytes) -> Verdict:
        """Finalize known block ``h`` by a justification from a peer, if it proves it."""
        try:
            self.chain.verify_justification(h, justification)
        except JustificationError as exc:
            log.warning("bad justification for #%d: %s", number, exc)
            return Verdict.REJECT
        self.chain.finalize(h, justification, durable=not self.is_syncing)
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

    def blocks_by_hash(self, block_hash: bytes, count: int) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        h = block_hash
        for _ in range(max(0, min(count, 512))):
            raw = self.chain.blocks.block_bytes(h)
            header = self.chain.blocks.header(h)
            if raw is None or header is None or header.number == 0:
                break
            out.append((raw, self.chain.blocks.justification(h)))
            h = header.parent_hash
        return out

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
        verdict = self._finalize_justified(h, number, raw)
        if verdict is Verdict.ACCEPT:
            log.info("🔒 finalized #%d (0x%s…) by a commit", number, h.hex()[:12])
        return verdict

    def justification_for(self, block_hash: bytes) -> bytes | None:
        return self.chain.blocks.justification(block_hash)

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
        verdict = self._finalize_justified(block_hash, header.number, raw)
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
        self._finality_due.set()
        return Verdict.ACCEPT

    def _import(
        self, block: Block, justification: bytes | None, from_sync: bool = False
    ) -> Verdict:
        verified = [h for h in map(extrinsic_hash, block.extrinsics) if self.pool.contains(h)]
        previous_best = self.chain.best.hash
        try:
            result = self.chain.import_block(
                block, verified=verified, now_ms=aura.now_ms(), durable=not from_sync
            )
        except BlockImportError as exc:
            if exc.reason == "future":
                if len(self._future) < FUTURE_BLOCKS_MAX:
                    self._future.append((block.header.slot, block))
                return Verdict.IGNORE
            if exc.reason in ("known", "stale", "unknown-parent"):
                return Verdict.IGNORE
            log.warning("rejected block #%d: %s", block.header.number, exc)
            return Verdict.REJECT
        if result.is_best and block.header.parent_hash != previous_best:
            self._on_reorg(previous_best, block)
        self._after_import(block, result)
        return Verdict.ACCEPT

    def _on_reorg(self, old_best: bytes, new_best: Block) -> None:
        """The best chain switched branches: what the abandoned blocks carried goes back
        into the pool (as Substrate's pool maintenance does), what the new branch carries
        leaves it. Without this a transaction included only on the losing fork was gone, and
        with it every later nonce of its signer waited in the pool's future queue."""
        blocks = self.chain.blocks
        old = blocks.header(old_best)
        new: Header | None = new_best.header
        retracted: list[bytes] = []
        enacted: list[bytes] = []
        for _ in range(2 * REORG_POOL_DEPTH):
            if old is None or new is None or old.hash == new.hash:
                break
            if old.number >= new.number:
                retracted.append(old.hash)
                old = blocks.header(old.parent_hash)
            else:
                enacted.append(new.hash)
                new = blocks.header(new.parent_hash)
        else:
            log.warning("re-org deeper than %d blocks: pool not updated", REORG_POOL_DEPTH)
            return
        readded = 0
        for h in reversed(retracted):  # oldest first: nonces in order
            raw = blocks.block_bytes(h)
            if raw is None:
                continue
            for xt in Block.decode(raw).extrinsics:
                try:
                    self.pool.submit(xt, SOURCE_IN_BLOCK)
                    readded += 1
                except PoolError:
                    pass  # an inherent, or on the new branch as well
        included: list[bytes] = []
        for h in enacted:
            raw = blocks.block_bytes(h)
            if raw is not None and h != new_best.hash:
                included += map(extrinsic_hash, Block.decode(raw).extrinsics)
        if included:
            self.pool.prune(included, number=self.pool.best_number)
        log.info(
            "re-org to #%d: %d blocks retracted, %d transactions back in the pool",
            new_best.header.number,
            len(retracted),
            readded,
        )

    def _after_import(self, block: Block, result: ImportResult) -> None:
        header = block.header
        self._finality_due.set()
        self._check_slot_equivocation(header)
        # Who authored it, by the set in force at its parent (as its seal was checked).
        author = aura.slot_author(self.chain.authorities_at(header.parent_hash), header.slot)
        if header.slot > self._last_authored.get(author, -1):
            self._last_authored[author] = header.slot
        if result.is_best:
            self.pool.prune([o.hash for o in result.outcomes], number=result.number)
            self.pool.revalidate()

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
            self._report_vote_equivocation(ev)
        if ok is None:
            return Verdict.IGNORE
        if ok:
            self._finality_due.set()
        return Verdict.ACCEPT if ok else Verdict.REJECT

    def describe_vote(self, raw: bytes) -> str:
        return describe_vote(raw)

    def on_transactions(self, peer_id: str, raws: list[bytes]) -> Verdict:
        fresh = [r for r in raws if not self.pool.contains(extrinsic_hash(r))]
        if not fresh:
            return Verdict.IGNORE
        # One batch verification for the whole gossip message, not one per transaction.
        oks = self.chain.preverify(fresh)
        bogus = oks.count(False)
        try:
            for raw, ok in zip(fresh, oks, strict=True):
                if ok is False:
                    continue  # counted as bogus above
                try:
                    self.pool.submit(raw, source=SOURCE_NETWORK)
                except PoolError as exc:
                    if exc.code in ("Invalid:Decode", "LimitsExceeded"):
                        bogus += 1
        finally:
            self.chain.clear_preverified()
        return Verdict.REJECT if bogus else Verdict.ACCEPT

    def blocks_by_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        for n in range(start, start + max(0, min(count, 512))):
            h = self.chain.blocks.hash_at(n)
            if h is None:
                break
            raw = self.chain.blocks.block_bytes(h)
            if raw is None:
                break
            out.append((raw, self.chain.blocks.justification(h)))
        return out

    # ------------------------------------------------------------------ equivocation reports
    def _check_slot_equivocation(self, header: Header) -> None:
        seen = self._slot_headers.get(header.slot)
        if seen is None:
            self._slot_headers[header.slot] = header
            if len(self._slot_headers) > 1024:
                for s in sorted(self._slot_headers)[:512]:
                    del self._slot_headers[s]
        elif seen.hash != header.hash:
            self._submit_report(
                "report_block_equivocation", seen.encode(), header.encode(), key=seen.hash
            )

    def _report_vote_equivocation(self, ev: Equivocation) -> None:
        self._submit_report(
            "report_vote_equivocation",
            ev.first.encode(),
            ev.second.encode(),
            key=ev.first.signature,
        )

    def _submit_report(self, call_name: str, first: bytes, second: bytes, key: bytes) -> None:
        """Put equivocation evidence on chain, signed by this node's key (if it has one)."""
        if self.author_key is None or key in self._reported:
            return
        self._reported.add(key)
        rt = self.chain.runtime
        call = rt.call_by_name("Authority", call_name, *sorted([first, second]))
        state = self.chain.state_at()
        raw_info = state.get(rt.system.Account.key(self.author_key.public))
        nonce = 0 if raw_info is None else rt.system.Account.value_type.decode(raw_info).nonce
        for n in range(nonce, nonce + 16):
            xt = Extrinsic.sign(
                call, self.author_key, n, self.chain.genesis_hash, rt.spec_version
            ).encode()
            try:
                self.submit_extrinsic(xt)
                log.warning("equivocation evidence submitted (%s)", call_name)
                return
            except PoolError as exc:
                if exc.code not in ("ReplacementUnderpriced", "AlreadyImported"):
                    log.warning("could not submit equivocation evidence: %s", exc)
                    return

    # ------------------------------------------------------------------ tasks
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._signals, nursery.cancel_scope)
                if self.network is not None:
                    await nursery.start(self.network.run)
                for service in self.config.services:
                    self.service_ports[service.name] = await nursery.start(
                        partial(service.run, self)
                    )
                if self.config.validator:
                    nursery.start_soon(self._author_loop)
                nursery.start_soon(self._finality_loop)
                nursery.start_soon(self._future_blocks_loop)
                log.info(
                    "node %s ready: chain %s, best #%d, rpc %s, p2p %s",
                    self.name,
                    self.config.spec.name,
                    self.chain.best.number,
                    self.service_ports.get("rpc"),
                    ", ".join(self.listen_addresses) or "off",
                )
                task_status.started()
        finally:
            self.close()

    def close(self) -> None:
        self.chain.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for sig in signals:
                log.info("received %s, shutting down", signal.Signals(sig).name)
                scope.cancel()
                return

    async def _finality_loop(self) -> None:
        while True:
            self._finality_due = trio.Event()
            self.finality_step(aura.now_ms())
            # Step again at once when a vote or a block arrived meanwhile (each vote hop of a
            # round otherwise waits up to a tick: ~0.1 s of finality latency on average).
            with trio.move_on_after(VOTER_TICK_S):
                await self._finality_due.wait()

    async def _future_blocks_loop(self) -> None:
        while True:
            await trio.sleep(0.1)
            if not self._future:
                continue
            now = aura.now_ms()
            duration = self.chain.slot_duration()
            due = [b for s, b in self._future if s * duration <= now + aura.MAX_DRIFT_MS]
            self._future = [(s, b) for s, b in self._future if b not in due]
            for block in sorted(due, key=lambda b: b.header.number):
                self._import(block, None)

    async def _author_loop(self) -> None:
        assert self.author_key is not None
        duration = self.chain.slot_duration()
        last_slot = self.chain.best.slot
        while True:
            now = aura.now_ms()
            slot = now // duration
            if slot <= last_slot:
                await trio.sleep(((slot + 1) * duration - now) / 1000)
                continue
            last_slot = slot
            if self.is_syncing:
                continue
            auths = self.chain.authorities_at(self.chain.best.hash)
            if aura.slot_author(auths, slot) != self.author_key.public:
                continue
            # As Substrate's slot worker: with other authorities, no peers means no authoring.
            # After a restart our head is stale: a block on it is a fork nobody else ever sees,
            # and our first finality prevote would point at it, stalling the round.
            if len(auths) > 1 and self.network is not None and not self.network.peers():
                log.info("slot %d: no peers yet, not authoring", slot)
                continue
            await self._await_previous_block(slot, auths, duration)
            # The slot's start time: always a whole slot after the previous block's timestamp,
            # however late in its slot that block was authored (e.g. before a restart).
            try:
                late_ms = max(aura.now_ms() - slot * duration, 0)
                self.author_block(slot, slot * duration, late_ms=late_ms)
            except (InvalidBlock, InvalidTransaction, BlockImportError) as exc:
                log.error("could not author a block in slot %d: %s", slot, exc)
            await trio.sleep(0)

    async def _await_previous_block(self, slot: int, auths: list[bytes], duration: int) -> None:
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

    def author_block(self, slot: int, now_ms: int, late_ms: int = 0) -> Block:
        """Build, import and announce a block for ``slot``.

        ``late_ms``: how far into the slot we start. The time to apply transactions is
        counted from the slot's start, as Substrate's proposer does: an author that waited
        for its parent builds a smaller block, which its peers import sooner, so the next
        author is not late in turn (counted from our own start, lateness compounded).
        """
        assert self.author_key is not None
        budget = propose_budget_ms(self.chain.slot_duration(), late_ms)
        deadline = time.monotonic() + budget / 1000
        parent = self.chain.best
        ready = self.pool.ready()
        invalid: list[bytes] = []

        def on_invalid(h: bytes, exc: InvalidTransaction) -> None:
            ready.report_invalid(h)  # its dependants are skipped for this block
            invalid.append(h)

        block, result = self.chain.propose(
            self.author_key,
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
        if self.config.double_sign:
            # Test-only equivocation: a second, different block for the same slot.
            twin, twin_result = self.chain.propose(
                self.author_key, slot, now_ms + 1, (), parent=parent
            )
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
