"""Connection admission and hardening: who may connect, how many, and bounded negotiation.

Installed into the py-libp2p host by :meth:`ConnectionGuard.install` (the service does it):

- **Refusal in the handshake.** The swarm's transport upgrader is replaced by
  :class:`_GuardedUpgrader`: right after Noise has proved the remote peer id, and before the
  muxer is even negotiated, a peer the :class:`~twinchain.p2p.abc.PeerAuthorizer` refuses (or a
  banned one, or one over ``max_peers``) has its connection closed. It never gets a stream,
  so no identify answer, no gossip, no sync.
- **Caps.** Inbound connections are admitted by our own handler (replacing the swarm's):
  at most ``max_connections_per_ip`` from one IP (handshaking, or established by a peer that
  is neither reserved, authorized nor a bootnode) and ``max_pending_handshakes`` handshakes
  in all; the excess is closed at once, before any byte is read.
- **Bounded multistream-select.** py-libp2p 0.8.1 reads a negotiation message's varint
  length and then that many bytes, unchecked: on the raw TCP socket, before any
  authentication, a length of 2^40 makes ``socket.recv`` allocate it. Its fix upstream came
  after 0.8.1. :class:`BoundedCommunicator` refuses a message over
  :data:`MAX_MULTISTREAM_LINE` after reading the length only, and more than
  :data:`MAX_MULTISTREAM_MESSAGES` in one negotiation; the whole inbound handshake and each
  inbound stream's negotiation are time-limited.

- **Yamux receive windows.** py-libp2p only logs a peer that overruns a stream's window;
  :class:`BoundedYamux` refuses the data (see :class:`_WindowedBuffer`).
- **Pubsub frames.** An RPC over the size limit, which py-libp2p refuses unread, now also
  scores its sender (:func:`report_oversized_rpcs`).

Also fixed here: the swarm's inbound handler waits for the swarm to finish, not for its
connection to close, so every inbound connection ever accepted kept a task and a slot of its
inbound limiter (250) for the node's lifetime; ours returns when the connection closes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import IHost, IMuxedConn, IRawConnection, ISecureConn
from libp2p.exceptions import BaseLibp2pError, ParseError
from libp2p.host import basic_host
from libp2p.io.abc import ReadWriteCloser
from libp2p.io.exceptions import MessageTooLarge
from libp2p.io.utils import read_exactly
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.protocol_muxer import generic_selector
from libp2p.protocol_muxer.exceptions import MultiselectCommunicatorError
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.yamux import yamux as yamux_mod
from libp2p.transport.exceptions import SecurityUpgradeFailure
from libp2p.transport.upgrader import TransportUpgrader
from multiaddr import Multiaddr

from twinchain.p2p.abc import PeerAuthorizer

log = logging.getLogger("twinchain.p2p.guard")

#: Longest multistream-select message read (go-multistream's protocol ids stay far below;
#: ours are ~80 bytes). Larger lengths are refused before reading the body.
MAX_MULTISTREAM_LINE = 1024
#: Messages one negotiation may read: the header and a few proposals. An honest dialer
#: proposes what it speaks (at most four gossip versions); more is someone probing or stalling.
MAX_MULTISTREAM_MESSAGES = 16
#: One refusal log line per (peer or IP, reason) in this many seconds; the rest are counted.
REFUSAL_LOG_INTERVAL_S = 10.0


class MultistreamLimitError(MultiselectCommunicatorError):
    """A multistream-select message over the size limit, or too many in one negotiation."""


class PeerRefused(SecurityUpgradeFailure):
    """A secured connection was closed because its peer may not connect (``reason``)."""

    def __init__(self, peer_id: str, reason: str) -> None:
        super().__init__(f"peer {peer_id} refused: {reason}")
        self.peer_id = peer_id
        self.reason = reason


@dataclass(frozen=True)
class ConnectionLimits:
    """Caps and time limits on connections (``NetworkConfig.connections``)."""

    #: Peers connected at once, inbound and outbound, reserved peers not counted (Substrate
    #: defaults to 25 in + 25 out). Only inbound connections are refused beyond it: our own
    #: dials go to configured bootnodes and reserved nodes only.
    max_peers: int = 50
    #: Inbound connections from one IP: handshaking, or established by a peer that is not
    #: reserved, authorized or a bootnode. Eight: the devnet runs up to eight nodes on
    #: 127.0.0.1, all of which may be handshaking with a restarted node at once.
    max_connections_per_ip: int = 8
    #: Inbound handshakes (TCP accepted, Noise and Yamux not done) in progress at once.
    max_pending_handshakes: int = 64
    #: An inbound connection must finish Noise and the muxer negotiation within this.
    handshake_timeout_s: float = 10.0
    #: An inbound stream must finish its protocol negotiation within this (whole seconds:
    #: py-libp2p takes an int).
    stream_negotiation_timeout_s: int = 5


class BoundedCommunicator(MultiselectCommunicator):
    """py-libp2p's multistream-select communicator with a line limit and a message budget."""

    def __init__(self, read_writer: ReadWriteCloser) -> None:
        super().__init__(read_writer)
        self._messages = 0

    async def read(self) -> str:
        self._messages += 1
        if self._messages > MAX_MULTISTREAM_MESSAGES:
            raise MultistreamLimitError(f"more than {MAX_MULTISTREAM_MESSAGES} messages")
        try:
            length = await _read_length(self.read_writer, MAX_MULTISTREAM_LINE)
            data = await read_exactly(self.read_writer, length) if length else b""
        except MultistreamLimitError:
            raise
        # Every way a read fails (EOF, reset, closed, garbage) is a failed negotiation, which
        # the callers handle by closing the stream or connection.
        except (BaseLibp2pError, OSError, EOFError, trio.BrokenResourceError) as exc:
            raise MultiselectCommunicatorError(f"multistream read failed: {exc}") from exc
        except trio.ClosedResourceError as exc:
            raise MultiselectCommunicatorError("multistream read on a closed stream") from exc
        if not data.endswith(b"\n"):
            raise MultiselectCommunicatorError("multistream message not newline-terminated")
        try:
            return data[:-1].decode()
        except UnicodeDecodeError as exc:
            raise MultiselectCommunicatorError("multistream message not UTF-8") from exc


async def _read_length(reader: ReadWriteCloser, limit: int) -> int:
    """A uvarint read byte by byte, refused as soon as it passes ``limit``."""
    value = shift = 0
    while True:
        b = (await read_exactly(reader, 1))[0]
        value |= (b & 0x7F) << shift
        if value > limit:
            raise MultistreamLimitError(f"multistream message longer than {limit} bytes")
        if not b & 0x80:
            return value
        shift += 7
        if shift > 21:
            raise ParseError("multistream length prefix too long")


def bound_multistream() -> None:
    """Make py-libp2p negotiate with :class:`BoundedCommunicator` everywhere it reads one:
    security and muxer selection (``generic_selector``) and streams (``basic_host``).
    Idempotent; process-wide, as the library's own module attributes are."""
    generic_selector.MultiselectCommunicator = BoundedCommunicator  # type: ignore[misc]
    basic_host.MultiselectCommunicator = BoundedCommunicator  # type: ignore[misc]


class _GuardedUpgrader(TransportUpgrader):
    """The swarm's upgrader, asking the guard about the peer once Noise has named it."""

    def __init__(self, inner: TransportUpgrader, guard: ConnectionGuard) -> None:
        # Share the original's negotiators (their protocol tables) instead of rebuilding them.
        self.security_multistream = inner.security_multistream
        self.muxer_multistream = inner.muxer_multistream
        self._guard = guard

    async def upgrade_security(
        self, raw_conn: IRawConnection, is_initiator: bool, peer_id: ID | None = None
    ) -> ISecureConn:
        secure = await super().upgrade_security(raw_conn, is_initiator, peer_id)
        remote = secure.get_remote_peer().to_base58()
        reason = self._guard.verdict(remote, inbound=not is_initiator)
        if reason is None:
            if not is_initiator:
                self._guard.admitting[raw_conn] = remote
            return secure
        self._guard.refused(remote, _ip_of(raw_conn), reason)
        with trio.CancelScope(shield=True):
            try:
                await secure.close()
            except Exception:  # the peer may already have gone
                pass
        raise PeerRefused(remote, reason)


class ConnectionGuard:
    """Admission of connections for one host (see the module docstring)."""

    def __init__(
        self,
        authorizer: PeerAuthorizer,
        limits: ConnectionLimits,
        *,
        is_banned: Callable[[str], bool] = lambda _: False,
        is_bootnode: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.authorizer = authorizer
        self.limits = limits
        self._is_banned = is_banned
        self._is_bootnode = is_bootnode
        #: Refused connections by reason ("not authorized", "per-IP cap", ...).
        self.refusals: Counter[str] = Counter()
        #: Inbound connections past Noise and admitted, until their muxer is up (raw → peer).
        self.admitting: dict[IRawConnection, str] = {}
        self._pending: Counter[str] = Counter()
        self._established: dict[str, dict[IMuxedConn, str]] = {}
        self._host: IHost | None = None
        self._log_state: dict[tuple[str, str], tuple[float, int]] = {}

    # ------------------------------------------------------------------ installation
    def install(self, host: IHost) -> None:
        """Take over the host's inbound handler and upgrader (before it listens)."""
        bound_multistream()
        swarm: Any = host.get_network()
        swarm.upgrader = _GuardedUpgrader(swarm.upgrader, self)
        swarm._handle_inbound_connection = self._handle_inbound
        cfg = getattr(swarm, "connection_config", None)
        if cfg is not None:
            cfg.inbound_upgrade_timeout = self.limits.handshake_timeout_s
            cfg.inbound_stream_protocol_negotiation_timeout = (
                self.limits.stream_negotiation_timeout_s
            )
        self._host = host

    # ------------------------------------------------------------------ decisions
    def privileged(self, peer_id: str) -> bool:
        """Exempt from the per-IP cap: a node we know by its id."""
        a = self.authorizer
        return a.is_reserved(peer_id) or a.is_authorized(peer_id) or self._is_bootnode(peer_id)

    def verdict(self, peer_id: str, *, inbound: bool) -> str | None:
        """Why ``peer_id`` may not connect now, or None if it may."""
        a = self.authorizer
        if not a.allows(peer_id):
            return "not authorized"
        # A ban holds for reserved peers too: the service would drop them on connecting.
        if self._is_banned(peer_id):
            return "banned"
        if a.is_reserved(peer_id):
            return None
        if inbound and self._host is not None:
            pid = ID.from_base58(peer_id)
            network = self._host.get_network()
            if not network.get_connections(pid):
                peers = {p.to_base58() for p in network.get_connections_map()}
                peers |= set(self.admitting.values())
                count = sum(1 for p in peers if p != peer_id and not a.is_reserved(p))
                if count >= self.limits.max_peers:
                    return "peer slots full"
        return None

    def _ip_count(self, ip: str) -> int:
        established = self._established.get(ip, {})
        return self._pending[ip] + sum(1 for p in established.values() if not self.privileged(p))

    def refused(self, who: str, ip: str, reason: str) -> None:
        """Count a refusal and log it, at most one line per (who, reason) per interval."""
        self.refusals[reason] += 1
        now = time.monotonic()
        key = (who, reason)
        last, suppressed = self._log_state.get(key, (-REFUSAL_LOG_INTERVAL_S, 0))
        if now - last < REFUSAL_LOG_INTERVAL_S:
            self._log_state[key] = (last, suppressed + 1)
            return
        if len(self._log_state) > 1024:  # bounded memory under a scan from many addresses
            self._log_state.clear()
        self._log_state[key] = (now, 0)
        more = f" (+{suppressed} more)" if suppressed else ""
        log.warning("⛔ refused %s%s: %s%s", who, f" from {ip}" if ip else "", reason, more)

    # ------------------------------------------------------------------ inbound handler
    async def _handle_inbound(self, stream: ReadWriteCloser, maddr: Multiaddr) -> None:
        host = self._host
        assert host is not None
        swarm: Any = host.get_network()
        ip = _ip_of(stream)
        limits = self.limits
        reason = None
        if sum(self._pending.values()) >= limits.max_pending_handshakes:
            reason = "too many pending handshakes"
        elif self._ip_count(ip) >= limits.max_connections_per_ip:
            reason = "per-IP cap"
        if reason is not None:
            self.refused(ip or "a connection", "", reason)
            await _close_quietly(stream)
            return
        raw = RawConnection(stream, False)
        self._pending[ip] += 1
        muxed: IMuxedConn | None = None
        try:
            with trio.move_on_after(limits.handshake_timeout_s):
                muxed = await swarm.upgrade_inbound_raw_conn(raw, maddr)
            if muxed is None:
                log.debug("inbound handshake from %s timed out", ip)
        except PeerRefused:
            pass  # counted and logged when refused
        except Exception as exc:  # py-libp2p raises many types for a failed upgrade
            cause = exc.__cause__ if isinstance(exc.__cause__, PeerRefused) else None
            if cause is None:
                log.debug("inbound connection from %s failed: %s", ip, exc)
        finally:
            self._pending[ip] -= 1
            if not self._pending[ip]:
                del self._pending[ip]
            peer = self.admitting.pop(raw, None)
            if muxed is not None and peer is not None:
                self._established.setdefault(ip, {})[muxed] = peer
        if muxed is None:
            await _close_quietly(raw)
            return
        try:
            # The connection's own tasks run in the swarm's nursery; this one only keeps
            # its slot counted until it closes (a cheap poll: a handful of connections).
            while not muxed.is_closed:
                await trio.sleep(0.5)
        finally:
            conns = self._established.get(ip, {})
            conns.pop(muxed, None)
            if not conns:
                self._established.pop(ip, None)


def _ip_of(conn: Any) -> str:
    try:
        addr = conn.get_remote_address()
    except Exception:  # a socket already torn down
        return ""
    return str(addr[0]) if addr else ""


async def _close_quietly(conn: Any) -> None:
    with trio.CancelScope(shield=True):
        try:
            await conn.close()
        except Exception:  # already closed
            pass


# --------------------------------------------------------------------------- yamux


class YamuxWindowExceeded(BaseLibp2pError):
    """A peer sent a Yamux stream more data than the receive window we granted it."""


class _WindowedBuffer(bytearray):
    """A Yamux stream's receive buffer, refusing data past the window granted.

    py-libp2p 0.8.1 only logs a peer that overruns a stream's receive window and buffers the
    data anyway, so a peer could fill memory through a stream nobody reads. An honest peer
    never has more than the stream's target window (at most 16 MiB) unread here; we allow
    one frame more. The library catches our error, marks the stream closed for reading and
    drops the frame (and every later one: the buffer stays full)."""

    def __init__(self, conn: Any, stream_id: int) -> None:
        super().__init__()
        self._conn = conn
        self._stream_id = stream_id

    def extend(self, data: Any) -> None:
        stream = self._conn.streams.get(self._stream_id)
        window = getattr(stream, "target_recv_window", yamux_mod.DEFAULT_WINDOW_SIZE)
        if len(self) + len(data) > window + yamux_mod.MAX_MESSAGE_SIZE:
            raise YamuxWindowExceeded(
                f"stream {self._stream_id}: {len(self) + len(data)} bytes unread, window {window}"
            )
        super().extend(data)


class _StreamBuffers(dict[int, bytearray]):
    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._conn = conn

    def __setitem__(self, stream_id: int, value: bytearray) -> None:
        if type(value) is bytearray:  # the library makes a stream's buffer as bytearray()
            buffer = _WindowedBuffer(self._conn, stream_id)
            bytearray.extend(buffer, value)
            value = buffer
        super().__setitem__(stream_id, value)


class BoundedYamux(yamux_mod.Yamux):
    """py-libp2p's Yamux with receive windows enforced (see :class:`_WindowedBuffer`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffers = _StreamBuffers(self)
        for stream_id, buffer in self.stream_buffers.items():
            buffers[stream_id] = buffer
        self.stream_buffers = buffers


def enforce_yamux_windows() -> None:
    """Make py-libp2p build :class:`BoundedYamux` connections. Its muxer negotiation builds
    ``Yamux`` by name for the Yamux protocol, whatever class the host was given, so the
    module's name is pointed at ours. Idempotent; process-wide."""
    muxer_multistream.Yamux = BoundedYamux  # type: ignore[misc]


# --------------------------------------------------------------------------- pubsub frames

_rpc_reporters: dict[str, Callable[[str], None]] = {}


def report_oversized_rpcs(local_peer: str, report: Callable[[str], None]) -> Callable[[], None]:
    """Call ``report(remote_peer)`` when a peer sends this host a pubsub RPC over the size
    limit. py-libp2p refuses it before reading the body (``MessageTooLarge``) and resets the
    stream, but tells nobody: the sender is not scored and simply opens another stream.
    Returns the function that unregisters ``report``."""
    from libp2p.pubsub import pubsub as pubsub_mod

    original = pubsub_mod.read_varint_prefixed_bytes_limited
    if not getattr(original, "twinchain_reporting", False):

        async def limited(reader: Any, max_length: int) -> bytes:
            try:
                return await original(reader, max_length)
            except MessageTooLarge:
                try:
                    conn = reader.muxed_conn
                    hook = _rpc_reporters.get(conn.secured_conn.get_local_peer().to_base58())
                    if hook is not None:
                        hook(conn.peer_id.to_base58())
                except Exception:  # reporting is best effort; the refusal is what counts
                    log.debug("could not report an oversized pubsub RPC", exc_info=True)
                raise

        limited.twinchain_reporting = True  # type: ignore[attr-defined]
        pubsub_mod.read_varint_prefixed_bytes_limited = limited
    _rpc_reporters[local_peer] = report
    return lambda: _rpc_reporters.pop(local_peer, None) and None
