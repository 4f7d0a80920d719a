"""Historian replay: a plant's recorded history (CSV or Parquet) fed to the gateway as if
its machines sent it, each reading on chain exactly once, whatever kills the gateway.

``[[sources]]`` with ``type = "historian"``::

    path = "history/*.csv"          # a file, a glob, or a list of them: replayed in order
    format = "csv"                  # csv | parquet (default: by each file's extension)
    class = "gearbox.toml"          # optional class file (or built-in name): its metrics
                                    # name the columns, its min/max bound the values
    unit_column = "unit"            # the machine a row is about
    time_column = "t_seconds"
    time_unit = "s"                 # s | ms | iso (default: detected, see below)
    units = {"P-101" = "pump-1"}    # unit -> configured device; others by device_template
    device_template = "{unit}"      # the device of a unit not in ``units``
    columns = {"OilT" = "oil_temperature"}   # optional: column -> metric renames
    speed = 0                       # 1: real time between rows, 10: ten times faster,
                                    # 0 or "max": as fast as back-pressure allows
    time_offset = "now"             # 0 (default) | seconds to add | "now" | "start"
    align_s = 86400                 # "now"/"start" shift by whole multiples of this
    chunk_rows = 500                # rows per spool commit (at most)

The file is wide, one row per unit and time: a unit column, a time column, one column per
metric in the metric's unit (empty cell: no reading). Columns are read as metrics when the
class (or, without one, the chain's metric registry) names them; other columns are ignored
(said once in the log). Values become fixed point as :mod:`.engineering` describes.

Time: seconds (decimals allowed), milliseconds, or ISO-8601 text (``2026-03-01T12:00:00Z``;
no zone: UTC; sub-millisecond digits are dropped), or a Parquet timestamp column. Detected
when ``time_unit`` is absent: a Parquet timestamp column; a column named ``*_ms`` is
milliseconds, ``*_s``/``*seconds`` seconds; else the first value decides (a number below
1e11 is seconds, above milliseconds; text is ISO-8601).

``time_offset`` shifts history: a number of seconds, or ``"now"`` (the latest time in the
files lands at most ``align_s`` before the replay's first start: history ends about now and
nothing is ahead of the clock, at any speed), or ``"start"`` (the earliest time lands at
most ``align_s`` before the first start; with ``speed`` 1 the history then unfolds at the
pace it was recorded and stays behind the clock: it needs 0 < speed <= 1, because the
gateway refuses readings more than a minute, ``MAX_FUTURE_DRIFT_MS``, ahead of its clock).
Either shift is a whole multiple of ``align_s`` (default a day; 0: exact), so that a
relative time ``t`` seconds lands at midnight UTC + ``t``: the time of day and every window
that divides ``align_s`` (the chain's, the detector's) fall as they do in the file, and an
offline evaluation of the same CSV sees the same windows. The chain takes old readings; a
batch whose first reading is older than the metric's ``max_age_ms`` (a day unless the
twin's capture configuration says otherwise) lands flagged ``Stale`` and counts. The
offset, the replay's start and the pacing anchor are fixed at the first start and kept in
the spool.

Exactly once: the position (file, row), the offset and the refusal counts are committed in
the same spool transaction as the readings of the rows before it, as the simulator source
keeps its tick: after a ``kill -9`` the replay resumes at the first row whose readings are
not in the spool, so the chain gets every accepted row once, and nothing twice. Pacing
follows an anchor kept in the spool too: after a stop the replay catches up, then keeps time.

Refused, counted by reason (the gateway's status: ``rejected`` for this run, and per source
``sources.historian-N.refused`` over the whole replay), logged, and never fatal: a row
without a parseable time (``bad_time``), a unit no configured device stands for
(``unknown_unit``; a device the chain does not bind: ``unknown_device``), a time not after
the unit's previous accepted row (``out_of_order``), a line that is not a row of the header's
shape (``malformed``); a cell that is not a number (``malformed``), outside the class's
min/max or i64 (``out_of_range``), or a column whose metric the chain does not know
(``unknown_metric``) refuses that one reading and the rest of the row goes on. A file that
cannot be read (missing columns, a corrupt Parquet page) is refused from that point
(``unreadable_file``) and the replay goes on with the next file.
"""

from __future__ import annotations

import asyncio
import csv
import glob
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinchain.gateway.engineering import (
    Channel,
    Limits,
    SourceReport,
    chain_known,
    class_limits,
    class_ref,
    to_decimal,
    to_fixed,
)
from twinchain.gateway.payloads import MAX_TS, Rejected
from twinchain.gateway.spool import ReadingT
from twinchain.gateway.state import now_ms

if TYPE_CHECKING:
    from twinchain.gateway.core import Gateway
    from twinchain.gateway.state import Device

log = logging.getLogger("twinchain.gateway.historian")

TIME_UNITS = ("s", "ms", "iso")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IN_FLIGHT = 4  # chunks handed to the intake and not yet durable, at most


@dataclass(frozen=True)
class HistorianConfig:
    paths: tuple[str, ...]  # files or globs, absolute
    format: str | None = None
    class_ref: str | None = None
    unit_column: str = "unit"
    time_column: str = "t_seconds"
    time_unit: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    device_template: str = "{unit}"
    columns: dict[str, str] = field(default_factory=dict)
    speed: float = 0.0
    time_offset: str | int = 0  # "now", "start", or milliseconds
    align_ms: int = 86_400_000  # "now"/"start": the shift is a multiple of this (0: exact)
    chunk_rows: int = 500

    def files(self) -> list[Path]:
        """The files to replay, in order: each entry's matches sorted, duplicates once."""
        out: list[Path] = []
        for p in self.paths:
            matches = sorted(glob.glob(p)) if glob.has_magic(p) else [p]
            out += [Path(m) for m in matches if Path(m) not in out]
        return out


def parse_config(raw: dict[str, Any], base: Path) -> HistorianConfig:
    """Check a ``historian`` source table (``ValueError`` says what is wrong); paths become
    absolute (relative ones are from ``base``, the configuration file's folder)."""
    path = raw.get("path")
    paths = [path] if isinstance(path, str) else path
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ValueError("historian: path must be a file, a glob or a list of them")
    fmt = raw.get("format")
    if fmt not in (None, "csv", "parquet"):
        raise ValueError("historian: format must be csv or parquet")
    unit = raw.get("time_unit")
    if unit not in (None, *TIME_UNITS):
        raise ValueError("historian: time_unit must be s, ms or iso")
    for key in ("units", "columns"):
        v = raw.get(key, {})
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise ValueError(f"historian: {key} must be a table of strings")
    speed_v = raw.get("speed", 0)
    if speed_v == "max":
        speed = 0.0
    elif isinstance(speed_v, int | float) and not isinstance(speed_v, bool) and speed_v >= 0:
        speed = float(speed_v)
    else:
        raise ValueError('historian: speed must be a number >= 0 or "max"')
    off = raw.get("time_offset", 0)
    offset: str | int
    if off in ("now", "start"):
        offset = str(off)
    elif isinstance(off, int | float) and not isinstance(off, bool):
        offset = to_fixed(to_decimal(off), 3)
    else:
        raise ValueError('historian: time_offset must be seconds, "now" or "start"')
    if offset == "start" and not 0 < speed <= 1:
        raise ValueError('historian: time_offset "start" needs 0 < speed <= 1 (else the '
                         "replay runs ahead of the clock)")  # fmt: skip
    template = str(raw.get("device_template", "{unit}"))
    try:
        template.format(unit="u")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"historian: device_template: {exc}") from None
    align = raw.get("align_s", 86_400)
    if isinstance(align, bool) or not isinstance(align, int | float) or align < 0:
        raise ValueError("historian: align_s must be a number of seconds >= 0")
    chunk = raw.get("chunk_rows", 500)
    if type(chunk) is not int or not 1 <= chunk <= 100_000:
        raise ValueError("historian: chunk_rows must be an integer in 1..100000")
    cls = raw.get("class")
    return HistorianConfig(
        paths=tuple(str((base / p).resolve()) if not Path(p).is_absolute() else p for p in paths),
        format=fmt,
        class_ref=None if cls is None else class_ref(cls, base),
        unit_column=str(raw.get("unit_column", "unit")),
        time_column=str(raw.get("time_column", "t_seconds")),
        time_unit=unit,
        units=dict(raw.get("units", {})),
        device_template=template,
        columns=dict(raw.get("columns", {})),
        speed=speed,
        time_offset=offset,
        align_ms=to_fixed(to_decimal(align), 3),
        chunk_rows=chunk,
    )


def normalized(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """The source table as the gateway keeps it: checked, with absolute paths."""
    cfg = parse_config(raw, base)
    out = dict(raw, path=list(cfg.paths))
    if cfg.class_ref is not None:
        out["class"] = cfg.class_ref
    return out


# --------------------------------------------------------------------------- reading files


class _Unreadable(Exception):
    """A file, or the rest of it, cannot be read."""


class _Table:
    """One history file: its header, and its rows from a position on. A row is a sequence
    of cells in :attr:`header` order (``None``: a blank line; a :class:`Rejected`: a line
    that is not a row)."""

    header: list[str]

    def rows(self, skip: int, columns: Sequence[str]) -> Iterator[Sequence[Any] | Rejected | None]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _CsvTable(_Table):
    """The csv module: streaming, every cell text, a bad line one refused row (the reader
    goes on at the next line)."""

    def __init__(self, path: Path) -> None:
        try:
            self._f = path.open(newline="", encoding="utf-8-sig", errors="replace")  # BOM: Excel
        except OSError as exc:
            raise _Unreadable(str(exc)) from None
        self._reader = csv.reader(self._f)
        try:
            self.header = [h.strip() for h in next(self._reader, [])]
        except csv.Error as exc:
            self._f.close()
            raise _Unreadable(f"header: {exc}") from None

    def rows(self, skip: int, columns: Sequence[str]) -> Iterator[Sequence[Any] | Rejected | None]:
        width = len(self.header)
        idx = [self.header.index(c) for c in columns]
        n = 0
        while True:
            try:
                row: Any = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row = Rejected("malformed", f"not a CSV row: {exc}")
            except OSError as exc:
                raise _Unreadable(str(exc)) from None
            n += 1
            if n <= skip:
                continue
            if isinstance(row, Rejected) or not row:
                yield row or None
            elif len(row) != width:
                yield Rejected("malformed", f"{len(row)} fields, the header has {width}")
            else:
                yield [row[i] for i in idx]

    def close(self) -> None:
        self._f.close()


class _ParquetTable(_Table):
    """pyarrow: row groups before the position are not read; a timestamp column becomes
    milliseconds since the epoch (UTC)."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        try:
            self._pf = pq.ParquetFile(path)
            self.header = list(self._pf.schema_arrow.names)
        except Exception as exc:  # pyarrow's errors for a file that is not Parquet vary
            raise _Unreadable(f"{type(exc).__name__}: {exc}") from None

    def is_timestamp(self, column: str) -> bool:
        import pyarrow as pa

        return bool(pa.types.is_timestamp(self._pf.schema_arrow.field(column).type))

    def rows(self, skip: int, columns: Sequence[str]) -> Iterator[Sequence[Any] | Rejected | None]:
        import pyarrow as pa
        import pyarrow.compute as pc

        meta = self._pf.metadata
        first, start = 0, 0
        while first < meta.num_row_groups and start + meta.row_group(first).num_rows <= skip:
            start += meta.row_group(first).num_rows
            first += 1
        drop = skip - start
        try:
            batches = self._pf.iter_batches(
                batch_size=2048, row_groups=list(range(first, meta.num_row_groups)),
                columns=list(columns), use_threads=False,
            )  # fmt: skip
            for batch in batches:
                cols = []
                for arr in batch.columns:
                    if pa.types.is_timestamp(arr.type):  # stored as UTC: epoch milliseconds
                        ms = pa.timestamp("ms", tz=arr.type.tz)
                        arr = pc.cast(arr, ms, safe=False).cast(pa.int64())
                    cols.append(arr.to_pylist())
                rows = list(zip(*cols, strict=True))
                if drop:
                    rows, drop = rows[drop:], max(0, drop - len(rows))
                yield from rows
        except Exception as exc:  # a corrupt page, a truncated file
            raise _Unreadable(f"{type(exc).__name__}: {exc}") from None


def _open(path: Path, fmt: str | None) -> _Table:
    kind = fmt or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    return _ParquetTable(path) if kind == "parquet" else _CsvTable(path)


def survey(path: Path, unit_column: str, fmt: str | None = None) -> tuple[list[str], list[str]]:
    """A history file's columns and its units, in the order they first appear (for
    provisioning a replay); ``ValueError`` if it cannot be read or has no such column."""
    try:
        t = _open(path, fmt)
    except _Unreadable as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        if unit_column not in t.header:
            raise ValueError(f"{path} has no column {unit_column!r} (columns: {t.header})")
        units: dict[str, None] = {}
        for row in t.rows(0, [unit_column]):
            if isinstance(row, Sequence) and row[0] not in (None, ""):
                units[str(row[0]).strip()] = None
        return t.header, list(units)
    except _Unreadable as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    finally:
        t.close()


# --------------------------------------------------------------------------- time


def _iso_ms(v: Any) -> int:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.strip())
        except ValueError:
            raise Rejected("bad_time", f"{v[:40]!r} is not an ISO-8601 time") from None
    elif isinstance(v, date) and not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    if not isinstance(v, datetime):
        raise Rejected("bad_time", f"{v!r:.40} is not an ISO-8601 time")
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    d = v - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1000 + d.microseconds // 1000


def _number_ms(scale: int) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if type(v) is int and scale == 0:
            return v
        try:
            return to_fixed(to_decimal(v), scale)
        except Rejected as exc:
            raise Rejected("bad_time", exc.detail) from None

    return parse


def _unit_of(table: _Table, column: str, unit: str) -> str:
    """A Parquet timestamp column is read as milliseconds, whatever ``time_unit`` says."""
    if isinstance(table, _ParquetTable) and table.is_timestamp(column):
        return "timestamp"
    return unit


def time_parser(unit: str) -> Callable[[Any], int]:
    """Cell -> milliseconds since the epoch (``bad_time`` if it is not a time);
    ``timestamp``: a Parquet timestamp column, already milliseconds."""
    if unit == "iso":
        return _iso_ms
    return _number_ms(3 if unit == "s" else 0)


def detect_time_unit(column: str, first: Any) -> str:
    """The time unit of a column without ``time_unit`` (see the module's docstring)."""
    name = column.lower()
    if name.endswith("_ms"):
        return "ms"
    if name.endswith(("_s", "seconds")):
        return "s"
    if isinstance(first, datetime | date):
        return "iso"
    try:
        d = to_decimal(first)
    except Rejected:
        return "iso"
    return "ms" if abs(d) >= 100_000_000_000 else "s"


# --------------------------------------------------------------------------- the replay


@dataclass
class _Position:
    """What the spool keeps of the replay (one meta key, committed with the readings)."""

    file: str = ""  # the file being replayed (its path as configured, expanded)
    row: int = 0  # data rows of it consumed (blank and refused lines included)
    start_ms: int = 0  # the replay's first start (wall clock)
    offset_ms: int = 0
    anchor_t: int | None = None  # the time (before the offset) paced from ``start_ms``
    time_unit: str = ""
    file_done: bool = False  # the rest of ``file`` was refused: not read again
    rows: int = 0  # rows consumed in all files
    readings: int = 0  # readings handed to the intake
    refused: dict[str, int] = field(default_factory=dict)
    done: bool = False

    def dump(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def load(cls, data: bytes) -> _Position:
        return cls(**json.loads(data))


class Replay:
    """One historian source's replay into one gateway (``run``)."""

    def __init__(self, gw: Gateway, index: int, cfg: HistorianConfig) -> None:
        self.gw = gw
        self.cfg = cfg
        self.key = f"hist:{index}"
        self.report = SourceReport(f"historian-{index}", "historian").attach(gw)
        self.pos = _Position()
        self.channels: dict[str, Channel | None] = {}  # column -> channel (None: unknown)
        self._limits: dict[str, Limits] | None = None
        self._unit_last: dict[str, int] = {}  # device name -> its last accepted row time
        self._inflight: deque[asyncio.Future[int]] = deque()
        self._groups: dict[str, tuple[Device, list[ReadingT]]] = {}  # by device name
        self._chunk = 0
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ set-up
    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a replay that cannot go on says why; the gateway goes on
            log.exception("historian %s stopped", self.report.name)
            self.report.info["error"] = f"{type(exc).__name__}: {exc}"[:300]

    async def _run(self) -> None:
        gw, cfg = self.gw, self.cfg
        spool = gw.state.spool
        assert spool is not None
        await chain_known(gw)
        if cfg.class_ref is not None:
            self._limits = class_limits(cfg.class_ref)
        files = cfg.files()
        stored = await gw.state.db(spool.get_meta, self.key)
        if stored:
            self.pos = _Position.load(stored)
        else:
            await self._first_start(files)
        self.report.refused.update(self.pos.refused)
        self.pos.refused = self.report.refused  # one dict: counted once, kept in the spool
        self._publish()
        names = [str(f) for f in files]
        at = names.index(self.pos.file) if self.pos.file in names else -1
        if self.pos.file and at < 0:
            raise RuntimeError(f"the replay was at {self.pos.file}, no longer among {cfg.paths}")
        log.info(
            "historian %s: %d files, resuming at %s row %d (offset %+d ms, time in %s)",
            self.report.name,
            len(files),
            Path(self.pos.file or (names[0] if names else "-")).name,
            self.pos.row,
            self.pos.offset_ms,
            self.pos.time_unit,
        )
        for path in files[max(at, 0) :]:
            if str(path) != self.pos.file:
                self.pos.file, self.pos.row, self.pos.file_done = str(path), 0, False
            if not self.pos.file_done:
                await self._replay_file(path)
        self.pos.done = True
        await self._flush(force=True)
        while self._inflight:
            await self._inflight.popleft()
        self._publish()
        log.info("historian %s: replay done, %d rows", self.report.name, self.pos.rows)

    async def _first_start(self, files: list[Path]) -> None:
        """The time unit, the offset and the pacing anchor, fixed for the whole replay."""
        cfg = self.cfg
        p = self.pos
        p.start_ms = now_ms()
        p.time_unit = cfg.time_unit or self._detect(files)
        if cfg.time_offset in ("now", "start") or cfg.speed > 0:
            lo, hi = await asyncio.to_thread(self._time_range, files, p.time_unit)
            p.anchor_t = lo
            ref = hi if cfg.time_offset == "now" else lo
            if cfg.time_offset in ("now", "start") and ref is not None:
                p.offset_ms = p.start_ms - ref
                if cfg.align_ms:  # rounded down: the history lands earlier, never later
                    p.offset_ms -= p.offset_ms % cfg.align_ms
        if isinstance(cfg.time_offset, int):
            p.offset_ms = cfg.time_offset

    def _detect(self, files: list[Path]) -> str:
        col = self.cfg.time_column
        for path in files:
            try:
                t = _open(path, self.cfg.format)
            except _Unreadable:
                continue
            try:
                if col not in t.header:
                    continue
                if isinstance(t, _ParquetTable) and t.is_timestamp(col):
                    return "timestamp"
                for row in t.rows(0, [col]):
                    if isinstance(row, Sequence) and row[0] not in (None, ""):
                        return detect_time_unit(col, row[0])
            except _Unreadable:
                continue
            finally:
                t.close()
        return "s"

    def _time_range(self, files: list[Path], unit: str) -> tuple[int | None, int | None]:
        """Earliest and latest parseable time in the files (before any offset)."""
        lo = hi = None
        col = self.cfg.time_column
        for path in files:
            try:
                t = _open(path, self.cfg.format)
            except _Unreadable:
                continue
            try:
                if col not in t.header:
                    continue
                parse = time_parser(_unit_of(t, col, unit))
                for row in t.rows(0, [col]):
                    if not isinstance(row, Sequence):
                        continue
                    try:
                        ts = parse(row[0])
                    except Rejected:
                        continue
                    lo = ts if lo is None or ts < lo else lo
                    hi = ts if hi is None or ts > hi else hi
            except _Unreadable:
                pass
            finally:
                t.close()
        return lo, hi

    def _channel(self, column: str) -> Channel | None:
        """The metric a column feeds (None: not a metric column)."""
        if column in self.channels:
            return self.channels[column]
        metrics = self.gw.state.metrics
        name = self.cfg.columns.get(column, column)
        ch: Channel | None = None
        if self._limits is not None and name not in self._limits:
            ch = None  # the class names its metrics: other columns are not readings
        elif name in metrics.by_name:
            mid = metrics.by_name[name]
            limits = self._limits.get(name, Limits()) if self._limits else Limits()
            ch = Channel(name, mid, metrics.by_id[mid][1], limits)
        elif self._limits is not None:
            ch = Channel(name, -1, 0)  # the class's, unknown to the chain: refused
            log.error("historian: metric %r is not registered on chain; refused", name)
        self.channels[column] = ch
        return ch

    # ------------------------------------------------------------------ rows
    async def _replay_file(self, path: Path) -> None:
        cfg = self.cfg
        try:
            table = _open(path, cfg.format)
        except _Unreadable as exc:
            return await self._unreadable(path, str(exc))
        try:
            header = table.header
            missing = [c for c in (cfg.unit_column, cfg.time_column) if c not in header]
            if missing:
                return await self._unreadable(path, f"no column {', '.join(missing)}")
            cols = [c for c in dict.fromkeys(header) if c not in (cfg.unit_column, cfg.time_column)]
            chans = [(c, self._channel(c)) for c in cols]
            used = [(c, ch) for c, ch in chans if ch is not None]
            ignored = [c for c, ch in chans if ch is None and c not in self._warned]
            if ignored:
                self._warned.update(ignored)
                log.info("historian: columns that are not metrics, ignored: %s", ignored)
            columns = [cfg.unit_column, cfg.time_column] + [c for c, _ in used]
            parse_time = time_parser(_unit_of(table, cfg.time_column, self.pos.time_unit))
            try:
                for row in table.rows(self.pos.row, columns):
                    await self._row(row, [ch for _, ch in used], parse_time, path)  # type: ignore[misc]
            except _Unreadable as exc:
                return await self._unreadable(path, str(exc))
            await self._flush(force=True)
        finally:
            table.close()

    async def _unreadable(self, path: Path, why: str) -> None:
        """The rest of a file is refused: one count, and the replay goes on after it."""
        self._refuse(Rejected("unreadable_file", why), f" {path.name}")
        self.pos.file_done = True  # a restart does not read it again
        await self._flush(force=True)

    async def _row(
        self,
        row: Sequence[Any] | Rejected | None,
        chans: list[Channel],
        parse_time: Callable[[Any], int],
        path: Path,
    ) -> None:
        p = self.pos
        if self._chunk == 0:
            await self.gw.intake.wait_space()  # back-pressure, a chunk at a time
        where = f" {path.name} row {p.row + 1}"
        bad: Rejected | None = row if isinstance(row, Rejected) else None
        if row is not None and bad is None:
            try:
                t = parse_time(row[1])  # type: ignore[index]
                ts = t + p.offset_ms
                if not 0 < ts <= MAX_TS:
                    raise Rejected("bad_time", f"time {ts} ms is not after 1970")
                device = self._device(row[0])  # type: ignore[index]
            except Rejected as exc:
                bad = exc
            else:
                if self.cfg.speed > 0:
                    await self._pace(t)  # before the row counts as read: it is not spooled
        p.row += 1
        p.rows += 1
        self._chunk += 1
        if bad is not None:
            self._refuse(bad, where)
        elif row is not None:
            self._readings(device, ts, row, chans, where)  # type: ignore[arg-type]
        if self._chunk >= self.cfg.chunk_rows:
            await self._flush()

    def _device(self, unit: Any) -> Device:
        if unit is None or unit == "":
            raise Rejected("unknown_unit", "no unit")
        u = str(unit).strip()
        name = self.cfg.units.get(u) or self.cfg.device_template.format(unit=u)
        if name not in self.gw.state.devices:
            raise Rejected("unknown_unit", f"unit {u[:40]!r}: no device {name[:40]!r}")
        return self.gw.intake.device_for(name)

    def _readings(
        self, device: Device, ts: int, row: Sequence[Any], chans: list[Channel], where: str
    ) -> None:
        last = self._unit_last.get(device.name)
        if last is None:  # after a restart: the newest reading the spool holds
            last = self._unit_last[device.name] = max(device.last_ts.values(), default=-1)
        if ts <= last:
            self._refuse(Rejected("out_of_order", f"time {ts} is not after {last}"), where)
            return
        out: list[ReadingT] = []
        for ch, cell in zip(chans, row[2:], strict=True):
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                continue  # an empty cell: no reading
            try:
                if ch.metric < 0:
                    raise Rejected("unknown_metric", f"metric {ch.name!r} is not on chain")
                out.append((ch.metric, ts, ch.reading_value(cell)))
            except Rejected as exc:
                self._refuse(exc, f"{where} {ch.name}")
        if out:
            self._unit_last[device.name] = ts
            self._groups.setdefault(device.name, (device, []))[1].extend(out)
            self.pos.readings += len(out)

    def _refuse(self, exc: Rejected, context: str) -> None:
        self.report.refuse(self.gw, exc, context)

    async def _pace(self, t: int) -> None:
        """Wait until row time ``t`` is due: ``anchor_t`` plays at ``start_ms``, and rows
        follow at ``speed`` times the recorded pace."""
        p = self.pos
        if p.anchor_t is None:
            p.anchor_t = t
        due = p.start_ms + (t - p.anchor_t) / self.cfg.speed
        wait = (due - time.time() * 1000) / 1000
        if wait > 0.001:
            await self._flush()  # what came before goes out while we wait
            await asyncio.sleep(wait)

    async def _flush(self, force: bool = False) -> None:
        """Hand the chunk's readings, with the position after it, to the intake (one spool
        transaction); keep at most a few such chunks in flight."""
        if not self._chunk and not force:
            return
        meta = {self.key: self.pos.dump()}
        fut = self.gw.intake.accept_many(
            list(self._groups.values()), "historian", meta=meta, received=now_ms()
        )
        self._groups = {}
        self._chunk = 0
        self._inflight.append(fut)
        while len(self._inflight) > _IN_FLIGHT or (self._inflight and self._inflight[0].done()):
            await self._inflight.popleft()
        self._publish()
        await asyncio.sleep(0)  # let the committer and the node loop run

    def _publish(self) -> None:
        p = self.pos
        self.report.info.update(
            file=Path(p.file).name if p.file else "",
            row=p.row,
            rows=p.rows,
            readings=p.readings,
            offset_ms=p.offset_ms,
            time_unit=p.time_unit,
            done=p.done and not self._inflight,  # the last chunk durable too
        )


async def run_historian(gw: Gateway, index: int, raw: dict[str, Any]) -> None:
    """The ``historian`` source (see the module's docstring)."""
    cfg = parse_config(raw, gw.cfg.spool.parent)
    await Replay(gw, index, cfg).run()


__all__ = [
    "HistorianConfig",
    "Replay",
    "detect_time_unit",
    "normalized",
    "parse_config",
    "run_historian",
    "survey",
    "time_parser",
]
