"""Persistent peer identity: the key file outlives restarts; it is private to its owner."""

from __future__ import annotations

import stat
from pathlib import Path

import multiaddr
import pytest
import trio
from p2p_helpers import make_handlers, same_chain, start_service, wait_until

from twinchain.p2p.host import (
    GossipConfig,
    IdentityError,
    build_host,
    load_or_create_identity,
    peer_id_of,
)


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "node" / "network" / "secret_ed25519"
    first = peer_id_of(load_or_create_identity(key_file))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert peer_id_of(load_or_create_identity(key_file)) == first
    assert first.startswith("12D3KooW")  # an Ed25519 libp2p peer id
    assert peer_id_of(load_or_create_identity(tmp_path / "other")) != first


def test_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"not a key")
    with pytest.raises(IdentityError):
        load_or_create_identity(key_file)


async def test_same_peer_id_after_restart_and_peers_reconnect(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as outer:
            a = await start_service(outer, ha, tmp_path, "a")
            ids = []
            for _ in range(2):
                async with trio.open_nursery() as nursery:
                    b = await start_service(
                        nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],)
                    )
                    ids.append(b.peer_id)
                    await wait_until(lambda b=b: b.peer_id in {p["peerId"] for p in a.peers()})
                    (block,) = ha.author()
                    a.publish_block(block.encode())
                    await wait_until(lambda: same_chain(ha, hb))
                    nursery.cancel_scope.cancel()
                # a notices b went away before b comes back.
                await wait_until(lambda: not a.peers())
            assert ids[0] == ids[1]
            outer.cancel_scope.cancel()


def test_a_restarted_node_never_reuses_an_earlier_runs_message_ids(tmp_path: Path) -> None:
    # A message id is (sender, seqno). py-libp2p seeds seqnos with whole seconds, so a node
    # that published faster than one message a second and restarted sent ids its peers still
    # held as seen, and they dropped its finality votes (finality stalled for minutes).
    key = load_or_create_identity(tmp_path / "key")
    addr = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    _, _, first_run = build_host(key, addr, GossipConfig())
    last = b""
    for _ in range(10_000):  # a busy validator's messages within the same second
        last = first_run._next_seqno()
    _, _, second_run = build_host(key, addr, GossipConfig())
    assert int.from_bytes(second_run._next_seqno(), "big") > int.from_bytes(last, "big")


def test_a_peers_signed_record_is_verified_once_not_on_every_rpc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # py-libp2p attaches the sender's signed peer record to every pubsub RPC and verified it
    # twice per RPC (~5 % of a loaded validator's CPU); an unchanged record is checked once.
    from libp2p.peer.peerstore import env_to_send_in_RPC
    from libp2p.pubsub import pubsub as pubsub_mod
    from libp2p.pubsub import utils
    from libp2p.pubsub.pb.rpc_pb2 import RPC

    addr = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    sender, _, _ = build_host(load_or_create_identity(tmp_path / "a"), addr, GossipConfig())
    receiver, _, _ = build_host(load_or_create_identity(tmp_path / "b"), addr, GossipConfig())
    checks = []
    real = utils.consume_envelope
    monkeypatch.setattr(utils, "consume_envelope", lambda *a: checks.append(1) or real(*a))
    consume = pubsub_mod.maybe_consume_signed_record
    good = RPC(senderRecord=env_to_send_in_RPC(sender)[0])
    forged = RPC(senderRecord=good.senderRecord[:-1] + bytes([good.senderRecord[-1] ^ 1]))
    me = sender.get_id()
    assert consume(good, receiver, me) and consume(good, receiver, me)
    assert len(checks) == 1
    assert not consume(forged, receiver, me)  # a changed record is checked again: refused
    assert not consume(good, receiver, receiver.get_id())  # not the sender's own record
    assert consume(RPC(), receiver, me)  # no record: nothing to check
    assert consume(good, receiver, me) and len(checks) == 4


def test_our_own_signed_record_is_built_once_not_for_every_rpc(tmp_path: Path) -> None:
    # Building it re-listed the host's addresses for every RPC sent (~4 % of a validator).
    from libp2p.pubsub import gossipsub as gossipsub_mod
    from libp2p.pubsub import pubsub as pubsub_mod

    addr = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    host, _, _ = build_host(load_or_create_identity(tmp_path / "a"), addr, GossipConfig())
    calls = []
    real = host.get_addrs
    host.get_addrs = lambda: calls.append(1) or real()  # type: ignore[method-assign]
    first = pubsub_mod.env_to_send_in_RPC(host)[0]
    assert all(gossipsub_mod.env_to_send_in_RPC(host)[0] == first for _ in range(50))
    assert 1 <= len(calls) <= 2
