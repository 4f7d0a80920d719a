"""Sync between real libp2p hosts: a late host catches up, follows the head, repairs gaps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from p2p_helpers import (
    ALICE,
    FAST,
    make_handlers,
    same_chain,
    start_service,
    wait_until,
    with_sync,
)

from twinchain.p2p.host import parse_bootnode
from twinchain.p2p.sync_session import RequestSession
from twinchain.p2p.wire import (
    FramedStream,
    Kind,
    RangeRequest,
    decode_blocks_response,
    decode_headers_response,
    decode_status_response,
)
from twinchain.primitives.types import Block, Header


async def test_late_host_catches_up_to_finalized_then_follows_the_head(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        ha.author(260, finalize=False)
        ha.author(40, finalize=True)  # finalized up to #300, each with its justification
        ha.author(20)  # best #320, not final
        async with trio.open_nursery() as nursery:
            config = with_sync(FAST, progress_min_blocks=100)
            a = await start_service(nursery, ha, tmp_path, "a", config=config)
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=config
            )
            await wait_until(lambda: same_chain(ha, hb))
            assert hb.chain.finalized.number == 300
            assert hb.chain.finalized.hash == ha.chain.finalized.hash
            assert hb.chain.blocks.justification(hb.chain.finalized.hash) is not None
            for n in (1, 150, 320):
                assert hb.chain.blocks.hash_at(n) == ha.chain.blocks.hash_at(n)
            assert b.sync.imported == 320
            await wait_until(lambda: not b.is_syncing())

            # Following the head: new blocks on a, gossiped, reach b.
            for _ in range(3):
                (block,) = ha.author()
                a.publish_block(block.encode())
            await wait_until(lambda: same_chain(ha, hb))
            (peer,) = b.peers()
            assert peer["peerId"] == a.peer_id and peer["bestNumber"] == 323
            nursery.cancel_scope.cancel()


async def test_gossip_gap_is_repaired_from_the_sender(tmp_path: Path) -> None:
    # No periodic status: only the gossiped block with an unknown parent can reveal the gap.
    config = with_sync(FAST, status_interval=60.0)
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a", config=config)
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=config
            )
            await wait_until(lambda: a.mesh_size() == 1 and b.mesh_size() == 1)
            *_, last = ha.author(5)  # four of them never gossiped
            a.publish_block(last.encode())
            await wait_until(lambda: same_chain(ha, hb))
            assert b.sync.imported == 5
            nursery.cancel_scope.cancel()


async def test_sync_from_a_peer_on_another_branch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # b has its own unfinalized branch; a's longer chain does not attach to b's best block, so
    # sync re-downloads from b's finalized block and b's fork choice takes the longer chain.
    caplog.set_level(logging.INFO, logger="twinchain.p2p")
    with make_handlers(2) as (ha, hb):
        ha.author(3, finalize=True)
        for raw in ha.blocks_by_range(1, 3):
            hb.import_synced(*raw)
        hb.author(2)  # b: #4', #5' on its own
        ha.author(6)  # a: #4..#9
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a")
            await start_service(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: same_chain(ha, hb))
            assert hb.chain.best.number == 9
            assert "on another branch" in caplog.text
            nursery.cancel_scope.cancel()


async def test_sync_protocol_served_to_a_raw_stream(tmp_path: Path) -> None:
    """What a peer written against the wire spec sees: status, headers, blocks, errors."""
    with make_handlers(2) as (ha, hb):
        ha.author(3, finalize=True)
        ha.author(2)
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a")
            b = await start_service(nursery, hb, tmp_path, "b")
            assert b.host is not None
            await b.host.connect(parse_bootnode(a.listen_addrs[0]))
            stream = await b.host.new_stream(ID.from_base58(a.peer_id), [a.sync.protocol])
            session = RequestSession(FramedStream(stream), timeout=10)

            status = decode_status_response(await session.request(b.sync.status()))
            assert (status.best_number, status.finalized_number) == (5, 3)
            assert status.best_hash == ha.chain.best.hash

            headers = decode_headers_response(
                await session.request(RangeRequest(Kind.HEADERS, 2, 10)), 10
            )
            assert [Header.decode(h).number for h in headers] == [2, 3, 4, 5]
            assert Header.decode(headers[0]).hash == ha.chain.blocks.hash_at(2)

            blocks = decode_blocks_response(
                await session.request(RangeRequest(Kind.BLOCKS, 3, 2)), 2
            )
            assert [Block.decode(raw).hash for raw, _ in blocks] == [
                ha.chain.blocks.hash_at(3),
                ha.chain.blocks.hash_at(4),
            ]
            assert blocks[0][1] is not None and blocks[1][1] is None  # #3 final, #4 not
            beyond = await session.request(RangeRequest(Kind.BLOCKS, 6, 5))
            assert decode_blocks_response(beyond, 5) == []
            nursery.cancel_scope.cancel()


class _ReorgingHandler:
    """Serves its first range from branch X, every later one from branch Y: the peer's best
    chain switched between two of our requests (a re-org), as happens when slots fork."""

    def __init__(self, y: object, x: object) -> None:
        self._y, self._x, self.calls = y, x, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._y, name)

    def blocks_by_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        self.calls += 1
        src = self._x if self.calls == 1 else self._y
        return src.blocks_by_range(start, count)  # type: ignore[attr-defined, no-any-return]


async def test_a_peer_that_re_orgs_between_two_ranges_is_not_penalized(tmp_path: Path) -> None:
    with make_handlers(3) as (hy, hx, hb):
        hx.author(4)  # branch X: #1..#4
        hy.chain.propose(ALICE, 2, 2000, [])  # branch Y starts a slot later: other hashes
        hy.author(5)  # Y: #1..#6
        a_handler = _ReorgingHandler(hy, hx)
        config = with_sync(FAST, batch_size=2, retry_pause=0.2)
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, a_handler, tmp_path, "a", config=config)  # type: ignore[arg-type]
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=config
            )
            await wait_until(lambda: hb.chain.best.hash == hy.chain.best.hash)
            assert a_handler.calls >= 2
            assert b.scores.score(a.peer_id) == 0, "an honest re-org cost the peer its score"
            nursery.cancel_scope.cancel()


async def test_a_peer_with_the_blocks_but_not_their_finality_fetches_the_justification(
    tmp_path: Path,
) -> None:
    """b imported a's 60 blocks without justifications (it missed every vote); a finalized
    them. On connecting, b asks a for the justification of a's finalized block and is final
    there at once, with no blocks downloaded."""
    with make_handlers(2) as (ha, hb):
        blocks = ha.author(60)
        for block in blocks:
            hb.chain.import_block(block)
        ha.chain.self_finalize(ALICE, ha.chain.best.hash)
        assert hb.chain.finalized.number == 0 and hb.chain.best.number == 60
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a", config=FAST)
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=FAST
            )
            with trio.fail_after(5):
                await wait_until(lambda: hb.chain.finalized.number == 60)
            assert hb.chain.finalized.hash == ha.chain.finalized.hash
            assert hb.chain.blocks.justification(hb.chain.finalized.hash) is not None
            assert b.sync.imported == 0
            nursery.cancel_scope.cancel()


async def test_a_block_on_a_branch_the_peer_does_not_follow_is_fetched_with_its_ancestry(
    tmp_path: Path,
) -> None:
    """b holds a side branch (#11..#14 off a's #10) that is shorter than a's chain, so no range
    request can reach it; a finality vote naming its tip makes a fetch it by hash."""
    with make_handlers(2) as (ha, hb):
        common = ha.author(10)
        for block in common:
            hb.chain.import_block(block)
        ha.author(8)  # a's best: #18
        fork_parent = hb.chain.best
        side = []
        for i in range(4):
            slot = fork_parent.slot + 100 + i  # other slots than a's: other blocks
            block, _ = hb.chain.propose(ALICE, slot, slot * 1000, [], parent=fork_parent)
            side.append(block)
            fork_parent = block.header
        tip = side[-1].header
        assert ha.chain.blocks.header(tip.hash) is None
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a", config=FAST)
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=FAST
            )
            await wait_until(lambda: b.peer_id in a.sync.peers and a.sync.peers[b.peer_id].session)
            assert a.sync.request_ancestry(b.peer_id, tip.hash, 14)
            with trio.fail_after(10):
                await wait_until(lambda: ha.chain.blocks.header(tip.hash) is not None)
            assert all(ha.chain.blocks.header(blk.hash) is not None for blk in side)
            assert ha.chain.best.number == 18  # a side branch, not a re-org
            nursery.cancel_scope.cancel()


class _FinalizingWhileServing:
    """a's handler; while serving b's first range request it makes b finalize a's branch
    (b's voter finalizing by votes while the request is in flight)."""

    def __init__(self, a: object, on_first_range: object) -> None:
        self._a, self._hook, self.calls = a, on_first_range, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._a, name)

    def blocks_by_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        self.calls += 1
        if self.calls == 1:
            self._hook()  # type: ignore[operator]
        return self._a.blocks_by_range(start, count)  # type: ignore[attr-defined, no-any-return]


async def test_finality_moving_on_during_a_sync_request_does_not_ban_the_peer(
    tmp_path: Path,
) -> None:
    """The chaos run's lost link: Detroit resumed from a pause with a block #68' of its own
    as best, asked Brno for #69.. (parent #68'), and while the request was in flight its
    voter finalized Brno's #68 and #69. Brno's #69 did not attach to #68' ("fork"), and the
    conflict check compared only numbers (finalized #69 >= #69) and banned Brno for 300 s,
    though Brno's chain holds Detroit's finalized block. b here: #4' of its own; a: #1..#6;
    b finalizes a's #5 while a serves #5.. to it."""
    with make_handlers(2) as (ha, hb):
        common = ha.author(3)
        for block in common:
            hb.chain.import_block(block)
        ha_blocks = ha.author(3)  # a: #4..#6
        hb.author(1)  # b: #4' (another slot than a's #4)
        assert hb.chain.best.hash != ha.chain.blocks.hash_at(4)

        def b_finalizes_a_branch() -> None:
            for block in ha_blocks[:2]:
                hb.chain.import_block(block)
            hb.chain.self_finalize(ALICE, ha_blocks[1].hash)  # a's #5

        a_handler = _FinalizingWhileServing(ha, b_finalizes_a_branch)
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, a_handler, tmp_path, "a", config=FAST)  # type: ignore[arg-type]
            b = await start_service(
                nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],), config=FAST
            )
            with trio.fail_after(10):
                await wait_until(lambda: same_chain(ha, hb))
            assert a_handler.calls >= 2
            assert hb.chain.finalized.hash == ha_blocks[1].hash
            assert not b.scores.is_banned(a.peer_id)
            assert b.scores.score(a.peer_id) == 0, "an honest peer was penalized"
            nursery.cancel_scope.cancel()
