"""Caps and hardening against what py-libp2p 0.8.1 leaves open: raw TCP clients and real
py-libp2p hosts against a node's network service on 127.0.0.1."""

from __future__ import annotations

import contextlib
import struct
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.stream_muxer.yamux.yamux import (
    MAX_MESSAGE_SIZE,
    TYPE_DATA,
    YAMUX_HEADER_FORMAT,
)
from p2p_helpers import FAST, ChainHandler, make_handlers, same_chain, wait_until

from twinchain.p2p import NetworkConfig, NetworkService
from twinchain.p2p.guard import MAX_MULTISTREAM_MESSAGES, ConnectionLimits
from twinchain.p2p.host import is_connected, load_or_create_identity, peer_id_of
from twinchain.p2p.wire import MAX_PUBSUB_RPC, FramedStream, encode_uvarint

HEADER = b"/multistream/1.0.0\n"


def limited(**limits: Any) -> NetworkConfig:
    return replace(FAST, connections=ConnectionLimits(**limits))


async def start(
    nursery: trio.Nursery, handler: ChainHandler, tmp_path: Path, name: str, **kwargs: Any
) -> NetworkService:
    kwargs.setdefault("config", FAST)
    kwargs.setdefault("key_file", tmp_path / name / "network" / "secret_ed25519")
    svc = NetworkService(
        handler,
        genesis_hash=handler.chain.genesis_hash,
        listen_port=0,
        node_name=name,
        **kwargs,
    )
    await nursery.start(svc.run)
    return svc


def port_of(svc: NetworkService) -> int:
    return int(svc.listen_addrs[0].split("/tcp/")[1].split("/")[0])


def msg(line: bytes) -> bytes:
    """A multistream-select message: uvarint length, the line, a newline."""
    return encode_uvarint(len(line) + 1) + line + b"\n"


async def read_until_eof(stream: trio.SocketStream, timeout: float) -> bytes:
    """Everything the node sends until it closes the connection; fails after ``timeout``."""
    out = b""
    with trio.fail_after(timeout):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:  # reset by the node
                return out
            if not chunk:
                return out
            out += chunk


async def read_header(stream: trio.SocketStream) -> None:
    """The node's multistream header: it admitted the connection and is negotiating."""
    got = b""
    with trio.fail_after(10):
        while len(got) < len(msg(HEADER[:-1])):
            chunk = await stream.receive_some(64)
            assert chunk, "closed before the multistream header"
            got += chunk
    assert got == msg(HEADER[:-1])


@pytest.fixture
def read_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every read the node asks of a TCP socket (socket.recv allocates it)."""
    sizes: list[int] = []
    original = TrioTCPStream.read

    async def read(self: TrioTCPStream, n: int | None = None) -> bytes:
        sizes.append(n or 0)
        return await original(self, n)

    monkeypatch.setattr(TrioTCPStream, "read", read)
    return sizes


# --------------------------------------------------------------------------- caps


async def test_per_ip_cap_closes_excess_inbound_connections_at_once(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        ha.author(2)
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a", config=limited(max_connections_per_ip=2))
            port = port_of(a)
            held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
            for s in held:
                await read_header(s)
            excess = await trio.open_tcp_stream("127.0.0.1", port)
            t0 = time.monotonic()
            assert await read_until_eof(excess, 5) == b"", "closed before any byte"
            assert time.monotonic() - t0 < 2
            assert a.refused_connections() == {"per-IP cap": 1}
            for s in held:
                await s.aclose()
            # The slots come back, and a real peer from the same IP is served.
            await wait_until(lambda: not a.guard._pending, what="handshakes released")
            await start(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: same_chain(ha, hb), what="b syncs")
            nursery.cancel_scope.cancel()
    await excess.aclose()


async def test_per_ip_cap_counts_established_strangers_not_known_nodes_until_they_close(
    tmp_path: Path,
) -> None:
    cap1 = limited(max_connections_per_ip=1)
    with make_handlers(4) as (ha, hk, ho, hs):
        async with trio.open_nursery() as nursery:
            # An authorized node's connection does not count against its IP ...
            known = peer_id_of(load_or_create_identity(tmp_path / "known" / "network" / "k"))
            a = await start(nursery, ha, tmp_path, "a", config=cap1, authorized=[known])
            await start(
                nursery,
                hk,
                tmp_path,
                "known",
                bootnodes=(a.listen_addrs[0],),
                key_file=tmp_path / "known" / "network" / "k",
            )
            await wait_until(lambda: len(a.peers()) == 1, what="the known node connects")
            probe = await trio.open_tcp_stream("127.0.0.1", port_of(a))
            await read_header(probe)
            await probe.aclose()
            # ... an open node's stranger's does, until it closes (py-libp2p's own inbound
            # handler kept every inbound connection's slot for the node's lifetime).
            o = await start(nursery, ho, tmp_path, "open", config=cap1)
            async with trio.open_nursery() as stranger_scope:
                await start(stranger_scope, hs, tmp_path, "s", bootnodes=(o.listen_addrs[0],))
                await wait_until(lambda: len(o.peers()) == 1, what="the stranger connects")
                refused = await trio.open_tcp_stream("127.0.0.1", port_of(o))
                assert await read_until_eof(refused, 5) == b""
                assert o.refused_connections() == {"per-IP cap": 1}
                stranger_scope.cancel_scope.cancel()
            await wait_until(lambda: not o.guard._established, what="its slot released")
            admitted = await trio.open_tcp_stream("127.0.0.1", port_of(o))
            await read_header(admitted)
            await admitted.aclose()
            await refused.aclose()
            nursery.cancel_scope.cancel()


async def test_max_peers_refuses_inbound_beyond_the_cap_but_never_reserved(
    tmp_path: Path,
) -> None:
    with make_handlers(4) as (ha, hb, hc, hr):
        async with trio.open_nursery() as nursery:
            r = await start(nursery, hr, tmp_path, "reserved")
            a = await start(
                nursery,
                ha,
                tmp_path,
                "a",
                config=limited(max_peers=1),
                reserved_nodes=[r.listen_addrs[0]],
            )
            boot = (a.listen_addrs[0],)
            b = await start(nursery, hb, tmp_path, "b", bootnodes=boot)
            await wait_until(lambda: b.peer_id in {p["peerId"] for p in a.peers()})
            c = await start(nursery, hc, tmp_path, "c", bootnodes=boot)
            await wait_until(lambda: a.refused_connections().get("peer slots full", 0) >= 2)
            assert a.host is not None
            assert is_connected(a.host, b.peer_id) and is_connected(a.host, r.peer_id)
            assert not is_connected(a.host, c.peer_id)
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- multistream


async def test_oversized_multistream_length_is_refused_before_reading_it(
    tmp_path: Path, read_sizes: list[int]
) -> None:
    with make_handlers(2) as (ha, hb):
        ha.author(2)
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a")
            raw = await trio.open_tcp_stream("127.0.0.1", port_of(a))
            await read_header(raw)
            # py-libp2p alone would socket.recv(2**40): ask the allocator for a TiB.
            await raw.send_all(encode_uvarint(2**40) + b"x" * 100)
            assert await read_until_eof(raw, 5) == b""
            assert max(read_sizes) <= 64 * 1024, max(read_sizes)
            await start(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: same_chain(ha, hb), what="b syncs; the node still serves")
            nursery.cancel_scope.cancel()
    await raw.aclose()


async def test_slow_multistream_negotiation_is_cut_off_and_the_node_serves_others(
    tmp_path: Path,
) -> None:
    with make_handlers(2) as (ha, hb):
        ha.author(2)
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a", config=limited(handshake_timeout_s=1.5))
            raw = await trio.open_tcp_stream("127.0.0.1", port_of(a))
            await read_header(raw)
            t0 = time.monotonic()
            # The header, then a proposal dripped a byte every 0.3 s: never a whole message.
            await raw.send_all(msg(HEADER[:-1]) + encode_uvarint(50))
            await start(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))

            async def drip() -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    while True:
                        await raw.send_all(b"/")
                        await trio.sleep(0.3)

            async with trio.open_nursery() as dripping:
                dripping.start_soon(drip)
                assert await read_until_eof(raw, 6) == b""
                dripping.cancel_scope.cancel()
            elapsed = time.monotonic() - t0
            assert 1.0 < elapsed < 5, elapsed
            await wait_until(lambda: same_chain(ha, hb), what="b syncs meanwhile")
            nursery.cancel_scope.cancel()
    await raw.aclose()


async def test_endless_multistream_proposals_are_cut_off(tmp_path: Path) -> None:
    with make_handlers(1) as (ha,):
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a")
            raw = await trio.open_tcp_stream("127.0.0.1", port_of(a))
            await read_header(raw)
            proposals = b"".join(msg(f"/nothing/{i}".encode()) for i in range(100))
            await raw.send_all(msg(HEADER[:-1]) + proposals)
            answers = await read_until_eof(raw, 5)
            # The header and 15 proposals read, each answered "na"; the 17th read refused.
            assert answers == msg(b"na") * (MAX_MULTISTREAM_MESSAGES - 1)
            nursery.cancel_scope.cancel()
    await raw.aclose()


# --------------------------------------------------------------------------- our frames


async def test_oversized_sync_frame_is_refused_unread_and_the_peer_banned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fills: list[int] = []
    original = FramedStream._fill

    async def fill(self: FramedStream, n: int) -> None:
        fills.append(n)
        await original(self, n)

    monkeypatch.setattr(FramedStream, "_fill", fill)
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a")
            b = await start(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: b.peer_id in {p["peerId"] for p in a.peers()})
            assert b.host is not None
            stream = await b.host.new_stream(ID.from_base58(a.peer_id), [a.sync.protocol])
            fills.clear()
            await stream.write(encode_uvarint(1 << 30) + b"\x00" * 64)
            await wait_until(lambda: b.peer_id in a.banned_peers(), what="b banned")
            assert a.scores.score(b.peer_id) <= -100
            assert max(fills) <= 64, "the node read the length prefix only"
            assert a.host is not None
            await wait_until(lambda: not is_connected(a.host, b.peer_id), what="b dropped")  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()


async def test_oversized_pubsub_rpc_is_refused_and_its_sender_banned(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a")
            b = await start(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: b.peer_id in {p["peerId"] for p in a.peers()})
            assert b.host is not None
            stream = await b.host.new_stream(ID.from_base58(a.peer_id), [PROTOCOL_ID_V11])
            await stream.write(encode_uvarint(MAX_PUBSUB_RPC + 1) + b"\x00" * 64)
            await wait_until(lambda: b.peer_id in a.banned_peers(), what="b banned")
            nursery.cancel_scope.cancel()


async def test_a_peer_overrunning_a_yamux_receive_window_is_not_buffered(tmp_path: Path) -> None:
    """py-libp2p alone logs the overrun and buffers it all (8.4 MB here, without limit)."""
    flood_protocol = TProtocol("/twinchain-test/flood/1")
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start(nursery, ha, tmp_path, "a")
            b = await start(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: b.peer_id in {p["peerId"] for p in a.peers()})
            flooded = trio.Event()

            async def flood(stream: Any) -> None:
                # Raw DATA frames, twice the largest window a grants (it never reads anyway).
                conn, sid = stream.muxed_conn, stream.muxed_stream.stream_id
                chunk = b"\0" * 60_000
                for _ in range(140):
                    header = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, 0, sid, len(chunk))
                    await conn._write_frame(header + chunk)
                flooded.set()
                await trio.sleep_forever()

            assert a.host is not None and b.host is not None
            b.host.set_stream_handler(flood_protocol, flood)
            # a opens a stream and never reads from it.
            stream: Any = await a.host.new_stream(ID.from_base58(b.peer_id), [flood_protocol])
            with trio.fail_after(20):
                await flooded.wait()
            conn, sid = stream.muxed_conn, stream.muxed_stream.stream_id
            await wait_until(lambda: conn.streams[sid].recv_closed, what="the stream cut off")
            window = conn.streams[sid].target_recv_window
            assert 140 * 60_000 >= 2 * window  # the flood overran the window
            assert len(conn.stream_buffers[sid]) <= window + MAX_MESSAGE_SIZE
            assert is_connected(a.host, b.peer_id)  # the connection's other streams go on
            nursery.cancel_scope.cancel()
