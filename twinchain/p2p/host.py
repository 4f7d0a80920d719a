"""The libp2p host: identity, transport stack, GossipSub router, connection events.

The stack is the standard one any libp2p implementation speaks: TCP, Noise (XX) for security,
Yamux for stream multiplexing (its receive windows enforced: ``guard.BoundedYamux``), Identify
and Ping (py-libp2p's defaults), and GossipSub (``/meshsub/1.2.0``, ``1.1.0``, ``1.0.0``) with
strict message signing. TLS, SECIO, plaintext
and mplex are deliberately not offered: plaintext is insecure, SECIO is deprecated, and a
single security/muxer choice keeps negotiation predictable.

The peer identity is an Ed25519 key kept in a file (libp2p's protobuf private-key encoding, the
same bytes go-libp2p writes), created with mode 0600 on first start.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import multiaddr
import trio
from google.protobuf.message import DecodeError
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub import pubsub as libp2p_pubsub
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import OutBoundQueueSize, RpcQueue
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID

from twinchain.p2p.guard import BoundedYamux, enforce_yamux_windows
from twinchain.p2p.wire import MAX_PUBSUB_RPC

log = logging.getLogger("twinchain.p2p.host")


class IdentityError(Exception):
    """The key file exists but cannot be used."""


# --------------------------------------------------------------------------- identity


def load_or_create_identity(key_file: Path) -> KeyPair:
    """Load the node's libp2p key from ``key_file``, creating it (mode 0600) if absent."""
    if key_file.exists():
        mode = stat.S_IMODE(key_file.stat().st_mode)
        if mode & 0o077:
            log.warning("network key %s is readable by others (mode %o)", key_file, mode)
        try:
            private = deserialize_private_key(key_file.read_bytes())
        except Exception as exc:  # protobuf and key parsers raise many types
            raise IdentityError(f"cannot read network key {key_file}: {exc}") from exc
        return KeyPair(private, private.get_public_key())
    key_pair = create_new_key_pair()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file first and rename: a crash never leaves a truncated key, and the
    # key is never readable by others, not even for an instant.
    tmp = key_file.with_name(key_file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key_pair.private_key.serialize())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, key_file)
    log.info("created network key %s", key_file)
    return key_pair


def check_port_free(host: str, port: int) -> None:
    """Raise OSError if another process listens on ``host:port``.

    py-libp2p binds its TCP listener with SO_REUSEPORT, so a second node on the same port
    would start silently and share the incoming connections with the first. A plain bind
    (SO_REUSEADDR only, as every server does) still fails against a live listener.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"p2p port {host}:{port} is not available: {exc}") from None


def peer_id_of(key_pair: KeyPair) -> str:
    return ID.from_pubkey(key_pair.public_key).to_base58()


def parse_bootnode(addr: str) -> PeerInfo:
    """``/ip4/1.2.3.4/tcp/30333/p2p/12D3Koo...`` → PeerInfo; ValueError if malformed."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:  # multiaddr raises several unrelated types
        raise ValueError(f"invalid bootnode multiaddr {addr!r}: {exc}") from None


# --------------------------------------------------------------------------- host


@dataclass(frozen=True)
class GossipConfig:
    """GossipSub parameters, chosen for a small network of known validators.

    Degrees and heartbeat are the spec defaults (D=6, 4..12, 1 s; py-libp2p's own default
    heartbeat is 120 s, far too slow to repair a mesh). py-libp2p's built-in spam protection
    (a single rate for every topic, applied even to our own publishes) is off: the gossip
    layer enforces per-topic rates itself, before forwarding, and scores offenders. Its
    eclipse protection and adaptive degrees are off too: every peer of a devnet shares one IP,
    and a validator network wants a stable mesh.

    GossipSub v1.1 is spoken, not v1.2: v1.2's only addition, IDONTWANT, is sent by py-libp2p
    0.8.1 to every mesh peer for every message however small (go-libp2p: only above 1 KiB),
    and only after validation, which for a block is its import, too late to save a copy.
    Without it a loaded validator used ~10 % less CPU at the same throughput.
    """

    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    heartbeat_interval: int = 1
    time_to_live: int = 30
    gossip_window: int = 3
    gossip_history: int = 5
    seen_ttl: int = 120


def build_host(
    key_pair: KeyPair, listen_addr: multiaddr.Multiaddr, gossip: GossipConfig
) -> tuple[IHost, GossipSub, Pubsub]:
    """A host (TCP+Noise+Yamux, identify, ping) with a GossipSub router attached."""
    batch_yamux_window_updates()
    enforce_yamux_windows()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): BoundedYamux},
        listen_addrs=[listen_addr],
    )
    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=gossip.degree,
        degree_low=gossip.degree_low,
        degree_high=gossip.degree_high,
        time_to_live=gossip.time_to_live,
        gossip_window=gossip.gossip_window,
        gossip_history=gossip.gossip_history,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=gossip.heartbeat_interval,
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
    )
    allow_large_rpcs()
    pubsub = Pubsub(
        host,
        router,
        strict_signing=True,
        seen_ttl=gossip.seen_ttl,
        max_inbound_rpc_size=MAX_PUBSUB_RPC,
    )
    seed_unique_seqnos(pubsub)
    cache_signed_peer_records()
    guard_blacklist_teardown(pubsub)
    guard_inbound_rpc_decoding(host, pubsub)
    return host, router, pubsub


def batch_yamux_window_updates() -> None:
    """Send Yamux window updates when half the window is used, as go-yamux does.

    py-libp2p 0.8.1 defaults ``PY_YAMUX_RELEASE_ON_READ`` on: every read of a stream sends
    a WINDOW_UPDATE frame for the bytes it read. A gossip message spans several frames, so
    a loaded validator sent more window updates than data frames, each a Noise-encrypted
    write (~8 % of its CPU). Off, credit is returned in half-window steps. An operator's
    own setting of the variable wins.
    """
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")


class _LargeRpcQueue(RpcQueue):
    """py-libp2p's per-peer outbound queue, sending RPCs of up to MAX_PUBSUB_RPC bytes."""

    def __init__(
        self, max_size: int = OutBoundQueueSize, max_message_size: int = MAX_PUBSUB_RPC
    ) -> None:
        super().__init__(max_size, max(max_message_size, MAX_PUBSUB_RPC))


def allow_large_rpcs() -> None:
    """Let pubsub carry blocks of the runtime's maximum length (4 MiB), not only 1 MiB.

    py-libp2p 0.8.1 caps RPCs at 1 MiB each way: inbound through ``Pubsub``'s
    ``max_inbound_rpc_size`` (passed by ``build_host``), outbound through each peer's
    ``RpcQueue``, which ``Pubsub`` builds with the default size and no way to pass another, so
    its module's name is pointed at a subclass. A block was limited to ~1 MB (~50,000 packed
    readings): under a gateway load near that, one late, small block left a backlog no later
    block could absorb. go-libp2p's pubsub also defaults to 1 MiB; every twinchain node sets
    the same limit, and other implementations only relay topics they subscribe to.
    """
    libp2p_pubsub.RpcQueue = _LargeRpcQueue  # type: ignore[misc]


def seed_unique_seqnos(pubsub: Pubsub) -> None:
    """Start this run's message sequence numbers past any of an earlier run.

    py-libp2p 0.8.1 seeds the counter with the time in whole seconds and adds one per
    message, and a message's id is (sender, seqno). A node that published more than one
    message a second (votes, blocks, transaction batches) and restarts under the same peer id
    reuses ids its peers still remember as seen (``seen_ttl``): they drop its new messages,
    finality votes included, until the counter passes the old run's, which took minutes in
    the devnet. Nanoseconds, as go-libp2p seeds it, cannot be outrun that way.
    """
    pubsub.counter = time.time_ns()


PEER_RECORD_RECHECK_S = 60.0


def cache_signed_peer_records() -> None:
    """Verify a peer's signed peer record once, not on every pubsub RPC it sends; build our
    own once, not for every RPC we send.

    py-libp2p 0.8.1 attaches the sender's signed peer record (an envelope) to every publish
    and control RPC, and the receiver parses it, checks its signature and rewrites the peer's
    addresses twice per RPC (the pubsub read loop and the GossipSub control handler): ~5 % of
    a loaded validator's CPU. A record byte-identical to one already accepted from the same
    peer carries nothing new, so it is accepted without that work; it is checked in full
    again after ``PEER_RECORD_RECHECK_S`` (which also refreshes the addresses' TTL) or when
    it changes. Idempotent; the library's function keeps serving every other caller.
    """
    from libp2p.pubsub import gossipsub as gossipsub_mod
    from libp2p.pubsub import pubsub as pubsub_mod

    original = pubsub_mod.maybe_consume_signed_record
    if getattr(original, "twinchain_cached", False):
        return
    accepted: weakref.WeakKeyDictionary[IHost, dict[ID, tuple[bytes, float]]] = (
        weakref.WeakKeyDictionary()
    )

    def consume(msg: Any, host: IHost, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        record = msg.senderRecord
        seen = accepted.setdefault(host, {})
        now = time.monotonic()
        hit = seen.get(peer_id)
        if hit is not None and hit[0] == record and now - hit[1] < PEER_RECORD_RECHECK_S:
            return True
        ok = bool(original(msg, host, peer_id))
        if ok:
            seen[peer_id] = (record, now)
        else:
            seen.pop(peer_id, None)
        return ok

    consume.twinchain_cached = True  # type: ignore[attr-defined]
    pubsub_mod.maybe_consume_signed_record = consume
    gossipsub_mod.maybe_consume_signed_record = consume

    # The sending side: every RPC asked for our own record, which re-lists the host's
    # addresses (multiaddr parsing, ~4 % of a loaded validator) to see whether it changed.
    # Listen addresses change rarely; the record is re-derived every PEER_RECORD_RECHECK_S.
    original_env = pubsub_mod.env_to_send_in_RPC
    ours: weakref.WeakKeyDictionary[IHost, tuple[tuple[bytes, bool], float]] = (
        weakref.WeakKeyDictionary()
    )

    def own_record(host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        hit = ours.get(host)
        if hit is not None and now - hit[1] < PEER_RECORD_RECHECK_S:
            return hit[0][0], False
        env = original_env(host)
        ours[host] = (env, now)
        return env  # type: ignore[no-any-return]

    pubsub_mod.env_to_send_in_RPC = own_record
    gossipsub_mod.env_to_send_in_RPC = own_record


def guard_inbound_rpc_decoding(host: IHost, pubsub: Pubsub) -> None:
    """Make an undecodable inbound pubsub RPC cost its stream, not the node.

    py-libp2p 0.8.1 bug: ``Pubsub.stream_handler`` catches stream and varint errors but not
    protobuf's ``DecodeError`` from ``RPC.ParseFromString``, so one garbled frame (a peer's
    bug, a connection cut mid-frame, or an attacker) propagated through the swarm's
    connection task and stopped the whole node (seen under gateway load). We register a
    handler that treats it like the errors the library does catch: reset the stream and
    forget the peer's pubsub state (it reconnects on its own if it is still connected).
    """

    async def handler(stream: INetStream) -> None:
        try:
            await pubsub.stream_handler(stream)
        except DecodeError as exc:
            peer_id = stream.muxed_conn.peer_id
            log.debug("undecodable pubsub RPC from %s (%s): dropping the stream", peer_id, exc)
            try:
                await stream.reset()
            except Exception:  # already gone
                pass
            pubsub._handle_dead_peer(peer_id)

    for protocol in pubsub.router.get_protocols():
        host.set_stream_handler(protocol, handler)


def guard_blacklist_teardown(pubsub: Pubsub) -> None:
    """Replace ``pubsub._teardown_if_connected`` with a race-free version.

    py-libp2p 0.8.1 bug: ``Pubsub.add_to_blacklist`` (called when we ban a peer) runs
    ``_teardown_if_connected`` as a service task, which awaits ``stream.reset()`` and then does
    ``del self.peers[peer_id]``. While it awaits, the reset stream's reader reports the peer
    dead and ``_handle_dead_peer`` deletes the same entry first, so the ``del`` raises KeyError;
    an exception in a service task stops the whole Pubsub service, which took the node down
    under load. Ours removes the entry only if it is still the stream we reset.
    """

    async def teardown(peer_id: ID) -> None:
        stream = pubsub.peers.get(peer_id)
        if stream is not None:
            try:
                await stream.reset()
            except Exception:  # already closed: nothing left to reset
                pass
            if pubsub.peers.get(peer_id) is stream:
                del pubsub.peers[peer_id]
        pubsub._forget_all_subscriptions(peer_id)

    pubsub._teardown_if_connected = teardown  # type: ignore[method-assign]


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ConnectionEvent:
    peer_id: str
    connected: bool  # False: a connection closed (the peer may still have others)
    address: str


class ConnectionNotifee(INotifee):
    """Forwards connection events to a channel read by the network service's own task.

    libp2p awaits notifees inside its connection tasks; doing real work there would stall the
    connection, so this only enqueues (and drops, with a warning, if the service lags far).
    """

    def __init__(self, send: trio.MemorySendChannel[ConnectionEvent]) -> None:
        self._send = send

    def _push(self, conn: INetConn, connected: bool) -> None:
        try:
            peer = conn.muxed_conn.peer_id.to_base58()
        except Exception:  # a half-built connection: nothing to report
            return
        address = ""
        try:
            addrs = conn.get_transport_addresses()
            address = str(addrs[0]) if addrs else ""
        except Exception:  # purely informational
            pass
        try:
            self._send.send_nowait(ConnectionEvent(peer, connected, address))
        except trio.WouldBlock:
            log.warning("connection events backlog full; dropped one for %s", peer)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the service is shutting down

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._push(conn, True)
        await trio.lowlevel.checkpoint()

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._push(conn, False)
        await trio.lowlevel.checkpoint()

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        await trio.lowlevel.checkpoint()


def connected_peers(host: IHost) -> list[str]:
    return [p.to_base58() for p in host.get_connected_peers()]


def is_connected(host: IHost, peer_id: str) -> bool:
    return bool(host.get_network().get_connections(ID.from_base58(peer_id)))


def multiaddrs(host: IHost) -> Sequence[str]:
    """The host's listen addresses with ``/p2p/<id>`` (what ``--bootnodes`` takes)."""
    out = []
    for a in host.get_addrs():
        s = str(a)
        if "/p2p/" not in s:
            s += f"/p2p/{host.get_id().to_base58()}"
        out.append(s)
    return out
