"""Cutting: the *batcher* cuts each device's spooled readings into batches, gives them the
device's next sequence numbers, signs them with the device key (summarizing the metrics the
twin's disclosure policy makes public) and stores them, each with its commitment.

A batch leaves when it holds ``max_readings``; every device's partial batch leaves together
``slot_lead_ms`` before each slot starts, in time for its block; and whatever waited
``max_delay_ms`` leaves too. No batch spans two of the chain's telemetry windows (the chain
refuses one that does): readings are grouped by window first, and a window the device has
moved past is cut whole. A batch's sequence number is fixed when it is signed: after any
restart the same bytes are sent, so the chain applies it at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from twinchain.gateway.encoding import encode_batch, encode_commitment
from twinchain.gateway.spool import PendingRow, ReadingT, Segments
from twinchain.gateway.state import Device, GatewayState, now_ms
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import Batch, sign_batch

#: A device's batches as the spool stores them: (seq, readings, segments, encoded batch,
#: encoded commitment).
Cut = list[tuple[int, int, Segments, bytes, bytes]]
#: Readings with their (received at, n) runs.
Part = tuple[list[ReadingT], Segments]


@dataclass
class _Plan:
    """What the batcher takes from one device's pending readings."""

    device: Device
    rows: list[PendingRow]
    chunks: list[Part]  # each one batch: one window, at most max_readings
    rest: Part  # what stays pending
    cut: int  # readings in ``chunks``
    seq0: int
    public: frozenset[int]


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
                # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
                # arrives as the event is set, and the task would never end.
                async with asyncio.timeout(wait):
                    await s.batch_ready.wait()
            s.batch_ready.clear()
            if s.chain.genesis is None or not s.chain.window_ms:
                continue  # never connected: a batch needs the chain's genesis and window
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
        windows = by_window(readings, segs, self.state.chain.window_ms)
        chunks: list[Part] = []
        rest_r: list[ReadingT] = []
        rest_s: Segments = []
        for k, (rs, sg) in enumerate(windows):
            # A window the device has readings after is over for it: cut it whole.
            n = len(rs) if flush or k < len(windows) - 1 else len(rs) // size * size
            for pos in range(0, n, size):
                m = min(size, n - pos)
                chunks.append((rs[pos : pos + m], take(sg, pos, m)))
            if n < len(rs):
                rest_r += rs[n:]
                rest_s += take(sg, n, len(rs) - n)
        cut = len(readings) - len(rest_r)
        if cut == 0:
            return None
        public = self.state.policy.get(d.twin, frozenset())
        return _Plan(d, rows, chunks, (rest_r, rest_s), cut, d.next_seq, public)

    def _sign_and_store(self, plans: list[_Plan]) -> list[tuple[Cut, int | None]]:
        """Sign each plan's batches and store them all (in the spool's thread)."""
        s = self.state
        genesis = s.chain.genesis
        assert s.spool is not None and genesis is not None
        items = []
        outs = []
        for p in plans:
            out: Cut = []
            seq = p.seq0
            for chunk, segs in p.chunks:
                dev = p.device
                for batch, part_segs in _sign(
                    dev.keypair, genesis, dev.twin, seq, chunk, segs, p.public
                ):
                    body, commit = encoded(batch)
                    out.append((seq, len(batch.readings), part_segs, body, commit))
                    seq += 1
            rest, rest_segs = p.rest
            remainder = (rest_segs, rest) if rest else None
            # The newest timestamp per metric of what leaves ``pending`` (a device's readings
            # are in timestamp order per metric: the last one of each metric wins).
            newest = {m: ts for chunk, _ in p.chunks for m, ts, _ in chunk}
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
        rest, rest_segs = p.rest
        d.pending = [PendingRow(rid, d.key, rest_segs, rest)] if rid else []
        d.pending += newer
        d.pending_n = sum(len(r.readings) for r in d.pending)
        s.stats.batches_signed += len(out)
        s.unpacked_n += p.cut
        s.pack_ready.set()


def encoded(batch: Batch) -> tuple[bytes, bytes]:
    """(the batch's encoding, its commitment's): what the spool keeps of a signed batch."""
    return encode_batch(batch), encode_commitment(batch.commitment())


def resign(
    device: Keypair, genesis: bytes, twin: int, body: bytes, public: frozenset[int]
) -> tuple[bytes, bytes]:
    """A stored batch signed again, under its sequence number, with the readings it holds and
    the ``public`` metrics summarized (the chain refused its summaries: NotPublic)."""
    from twinchain.primitives import codec

    old = Batch.wire_type().from_wire(codec.decode(body))
    return encoded(sign_batch(device, genesis, twin, old.seq, old.readings, public=public))


def _sign(
    kp: Keypair,
    genesis: bytes,
    twin: int,
    seq: int,
    readings: list[ReadingT],
    segs: Segments,
    public: frozenset[int],
) -> list[tuple[Batch, Segments]]:
    """``readings`` signed as one batch from ``seq`` on, or as halves (recursively) when a
    public metric's sum would overflow its summary's i64 (values near the limit: rare, but
    never a batch that cannot be signed)."""
    try:
        return [(sign_batch(kp, genesis, twin, seq, readings, public=public), segs)]
    except CodecError:
        if len(readings) < 2:
            raise
    h = len(readings) // 2
    first = _sign(kp, genesis, twin, seq, readings[:h], take(segs, 0, h), public)
    rest = take(segs, h, len(readings) - h)
    return first + _sign(kp, genesis, twin, seq + len(first), readings[h:], rest, public)


def by_window(readings: list[ReadingT], segs: Segments, window_ms: int) -> list[Part]:
    """``readings`` (with their receive runs) grouped by the chain's telemetry window, oldest
    window first, in arrival order within each (so each metric stays in timestamp order)."""
    if not readings:
        return []
    first = readings[0][1] // window_ms
    if all(r[1] // window_ms == first for r in readings):
        return [(readings, segs)]  # the usual case: no boundary in between
    received = [t for t, n in segs for _ in range(n)]
    groups: dict[int, tuple[list[ReadingT], list[int]]] = {}
    for r, t in zip(readings, received, strict=True):
        g = groups.get(r[1] // window_ms)
        if g is None:
            g = groups[r[1] // window_ms] = ([], [])
        g[0].append(r)
        g[1].append(t)
    out: list[Part] = []
    for w in sorted(groups):
        rs, ts = groups[w]
        runs: Segments = []
        for t in ts:
            if runs and runs[-1][0] == t:
                runs[-1] = (t, runs[-1][1] + 1)
            else:
                runs.append((t, 1))
        out.append((rs, runs))
    return out


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


__all__ = ["Cutter", "by_window", "encoded", "resign", "take"]
