"""Peer liveness: a peer that answers pings stays connected; one that stops answering has its
connection closed within the silence timeout, and the bootnode dialer connects again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio
from libp2p.abc import INetStream
from libp2p.host.ping import ID as PING_PROTOCOL
from p2p_helpers import FAST, make_handlers, start_service, wait_until

QUICK = replace(FAST, ping_interval=0.2, silence_timeout=1.0)


async def test_a_peer_that_answers_is_never_disconnected(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a", config=QUICK)
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=QUICK
            )
            await wait_until(lambda: len(a.peers()) == 1 and len(b.peers()) == 1)
            await trio.sleep(4 * QUICK.silence_timeout)
            assert a.liveness.closed_silent == b.liveness.closed_silent == 0
            assert len(a.peers()) == 1 and len(b.peers()) == 1
            assert b.peer_id in a.liveness.last_answer and a.peer_id in b.liveness.last_answer
            nursery.cancel_scope.cancel()


async def test_a_silent_peer_is_disconnected_and_redialed(tmp_path: Path) -> None:
    async def mute(stream: INetStream) -> None:
        """Read the pings, answer none (a peer behind a cut link)."""
        try:
            while await stream.read(32):
                pass
        except Exception:
            pass

    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a", config=QUICK)
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=QUICK
            )
            await wait_until(lambda: len(b.peers()) == 1)
            assert a.host is not None
            a.host.set_stream_handler(PING_PROTOCOL, mute)
            start = trio.current_time()
            await wait_until(lambda: b.liveness.closed_silent >= 1, 10, "b closes a's connection")
            took = trio.current_time() - start
            assert QUICK.silence_timeout <= took <= QUICK.silence_timeout + 2, took
            # a is b's bootnode: b dials it again.
            await wait_until(lambda: len(b.peers()) == 1, 10, "b redials a")
            nursery.cancel_scope.cancel()
