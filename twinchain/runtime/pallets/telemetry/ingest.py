"""Telemetry's ingestion: one accepted commitment into its device's state, its twin's window
aggregates and the batch logs, and the windows it closes queued for the next blocks.

The chain never sees a batch's readings, only its :class:`Commitment`: count, time span,
Merkle root and the summaries of the metrics the twin makes public. So the checks that need
no reading run here (a summary outside the operating envelope, a batch from the future or
stale); the per-reading ones (too fast, implausible jumps) are the facility archive's, which
holds the readings. A commitment lies in one window (``submit`` checks it), so its summaries
merge into exactly one window aggregate per public metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twinchain.protocol.telemetry import (
    BATCH_CHUNK,
    BATCH_RECORD,
    MAX_FUTURE_DRIFT_MS,
    Commitment,
)
from twinchain.runtime.pallets.telemetry.types import (
    BATCH_LOG_CHUNK,
    BATCH_WIDE,
    DEFAULT_CAPTURE,
    DEFAULT_MAX_AGE_MS,
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


def batch_flags(
    ctx: IngestContext, envelopes: dict[int, Any], captures: dict[int, CaptureConfig], c: Commitment
) -> list[tuple[int, str]]:
    """(metric, flag) of a commitment, in event order: each public summary outside its
    envelope, then the batch-wide time flags (metric ``BATCH_WIDE``)."""
    out: list[tuple[int, str]] = []
    max_age = DEFAULT_MAX_AGE_MS if not c.public else None
    for s in c.public:
        env = envelopes.get(s.metric)
        if env is not None and (s.min < env.min or s.max > env.max):
            out.append((s.metric, "OutOfRange"))
        age = captures.get(s.metric, DEFAULT_CAPTURE).max_age_ms
        max_age = age if max_age is None or age < max_age else max_age
    if c.last_ts > ctx.now + MAX_FUTURE_DRIFT_MS:
        out.append((BATCH_WIDE, "FromFuture"))
    if max_age is not None and c.first_ts + max_age < ctx.now:
        out.append((BATCH_WIDE, "Stale"))
    return out


def apply_batch(
    tel: Telemetry, ctx: IngestContext, gateway: bytes, d: DeviceInfo, c: Commitment
) -> None:
    """Apply one commitment whose checks passed and signature verified: sequence state,
    flags, window aggregates, batch record and log, events."""
    twin = d.twin
    if c.seq > d.next_seq:
        d.gaps += c.seq - d.next_seq
        tel.deposit(tel.Event.SequenceGap(c.device, d.next_seq, c.seq))
    d.next_seq = c.seq + 1
    now, window = ctx.now, ctx.window
    envelopes = ctx.envelopes.get(twin)
    if envelopes is None:
        envelopes = ctx.envelopes[twin] = tel.config.twins.envelopes(twin)
    captures = ctx.captures.get(twin)
    if captures is None:
        captures = ctx.captures[twin] = tel.Capture.get_shared(twin) or {}
    flags = batch_flags(ctx, envelopes, captures, c)
    for m, flag in flags:
        tel.deposit(tel.Event.BatchFlagged(twin, c.device, c.seq, m, flag))
    batch_wide = any(m == BATCH_WIDE for m, _ in flags)
    flagged_metrics = {m for m, _ in flags}
    start = c.first_ts - c.first_ts % window
    if c.first_ts <= now + MAX_FUTURE_DRIFT_MS:  # a batch from the future closes no window
        ctx.newest[twin] = max(ctx.newest.get(twin, -1), start)
    flagged = 0
    if c.public:
        lasts = d.last  # written back with the rest of ``d`` by ``submit``
        table: dict[int, Aggregate] = tel.Aggregates.get(twin, start) or {}
        for s in c.public:
            nflag = s.count if batch_wide or s.metric in flagged_metrics else 0
            flagged += nflag
            agg = table.get(s.metric)
            if agg is None:
                table[s.metric] = Aggregate(s.count, s.min, s.max, s.sum, s.last, s.last_ts, nflag)
            else:
                agg.merge(s.count, s.min, s.max, s.sum, s.last_ts, s.last, nflag)
            prev = lasts.get(s.metric)
            if prev is None or s.last_ts >= prev[0]:
                lasts[s.metric] = (s.last_ts, s.last)
        tel.Aggregates.insert(twin, start, table)
    if batch_wide:
        flagged = c.count  # every reading of the batch, private ones too
    chunk = c.seq // BATCH_CHUNK
    tel.BatchChunks.insert(
        c.device,
        chunk,
        tel.BatchChunks.get(c.device, chunk)
        + BATCH_RECORD.pack(
            c.seq,
            twin,
            c.root,
            c.count,
            c.first_ts,
            c.last_ts,
            gateway,
            tel.runtime.block.number,
            flagged,
        ),
    )
    log_batch(tel, twin, c.device, c.seq)
    d.batches += 1
    d.readings += c.count
    d.last_seen = now
    tel.deposit(tel.Event.BatchAccepted(twin, c.device, c.seq, c.root, c.count, flagged))


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
    """A batch in a later window closes its twin's open one: queue the closes (their hooks
    run in the next blocks' ``on_initialize``, :mod:`.windows`)."""
    closed: list[tuple[int, int, int]] = []
    for twin, newest in sorted(ctx.newest.items()):
        if newest < 0:
            continue
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
