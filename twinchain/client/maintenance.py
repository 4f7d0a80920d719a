"""``twinchain maintenance alert``: the alarm lifecycle from the command line.

    twinchain maintenance alert list    [--twin N] [--open] [--rpc URL]
    twinchain maintenance alert show    ALERT [--rpc URL]
    twinchain maintenance alert ack     ALERT --key KEY
    twinchain maintenance alert assign  ALERT ACCOUNT|none --key KEY
    twinchain maintenance alert comment ALERT TEXT --key KEY

An open alert is active and unacknowledged until someone acknowledges it; it may be assigned
to an account (``none`` takes the assignment back) and carry comments (at most 256 bytes
each, 32 per alert); it is cleared when its telemetry is back within the clear level, when
it is dismissed, or when a work order made from it is verified. ``ack``, ``assign`` and
``comment`` are signed by the twin's owner, an OPERATE delegate or its facility's operator,
wait for finality and print the events, which name who did it. ``list`` shows each alert's
state, and the failure mode, probability and remaining useful life (P10/P50/P90) of a
prognosis.
"""

from __future__ import annotations

import argparse
from typing import Any

from twinchain.client.commands import command_adder, run_connected, show_event, submit_finalized
from twinchain.client.sync import Client
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import InvalidKey, encode_address, parse_account
from twinchain.primitives.keystore import KeystoreError, load_keypair
from twinchain.primitives.types import Call

STATES = {"ActiveUnacknowledged": "ACTIVE", "Acknowledged": "ACKED", "Cleared": "cleared"}


def add_parser(sub: Any) -> None:
    m = sub.add_parser(
        "maintenance",
        help="maintenance alerts: list, acknowledge, assign, comment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    msub = m.add_subparsers(dest="maintenance_cmd", required=True)
    a = msub.add_parser("alert", help="the alarm lifecycle of maintenance alerts")
    asub = a.add_subparsers(dest="alert_cmd", required=True)
    command = command_adder(asub, cmd_alert)
    p = command("list", "alerts, newest last", False)
    p.add_argument("--twin", type=int, help="one twin's alerts")
    p.add_argument("--open", action="store_true", help="open alerts only")
    command("show", "one alert with its comments", False).add_argument("alert", type=int)
    command("ack", "acknowledge an open alert", True).add_argument("alert", type=int)
    p = command("assign", "assign an open alert to an account (none: unassign)", True)
    p.add_argument("alert", type=int)
    p.add_argument("account", help="address, 0x hex, //Name, or none")
    p = command("comment", "comment on an alert", True)
    p.add_argument("alert", type=int)
    p.add_argument("text")


# --------------------------------------------------------------------------- for programs


def acknowledge_call(client: Client, alert: int) -> Call:
    return client.call_function("Maintenance", "acknowledge_alert", alert=alert)


def assign_call(client: Client, alert: int, assignee: bytes | None) -> Call:
    return client.call_function("Maintenance", "assign_alert", alert=alert, assignee=assignee)


def comment_call(client: Client, alert: int, text: str) -> Call:
    if len(text.encode()) > 256:
        raise CliError("a comment is at most 256 bytes")
    return client.call_function("Maintenance", "comment_alert", alert=alert, text=text)


def describe(a: dict[str, Any]) -> str:
    """One line of an alert as ``twin_alerts`` returns it."""
    what = f"metric {a['metric']} deviation {a['deviationBp'] / 100:+.1f} %"
    if a["kind"] == "Predicted":
        what = (
            f"P(failure) {a['probabilityBp'] / 100:.1f} % within {a['horizonMs'] / 3_600_000:g} h"
        )
    p = a.get("prognosis")
    if p is not None:
        hz = int(p["horizonMs"])
        what = (
            f"{p['mode']}: {what}, RUL {_rul(p['rulP50Ms'], hz)} h "
            f"(P10 {_rul(p['rulP10Ms'], hz)}, P90 {_rul(p['rulP90Ms'], hz)})"
        )
    state = STATES.get(a.get("state") or "", a["status"])
    if a["status"] != "Open":
        state = f"{state} ({a['status'].lower()})"
    extra = ""
    if a.get("assignee"):
        extra += f", assigned to {_addr(a['assignee']['assignee'])}"
    if a.get("comments"):
        extra += f", {a['comments']} comments"
    return f"#{a['id']} twin {a['twin']} [{state}] {what}{extra}"


def _rul(ms: int, horizon_ms: int) -> str:
    """Hours; ">N" where the worker saw no failure within 20 horizons (it submits 20)."""
    if horizon_ms and ms >= 20 * horizon_ms:
        return f">{20 * horizon_ms / 3_600_000:.0f}"
    return f"{ms / 3_600_000:.1f}"


def _addr(hex_account: str) -> str:
    return encode_address(bytes.fromhex(hex_account.removeprefix("0x")))


# --------------------------------------------------------------------------- the command


def cmd_alert(args: argparse.Namespace) -> int:
    return run_connected(args, lambda client: _run(client, args))


def _run(client: Client, args: argparse.Namespace) -> int:
    cmd = args.alert_cmd
    if cmd == "list":
        alerts = client.call("twin_alerts", args.twin, args.open)
        for a in alerts:
            print(describe(a))
        print(f"{len(alerts)} alerts")
        return 0
    if cmd == "show":
        a = client.call("twin_alert", args.alert)
        if a is None:
            raise CliError(f"no alert #{args.alert}")
        print(describe(a))
        if a.get("acknowledged"):
            print(f"  acknowledged by {_addr(a['acknowledged']['by'])}")
        for c in a["commentList"]:
            print(f"  {_addr(c['by'])}: {c['text']}")
        return 0
    try:
        key = load_keypair(args.key)
    except (KeystoreError, ValueError) as exc:
        raise CliError(f"--key: {exc}") from None
    if cmd == "ack":
        call = acknowledge_call(client, args.alert)
    elif cmd == "assign":
        assignee = None
        if args.account.lower() != "none":
            try:
                assignee = parse_account(args.account)
            except InvalidKey as exc:
                raise CliError(f"account: {exc}") from None
        call = assign_call(client, args.alert, assignee)
    else:
        call = comment_call(client, args.alert, args.text)
    for e in submit_finalized(client, key, call, args.timeout):
        print(show_event(e))
    return 0
