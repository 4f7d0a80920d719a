"""Facility reports: a twin's KPIs and per-reading alerts, computed off chain by the facility
that keeps its raw readings, anchored on chain by digest (issue 19).

A private metric has a commitment only: the chain cannot compute its KPIs or check its
readings. The facility's node does, for each closed window of each of its twins:

1. **Which batches.** The chain lists a twin's accepted batches in order
   (``Telemetry.TwinBatchLog``); a batch lies in one window (``submit`` refuses one that
   spans two). :class:`ReportBook` keeps a cursor per twin and the batches of each window not
   yet reported, in the archive's folder (``reports/``, LevelDB).
2. **When.** A report covers a period of ``windows`` telemetry windows (1 by default; a
   batch lies in one window, hence in one period; "window" below means the period). A
   window ``[start, start + window_ms)`` is reported once the finalized chain's time is
   ``delay_ms`` past its end and every batch the finalized chain lists for it is
   archived here, or, failing that, ``grace_ms`` later: the report then names the batches it
   covers and those it misses. A batch the chain accepts for a window already reported (a
   gateway that was offline longer than the delay) is counted as late and not reported again:
   a report says exactly which batches it covers.
3. **What.** :func:`compute` turns the covered batches' readings (all metrics, private ones
   included) into a :class:`Report`: per metric count, min, max, sum and mean (integers in
   the metric's fixed-point scale: no floats anywhere that is hashed), derived KPIs in parts
   per million (the Analytics pallet's formulas, :class:`Kpis`), and the counts of the
   per-reading alerts, listed in an :class:`AlertReport`:

   * ``TooFast``: two consecutive readings (by timestamp) of one device and metric closer
     than the twin's capture ``min_interval_ms`` for that metric;
   * ``ImplausibleJump``: two consecutive readings whose values differ by more than the
     metric's ``max_step`` in the twin's operating envelope (0: unchecked);
   * ``OutOfRange``: a reading outside the envelope's ``[min, max]`` (the chain checks only
     the summaries of public metrics against it).

   Consecutive means within the window: the first reading of a window is not compared with
   the previous window's last. The rules used are written into the report (:class:`Rule`),
   so a reader recomputes it from the readings alone.
4. **Anchored.** Both documents are canonical msgpack (:class:`~twinchain.primitives.codec.Record`),
   kept in the archive's :class:`~twinchain.archive.documents.DocumentStore` by BLAKE3 digest,
   and anchored with ``Telemetry.anchor(twin, KPI, from, to, digest)`` (and a second anchor of
   kind ALERT when the window has alerts), signed by the report key (the twin's owner or its
   facility's operator). The chain holds only digests; ``archive_getDocument`` serves an
   anchored report to those the chain lets read the twin.

Exactly once per (twin, window, kind): the digest is written to LevelDB (pending) before
anything is submitted, then the nonce (the best chain's, past those of the service's own
anchors not yet in it) and the signed extrinsic, then it is submitted. An
anchor found in finalized state (same twin, kind and window, by the report key) settles it.
Until then, the same signed extrinsic is resubmitted while its nonce is unused (signed again
with that same nonce only if the runtime version it names is no longer the chain's); only
once the finalized chain has used that nonce without anchoring (another extrinsic of the key
took it, or the anchor failed) is it signed again with a new nonce. Two extrinsics of one
anchor never hold different free nonces, so a reorg cannot include both.

Reports cost the node little between periods: one pass a finalized block sorts the new
batches (one chain read each) and checks what is pending; at most ``MAX_REPORTS_PER_PASS``
reports are made a pass, in a worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import msgpack
import numpy as np
import trio

from twinchain.archive.documents import MAX_DOCUMENT
from twinchain.archive.hosting import GRACE_MS
from twinchain.archive.parquet import LEAF
from twinchain.archive.store import twin_share
from twinchain.primitives.codec import (
    H256,
    I64,
    U16,
    U32,
    U64,
    AccountId,
    CodecError,
    Enum,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic, extrinsic_hash
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    DOWNTIME,
    ENERGY,
    GOOD_UNITS,
    READING,
    RUN_TIME,
    UNITS_PRODUCED,
)
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets.telemetry.types import ANCHOR_ALERT, ANCHOR_KPI, I128
from twinchain.runtime.runtime import Runtime
from twinchain.storage.abc import WriteBatch
from twinchain.storage.kv import LevelDBStore

if TYPE_CHECKING:
    from twinchain.archive.store import ArchiveStore
    from twinchain.node.blockchain import Blockchain
    from twinchain.node.service import Node

log = logging.getLogger("twinchain.archive.reports")

REPORT_FORMAT = "twinchain-report/1"
ALERTS_FORMAT = "twinchain-alerts/1"
PPM = 1_000_000
MAX_LISTED_ALERTS = 10_000  # ~100 bytes each: the alert document stays under 1 MiB
RESUBMIT_S = 6.0  # an anchor neither in the pool nor in a block this long is sent again
# Reports made in one pass (one finalized block): all twins' periods end together, and a
# burst of Parquet reads and hashing would hold the node's interpreter for a while.
MAX_REPORTS_PER_PASS = 8
# A period's reports are spread over the next period in this many steps (by twin).
SPREAD_SHARES = 12
MAX_NONCE_ATTEMPTS = 5  # anchors whose nonce the chain used without anchoring: then give up
KIND_NAMES = {ANCHOR_KPI: "kpi", ANCHOR_ALERT: "alert"}
INDEX_FILE = "reports.jsonl"
COUNTERS_FILE = "reports-counters.json"

AlertKind = Enum("AlertKind", ("TooFast", "ImplausibleJump", "OutOfRange"))
ALERT_KINDS = ("TooFast", "ImplausibleJump", "OutOfRange")


class ReportError(Exception):
    """A report that cannot be made or checked: no key for the twin, bad document."""


# --------------------------------------------------------------------------- documents


@dataclass
class Rule(Record):
    """The per-reading rules of one metric as the chain had them when the report was made:
    the capture interval (0: unchecked) and the operating envelope (None: none)."""

    metric: int
    min_interval_ms: int
    min: int | None
    max: int | None
    max_step: int
    FIELDS: ClassVar = {
        "metric": U16,
        "min_interval_ms": U32,
        "min": Option(I64),
        "max": Option(I64),
        "max_step": U64,
    }


@dataclass
class CoveredBatch(Record):
    """A batch a report covers, as the chain records it: anyone allowed re-checks its readings
    against ``root`` (``twinchain archive verify``, reading proofs)."""

    device: bytes
    seq: int
    root: bytes
    count: int
    FIELDS: ClassVar = {"device": AccountId, "seq": U64, "root": H256, "count": U32}


@dataclass
class MetricStats(Record):
    """One metric over the window, in its fixed-point scale; ``mean`` is ``sum // count``
    (floored). A Delta metric's ``sum`` is its total over the window."""

    metric: int
    count: int
    min: int
    max: int
    sum: int
    mean: int
    FIELDS: ClassVar = {
        "metric": U16,
        "count": U64,
        "min": I64,
        "max": I64,
        "sum": I128,
        "mean": I64,
    }


@dataclass
class Kpis(Record):
    """Derived KPIs, each None where its inputs are missing (ratios in ppm, floored once):
    total = max(units_produced, good + bad); availability = run / (run + down); performance =
    total / (ideal_rate x run_s / 3600) (Analytics' IdealRate, units per hour x 1000);
    quality = good / total; scrap = bad / total; oee = availability x min(performance, 1) x
    quality; energy_per_good_mwh = energy_wh x 1000 // good."""

    total_units: int | None
    availability_ppm: int | None
    performance_ppm: int | None
    quality_ppm: int | None
    scrap_ppm: int | None
    oee_ppm: int | None
    energy_per_good_mwh: int | None
    FIELDS: ClassVar = {
        "total_units": Option(U64),
        "availability_ppm": Option(U64),
        "performance_ppm": Option(U64),
        "quality_ppm": Option(U64),
        "scrap_ppm": Option(U64),
        "oee_ppm": Option(U64),
        "energy_per_good_mwh": Option(U64),
    }


@dataclass
class Report(Record):
    """A twin's KPI report over ``[from_ms, to_ms]`` (one telemetry window)."""

    format: str
    genesis: bytes
    facility: int
    twin: int
    from_ms: int
    to_ms: int
    batches: list[CoveredBatch]
    missing: list[tuple[bytes, int]]
    rules: list[Rule]
    ideal_rate: int
    metrics: list[MetricStats]
    kpis: Kpis
    alerts: list[tuple[str, int]]
    FIELDS: ClassVar = {
        "format": Str(64),
        "genesis": H256,
        "facility": U64,
        "twin": U64,
        "from_ms": U64,
        "to_ms": U64,
        "batches": Vec(CoveredBatch.wire_type(), 1 << 20),
        "missing": Vec(Tuple(AccountId, U64), 1 << 20),
        "rules": Vec(Rule.wire_type(), 1 << 16),
        "ideal_rate": U64,
        "metrics": Vec(MetricStats.wire_type(), 1 << 16),
        "kpis": Kpis.wire_type(),
        "alerts": Vec(Tuple(AlertKind, U32), len(ALERT_KINDS)),
    }

    def stats(self, metric: int) -> MetricStats | None:
        return next((s for s in self.metrics if s.metric == metric), None)

    def alert_count(self) -> int:
        return sum(n for _, n in self.alerts)


@dataclass
class Alert(Record):
    """One per-reading alert: the reading (device, batch, leaf index, metric, time, value),
    the one before it where the rule compares two, and the limit it broke."""

    kind: str
    device: bytes
    seq: int
    index: int
    metric: int
    ts: int
    value: int
    prev_ts: int | None
    prev_value: int | None
    limit: int
    FIELDS: ClassVar = {
        "kind": AlertKind,
        "device": AccountId,
        "seq": U64,
        "index": U32,
        "metric": U16,
        "ts": U64,
        "value": I64,
        "prev_ts": Option(U64),
        "prev_value": Option(I64),
        "limit": I64,
    }


@dataclass
class AlertReport(Record):
    """A window's alerts, bound to its KPI report by digest; ``total`` counts them all, the
    first ``MAX_LISTED_ALERTS`` (in device, metric, time order) are listed."""

    format: str
    genesis: bytes
    twin: int
    from_ms: int
    to_ms: int
    report: bytes
    total: int
    alerts: list[Alert]
    FIELDS: ClassVar = {
        "format": Str(64),
        "genesis": H256,
        "twin": U64,
        "from_ms": U64,
        "to_ms": U64,
        "report": H256,
        "total": U32,
        "alerts": Vec(Alert.wire_type(), MAX_LISTED_ALERTS),
    }


def decode_document(content: bytes) -> Report | AlertReport:
    """A report or alert document (ReportError if it is neither)."""
    for cls in (Report, AlertReport):
        try:
            doc = cls.from_bytes(content)
        except (CodecError, ValueError, TypeError):
            continue
        if doc.format in (REPORT_FORMAT, ALERTS_FORMAT):
            return doc  # type: ignore[no-any-return]
    raise ReportError("not a report or alert document")


def document_json(doc: Report | AlertReport) -> dict[str, Any]:
    """A document for people and JSON tools (bytes as 0x-hex)."""

    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return "0x" + v.hex()
        if isinstance(v, Record):
            return {k: plain(getattr(v, k)) for k in type(v).FIELDS}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(doc)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- computing


class BatchReadings(NamedTuple):
    """A covered batch with its readings, packed as their Merkle leaves."""

    device: bytes
    seq: int
    root: bytes
    raw: bytes


def compute(
    genesis: bytes,
    facility: int,
    twin: int,
    from_ms: int,
    to_ms: int,
    batches: Sequence[BatchReadings],
    missing: Iterable[tuple[bytes, int]],
    rules: Iterable[Rule],
    ideal_rate: int,
) -> tuple[Report, AlertReport | None]:
    """The window's report, and its alert document when it has alerts. Deterministic: the
    same batches and rules give the same bytes whatever their order here."""
    batches = sorted(batches, key=lambda b: (b.device, b.seq))
    rules_by = {r.metric: r for r in sorted(rules, key=lambda r: r.metric)}
    counts = np.fromiter((len(b.raw) // READING.size for b in batches), np.int64, len(batches))
    leaves = np.frombuffer(b"".join(b.raw for b in batches), dtype=LEAF)
    metric = leaves["metric"].astype(np.int64)
    ts = leaves["ts"].astype(np.int64)
    value = leaves["value"].astype(np.int64)
    bidx = np.repeat(np.arange(len(batches)), counts)
    leaf = np.arange(len(leaves)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = (ts >= from_ms) & (ts <= to_ms)  # a batch lies in one window: a guard only
    metric, ts, value, bidx, leaf = metric[keep], ts[keep], value[keep], bidx[keep], leaf[keep]

    stats: list[MetricStats] = []
    for m in np.unique(metric):
        v = value[metric == m]
        total = _exact_sum(v)
        stats.append(
            MetricStats(int(m), len(v), int(v.min()), int(v.max()), total, total // len(v))
        )
    by = {s.metric: s for s in stats}
    alerts = _alerts(batches, rules_by, metric, ts, value, bidx, leaf)
    alert_counts = [(k, n) for k in ALERT_KINDS if (n := sum(a.kind == k for a in alerts))]
    report = Report(
        REPORT_FORMAT,
        genesis,
        facility,
        twin,
        from_ms,
        to_ms,
        [CoveredBatch(b.device, b.seq, b.root, len(b.raw) // READING.size) for b in batches],
        sorted(missing),
        list(rules_by.values()),
        ideal_rate,
        stats,
        kpis(by, ideal_rate),
        alert_counts,
    )
    if not alerts:
        return report, None
    listed = alerts[:MAX_LISTED_ALERTS]
    doc = AlertReport(
        ALERTS_FORMAT, genesis, twin, from_ms, to_ms, report_digest(report), len(alerts), listed
    )
    return report, doc


def report_digest(doc: Report | AlertReport) -> bytes:
    return blake3_hash(doc.to_bytes())


def _exact_sum(v: np.ndarray) -> int:
    """The exact sum of i64 values: numpy's while it cannot overflow, Python's else."""
    if not len(v):
        return 0
    bound = max(abs(int(v.min())), abs(int(v.max())))
    if bound * len(v) < 1 << 63:
        return int(v.sum())
    return sum(int(x) for x in v)


def kpis(by: dict[int, MetricStats], ideal_rate: int) -> Kpis:
    """The derived KPIs of :class:`Kpis` from the window's per-metric sums."""

    def total_of(m: int) -> int | None:
        s = by.get(m)
        return None if s is None else max(0, s.sum)

    run, down = total_of(RUN_TIME), total_of(DOWNTIME)
    units, good, bad = total_of(UNITS_PRODUCED), total_of(GOOD_UNITS), total_of(BAD_UNITS)
    energy = total_of(ENERGY)
    total = None
    if units is not None or good is not None or bad is not None:
        total = max(units or 0, (good or 0) + (bad or 0))
    availability = None
    if run is not None and run + (down or 0) > 0:
        availability = run * PPM // (run + (down or 0))
    performance = None
    ideal_milli = ideal_rate * (run or 0) // 3600
    if total is not None and ideal_milli > 0:
        performance = total * 1000 * PPM // ideal_milli
    quality = scrap = None
    if total:
        quality = min(good or 0, total) * PPM // total if good is not None else None
        scrap = min(bad or 0, total) * PPM // total if bad is not None else None
    oee = None
    if availability is not None and performance is not None and quality is not None:
        oee = availability * min(performance, PPM) * quality // (PPM * PPM)
    epu = energy * 1000 // good if energy is not None and good else None
    cap = (1 << 64) - 1
    return Kpis(
        None if total is None else min(total, cap),
        availability,
        None if performance is None else min(performance, cap),
        quality,
        scrap,
        oee,
        None if epu is None else min(epu, cap),
    )


def _alerts(
    batches: Sequence[BatchReadings],
    rules: dict[int, Rule],
    metric: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    bidx: np.ndarray,
    leaf: np.ndarray,
) -> list[Alert]:
    """Every alert, ordered by device, metric, time (then batch, leaf, rule)."""
    if not len(ts) or not rules:
        return []
    ranks = {d: i for i, d in enumerate(sorted({b.device for b in batches}))}
    dev_rank = np.fromiter((ranks[b.device] for b in batches), np.int64, len(batches))[bidx]
    seq = np.fromiter((b.seq for b in batches), np.int64, len(batches))[bidx]
    order = np.lexsort((leaf, seq, ts, metric, dev_rank))
    metric, ts, value, bidx, leaf = metric[order], ts[order], value[order], bidx[order], leaf[order]
    dev_rank = dev_rank[order]
    same = np.zeros(len(ts), bool)
    same[1:] = (dev_rank[1:] == dev_rank[:-1]) & (metric[1:] == metric[:-1])
    gap = np.zeros(len(ts), np.int64)
    gap[1:] = ts[1:] - ts[:-1]
    step = np.zeros(len(ts), np.int64)
    step[1:] = np.abs(value[1:] - value[:-1])
    interval = np.zeros(len(ts), np.int64)
    max_step = np.zeros(len(ts), np.int64)
    lo = np.full(len(ts), np.iinfo(np.int64).min)
    hi = np.full(len(ts), np.iinfo(np.int64).max)
    for m, r in rules.items():
        at = metric == m
        interval[at] = r.min_interval_ms
        max_step[at] = min(r.max_step, np.iinfo(np.int64).max)
        if r.min is not None:
            lo[at] = r.min
        if r.max is not None:
            hi[at] = r.max
    checks = (
        ("TooFast", same & (gap < interval), interval),
        ("ImplausibleJump", same & (max_step > 0) & (step > max_step), max_step),
        ("OutOfRange", value < lo, lo),
        ("OutOfRange", value > hi, hi),
    )
    found: list[tuple[int, int, Alert]] = []
    for rank, (kind, mask, limit) in enumerate(checks):
        for i in np.flatnonzero(mask):
            b = batches[int(bidx[i])]
            pair = kind in ("TooFast", "ImplausibleJump")
            found.append(
                (
                    int(i),
                    rank,
                    Alert(
                        kind,
                        b.device,
                        b.seq,
                        int(leaf[i]),
                        int(metric[i]),
                        int(ts[i]),
                        int(value[i]),
                        int(ts[i - 1]) if pair else None,
                        int(value[i - 1]) if pair else None,
                        int(limit[i]),
                    ),
                )
            )
    found.sort(key=lambda f: (f[0], f[1]))
    return [a for _, _, a in found]


# --------------------------------------------------------------------------- the chain


def runtime_at(chain: Blockchain, block_hash: bytes) -> Runtime:
    """A runtime of its own reading ``block_hash``'s state (the importing one is untouched)."""
    rt = Runtime(chain.genesis_hash)
    rt.state = Overlay(chain.state_at(block_hash))
    return rt


def rules_of(rt: Runtime, twin: int) -> list[Rule]:
    """The twin's per-reading rules at ``rt``'s block: every metric with a capture interval
    or an operating envelope."""
    capture = rt.telemetry.Capture.get(twin) or {}
    envelopes = rt.equipment.envelopes(twin)
    out = []
    for m in sorted(set(capture) | set(envelopes)):
        c, e = capture.get(m), envelopes.get(m)
        interval = c.min_interval_ms if c is not None else 0
        if e is None:
            out.append(Rule(m, interval, None, None, 0))
        else:
            out.append(Rule(m, interval, e.min, e.max, e.max_step))
    return out


def ideal_rate_of(rt: Runtime, twin: int) -> int:
    """Analytics' IdealRate of the twin (units per hour x 1000; 0: unknown)."""
    analytics = rt.by_name.get("Analytics")
    fn = getattr(analytics, "ideal_rate", None)
    return int(fn(twin)) if fn is not None else 0


def find_anchor(
    rt: Runtime, twin: int, kind: int, from_ms: int, to_ms: int, by: bytes, since: int = 0
) -> tuple[int, Any] | None:
    """The twin's anchor of ``kind`` over exactly ``[from_ms, to_ms]`` by ``by``, if any,
    among those anchored after block ``since``. Anchor ids grow with their blocks: the scan
    goes from the newest back to ``since``, so a twin's long history is not read each time."""
    tel = rt.telemetry
    for aid in range(tel.AnchorCount.get(twin) - 1, -1, -1):
        a = tel.Anchors.get(twin, aid)
        if a is None:
            continue
        if a.block <= since:
            break
        if a.kind == kind and a.from_ms == from_ms and a.to_ms == to_ms and a.by == by:
            return aid, a
    return None


# --------------------------------------------------------------------------- progress

# LevelDB keys (big-endian fields, so that ranges sort by them):
_CURSOR = b"C"  # twin -> u64: entries of the twin's batch log already sorted into windows
_WINDOW = b"B"  # twin start device seq -> b"": batches of windows not reported yet
_PENDING = b"P"  # twin start kind -> msgpack Pending: digest kept, anchor not final yet
_DONE = b"D"  # twin start kind -> msgpack [digest, anchor id, block]
_META = b"M"  # name -> u64 (late batches)
_U64 = struct.Struct(">Q")
_TWS = struct.Struct(">QQ")
_TWSK = struct.Struct(">QQB")


@dataclass
class Pending:
    """An anchor decided but not final: its digest and window, the finalized block it was
    decided at (it can only be anchored after it), then (once signed) its nonce, extrinsic
    and the runtime version it was signed for, and how many nonces the chain used without
    anchoring it."""

    digest: bytes
    from_ms: int
    to_ms: int
    since: int = 0
    nonce: int | None = None
    xt: bytes | None = None
    spec: int = 0
    attempts: int = 0

    def pack(self) -> bytes:
        fields = [self.digest, self.from_ms, self.to_ms, self.since, self.nonce, self.xt]
        return msgpack.packb([*fields, self.spec, self.attempts], use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def unpack(cls, raw: bytes) -> Pending:
        return cls(*msgpack.unpackb(raw, raw=False))


class ReportBook:
    """The reporter's progress in LevelDB (``<archive>/reports``); one writer (the service's
    task), every change one synced write batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kv = LevelDBStore(path)

    def close(self) -> None:
        self.kv.close()

    def cursor(self, twin: int) -> int:
        raw = self.kv.get(_CURSOR + _U64.pack(twin))
        return 0 if raw is None else _U64.unpack(raw)[0]

    def windows(self) -> dict[tuple[int, int], list[tuple[bytes, int]]]:
        """(twin, start) -> its batches, of every window not reported yet."""
        out: dict[tuple[int, int], list[tuple[bytes, int]]] = {}
        for k, _ in self.kv.iterate(_WINDOW):
            twin, start = _TWS.unpack(k[1:17])
            out.setdefault((twin, start), []).append((k[17:49], _U64.unpack(k[49:57])[0]))
        return out

    def decided(self, twin: int, start: int) -> bool:
        """Whether the window's KPI report was made (pending or anchored)."""
        key = _TWSK.pack(twin, start, ANCHOR_KPI)
        return self.kv.get(_PENDING + key) is not None or self.kv.get(_DONE + key) is not None

    def pending(self) -> list[tuple[int, int, int, Pending]]:
        """(twin, start, kind, pending) of every anchor not final yet."""
        return [(*_TWSK.unpack(k[1:]), Pending.unpack(v)) for k, v in self.kv.iterate(_PENDING)]

    def done(self) -> list[tuple[int, int, int, bytes, int, int]]:
        """(twin, start, kind, digest, anchor id, block) of every final anchor."""
        out = []
        for k, v in self.kv.iterate(_DONE):
            digest, aid, block = msgpack.unpackb(v)
            out.append((*_TWSK.unpack(k[1:]), digest, aid, block))
        return out

    def meta(self, name: str) -> int:
        """A counter: ``late`` (batches after their window's report), ``too_large``
        (windows whose report would exceed a document's size)."""
        raw = self.kv.get(_META + name.encode())
        return 0 if raw is None else _U64.unpack(raw)[0]

    def late(self) -> int:
        return self.meta("late")

    def write(self, wb: WriteBatch, *, sync: bool = True) -> None:
        self.kv.write(wb, sync=sync)


def _put_pending(wb: WriteBatch, twin: int, start: int, kind: int, p: Pending) -> None:
    wb.put(_PENDING + _TWSK.pack(twin, start, kind), p.pack())


# --------------------------------------------------------------------------- the service


@dataclass
class ReportStats:
    """Since the service started: reports made, alerts in them, batches too late for their
    window's report, and sends of an anchor extrinsic signed before (taken or not)."""

    reports: int = 0
    alerts: int = 0
    late_batches: int = 0
    resubmitted: int = 0


class ReportService:
    """Makes and anchors the reports of ``store``'s facility (a ``NodeService``, hosted with
    the archive: ``--archive-report-key``). ``delay_ms`` (default: one window) after a
    report period's end on the finalized chain it reports the period: ``windows``
    consecutive telemetry windows (default 1); see the module docstring."""

    name = "reports"

    def __init__(
        self,
        store: ArchiveStore,
        key: Keypair,
        *,
        delay_ms: int | None = None,
        grace_ms: int = GRACE_MS,
        windows: int = 1,
        resubmit_s: float = RESUBMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.key = key
        self.delay_ms = delay_ms
        self.grace_ms = grace_ms
        if windows < 1:
            raise ValueError("a report covers at least one window")
        self.windows = windows
        self.resubmit_s = resubmit_s
        self.clock = clock
        self.stats = ReportStats()
        self.book: ReportBook | None = None
        self._wake = trio.Event()
        self._sent: dict[tuple[int, int, int], float] = {}
        # The batches of windows not reported yet (twin, start) -> refs; LevelDB's copy read
        # once at start.
        self._windows: dict[tuple[int, int], list[tuple[bytes, int]]] = {}
        self._skipped: set[int] = set()

    async def run(self, node: Node, *, task_status: trio.TaskStatus[int]) -> None:
        self.book = ReportBook(self.store.path / "reports")
        self._windows = self.book.windows()
        await trio.to_thread.run_sync(self.write_index)
        listeners = node.chain.finality_listeners
        listeners.append(self._on_finalized)
        try:
            log.info(
                "reports of facility %d anchored by 0x%s",
                self.store.facility,
                self.key.public.hex(),
            )
            self._wake.set()
            task_status.started(0)
            while True:
                with trio.move_on_after(self.resubmit_s):
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.step(node)
                except Exception:  # a state pruned while read, a bug: the next block retries
                    log.exception("reports: a pass failed")
        finally:
            listeners.remove(self._on_finalized)
            self.book.close()

    def _on_finalized(self, _header: object) -> None:
        self._wake.set()

    def period(self, rt: Runtime) -> int:
        """What one report covers: ``windows`` telemetry windows, aligned as windows are (a
        batch lies in one window, hence in one period)."""
        return rt.telemetry.window_ms() * self.windows

    async def step(self, node: Node) -> None:
        """One pass: settle what is final, report the windows now due (in a worker thread:
        Parquet reads, hashing), then send what waits for the chain (on the node's thread:
        the pool is its)."""
        chain = node.chain
        fin = chain.finalized.hash
        await trio.to_thread.run_sync(self.settle_and_prepare, chain, fin)
        self.send(node)

    # -- worker thread
    def settle_and_prepare(self, chain: Blockchain, at: bytes) -> None:
        assert self.book is not None
        rt = runtime_at(chain, at)
        self._settle(rt)
        self._sort_batches(rt)
        self._prepare(rt, chain.genesis_hash)

    def _settle(self, rt: Runtime) -> None:
        """Pending anchors found in finalized state are done."""
        assert self.book is not None
        wb = WriteBatch()
        settled: list[tuple[int, int, int, bytes, int, int]] = []
        for twin, start, kind, p in self.book.pending():
            found = find_anchor(rt, twin, kind, p.from_ms, p.to_ms, self.key.public, p.since)
            if found is None:
                continue
            aid, a = found
            if a.digest != p.digest:  # only our own earlier decision can do this: keep it
                log.warning(
                    "reports: twin %d window %d %s anchored as 0x%s, not 0x%s",
                    twin, start, KIND_NAMES.get(kind, kind), a.digest.hex(), p.digest.hex(),
                )  # fmt: skip
            key = _TWSK.pack(twin, start, kind)
            wb.delete(_PENDING + key)
            wb.put(_DONE + key, msgpack.packb([a.digest, aid, a.block], use_bin_type=True))
            settled.append((twin, start, kind, a.digest, aid, a.block))
            self._sent.pop((twin, start, kind), None)
            log.info(
                "reports: twin %d window %d %s report 0x%s anchored (#%d, block %d)",
                twin, start, KIND_NAMES.get(kind, kind), a.digest.hex()[:16], aid, a.block,
            )  # fmt: skip
        if len(wb):
            self.book.write(wb)
            self.append_index(settled)

    def _twins(self, rt: Runtime) -> list[int]:
        """The facility's twins that the key may anchor for (owner or facility operator)."""
        out = []
        fac = rt.facility.facility(self.store.facility)
        operator = fac is not None and fac.operator == self.key.public
        for twin in range(rt.equipment.NextTwinId.get()):
            t = rt.equipment.twin(twin)
            if t is None or t.facility != self.store.facility:
                continue
            if not operator and t.owner != self.key.public:
                if twin not in self._skipped:
                    self._skipped.add(twin)
                    log.warning(
                        "reports: the report key neither owns twin %d nor operates facility %d",
                        twin, self.store.facility,
                    )  # fmt: skip
                continue
            out.append(twin)
        return out

    def _sort_batches(self, rt: Runtime) -> None:
        """Put the batches the chain accepted since the last pass into their windows: one
        write for all twins, not synced (the cursor moves with the entries, atomically; a
        crash loses both and the next pass reads those batches again)."""
        assert self.book is not None
        window = self.period(rt)
        tel = rt.telemetry
        wb = WriteBatch()
        late = 0
        for twin in self._twins(rt):
            n, count = self.book.cursor(twin), tel.twin_batch_count(twin)
            if n >= count:
                continue
            for i in range(n, count):
                ref = tel.twin_batch(twin, i)
                rec = None if ref is None else tel.batch(*ref)
                if ref is None or rec is None:
                    continue
                start = rec.first_ts // window * window
                if (twin, start) not in self._windows and self.book.decided(twin, start):
                    late += 1
                    continue
                self._windows.setdefault((twin, start), []).append(ref)
                wb.put(_WINDOW + _TWS.pack(twin, start) + ref[0] + _U64.pack(ref[1]), b"")
            wb.put(_CURSOR + _U64.pack(twin), _U64.pack(count))
        if late:
            self.stats.late_batches += late
            wb.put(_META + b"late", _U64.pack(self.book.late() + late))
            log.warning("reports: %d batches arrived after their window was reported", late)
        if len(wb):
            self.book.write(wb, sync=False)
        if late:
            self.write_counters()

    def _prepare(self, rt: Runtime, genesis: bytes) -> None:
        """Report each due window: documents stored, digests pending, in one write."""
        assert self.book is not None
        window = self.period(rt)
        delay = rt.telemetry.window_ms() if self.delay_ms is None else self.delay_ms
        now = rt.timestamp.Now.get()
        made = 0
        for (twin, start), refs in sorted(self._windows.items()):
            if made >= MAX_REPORTS_PER_PASS:
                break  # the rest at the next block: twins' periods end together
            # Each twin's report waits its own share of a period more: all twins' periods end
            # together, and a facility reporting them at once (on every validator at once)
            # delayed the chain's blocks enough to push the readings' latency past its goal.
            end = start + window + twin_share(twin, SPREAD_SHARES) * window // SPREAD_SHARES
            if now < end + delay:
                continue
            archived = [r for r in refs if self.store.status(*r) == "archived"]
            if len(archived) < len(refs) and now < end + delay + self.grace_ms:
                continue
            self._report(rt, genesis, twin, start, window, refs, archived)
            made += 1

    def _report(
        self,
        rt: Runtime,
        genesis: bytes,
        twin: int,
        start: int,
        window: int,
        refs: list[tuple[bytes, int]],
        archived: list[tuple[bytes, int]],
    ) -> None:
        assert self.book is not None
        lo, hi = start, start + window - 1
        wanted = set(archived)
        found = {
            (b.device, b.seq): BatchReadings(b.device, b.seq, b.root, b.readings.raw)
            for b in self.store.readings(twin, None, lo, hi)
            if (b.device, b.seq) in wanted
        }
        missing = [r for r in refs if r not in found]
        report, alerts = compute(
            genesis,
            self.store.facility,
            twin,
            lo,
            hi,
            list(found.values()),
            missing,
            rules_of(rt, twin),
            ideal_rate_of(rt, twin),
        )
        wb = WriteBatch()
        docs = [(ANCHOR_KPI, report.to_bytes())]
        if alerts is not None:
            docs.append((ANCHOR_ALERT, alerts.to_bytes()))
        for dev, seq in refs:
            wb.delete(_WINDOW + _TWS.pack(twin, start) + dev + _U64.pack(seq))
        del self._windows[(twin, start)]
        if any(len(c) > MAX_DOCUMENT for _, c in docs):
            # A report names every batch (~80 bytes each): more than ~50,000 batches in one
            # window cannot be served as one document. Dropped, counted, never retried.
            log.error(
                "reports: twin %d window %d: %d batches make a report over %d bytes; skipped",
                twin, start, len(refs), MAX_DOCUMENT,
            )  # fmt: skip
            wb.put(_META + b"too_large", _U64.pack(self.book.meta("too_large") + 1))
            self.book.write(wb)
            self.write_counters()
            return
        for kind, content in docs:
            digest = self.store.documents.put(twin, content)  # durable before it is named
            _put_pending(wb, twin, start, kind, Pending(digest, lo, hi, rt.system.Number.get()))
        self.book.write(wb)
        self.stats.reports += 1
        self.stats.alerts += report.alert_count()
        log.info(
            "reports: twin %d window %d: %d batches (%d missing), %d metrics, %d alerts",
            twin, start, len(found), len(missing), len(report.metrics), report.alert_count(),
        )  # fmt: skip

    # -- the node's thread
    def send(self, node: Node) -> None:
        """Submit each pending anchor that is neither in a best-chain block nor in the pool
        (see the module docstring for the nonce rule)."""
        assert self.book is not None
        pending = self.book.pending()
        if not pending:
            return
        chain, who = node.chain, self.key.public
        best = runtime_at(chain, chain.best.hash)
        fin_nonce = runtime_at(chain, chain.finalized.hash).system.nonce(who)
        best_nonce = best.system.nonce(who)
        spec = chain.next_spec_version()  # what the next block checks signatures against
        # Our own unincluded nonces, not the pool's (decoding every pooled extrinsic on the
        # node's thread would stall it): another extrinsic of the key taking one of them is
        # what the nonce rule below recovers from.
        taken = [p.nonce for *_, p in pending if p.nonce is not None and p.nonce >= best_nonce]
        next_nonce = max([best_nonce, *(n + 1 for n in taken)])
        now = self.clock()
        for twin, start, kind, p in pending:
            if find_anchor(best, twin, kind, p.from_ms, p.to_ms, who, p.since) is not None:
                continue  # in a block: finality settles it
            key = (twin, start, kind)
            if p.nonce is not None and p.xt is not None and fin_nonce <= p.nonce:
                if node.pool.contains(_xt_hash(p.xt)) or best_nonce > p.nonce:
                    continue  # waiting for a block, or for finality to say who used it
                if now - self._sent.get(key, -1e9) < self.resubmit_s:
                    continue
                if p.spec != spec:
                    # Signed for a runtime version the chain no longer runs (an upgrade):
                    # signed again with the SAME nonce, so still only one can be included.
                    self._sign_and_keep(best, chain.genesis_hash, spec, key, p)
                self._submit(node, key, p.xt, again=True)
                continue
            if p.nonce is not None:
                p.attempts += 1  # the chain used the nonce without anchoring
                if p.attempts >= MAX_NONCE_ATTEMPTS:
                    log.error(
                        "reports: twin %d window %d: %d nonces used without an anchor; "
                        "giving up (is the report key still the owner or operator?)",
                        twin, start, p.attempts,
                    )  # fmt: skip
                    wb = WriteBatch()
                    wb.delete(_PENDING + _TWSK.pack(*key))
                    self.book.write(wb)
                    continue
            p.nonce, next_nonce = next_nonce, next_nonce + 1
            self._sign_and_keep(best, chain.genesis_hash, spec, key, p)
            self._submit(node, key, p.xt, again=False)

    def _sign_and_keep(
        self, rt: Runtime, genesis: bytes, spec: int, key: tuple[int, int, int], p: Pending
    ) -> None:
        """Sign ``p``'s anchor with its nonce for runtime version ``spec``, and keep the
        extrinsic before it leaves."""
        assert self.book is not None and p.nonce is not None
        twin, _, kind = key
        call = rt.call_by_name("Telemetry", "anchor", twin, kind, p.from_ms, p.to_ms, p.digest)
        p.xt, p.spec = _sign(call, self.key, p.nonce, genesis, spec), spec
        wb = WriteBatch()
        _put_pending(wb, *key, p)
        self.book.write(wb)

    def _submit(
        self, node: Node, key: tuple[int, int, int], xt: bytes | None, *, again: bool
    ) -> None:
        assert xt is not None
        self._sent[key] = self.clock()
        if again:
            self.stats.resubmitted += 1
        try:
            node.submit_extrinsic(xt)
        except Exception as exc:  # PoolError: known, banned a while, full; tried again later
            log.info("reports: anchor of twin %d window %d not taken now: %s", key[0], key[1], exc)
            return
        log.info("reports: anchor of twin %d window %d kind %d sent", *key)

    def write_index(self) -> None:
        """``reports.jsonl`` (one anchored report a line) and ``reports-counters.json``,
        rewritten whole from LevelDB when the service starts, then appended to: what
        ``twinchain archive reports`` reads while the node holds the LevelDB."""
        assert self.book is not None
        final = self.store.path / INDEX_FILE
        tmp = final.with_name(f".{final.name}.tmp")
        tmp.write_text("".join(_index_line(*row) for row in self.book.done()))
        os.replace(tmp, final)
        self.write_counters()

    def append_index(self, rows: Sequence[tuple[int, int, int, bytes, int, int]]) -> None:
        with open(self.store.path / INDEX_FILE, "a") as fh:
            fh.write("".join(_index_line(*row) for row in rows))

    def write_counters(self) -> None:
        assert self.book is not None
        final = self.store.path / COUNTERS_FILE
        tmp = final.with_name(f".{final.name}.tmp")
        counters = {"late_batches": self.book.late(), "too_large": self.book.meta("too_large")}
        tmp.write_text(json.dumps(counters))
        os.replace(tmp, final)


def _index_line(twin: int, start: int, kind: int, digest: bytes, aid: int, block: int) -> str:
    row = {
        "twin": twin,
        "from_ms": start,
        "kind": KIND_NAMES.get(kind, str(kind)),
        "digest": "0x" + digest.hex(),
        "anchor": aid,
        "block": block,
    }
    return json.dumps(row) + "\n"


def _sign(call: Any, key: Keypair, nonce: int, genesis: bytes, spec_version: int) -> bytes:
    return Extrinsic.sign(call, key, nonce, genesis, spec_version).encode()


def _xt_hash(xt: bytes) -> bytes:
    return extrinsic_hash(xt)


# --------------------------------------------------------------------------- checking


def read_document(path: Path, twin: int, digest: bytes) -> Report | AlertReport:
    """A report kept in the archive at ``path`` (ReportError if absent or not a report)."""
    from twinchain.archive.documents import DocumentError, DocumentStore

    try:
        content = DocumentStore(path / "documents").get(twin, digest)
    except DocumentError as exc:
        raise ReportError(str(exc)) from None
    if content is None:
        raise ReportError(f"the archive holds no document 0x{digest.hex()} of twin {twin}")
    return decode_document(content)


def _archived_batches(
    path: Path, twin: int, from_ms: int, to_ms: int, wanted: Sequence[tuple[bytes, int]]
) -> dict[tuple[bytes, int], bytes]:
    """The packed readings of ``wanted`` from the twin's Parquet files of the window's days."""
    from twinchain.archive import parquet

    out: dict[tuple[bytes, int], bytes] = {}
    for day in range(parquet.day_of(from_ms), parquet.day_of(to_ms) + 1):
        folder = path / parquet.partition(twin, day)
        for f in sorted(folder.glob("*.parquet")):
            out.update(parquet.read_batches(f, [w for w in wanted if w not in out]))
    return out


def verify_report(
    path: Path,
    twin: int,
    digest: bytes,
    records: Callable[[Sequence[tuple[bytes, int]]], list[Any]] | None = None,
) -> Report | AlertReport:
    """Re-check a report kept in the archive at ``path`` from the archived readings alone:
    each covered batch's readings give the root the report names (and, with ``records``,
    the root the chain recorded), and recomputing with the report's own rules gives the same
    bytes, hence ``digest``. An alert document is checked through its KPI report. Returns the
    document; ReportError says what differs."""
    from twinchain.protocol.telemetry import batch_root

    doc = read_document(path, twin, digest)
    if report_digest(doc) != digest:
        raise ReportError("the document does not have its digest")
    report = doc if isinstance(doc, Report) else read_document(path, twin, doc.report)
    if not isinstance(report, Report):
        raise ReportError("an alert document must name a KPI report")
    wanted = [(b.device, b.seq) for b in report.batches]
    raws = _archived_batches(path, twin, report.from_ms, report.to_ms, wanted)
    chain = records(wanted) if records is not None else [None] * len(wanted)
    covered = []
    for b, rec in zip(report.batches, chain, strict=True):
        raw = raws.get((b.device, b.seq))
        if raw is None:
            raise ReportError(f"batch {b.seq} of 0x{b.device.hex()} is not in the archive's files")
        if batch_root(list(READING.iter_unpack(raw))) != b.root:
            raise ReportError(f"batch {b.seq} of 0x{b.device.hex()}: readings differ from root")
        if records is not None and (rec is None or rec.root != b.root):
            raise ReportError(f"batch {b.seq} of 0x{b.device.hex()}: not the chain's root")
        covered.append(BatchReadings(b.device, b.seq, b.root, raw))
    again, alerts = compute(
        report.genesis,
        report.facility,
        report.twin,
        report.from_ms,
        report.to_ms,
        covered,
        report.missing,
        report.rules,
        report.ideal_rate,
    )
    if again.to_bytes() != report.to_bytes():
        raise ReportError("recomputed from the archived readings, the KPI report differs")
    if isinstance(doc, AlertReport) and (alerts is None or alerts.to_bytes() != doc.to_bytes()):
        raise ReportError("recomputed from the archived readings, the alerts differ")
    return doc


def anchor_over_rpc(call: Callable[..., Any], twin: int, aid: int, at: str) -> Any | None:
    """The twin's anchor ``aid`` (an AnchoredResult) as a node answers ``state_getStorage``
    at block ``at`` (0x-hex), None if there is none."""
    item = Runtime().telemetry.Anchors
    raw = call("state_getStorage", "0x" + item.key(twin, aid).hex(), at)
    return None if raw is None else item.value_type.decode(bytes.fromhex(raw[2:]))


def anchors_over_rpc(call: Callable[..., Any], twin: int) -> list[tuple[int, Any]]:
    """All the twin's anchors (id, AnchoredResult) at the node's finalized head."""
    count_item = Runtime().telemetry.AnchorCount
    head = call("chain_getFinalizedHead")
    raw = call("state_getStorage", "0x" + count_item.key(twin).hex(), head)
    count = 0 if raw is None else count_item.value_type.decode(bytes.fromhex(raw[2:]))
    found = ((aid, anchor_over_rpc(call, twin, aid, head)) for aid in range(count))
    return [(aid, a) for aid, a in found if a is not None]


def read_index(path: Path) -> dict[str, Any]:
    """The anchored reports of an archive folder and its counters: ``{"reports": [...],
    "late_batches": n, "too_large": n}`` (empty before the first report)."""
    out: dict[str, Any] = {"reports": [], "late_batches": 0, "too_large": 0}
    try:
        lines = (path / INDEX_FILE).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    # A line cut short by a crash while appending is skipped (the next start rewrites it).
    for line in lines:
        try:
            out["reports"].append(json.loads(line))
        except ValueError:
            continue
    try:
        out.update(json.loads((path / COUNTERS_FILE).read_text()))
    except (FileNotFoundError, ValueError):
        pass
    return out


__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertReport",
    "BatchReadings",
    "CoveredBatch",
    "Kpis",
    "MetricStats",
    "Report",
    "ReportBook",
    "ReportError",
    "ReportService",
    "Rule",
    "anchor_over_rpc",
    "anchors_over_rpc",
    "compute",
    "decode_document",
    "document_json",
    "read_document",
    "read_index",
    "report_digest",
    "verify_report",
]
