"""Peer liveness: ping every connected peer, close the connection of one that falls silent.

A TCP connection over a cut link is not noticed dead by TCP for minutes, and after the link
heals its retransmissions are on exponential back-off: a validator cut off for 15 s then hears
nothing from its peers for another ~15 s. Here each connected peer is pinged (libp2p's
``/ipfs/ping/1.0.0``, which the host already serves) every ``interval``; a peer that answers
no ping for ``timeout`` seconds has its connections closed, so the bootnode dialers dial it
afresh (a new SYN, not a backed-off retransmission) and reach it as soon as the path is back.
A peer that answers is never disconnected: only an unanswered ping counts against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio
from libp2p.abc import IHost, INetStream
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.host.ping import perform_ping_roundtrip
from libp2p.peer.id import ID

log = logging.getLogger("twinchain.p2p")


class Liveness:
    """Watches every connected peer of a host; run :meth:`run` in the service's nursery."""

    def __init__(
        self,
        *,
        interval: float,
        timeout: float,
        close_timeout: float = 2.0,
        on_silent: Callable[[str], None] | None = None,
    ) -> None:
        if interval <= 0 or timeout <= interval:
            raise ValueError("liveness: need 0 < interval < timeout")
        self.interval, self.timeout, self.close_timeout = interval, timeout, close_timeout
        self.on_silent = on_silent
        #: Peers being watched, and the trio time each last answered a ping.
        self.last_answer: dict[str, float] = {}
        #: How many connections were closed for silence (for tests and diagnostics).
        self.closed_silent = 0

    async def run(
        self, host: IHost, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start a watcher for each newly connected peer (checked every ``interval``)."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                for pid in list(host.get_network().connections):
                    peer = pid.to_base58()
                    if peer not in self.last_answer and host.get_network().get_connections(pid):
                        self.last_answer[peer] = trio.current_time()
                        nursery.start_soon(self._watch, host, pid, peer)
                await trio.sleep(self.interval)

    async def _watch(self, host: IHost, pid: ID, peer: str) -> None:
        stream: INetStream | None = None
        try:
            while host.get_network().get_connections(pid):
                deadline = self.last_answer[peer] + self.timeout
                answered = False
                with trio.move_on_at(deadline):
                    try:
                        if stream is None:
                            stream = await host.new_stream(pid, [PING_PROTOCOL])
                        await perform_ping_roundtrip(stream)
                        answered = True
                    except Exception as exc:  # reset, closed, refused: try a new stream
                        log.debug("ping of %s failed (%s)", peer, exc)
                        stream = await _reset(stream)
                if answered:
                    self.last_answer[peer] = trio.current_time()
                elif trio.current_time() >= deadline:
                    silent = trio.current_time() - self.last_answer[peer]
                    log.debug("peer %s silent for %.1f s: closing its connection", peer, silent)
                    stream = await _reset(stream)
                    await self._close(host, pid)
                    self.closed_silent += 1
                    if self.on_silent is not None:
                        self.on_silent(peer)
                    return
                await trio.sleep(self.interval)
        finally:
            self.last_answer.pop(peer, None)
            with trio.CancelScope(shield=True):
                await _reset(stream)

    async def _close(self, host: IHost, pid: ID) -> None:
        """Close every connection of ``pid``; a dead link can block the polite close (its
        socket buffer full), so after ``close_timeout`` the sockets are closed under it."""
        net = host.get_network()
        with trio.move_on_after(self.close_timeout):
            try:
                await host.disconnect(pid)
            except Exception:  # already gone
                log.debug("disconnecting %s failed", pid, exc_info=True)
        conns = net.get_connections(pid)
        if not conns:
            return
        log.debug("closing the sockets of silent peer %s", pid)
        for conn in conns:
            with trio.move_on_after(self.close_timeout):
                try:
                    await conn.muxed_conn.secured_conn.close()  # type: ignore[attr-defined]
                except Exception:
                    log.debug("closing a socket of %s failed", pid, exc_info=True)
        with trio.move_on_after(self.close_timeout):
            try:
                await net.close_peer(pid)
            except Exception:
                log.debug("closing %s failed", pid, exc_info=True)


async def _reset(stream: INetStream | None) -> None:
    if stream is None:
        return None
    with trio.move_on_after(0.5):
        try:
            await stream.reset()
        except Exception:
            pass
    return None
