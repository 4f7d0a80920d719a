"""TCP-level liveness for peer connections: a cut link is noticed in seconds, a paused peer
is not disconnected.

A TCP connection over a link that was cut (a partition, a pulled cable) is not noticed dead
for many minutes, and once the link heals its retransmissions are on exponential back-off: a
validator cut off for 15 s heard nothing from its peers for another ~15 s after the heal
(chaos seed 17, 3|1 partition). Each peer connection's socket is therefore told to give up
when the other end's kernel acknowledges nothing for ``user_timeout_s``
(``TCP_USER_TIMEOUT``), and to probe an idle connection (keep-alive) so that silence is
noticed too. The connection is closed, and the bootnode dialers dial afresh: a new SYN that
gets through as soon as the path is back.

A paused process (SIGSTOP, a long GC) is different: its kernel still acknowledges data and
answers probes, so its connections stay up and it resumes where it stopped. An application
ping could not tell the two apart (it closed a paused validator's connections, and finality
stalled after it resumed).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import trio

log = logging.getLogger("twinchain.p2p")

# Linux's option numbers where the socket module lacks them.
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def tune_socket(sock: Any, user_timeout_s: float) -> bool:
    """Keep-alive probes after 1 s idle, every 1 s, and ``TCP_USER_TIMEOUT``; False where
    the platform does not take them (the connection then works as before)."""
    try:
        idle = max(1, int(user_timeout_s / 3))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, int(user_timeout_s)))
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(user_timeout_s * 1000))
        return True
    except OSError as exc:
        log.debug("TCP liveness options not taken: %s", exc)
        return False


def _sockets(obj: Any, depth: int = 0, seen: set[int] | None = None) -> list[Any]:
    """The sockets of the trio SocketStreams under a libp2p connection (found by walking its
    attributes: muxer, secure session, raw connection), so no library internals are named."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 8:
        return []
    seen.add(id(obj))
    if isinstance(obj, trio.SocketStream):
        return [obj.socket]
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict):
        return []
    found: list[Any] = []
    for value in attrs.values():
        if isinstance(value, str | bytes | int | float | dict | list | tuple | set):
            continue
        found += _sockets(value, depth + 1, seen)
    return found


def tune_connections(connections: list[Any], user_timeout_s: float) -> int:
    """Set the options on every socket of ``connections``; how many sockets took them."""
    return sum(tune_socket(sock, user_timeout_s) for conn in connections for sock in _sockets(conn))


__all__ = ["tune_connections", "tune_socket"]
