"""Telemetry's ingestion: one accepted batch into its device's state, its twin's window
aggregates and the batch logs, and the windows it closes queued for the next blocks.

Per batch the per-reading rules (envelope, capture frequency, age, clock drift, jumps) run in
``native.readings_scan`` (C, or its Python reference) over the packed readings; Python only
merges the batch's partial aggregates into the stored windows and writes the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twinchain import native
from twinchain.native import fallback as native_fallback
from twinchain.protocol.telemetry import (
    BATCH_CHUNK,
    BATCH_RECORD,
    MAX_FUTURE_DRIFT_MS,
    READING,
    Batch,
    packed_readings,
    survey_readings,
)
from twinchain.runtime.pallets.telemetry.types import (
    BATCH_LOG_CHUNK,
    DEFAULT_CAPTURE,
    FLAG_BITS,
    Aggregate,
    CaptureConfig,
    DeviceInfo,
)

if TYPE_CHECKING:
    from twinchain.runtime.pallets.telemetry.pallet import Telemetry


@dataclass
class IngestContext:
    """What one ``submit`` reads once for all its batches."""

    now: int
    window: int
    newest: dict[int, int] = field(default_factory=dict)  # twin -> latest window start seen
    envelopes: dict[int, dict[int, Any]] = field(default_factory=dict)
    captures: dict[int, dict[int, CaptureConfig]] = field(default_factory=dict)


def apply_batch(
    tel: Telemetry, ctx: IngestContext, gateway: bytes, d: DeviceInfo, b: Batch, root: bytes
) -> None:
    """Apply one batch whose checks passed and signature verified (``root``: its Merkle
    root): sequence state, flags, window aggregates, batch record and log, events."""
    twin = d.twin
    if b.seq > d.next_seq:
        d.gaps += b.seq - d.next_seq
        tel.deposit(tel.Event.SequenceGap(b.device, d.next_seq, b.seq))
    d.next_seq = b.seq + 1
    now, window = ctx.now, ctx.window
    envelopes = ctx.envelopes.get(twin)
    if envelopes is None:
        envelopes = ctx.envelopes[twin] = tel.config.twins.envelopes(twin)
    captures = ctx.captures.get(twin)
    if captures is None:
        captures = ctx.captures[twin] = tel.Capture.get_shared(twin) or {}
    lasts = d.last  # written back with the rest of ``d`` by ``submit``
    raw = packed_readings(b.readings)
    metrics, first_ts, last_ts = survey_readings(b.readings)
    # Per metric, once per batch: its envelope, capture settings and last reading; the
    # per-reading rules run in native.readings_scan (C, or its Python reference).
    slots: list[native_fallback.Slot] = []
    for m in metrics:
        cap = captures.get(m, DEFAULT_CAPTURE)
        env = envelopes.get(m)
        slots.append(
            (
                m,
                None if env is None else (env.min, env.max, env.max_step),
                cap.min_interval_ms,
                cap.max_age_ms,
                lasts.get(m),
            )
        )
    limit = now + MAX_FUTURE_DRIFT_MS
    flags, partials, new_lasts, newest, flagged = native.readings_scan(
        raw, slots, now, limit, window, ctx.newest.get(twin, -1)
    )
    ctx.newest[twin] = newest  # a reading from the future never closes a window
    for m, last in zip(metrics, new_lasts, strict=True):
        if last is not None:
            lasts[m] = last
    if flagged:
        flag_event = tel.Event.ReadingFlagged
        for i, f in enumerate(flags):
            if f:
                m, ts, v = READING.unpack_from(raw, i * READING.size)
                for bit, name in FLAG_BITS:
                    if f & bit:
                        tel.deposit(flag_event(twin, b.device, b.seq, i, m, name, v, ts))
    # The batch's partial aggregates merged into the stored windows, as if each reading
    # had been added in order (see Aggregate.add).
    windows: dict[int, dict[int, Aggregate]] = {}  # window start -> metric -> aggregate
    for start, m, count, lo, hi, total, last, last_at, nflag in partials:
        table = windows.get(start)
        if table is None:
            table = windows[start] = tel.Aggregates.get(twin, start) or {}
        agg = table.get(m)
        if agg is None:
            table[m] = Aggregate(count, lo, hi, total, last, last_at, nflag)
            continue
        if agg.count == 0:
            agg.min, agg.max, agg.last, agg.last_ts = lo, hi, last, last_at
        else:
            if lo < agg.min:
                agg.min = lo
            if hi > agg.max:
                agg.max = hi
            if last_at >= agg.last_ts:
                agg.last, agg.last_ts = last, last_at
        agg.count += count
        agg.sum += total
        agg.flagged += nflag
    for start, table in windows.items():
        tel.Aggregates.insert(twin, start, table)
    count = len(b.readings)
    c = b.seq // BATCH_CHUNK
    tel.BatchChunks.insert(
        b.device,
        c,
        tel.BatchChunks.get(b.device, c)
        + BATCH_RECORD.pack(
            b.seq,
            twin,
            root,
            count,
            first_ts,
            last_ts,
            gateway,
            tel.runtime.block.number,
            flagged,
        ),
    )
    log_batch(tel, twin, b.device, b.seq)
    d.batches += 1
    d.readings += count
    d.last_seen = now
    tel.deposit(tel.Event.BatchAccepted(twin, b.device, b.seq, root, count, flagged))


def log_batch(tel: Telemetry, twin: int, device: bytes, seq: int) -> None:
    """Append (device, seq) to the twin's batch log."""
    # One storage write per batch (two were: an entry and a count), and one more per
    # chunk: the log's tail grows as bytes, never decoded here.
    count, tail = tel.TwinBatchLog.get(twin)
    tail += device + seq.to_bytes(8, "big")
    count += 1
    if count % BATCH_LOG_CHUNK == 0:
        tel.TwinBatchChunks.insert(twin, count // BATCH_LOG_CHUNK - 1, tail)
        tail = b""
    tel.TwinBatchLog.insert(twin, (count, tail))


def queue_closes(tel: Telemetry, ctx: IngestContext) -> None:
    """A reading in a later window closes its twin's open one: queue the closes (their hooks
    run in the next blocks' ``on_initialize``, :mod:`.windows`)."""
    closed: list[tuple[int, int, int]] = []
    for twin, newest in sorted(ctx.newest.items()):
        if newest < 0:
            continue  # only readings from the future: they open no window
        open_start: int | None = tel.OpenWindow.get(twin)
        if open_start is not None and newest <= open_start:
            continue
        tel.OpenWindow.insert(twin, newest)
        if open_start is not None:
            closed.append((twin, open_start, ctx.window))
    if closed:
        head, tail = tel.CloseQueueBounds.get()
        for entry in closed:
            tel.CloseQueue.insert(tail, entry)
            tail += 1
        tel.CloseQueueBounds.put((head, tail))
