"""``twinchain explorer``'s arguments."""

from __future__ import annotations

import argparse

from twinchain.explorer.cli import add_parser


def test_cli_parses_rpc_url() -> None:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(["explorer", "--rpc", "ws://10.0.0.1:9944"])
    assert args.rpc == "ws://10.0.0.1:9944" and callable(args.fn)
    assert p.parse_args(["explorer"]).rpc == "ws://127.0.0.1:9944"
