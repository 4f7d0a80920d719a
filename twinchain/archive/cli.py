"""``twinchain archive``: query, verify and report on a facility archive's files.

twinchain archive query --dir D "SQL" [--csv F | --parquet F] [--max-rows N]
twinchain archive verify --dir D --rpc URL [--twin T] [--json]
twinchain archive stats --dir D [--json]
twinchain archive reports list --dir D [--twin T] [--json]
twinchain archive reports show --dir D --twin T DIGEST [--json]
twinchain archive reports verify --dir D [--rpc URL] [--twin T] [--json]
twinchain archive reports fetch --rpc URL --twin T DIGEST --key KEY [--out F] [--json]

All of them read only the Parquet files, the documents and ``stats.json`` /
``reports.jsonl``, never the archive's LevelDB, so they run beside the node that writes the
archive. ``reports verify`` recomputes each anchored report from the archived readings and
compares it with the digest anchored on chain; ``reports fetch`` asks a facility's node for
a report as a reader the chain lets read the twin (``archive_getDocument``, a signed
request) and checks it against its anchor. ``verify`` asks the chain over JSON-RPC
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
        self._add_reports(asub)

    def _add_reports(self, asub: Any) -> None:
        r = asub.add_parser(
            "reports", help="the facility's KPI and alert reports anchored on chain"
        )
        rsub = r.add_subparsers(dest="reports_cmd", required=True)
        ls = rsub.add_parser("list", help="the reports this archive anchored")
        ls.add_argument("--dir", type=Path, required=True, help="the archive's folder")
        ls.add_argument("--twin", type=int, help="only this twin")
        ls.add_argument("--json", action="store_true")
        ls.set_defaults(fn=cmd_reports_list)
        sh = rsub.add_parser("show", help="decode one report kept in this archive")
        sh.add_argument("--dir", type=Path, required=True, help="the archive's folder")
        sh.add_argument("--twin", type=int, required=True)
        sh.add_argument("digest", help="the report's 0x-hex digest")
        sh.add_argument("--json", action="store_true")
        sh.set_defaults(fn=cmd_reports_show)
        v = rsub.add_parser(
            "verify", help="recompute each report from the archived readings, compare digests"
        )
        v.add_argument("--dir", type=Path, required=True, help="the archive's folder")
        v.add_argument("--rpc", help="also check roots and anchors against this node")
        v.add_argument("--ca-file", help="CA bundle for an https:// node")
        v.add_argument("--twin", type=int, help="only this twin")
        v.add_argument("--json", action="store_true")
        v.set_defaults(fn=self.cmd_reports_verify)
        f = rsub.add_parser("fetch", help="fetch a report from a facility's node, as a reader")
        f.add_argument("--rpc", default="http://127.0.0.1:9944", help="the facility's node")
        f.add_argument("--ca-file", help="CA bundle for an https:// node")
        f.add_argument("--twin", type=int, required=True)
        f.add_argument("digest", help="the anchored digest (0x-hex)")
        f.add_argument("--key", required=True, help="the reader's key (//Name, seed, key file)")
        f.add_argument("--out", type=Path, help="also write the document's bytes here")
        f.add_argument("--json", action="store_true")
        f.set_defaults(fn=self.cmd_reports_fetch)

    def _client(self, url: str, ca_file: str | None) -> Any:
        return self.rpc(url, ca_file=ca_file)

    def cmd_reports_verify(self, args: argparse.Namespace) -> int:
        from twinchain.archive.reports import (
            ReportError,
            anchor_over_rpc,
            read_index,
            verify_report,
        )
        from twinchain.archive.verify import rpc_records
        from twinchain.node.cli import console, out

        _need_dir(args.dir)
        rows = [
            r
            for r in read_index(args.dir)["reports"]
            if args.twin is None or r["twin"] == args.twin
        ]
        client = self._client(args.rpc, args.ca_file) if args.rpc else None
        results = []
        try:
            head = client.call("chain_getFinalizedHead") if client is not None else None
            for r in rows:
                twin, digest = r["twin"], bytes.fromhex(r["digest"][2:])
                reason = None
                try:
                    records = rpc_records(client, head) if client is not None else None
                    verify_report(args.dir, twin, digest, records)
                    if client is not None:
                        a = anchor_over_rpc(client.call, twin, r["anchor"], head)
                        if a is None or a.digest != digest:
                            raise ReportError(f"anchor #{r['anchor']} on chain is not this digest")
                except ReportError as exc:
                    reason = str(exc)
                results.append({**r, "ok": reason is None, "reason": reason})
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        if args.json:
            out.print_json(json.dumps(results))
        else:
            for r in results:
                mark = "[green]ok[/]" if r["ok"] else f"[red]{r['reason']}[/]"
                console.print(
                    f"twin {r['twin']} {r['kind']} from {r['from_ms']} {r['digest']}: {mark}"
                )
            bad = sum(not r["ok"] for r in results)
            out.print(f"{len(results) - bad} of {len(results)} reports verified")
        return 0 if all(r["ok"] for r in results) else 2

    def cmd_reports_fetch(self, args: argparse.Namespace) -> int:
        from twinchain.archive.reports import (
            ReportError,
            anchors_over_rpc,
            decode_document,
            document_json,
            report_digest,
        )
        from twinchain.node.cli import out
        from twinchain.primitives.hashing import blake3_hash
        from twinchain.primitives.keystore import KeystoreError, load_keypair
        from twinchain.protocol.access import sign_request
        from twinchain.protocol.jsonrpc import RpcError

        try:
            key = load_keypair(args.key)
        except KeystoreError as exc:
            raise CliError(str(exc)) from None
        digest = _digest(args.digest)
        client = self._client(args.rpc, args.ca_file)
        try:
            genesis = bytes.fromhex(client.call("chain_getBlockHash", 0)[2:])
            params = {"twin": args.twin, "hash": "0x" + digest.hex()}
            auth = sign_request(key, genesis, "archive_getDocument", params)
            answer = client.call("archive_getDocument", args.twin, params["hash"], auth)
            content = bytes.fromhex(answer["content"][2:])
            if blake3_hash(content) != digest:
                raise CliError("the node answered another document than the digest's")
            doc = decode_document(content)
            anchors = [a for _, a in anchors_over_rpc(client.call, args.twin)]
        except (ReportError, RpcError) as exc:
            raise CliError(str(exc)) from None
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        anchor = next((a for a in anchors if a.digest == report_digest(doc)), None)
        if anchor is None:
            raise CliError(f"no anchor of twin {args.twin} has digest 0x{digest.hex()}")
        if args.out is not None:
            args.out.write_bytes(content)
        shown = {"anchor": {"kind": anchor.kind, "block": anchor.block,
                            "by": "0x" + anchor.by.hex()},
                 "document": document_json(doc)}  # fmt: skip
        if args.json:
            out.print_json(json.dumps(shown))
        else:
            out.print(shown)
        return 0

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


def _digest(value: str) -> bytes:
    try:
        digest = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise CliError(f"a digest is 32 bytes of hex, got {value!r}")
    return digest


def cmd_reports_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from twinchain.archive.reports import read_index
    from twinchain.node.cli import out

    _need_dir(args.dir)
    index = read_index(args.dir)
    rows = [r for r in index["reports"] if args.twin is None or r["twin"] == args.twin]
    if args.json:
        out.print_json(json.dumps({**index, "reports": rows}))
        return 0
    table = Table("twin", "from_ms", "kind", "digest", "anchor", "block")
    for r in rows:
        table.add_row(
            *(str(r[c]) for c in ("twin", "from_ms", "kind", "digest", "anchor", "block"))
        )
    out.print(table)
    if index.get("late_batches"):
        out.print(f"{index['late_batches']} batches arrived after their window was reported")
    return 0


def cmd_reports_show(args: argparse.Namespace) -> int:
    from twinchain.archive.reports import ReportError, document_json, read_document
    from twinchain.node.cli import out

    _need_dir(args.dir)
    try:
        doc = read_document(args.dir, args.twin, _digest(args.digest))
    except ReportError as exc:
        raise CliError(str(exc)) from None
    shown = document_json(doc)
    if args.json:
        out.print_json(json.dumps(shown))
    else:
        out.print(shown)
    return 0


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
