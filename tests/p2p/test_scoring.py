"""Peer scores, and misbehaving peers dropped while the rest of the network goes on."""

from __future__ import annotations

from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import Pubsub
from p2p_helpers import ChainHandler, make_handlers, start_service, wait_until

from twinchain.p2p import NetworkService, Verdict
from twinchain.p2p.host import (
    GossipConfig,
    build_host,
    is_connected,
    load_or_create_identity,
    peer_id_of,
)
from twinchain.p2p.scoring import PeerScores, Penalty
from twinchain.primitives.keys import Keypair


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_penalties_ban_recover_and_expire() -> None:
    clock = FakeClock()
    scores = PeerScores(ban_threshold=-100, ban_seconds=60, recovery_per_second=1, clock=clock)
    assert not scores.penalize("p", Penalty.INVALID_VOTE, "bad vote")
    assert scores.score("p") == -25
    clock.now += 10
    assert scores.score("p") == -15  # recovers toward zero
    assert not scores.penalize("p", 80, "more")
    assert scores.penalize("p", Penalty.TIMEOUT, "slow")  # -105: banned now
    assert not scores.penalize("p", 10, "again")  # already banned: reported once
    assert scores.is_banned("p") and 59 < scores.banned()["p"] <= 60
    clock.now += 61
    assert not scores.is_banned("p")
    assert scores.score("p") == -50  # on probation: one more serious offence bans again
    assert scores.penalize("p", Penalty.INVALID_BLOCK, "bad block")
    assert scores.score("q") == 0 and not scores.is_banned("q")
    scores.forget_clean()
    assert "q" not in scores.banned()


async def _honest_pair_and_attacker(
    nursery: trio.Nursery, tmp_path: Path, ha: ChainHandler, hb: ChainHandler, hm: ChainHandler
) -> tuple[NetworkService, NetworkService, NetworkService]:
    a = await start_service(nursery, ha, tmp_path, "a")
    b = await start_service(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
    m = await start_service(nursery, hm, tmp_path, "m", bootnodes=(a.listen_addrs[0],))
    await wait_until(lambda: a.mesh_size() == 2 and b.mesh_size() == 1 and m.mesh_size() == 1)
    return a, b, m


async def _assert_dropped_and_network_goes_on(
    a: NetworkService, b: NetworkService, m: NetworkService, ha: ChainHandler, hb: ChainHandler
) -> None:
    await wait_until(lambda: m.peer_id in a.banned_peers())
    assert a.host is not None
    await wait_until(lambda: not is_connected(a.host, m.peer_id))  # type: ignore[arg-type]
    assert m.peer_id not in {p["peerId"] for p in a.peers()}
    assert {p["peerId"] for p in a.peers()} == {b.peer_id}
    # m keeps redialing a (its bootnode) but stays out: a redial may open a socket for a
    # moment before the ban closes it, but m never becomes a peer again.
    end = trio.current_time() + 1.5  # longer than m's first redial back-off
    while trio.current_time() < end:
        assert m.peer_id not in {p["peerId"] for p in a.peers()}
        await trio.sleep(0.05)
    # a and b carry on.
    (block,) = ha.author()
    a.publish_block(block.encode())
    await wait_until(lambda: hb.chain.best.hash == block.hash)


async def test_peer_sending_garbage_frames_is_banned_and_dropped(tmp_path: Path) -> None:
    with make_handlers(3) as (ha, hb, hm):
        async with trio.open_nursery() as nursery:
            a, b, m = await _honest_pair_and_attacker(nursery, tmp_path, ha, hb, hm)
            assert m.host is not None
            stream = await m.host.new_stream(ID.from_base58(a.peer_id), [a.sync.protocol])
            await stream.write(b"\x05hello")  # a frame, but not canonical msgpack
            await _assert_dropped_and_network_goes_on(a, b, m, ha, hb)
            assert a.scores.score(m.peer_id) < -Penalty.GARBAGE + 20  # recovering slowly
            nursery.cancel_scope.cancel()


async def test_peer_gossiping_an_invalid_block_is_banned_and_dropped(tmp_path: Path) -> None:
    with make_handlers(3) as (ha, hb, hm):
        async with trio.open_nursery() as nursery:
            a, b, m = await _honest_pair_and_attacker(nursery, tmp_path, ha, hb, hm)
            # Bob is not an authority of the dev chain: his block's seal is invalid.
            bad, _ = hm.chain.propose(Keypair.from_dev_name("Bob"), 1, 1000, [])
            m.publish_block(bad.encode())
            await _assert_dropped_and_network_goes_on(a, b, m, ha, hb)
            assert hb.chain.blocks.header(bad.hash) is None  # never forwarded to b
            nursery.cancel_scope.cancel()


class RaisingHandler(ChainHandler):
    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        raise RuntimeError("bug in the node")


async def test_a_raising_handler_costs_the_sender_score_but_never_stops_the_service(
    tmp_path: Path,
) -> None:
    with make_handlers(1) as (hb,):
        ha = RaisingHandler()
        try:
            async with trio.open_nursery() as nursery:
                a = await start_service(nursery, ha, tmp_path, "a")
                b = await start_service(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
                await wait_until(lambda: a.mesh_size() == 1 and b.mesh_size() == 1)
                b.publish_vote(b"vote-1")
                await wait_until(lambda: a.scores.score(b.peer_id) == -Penalty.INVALID_VOTE)
                (block,) = hb.author()
                b.publish_block(block.encode())
                await wait_until(lambda: ha.chain.best.hash == block.hash)
                nursery.cancel_scope.cancel()
        finally:
            ha.chain.close()


class _RacingStream:
    """A pubsub stream whose reset lets the dead-peer handler remove the peer first, as the
    stream's reader task does in the real race."""

    def __init__(self, pubsub: Pubsub, peer: ID) -> None:
        self.pubsub, self.peer, self.resets = pubsub, peer, 0

    async def reset(self) -> None:
        self.resets += 1
        await trio.sleep(0)
        self.pubsub.peers.pop(self.peer, None)


async def test_banning_a_peer_whose_stream_dies_meanwhile_does_not_raise(tmp_path: Path) -> None:
    # py-libp2p 0.8.1: Pubsub._teardown_if_connected raised KeyError here, which stopped the
    # Pubsub service (and the node) under load; build_host installs a guarded version.
    _, _, pubsub = build_host(
        load_or_create_identity(tmp_path / "key"),
        multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0"),
        GossipConfig(),
    )
    peer = ID.from_base58(peer_id_of(load_or_create_identity(tmp_path / "peer")))
    stream = _RacingStream(pubsub, peer)
    pubsub.peers[peer] = stream  # type: ignore[assignment]
    pubsub.peer_topics["t"] = {peer}
    with pytest.raises(KeyError):  # the library's own version, for the record
        await Pubsub._teardown_if_connected(pubsub, peer)
    pubsub.peers[peer] = stream  # type: ignore[assignment]
    pubsub.peer_topics["t"] = {peer}
    await pubsub._teardown_if_connected(peer)
    assert stream.resets == 2 and peer not in pubsub.peers and "t" not in pubsub.peer_topics
    # And a peer still registered under a newer stream keeps it.
    newer = _RacingStream(pubsub, peer)
    pubsub.peers[peer] = stream  # type: ignore[assignment]

    async def reconnect() -> None:
        pubsub.peers[peer] = newer  # type: ignore[assignment]

    stream.reset = reconnect  # type: ignore[method-assign]
    await pubsub._teardown_if_connected(peer)
    assert pubsub.peers[peer] is newer


async def test_an_undecodable_pubsub_rpc_costs_the_stream_not_the_node(tmp_path: Path) -> None:
    # py-libp2p 0.8.1 let protobuf's DecodeError out of Pubsub.stream_handler, which stopped
    # the receiving node (seen under gateway load); host.build_host guards it.
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a")
            b = await start_service(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: a.mesh_size() == 1 and b.mesh_size() == 1)
            assert b.host is not None and b._router is not None
            protocols = list(b._router.get_protocols())
            stream = await b.host.new_stream(ID.from_base58(a.peer_id), protocols)
            await stream.write(b"\x04\xff\xff\xff\xff")  # a varint frame, not a protobuf RPC
            await trio.sleep(0.5)
            # a is alive and gossip between the two still works (b's normal stream is intact
            # or re-established).
            (block,) = ha.author()
            a.publish_block(block.encode())
            await wait_until(lambda: hb.chain.best.hash == block.hash)
            (block2,) = hb.author()
            b.publish_block(block2.encode())
            await wait_until(lambda: ha.chain.best.hash == block2.hash)
            nursery.cancel_scope.cancel()
