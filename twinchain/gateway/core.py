"""The gateway: accept readings from sources, spool them, batch and sign them per device,
submit them in telemetry extrinsics, and forget them once they are in a finalized block.

Tasks (one asyncio loop, uvloop when installed; SQLite work in one worker thread):

* ``accept`` (called by the sources, synchronously and in arrival order) checks each reading
  (known device, registered metric, newer than the device's last one for the metric, not
  from the future) and queues it; the *committer* writes everything queued in one SQLite
  transaction (group commit) and only then resolves the sources' futures: a source
  acknowledges a reading after it is durable, never before.
* the *batcher* cuts each device's spooled readings into batches (``max_readings``; every
  device's partial batch ``slot_lead_ms`` before each slot starts, in time for its block; or
  whatever waited ``max_delay_ms``), gives them the device's next sequence number, signs them
  with the device key and stores them;
* the *packer* puts up to ``max_batches_per_xt`` batches into a ``Telemetry.submit``
  extrinsic signed by the gateway key with the next nonce (immortal era), stores its exact
  bytes, then submits them, keeping a window of extrinsics unsettled (at most
  ``max_in_flight``; halved when one takes longer than ``target_latency_s`` to finalize,
  grown while they are fast: the chain is not fed faster than it finalizes);
* the *resubmitter* sends an unsettled extrinsic again after ``resubmit_after_s``, then after
  twice as long each time up to ``resubmit_max_s`` (with jitter), except one whose nonce the
  best chain has already used: that one is in a block that is not final yet, and sending it
  again only earns ``Stale``; finality settles it (it is sent again only if a reorg frees its
  nonce);
* the *head follower* tracks the best block: when finality falls more than
  ``finality_lag_alert`` blocks behind it, the gateway says so in its log (then every 30 s,
  and once when it recovers) and status, and every extrinsic just waits; once finality
  resumes the settler settles them and the rest are checked at once;
* the *settler* follows the node's finalized heads: an extrinsic whose nonce is used in a
  finalized block is settled by reading its first batch's record (in its device's
  ``Telemetry.BatchChunks``) at that block: there, all its batches are on chain (a call
  applies whole); absent, the call failed, and each of its batches is either found, given
  back to the packer (its sequence number is still free) or counted lost (a later one took
  the device past it).

Exactly once: a batch's sequence number is fixed when it is signed, and after any restart the
stored extrinsic bytes are sent again unchanged: the chain refuses a used nonce and a used
sequence number, so nothing is applied twice, and nothing leaves the spool before a
finalized block holds it. Back-pressure: when the spool holds ``high_water`` readings that
are not final, :meth:`Gateway.wait_space` blocks the sources until it drains to
``low_water``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twinchain.client import AsyncClient, NodeUnavailable, Subscription
from twinchain.client.common import Codec
from twinchain.gateway.config import GatewayConfig
from twinchain.gateway.encoding import CachedKeypair, XtBuilder, encode_batch
from twinchain.gateway.payloads import Metrics, Rejected
from twinchain.gateway.spool import BatchRow, PendingRow, ReadingT, Segments, Spool, XtRow, unpack
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import extrinsic_hash
from twinchain.protocol.jsonrpc import RpcError, from_hex, to_hex
from twinchain.protocol.telemetry import (
    BATCH_CHUNK,
    DEFAULT_METRICS,
    MAX_FUTURE_DRIFT_MS,
    chunk_record,
    sign_batch,
)

log = logging.getLogger("twinchain.gateway")
T = TypeVar("T")

LATENCY_BUCKET_MS = 50
LATENCY_BUCKETS = 1200  # 60 s; later lands in the last bucket
LAG_LOG_EVERY_S = 30.0  # while finality is stalled, say so this often


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _blocks(n: int) -> str:
    return f"{n} block" if n == 1 else f"{n} blocks"


@dataclass
class Device:
    name: str
    key: bytes
    keypair: Keypair
    twin: int
    topic: str | None
    next_seq: int = 0
    usable: bool = True  # False: the chain says it is not ours to submit
    problem: str = ""
    pending: list[PendingRow] = field(default_factory=list)
    pending_n: int = 0
    last_ts: dict[int, int] = field(default_factory=dict)  # newest accepted ts per metric


@dataclass
class InFlight:
    row: XtRow
    batches: list[BatchRow]
    submitted_at: float = 0.0
    tries: int = 0  # submissions since it was signed (or since finality last resumed)
    due_at: float = 0.0  # when to send it again (or check it, while ``on_best``)
    on_best: bool = False  # its nonce is used on the best chain: finality settles it


@dataclass
class _Cut:
    """What the batcher takes from one device's pending readings."""

    device: Device
    rows: list[PendingRow]
    readings: list[ReadingT]
    segs: Segments
    cut: int
    seq0: int


@dataclass
class _Accepted:
    groups: list[tuple[Device, list[ReadingT]]]  # readings kept, per device
    received: int
    future: asyncio.Future[int]
    meta: dict[str, bytes] | None


class Stats:
    """Counters of this run (the spool keeps the lifetime totals) and rate windows."""

    def __init__(self) -> None:
        self.received: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.spooled = 0
        self.batches_signed = 0
        self.xts_submitted = 0
        self.submit_attempts = 0  # every author_submitExtrinsic sent, accepted or not
        self.submit_errors: dict[str, int] = {}
        self.readings_final = 0
        self.batches_final = 0
        self.batches_lost = 0
        self.batches_requeued = 0
        self.latency = [0] * LATENCY_BUCKETS  # reading arrival -> seen finalized
        self.chain_latency = [0] * LATENCY_BUCKETS  # extrinsic submitted -> seen finalized
        self._recent: deque[tuple[float, int, int]] = deque()  # (t, spooled, final)

    def tick(self) -> tuple[float, float]:
        """(spooled readings/s, finalized readings/s) over the last ~10 s."""
        t = time.monotonic()
        self._recent.append((t, self.spooled, self.readings_final))
        while len(self._recent) > 2 and t - self._recent[0][0] > 10:
            self._recent.popleft()
        t0, s0, f0 = self._recent[0]
        dt = t - t0
        if dt <= 0:
            return 0.0, 0.0
        return (self.spooled - s0) / dt, (self.readings_final - f0) / dt

    def observe_latency(self, ms: int, count: int, hist: list[int] | None = None) -> None:
        b = min(max(ms, 0) // LATENCY_BUCKET_MS, LATENCY_BUCKETS - 1)
        (self.latency if hist is None else hist)[b] += count

    def percentile(self, q: float, hist: list[int] | None = None) -> float | None:
        hist = self.latency if hist is None else hist
        total = sum(hist)
        if not total:
            return None
        target = q * total
        acc = 0
        for i, c in enumerate(hist):
            acc += c
            if acc >= target:
                return (i + 1) * LATENCY_BUCKET_MS / 1000
        return None


class Gateway:
    def __init__(self, cfg: GatewayConfig, *, on_settled: Callable[[], None] | None = None):
        self.cfg = cfg
        self.b = cfg.batching
        self.keypair = CachedKeypair.of(cfg.gateway_keypair())
        keys = cfg.device_keypairs()
        self.devices = {
            d.name: Device(d.name, d.key, CachedKeypair.of(keys[d.name]), d.twin, d.topic)
            for d in cfg.devices
        }
        self.by_topic = {d.topic: d for d in self.devices.values() if d.topic}
        self.by_key = {d.key: d for d in self.devices.values()}
        self.metrics = Metrics({m[0]: (m[1], m[3]) for m in DEFAULT_METRICS})
        self.stats = Stats()
        self.on_settled = on_settled
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self.spool: Spool | None = None
        self._queue: list[_Accepted] = []
        self._queued_event = asyncio.Event()
        self._batch_event = asyncio.Event()
        self._pack_event = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.backpressure = False
        self.pauses = 0
        self.window = float(min(4, cfg.batching.max_in_flight))  # extrinsics in flight, adaptive
        self._window_cut_at = -1e9
        self._slow_start = True
        self._pause_logged = -1e9
        self.inflight: dict[int, InFlight] = {}
        self.unpacked_n = 0  # readings in batches not yet packed
        self.genesis: bytes | None = None
        self.spec_version = 0
        self.slot_ms = 0  # the chain's slot length, once connected (0: not known)
        self._next_flush_ms = 0
        self.submit_index: tuple[int, int] | None = None
        self.next_nonce = 0
        self.rpc: AsyncClient | None = None
        self.connected = False
        self.node_error = ""
        self.finalized_number = 0
        self.best_number = 0
        self.stalled_since: float | None = None  # finality lag above finality_lag_alert
        self._stall_ended = -1e9
        self._lag_logged = -1e9
        self.last_final: tuple[bytes, int, int] | None = None  # (device, seq, block)
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self._reject_log: dict[str, float] = {}
        self._codec: Codec | None = None
        self._xt_builder: XtBuilder | None = None
        self._submits: set[asyncio.Task[bool]] = set()

    # ------------------------------------------------------------------ life cycle
    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def open(self) -> None:
        """Open the spool and reload what a previous run left in it."""
        self.spool = await self.db(Spool, self.cfg.spool)
        sp = self.spool
        for (key, metric), ts in (await self.db(sp.load_last_ts)).items():
            dev = self.by_key.get(key)
            if dev is not None:
                dev.last_ts[metric] = ts
        seqs = await self.db(sp.seqs)
        for d in self.devices.values():
            d.next_seq = seqs.get(d.key, 0)
        for row in await self.db(sp.load_pending):
            d = self.by_key.get(row.device)
            if d is None:
                log.warning(
                    "spool holds readings of a device no longer configured: 0x%s", row.device.hex()
                )
                continue
            d.pending.append(row)
            d.pending_n += len(row.readings)
        g = await self.db(sp.get_meta, "genesis")
        self.genesis = g
        v = await self.db(sp.get_meta, "spec_version")
        self.spec_version = int(v.decode()) if v else 0
        m = await self.db(sp.get_meta, "metrics")
        if m:
            self.metrics = Metrics({int(k): (n, s) for k, (n, s) in json.loads(m).items()})
        for xt in await self.db(sp.xts):
            self.inflight[xt.nonce] = InFlight(xt, await self.db(sp.xt_batches, xt.nonce))
        p, u, s, _ = await self.db(sp.batch_totals)
        self.unpacked_n = u
        lf = await self.db(sp.get_meta, "last_finalized")
        if lf:
            dev, seq, blk = unpack(lf)
            self.last_final = (bytes(dev), seq, blk)
        log.info(
            "spool %s: %d readings waiting, %d batched, %d in %d unsettled extrinsics",
            self.cfg.spool,
            p,
            u,
            s,
            len(self.inflight),
        )
        self._update_space()

    async def run(self, sources: Sequence[Callable[[Gateway], Awaitable[None]]] = ()) -> None:
        """Run until :meth:`stop` (or a task fails)."""
        if self.spool is None:
            await self.open()
        spawn = asyncio.create_task
        self._tasks = [
            spawn(self._committer(), name="committer"),
            spawn(self._batcher(), name="batcher"),
            spawn(self._node_loop(), name="node"),
        ] + [spawn(s(self), name=f"source-{i}") for i, s in enumerate(sources)]
        stop = spawn(self._stopping.wait())
        try:
            waiting = {*self._tasks, stop}
            while not stop.done():
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is not stop and not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                    if t.get_name().startswith("source-"):
                        log.info("%s has no more readings", t.get_name())  # the rest go on
        finally:
            stop.cancel()
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(BaseException):
                    await t
            # Readings accepted but not committed were never acknowledged: dropping them is
            # safe (the sources deliver them again); committing them now is better.
            if self._queue:
                with contextlib.suppress(Exception):
                    await self._commit_queued()
            if self.rpc is not None:
                await self.rpc.close()
            if self.spool is not None:
                await self.db(self.spool.close)
            self._db.shutdown(wait=True)

    def stop(self) -> None:
        self._stopping.set()

    # ------------------------------------------------------------------ intake
    def device_for(self, name: str | None, topic: str | None = None) -> Device:
        d = self.devices.get(name) if name else None
        if d is None and topic is not None:
            d = self.by_topic.get(topic)
        if d is None:
            raise Rejected("unknown_device", f"device {name or topic!r} is not configured")
        if not d.usable:
            raise Rejected("unknown_device", f"device {d.name!r}: {d.problem}")
        return d

    def reject(self, source: str, exc: Rejected, context: str = "") -> None:
        """Count a refusal and log it (at most once a second per reason)."""
        self.stats.rejected[exc.reason] = self.stats.rejected.get(exc.reason, 0) + 1
        t = time.monotonic()
        if t - self._reject_log.get(exc.reason, 0.0) >= 1.0:
            self._reject_log[exc.reason] = t
            n = self.stats.rejected[exc.reason]
            log.warning("rejected from %s%s: %s (%d so far)", source, context, exc, n)

    async def wait_space(self) -> None:
        """Back-pressure: returns when the spool may take more readings."""
        await self._space.wait()

    def accept(
        self,
        device: Device,
        readings: Sequence[ReadingT],
        source: str,
        *,
        meta: dict[str, bytes] | None = None,
        received: int | None = None,
    ) -> asyncio.Future[int]:
        """Check and queue ``readings`` of one device (synchronously, in arrival order).

        Returns a future resolved with the number of readings kept once they are durable.
        Readings that fail a check are counted and logged, and the rest go on."""
        return self.accept_many([(device, readings)], source, meta=meta, received=received)

    def accept_many(
        self,
        groups: Sequence[tuple[Device, Sequence[ReadingT]]],
        source: str,
        *,
        meta: dict[str, bytes] | None = None,
        received: int | None = None,
    ) -> asyncio.Future[int]:
        """:meth:`accept` for readings of several devices that arrived together (a simulator
        tick): one future, resolved once all of them are durable."""
        horizon = now_ms() + MAX_FUTURE_DRIFT_MS
        kept: list[tuple[Device, list[ReadingT]]] = []
        n_in = n_ok = 0
        for device, readings in groups:
            n_in += len(readings)
            ok = self._check(device, readings, source, horizon)
            if ok:
                kept.append((device, ok))
                n_ok += len(ok)
        self.stats.received[source] = self.stats.received.get(source, 0) + n_in
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not n_ok and not meta:
            fut.set_result(0)
            return fut
        self._queue.append(_Accepted(kept, received or now_ms(), fut, meta))
        self._queued_event.set()
        return fut

    def _check(
        self, device: Device, readings: Sequence[ReadingT], source: str, horizon: int
    ) -> list[ReadingT]:
        """The readings that pass the checks (the others are counted and logged): a
        registered metric, newer than the device's last one of that metric, not from the
        future."""
        last_ts = device.last_ts
        known = self.metrics.by_id
        ok: list[ReadingT] = []
        append = ok.append
        for r in readings:
            m, ts, _ = r
            last = last_ts.get(m, -1)
            if last < ts <= horizon and m in known:
                last_ts[m] = ts
                append(r)
                continue
            if m not in known:
                self.reject(source, Rejected("unknown_metric", f"metric {m}"), f" {device.name}")
            elif ts <= last:
                self.reject(
                    source,
                    Rejected("out_of_order", f"metric {m} at {ts} is not after {last}"),
                    f" {device.name}",
                )
            else:
                self.reject(
                    source,
                    Rejected("from_future", f"timestamp {ts} is ahead of the clock"),
                    f" {device.name}",
                )
        return ok

    async def _committer(self) -> None:
        while True:
            await self._queued_event.wait()
            self._queued_event.clear()
            await asyncio.sleep(0.002)  # let a burst gather: one fsync for all of it
            await self._commit_queued()

    async def _commit_queued(self) -> None:
        items, self._queue = self._queue, []
        if not items:
            return
        assert self.spool is not None
        # The newest timestamps are not written here: the spool derives them from the
        # readings it holds, and stores them when readings leave ``pending`` (store_cuts).
        groups = [(d.key, rs, a.received) for a in items for d, rs in a.groups]
        meta: dict[str, bytes] = {}
        for a in items:
            meta.update(a.meta or {})
        try:
            ids = await self.db(self.spool.ingest, groups, None, meta)
        except Exception as exc:
            for a in items:
                if not a.future.done():
                    a.future.set_exception(exc)
            raise
        it = iter(ids)
        n = 0
        size = self.b.max_readings
        for a in items:
            kept = 0
            for d, rs in a.groups:
                k = len(rs)
                d.pending.append(PendingRow(next(it), d.key, [(a.received, k)], rs))
                d.pending_n += k
                kept += k
                if d.pending_n >= size:
                    self._batch_event.set()
            n += kept
            if not a.future.done():
                a.future.set_result(kept)
        self.stats.spooled += n
        self._update_space()

    def backlog(self) -> int:
        """Readings in the spool that are not final yet."""
        pending = sum(d.pending_n for d in self.devices.values())
        flying = sum(x.row.readings for x in self.inflight.values())
        return pending + self.unpacked_n + flying

    def _update_space(self) -> None:
        n = self.backlog()
        if n >= self.b.high_water and not self.backpressure:
            self.backpressure = True
            self._space.clear()
            self.pauses += 1
            t = time.monotonic()
            if t - self._pause_logged >= 30:  # under sustained load this flips every second
                self._pause_logged = t
                log.warning(
                    "spool holds %d readings: sources paused (back-pressure; %d pauses so far)",
                    n,
                    self.pauses,
                )
        elif n <= self.b.low_water and self.backpressure:
            self.backpressure = False
            self._space.set()

    # ------------------------------------------------------------------ batching
    def _flush_due(self, t: int) -> bool:
        """Whether ``t`` passed this slot's flush point, ``slot_lead_ms`` before the next
        slot starts (and move the point on to the next slot's)."""
        lead, slot = self.b.slot_lead_ms, self.slot_ms
        if not lead or slot <= lead:
            return False
        due = self._next_flush_ms and t >= self._next_flush_ms
        if due or not self._next_flush_ms:
            self._next_flush_ms = ((t + lead) // slot + 1) * slot - lead
        return bool(due)

    async def _batcher(self) -> None:
        tick = max(self.b.max_delay_ms / 4000, 0.01)
        while True:
            wait = tick
            if self._next_flush_ms:
                wait = min(tick, max((self._next_flush_ms - now_ms()) / 1000, 0.001))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch_event.wait(), wait)
            self._batch_event.clear()
            if self.genesis is None:
                continue  # never connected: the batch message needs the chain's genesis
            t = now_ms()
            # A partial batch leaves after max_delay_ms only while the packer keeps up; when
            # signed batches queue anyway, waiting for full ones costs no latency and spares
            # the chain the per-batch and per-device costs (up to ten times the delay).
            busy = self.unpacked_n >= self.b.max_readings_per_xt
            delay = self.b.max_delay_ms * (10 if busy else 1)
            # Slot-aligned: every partial batch leaves together just before a slot starts, in
            # time for its block: the readings waited for that slot anyway, and a device
            # sends one batch a slot instead of one per max_delay_ms (the chain's costs are
            # per batch, not per reading).
            flush = self._flush_due(t) and not busy
            plans = []
            for d in self.devices.values():
                if not d.pending or not d.usable:
                    continue
                oldest = d.pending[0].segs[0][0]
                due = flush or t - oldest >= delay
                if d.pending_n >= self.b.max_readings or due:
                    plan = self._plan_cut(d, flush=due)
                    if plan is not None:
                        plans.append(plan)
            if plans:
                # Every due device in one worker job and one spool transaction (one fsync).
                results = await self.db(self._sign_and_store_cuts, plans)
                for plan, (out, rid) in zip(plans, results, strict=True):
                    self._after_cut(plan, out, rid)

    def _plan_cut(self, d: Device, *, flush: bool) -> _Cut | None:
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
        return _Cut(d, rows, readings, segs, cut, d.next_seq)

    def _sign_and_store_cuts(
        self, plans: list[_Cut]
    ) -> list[tuple[list[tuple[int, int, Segments, bytes]], int | None]]:
        """Sign each plan's batches and store them all (in the spool's thread)."""
        assert self.spool is not None and self.genesis is not None
        size = self.b.max_readings
        items = []
        outs = []
        for p in plans:
            out = []
            seq = p.seq0
            for pos in range(0, p.cut, size):
                chunk = p.readings[pos : min(pos + size, p.cut)]
                batch = sign_batch(p.device.keypair, self.genesis, p.device.twin, seq, chunk)
                body = encode_batch(batch)
                out.append((seq, len(chunk), _take(p.segs, pos, len(chunk)), body))
                seq += 1
            rest = p.readings[p.cut :]
            remainder = (_take(p.segs, p.cut, len(rest)), rest) if rest else None
            # The newest timestamp per metric of what leaves ``pending`` (a device's readings
            # are in timestamp order per metric: the last one of each metric wins).
            newest = {m: ts for m, ts, _ in p.readings[: p.cut]}
            items.append((p.device.key, out, [r.id for r in p.rows], remainder, seq, newest))
            outs.append(out)
        rids = self.spool.store_cuts(items)
        return list(zip(outs, rids, strict=True))

    def _after_cut(
        self, p: _Cut, out: list[tuple[int, int, Segments, bytes]], rid: int | None
    ) -> None:
        d = p.device
        d.next_seq = max(d.next_seq, p.seq0 + len(out))
        # Rows that arrived while we worked stay, after what was not cut.
        newer = d.pending[len(p.rows) :]
        rest = p.readings[p.cut :]
        d.pending = [PendingRow(rid, d.key, _take(p.segs, p.cut, len(rest)), rest)] if rid else []
        d.pending += newer
        d.pending_n = sum(len(r.readings) for r in d.pending)
        self.stats.batches_signed += len(out)
        self.unpacked_n += p.cut
        self._pack_event.set()

    # ------------------------------------------------------------------ node
    async def _node_loop(self) -> None:
        delay = 0.5
        while True:
            rpc = AsyncClient(self.cfg.node)
            try:
                await rpc.connect()
                self.rpc = rpc
                await self._on_connect(rpc)
                self.connected = True
                self.node_error = ""
                delay = 0.5
                log.info("connected to %s", self.cfg.node)
                heads = await rpc.subscribe("chain_subscribeFinalizedHeads")
                best = await rpc.subscribe("chain_subscribeNewHeads")
                # The node may have restarted with an empty pool: everything not on the best
                # chain is sent again now, whatever its back-off said.
                await self._resubmit_due("reconnected", everything=True)
                tasks = [
                    asyncio.create_task(self._settler(rpc, heads)),
                    asyncio.create_task(self._head_follower(best)),
                    asyncio.create_task(self._packer(rpc)),
                    asyncio.create_task(self._resubmitter()),
                ]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for t in tasks:
                        t.cancel()
                    for t in tasks:
                        with contextlib.suppress(BaseException):
                            await t
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            except (NodeUnavailable, RpcError, OSError) as exc:
                self.node_error = str(exc)[:200]
            except Exception as exc:  # a node we do not understand: say why, keep spooling
                log.exception("talking to the node failed")
                self.node_error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                self.connected = False
                self.rpc = None
                await rpc.close()
            log.warning(
                "node %s unavailable (%s); retrying in %.1f s",
                self.cfg.node,
                self.node_error or "connection closed",
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _on_connect(self, rpc: AsyncClient) -> None:
        assert self.spool is not None
        info = await rpc.refresh()
        genesis = info.genesis_hash
        if self.genesis is not None and genesis != self.genesis:
            raise SystemExit(
                f"the spool {self.cfg.spool} belongs to chain 0x{self.genesis.hex()[:16]}…, the "
                f"node runs 0x{genesis.hex()[:16]}…: use another spool file"
            )
        self._codec = rpc.codec
        probe = self._codec.build_call("Telemetry", "submit", {"batches": []})
        self.submit_index = (probe.pallet, probe.index)
        self.spec_version = info.spec_version
        slot = await rpc.call("state_getStorage", self._key("Authority", "SlotDuration"))
        self.slot_ms = int(self._decode("Authority", "SlotDuration", slot))
        metrics = await rpc.call("twin_metrics")
        self.metrics = Metrics({m["id"]: (m["name"], m["scale"]) for m in metrics})
        await self.db(self.spool.set_meta, "genesis", genesis)
        await self.db(self.spool.set_meta, "spec_version", str(self.spec_version).encode())
        await self.db(
            self.spool.set_meta,
            "metrics",
            json.dumps({m: list(v) for m, v in self.metrics.by_id.items()}).encode(),
        )
        self.genesis = genesis
        me = to_hex(self.keypair.public)
        roles = {r["role"] for r in await rpc.call("twin_roles", me)}
        if "Gateway" not in roles:
            log.error("the gateway key %s does not hold the Gateway role on chain", me)
        for d in self.devices.values():
            info = await rpc.call("twin_device", to_hex(d.key))
            problem = ""
            if info is None or not info["active"]:
                problem = "not bound to a twin on chain"
            elif info["twin"] != d.twin:
                problem = f"bound to twin {info['twin']} on chain, not {d.twin}"
            elif info["gateway"] not in (None, me):
                problem = f"pinned to another gateway {info['gateway']}"
            d.usable, d.problem = not problem, problem
            if problem:
                log.error("device %s: %s; its readings are refused", d.name, problem)
                continue
            if info["nextSeq"] > d.next_seq:
                d.next_seq = info["nextSeq"]
                await self.db(self.spool.set_seq, d.key, d.next_seq)
        chain_next = int(await rpc.call("system_accountNextIndex", me))
        top = max(self.inflight, default=-1)
        self.next_nonce = max(chain_next, top + 1)

    def _make_xt(self, batches: list[BatchRow], nonce: int) -> XtRow:
        assert self.submit_index is not None and self.genesis is not None
        xb = self._xt_builder
        if xb is None or (xb.genesis, xb.spec_version, xb.call_index) != (
            self.genesis,
            self.spec_version,
            self.submit_index,
        ):
            xb = self._xt_builder = XtBuilder(
                self.keypair, self.genesis, self.spec_version, self.submit_index
            )
        raw = xb.build([b.body for b in batches], nonce)
        return XtRow(
            nonce, extrinsic_hash(raw), raw, now_ms(), len(batches), sum(b.n for b in batches)
        )

    def _group(self, rows: list[BatchRow], slots: int) -> list[list[BatchRow]]:
        """Consecutive batches into at most ``slots`` extrinsics within the size limits."""
        usable = {d.key for d in self.devices.values() if d.usable}
        groups: list[list[BatchRow]] = []
        cur: list[BatchRow] = []
        n = 0
        for r in rows:
            if r.device not in usable:
                continue  # held until the chain says the device is ours again
            if cur and (
                n + r.n > self.b.max_readings_per_xt or len(cur) >= self.b.max_batches_per_xt
            ):
                groups.append(cur)
                if len(groups) >= slots:
                    return groups
                cur, n = [], 0
            cur.append(r)
            n += r.n
        if cur:
            groups.append(cur)
        return groups[:slots]

    def _adapt_window(self, latencies: list[float]) -> None:
        """Congestion control (AIMD, as TCP does): the extrinsics in flight may grow by one
        per window of settled ones while they settle within ``target_latency_s``, and halve
        (at most once per target) when one takes longer. A chain fed beyond what its
        validators can import and finalize in time forks and slows down; the readings wait
        better in the spool than in the pool."""
        if not latencies:
            return
        now = time.monotonic()
        target = self.b.target_latency_s
        if max(latencies) > target:
            if now - self._window_cut_at >= target:
                self._window_cut_at = now
                self._slow_start = False
                self.window = max(1.0, self.window / 2)
        else:
            # Slow start until the first cut: the window doubles per round trip (a round
            # trip is a few seconds here: inclusion, then finality), instead of taking a
            # minute of linear growth to carry the offered load.
            grow = len(latencies) if self._slow_start else len(latencies) / self.window
            self.window = min(float(self.b.max_in_flight), self.window + grow)

    def _sign_and_store(self, groups: list[list[BatchRow]], first: int) -> list[XtRow]:
        """Sign the extrinsics and store them, in one transaction (in the spool's thread)."""
        assert self.spool is not None
        xts = [self._make_xt(g, first + i) for i, g in enumerate(groups)]
        self.spool.store_xts([(x, [b.id for b in g]) for x, g in zip(xts, groups, strict=True)])
        return xts

    async def _packer(self, rpc: AsyncClient) -> None:
        assert self.spool is not None
        spool = self.spool
        while True:
            slots = int(self.window) - len(self.inflight)
            if slots <= 0 or self.unpacked_n == 0:
                self._pack_event.clear()
                await self._pack_event.wait()
                continue
            rows = await self.db(spool.unpacked, slots * self.b.max_batches_per_xt)
            groups = self._group(rows, slots)
            if not groups:
                self._pack_event.clear()
                await self._pack_event.wait()
                continue
            first = self.next_nonce

            xts = await self.db(self._sign_and_store, groups, first)
            self.next_nonce = first + len(xts)
            for xt, g in zip(xts, groups, strict=True):
                for b in g:
                    b.xt = xt.nonce
                f = self.inflight[xt.nonce] = InFlight(xt, g)
                self.unpacked_n -= xt.readings
                # Not awaited: the requests leave in nonce order on the one connection, and
                # the next extrinsics are packed while the node validates these.
                t = asyncio.create_task(self._submit(rpc, f))
                self._submits.add(t)
                t.add_done_callback(self._submits.discard)

    def _backoff(self, tries: int) -> float:
        """Seconds until an extrinsic sent ``tries`` times is sent again: doubling from
        ``resubmit_after_s`` up to ``resubmit_max_s``, less up to 20 % jitter (gateways that
        saw the same stall do not all come back in the same second)."""
        b = self.b
        return min(b.resubmit_max_s, b.resubmit_after_s * 2 ** min(tries - 1, 30)) * (
            1 - 0.2 * random.random()
        )

    async def _submit(self, rpc: AsyncClient, f: InFlight) -> bool:
        f.submitted_at = time.monotonic()
        f.tries += 1
        f.due_at = f.submitted_at + self._backoff(f.tries)
        self.stats.submit_attempts += 1
        try:
            await rpc.call("author_submitExtrinsic", to_hex(f.row.raw))
            self.stats.xts_submitted += 1
            return True
        except NodeUnavailable:
            return False  # resubmitted after the reconnect
        except RpcError as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            kind = str(data.get("code") or exc.message)[:40]
            reason = f"{kind}: {data.get('detail', '')}"
            self.stats.submit_errors[kind] = self.stats.submit_errors.get(kind, 0) + 1
            if kind == "Invalid:Stale":
                # Its nonce is used on the best chain, most likely by this very extrinsic in
                # a block that is not final yet: sending it again cannot help.
                if not f.on_best:
                    log.info(
                        "extrinsic #%d: nonce already used on the best chain (%s): "
                        "not sent again, finality settles it",
                        f.row.nonce,
                        reason,
                    )
                self._hold_on_best(f)
            # Already in the pool or on chain: the settler will see it. Anything else is
            # retried with the same bytes later, backing off.
            elif exc.code not in (1013, 1012):
                log.info(
                    "extrinsic #%d not accepted now (%s): will retry in %.0f s",
                    f.row.nonce,
                    reason,
                    f.due_at - f.submitted_at,
                )
            return False

    def _hold_on_best(self, f: InFlight) -> None:
        """Wait for finality instead of resending; look again later, in case a reorg drops
        the block that holds it (then its nonce is free again and it is sent again)."""
        f.on_best = True
        f.due_at = time.monotonic() + self.b.resubmit_after_s

    async def _best_nonce(self, rpc: AsyncClient) -> int:
        """The gateway account's nonce in the best block's state (no pool, unlike
        ``system_accountNextIndex``)."""
        acct = await rpc.call(
            "state_getStorage", self._key("System", "Account", self.keypair.public)
        )
        info = self._decode("System", "Account", acct)
        return 0 if info is None else int(info.nonce)

    async def _resubmit_due(self, why: str, *, everything: bool = False) -> None:
        """Send again the unsettled extrinsics whose back-off ran out (``everything``: all
        of them), except those the best chain already holds."""
        rpc = self.rpc
        if rpc is None or not self.inflight:
            return
        now = time.monotonic()
        due = [f for _, f in sorted(self.inflight.items()) if everything or f.due_at <= now]
        if not due:
            return
        used = await self._best_nonce(rpc)
        send: list[InFlight] = []
        held = 0
        for f in due:
            if f.row.nonce < used:
                held += not f.on_best
                self._hold_on_best(f)
                continue
            if f.on_best:
                log.warning(
                    "extrinsic #%d is no longer on the best chain (a reorg): sending it again",
                    f.row.nonce,
                )
                f.on_best = False
            send.append(f)
        if held:
            log.info(
                "%d extrinsics are in blocks not final yet (nonces below %d used on the best "
                "chain): not sent again, finality settles them",
                held,
                used,
            )
        if not send:
            return
        log.info(
            "%s: submitting %d of %d unsettled extrinsics again",
            why,
            len(send),
            len(self.inflight),
        )
        for f in send:
            if self.inflight.get(f.row.nonce) is f:
                await self._submit(rpc, f)

    async def _resubmitter(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._check_lag()
            now = time.monotonic()
            if any(f.due_at <= now for f in self.inflight.values()):
                await self._resubmit_due("extrinsics not final in time")

    async def _head_follower(self, heads: Subscription[Any]) -> None:
        """Track the node's best block, to tell how far finality is behind it."""
        while True:
            head = await heads.latest()
            if head is None:
                return  # connection closed
            self.best_number = int(head["number"], 16)
            self._check_lag()

    def finality_lag(self) -> int:
        """How many blocks finality is behind the best block, as the node reports them."""
        return max(0, self.best_number - self.finalized_number)

    def _check_lag(self) -> None:
        """Say when finality falls ``finality_lag_alert`` blocks behind the best block, every
        ``LAG_LOG_EVERY_S`` while it stays behind, and once when it catches up."""
        lag = self.finality_lag()
        now = time.monotonic()
        limit = self.b.finality_lag_alert
        waiting = sum(x.row.readings for x in self.inflight.values())
        if self.stalled_since is None:
            if lag > limit and self.connected:
                self.stalled_since = self._lag_logged = now
                log.warning(
                    "finality is %s behind the best block (best #%d, finalized #%d): "
                    "%d readings in %d extrinsics wait for it; resubmissions back off",
                    _blocks(lag),
                    self.best_number,
                    self.finalized_number,
                    waiting,
                    len(self.inflight),
                )
        elif lag <= limit // 2:  # hysteresis: a lag around the limit logs once, not per block
            log.info(
                "finality resumed: %s behind the best block (finalized #%d) after "
                "%.0f s; settling what waited",
                _blocks(lag),
                self.finalized_number,
                now - self.stalled_since,
            )
            self.stalled_since = None
            self._stall_ended = now
            # What finality did not settle is looked at again now, back-off reset.
            for f in self.inflight.values():
                f.tries, f.due_at = 0, now
        elif now - self._lag_logged >= LAG_LOG_EVERY_S:
            self._lag_logged = now
            log.warning(
                "finality is %s behind the best block (best #%d, finalized #%d) for "
                "%.0f s: %d readings in %d extrinsics and %d more in the spool wait for it",
                _blocks(lag),
                self.best_number,
                self.finalized_number,
                now - self.stalled_since,
                waiting,
                len(self.inflight),
                self.backlog() - waiting,
            )

    async def _settler(self, rpc: AsyncClient, heads: Subscription[Any]) -> None:
        while True:
            head = await heads.latest()  # only the newest finalized head matters
            if head is None:
                return  # connection closed
            number = int(head["number"], 16)
            block = await rpc.call("chain_getBlockHash", number)
            if block is None:
                continue
            self.finalized_number = number
            self.best_number = max(self.best_number, number)
            await self._settle(rpc, block, number)
            self._check_lag()

    def _key(self, pallet: str, item: str, *keys: Any) -> str:
        assert self._codec is not None
        return to_hex(self._codec.storage_key(pallet, item, keys))

    def _decode(self, pallet: str, item: str, value: Any) -> Any:
        assert self._codec is not None
        raw = None if value is None else from_hex(value, "storage value")
        return self._codec.decode_value(pallet, item, raw)

    async def _settle(self, rpc: AsyncClient, block: str, number: int) -> None:
        if not self.inflight:
            return
        assert self.spool is not None
        me = self.keypair.public
        acct = await rpc.call("state_getStorage", self._key("System", "Account", me), block)
        info = self._decode("System", "Account", acct)
        used = 0 if info is None else info.nonce
        due = [self.inflight[n] for n in sorted(self.inflight) if n < used]
        if not due:
            return
        firsts = await self._on_chain(rpc, block, [f.batches[0] for f in due])
        confirmed: list[BatchRow] = []
        requeue: list[BatchRow] = []
        lost: list[BatchRow] = []
        for f, found in zip(due, firsts, strict=True):
            if found:
                confirmed += f.batches
                continue
            # The call failed (or the nonce went to another extrinsic): batch by batch.
            await self._sort_failed(rpc, block, f, confirmed, requeue, lost)
        last = None
        if confirmed:
            b = confirmed[-1]
            last = (b.device, b.seq, number)
        await self.db(
            self.spool.settle,
            [b.id for b in confirmed],
            [b.id for b in requeue],
            [b.id for b in lost],
            [f.row.nonce for f in due],
            last,
        )
        t = now_ms()
        waits = [time.monotonic() - f.submitted_at for f in due]
        # A wait through a stalled finality says nothing of what the chain can carry.
        if self.stalled_since is None and all(f.submitted_at >= self._stall_ended for f in due):
            self._adapt_window(waits)
        for w in waits:
            self.stats.observe_latency(int(w * 1000), 1, self.stats.chain_latency)
        for f in due:
            del self.inflight[f.row.nonce]
        for b in confirmed:
            for received, count in b.segs:
                self.stats.observe_latency(t - received, count)
            self.stats.readings_final += b.n
        self.stats.batches_final += len(confirmed)
        self.stats.batches_lost += len(lost)
        self.stats.batches_requeued += len(requeue)
        for b in requeue:
            b.xt = None
        self.unpacked_n += sum(b.n for b in requeue)
        if last is not None:
            self.last_final = last
        self._update_space()
        self._pack_event.set()
        if self.on_settled is not None:
            self.on_settled()

    async def _on_chain(self, rpc: AsyncClient, block: str, batches: list[BatchRow]) -> list[bool]:
        """Whether each batch's record is in the state at ``block`` (one read per chunk)."""
        chunks = sorted({(b.device, b.seq // BATCH_CHUNK) for b in batches})
        values = await rpc.batch(
            [
                ("state_getStorage", [self._key("Telemetry", "BatchChunks", dev, c), block])
                for dev, c in chunks
            ]
        )
        packed: dict[tuple[bytes, int], bytes] = {}
        for key, v in zip(chunks, values, strict=True):
            packed[key] = self._decode("Telemetry", "BatchChunks", v)
        return [
            chunk_record(packed[(b.device, b.seq // BATCH_CHUNK)], b.seq) is not None
            for b in batches
        ]

    async def _sort_failed(
        self,
        rpc: AsyncClient,
        block: str,
        f: InFlight,
        confirmed: list[BatchRow],
        requeue: list[BatchRow],
        lost: list[BatchRow],
    ) -> None:
        recs = await self._on_chain(rpc, block, f.batches)
        devs = sorted({b.device for b in f.batches})
        infos = await rpc.batch(
            [("state_getStorage", [self._key("Telemetry", "Devices", dev), block]) for dev in devs]
        )
        next_seq = {}
        for dev, v in zip(devs, infos, strict=True):
            d = self._decode("Telemetry", "Devices", v)
            next_seq[dev] = 0 if d is None else d.next_seq
        for b, found in zip(f.batches, recs, strict=True):
            if found:
                confirmed.append(b)
            elif b.seq >= next_seq[b.device]:
                requeue.append(b)
            else:
                lost.append(b)
                log.error(
                    "batch %d of device 0x%s can no longer be applied (the device is "
                    "past it on chain): %d readings lost",
                    b.seq,
                    b.device.hex()[:16],
                    b.n,
                )
        log.warning(
            "extrinsic #%d failed on chain: %d batches found, %d requeued, %d lost",
            f.row.nonce,
            sum(recs),
            sum(1 for b in f.batches if b in requeue),
            sum(1 for b in f.batches if b in lost),
        )

    # ------------------------------------------------------------------ status
    def finality_note(self) -> str:
        """Finality in one plain sentence, for the status and the devnet's table."""
        note = f"finality is {_blocks(self.finality_lag())} behind the best block"
        if self.stalled_since is not None:
            s = time.monotonic() - self.stalled_since
            note += f" (stalled for {s:.0f} s; extrinsics wait for it, resubmissions back off)"
        return note

    def status(self) -> dict[str, Any]:
        rin, rfin = self.stats.tick()
        pending = sum(d.pending_n for d in self.devices.values())
        flying = sum(x.row.readings for x in self.inflight.values())
        lf = self.last_final
        lag = self.finality_lag()
        stalled = self.stalled_since
        return {
            "name": self.cfg.name,
            "pid": os.getpid(),
            "node": self.cfg.node,
            "connected": self.connected,
            "node_error": self.node_error,
            "gateway": to_hex(self.keypair.public),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "received": dict(self.stats.received),
            "rejected": dict(self.stats.rejected),
            "spooled": self.stats.spooled,
            "rate_in": round(rin, 1),
            "rate_final": round(rfin, 1),
            "spool_pending": pending,
            "spool_batched": self.unpacked_n,
            "spool_in_flight": flying,
            "backlog": pending + self.unpacked_n + flying,
            "backpressure": self.backpressure,
            "backpressure_pauses": self.pauses,
            "xts_in_flight": len(self.inflight),
            "xts_window": round(self.window, 1),
            "xts_submitted": self.stats.xts_submitted,
            "submit_attempts": self.stats.submit_attempts,
            "xts_on_best": sum(1 for x in self.inflight.values() if x.on_best),
            "submit_errors": dict(self.stats.submit_errors),
            "batches_signed": self.stats.batches_signed,
            "batches_final": self.stats.batches_final,
            "batches_requeued": self.stats.batches_requeued,
            "batches_lost": self.stats.batches_lost,
            "readings_final": self.stats.readings_final,
            "finalized_block": self.finalized_number,
            "best_block": self.best_number,
            "finality_lag": lag,
            "finality_stalled_s": None if stalled is None else round(time.monotonic() - stalled),
            "finality": self.finality_note(),
            "last_final_batch": None
            if lf is None
            else {"device": to_hex(lf[0]), "seq": lf[1], "block": lf[2]},
            "latency_p50_s": self.stats.percentile(0.5),
            "latency_p99_s": self.stats.percentile(0.99),
            "latency_hist_ms": [LATENCY_BUCKET_MS, self.stats.latency],
            "submit_to_final_p50_s": self.stats.percentile(0.5, self.stats.chain_latency),
            "submit_to_final_p99_s": self.stats.percentile(0.99, self.stats.chain_latency),
            "submit_to_final_hist_ms": [LATENCY_BUCKET_MS, self.stats.chain_latency],
            "devices": {
                d.name: {
                    "next_seq": d.next_seq,
                    "pending": d.pending_n,
                    "usable": d.usable,
                    "problem": d.problem,
                }
                for d in self.devices.values()
            },
        }


def _take(segs: Segments, start: int, count: int) -> Segments:
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


__all__ = ["Device", "Gateway", "Stats"]
