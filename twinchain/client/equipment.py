"""``twinchain equipment class``: equipment classes as data, on chain.

    twinchain equipment class register FILE --key MANUFACTURER [--rpc URL]
    twinchain equipment class list     [--rpc URL]
    twinchain equipment class show     NAME [--rpc URL] [--toml]

``register`` reads a class file (TOML, see ``twinchain/protocol/classes/*.toml``), checks it,
turns every value into the chain's fixed point at its metric's scale and submits
``Equipment.register_class`` signed by ``--key`` (an EquipmentManufacturer; the council
registers one as Root with ``twinchain consortium propose``). Registering a name again is an
update by its registrant: the version goes up by one. Metrics the chain lacks get new ids,
printed from the events. ``list`` and ``show`` read the finalized state (``show`` verified
against the block's state root); ``show --toml`` prints the class file the chain holds.

Programs use :func:`register_class_call` and :func:`read_class` (sync client) or
:func:`class_of` on what ``AsyncClient.read_storage("Equipment", "Classes", name)`` returns.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twinchain.client.commands import command_adder, run_connected, show_event, submit_finalized
from twinchain.client.sync import Client
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import encode_address
from twinchain.primitives.keystore import KeystoreError, load_keypair
from twinchain.primitives.types import Call
from twinchain.protocol.classdef import (
    ClassDefError,
    EquipmentClass,
    class_from_record,
    class_record,
    dump_class,
    load_class,
)


def add_parser(sub: Any) -> None:
    e = sub.add_parser(
        "equipment",
        help="equipment classes as data: register a class file on chain, list, show",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    esub = e.add_subparsers(dest="equipment_cmd", required=True)
    c = esub.add_parser("class", help="equipment classes (register, list, show)")
    csub = c.add_subparsers(dest="class_cmd", required=True)
    command = command_adder(csub, cmd_class)
    p = command("register", "register or update a class from its file (a manufacturer)", True)
    p.add_argument("file", type=Path, help="the class file (TOML), or a built-in class's name")
    command("list", "the registered classes", False)
    p = command("show", "one registered class", False)
    p.add_argument("name")
    p.add_argument("--toml", action="store_true", help="print it as its class file")


# --------------------------------------------------------------------------- for programs


def register_class_call(client: Client, cls: EquipmentClass) -> Call:
    """``Equipment.register_class`` of ``cls``: its values as fixed-point integers at each
    metric's scale (the runtime never sees a float)."""
    return client.call_function("Equipment", "register_class", definition=class_record(cls))


def class_of(record: Any) -> EquipmentClass | None:
    """The class of an ``Equipment.Classes`` record as read from storage (None: none)."""
    return None if record is None else class_from_record(record.definition)


def read_class(client: Client, name: str) -> EquipmentClass | None:
    """The registered class ``name`` at the finalized block (verified), None if none."""
    return class_of(client.read_storage("Equipment", "Classes", name))


# --------------------------------------------------------------------------- the command


def cmd_class(args: argparse.Namespace) -> int:
    return run_connected(args, lambda client: _run(client, args))


def _run(client: Client, args: argparse.Namespace) -> int:
    cmd = args.class_cmd
    if cmd == "list":
        rows = client.call("twin_classes")
        for r in rows:
            by = (
                "Root"
                if r["registrant"] is None
                else encode_address(bytes.fromhex(r["registrant"][2:]))
            )
            print(
                f"{r['name']} v{r['version']} by {by}: {len(r['metrics'])} metrics, "
                f"failure modes {', '.join(r['failureModes']) or '-'}  {r['hash']}"
            )
        print(f"{len(rows)} classes")
        return 0
    if cmd == "show":
        rec = client.read_storage("Equipment", "Classes", args.name)
        if rec is None:
            raise CliError(f"no class {args.name!r} on chain")
        cls = class_from_record(rec.definition)
        if args.toml:
            print(dump_class(cls), end="")
            return 0
        by = "Root" if rec.registrant is None else encode_address(rec.registrant)
        print(f"{cls.name} v{rec.version} by {by}, hash 0x{rec.hash.hex()}")
        if cls.description:
            print(f"  {cls.description}")
        for m in cls.metrics:
            envelope = "" if m.min is None else f" envelope [{m.min}, {m.max}]"
            rated = "" if m.rated is None else f" rated {m.rated}"
            public = " public" if m.public else ""
            print(
                f"  metric {m.id:>5} {m.name} ({m.unit}, scale {m.scale}, {m.kind})"
                f"{rated}{envelope}{public}"
            )
        for f in cls.failure_modes:
            hours = f.horizon_s / 3600
            print(
                f"  failure mode {f.name}: {f.metric} {f.direction} to {f.limit} "
                f"(P(failure) within {hours:g} h)"
            )
        return 0
    try:
        cls = load_class(str(args.file) if not args.file.exists() else args.file)
    except ClassDefError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    try:
        key = load_keypair(args.key)
    except (KeystoreError, ValueError) as exc:
        raise CliError(f"--key: {exc}") from None
    for e in submit_finalized(client, key, register_class_call(client, cls), args.timeout):
        print(show_event(e))
    return 0
