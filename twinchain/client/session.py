"""``twinchain session``: a validator's session keys, from the command line.

    twinchain session rotate --rpc URL --key ACCOUNT_KEY
    twinchain session keys   [--rpc URL]

``rotate`` asks the validator's own node (``--rpc``: it must answer unsafe methods, so on
loopback unless the node runs with ``--rpc-methods unsafe``) for a new session key with
``author_rotateKeysWithOwner``; the key stays in that node's keystore, which signs with it
once the chain makes it active. It then submits ``Session.set_keys(key, proof)`` signed by
the validator's account (``--key``: //Name, hex seed or key file) and waits for finality.
The new key replaces the old one in the authority set at the next session boundary; the node
keeps authoring and voting with the old key until then, so nothing restarts.

``keys`` lists each authority: its account, the session key in force and a key queued for
the next session (reads verified against the finalized block's state root).
"""

from __future__ import annotations

import argparse
from typing import Any

from twinchain.client.commands import DEFAULT_RPC, run_connected, submit_to_block
from twinchain.client.sync import Client
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import encode_address
from twinchain.primitives.keystore import KeystoreError, load_keypair
from twinchain.protocol.jsonrpc import from_hex, number_from_json, to_hex


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "session",
        help="a validator's session keys: rotate them without a restart, list them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = s.add_subparsers(dest="session_cmd", required=True)
    r = ssub.add_parser("rotate", help="new session key on the node, registered by set_keys")
    r.add_argument("--rpc", default=DEFAULT_RPC, help="the validator's own node (loopback)")
    r.add_argument("--key", required=True, help="the validator account (//Name, seed, file)")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds to finality")
    k = ssub.add_parser("keys", help="each authority's account, active and queued key")
    k.add_argument("--rpc", default=DEFAULT_RPC, help="a node of the chain")
    for p in (r, k):
        p.add_argument("--ca-file", help="CA bundle for an https:// node")
        p.set_defaults(fn=cmd_session)


def cmd_session(args: argparse.Namespace) -> int:
    return run_connected(
        args, lambda client: rotate(client, args) if args.session_cmd == "rotate" else keys(client)
    )


def rotate(client: Client, args: argparse.Namespace) -> int:
    try:
        account = load_keypair(args.key)
    except (KeystoreError, ValueError) as exc:
        raise CliError(f"--key: {exc}") from None
    got = client.call("author_rotateKeysWithOwner", to_hex(account.public))
    key, proof = from_hex(got["keys"], "keys", 32), from_hex(got["proof"], "proof", 64)
    print(f"new session key 0x{key.hex()} in the node's keystore", flush=True)
    call = client.call_function("Session", "set_keys", key=key, proof=proof)
    block, _ = submit_to_block(client, account, call, args.timeout)
    number = number_from_json(client.call("chain_getHeader", to_hex(block))["number"])
    length = client.read_storage("Authority", "SessionLength")
    boundary = (number // length + 1) * length
    print(
        f"set_keys finalized in #{number}: 0x{key.hex()} signs for "
        f"{encode_address(account.public)} from block #{boundary} (the next session) on",
        flush=True,
    )
    return 0


def keys(client: Client) -> int:
    authorities: list[bytes] = client.read_storage("Authority", "Authorities")
    for key in authorities:
        owner = client.read_storage("Session", "KeyOwner", key)
        account = key if owner is None else owner
        queued = client.read_storage("Session", "QueuedKeys", account)
        line = f"{encode_address(account)} key 0x{key.hex()}"
        print(line if queued is None else f"{line} next 0x{queued.hex()}")
    print(f"{len(authorities)} authorities", flush=True)
    return 0
