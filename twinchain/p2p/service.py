"""The network service: one object the node starts in its nursery and talks to.

It owns the libp2p host (TCP, Noise, Yamux, identify, ping, GossipSub), the gossip layer, the
sync service, peer scores and the bootnode dialers, all in one nursery under :meth:`run`.
Cancelling that nursery stops everything; the host is closed explicitly on the way out (in a
shielded scope) because py-libp2p's own cancellation path leaves its TCP listener tasks behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from twinchain.p2p.abc import NetworkHandler, PeerAuthorizer, PeerView, Verdict
from twinchain.p2p.gossip import GossipLimits, GossipService, Topics
from twinchain.p2p.guard import ConnectionGuard, ConnectionLimits, report_oversized_rpcs
from twinchain.p2p.host import (
    ConnectionEvent,
    ConnectionNotifee,
    GossipConfig,
    build_host,
    check_port_free,
    is_connected,
    load_or_create_identity,
    multiaddrs,
    parse_bootnode,
    peer_id_of,
)
from twinchain.p2p.permission import (
    AuthorizedPeersFile,
    PeerIdError,
    PeerPermissions,
    parse_peer_id,
)
from twinchain.p2p.scoring import PeerScores, Penalty
from twinchain.p2p.sync import SyncService
from twinchain.p2p.sync_session import SyncConfig
from twinchain.p2p.tcp_liveness import tune_connections
from twinchain.p2p.wire import MAX_GOSSIP_BYTES, GossipKind
from twinchain.primitives.types import Header

log = logging.getLogger("twinchain.p2p")


@dataclass(frozen=True)
class NetworkConfig:
    """Tunables; the defaults suit a facility network (and the devnet)."""

    gossip: GossipConfig = field(default_factory=GossipConfig)
    limits: GossipLimits = field(default_factory=GossipLimits)
    sync: SyncConfig = field(default_factory=SyncConfig)
    #: Peer and per-IP caps, handshake and negotiation time limits (``p2p.guard``).
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    #: A peer at or below this score is disconnected and banned for ``ban_seconds``.
    ban_threshold: int = -100
    ban_seconds: float = 300.0
    #: Score points a penalised peer recovers per second.
    score_recovery_per_second: float = 1.0
    #: Bootnode redial back-off: first pause, cap, and the timeout of one dial.
    #: Bootnodes are the known validators: a short cap and dial timeout put a fresh SYN on
    #: the wire within a few seconds of a healed link (a longer one waits on SYN back-off).
    dial_backoff_min: float = 0.5
    dial_backoff_max: float = 2.0
    dial_timeout: float = 4.0
    #: A connection whose peer's kernel acknowledges nothing this long is closed (TCP
    #: keep-alive and TCP_USER_TIMEOUT, see p2p/tcp_liveness.py); 0: the OS's defaults.
    tcp_user_timeout_s: float = 5.0
    #: How long a clean shutdown may take to close connections before giving up.
    close_timeout: float = 5.0


class NetworkService:
    """libp2p networking for one node: gossip, sync, scoring, bootnodes."""

    def __init__(
        self,
        handler: NetworkHandler,
        *,
        genesis_hash: bytes,
        key_file: Path,
        listen_host: str = "127.0.0.1",
        listen_port: int = 30333,
        bootnodes: Sequence[str] = (),
        node_name: str = "",
        config: NetworkConfig | None = None,
        reserved_nodes: Sequence[str] = (),
        reserved_only: bool = False,
        authorized: Iterable[str] | None = None,
        authorized_peers_file: Path | None = None,
        authorizer: PeerAuthorizer | None = None,
    ) -> None:
        """``reserved_nodes``: multiaddrs with ``/p2p/<id>``, always allowed and kept
        connected; ``reserved_only``: refuse everyone else. ``authorized`` and
        ``authorized_peers_file`` (re-read when it changes) make the network permissioned:
        reserved and authorized peers only (their union; an empty set admits reserved peers
        only). ``authorizer`` replaces all of that with another :class:`PeerAuthorizer`."""
        self.handler = handler
        self.genesis_hash = genesis_hash
        self.node_name = node_name
        self.config = cfg = config or NetworkConfig()
        self._key_pair = load_or_create_identity(Path(key_file))
        #: Base58 peer id (stable across restarts with the same key file).
        self.peer_id: str = peer_id_of(self._key_pair)
        #: Full multiaddrs with ``/p2p/<id>``, usable as ``--bootnodes``; set once listening.
        self.listen_addrs: list[str] = []
        self._listen_host, self._listen_port = listen_host, listen_port
        self._listen = multiaddr.Multiaddr(
            f"/{_ip_proto(listen_host)}/{listen_host}/tcp/{listen_port}"
        )
        self._bootnodes: list[PeerInfo] = [parse_bootnode(b) for b in bootnodes]
        self._reserved: list[PeerInfo] = [parse_bootnode(r) for r in reserved_nodes]
        self._authorized_file = (
            None if authorized_peers_file is None else AuthorizedPeersFile(authorized_peers_file)
        )
        # The authorized set is the union of its sources' parts (set_authorized_peers).
        self._authorized_parts: dict[str, frozenset[str]] = {}
        if authorized is not None:
            self._authorized_parts["config"] = frozenset(map(parse_peer_id, authorized))
        if self._authorized_file is not None:
            self._authorized_parts["file"] = self._authorized_file.load()
        #: Who may connect (see :meth:`set_authorized_peers`).
        self.permissions = PeerPermissions(
            (r.peer_id.to_base58() for r in self._reserved),
            self._authorized_union(),
            reserved_only=reserved_only,
        )
        self.authorizer: PeerAuthorizer = authorizer or self.permissions
        self._bootnode_ids = frozenset(b.peer_id.to_base58() for b in self._bootnodes)
        self.scores = PeerScores(
            ban_threshold=cfg.ban_threshold,
            ban_seconds=cfg.ban_seconds,
            recovery_per_second=cfg.score_recovery_per_second,
        )
        self.topics = Topics(genesis_hash)
        self.sync = SyncService(
            handler,
            genesis_hash,
            report=self.report,
            is_banned=self.scores.is_banned,
            config=cfg.sync,
        )
        self.gossip = GossipService(
            handler,
            self.topics,
            report=self.report,
            is_banned=self.scores.is_banned,
            on_block_seen=self._on_block_seen,
            limits=cfg.limits,
        )
        self.guard = ConnectionGuard(
            self.authorizer,
            cfg.connections,
            is_banned=self.scores.is_banned,
            is_bootnode=self._bootnode_ids.__contains__,
        )
        self._host: IHost | None = None
        self._pubsub: Pubsub | None = None
        self._router: GossipSub | None = None
        self._to_disconnect_send, self._to_disconnect_recv = trio.open_memory_channel[str](256)

    #: The most extrinsic bytes a block we author may carry: gossip carries one message of
    #: at most MAX_GOSSIP_BYTES (py-libp2p drops larger RPCs), less room for the header and
    #: the envelope. A larger block would only reach peers through sync, seconds later.
    max_block_bytes: int = MAX_GOSSIP_BYTES - 16 * 1024

    # ------------------------------------------------------------------ API for the node
    def publish_block(self, raw: bytes) -> None:
        """Gossip a block (canonical bytes) the node authored; never blocks. (Blocks received
        by gossip that the node ACCEPTs are forwarded by GossipSub itself.)"""
        self.gossip.publish_block(raw)

    def publish_vote(self, raw: bytes) -> None:
        """Gossip a finality vote; never blocks."""
        self.gossip.publish_vote(raw)

    def publish_commit(self, justification: bytes) -> None:
        """Gossip a finality commit (the justification of a round's finalized block)."""
        self.gossip.publish_vote(justification, GossipKind.COMMIT)

    def request_catch_up(self, peer_id: str, set_id: int, round: int) -> bool:
        """Ask ``peer_id`` for the votes of a finality round it completed (at least
        ``round``); the answer reaches ``handler.on_catch_up``. False if not possible now."""
        return self.sync.request_catch_up(peer_id, set_id, round)

    def request_ancestry(self, peer_id: str, block_hash: bytes, count: int) -> bool:
        """Fetch a block on any branch, with up to ``count - 1`` ancestors, from ``peer_id``
        and import it (a block a finality vote or commit names that we do not have)."""
        return self.sync.request_ancestry(peer_id, block_hash, count)

    def publish_transaction(self, raw: bytes) -> None:
        """Queue a transaction for the next batch (one gossip message every ~50 ms)."""
        self.gossip.publish_transaction(raw)

    def is_syncing(self) -> bool:
        """True while the node is far behind its peers and catching up."""
        return self.sync.is_syncing()

    def report(self, peer_id: str, penalty: int, reason: str) -> None:
        """Lower ``peer_id``'s score by ``penalty`` (see ``scoring.Penalty``); at the ban
        threshold the peer is disconnected and refused for ``ban_seconds``."""
        if peer_id == self.peer_id:
            return
        if self.scores.penalize(peer_id, penalty, reason):
            self._ban(peer_id)

    def peers(self) -> list[PeerView]:
        """Connected peers that speak our sync protocol or gossip, for RPC ``system_peers``."""
        out: list[PeerView] = []
        for st in list(self.sync.peers.values()):
            out.append(
                PeerView(
                    peerId=st.peer_id,
                    address=st.address,
                    bestNumber=st.best_number,
                    bestHash="0x" + st.best_hash.hex(),
                    finalizedNumber=st.status.finalized_number if st.status else 0,
                    score=self.scores.score(st.peer_id),
                )
            )
        return out

    def mesh_size(self) -> int:
        """Peers in our GossipSub mesh, the fewest over our three topics (0 before start)."""
        router = self._router
        if router is None:
            return 0
        return min(len(router.mesh.get(t, ())) for t in self.topics.by_kind().values())

    @property
    def host(self) -> IHost | None:
        """The running libp2p host (None before :meth:`run` and after it returns)."""
        return self._host

    def banned_peers(self) -> dict[str, float]:
        """Banned peer ids and the seconds left on each ban."""
        return self.scores.banned()

    def set_authorized_peers(self, source: str, peers: Iterable[str] | None) -> None:
        """Replace ``source``'s part of the authorized set, which is the union of every
        source's part: "config" (the constructor's), "file" (``--authorized-peers-file``),
        or any other a caller names. The first part makes the network permissioned;
        None withdraws a part, and a network that lost its last part stays permissioned with
        an empty set (fail closed). A malformed peer id is skipped with a warning. Connected
        peers no longer allowed are dropped within a second."""
        if peers is None:
            self._authorized_parts.pop(source, None)
        else:
            part = set()
            for p in peers:
                try:
                    part.add(parse_peer_id(p))
                except PeerIdError as exc:
                    log.warning("authorized peers from %s: skipping %s", source, exc)
            self._authorized_parts[source] = frozenset(part)
        self.permissions.set_authorized(self._authorized_union() or frozenset())

    def _authorized_union(self) -> frozenset[str] | None:
        parts = self._authorized_parts.values()
        return frozenset().union(*parts) if parts else None

    def refused_connections(self) -> dict[str, int]:
        """Connections refused since start, by reason ("not authorized", "per-IP cap",
        "peer slots full", "banned", "too many pending handshakes", "deauthorized")."""
        return dict(self.guard.refusals)

    # ------------------------------------------------------------------ internals
    def _on_block_seen(self, peer: str, header: Header, verdict: Verdict) -> None:
        self.sync.note_block(peer, header.number, header.hash, verdict)

    def _ban(self, peer_id: str) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.add_to_blacklist(ID.from_base58(peer_id))
            except Exception:  # pubsub may be stopping
                log.debug("could not blacklist %s in pubsub", peer_id, exc_info=True)
        try:
            self._to_disconnect_send.send_nowait(peer_id)
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.warning("could not queue the disconnection of banned peer %s", peer_id)

    async def _disconnector(self) -> None:
        assert self._host is not None
        async for peer_id in self._to_disconnect_recv:
            self.sync.peer_disconnected(peer_id)
            self.gossip.forget_peer(peer_id)
            pid = ID.from_base58(peer_id)
            with trio.move_on_after(self.config.close_timeout):
                try:
                    await self._host.disconnect(pid)
                except Exception:  # already gone
                    log.debug("disconnecting %s failed", peer_id, exc_info=True)
            try:
                # Forget its addresses so that nothing (ours or py-libp2p's) redials it.
                self._host.get_peerstore().clear_addrs(pid)
            except Exception:
                pass

    async def _connection_events(self, events: trio.MemoryReceiveChannel[ConnectionEvent]) -> None:
        assert self._host is not None
        async for ev in events:
            if ev.connected:
                if self.config.tcp_user_timeout_s > 0:
                    conns = self._host.get_network().get_connections(ID.from_base58(ev.peer_id))
                    tune_connections(list(conns), self.config.tcp_user_timeout_s)
                if self.scores.is_banned(ev.peer_id):
                    log.debug("refusing banned peer %s", ev.peer_id)
                    self._ban(ev.peer_id)
                    continue
                if ev.peer_id not in self.sync.peers:
                    log.info("🤝 peer connected: %s (%s)", ev.peer_id, ev.address)
                self._drop_stale_pubsub_stream(ev.peer_id)
                self.sync.peer_connected(ev.peer_id, ev.address)
            elif not is_connected(self._host, ev.peer_id):
                self._peer_gone(ev.peer_id)

    def _drop_stale_pubsub_stream(self, peer_id: str) -> None:
        """py-libp2p 0.8.1: Pubsub skips a new connection of a peer it still holds a stream
        for. A validator that restarts (same peer id) before its old stream is noticed dead
        then never gets our gossip again, its finality votes included, and finality stalls.
        A stream that is on none of the peer's live connections is dropped here; Pubsub
        then opens a new one on the live connection (it retries while the peer is connected).
        """
        ps, host = self._pubsub, self._host
        if ps is None or host is None:
            return
        pid = ID.from_base58(peer_id)
        stream = ps.peers.get(pid)
        if stream is None:
            return
        conns = host.get_network().get_connections(pid)
        if any(getattr(c, "muxed_conn", None) is stream.muxed_conn for c in conns):
            return
        log.debug("dropping a stale pubsub stream of %s", peer_id)
        try:
            ps._handle_dead_peer(pid)
        except Exception:  # pubsub may be stopping
            log.debug("could not drop the pubsub stream of %s", peer_id, exc_info=True)

    def _peer_gone(self, peer_id: str) -> None:
        if peer_id in self.sync.peers:
            log.info("👋 peer disconnected: %s", peer_id)
        self.sync.peer_disconnected(peer_id)
        self.gossip.forget_peer(peer_id)

    async def _maintenance(self) -> None:
        """Once a second: lift expired bans, drop peers whose connection vanished unnoticed."""
        assert self._host is not None
        while True:
            await trio.sleep(1.0)
            banned = self.scores.banned()
            if self._pubsub is not None:
                for pid in list(self._pubsub.blacklisted_peers):
                    if pid.to_base58() not in banned:
                        self._pubsub.remove_from_blacklist(pid)
            for peer_id in list(self.sync.peers):
                if not is_connected(self._host, peer_id):
                    self._peer_gone(peer_id)
            self.scores.forget_clean()
            self._enforce_authorization()

    def _enforce_authorization(self) -> None:
        """Follow the authorized peers file, and drop connected peers no longer allowed."""
        assert self._host is not None
        if self._authorized_file is not None:
            changed = self._authorized_file.changed()
            if changed is not None:
                self.set_authorized_peers("file", changed)
        for pid in self._host.get_connected_peers():
            peer = pid.to_base58()
            if not self.authorizer.allows(peer):
                self.guard.refused(peer, "", "deauthorized")
                try:
                    self._to_disconnect_send.send_nowait(peer)
                except (trio.WouldBlock, trio.ClosedResourceError):
                    pass  # retried next second

    async def _keep_dialing(self, info: PeerInfo) -> None:
        """Stay connected to a bootnode: dial, and redial with exponential back-off."""
        assert self._host is not None
        cfg = self.config
        peer = info.peer_id.to_base58()
        if peer == self.peer_id:
            return
        backoff = cfg.dial_backoff_min
        while True:
            left = self.scores.banned().get(peer)
            if left is not None:
                await trio.sleep(max(left, 0.1))
                continue
            if not self.authorizer.allows(peer):
                # It would be refused in the handshake; dial once the set admits it.
                await trio.sleep(1.0)
                continue
            if not is_connected(self._host, peer):
                # py-libp2p refuses for 60 s to dial a peer all of whose addresses failed
                # once (its negative cache); our own back-off paces the redials instead.
                unblock = getattr(self._host.get_network(), "unblock_peer", None)
                if unblock is not None:
                    unblock(info.peer_id)
                try:
                    with trio.fail_after(cfg.dial_timeout):
                        await self._host.connect(info)
                    log.debug("dialed bootnode %s", peer)
                    backoff = cfg.dial_backoff_min
                except Exception as exc:  # py-libp2p raises many types for a failed dial
                    log.debug("bootnode %s unreachable (%s); retry in %.1f s", peer, exc, backoff)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, cfg.dial_backoff_max)
                    continue
            await trio.sleep(1.0)

    # ------------------------------------------------------------------ task
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, subscribe, dial bootnodes; ``started()`` once listening; run until cancelled."""
        check_port_free(self._listen_host, self._listen_port)
        host, router, pubsub = build_host(self._key_pair, self._listen, self.config.gossip)
        self._host, self._pubsub, self._router = host, pubsub, router
        self.guard.install(host)
        unregister = report_oversized_rpcs(
            self.peer_id, lambda peer: self.report(peer, Penalty.GARBAGE, "oversized pubsub RPC")
        )
        events_send, events_recv = trio.open_memory_channel[ConnectionEvent](1024)
        host.get_network().register_notifee(ConnectionNotifee(events_send))
        host.set_stream_handler(self.sync.protocol, self.sync.responder.handle_inbound)
        # py-libp2p's teardown is not cancellation-safe: a connection task cancelled together
        # with everything else marks its connection closed, then is cancelled before closing
        # the socket, and the peer never learns we left. So libp2p runs shielded from outside
        # cancellation; on the way out we close the host first, while it still works, and only
        # then cancel what is left of it.
        libp2p_scope = trio.CancelScope(shield=True)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_libp2p, libp2p_scope)
                nursery.start_soon(self._close_on_exit, libp2p_scope)
                await nursery.start(self.gossip.run, pubsub)
                await nursery.start(self.sync.run, host)
                nursery.start_soon(self._connection_events, events_recv)
                nursery.start_soon(self._disconnector)
                nursery.start_soon(self._maintenance)
                dialed: set[str] = set()
                for info in [*self._reserved, *self._bootnodes]:
                    if info.peer_id.to_base58() not in dialed:
                        dialed.add(info.peer_id.to_base58())
                        nursery.start_soon(self._keep_dialing, info)
                self.listen_addrs = list(multiaddrs(host))
                log.info(
                    "🏷  local peer id %s%s, listening on %s",
                    self.peer_id,
                    f" ({self.node_name})" if self.node_name else "",
                    ", ".join(self.listen_addrs),
                )
                self._log_mode()
                task_status.started()
        finally:
            unregister()
            events_send.close()
            self._host = self._pubsub = self._router = None

    async def _run_libp2p(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The libp2p host and its pubsub services, inside ``scope`` (see :meth:`run`)."""
        assert self._host is not None and self._pubsub is not None and self._router is not None
        with scope:
            async with self._host.run([self._listen]):
                async with (
                    background_trio_service(self._pubsub),
                    background_trio_service(self._router),
                ):
                    await self._pubsub.wait_until_ready()
                    task_status.started()
                    await trio.sleep_forever()

    async def _close_on_exit(self, libp2p_scope: trio.CancelScope) -> None:
        host = self._host
        assert host is not None
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.config.close_timeout
                await host.close()
            libp2p_scope.cancel()

    def _log_mode(self) -> None:
        # The local configuration's mode; an outside authorizer (the node's chain-fed one)
        # logs what it adds itself.
        p = self.permissions
        if p.reserved_only:
            log.info("🔐 reserved-only network: %d reserved peers", len(p.reserved))
        elif p.authorized is not None:
            log.info(
                "🔐 permissioned network: %d authorized, %d reserved peers",
                len(p.authorized),
                len(p.reserved),
            )


def _ip_proto(host: str) -> str:
    return "ip6" if ":" in host else "ip4"
