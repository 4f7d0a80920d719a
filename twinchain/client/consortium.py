"""``twinchain consortium``: the council of a consortium chain, from the command line.

    twinchain consortium members  [--rpc URL]
    twinchain consortium motions  [--rpc URL]
    twinchain consortium propose  --key KEY PALLET.CALL [NAME=VALUE ...]
    twinchain consortium vote     --key KEY MOTION (--aye | --nay)
    twinchain consortium close    --key KEY MOTION
    twinchain consortium sync     --key KEY ACCOUNT

A member proposes a call, which the council dispatches as Root once enough members vote
aye and anyone closes the motion; ``motions`` shows each open motion's votes, how many ayes
it needs and the block it expires after. Values of ``propose`` are read by the call's
argument types: accounts as addresses, ``0x`` hex or ``//Name``, byte strings as ``0x`` hex
or text, and lists or records as JSON (``'["//Bob", "//Dave"]'``).
Reads are verified against the finalized block's state root; every command that submits
waits for finality and reports the council's events, or the call's error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from twinchain.client.commands import command_adder, run_connected, show_event, submit_finalized
from twinchain.client.sync import Client
from twinchain.primitives import codec
from twinchain.primitives.codec import (
    Bool,
    Bytes,
    Enum,
    Fixed,
    Lazy,
    Option,
    Str,
    Struct,
    Tuple,
    Type,
    Vec,
)
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import InvalidKey, encode_address, parse_account
from twinchain.primitives.keystore import KeystoreError, load_keypair
from twinchain.primitives.types import Call
from twinchain.runtime.pallets.council import required_votes


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "consortium",
        help="the consortium's council: members, motions, propose, vote, close",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csub = c.add_subparsers(dest="consortium_cmd", required=True)

    command = command_adder(csub, cmd_consortium)

    command("members", "the council's members", False)
    command("motions", "the open motions, their votes and thresholds", False)
    p = command("propose", "propose a call for the council to dispatch as Root", True)
    p.add_argument("call", metavar="PALLET.CALL", help="e.g. Facility.suspend")
    p.add_argument("values", nargs="*", metavar="NAME=VALUE", help="the call's arguments")
    p = command("vote", "vote on an open motion (a member)", True)
    p.add_argument("motion", type=int)
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--aye", dest="approve", action="store_true")
    side.add_argument("--nay", dest="approve", action="store_false")
    p = command("close", "close a motion: dispatch it if approved, drop it if not", True)
    p.add_argument("motion", type=int)
    p = command("sync", "re-derive an account's membership (a lapsed verification)", True)
    p.add_argument("account", help="address, 0x hex or //Name")


# --------------------------------------------------------------------------- values


def _bytes(text: str) -> bytes:
    if text.startswith("0x"):
        return bytes.fromhex(text[2:])
    return text.encode()


def value_of(t: Type, v: Any) -> Any:
    """A command-line or JSON value as the Python value codec type ``t`` encodes."""
    if isinstance(t, Lazy):
        return value_of(t._resolve(), v)
    if isinstance(t, Fixed):
        return parse_account(str(v)) if t.n == 32 else _bytes(str(v))
    if isinstance(t, Bytes):
        return _bytes(str(v))
    if isinstance(t, Str | Enum):
        return str(v)
    if t is Bool:
        if isinstance(v, bool):
            return v
        if str(v).lower() in ("true", "yes", "1", "false", "no", "0"):
            return str(v).lower() in ("true", "yes", "1")
        raise ValueError(f"not a bool: {v!r}")
    if isinstance(t, Option):
        return None if v is None or v == "null" else value_of(t.inner, v)
    if isinstance(t, Vec | Tuple | Struct):
        obj = json.loads(v) if isinstance(v, str) else v
        if isinstance(t, Vec):
            return [value_of(t.inner, x) for x in obj]
        if isinstance(t, Tuple):
            return tuple(value_of(i, x) for i, x in zip(t.items, obj, strict=True))
        if isinstance(obj, dict):
            obj = [obj[f] for f, _ in t.fields]
        return t.cls(*(value_of(ft, x) for (_, ft), x in zip(t.fields, obj, strict=True)))
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            return json.loads(v)
    return v


def build_call(client: Client, target: str, values: list[str]) -> Call:
    """``PALLET.CALL`` with ``NAME=VALUE`` arguments, typed by the node's runtime."""
    pallet, _, name = target.partition(".")
    rt = client.codec.runtime
    p = rt.by_name.get(pallet)
    cd = None if p is None else p.calls_by_name.get(name)
    if cd is None:
        raise CliError(f"no call {target!r} in this runtime (PALLET.CALL, e.g. Facility.suspend)")
    given: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        if not sep:
            raise CliError(f"arguments are NAME=VALUE, not {item!r}")
        given[key] = val
    names = [n for n, _ in cd.args]
    if sorted(given) != sorted(names):
        raise CliError(f"{target} takes {', '.join(names) or 'no arguments'}")
    try:
        args = {n: value_of(t, given[n]) for n, t in cd.args}
    except (ValueError, TypeError, KeyError, InvalidKey) as exc:
        raise CliError(f"bad argument for {target}: {exc}") from None
    return client.call_function(pallet, name, **args)


# --------------------------------------------------------------------------- commands


def _addr(account: bytes) -> str:
    return encode_address(account)


def _call_name(client: Client, wire: Any) -> str:
    try:
        call = Call.from_wire(wire)
        p = client.codec.runtime.pallets[call.pallet]
        return f"{p.name}.{p.calls[call.index].name}"
    except (KeyError, ValueError, TypeError):
        return f"<call {wire[0]}.{wire[1]}>"


def cmd_consortium(args: argparse.Namespace) -> int:
    return run_connected(args, lambda client: _run(client, args))


def _run(client: Client, args: argparse.Namespace) -> int:
    cmd = args.consortium_cmd
    members: list[bytes] = client.read_storage("Council", "Members")
    if cmd == "members":
        for m in members:
            print(_addr(m))
        print(f"{len(members)} members", flush=True)
        return 0
    if cmd == "motions":
        open_: list[int] = client.read_storage("Council", "Open")
        for i in open_:
            m = client.read_storage("Council", "Motions", i)
            if m is None:
                continue
            need = required_votes(m.threshold, len(members))
            print(
                f"#{i} {_call_name(client, m.call)} 0x{m.hash.hex()[:16]}… "
                f"{m.threshold}: {len(m.ayes)}/{need} ayes, {len(m.nays)} nays, "
                f"open until block {m.end}, weight {m.weight}, proposed by {_addr(m.proposer)}"
            )
            for who in m.ayes:
                print(f"    aye {_addr(who)}")
            for who in m.nays:
                print(f"    nay {_addr(who)}")
        print(f"{len(open_)} open motions", flush=True)
        return 0

    try:
        key = load_keypair(args.key)
    except (KeystoreError, ValueError) as exc:
        raise CliError(f"--key: {exc}") from None
    if cmd == "propose":
        inner = build_call(client, args.call, args.values)
        wire = list(inner.to_wire())
        # (propose's argument is named ``call``, as call_function's own parameter is)
        call = client.codec.build_call(
            "Council", "propose", {"call": wire, "length_bound": len(codec.encode(wire))}
        )
    elif cmd == "vote":
        call = client.call_function("Council", "vote", motion=args.motion, approve=args.approve)
    elif cmd == "close":
        m = client.read_storage("Council", "Motions", args.motion)
        if m is None:
            raise CliError(f"no open motion #{args.motion}")
        call = client.call_function("Council", "close", motion=args.motion, weight_bound=m.weight)
    else:  # sync
        try:
            who = parse_account(args.account)
        except InvalidKey as exc:
            raise CliError(f"not an account: {exc}") from None
        call = client.call_function("Council", "sync_member", who=who)
    for e in submit_finalized(client, key, call, args.timeout):
        print(show_event(e))
    return 0
