"""SQL over an archive's Parquet files with DuckDB, and exports to CSV or Parquet.

Views: ``readings`` (device, seq, idx, metric, ts_ms, value, time, twin, day: the hive
partitions of the path) and ``metrics`` (id, name, unit, scale). A value is fixed point:
``value / 10^scale`` in the metric's unit, e.g.::

    SELECT r.time, r.value / 10 ^ m.scale AS celsius
    FROM readings r JOIN metrics m ON m.id = r.metric
    WHERE r.twin = 7 AND r.day = DATE '2025-03-01' AND m.name = 'temperature'

Only the files are read (never the archive's LevelDB), so queries run beside the node that
writes the archive; a file appears whole or not at all (renamed into place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from twinchain.archive import parquet

_EMPTY_READINGS = (
    "SELECT NULL::VARCHAR AS device, NULL::UBIGINT AS seq, NULL::UINTEGER AS idx, "
    "NULL::USMALLINT AS metric, NULL::BIGINT AS ts_ms, NULL::BIGINT AS value, "
    "NULL::TIMESTAMPTZ AS time, NULL::UBIGINT AS twin, NULL::DATE AS day WHERE false"
)
_EMPTY_METRICS = (
    "SELECT NULL::USMALLINT AS id, NULL::VARCHAR AS name, NULL::VARCHAR AS unit, "
    "NULL::UTINYINT AS scale WHERE false"
)


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class ArchiveQuery:
    """A DuckDB connection (in memory) with the archive's views over ``path``'s files."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        config = {} if threads is None else {"threads": threads}
        self.con = duckdb.connect(config=config)
        self.refresh()

    def refresh(self) -> None:
        """(Re)create the views: a glob matching no file yet gives an empty view."""
        root = self.path / parquet.READINGS_DIR
        if any(root.glob("twin=*/day=*/*.parquet")):
            glob = _literal((root / "twin=*" / "day=*" / "*.parquet").as_posix())
            src = (
                f"SELECT * FROM read_parquet({glob}, hive_partitioning = true, "
                "hive_types = {'twin': UBIGINT, 'day': DATE})"
            )
        else:
            src = _EMPTY_READINGS
        self.con.execute(f"CREATE OR REPLACE VIEW readings AS {src}")
        metrics = self.path / parquet.METRICS_FILE
        msrc = (
            f"SELECT * FROM read_parquet({_literal(metrics.as_posix())})"
            if metrics.exists()
            else _EMPTY_METRICS
        )
        self.con.execute(f"CREATE OR REPLACE VIEW metrics AS {msrc}")

    def sql(self, query: str, params: Any = None) -> duckdb.DuckDBPyRelation:
        """The relation of ``query`` (run lazily: ``.fetchall()``, ``.arrow()``, ``.df()``)."""
        return self.con.sql(query, params=params)

    def _execute(self, query: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        try:
            return self.con.execute(query, params)
        except duckdb.IOException:
            # A compaction or retention removed a file between the glob and its read (the
            # node's archive is live): the views again over the files there now.
            self.refresh()
            return self.con.execute(query, params)

    def rows(self, query: str, params: Any = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of ``query``."""
        cur = self._execute(query, params)
        return [d[0] for d in cur.description or ()], cur.fetchall()

    def export(self, query: str, dest: str | Path, fmt: str = "csv") -> int:
        """Write ``query``'s result to ``dest`` as ``csv`` (with a header) or ``parquet``
        (zstd); returns the number of rows written."""
        options = {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet, COMPRESSION zstd"}
        if fmt not in options:
            raise ValueError(f"export format must be csv or parquet, not {fmt!r}")
        q = query.strip().rstrip(";")
        cur = self._execute(f"COPY ({q}) TO {_literal(str(dest))} ({options[fmt]})")
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ArchiveQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ArchiveQuery"]
