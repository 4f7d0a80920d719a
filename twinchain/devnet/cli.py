"""``twinchain devnet``: a local multi-facility devnet (up, status, down) and its chaos run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twinchain.node.cli import LOG_FLAGS, LOG_OPTIONS, console, log_values, out
from twinchain.primitives.errors import CliError


def add_parser(sub: Any) -> None:
    dv = sub.add_parser("devnet", help="a local multi-facility devnet")
    dsub = dv.add_subparsers(dest="devnet_cmd", required=True)
    du = dsub.add_parser("up", help="start one validator per facility on 127.0.0.1")
    du.add_argument("--validators", type=int, default=4)
    du.add_argument("--slot-ms", type=int, default=1000)
    du.add_argument("--detach", action="store_true", help="return once every node is up")
    du.add_argument(
        "--no-gateways", action="store_true", help="validators only: no simulating gateways"
    )
    du.add_argument("--no-workers", action="store_true", help="no predictive-maintenance workers")
    du.add_argument("--no-dashboards", action="store_true", help="no web dashboards")
    du.add_argument(*LOG_FLAGS, dest="sub_log", **{**LOG_OPTIONS, "help": "passed to validators"})
    ds = dsub.add_parser("status", help="best/finalized height and peers of every node")
    ds.add_argument("--json", action="store_true")
    dd = dsub.add_parser("down", help="stop the devnet (SIGTERM, then SIGKILL)")
    dd.add_argument("--timeout", type=float, default=15)
    from twinchain.devnet.chaos import add_arguments as chaos_arguments

    chaos_arguments(dsub.add_parser("chaos", help="validators as separate hosts under faults"))
    for sp in (du, ds, dd):
        sp.add_argument("--base-dir", type=Path, default=Path("devnet"), help="devnet folder")
    dv.set_defaults(fn=cmd_devnet)


def cmd_devnet(args: argparse.Namespace) -> int:
    from twinchain.devnet import manager

    if args.devnet_cmd == "chaos":
        from twinchain.devnet import chaos

        return chaos.main(args, out)
    base: Path = args.base_dir
    try:
        if args.devnet_cmd == "up":
            console.print(f"starting {args.validators} facility validators in {base} …")
            nodes = manager.up(
                base,
                args.validators,
                args.slot_ms,
                gateways=not args.no_gateways,
                workers=not (args.no_workers or args.no_gateways),
                dashboards=not args.no_dashboards,
                log=",".join(log_values(args)) or None,
            )
            for n in nodes:
                console.print(f"  [green]●[/] {n.name}: {n.rpc_url}  {n.multiaddr}")
            dbs = manager.load_dashboards(base)
            for d in dbs:
                console.print(f"  [cyan]▣[/] dashboard of {d.facility}: {d.url}")
            if dbs:
                console.print(
                    "  sign in as a facility's owner (acts on its alarms) or operator: "
                    "twinchain dashboard login --url URL --key KEY_FILE, e.g.\n"
                    f"    .venv/bin/twinchain dashboard login --url {dbs[0].url} "
                    f"--key {dbs[0].owner_key}\n"
                    "  (keys: the owner_key and operator_key of each dashboard in "
                    f"{base}/devnet.json); sign its actions with twinchain dashboard sign --key …"
                )
            if args.detach:
                console.print("detached; stop with: twinchain devnet down --base-dir " + str(base))
                return 0
            try:
                manager.watch(base, console)
            except KeyboardInterrupt:
                pass
            finally:
                stopped = manager.down(base)
                console.print(f"stopped {stopped} nodes")
        elif args.devnet_cmd == "status":
            rows = manager.status(base)
            if args.json:
                sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            else:
                out.print(manager.table(rows, {}))
        else:
            console.print(f"stopped {manager.down(base, timeout=args.timeout)} nodes")
    except manager.DevnetError as exc:
        raise CliError(str(exc)) from None
    return 0
