"""``twinchain`` subcommands of this package (heavy imports stay inside the commands)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

DEFAULT_RPC = "ws://127.0.0.1:9944"


def cmd_explorer(args: argparse.Namespace) -> int:
    from twinchain.explorer.app import ExplorerApp

    # The main CLI logs to the terminal, which the TUI owns now.
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logging.NullHandler())
    key = None
    if args.key:
        from twinchain.primitives.keystore import load_keypair

        key = load_keypair(args.key)
    ExplorerApp(args.rpc, key=key, api_key=args.api_key, ca_file=args.ca_file).run()
    return 0


def add_parser(sub: Any) -> None:
    """Register this package's subcommands on the main CLI's subparsers."""
    p = sub.add_parser("explorer", help="block explorer TUI (JSON-RPC only)")
    p.add_argument(
        "--rpc",
        default=DEFAULT_RPC,
        help=f"node JSON-RPC URL, ws:// or http:// (default {DEFAULT_RPC})",
    )
    p.add_argument("--ca-file", help="CA bundle for a wss:// or https:// node")
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--key", help="read private telemetry as this account (//Name, seed, key file)"
    )
    who.add_argument("--api-key", help="read private telemetry with an API key of the node's")
    p.set_defaults(fn=cmd_explorer)


__all__ = ["add_parser"]
