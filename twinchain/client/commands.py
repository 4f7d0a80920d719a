"""What the client's command groups (``consortium``, ``facility``, ``session``) share: the
default node, sub-commands that reach a node and may sign, one place that turns a node's or
the client's errors into a CLI error, and submitting an extrinsic to finality with its events.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from twinchain.client.common import ClientError
from twinchain.client.sync import Client
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import encode_address
from twinchain.primitives.types import Call, extrinsic_hash
from twinchain.protocol.jsonrpc import RpcError, from_hex, to_hex

DEFAULT_RPC = "http://127.0.0.1:9944"

Command = Callable[[str, str, bool], argparse.ArgumentParser]


def command_adder(subparsers: Any, fn: Callable[[argparse.Namespace], int]) -> Command:
    """``command(name, help, signs)``: a sub-command running ``fn`` against ``--rpc`` (with
    ``--ca-file``); one that ``signs`` also takes ``--key`` and ``--timeout`` to finality."""

    def command(name: str, help_: str, signs: bool) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_)
        p.add_argument("--rpc", default=DEFAULT_RPC, help="a node of the chain")
        p.add_argument("--ca-file", help="CA bundle for an https:// node")
        if signs:
            p.add_argument("--key", required=True, help="sign as this account (//Name, seed, file)")
            p.add_argument("--timeout", type=float, default=120.0, help="seconds to finality")
        p.set_defaults(fn=fn)
        return p

    return command


def run_connected(args: argparse.Namespace, run: Callable[[Client], int]) -> int:
    """``run`` with a client of ``args.rpc``; the node's refusals and the client's errors
    become CliError (one line, no traceback)."""
    try:
        with Client(args.rpc, timeout=30, ca_file=args.ca_file) as client:
            return run(client)
    except RpcError as exc:
        detail = f" ({exc.data})" if exc.data else ""
        raise CliError(f"the node refused: {exc.message}{detail}") from None
    except ClientError as exc:
        raise CliError(str(exc)) from None


def submit_finalized(client: Client, key: Any, call: Call, timeout: float) -> list[dict[str, Any]]:
    """Sign, submit, wait for finality: the events of the pallets this extrinsic dispatched
    to, or CliError with the dispatch error."""
    return submit_to_block(client, key, call, timeout)[1]


def submit_to_block(
    client: Client, key: Any, call: Call, timeout: float
) -> tuple[bytes, list[dict[str, Any]]]:
    """:func:`submit_finalized` with the hash of the finalized block holding it (signed
    again once if a runtime upgrade since connecting made the pool refuse it: BadProof)."""
    xt, statuses = client.sign_and_watch(call, key, timeout=timeout)
    final = statuses[-1]
    if final.kind != "finalized" or final.block is None:
        raise CliError(f"the extrinsic ended {final.kind}: {final.raw!r}")
    data = client.call("chain_getBlock", to_hex(final.block))
    raws = [from_hex(x, "extrinsic") for x in data["block"]["extrinsics"]]
    mine = extrinsic_hash(xt.encode())
    index = next(i for i, r in enumerate(raws) if extrinsic_hash(r) == mine)
    events = [e for e in client.events(final.block) if e["extrinsic"] == index]
    for e in events:
        if e["event"] == "ExtrinsicFailed":
            raise CliError(f"failed on chain: {e['args']['module']}.{e['args']['error']}")
    return final.block, [e for e in events if e["pallet"] != "System" and e["phase"] == "apply"]


def show_event(e: dict[str, Any]) -> str:
    """``Pallet.Event(name=value, ...)``: a ``who`` account as its address, bytes as hex."""
    args = {
        k: (encode_address(v) if isinstance(v, bytes) and len(v) == 32 and k == "who" else v)
        for k, v in e["args"].items()
    }
    shown = ", ".join(
        f"{k}={'0x' + v.hex() if isinstance(v, bytes) else v}" for k, v in args.items()
    )
    return f"{e['pallet']}.{e['event']}({shown})"
