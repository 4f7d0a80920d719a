"""The facility archive: the custodian of its facility's raw readings.

Gateways deliver signed batches (:meth:`ArchiveStore.deliver`); the chain holds only their
commitments. A batch goes through three states, all in one LevelDB database (``staging/``):

* **staged**: delivered by the device's own gateway for a twin of this facility, waiting
  for its commitment to be final;
* **archived**: its readings give the finalized record's root, count and span
  (``check_batch``), written durably (synced) at once; the gateway may drop it. Its rows
  wait in LevelDB until the next flush;
* **flushed**: its rows are in a Parquet file (see :mod:`twinchain.archive.parquet`).

Anything else is **refused** with a reason, counted by reason and logged; nothing of a
refused batch is archived.

A flush writes a temporary file, renames it, then in ONE LevelDB write batch registers the
file and marks its batches flushed. On open, files that are not registered (a crash between
rename and mark) and temporary files are deleted: their batches are still pending in LevelDB
and flush again, so nothing is lost and nothing is written twice. Compaction and retention
follow the same rule (LevelDB first, the files after).

Thread-safe: the RPC server calls :meth:`deliver` and :meth:`readings` from its threads while
the node's :class:`~twinchain.archive.hosting.ArchiveService` runs :meth:`on_finalized`,
:meth:`flush` and :meth:`maintain` in worker threads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twinchain.archive import parquet
from twinchain.archive.chain import ChainView
from twinchain.archive.documents import DocumentStore
from twinchain.archive.parquet import DAY_MS, day_of
from twinchain.primitives.codec import CodecError
from twinchain.protocol.telemetry import (
    READING,
    Batch,
    BatchRecord,
    PackedReadings,
    check_batch,
    packed_readings,
    survey_readings,
)
from twinchain.storage.abc import WriteBatch
from twinchain.storage.kv import LevelDBStore

log = logging.getLogger("twinchain.archive")

STAGED, ARCHIVED, REFUSED = "staged", "archived", "refused"

# Refusal reasons besides check_batch's own (which say how the readings differ).
NOT_THIS_FACILITY = "not this facility's"
NOT_THE_GATEWAY = "not the device's gateway"
UNKNOWN_DEVICE = "unknown device"
NOT_ON_CHAIN = "not on chain"
NEVER_COMMITTED = "never committed"
EXPIRED = "older than the retention period"
NO_READINGS = "no readings"

# LevelDB keys: a one-byte prefix, then big-endian fields (so ranges sort by them).
_STAGED = b"S"  # device seq -> msgpack [batch bytes, received ms]
_PENDING = b"P"  # device seq -> packed readings, archived but not flushed yet
_ARCHIVED = b"A"  # device seq -> msgpack [twin, day, count, first_ts, last_ts, root, file]
_BY_TIME = b"T"  # twin first_ts device seq -> last_ts (u64)
_BY_DAY = b"D"  # day(u32) twin device seq -> b""
_FILES = b"F"  # relative path -> msgpack [twin, day, rows]
_REFUSED = b"R"  # reason -> count (u64)
_SPAN = b"W"  # twin -> longest batch span seen, ms (u64)
_META = b"M"  # name -> u64
_U64 = struct.Struct(">Q")
_SEQ = struct.Struct(">Q")
_DAY = struct.Struct(">I")

FLUSH_ROWS = 1_000_000
STAGE_TIMEOUT_S = 3600.0
COMPACT_GRACE_MS = 3_600_000  # a day is finished this long after its end (late batches)


class Delivery(NamedTuple):
    """The archive's answer for one delivered batch: ``status`` is "staged" (kept, waiting
    for its commitment to be final: deliver it again later), "archived" (stored durably: the
    gateway may drop it) or "refused" (``reason`` says why; nothing was kept)."""

    device: bytes
    seq: int
    status: str
    reason: str | None = None


class ArchivedBatch(NamedTuple):
    """One archived batch with all its readings in leaf order (a reading's Merkle proof is
    built from them) and its committed root, count and time span."""

    device: bytes
    seq: int
    readings: PackedReadings
    twin: int
    root: bytes
    first_ts: int
    last_ts: int


class _Info(NamedTuple):
    twin: int
    day: int
    count: int
    first_ts: int
    last_ts: int
    root: bytes
    file: str | None

    def pack(self) -> bytes:
        return msgpack.packb(list(self), use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def unpack(cls, raw: bytes) -> _Info:
        return cls(*msgpack.unpackb(raw, raw=False))


def twin_share(twin: int, shares: int) -> int:
    """Which of ``shares`` shares ``twin`` belongs to (flushes, reports): a multiplicative
    hash, so that a facility's twins (often every n-th id) spread over all shares."""
    return ((twin * 0x9E3779B1) & 0xFFFFFFFF) * shares >> 32


_Pending = tuple[bytes, int, bytes]  # device, seq, the staged batch's raw readings


def _key(device: bytes, seq: int) -> bytes:
    return device + _SEQ.pack(seq)


_COUNTERS = ("batches", "readings", "expired_batches", "flushed_rows", "summaries_missing")


def _split(key: bytes) -> tuple[bytes, int]:
    return key[:32], _SEQ.unpack(key[32:40])[0]


@dataclass
class _Counters:
    batches: int = 0  # archived since the archive was created
    readings: int = 0
    expired_batches: int = 0
    flushed_rows: int = 0
    # Archived batches holding readings of a metric their twin makes public without its
    # summary: the chain's public aggregates miss them (the device, or its gateway, left
    # them out). Kept, since the readings are what the device signed; counted and logged.
    summaries_missing: int = 0
    refused: dict[str, int] = field(default_factory=dict)


class ArchiveStore:
    """The archive of ``facility`` in folder ``path``: LevelDB staging in ``path/staging``,
    Parquet under ``path/readings``.

    ``chain`` may be given later (:meth:`bind`), once the node it reads exists; until then
    :meth:`deliver` and :meth:`on_finalized` raise RuntimeError. ``retention_days``: day
    partitions older than that many days are deleted by :meth:`maintain` (None: kept for
    good). ``clock`` (ms) is for tests."""

    def __init__(
        self,
        path: str | Path,
        facility: int,
        chain: ChainView | None = None,
        retention_days: int | None = None,
        *,
        flush_rows: int = FLUSH_ROWS,
        stage_timeout_s: float = STAGE_TIMEOUT_S,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.path = Path(path)
        self.facility = facility
        self.chain = chain
        self.retention_days = retention_days
        self.flush_rows = flush_rows
        self.stage_timeout_ms = int(stage_timeout_s * 1000)
        self.clock = clock
        #: Test hook: called with a step name between the steps of a file write
        #: ("written", "renamed", "marked"); raising there simulates a crash.
        self.fail_point: Callable[[str], None] | None = None
        self.path.mkdir(parents=True, exist_ok=True)
        self._kv = LevelDBStore(self.path / "staging")
        #: The facility's documents by content hash (manuals, certificates, evidence).
        self.documents = DocumentStore(self.path / "documents")
        self._lock = threading.Lock()  # LevelDB state and counters
        self._files_lock = threading.Lock()  # one file writer at a time (flush, maintain)
        self._metrics_written: dict[int, Any] | None = None
        self._counters = self._load_counters()
        self._spans = {
            struct.unpack(">Q", k[1:9])[0]: _U64.unpack(v)[0] for k, v in self._kv.iterate(_SPAN)
        }
        self._pending_rows = sum(len(v) // READING.size for _, v in self._kv.iterate(_PENDING))
        self._recover()

    # ------------------------------------------------------------------ life cycle
    def bind(self, chain: ChainView) -> None:
        """Read the chain through ``chain`` from now on."""
        self.chain = chain

    def close(self) -> None:
        with self._files_lock, self._lock:
            self._kv.close()

    def _view(self) -> ChainView:
        if self.chain is None:
            raise RuntimeError("the archive is not bound to a chain yet")
        return self.chain

    def _load_counters(self) -> _Counters:
        c = _Counters()
        for name in _COUNTERS:
            raw = self._kv.get(_META + name.encode())
            if raw is not None:
                setattr(c, name, _U64.unpack(raw)[0])
        c.refused = {k[1:].decode(): _U64.unpack(v)[0] for k, v in self._kv.iterate(_REFUSED)}
        return c

    def _put_counters(self, wb: WriteBatch) -> None:
        c = self._counters
        for name in _COUNTERS:
            wb.put(_META + name.encode(), _U64.pack(getattr(c, name)))
        for reason, n in c.refused.items():
            wb.put(_REFUSED + reason.encode(), _U64.pack(n))

    def _recover(self) -> None:
        """Delete what an interrupted write left: temporary files, and files no LevelDB
        write registered (their batches are still pending, or already in their successor)."""
        root = self.path / parquet.READINGS_DIR
        if not root.exists():
            return
        for tmp in root.rglob(f".*{parquet.TMP_SUFFIX}"):
            log.info("archive: removing the unfinished file %s", tmp)
            tmp.unlink()
        registered = {k[1:].decode() for k, _ in self._kv.iterate(_FILES)}
        for f in root.rglob("*.parquet"):
            rel = f.relative_to(self.path).as_posix()
            if rel not in registered:
                log.info("archive: removing %s, written but never recorded", rel)
                f.unlink()
        for rel in registered:
            if not (self.path / rel).exists():
                log.error("archive: %s is recorded but missing", rel)

    # ------------------------------------------------------------------ delivery
    def deliver(self, gateway: bytes, batches: Sequence[Batch]) -> list[Delivery]:
        """Take ``batches`` from ``gateway``: one answer per batch, in order. A batch of a
        device bound to a twin of another facility, or delivered by another account than the
        device's gateway (its binder when it has none), is refused. A batch whose commitment
        is already final is checked and archived (or refused) at once; one that is not yet
        is staged. Delivering a batch again is harmless and answers its current state."""
        chain = self._view()
        # Judged without the lock (chain reads, Merkle roots): settling and other
        # deliveries go on meanwhile; only the outcome is applied under it.
        verdicts = [self._judge(chain, gateway, b) for b in batches]
        out: list[Delivery] = []
        with self._lock:
            wb = WriteBatch()
            for batch, (status, reason, record) in zip(batches, verdicts, strict=True):
                key = _key(batch.device, batch.seq)
                if self._kv.get(_ARCHIVED + key) is not None or _ARCHIVED + key in wb.ops:
                    out.append(Delivery(batch.device, batch.seq, ARCHIVED))
                elif status == REFUSED:
                    out.append(self._refuse(batch, reason or ""))
                elif status == ARCHIVED:
                    assert record is not None
                    out.append(self._archive(wb, batch, record))
                else:
                    wb.put(_STAGED + key, msgpack.packb([batch.to_bytes(), self.clock()]))
                    out.append(Delivery(batch.device, batch.seq, STAGED))
            if len(wb) or any(d.status == REFUSED for d in out):
                self._put_counters(wb)
                # Synced when something was archived: the answer lets the gateway drop it.
                self._kv.write(wb, sync=any(d.status == ARCHIVED for d in out))
        return out

    def _judge(
        self, chain: ChainView, gateway: bytes, batch: Batch
    ) -> tuple[str, str | None, BatchRecord | None]:
        """(what to do with a delivered batch, why refused, its final record)."""
        dev, seq = batch.device, batch.seq
        if self._kv.get(_ARCHIVED + _key(dev, seq)) is not None:
            return ARCHIVED, None, None  # answered as archived under the lock
        binding = chain.device(dev)
        if binding is None:
            return REFUSED, UNKNOWN_DEVICE, None
        if chain.twin_facility(binding.twin) != self.facility:
            return REFUSED, NOT_THIS_FACILITY, None
        if gateway != binding.relay:
            return REFUSED, NOT_THE_GATEWAY, None
        if not len(batch.readings):
            return REFUSED, NO_READINGS, None
        _, first_ts, _ = survey_readings(batch.readings)
        if self._expired(day_of(first_ts)):
            return REFUSED, EXPIRED, None
        record = chain.batch_record(dev, seq)
        if record is not None:
            reason = self._check(chain, batch, record)
            return (REFUSED, reason, None) if reason else (ARCHIVED, None, record)
        if binding.next_seq > seq:
            return REFUSED, NOT_ON_CHAIN, None
        return STAGED, None, None

    def _check(self, chain: ChainView, batch: Batch, record: BatchRecord) -> str | None:
        """None if ``batch`` is what the finalized ``record`` commits to, else why not."""
        reason = check_batch(batch, record)
        if reason is None and chain.twin_facility(record.twin) != self.facility:
            reason = NOT_THIS_FACILITY  # rebound to another facility's twin meanwhile
        return reason

    def _refuse(self, batch: Batch, reason: str) -> Delivery:
        """Count and log a refusal (under the lock). A staged copy stays: a wrong sender or a
        bad copy must not evict the good one."""
        refused = self._counters.refused
        refused[reason] = refused.get(reason, 0) + 1
        log.warning(
            "archive: refused batch %d of device 0x%s: %s", batch.seq, batch.device.hex(), reason
        )
        return Delivery(batch.device, batch.seq, REFUSED, reason)

    def _archive(self, wb: WriteBatch, batch: Batch, record: BatchRecord) -> Delivery:
        """Archive a checked batch (under the lock): its rows pending the next flush, its
        record in the indexes by time and by day."""
        dev, seq, key = batch.device, batch.seq, _key(batch.device, batch.seq)
        day = day_of(record.first_ts)
        info = _Info(
            record.twin, day, record.count, record.first_ts, record.last_ts, record.root, None
        )
        wb.delete(_STAGED + key)
        wb.put(_ARCHIVED + key, info.pack())
        wb.put(_PENDING + key, packed_readings(batch.readings))
        wb.put(
            _BY_TIME + struct.pack(">QQ", record.twin, record.first_ts) + key,
            _U64.pack(record.last_ts),
        )
        wb.put(_BY_DAY + _DAY.pack(day) + struct.pack(">Q", record.twin) + key, b"")
        span = record.last_ts - record.first_ts
        if span > self._spans.get(record.twin, -1):
            self._spans[record.twin] = span
            wb.put(_SPAN + struct.pack(">Q", record.twin), _U64.pack(span))
        c = self._counters
        c.batches += 1
        c.readings += record.count
        missing = self._missing_summaries(batch, record.twin)
        if missing:
            c.summaries_missing += 1
            log.warning(
                "archive: batch %d of device 0x%s has readings of public metrics %s without "
                "their summaries: the chain's public aggregates miss them",
                seq,
                dev.hex()[:16],
                missing,
            )
        self._pending_rows += record.count
        return Delivery(dev, seq, ARCHIVED)

    def _missing_summaries(self, batch: Batch, twin: int) -> list[int]:
        """Public metrics (by the twin's policy at the finalized block) the batch holds
        readings of but does not summarize (a policy changed since signing shows here too)."""
        chain = self.chain
        if chain is None:
            return []
        metrics, _, _ = survey_readings(batch.readings)
        summarized = {m.metric for m in batch.public}
        public = chain.public_metrics(twin)
        return sorted(m for m in metrics if m in public and m not in summarized)

    def on_finalized(self) -> dict[str, int]:
        """Settle the staged batches against the finalized chain: archive those whose record
        is final and matches, refuse those that do not match or that the device's sequence
        passed without a record (or that waited longer than the stage timeout). Returns how
        many were archived, refused and are still staged."""
        chain = self._view()
        now = self.clock()
        done = {ARCHIVED: 0, REFUSED: 0, STAGED: 0}
        # Judged outside the lock, as deliveries are; applied only to what is still staged
        # as it was judged (a re-delivery meanwhile is judged at the next block).
        judged: list[tuple[bytes, bytes, Batch, str, str | None, BatchRecord | None]] = []
        for k, v in list(self._kv.iterate(_STAGED)):
            raw, received = msgpack.unpackb(v)
            try:
                batch = Batch.from_bytes(raw)
            except CodecError as exc:  # we wrote it: only a damaged database does this
                log.error("archive: staged batch %s undecodable: %s", k[1:].hex(), exc)
                continue
            record = chain.batch_record(batch.device, batch.seq)
            if record is not None:
                reason = self._check(chain, batch, record)
                verdict = (REFUSED, reason, None) if reason else (ARCHIVED, None, record)
            else:
                binding = chain.device(batch.device)
                if binding is not None and binding.next_seq > batch.seq:
                    verdict = (REFUSED, NOT_ON_CHAIN, None)
                elif now - received > self.stage_timeout_ms:
                    verdict = (REFUSED, NEVER_COMMITTED, None)
                else:
                    verdict = (STAGED, None, None)
            judged.append((k, v, batch, *verdict))
        with self._lock:
            wb = WriteBatch()
            for k, v, batch, status, reason, record in judged:
                if status == STAGED:
                    done[STAGED] += 1
                    continue
                if self._kv.get(k) != v:
                    continue  # delivered again meanwhile: judged again next time
                if status == REFUSED:
                    self._refuse(batch, reason or "")
                    wb.delete(k)
                else:
                    assert record is not None
                    self._archive(wb, batch, record)
                done[status] += 1
            if len(wb):
                self._put_counters(wb)
                self._kv.write(wb, sync=True)
        if done[ARCHIVED] or done[REFUSED]:
            log.debug("archive: %s", done)
        return done

    @property
    def pending_rows(self) -> int:
        """Readings archived but not yet in a Parquet file."""
        return self._pending_rows

    def flush_due(self) -> bool:
        """Whether enough rows wait for a flush before its period ends."""
        return self._pending_rows >= self.flush_rows

    # ------------------------------------------------------------------ files
    def _fail(self, step: str) -> None:
        if self.fail_point is not None:
            self.fail_point(step)

    def _next_file(self, twin: int, day: int) -> tuple[str, Path, bytes]:
        """A new part file's relative and absolute path, and the counter's next value to
        store with its registration (a number that a crash left unused is simply used
        again: its file was removed on open)."""
        raw = self._kv.get(_META + b"next_file")
        n = 0 if raw is None else _U64.unpack(raw)[0]
        rel = f"{parquet.partition(twin, day)}/part-{n:08d}.parquet"
        return rel, self.path / rel, _U64.pack(n + 1)

    def _write_file(
        self, twin: int, day: int, table: pa.Table, mark: Callable[[WriteBatch, str], None]
    ) -> Path:
        """Write ``table`` as the twin's next part file of ``day``, crash-safe: to a temporary
        name, fsynced, renamed; then, in one synced LevelDB write, register the file and let
        ``mark`` record what it holds (under the store's lock). A crash before that write
        leaves an unregistered file, removed on open. Returns the file's path."""
        with self._lock:
            rel, final, next_n = self._next_file(twin, day)
        tmp = parquet.write_tmp(table, final)
        self._fail("written")
        parquet.publish(tmp, final)
        self._fail("renamed")
        with self._lock:
            wb = WriteBatch()
            wb.put(_FILES + rel.encode(), msgpack.packb([twin, day, table.num_rows]))
            wb.put(_META + b"next_file", next_n)
            mark(wb, rel)
            self._kv.write(wb, sync=True)
        self._fail("marked")
        return final

    def flush(self, share: tuple[int, int] | None = None) -> int:
        """Write every pending batch to Parquet (one new file per twin and day) and mark them
        flushed; returns the rows written. ``share`` ``(k, n)``: only the twins of the k-th of
        ``n`` shares (:func:`twin_share`), so that a service flushing one share at a time
        spreads the work instead of stalling its node once per period."""
        with self._files_lock:
            with self._lock:
                groups: dict[tuple[int, int], list[_Pending]] = {}
                for k, raw in self._kv.iterate(_PENDING):
                    info = _Info.unpack(self._kv.get(_ARCHIVED + k[1:]) or b"")
                    if share is not None and twin_share(info.twin, share[1]) != share[0]:
                        continue
                    dev, seq = _split(k[1:])
                    groups.setdefault((info.twin, info.day), []).append((dev, seq, raw))
                self._write_metrics_if_changed()
            rows = 0
            for (twin, day), batches in sorted(groups.items()):
                batches.sort(key=lambda b: (b[0], b[1]))
                table = parquet.batches_table(batches)

                def flushed(
                    wb: WriteBatch,
                    rel: str,
                    batches: list[_Pending] = batches,
                    n: int = table.num_rows,
                ) -> None:
                    for dev, seq, _ in batches:
                        key = _key(dev, seq)
                        wb.delete(_PENDING + key)
                        info = _Info.unpack(self._kv.get(_ARCHIVED + key) or b"")
                        wb.put(_ARCHIVED + key, info._replace(file=rel).pack())
                    self._counters.flushed_rows += n
                    self._put_counters(wb)
                    self._pending_rows -= n

                self._write_file(twin, day, table, flushed)
                rows += table.num_rows
            if rows:
                log.info("archive: flushed %d readings in %d files", rows, len(groups))
                self.write_stats()
            return rows

    def _write_metrics_if_changed(self) -> None:
        if self.chain is None:
            return
        try:
            metrics = self.chain.metrics()
        except Exception as exc:  # state pruned meanwhile: next time
            log.debug("archive: metrics not read: %s", exc)
            return
        if metrics != self._metrics_written:
            parquet.write_metrics(self.path, metrics)
            self._metrics_written = metrics

    def _files(self) -> Iterator[tuple[str, int, int, int]]:
        """(relative path, twin, day, rows) of every registered file."""
        for k, v in self._kv.iterate(_FILES):
            twin, day, rows = msgpack.unpackb(v)
            yield k[1:].decode(), twin, day, rows

    def _today(self) -> int:
        return day_of(self.clock())

    def _expired(self, day: int) -> bool:
        return self.retention_days is not None and day < self._today() - self.retention_days

    def maintain(self) -> dict[str, int]:
        """Delete the day partitions past the retention period, then compact each finished
        day's part files into one. Returns how many partitions were compacted and expired."""
        with self._files_lock:
            expired = self._expire() if self.retention_days is not None else 0
            compacted = self._compact()
            if compacted or expired:
                self.write_stats()
            return {"compacted": compacted, "expired": expired}

    def _compact(self) -> int:
        finished_before = self.clock() - COMPACT_GRACE_MS
        with self._lock:
            parts: dict[tuple[int, int], list[str]] = {}
            for rel, twin, day, _ in self._files():
                if (day + 1) * DAY_MS <= finished_before:
                    parts.setdefault((twin, day), []).append(rel)
        n = 0
        for (twin, day), rels in sorted(parts.items()):
            if len(rels) < 2:
                continue
            table = pa.concat_tables(
                [pq.read_table(self.path / r, schema=parquet.SCHEMA) for r in rels]
            )
            table = table.sort_by(
                [("device", "ascending"), ("seq", "ascending"), ("idx", "ascending")]
            )

            def replaced(wb: WriteBatch, rel: str, rels: list[str] = rels, twin: int = twin,
                         day: int = day) -> None:  # fmt: skip
                for r in rels:
                    wb.delete(_FILES + r.encode())
                prefix = _BY_DAY + _DAY.pack(day) + struct.pack(">Q", twin)
                for k, _ in self._kv.iterate(prefix):
                    akey = _ARCHIVED + k[len(prefix) :]
                    info = _Info.unpack(self._kv.get(akey) or b"")
                    if info.file in rels:
                        wb.put(akey, info._replace(file=rel).pack())

            final = self._write_file(twin, day, table, replaced)
            for r in rels:
                (self.path / r).unlink(missing_ok=True)
            parquet.fsync_dir(final.parent)
            log.info(
                "archive: compacted %d files of twin %d, %s", len(rels), twin, parquet.day_name(day)
            )
            n += 1
        return n

    def _expire(self) -> int:
        assert self.retention_days is not None
        cutoff = self._today() - self.retention_days
        with self._lock:
            wb = WriteBatch()
            days: set[tuple[int, int]] = set()
            batches = readings = 0
            for k, _ in self._kv.iterate(_BY_DAY):
                day = _DAY.unpack(k[1:5])[0]
                if day >= cutoff:
                    break
                twin = struct.unpack(">Q", k[5:13])[0]
                key = k[13:]
                info = _Info.unpack(self._kv.get(_ARCHIVED + key) or b"")
                days.add((twin, day))
                wb.delete(k)
                wb.delete(_ARCHIVED + key)
                if self._kv.get(_PENDING + key) is not None:
                    wb.delete(_PENDING + key)
                    self._pending_rows -= info.count
                wb.delete(_BY_TIME + struct.pack(">QQ", twin, info.first_ts) + key)
                batches += 1
                readings += info.count
            for rel, twin, day, _ in list(self._files()):
                if day < cutoff:
                    wb.delete(_FILES + rel.encode())
                    days.add((twin, day))
            if not len(wb):
                return 0
            self._counters.expired_batches += batches
            self._put_counters(wb)
            self._kv.write(wb, sync=True)
        self._fail("marked")
        for twin, day in sorted(days):
            folder = self.path / parquet.partition(twin, day)
            shutil.rmtree(folder, ignore_errors=True)
            try:
                folder.parent.rmdir()  # the twin's folder, once its last day is gone
            except OSError:
                pass
        log.info(
            "archive: retention removed %d partitions (%d batches, %d readings)",
            len(days), batches, readings,
        )  # fmt: skip
        return len(days)

    # ------------------------------------------------------------------ reads
    def status(self, device: bytes, seq: int) -> str | None:
        """ "archived", "staged" or None (unknown: never delivered, refused or expired)."""
        key = _key(device, seq)
        if self._kv.get(_ARCHIVED + key) is not None:
            return ARCHIVED
        if self._kv.get(_STAGED + key) is not None:
            return STAGED
        return None

    def readings(
        self,
        twin: int,
        metric: int | None,
        from_ms: int,
        to_ms: int,
        limit: int | None = None,
    ) -> list[ArchivedBatch]:
        """The archived batches of ``twin`` with a reading in ``[from_ms, to_ms]`` (of
        ``metric`` if given), by first timestamp, at most ``limit`` batches; each with ALL its
        readings in leaf order (what a reading's Merkle proof needs)."""
        for _ in range(3):  # a compaction may replace a file between lookup and read
            try:
                return self._readings(twin, metric, from_ms, to_ms, limit)
            except FileNotFoundError:
                continue
        return self._readings(twin, metric, from_ms, to_ms, limit)

    def _readings(
        self, twin: int, metric: int | None, from_ms: int, to_ms: int, limit: int | None
    ) -> list[ArchivedBatch]:
        found: list[tuple[bytes, _Info, bytes | None]] = []  # key, info, pending readings
        with self._lock:
            span = self._spans.get(twin)
            if span is None:
                return []
            prefix = _BY_TIME + struct.pack(">Q", twin)
            start = prefix + struct.pack(">Q", max(0, from_ms - span))
            for k, v in self._kv.iterate(prefix, start=start):
                first_ts = struct.unpack(">Q", k[9:17])[0]
                if first_ts > to_ms:
                    break
                if _U64.unpack(v)[0] < from_ms:
                    continue
                key = k[17:]
                info = _Info.unpack(self._kv.get(_ARCHIVED + key) or b"")
                found.append((key, info, self._kv.get(_PENDING + key)))
        by_file: dict[str, list[tuple[bytes, int]]] = {}
        for key, info, raw in found:
            if raw is None and info.file is not None:
                by_file.setdefault(info.file, []).append(_split(key))
        loaded: dict[tuple[bytes, int], bytes] = {}
        for rel, wanted in by_file.items():
            loaded.update(parquet.read_batches(self.path / rel, wanted))
        out: list[ArchivedBatch] = []
        for key, info, raw in found:
            dev, seq = _split(key)
            raw = raw if raw is not None else loaded.get((dev, seq))
            if raw is None:
                log.error("archive: rows of batch %d of 0x%s are missing", seq, dev.hex())
                continue
            if not _has_reading(raw, metric, from_ms, to_ms):
                continue
            out.append(
                ArchivedBatch(
                    dev, seq, PackedReadings(raw), info.twin, info.root, info.first_ts, info.last_ts
                )
            )
            if limit is not None and len(out) >= limit:
                break
        return out

    def stats(self) -> dict[str, Any]:
        """Counts: staged, pending (not yet in Parquet), archived (since creation), expired,
        refused by reason, files and their bytes."""
        with self._lock:
            c = self._counters
            files = list(self._files())
            staged = sum(1 for _ in self._kv.iterate(_STAGED))
            return {
                "facility": self.facility,
                "staged_batches": staged,
                "pending_readings": self._pending_rows,
                "archived_batches": c.batches,
                "archived_readings": c.readings,
                "flushed_readings": c.flushed_rows,
                "expired_batches": c.expired_batches,
                "summaries_missing": c.summaries_missing,
                "refused": dict(sorted(c.refused.items())),
                "refused_batches": sum(c.refused.values()),
                "files": len(files),
                "file_bytes": sum(_size(self.path / f[0]) for f in files),
                "retention_days": self.retention_days,
            }

    def write_stats(self) -> None:
        """``stats.json``: what ``twinchain archive stats`` shows while the node holds the
        database (LevelDB admits one process)."""
        final = self.path / "stats.json"
        tmp = parquet.tmp_path(final)
        tmp.write_text(json.dumps({**self.stats(), "written_ms": self.clock()}, indent=1))
        os.replace(tmp, final)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _has_reading(raw: bytes, metric: int | None, from_ms: int, to_ms: int) -> bool:
    leaves = np.frombuffer(raw, dtype=parquet.LEAF)
    hit = (leaves["ts"] >= from_ms) & (leaves["ts"] <= to_ms)
    if metric is not None:
        hit &= leaves["metric"] == metric
    return bool(hit.any())


__all__ = [
    "ARCHIVED",
    "EXPIRED",
    "NEVER_COMMITTED",
    "NOT_ON_CHAIN",
    "NOT_THE_GATEWAY",
    "NOT_THIS_FACILITY",
    "REFUSED",
    "STAGED",
    "UNKNOWN_DEVICE",
    "ArchiveStore",
    "ArchivedBatch",
    "Delivery",
]
