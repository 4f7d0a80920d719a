"""``twinchain archive``: query, verify and report on a facility archive's files.

twinchain archive query --dir D "SQL" [--csv F | --parquet F] [--max-rows N]
twinchain archive verify --dir D --rpc URL [--twin T] [--json]
twinchain archive stats --dir D [--json]

All three read only the Parquet files (and ``stats.json``), never the archive's LevelDB, so
they run beside the node that writes the archive. ``verify`` asks the chain over JSON-RPC
through a client the top-level CLI hands in (:class:`ArchiveCommands`): the archive sits
below ``twinchain.client``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinchain.primitives.errors import CliError

if TYPE_CHECKING:
    from twinchain.archive.verify import RpcBatchCaller

#: Opens an RPC client on a URL, with a CA file for https (``twinchain.client.RpcClient``).
RpcFactory = Callable[..., "RpcBatchCaller"]


class ArchiveCommands:
    """``twinchain archive``, registered like a command module (``add_parser(sub)``);
    ``rpc`` opens the JSON-RPC client ``verify`` uses."""

    def __init__(self, rpc: RpcFactory) -> None:
        self.rpc = rpc

    def add_parser(self, sub: Any) -> None:
        a = sub.add_parser(
            "archive",
            help="a facility archive: SQL over its Parquet files, verification against chain",
            description="Query, verify or summarize a facility archive (its Parquet files).",
        )
        asub = a.add_subparsers(dest="archive_cmd", required=True)
        q = asub.add_parser("query", help="run SQL (DuckDB) over the views readings, metrics")
        q.add_argument("--dir", type=Path, required=True, help="the archive's folder")
        q.add_argument("sql", help='e.g. "SELECT metric, count(*) FROM readings GROUP BY 1"')
        out = q.add_mutually_exclusive_group()
        out.add_argument("--csv", type=Path, metavar="FILE", help="export the result as CSV")
        out.add_argument("--parquet", type=Path, metavar="FILE", help="export it as Parquet")
        q.add_argument("--max-rows", type=int, default=100, help="rows printed (default 100)")
        q.set_defaults(fn=cmd_query)
        v = asub.add_parser("verify", help="recompute each batch's root, compare with chain")
        v.add_argument("--dir", type=Path, required=True, help="the archive's folder")
        v.add_argument("--rpc", default="http://127.0.0.1:9944", help="a node's RPC URL")
        v.add_argument("--ca-file", help="CA bundle for an https:// node")
        v.add_argument("--twin", type=int, help="only this twin")
        v.add_argument("--json", action="store_true", help="the report as JSON")
        v.set_defaults(fn=self.cmd_verify)
        s = asub.add_parser("stats", help="files, rows per twin and day, the node's counters")
        s.add_argument("--dir", type=Path, required=True, help="the archive's folder")
        s.add_argument("--json", action="store_true")
        s.set_defaults(fn=cmd_stats)

    def cmd_verify(self, args: argparse.Namespace) -> int:
        from twinchain.archive.verify import rpc_records, verify_archive
        from twinchain.node.cli import console, out

        _need_dir(args.dir)
        client = self.rpc(args.rpc, ca_file=args.ca_file)
        try:
            report = verify_archive(args.dir, rpc_records(client), args.twin)
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        if args.json:
            out.print_json(json.dumps(report.to_json()))
        else:
            for m in report.mismatches[:50]:
                console.print(
                    f"[red]mismatch[/] twin {m.twin} device 0x{m.device.hex()} seq {m.seq}: "
                    f"{m.reason}"
                )
            colour = "green" if report.ok else "red"
            out.print(
                f"[{colour}]{report.verified:,} of {report.batches:,} batches verified[/], "
                f"{len(report.mismatches):,} mismatched; {report.readings:,} readings in "
                f"{report.seconds:.2f} s ({report.readings_per_s:,.0f} readings/s)"
            )
        return 0 if report.ok else 2


def _need_dir(path: Path) -> None:
    if not path.is_dir():
        raise CliError(f"no archive at {path}")


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb
    from rich.table import Table

    from twinchain.archive.query import ArchiveQuery
    from twinchain.node.cli import console, out

    _need_dir(args.dir)
    with ArchiveQuery(args.dir) as q:
        try:
            if args.csv or args.parquet:
                dest, fmt = (args.csv, "csv") if args.csv else (args.parquet, "parquet")
                n = q.export(args.sql, dest, fmt)
                console.print(f"{n:,} rows written to {dest}")
                return 0
            columns, rows = q.rows(args.sql)
        except duckdb.Error as exc:
            raise CliError(f"query failed: {exc}") from None
    table = Table(*columns)
    for row in rows[: args.max_rows]:
        table.add_row(*(str(v) for v in row))
    out.print(table)
    if len(rows) > args.max_rows:
        console.print(f"{len(rows) - args.max_rows:,} more rows (--max-rows, or --csv FILE)")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from rich.table import Table

    from twinchain.archive.query import ArchiveQuery
    from twinchain.node.cli import out

    _need_dir(args.dir)
    with ArchiveQuery(args.dir) as q:
        columns, rows = q.rows(
            "SELECT twin, day, count(DISTINCT (device, seq)) AS batches, count(*) AS readings, "
            "min(time) AS first, max(time) AS last FROM readings GROUP BY twin, day "
            "ORDER BY twin, day"
        )
    files = sorted((args.dir / "readings").glob("twin=*/day=*/*.parquet"))
    counters_file = args.dir / "stats.json"
    counters: dict[str, Any] = (
        json.loads(counters_file.read_text()) if counters_file.exists() else {}
    )
    summary = {
        "files": len(files),
        "file_bytes": sum(f.stat().st_size for f in files),
        "partitions": [dict(zip(columns, map(_plain, r), strict=True)) for r in rows],
        "node": counters,
    }
    if args.json:
        out.print_json(json.dumps(summary))
        return 0
    table = Table(*columns, title=f"{args.dir}: {len(files)} files, {summary['file_bytes']:,} B")
    for r in rows:
        table.add_row(*(str(v) for v in r))
    out.print(table)
    if counters:
        refused = counters.get("refused") or {}
        out.print(
            f"node counters: {counters.get('archived_batches', 0):,} batches "
            f"({counters.get('archived_readings', 0):,} readings) archived, "
            f"{counters.get('staged_batches', 0):,} staged, "
            f"{counters.get('refused_batches', 0):,} refused"
            + "".join(f"\n  refused {n:,}: {why}" for why, n in refused.items())
        )
    return 0


def _plain(v: Any) -> Any:
    return v if isinstance(v, int | float | str) or v is None else str(v)


__all__ = ["ArchiveCommands"]
