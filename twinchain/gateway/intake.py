"""Intake: what the sources hand in, checked, made durable, then acknowledged.

``accept`` (called by the sources, synchronously and in arrival order) checks each reading
(known device, registered metric, newer than the device's last one for the metric, not from
the future) and queues it; the *committer* writes everything queued in one SQLite
transaction (group commit) and only then resolves the sources' futures: a source
acknowledges a reading after it is durable, never before.

Back-pressure: when the spool holds ``high_water`` readings that are not final,
:meth:`Intake.wait_space` blocks the sources until it drains to ``low_water``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from twinchain.gateway.payloads import Rejected
from twinchain.gateway.spool import PendingRow, ReadingT
from twinchain.gateway.state import Device, GatewayState, now_ms
from twinchain.protocol.telemetry import MAX_FUTURE_DRIFT_MS

log = logging.getLogger("twinchain.gateway")


@dataclass
class _Accepted:
    groups: list[tuple[Device, list[ReadingT]]]  # readings kept, per device
    received: int
    future: asyncio.Future[int]
    meta: dict[str, bytes] | None


class Intake:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._queue: list[_Accepted] = []
        self._queued = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.backpressure = False
        self.pauses = 0
        self._pause_logged = -1e9
        self._reject_log: dict[str, float] = {}

    def device_for(self, name: str | None, topic: str | None = None) -> Device:
        s = self.state
        d = s.devices.get(name) if name else None
        if d is None and topic is not None:
            d = s.by_topic.get(topic)
        if d is None:
            raise Rejected("unknown_device", f"device {name or topic!r} is not configured")
        if not d.usable:
            raise Rejected("unknown_device", f"device {d.name!r}: {d.problem}")
        return d

    def reject(self, source: str, exc: Rejected, context: str = "") -> None:
        """Count a refusal and log it (at most once a second per reason)."""
        rejected = self.state.stats.rejected
        rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
        t = time.monotonic()
        if t - self._reject_log.get(exc.reason, 0.0) >= 1.0:
            self._reject_log[exc.reason] = t
            n = rejected[exc.reason]
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
        received_by = self.state.stats.received
        received_by[source] = received_by.get(source, 0) + n_in
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not n_ok and not meta:
            fut.set_result(0)
            return fut
        self._queue.append(_Accepted(kept, received or now_ms(), fut, meta))
        self._queued.set()
        return fut

    def _check(
        self, device: Device, readings: Sequence[ReadingT], source: str, horizon: int
    ) -> list[ReadingT]:
        """The readings that pass the checks (the others are counted and logged): a
        registered metric, newer than the device's last one of that metric, not from the
        future."""
        last_ts = device.last_ts
        known = self.state.metrics.by_id
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

    async def run(self) -> None:
        """The committer task."""
        while True:
            await self._queued.wait()
            self._queued.clear()
            await asyncio.sleep(0.002)  # let a burst gather: one fsync for all of it
            await self.commit_queued()

    async def commit_queued(self) -> None:
        """Write what is queued to the spool in one transaction, then resolve its futures."""
        items, self._queue = self._queue, []
        if not items:
            return
        s = self.state
        assert s.spool is not None
        # The newest timestamps are not written here: the spool derives them from the
        # readings it holds, and stores them when readings leave ``pending`` (store_cuts).
        groups = [(d.key, rs, a.received) for a in items for d, rs in a.groups]
        meta: dict[str, bytes] = {}
        for a in items:
            meta.update(a.meta or {})
        try:
            # Shielded: a stop that cancels the committer here must not cancel the write
            # while it waits for the spool's thread (it would be dropped unwritten, with the
            # position a simulator or historian keeps in ``meta``); it is written before the
            # spool closes (one thread, in order), and only its futures stay unresolved.
            ids = await asyncio.shield(s.db(s.spool.ingest, groups, None, meta))
        except Exception as exc:
            for a in items:
                if not a.future.done():
                    a.future.set_exception(exc)
            raise
        it = iter(ids)
        n = 0
        size = s.b.max_readings
        for a in items:
            kept = 0
            for d, rs in a.groups:
                k = len(rs)
                d.pending.append(PendingRow(next(it), d.key, [(a.received, k)], rs))
                d.pending_n += k
                kept += k
                if d.pending_n >= size:
                    s.batch_ready.set()
            n += kept
            if not a.future.done():
                a.future.set_result(kept)
        s.stats.spooled += n
        self.update_space()

    def update_space(self) -> None:
        """Pause the sources at ``high_water`` readings not final; let them go on at
        ``low_water``."""
        b = self.state.b
        n = self.state.backlog()
        if n >= b.high_water and not self.backpressure:
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
        elif n <= b.low_water and self.backpressure:
            self.backpressure = False
            self._space.set()


__all__ = ["Intake"]
