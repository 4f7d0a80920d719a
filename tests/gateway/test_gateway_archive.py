"""The gateway's confidentiality stages without a node: batches cut within one telemetry
window and summarizing only the twin's public metrics, the commitment beside the signed
batch in the spool, archive delivery (archived leaves, staged waits, refused is kept), and a
batch signed again under its sequence number when the policy changed (NotPublic)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from gateway.offline import offline_gateway

from twinchain.gateway.core import Gateway
from twinchain.gateway.cutting import by_window
from twinchain.gateway.state import now_ms
from twinchain.primitives import codec
from twinchain.primitives.keys import verify
from twinchain.protocol.access import Auth, NonceCache, check_request
from twinchain.protocol.jsonrpc import RpcError
from twinchain.protocol.telemetry import (
    DEFAULT_PUBLIC,
    ENERGY,
    POWER,
    TEMPERATURE,
    VIBRATION,
    Batch,
    Commitment,
    check_batch,
)

WINDOW = 5_000
GENESIS = os.urandom(32)


def _gateway(tmp: Path, **batching: Any) -> Gateway:
    return offline_gateway(tmp, first_twin=4, **batching)


def _connected(gw: Gateway) -> None:
    """What connecting would have learnt: the chain, its window, its slot."""
    gw.state.chain.genesis = GENESIS
    gw.state.chain.window_ms = WINDOW
    gw.state.chain.slot_ms = 1000


def _decode_batch(body: bytes) -> Batch:
    return Batch.wire_type().from_wire(codec.decode(body))  # type: ignore[no-any-return]


def _decode_commit(body: bytes) -> Commitment:
    return Commitment.wire_type().from_wire(codec.decode(body))  # type: ignore[no-any-return]


def test_by_window_groups_readings_oldest_window_first_keeping_receive_times() -> None:
    rs = [(1, 4_990, 1), (2, 5_001, 2), (1, 4_999, 3), (1, 5_002, 4), (2, 9_999, 5)]
    segs = [(100, 2), (200, 3)]
    assert by_window(rs, segs, WINDOW) == [
        ([(1, 4_990, 1), (1, 4_999, 3)], [(100, 1), (200, 1)]),
        ([(2, 5_001, 2), (1, 5_002, 4), (2, 9_999, 5)], [(100, 1), (200, 2)]),
    ]
    one = [(1, 5_000, 1), (2, 9_999, 2)]
    assert by_window(one, [(7, 2)], WINDOW) == [(one, [(7, 2)])]  # no boundary: as it was
    assert by_window([], [], WINDOW) == []


async def _cut(gw: Gateway, readings: list[tuple[int, int, int]], *, flush: bool) -> None:
    d = gw.intake.device_for("m1")
    fut = gw.intake.accept(d, readings, "t")
    await gw.intake.commit_queued()
    await fut
    plan = gw.cutter._plan(d, flush=flush)
    assert plan is not None
    results = await gw.state.db(gw.cutter._sign_and_store, [plan])
    for out, rid in results:
        gw.cutter._after(plan, out, rid)


def test_batches_stay_in_one_window_and_summarize_only_public_metrics(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, max_readings=4)
    t0 = 1_750_000_002_000  # 3 s before a window boundary
    readings = [
        (m, t0 + 1000 * i, 100 + i) for i in range(6) for m in (TEMPERATURE, POWER, VIBRATION)
    ]

    async def main() -> list[Any]:
        await gw.open()
        _connected(gw)
        # Not flushed: the window the device moved past leaves whole (as 4 + 4 + 1), the
        # current one only in full batches of 4; the rest waits.
        await _cut(gw, readings, flush=False)
        rows = await gw.state.db(gw.state.spool.unpacked, 100)  # type: ignore[union-attr]
        gw.stop()
        await gw.run([])
        return rows

    rows = asyncio.run(main())
    d = gw.state.devices["m1"]
    assert [r.seq for r in rows] == list(range(len(rows))) and d.next_seq == len(rows)
    cut = sum(r.n for r in rows)
    assert cut + d.pending_n == len(readings)
    assert [r.n for r in rows] == [4, 4, 1, 4, 4]  # 9 readings before the boundary, 9 after
    for r in rows:
        b, c = _decode_batch(r.body), _decode_commit(r.commit)
        assert b.commitment() == c and (c.device, c.seq, c.count) == (d.key, r.seq, r.n)
        assert c.first_ts // WINDOW == c.last_ts // WINDOW, "one window per batch"
        assert {m.metric for m in c.public} <= DEFAULT_PUBLIC and POWER not in {
            m.metric for m in c.public
        }
        assert verify(d.key, c.message(GENESIS, d.twin), c.signature)
    assert d.pending_n == 1 and d.pending[0].readings == [readings[-1]]


class FakeArchive:
    """The node's archive_deliver and twin_disclosure, as the RPC serves them."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.held: dict[tuple[bytes, int], Batch] = {}
        self.answer: dict[int, str] = {}  # seq -> status to answer (default archived)
        self.calls = 0
        self.policy: dict[int, list[int]] = {}
        self.down = False
        self.nonces = NonceCache()  # a replayed request would be refused, as the node does

    async def call(self, method: str, *params: Any) -> Any:
        assert method == "archive_deliver"
        if self.down:
            raise RpcError(-32601, "Method not found")
        self.calls += 1
        batches, auth = params
        account = check_request(
            Auth.from_json(auth),
            GENESIS,
            method,
            {"batches": batches},
            now_ms=now_ms(),
            nonces=self.nonces,
        )
        assert account == self.gw.state.keypair.public
        out = []
        for h in batches:
            b = _decode_batch(bytes.fromhex(h[2:]))
            status = self.answer.get(b.seq, "archived")
            if status == "archived":
                assert (b.device, b.seq) not in self.held, "delivered again once archived"
                self.held[(b.device, b.seq)] = b
            out.append({"device": "0x" + b.device.hex(), "seq": b.seq, "status": status,
                        "reason": "the readings do not give the committed Merkle root"
                        if status == "refused" else None})  # fmt: skip
        return out

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        out = []
        for method, params in calls:
            assert method == "twin_disclosure"
            out.append({"twin": params[0], "public": self.policy.get(params[0], [1, 2, 3, 14])})
        return out


def test_final_batches_leave_the_spool_only_once_archived_and_refused_ones_stay(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path, max_readings=2, archive_retry_s=0.1)
    fake = FakeArchive(gw)
    t0 = 1_750_000_000_000
    readings = [(TEMPERATURE, t0 + i, i) for i in range(8)]

    async def main() -> None:
        s = gw.state
        await gw.open()
        _connected(gw)
        await _cut(gw, readings, flush=True)
        rows = await s.db(s.spool.unpacked, 100)  # type: ignore[union-attr]
        assert [r.seq for r in rows] == [0, 1, 2, 3]
        # Final on chain (what the settler does): still in the spool, waiting for the archive.
        await s.db(s.spool.settle, [r.id for r in rows], [], [], [], None, 9, 1)  # type: ignore[union-attr]
        for r in rows:
            r.final, r.final_ms = 9, 1
            s.to_archive[r.id] = r
            s.archive_n += r.n
        fake.answer = {1: "staged", 2: "refused"}
        await gw.archiver.deliver_due(fake)  # type: ignore[arg-type]
        left = await s.db(s.spool.to_archive)  # type: ignore[union-attr]
        assert [r.seq for r in left] == [1]  # staged: delivered again later
        assert [r.seq for r in await s.db(s.spool.refused)] == [2]  # type: ignore[union-attr]
        assert s.refused_n == 1 and s.archive_n == 2
        # Staged a moment ago: not sent again at once (whole readings), then it is.
        fake.answer = {}
        await gw.archiver.deliver_due(fake)  # type: ignore[arg-type]
        assert len(s.to_archive) == 1
        await asyncio.sleep(0.15)
        await gw.archiver.deliver_due(fake)  # type: ignore[arg-type]
        assert s.to_archive == {} and s.archive_n == 0
        # An archive that does not answer: said in the status, the batches stay.
        fake.down = True
        st = gw.status()
        assert st["archive_refused"] == {"the readings do not give the committed Merkle root": 1}
        assert st["archive_refused_kept"] == 1 and st["readings_archived"] == 6
        gw.stop()
        await gw.run([])

    asyncio.run(main())
    # Every archived batch is exactly what the device signed, readings and all.
    assert sorted(seq for _, seq in fake.held) == [0, 1, 3]
    assert [r for b in sorted(fake.held.values(), key=lambda b: b.seq) for r in b.readings] == (
        readings[0:4] + readings[6:8]
    )
    # Reopened: the refused batch is still there, for the operator; nothing else.
    gw2 = _gateway(tmp_path / "again")
    gw2.cfg.spool = gw.cfg.spool

    async def again() -> tuple[int, int]:
        await gw2.open()
        out = (len(gw2.state.to_archive), gw2.state.refused_n)
        gw2.stop()
        await gw2.run([])
        return out

    assert asyncio.run(again()) == (0, 1)


def test_an_unreachable_archive_is_said_and_its_batches_wait(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    fake = FakeArchive(gw)
    fake.down = True

    async def main() -> dict[str, Any]:
        s = gw.state
        await gw.open()
        _connected(gw)
        await _cut(gw, [(TEMPERATURE, 1_750_000_000_000, 1)], flush=True)
        (row,) = await s.db(s.spool.unpacked, 10)  # type: ignore[union-attr]
        row.final, row.final_ms = 3, 1
        s.to_archive[row.id] = row
        s.archive_n += row.n
        s.unpacked_n -= row.n  # as settling it would
        await gw.archiver.deliver_due(fake)  # type: ignore[arg-type]
        st = gw.status()
        gw.stop()
        await gw.run([])
        return st

    st = asyncio.run(main())
    assert "Method not found" in st["archive_error"]
    assert st["archive_pending"] == 1 and st["backlog"] == 1  # back-pressure counts it


def test_a_batch_the_policy_no_longer_allows_is_signed_again_under_its_seq(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path)
    fake = FakeArchive(gw)
    d = gw.state.devices["m1"]
    t0 = 1_750_000_000_000
    readings = [(TEMPERATURE, t0, 50_000), (VIBRATION, t0, 1_200), (ENERGY, t0, 9)]

    async def main() -> tuple[tuple[bytes, bytes], Any]:
        s = gw.state
        await gw.open()
        _connected(gw)
        await _cut(gw, readings, flush=True)
        (row,) = await s.db(s.spool.unpacked, 10)  # type: ignore[union-attr]
        before = (row.body, row.commit)
        # The owner made vibration private (and energy public) meanwhile: the call failed
        # with NotPublic and the batch's seq is still free.
        fake.policy = {d.twin: [TEMPERATURE, ENERGY]}
        await gw.settler._resign_refused(fake, "0xab", 12, [row])  # type: ignore[arg-type]
        (again,) = await s.db(s.spool.unpacked, 10)  # type: ignore[union-attr]
        assert (row.body, row.commit) == (again.body, again.commit)  # in memory too
        gw.stop()
        await gw.run([])
        return before, again

    (old_body, old_commit), again = asyncio.run(main())
    old, new = _decode_commit(old_commit), _decode_commit(again.commit)
    assert {m.metric for m in old.public} == {TEMPERATURE, VIBRATION}
    assert {m.metric for m in new.public} == {TEMPERATURE, ENERGY}
    assert (new.seq, new.root, new.count) == (old.seq, old.root, old.count)
    assert verify(d.key, new.message(GENESIS, d.twin), new.signature)
    assert again.body != old_body and _decode_batch(again.body).commitment() == new
    assert gw.state.stats.batches_resigned == 1
    assert gw.state.policy[d.twin] == frozenset({TEMPERATURE, ENERGY})
    # The re-signed batch is what the archive will check against the new commitment.
    from twinchain.protocol.telemetry import BatchRecord

    rec = BatchRecord(d.twin, new.root, new.count, new.first_ts, new.last_ts, b"\0" * 32, 13, 0)
    assert check_batch(_decode_batch(again.body), rec) is None
