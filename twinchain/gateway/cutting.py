"""Cutting: the *batcher* cuts each device's spooled readings into batches, gives them the
device's next sequence numbers, signs them with the device key and stores them.

A batch leaves when it holds ``max_readings``; every device's partial batch leaves together
``slot_lead_ms`` before each slot starts, in time for its block; and whatever waited
``max_delay_ms`` leaves too. A batch's sequence number is fixed when it is signed: after any
restart the same bytes are sent, so the chain applies it at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from twinchain.gateway.encoding import encode_batch
from twinchain.gateway.spool import PendingRow, ReadingT, Segments
from twinchain.gateway.state import Device, GatewayState, now_ms
from twinchain.protocol.telemetry import sign_batch

#: A device's batches as the spool stores them: (seq, readings, segments, encoded batch).
Cut = list[tuple[int, int, Segments, bytes]]


@dataclass
class _Plan:
    """What the batcher takes from one device's pending readings."""

    device: Device
    rows: list[PendingRow]
    readings: list[ReadingT]
    segs: Segments
    cut: int
    seq0: int


class Cutter:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.b = state.b
        self.next_flush_ms = 0

    def flush_due(self, t: int) -> bool:
        """Whether ``t`` passed this slot's flush point, ``slot_lead_ms`` before the next
        slot starts (and move the point on to the next slot's)."""
        lead, slot = self.b.slot_lead_ms, self.state.chain.slot_ms
        if not lead or slot <= lead:
            return False
        due = self.next_flush_ms and t >= self.next_flush_ms
        if due or not self.next_flush_ms:
            self.next_flush_ms = ((t + lead) // slot + 1) * slot - lead
        return bool(due)

    async def run(self) -> None:
        """The batcher task."""
        s = self.state
        tick = max(self.b.max_delay_ms / 4000, 0.01)
        while True:
            wait = tick
            if self.next_flush_ms:
                wait = min(tick, max((self.next_flush_ms - now_ms()) / 1000, 0.001))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.batch_ready.wait(), wait)
            s.batch_ready.clear()
            if s.chain.genesis is None:
                continue  # never connected: the batch message needs the chain's genesis
            t = now_ms()
            # A partial batch leaves after max_delay_ms only while the packer keeps up; when
            # signed batches queue anyway, waiting for full ones costs no latency and spares
            # the chain the per-batch and per-device costs (up to ten times the delay).
            busy = s.unpacked_n >= self.b.max_readings_per_xt
            delay = self.b.max_delay_ms * (10 if busy else 1)
            # Slot-aligned: every partial batch leaves together just before a slot starts, in
            # time for its block: the readings waited for that slot anyway, and a device
            # sends one batch a slot instead of one per max_delay_ms (the chain's costs are
            # per batch, not per reading).
            flush = self.flush_due(t) and not busy
            plans = []
            for d in s.devices.values():
                if not d.pending or not d.usable:
                    continue
                oldest = d.pending[0].segs[0][0]
                due = flush or t - oldest >= delay
                if d.pending_n >= self.b.max_readings or due:
                    plan = self._plan(d, flush=due)
                    if plan is not None:
                        plans.append(plan)
            if plans:
                # Every due device in one worker job and one spool transaction (one fsync).
                results = await s.db(self._sign_and_store, plans)
                for plan, (out, rid) in zip(plans, results, strict=True):
                    self._after(plan, out, rid)

    def _plan(self, d: Device, *, flush: bool) -> _Plan | None:
        rows = list(d.pending)
        readings: list[ReadingT] = []
        segs: Segments = []
        for r in rows:
            readings.extend(r.readings)
            segs.extend(r.segs)
        size = self.b.max_readings
        cut = len(readings) if flush else len(readings) // size * size
        if cut == 0:
            return None
        return _Plan(d, rows, readings, segs, cut, d.next_seq)

    def _sign_and_store(self, plans: list[_Plan]) -> list[tuple[Cut, int | None]]:
        """Sign each plan's batches and store them all (in the spool's thread)."""
        s = self.state
        genesis = s.chain.genesis
        assert s.spool is not None and genesis is not None
        size = self.b.max_readings
        items = []
        outs = []
        for p in plans:
            out = []
            seq = p.seq0
            for pos in range(0, p.cut, size):
                chunk = p.readings[pos : min(pos + size, p.cut)]
                batch = sign_batch(p.device.keypair, genesis, p.device.twin, seq, chunk)
                body = encode_batch(batch)
                out.append((seq, len(chunk), take(p.segs, pos, len(chunk)), body))
                seq += 1
            rest = p.readings[p.cut :]
            remainder = (take(p.segs, p.cut, len(rest)), rest) if rest else None
            # The newest timestamp per metric of what leaves ``pending`` (a device's readings
            # are in timestamp order per metric: the last one of each metric wins).
            newest = {m: ts for m, ts, _ in p.readings[: p.cut]}
            items.append((p.device.key, out, [r.id for r in p.rows], remainder, seq, newest))
            outs.append(out)
        rids = s.spool.store_cuts(items)
        return list(zip(outs, rids, strict=True))

    def _after(self, p: _Plan, out: Cut, rid: int | None) -> None:
        s = self.state
        d = p.device
        d.next_seq = max(d.next_seq, p.seq0 + len(out))
        # Rows that arrived while we worked stay, after what was not cut.
        newer = d.pending[len(p.rows) :]
        rest = p.readings[p.cut :]
        d.pending = [PendingRow(rid, d.key, take(p.segs, p.cut, len(rest)), rest)] if rid else []
        d.pending += newer
        d.pending_n = sum(len(r.readings) for r in d.pending)
        s.stats.batches_signed += len(out)
        s.unpacked_n += p.cut
        s.pack_ready.set()


def take(segs: Segments, start: int, count: int) -> Segments:
    """The (received, n) runs covering readings ``start`` .. ``start + count`` of ``segs``."""
    out: Segments = []
    pos = 0
    end = start + count
    for received, n in segs:
        lo, hi = max(pos, start), min(pos + n, end)
        if hi > lo:
            out.append((received, hi - lo))
        pos += n
        if pos >= end:
            break
    return out


__all__ = ["Cutter", "take"]
