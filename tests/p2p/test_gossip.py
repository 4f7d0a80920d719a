"""Gossip among three real libp2p hosts on 127.0.0.1: blocks, votes, transaction batches."""

from __future__ import annotations

from pathlib import Path

import trio
from p2p_helpers import FAST, make_handlers, start_service, wait_until, with_sync

from twinchain.p2p.wire import MAX_GOSSIP_BYTES, GossipKind

# Status refresh far apart: what arrives here must have come by gossip, not by sync.
GOSSIP_ONLY = with_sync(FAST, status_interval=60.0)


async def test_blocks_votes_and_transaction_batches_reach_all_hosts(tmp_path: Path) -> None:
    with make_handlers(3) as (ha, hb, hc):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a", config=GOSSIP_ONLY)
            # b and c only know a: whatever goes between them is forwarded by a.
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=GOSSIP_ONLY
            )
            c = await start_service(
                nursery, hc, tmp_path, "c", bootnodes=(a.listen_addrs[0],), config=GOSSIP_ONLY
            )
            await wait_until(
                lambda: a.mesh_size() == 2 and b.mesh_size() == 1 and c.mesh_size() == 1
            )
            assert {p["peerId"] for p in a.peers()} == {b.peer_id, c.peer_id}

            # Blocks authored on b reach a directly and c through a, one by one.
            for _ in range(3):
                (block,) = hb.author()
                b.publish_block(block.encode())
                h = block.hash
                await wait_until(lambda h=h: ha.chain.best.hash == hc.chain.best.hash == h)
            assert ha.gossip_accepted == hc.gossip_accepted == 3
            assert a.sync.imported == c.sync.imported == 0

            # A burst of votes: pacing and back-pressure deliver every one.
            votes = [b"vote-%03d" % i for i in range(60)]
            for v in votes:
                c.publish_vote(v)
            await wait_until(lambda: len(ha.votes) == len(hb.votes) == len(votes))
            assert sorted(hb.votes) == votes

            # Transactions travel in batches, not one message each.
            txs = [b"tx-%04d" % i + bytes(100) for i in range(300)]
            for i, tx in enumerate(txs):
                b.publish_transaction(tx)
                if i % 100 == 99:
                    await trio.sleep(0.06)  # spread over a few batch intervals
            for h in (ha, hc):
                await wait_until(lambda h=h: sum(map(len, h.tx_batches)) == len(txs))
                assert sorted(tx for batch in h.tx_batches for tx in batch) == txs
                assert len(h.tx_batches) <= 10
            assert b.gossip.published[GossipKind.TRANSACTIONS] == len(ha.tx_batches)

            # A message of a full block's size (py-libp2p's default cap is 1 MiB each way)
            # crosses both hops: b's outbound queue, a's reader and relay, c's reader.
            big = b"vote-big" + bytes(MAX_GOSSIP_BYTES - 1024)
            b.publish_vote(big)
            await wait_until(lambda: big in ha.votes and big in hc.votes)
            nursery.cancel_scope.cancel()


def test_a_peer_whose_queue_never_drains_does_not_hold_back_every_publish() -> None:
    """Back-pressure waits for full peer queues to drain, at most a second per message. A
    peer behind a cut link (its TCP connection not yet known dead) never drains: it cost
    each of our publishes the whole second, so in the chaos run's 3|1 partition the three
    connected validators' blocks and votes went out at one a second and finality stalled.
    Such a queue is left out after one full wait; the queues of the others still count,
    and a queue that drains counts again."""
    from types import SimpleNamespace

    import trio.testing

    from twinchain.p2p.gossip import GossipLimits, GossipService, Topics

    svc = GossipService(
        None,  # type: ignore[arg-type]
        Topics(b"\x00" * 32),
        report=lambda *a: None,
        is_banned=lambda p: False,
        on_block_seen=lambda *a: None,
        limits=GossipLimits(queue_high_water=24, backpressure_max_wait=1.0),
    )
    cut, busy = "cut-peer", "busy-peer"
    queues: dict[str, list[int]] = {cut: [0] * 32, busy: []}
    pubsub = SimpleNamespace(peer_queues=queues)
    waited: list[float] = []

    async def main() -> None:
        for _ in range(5):
            t0 = trio.current_time()
            await svc._wait_for_room(pubsub)  # type: ignore[arg-type]
            waited.append(trio.current_time() - t0)
        # Another peer's queue is full for a moment: that is still waited for.
        queues[busy] = [0] * 30

        async def drain() -> None:
            await trio.sleep(0.3)
            queues[busy] = []

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            t0 = trio.current_time()
            await svc._wait_for_room(pubsub)  # type: ignore[arg-type]
            waited.append(trio.current_time() - t0)
        # The cut peer's queue drains (the link is back), then fills: it counts again.
        queues[cut] = []
        await svc._wait_for_room(pubsub)  # type: ignore[arg-type]
        queues[cut] = [0] * 32
        t0 = trio.current_time()
        await svc._wait_for_room(pubsub)  # type: ignore[arg-type]
        waited.append(trio.current_time() - t0)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert 0.99 <= waited[0] <= 1.1, waited
    assert all(w < 0.05 for w in waited[1:5]), waited
    assert 0.29 <= waited[5] <= 0.4, waited
    assert 0.99 <= waited[6] <= 1.1, waited
