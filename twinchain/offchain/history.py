"""A plant's history as the prognostics engine reads it: wide CSV files, one row per unit and
time, and the failures file that labels them.

    unit,t_seconds,oil_temperature,shaft_speed,acoustic_level
    gb-01,0,41.2,1480,62.5
    gb-01,60,41.3,,62.7          <- an empty cell is no reading

The time column holds seconds (the default ``t_seconds``), milliseconds (a column named
``*_ms``, or ``time_unit="ms"``) or ISO-8601 timestamps (naive ones are UTC). Everything is
kept as integer milliseconds: the chain's time unit, so that windows cut here are the chain's.

Every problem with the input is a :class:`CsvError` naming the file, the line (the header is
line 1) and the column: a plant engineer fixes the row and runs again.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


class CsvError(ValueError):
    """A CSV file that cannot be read as history: ``line`` is the file's line number (1 is
    the header; 0 when the file as a whole is at fault) and ``column`` the column involved."""

    def __init__(self, path: Path | str, line: int, column: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        where = f"{self.path}" + (f" line {line}" if line else "")
        what = f" column {column!r}" if column else ""
        super().__init__(f"{where}{what}: {message}")


@dataclass
class UnitHistory:
    """One unit's readings in time order: ``values[name][i]`` is NaN where row ``i`` has no
    reading of that metric."""

    unit: str
    t_ms: np.ndarray  # int64, non-decreasing
    values: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def start_ms(self) -> int:
        return int(self.t_ms[0]) if len(self.t_ms) else 0

    @property
    def end_ms(self) -> int:
        return int(self.t_ms[-1]) if len(self.t_ms) else 0

    def slice(self, lo_ms: int | None, hi_ms: int | None) -> UnitHistory:
        """The rows with ``lo_ms <= t < hi_ms`` (either bound open when None)."""
        keep = np.ones(len(self.t_ms), dtype=bool)
        if lo_ms is not None:
            keep &= self.t_ms >= lo_ms
        if hi_ms is not None:
            keep &= self.t_ms < hi_ms
        return UnitHistory(self.unit, self.t_ms[keep], {k: v[keep] for k, v in self.values.items()})


@dataclass
class History:
    """Units in order of first appearance; ``metrics``: the metric columns read."""

    units: list[UnitHistory]
    metrics: list[str]
    time_kind: str  # "s" | "ms" | "iso"
    source: str = ""

    def unit(self, name: str) -> UnitHistory:
        for u in self.units:
            if u.unit == name:
                return u
        raise KeyError(name)

    @property
    def rows(self) -> int:
        return sum(len(u.t_ms) for u in self.units)


def _float_column(path: Path, name: str, raw: list[str | None], first_line: int) -> np.ndarray:
    """Strings to float64 (NaN for empty cells); CsvError naming the first bad row."""
    out = np.full(len(raw), np.nan)
    for i, s in enumerate(raw):
        if s is None:
            continue
        s = s.strip()
        if not s or s.lower() in ("na", "nan", "null", "n/a", "none", "-"):
            continue
        try:
            v = float(s)
        except ValueError:
            raise CsvError(path, first_line + i, name, f"{s!r} is not a number") from None
        if not math.isfinite(v):
            raise CsvError(path, first_line + i, name, f"{s!r} is not a finite number")
        out[i] = v
    return out


def _numeric(path: Path, name: str, col: object, first_line: int) -> np.ndarray:
    """A pyarrow column as float64 with NaN for nulls; strings are parsed (and refused with
    the row) one by one, which only happens when pyarrow could not read them as numbers."""
    import pyarrow as pa

    assert isinstance(col, pa.ChunkedArray)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(arr) & ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        if bad.any():
            i = int(np.argmax(bad))
            raise CsvError(path, first_line + i, name, f"{arr[i]!r} is not a finite number")
        return arr
    if pa.types.is_null(col.type):
        return np.full(len(col), np.nan)
    if pa.types.is_boolean(col.type):
        return col.to_numpy(zero_copy_only=False).astype(np.float64)
    return _float_column(path, name, col.cast(pa.string()).to_pylist(), first_line)


def _iso_ms(path: Path, name: str, raw: list[str | None], first_line: int) -> np.ndarray:
    out = np.empty(len(raw), dtype=np.int64)
    cache: dict[str, int] = {}
    for i, s in enumerate(raw):
        if s is None or not s.strip():
            raise CsvError(path, first_line + i, name, "no time")
        v = cache.get(s)
        if v is None:
            try:
                d = datetime.fromisoformat(s.strip())
            except ValueError:
                raise CsvError(path, first_line + i, name, f"{s!r} is not a time") from None
            if d.tzinfo is None:
                d = d.replace(tzinfo=UTC)
            v = cache[s] = round(d.timestamp() * 1000)
        out[i] = v
    return out


def _time_ms(
    path: Path, name: str, col: object, first_line: int, time_unit: str
) -> tuple[np.ndarray, str]:
    import pyarrow as pa

    assert isinstance(col, pa.ChunkedArray)
    if pa.types.is_timestamp(col.type):
        ts = col.cast(pa.timestamp("ms", tz=col.type.tz)).cast(pa.int64())
        arr = ts.to_numpy(zero_copy_only=False)
        nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        if nulls.any():
            raise CsvError(path, first_line + int(np.argmax(nulls)), name, "no time")
        return arr.astype(np.int64), "iso"
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        raw = col.to_pylist()
        # Numbers that pyarrow left as text (a stray space, a bad row): numbers if they parse.
        try:
            vals = _float_column(path, name, raw, first_line)
        except CsvError:
            return _iso_ms(path, name, raw, first_line), "iso"
    else:
        vals = _numeric(path, name, col, first_line)
    missing = np.isnan(vals)
    if missing.any():
        raise CsvError(path, first_line + int(np.argmax(missing)), name, "no time")
    unit = time_unit if time_unit != "auto" else ("ms" if name.endswith("_ms") else "s")
    if unit == "ms":
        return np.rint(vals).astype(np.int64), "ms"
    return np.rint(vals * 1000.0).astype(np.int64), "s"


def _find_parse_error(path: Path, message: str) -> CsvError:
    """pyarrow's parse error, placed on the first line whose field count is wrong."""
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return CsvError(path, 0, None, "empty file")
            for row in reader:
                if row and len(row) != len(header):
                    return CsvError(
                        path, reader.line_num, None,
                        f"{len(row)} fields where the header has {len(header)}",
                    )  # fmt: skip
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return CsvError(path, 0, None, f"not a readable CSV file: {exc}")
    return CsvError(path, 0, None, f"not a readable CSV file: {message}")


def read_history(
    path: Path | str,
    metrics: Sequence[str] | None = None,
    *,
    unit_column: str = "unit",
    time_column: str = "t_seconds",
    time_unit: str = "auto",
) -> History:
    """Read a wide CSV file. ``metrics``: the columns to read (a class's metric names;
    columns it does not name are ignored, names it has and the file lacks have no readings;
    None: every column but the unit and time ones). Rows are sorted by time within a unit
    (stable: rows with the same time keep the file's order)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if time_unit not in ("auto", "s", "ms"):
        raise ValueError(f"time unit {time_unit!r}: one of auto, s, ms")
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={unit_column: pa.string()},
                strings_can_be_null=True,
            ),
        )
    except FileNotFoundError:
        raise CsvError(path, 0, None, "no such file") from None
    except OSError as exc:
        raise CsvError(path, 0, None, f"cannot read the file: {exc}") from None
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _find_parse_error(path, str(exc)) from None
    names = table.column_names
    for need in (unit_column, time_column):
        if need not in names:
            raise CsvError(path, 1, need, f"no such column (the header has {', '.join(names)})")
    first = 2  # data row 0 is line 2
    wanted = (
        [c for c in names if c not in (unit_column, time_column)]
        if metrics is None
        else [m for m in metrics if m in names]
    )
    if not wanted:
        want = "" if metrics is None else f" (expected some of: {', '.join(metrics)})"
        raise CsvError(path, 1, None, f"no metric columns{want}")
    units_raw = table.column(unit_column).to_pylist()
    for i, u in enumerate(units_raw):
        if u is None or not u.strip():
            raise CsvError(path, first + i, unit_column, "no unit")
    t_ms, kind = _time_ms(path, time_column, table.column(time_column), first, time_unit)
    cols = {m: _numeric(path, m, table.column(m), first) for m in wanted}
    units_arr = np.asarray([u.strip() for u in units_raw], dtype=object)
    order_names, first_index = np.unique(units_arr, return_index=True)
    by_appearance = [str(order_names[i]) for i in np.argsort(first_index)]
    codes = np.searchsorted(order_names, units_arr)
    out: list[UnitHistory] = []
    for name in by_appearance:
        code = int(np.searchsorted(order_names, name))
        idx = np.flatnonzero(codes == code)
        idx = idx[np.argsort(t_ms[idx], kind="stable")]
        out.append(UnitHistory(name, t_ms[idx], {m: v[idx] for m, v in cols.items()}))
    return History(out, wanted, kind, str(path))


def read_failures(path: Path | str, *, column: str = "failure_time_s") -> dict[str, float | None]:
    """``unit,failure_time_s`` (seconds, or an ISO-8601 time as seconds since 1970; empty:
    the unit did not fail) -> unit -> failure time in seconds."""
    path = Path(path)
    try:
        f = path.open(newline="")
    except OSError as exc:
        raise CsvError(path, 0, None, f"cannot read the file: {exc}") from None
    out: dict[str, float | None] = {}
    with f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        for need in ("unit", column):
            if need not in fields:
                raise CsvError(path, 1, need, f"no such column (the header has {fields})")
        for row in reader:
            line = reader.line_num
            unit = (row.get("unit") or "").strip()
            if not unit:
                raise CsvError(path, line, "unit", "no unit")
            if unit in out:
                raise CsvError(path, line, "unit", f"unit {unit!r} is listed twice")
            raw = (row.get(column) or "").strip()
            if not raw:
                out[unit] = None
                continue
            try:
                v = float(raw)
            except ValueError:
                try:
                    d = datetime.fromisoformat(raw)
                except ValueError:
                    raise CsvError(path, line, column, f"{raw!r} is not a time") from None
                v = (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()
            if not math.isfinite(v):
                raise CsvError(path, line, column, f"{raw!r} is not a finite number")
            out[unit] = v
    return out


def write_history(path: Path | str, history: History, *, time_column: str = "t_seconds") -> None:
    """The wide CSV of ``history`` (seconds with millisecond resolution; empty cells for
    missing readings), as :func:`read_history` reads it back."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["unit", time_column, *history.metrics])
        for u in history.units:
            cols = [u.values.get(m, np.full(len(u.t_ms), np.nan)) for m in history.metrics]
            for i, t in enumerate(u.t_ms.tolist()):
                w.writerow(
                    [u.unit, f"{t / 1000:.3f}".rstrip("0").rstrip(".")]
                    + ["" if math.isnan(c[i]) else repr(float(c[i])) for c in cols]
                )
