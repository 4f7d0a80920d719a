"""``twinchain readings``: a twin's raw readings from its owner's archive node, as an account
the chain lets read them, each verified against its batch's finalized root on chain; and
``twinchain document put|get``: a twin's documents in that archive, by content hash.

    twinchain readings --rpc URL --key KEY --twin T --metric M [--last-s N | --from-ms A
                       --to-ms B] [--csv FILE] [--ca-file PEM]

``--key`` is ``//Name``, a hex seed, a key file or a one-key keystore (the request is
signed with it); ``--api-key`` instead uses a key the node's operator issued. The metric is
its id or its registered name.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

from twinchain.client.sync import Client
from twinchain.primitives.errors import CliError
from twinchain.primitives.keystore import load_keypair
from twinchain.protocol.jsonrpc import RpcError


def add_parser(sub: Any) -> None:
    r = sub.add_parser(
        "readings",
        help="read a twin's raw readings from its owner's archive node (verified)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--rpc", default="http://127.0.0.1:9944", help="the twin owner's node")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--key", help="sign as this account (//Name, seed, key file)")
    who.add_argument("--api-key", help="an API key the node's operator issued")
    r.add_argument("--twin", type=int, required=True)
    r.add_argument("--metric", required=True, help="metric id or name (e.g. power)")
    r.add_argument("--last-s", type=int, default=300, help="the last N seconds (default 300)")
    r.add_argument("--from-ms", type=int, help="range start (ms since the epoch)")
    r.add_argument("--to-ms", type=int, help="range end (ms since the epoch, inclusive)")
    r.add_argument("--csv", type=Path, help="write them here (default: a table on stdout)")
    r.add_argument("--ca-file", help="CA bundle for an https:// node")
    r.set_defaults(fn=cmd_readings)

    d = sub.add_parser(
        "document",
        help="keep or fetch a twin's document (manual, certificate, report) in its archive",
    )
    dsub = d.add_subparsers(dest="document_cmd", required=True)
    for name, what in (("put", "keep FILE; prints its hash"), ("get", "fetch by hash")):
        c = dsub.add_parser(name, help=what)
        c.add_argument("--rpc", default="http://127.0.0.1:9944", help="the twin owner's node")
        ident = c.add_mutually_exclusive_group(required=True)
        ident.add_argument("--key", help="sign as this account (//Name, seed, key file)")
        ident.add_argument("--api-key", help="an API key the node's operator issued")
        c.add_argument("--twin", type=int, required=True)
        c.add_argument("--ca-file", help="CA bundle for an https:// node")
        if name == "put":
            c.add_argument("file", type=Path)
        else:
            c.add_argument("--hash", required=True, help="the document's 0x-hex BLAKE3 hash")
            c.add_argument("--out", type=Path, required=True, help="write the document here")
        c.set_defaults(fn=cmd_document)


def _metric(client: Client, name: str) -> int:
    if name.isdigit():
        return int(name)
    for m in client.call("twin_metrics"):
        if m.get("name") == name:
            return int(m["id"])
    raise CliError(f"no metric named {name!r} on this chain")


def cmd_readings(args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)
    lo = args.from_ms if args.from_ms is not None else now - args.last_s * 1000
    hi = args.to_ms if args.to_ms is not None else now
    key = load_keypair(args.key) if args.key else None
    try:
        with Client(args.rpc, timeout=30, ca_file=args.ca_file) as client:
            metric = _metric(client, args.metric)
            found = client.readings(args.twin, metric, lo, hi, key=key, api_key=args.api_key)
    except RpcError as exc:
        detail = f" ({exc.data})" if exc.data else ""
        raise CliError(f"the node refused: {exc.message}{detail}") from None
    rows = [(r.timestamp, r.value, "0x" + r.device.hex(), r.seq, r.index) for r in found]
    header = ("timestamp_ms", "value", "device", "seq", "index")
    if args.csv is not None:
        with args.csv.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
    else:
        w = csv.writer(sys.stdout, delimiter="\t")
        w.writerow(header)
        w.writerows(rows)
    print(
        f"{len(rows)} readings of metric {metric} of twin {args.twin}, each verified against "
        "its batch root at the finalized block",
        file=sys.stderr,
    )
    return 0


def cmd_document(args: argparse.Namespace) -> int:
    key = load_keypair(args.key) if args.key else None
    who = {"key": key, "api_key": args.api_key}
    try:
        with Client(args.rpc, timeout=60, ca_file=args.ca_file) as client:
            if args.document_cmd == "put":
                digest = client.put_document(args.twin, args.file.read_bytes(), **who)
                print("0x" + digest.hex())
                print(
                    "list it on chain with Equipment.add_document(twin, kind, hash)",
                    file=sys.stderr,
                )
            else:
                digest = bytes.fromhex(args.hash.removeprefix("0x"))
                args.out.write_bytes(client.document(args.twin, digest, **who))
                print(f"{args.out}: content checked against 0x{digest.hex()}", file=sys.stderr)
    except RpcError as exc:
        detail = f" ({exc.data})" if exc.data else ""
        raise CliError(f"the node refused: {exc.message}{detail}") from None
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return 0
