"""The node service: one trio nursery that owns every task of a running node.

Tasks: the libp2p network (gossip, sync), the Aura authoring loop (validators:
``twinchain.node.authoring``), the finality voter (``twinchain.node.finality``), the services
the node hosts (JSON-RPC, metrics: ``NodeConfig.services``), and a retry queue for blocks from
future slots. SIGINT and SIGTERM cancel the nursery; the database is closed after every task
has stopped, so a clean stop and a SIGKILL both leave a consistent database (every block is one
atomic batch).

The node is also the network's :class:`~twinchain.p2p.abc.NetworkHandler`: everything peers
send arrives through the synchronous methods below, on the trio thread. Blocks and
transactions are handled here; finality messages go to the node's :class:`NodeFinality`.
"""

from __future__ import annotations

import logging
import signal
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from twinchain import __version__
from twinchain.consensus import aura
from twinchain.consensus.grandpa import Voter
from twinchain.node.authoring import Authoring
from twinchain.node.authorization import ChainAuthorization, ChainAuthorizer
from twinchain.node.blockchain import Blockchain, BlockImportError, ImportResult
from twinchain.node.chain_spec import ChainSpec
from twinchain.node.equivocation import EquivocationReporter
from twinchain.node.finality import NodeFinality
from twinchain.node.services import NodeService
from twinchain.node.txpool import SOURCE_IN_BLOCK, SOURCE_NETWORK, PoolError, TransactionPool
from twinchain.p2p.abc import ChainStatus, Verdict
from twinchain.primitives.codec import CodecError
from twinchain.primitives.finality import describe_vote
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore, SigningKeys
from twinchain.primitives.types import (
    Block,
    CompactBlock,
    Header,
    decode_block_or_compact,
    extrinsic_hash,
)

log = logging.getLogger("twinchain.node")

FUTURE_BLOCKS_MAX = 256
# A re-org deeper than this leaves the pool as it is (finality bounds re-orgs far below it).
REORG_POOL_DEPTH = 64


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
    #: Multiaddrs with ``/p2p/<id>``: always allowed, dialed and kept connected.
    reserved_nodes: list[str] = field(default_factory=list)
    #: Refuse every peer but the reserved ones.
    reserved_only: bool = False
    #: Peer ids allowed to connect (one a line, re-read on change): the network is
    #: permissioned once given (see ``twinchain.p2p.permission``).
    authorized_peers_file: Path | None = None
    #: Peers connected at once (reserved not counted); inbound connections from one IP.
    max_peers: int = 50
    max_connections_per_ip: int = 8
    #: Started in the node's nursery, in this order (JSON-RPC, metrics: see
    #: ``twinchain.node.services``); none by default.
    services: list[NodeService] = field(default_factory=list)
    pruning: int | None = 256
    #: Keep the bodies of the last N finalized blocks only (None: all, an archive node).
    blocks_pruning: int | None = None
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
        self.chain = Blockchain(
            config.spec, base, pruning=config.pruning, blocks_pruning=config.blocks_pruning
        )
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
            # After a rotation the keystore also holds session keys: the account (a key no
            # other account registered as its session key) signs the node's extrinsics.
            owners = self.chain.runtime.session.KeyOwner
            best = self.chain.state_at()
            accounts = [k for k in keys if best.get(owners.key(k.public)) is None]
            self.author_key = (accounts or keys)[0]
        #: Keys the node signs blocks and votes with: the set in force names which (the
        #: account's key, or a session key author_rotateKeys put in the keystore).
        self.signing_keys = SigningKeys(self.keystore, *filter(None, [self.author_key]))
        self.network = None
        #: The chain's authorized nodes fed to the network (``twinchain.node.authorization``).
        self.authorization: ChainAuthorization | None = None
        if config.port is not None:
            from twinchain.p2p.guard import ConnectionLimits
            from twinchain.p2p.service import NetworkConfig, NetworkService

            authorizer = ChainAuthorizer()
            self.network = NetworkService(
                self,
                genesis_hash=self.chain.genesis_hash,
                key_file=self.chain_dir / "network" / "secret_ed25519",
                listen_host=config.listen_host,
                listen_port=config.port,
                bootnodes=config.bootnodes,
                node_name=config.name,
                config=NetworkConfig(
                    connections=ConnectionLimits(
                        max_peers=config.max_peers,
                        max_connections_per_ip=config.max_connections_per_ip,
                    )
                ),
                reserved_nodes=config.reserved_nodes,
                reserved_only=config.reserved_only,
                authorized_peers_file=config.authorized_peers_file,
                authorizer=authorizer,
            )
            authorizer.attach(self.network.permissions)
            self.authorization = ChainAuthorization(self.chain, authorizer)
        self.equivocations = EquivocationReporter(
            self.chain, self.author_key, self.submit_extrinsic
        )
        self.finality = NodeFinality(
            self.chain,
            self.network,
            self.author_key if config.validator else None,
            self.equivocations,
            is_syncing=lambda: self.is_syncing,
            keys=self.signing_keys,
        )
        self.authoring = Authoring(
            self.chain,
            self.pool,
            self.network,
            self.author_key,
            after_import=self._after_import,
            is_syncing=lambda: self.is_syncing,
            double_sign=config.double_sign,
            keys=self.signing_keys,
        )
        self._future: list[tuple[int, Block]] = []
        #: Gossiped compact blocks this node could not rebuild from its pool (fetched by sync).
        self.compact_misses = 0

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

    def refused_connections(self) -> dict[str, int]:
        """Connections the network refused since start, by reason (for metrics)."""
        return {} if self.network is None else self.network.refused_connections()

    @property
    def local_peer_id(self) -> str:
        return "" if self.network is None else self.network.peer_id

    @property
    def listen_addresses(self) -> list[str]:
        return [] if self.network is None else list(self.network.listen_addrs)

    @property
    def voter(self) -> Voter:
        """The finality voter of the current authority set (a new set replaces it)."""
        return self.finality.voter

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
        return self.finality.finalize_justified(h, block.header.number, justification)

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

    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        return self.finality.on_vote(peer_id, raw)

    def describe_vote(self, raw: bytes) -> str:
        return describe_vote(raw)

    def on_commit(self, peer_id: str, raw: bytes) -> Verdict:
        return self.finality.on_commit(peer_id, raw)

    def justification_for(self, block_hash: bytes) -> bytes | None:
        return self.chain.blocks.justification(block_hash)

    def import_justification(self, peer_id: str, block_hash: bytes, raw: bytes) -> Verdict:
        return self.finality.import_justification(peer_id, block_hash, raw)

    def catch_up_for(self, set_id: int, round: int) -> bytes | None:
        return self.finality.catch_up_for(set_id, round)

    def on_catch_up(self, peer_id: str, raw: bytes) -> Verdict:
        return self.finality.on_catch_up(peer_id, raw)

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
            # unsupported-runtime: this node stopped at an upgrade; the sender is right.
            if exc.reason in ("known", "stale", "unknown-parent", "unsupported-runtime"):
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
        self.finality.wake()
        self.equivocations.check_slot(header)
        self.authoring.note_imported(header)
        if result.is_best:
            self.pool.prune([o.hash for o in result.outcomes], number=result.number)
            self.pool.revalidate()

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
                    nursery.start_soon(self.authoring.run)
                nursery.start_soon(self.finality.run)
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
