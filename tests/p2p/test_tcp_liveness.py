"""Peer connections carry TCP liveness options: keep-alive probes and TCP_USER_TIMEOUT, so
that a cut link closes them in seconds (a paused peer's kernel keeps acknowledging, so it
stays connected)."""

from __future__ import annotations

import socket
from pathlib import Path

import trio
from libp2p.peer.id import ID
from p2p_helpers import make_handlers, start_service, wait_until

from twinchain.p2p.tcp_liveness import _TCP_USER_TIMEOUT, _sockets


async def test_both_ends_of_a_peer_connection_time_out_in_seconds(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a")
            b = await start_service(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: a.peers() and b.peers(), what="connected")
            for service, other in ((a, b), (b, a)):
                assert service._host is not None
                conns = service._host.get_network().get_connections(ID.from_base58(other.peer_id))
                socks = [s for c in conns for s in _sockets(c)]
                assert socks, "no socket found under the connection"

                def tuned(sock: socket.socket) -> bool:
                    return (
                        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                        and sock.getsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT) == 5000
                    )

                await wait_until(lambda socks=socks: all(map(tuned, socks)), 5, "tuned")
            nursery.cancel_scope.cancel()
