"""``twinchain facility``: a facility's way onto the network and into the authority set.

    twinchain facility list               [--rpc URL]
    twinchain facility show               [--rpc URL] FACILITY
    twinchain facility nodes              [--rpc URL]
    twinchain facility register           --key OPERATOR --name NAME --validator ACCOUNT
                                          [--location TEXT] [--capability C ...]
    twinchain facility audit              --key AUDITOR FACILITY --evidence HASH|FILE
                                          [--valid-days N | --fail]
    twinchain facility propose-validator  --key OPERATOR FACILITY --node PEER_ID
    twinchain facility withdraw-validator --key OPERATOR FACILITY
    twinchain facility add-node           --key OPERATOR FACILITY PEER_ID
    twinchain facility remove-node        --key OPERATOR FACILITY PEER_ID
    twinchain facility peer-id            PEER_ID

Onboarding: the operator (an account with the FacilityOperator role) registers the facility
with the key its validator will sign with; a certified auditor audits it; the operator
proposes the validator with the libp2p peer id of the node that runs it (the node prints
it at start, and answers ``system_localPeerId``); the council approves with
``twinchain consortium propose Facility.approve_validator facility=N`` and its votes. The
node is admitted by the network once the approval is final, and its key authors and votes
from the next session boundary on. ``nodes`` lists what every node admits; ``peer-id``
prints a peer id as the ``0x`` hex a council motion takes (``twinchain consortium propose
Facility.add_well_known_node node=0x…``).

Reads are verified against the finalized block's state root; every command that submits
waits for finality and prints the Facility events, or the call's error.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from twinchain.client.commands import command_adder, run_connected, show_event, submit_finalized
from twinchain.client.sync import Client
from twinchain.primitives.errors import CliError
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import InvalidKey, encode_address, parse_account
from twinchain.primitives.keystore import KeystoreError, load_keypair
from twinchain.runtime.pallets.facility.types import parse_peer_id, peer_id_text

DAY_MS = 86_400_000


def add_parser(sub: Any) -> None:
    f = sub.add_parser(
        "facility",
        help="facilities: register, audit, propose a validator, authorize nodes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = f.add_subparsers(dest="facility_cmd", required=True)

    command = command_adder(fsub, cmd_facility)

    command("list", "every facility: status, validator, nodes", False)
    command("show", "one facility", False).add_argument("facility", type=int)
    command("nodes", "the peer ids the network admits now (finalized state)", False)
    p = command("register", "register a facility (its operator)", True)
    p.add_argument("--name", required=True)
    p.add_argument("--location", default="")
    p.add_argument("--capability", action="append", default=[], help="repeat for several")
    p.add_argument("--validator", required=True, help="the validator's account (key)")
    p = command("audit", "verify a facility (a certified auditor)", True)
    p.add_argument("facility", type=int)
    p.add_argument("--evidence", required=True, help="0x-hex hash, or a file to hash")
    p.add_argument("--valid-days", type=int, default=365, help="verified for N days")
    p.add_argument("--fail", action="store_true", help="record a failed audit")
    p = command("propose-validator", "propose the validator and its node (operator)", True)
    p.add_argument("facility", type=int)
    p.add_argument("--node", required=True, help="the node's libp2p peer id (or multiaddr)")
    p = command("withdraw-validator", "take the validator out (operator)", True)
    p.add_argument("facility", type=int)
    p = fsub.add_parser("peer-id", help="a peer id (or multiaddr) as 0x hex, for motions")
    p.add_argument("node")
    p.set_defaults(fn=cmd_peer_id)
    for name, what in (("add-node", "authorize"), ("remove-node", "stop authorizing")):
        p = command(name, f"{what} one of the facility's nodes (operator)", True)
        p.add_argument("facility", type=int)
        p.add_argument("node", help="libp2p peer id (or multiaddr)")


# --------------------------------------------------------------------------- values


def _peer(text: str) -> bytes:
    try:
        return parse_peer_id(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _evidence(text: str) -> bytes:
    if text.startswith("0x") and len(text) == 66:
        return bytes.fromhex(text[2:])
    try:
        return blake3_hash(Path(text).read_bytes())
    except OSError as exc:
        raise CliError(f"--evidence: neither a 0x-hex hash nor a readable file ({exc})") from None


def _verified(info: Any, now: int) -> bool:
    """As Facility.is_verified: status Verified by an unexpired passed audit."""
    v = info.verification
    return bool(info.status == "Verified" and v is not None and v.passed and v.expires > now)


# --------------------------------------------------------------------------- commands


def cmd_peer_id(args: argparse.Namespace) -> int:
    print("0x" + _peer(args.node).hex())
    return 0


def cmd_facility(args: argparse.Namespace) -> int:
    return run_connected(args, lambda client: _run(client, args))


def _facilities(client: Client) -> list[tuple[int, Any]]:
    count = int(client.read_storage("Facility", "NextFacilityId"))
    found = [(i, client.read_storage("Facility", "Facilities", i)) for i in range(count)]
    return [(i, f) for i, f in found if f is not None]


def _describe(client: Client, fid: int, f: Any, now: int, authorities: list[bytes]) -> str:
    p = client.read_storage("Facility", "ValidatorProposals", fid)
    nodes = client.read_storage("Facility", "Nodes", fid)
    state = "verified" if _verified(f, now) else f.status.lower()
    if p is not None:
        validator = f"validator {p.status.lower()} (node {peer_id_text(p.node)})"
    elif f.validator in authorities:
        validator = "validator active (genesis)"
    else:
        validator = "no validator"
    lines = [
        f"#{fid} {f.name} [{state}] operator {encode_address(f.operator)}, {validator}, "
        f"key {encode_address(f.validator)}"
    ]
    lines += [f"    node {peer_id_text(n)}" for n in nodes]
    return "\n".join(lines)


def _run(client: Client, args: argparse.Namespace) -> int:
    cmd = args.facility_cmd
    if cmd in ("list", "show", "nodes"):
        now = int(client.read_storage("Timestamp", "Now"))
        authorities = list(client.read_storage("Authority", "Authorities"))
        facilities = _facilities(client)
        if cmd == "show":
            chosen = [(i, f) for i, f in facilities if i == args.facility]
            if not chosen:
                raise CliError(f"no facility #{args.facility}")
            facilities = chosen
        if cmd in ("list", "show"):
            for fid, f in facilities:
                print(_describe(client, fid, f, now, authorities))
            return 0
        # As Facility.authorized_nodes: well-known nodes, verified facilities' nodes, and
        # those of facilities whose validator is still in the set (its key, not rotated).
        for n in client.read_storage("Facility", "WellKnown"):
            print(f"{peer_id_text(n)}  well-known")
        total = len(client.read_storage("Facility", "WellKnown"))
        for fid, f in facilities:
            if _verified(f, now) or f.validator in authorities:
                for n in client.read_storage("Facility", "Nodes", fid):
                    print(f"{peer_id_text(n)}  #{fid} {f.name}")
                    total += 1
        print(f"{total} authorized nodes" + ("" if total else " (the network is open)"))
        return 0

    try:
        key = load_keypair(args.key)
    except (KeystoreError, ValueError) as exc:
        raise CliError(f"--key: {exc}") from None
    if cmd == "register":
        try:
            validator = parse_account(args.validator)
        except InvalidKey as exc:
            raise CliError(f"--validator: {exc}") from None
        call = client.call_function(
            "Facility",
            "register",
            name=args.name,
            location=args.location,
            capabilities=args.capability,
            validator=validator,
        )
    elif cmd == "audit":
        expires = int(time.time() * 1000) + args.valid_days * DAY_MS
        call = client.call_function(
            "Facility",
            "verify",
            facility=args.facility,
            evidence=_evidence(args.evidence),
            passed=not args.fail,
            expires=expires,
        )
    elif cmd == "propose-validator":
        call = client.call_function(
            "Facility", "propose_validator", facility=args.facility, node=_peer(args.node)
        )
    elif cmd == "withdraw-validator":
        call = client.call_function("Facility", "withdraw_validator", facility=args.facility)
    else:  # add-node, remove-node
        name = cmd.replace("-", "_")
        call = client.call_function("Facility", name, facility=args.facility, node=_peer(args.node))
    for e in submit_finalized(client, key, call, args.timeout):
        if e["pallet"] == "Facility" and "node" in e["args"]:
            e = {**e, "args": {**e["args"], "node": peer_id_text(e["args"]["node"])}}
        print(show_event(e))
    return 0
