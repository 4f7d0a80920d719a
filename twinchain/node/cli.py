"""``twinchain``: the node's command line, spelled as Substrate's.

twinchain [-l LOG] node [--dev | --chain SPEC] [--base-path DIR] [--validator] [--port N]
               [--rpc-port N] [--state-pruning N|archive] [--blocks-pruning N|archive] [-l LOG]
twinchain key generate | inspect | insert
twinchain build-spec [--dev | --chain SPEC]
twinchain purge-chain [--dev | --chain SPEC] --base-path DIR [-y]
twinchain export-blocks [--dev | --chain SPEC] --base-path DIR [--from N] [--to N] FILE
twinchain import-blocks [--dev | --chain SPEC] --base-path DIR FILE
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twinchain import __version__
from twinchain.node import logspec
from twinchain.node.chain_spec import (
    ChainSpec,
    ChainSpecError,
    add_consortium_args,
    consortium_from_args,
    resolve,
)
from twinchain.node.services import NodeService
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import InvalidKey, Keypair, decode_address, encode_address
from twinchain.primitives.keystore import KEY_TYPES, Keystore, KeystoreError

console = Console(stderr=True)
out = Console()


def _pruning(value: str) -> int | None:
    if value == "archive":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--state-pruning takes a number or 'archive'") from None
    if n < 1:
        raise argparse.ArgumentTypeError("--state-pruning must keep at least 1 state")
    return n


# Gateways settle by reading recent finalized bodies, and peers that fall behind sync them
# from us: keep at least this many.
MIN_BLOCKS_PRUNING = 256


def _blocks_pruning(value: str) -> int | None:
    if value in ("archive", "archive-canonical"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--blocks-pruning takes a number or 'archive'") from None
    if n < MIN_BLOCKS_PRUNING:
        raise argparse.ArgumentTypeError(
            f"--blocks-pruning must keep at least {MIN_BLOCKS_PRUNING} finalized blocks' bodies"
        )
    return n


def _listen_addr(value: str) -> tuple[str, int | None]:
    """(IP, port or None) from an IP, or a multiaddr /ip4/IP[/tcp/PORT] as Substrate's."""
    import ipaddress

    host, port = value, None
    if value.startswith("/"):
        parts = value.strip("/").split("/")
        if (
            len(parts) not in (2, 4)
            or parts[0] not in ("ip4", "ip6")
            or parts[2:3] not in ([], ["tcp"])
        ):
            raise argparse.ArgumentTypeError("--listen-addr takes an IP or /ip4/IP[/tcp/PORT]")
        host = parts[1]
        if len(parts) == 4:
            if not parts[3].isdigit():
                raise argparse.ArgumentTypeError(f"--listen-addr: bad port {parts[3]!r}")
            port = int(parts[3])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen-addr: {host!r} is not an IP address") from None
    return host, port


def _chain_args(p: argparse.ArgumentParser, base_required: bool = False) -> None:
    p.add_argument("--dev", action="store_true", help="the development chain (Alice validates)")
    p.add_argument("--chain", help="dev, local, or the path of a chain spec JSON")
    p.add_argument("--base-path", "-d", type=Path, required=base_required, help="data folder")


def _spec(args: argparse.Namespace) -> ChainSpec:
    try:
        return resolve(args.dev, args.chain)
    except ChainSpecError as exc:
        raise CliError(str(exc)) from None


def _suri_keypair(suri: str) -> Keypair:
    if suri.startswith("//"):
        return Keypair.from_dev_name(suri)
    try:
        return Keypair.from_seed(bytes.fromhex(suri.removeprefix("0x")))
    except (ValueError, InvalidKey) as exc:
        raise CliError(f"--suri must be //Name or a 32-byte hex seed: {exc}") from None


# ---------------------------------------------------------------------------- commands


def cmd_node(args: argparse.Namespace) -> int:
    import trio

    from twinchain.node.service import Node, NodeConfig
    from twinchain.primitives.process import tune_gc
    from twinchain.runtime.migrations import SpecVersionKnobError, software_max_spec_version

    try:
        software_max_spec_version()  # a bad test knob is a usage error, not a traceback
    except SpecVersionKnobError as exc:
        raise CliError(str(exc)) from None
    spec = _spec(args)
    dev = args.dev or args.chain == "dev"
    validator = args.validator or dev
    key = _suri_keypair(args.key) if args.key else (Keypair.from_dev_name("Alice") if dev else None)
    cfg = NodeConfig(
        spec=spec,
        base_path=args.base_path,
        name=args.name,
        validator=validator,
        author_key=key,
        port=None if args.no_p2p else (args.listen_addr[1] or args.port),
        listen_host=args.listen_addr[0],
        bootnodes=args.bootnodes,
        reserved_nodes=args.reserved_nodes,
        reserved_only=args.reserved_only,
        authorized_peers_file=args.authorized_peers_file,
        max_peers=args.max_peers,
        max_connections_per_ip=args.max_connections_per_ip,
        double_sign=args.unsafe_double_sign,
        services=[s for options in args.service_options for s in options.services(args)],
        pruning=args.state_pruning,
        blocks_pruning=args.blocks_pruning,
    )
    node = Node(cfg)
    console.print(
        f"[bold]twinchain {__version__}[/] · chain [cyan]{spec.name}[/] · "
        f"genesis 0x{node.chain.genesis_hash.hex()[:16]}… · base {node.base_path} · "
        f"runtime spec {node.chain.spec_version_at(node.chain.best.hash)} "
        f"(this node runs up to {node.chain.runtime.max_spec_version})"
    )
    tune_gc()
    trio.run(node.run)
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    if args.key_cmd == "generate":
        kp = Keypair.generate()
        info = {
            "secretSeed": "0x" + kp.secret.hex(),
            "publicKey": "0x" + kp.public.hex(),
            "accountId": "0x" + kp.public.hex(),
            "address": kp.address,
        }
    elif args.key_cmd == "inspect":
        text = args.uri
        if text.startswith("//") or (len(text.removeprefix("0x")) == 64 and not args.public):
            kp = _suri_keypair(text)
            info = {
                "secretSeed": "0x" + kp.secret.hex(),
                "publicKey": "0x" + kp.public.hex(),
                "address": kp.address,
            }
        else:
            try:
                acct = (
                    bytes.fromhex(text.removeprefix("0x"))
                    if text.startswith("0x")
                    else decode_address(text)
                )
                addr = encode_address(acct)
            except (ValueError, InvalidKey) as exc:
                raise CliError(f"cannot inspect {text!r}: {exc}") from None
            info = {"publicKey": "0x" + acct.hex(), "address": addr}
    else:  # insert
        spec = _spec(args)
        if args.base_path is None:
            raise CliError("key insert needs --base-path")
        if args.key_type not in KEY_TYPES:
            raise CliError(f"--key-type must be one of {', '.join(KEY_TYPES)}")
        kp = _suri_keypair(args.suri) if args.suri else Keypair.generate()
        ks = Keystore(args.base_path / "chains" / spec.id / "keystore")
        try:
            path = ks.insert(args.key_type, kp)
        except KeystoreError as exc:
            raise CliError(str(exc)) from None
        info = {
            "keyType": args.key_type,
            "publicKey": "0x" + kp.public.hex(),
            "address": kp.address,
            "file": str(path),
        }
    if args.output_type == "json":
        out.print_json(json.dumps(info))
    else:
        for k, v in info.items():
            out.print(f"[bold]{k:>12}[/]: {v}")
    return 0


def cmd_build_spec(args: argparse.Namespace) -> int:
    try:
        consortium = consortium_from_args(args)
    except ChainSpecError as exc:
        raise CliError(str(exc)) from None
    spec = consortium or _spec(args)
    data: dict[str, Any] = spec.to_json()
    if args.raw:
        data["genesisHash"] = "0x" + spec.genesis_block().hash.hex()
        data["genesisStorage"] = {
            "0x" + k.hex(): "0x" + v.hex() for k, v in sorted(spec.genesis_storage().items())
        }
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    return 0


def cmd_purge_chain(args: argparse.Namespace) -> int:
    spec = _spec(args)
    db = args.base_path / "chains" / spec.id / "db"
    if not db.exists():
        console.print(f"nothing to purge at {db}")
        return 0
    if not args.yes:
        answer = input(f"Remove {db}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.print("aborted")
            return 1
    shutil.rmtree(db)
    console.print(f"[green]removed[/] {db}")
    return 0


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def cmd_export_blocks(args: argparse.Namespace) -> int:
    from twinchain.node.blockchain import Blockchain
    from twinchain.storage.blockstore import ChainStoreError

    spec = _spec(args)
    chain = Blockchain(spec, args.base_path, pruning=None)
    try:
        end = chain.best.number if args.to is None else min(args.to, chain.best.number)
        start = args.from_
        with open(args.file, "wb") as fh, _progress() as prog:
            task = prog.add_task("exporting", total=end - start + 1, rate="")
            for raw in chain.iter_blocks(start, end):
                fh.write(struct.pack(">I", len(raw)))
                fh.write(raw)
                prog.advance(task)
    except ChainStoreError as exc:
        raise CliError(str(exc)) from None
    finally:
        chain.close()
    console.print(f"exported blocks #{start}..#{end} to {args.file}")
    return 0


def read_block_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            head = fh.read(4)
            if not head:
                return
            if len(head) != 4:
                raise CliError("truncated block file")
            (n,) = struct.unpack(">I", head)
            raw = fh.read(n)
            if len(raw) != n:
                raise CliError("truncated block file")
            yield raw


def cmd_import_blocks(args: argparse.Namespace) -> int:
    import time

    from twinchain.node.blockchain import Blockchain, BlockImportError
    from twinchain.primitives.codec import CodecError
    from twinchain.primitives.types import Block

    spec = _spec(args)
    chain = Blockchain(spec, args.base_path, pruning=args.state_pruning)
    raws = list(read_block_file(args.file))
    imported = skipped = 0
    t0 = time.perf_counter()
    try:
        with _progress() as prog:
            task = prog.add_task("importing", total=len(raws), rate="")
            for raw in raws:
                try:
                    block = Block.decode(raw)
                except CodecError as exc:
                    raise CliError(f"bad block in file: {exc}") from None
                if block.header.number == 0:
                    if block.hash != chain.genesis_hash:
                        raise CliError("the file's genesis differs from this chain's")
                    skipped += 1
                else:
                    try:
                        chain.import_block(block, check_time=False)
                        imported += 1
                    except BlockImportError as exc:
                        if exc.reason != "known":
                            raise CliError(
                                f"block #{block.header.number} rejected: {exc}"
                            ) from None
                        skipped += 1
                if block.header.number > 0 and chain.blocks.header(block.hash) is not None:
                    # Blocks from a file were finalized where they came from; re-check is the
                    # re-execution above, so they may be finalized here too.
                    chain.finalize(block.hash)
                rate = imported / max(time.perf_counter() - t0, 1e-9)
                prog.update(task, advance=1, rate=f"{rate:,.0f} blocks/s")
        best = chain.best
        console.print(
            f"imported {imported} blocks ({skipped} already known); best #{best.number} "
            f"0x{best.hash.hex()} state root 0x{best.state_root.hex()}"
        )
    finally:
        chain.close()
    return 0


# ---------------------------------------------------------------------------- parser


LOG_FLAGS = ("-l", "--log")
LOG_OPTIONS: dict[str, Any] = {
    "action": "append",
    "type": logspec.check,
    "metavar": "LOG",
    "help": "log levels as Substrate's -l: LEVEL, TARGET=LEVEL or both, comma-separated "
    "(e.g. 'info,grandpa=debug,sync=debug'); repeatable",
}


def log_values(args: argparse.Namespace) -> list[str]:
    """Every -l given, before the subcommand and after it, in that order."""
    return [*(args.log or []), *(getattr(args, "sub_log", None) or [])]


class ServiceOptions(Protocol):
    """Flags of ``twinchain node`` for services the node hosts (the node cannot import what
    serves it, e.g. ``twinchain.rpc.hosting.NodeHostingOptions``: the top-level CLI passes
    them to :func:`add_parser`)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this service's flags to ``twinchain node``."""

    def services(self, args: argparse.Namespace) -> list[NodeService]:
        """The services the parsed flags ask for, in the order the node starts them."""
        ...


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _reserved_node(value: str) -> str:
    from twinchain.p2p.host import parse_bootnode  # libp2p: imported only when used

    try:
        parse_bootnode(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a multiaddr with /p2p/<peer id>"
        ) from None
    return value


def _authorized_peers_file(value: str) -> Path:
    from twinchain.p2p.permission import AuthorizedPeersError, AuthorizedPeersFile

    try:
        AuthorizedPeersFile(Path(value)).load()
    except AuthorizedPeersError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(value)


def _permission_args(n: argparse.ArgumentParser) -> None:
    """Who may connect, and how many (``twinchain.p2p.permission``, ``p2p.guard``)."""
    n.add_argument(
        "--reserved-nodes",
        nargs="+",
        action="extend",
        default=[],
        type=_reserved_node,
        metavar="MULTIADDR",
        help="peers (multiaddrs with /p2p/<id>) always allowed, dialed and kept connected, "
        "never counted against --max-peers",
    )
    n.add_argument(
        "--reserved-only",
        action="store_true",
        help="refuse every peer but the reserved nodes, in the handshake",
    )
    n.add_argument(
        "--authorized-peers-file",
        type=_authorized_peers_file,
        metavar="PATH",
        help="a permissioned network: only these peer ids (one a line, or a multiaddr with "
        "/p2p/<id>; # comments) and the reserved nodes may connect; others are refused in "
        "the handshake. Re-read when it changes; removed peers are disconnected",
    )
    n.add_argument(
        "--max-peers",
        type=_positive,
        default=50,
        metavar="N",
        help="peers connected at once, inbound and outbound, reserved not counted; inbound "
        "ones beyond it are refused (default 50: Substrate's 25 in + 25 out)",
    )
    n.add_argument(
        "--max-connections-per-ip",
        type=_positive,
        default=8,
        metavar="N",
        help="inbound connections from one IP, handshaking or established by a peer that is "
        "not reserved, authorized or a bootnode; more are closed at once (default 8)",
    )


def add_parser(sub: Any, services: Sequence[ServiceOptions] = ()) -> None:
    """The node's own commands: node, key, build-spec, purge-chain, export/import-blocks.

    ``services``: what ``twinchain node`` may host beside the chain (JSON-RPC, metrics), each
    with its flags."""
    n = sub.add_parser(
        "node",
        help="run a node",
        epilog="Runtime upgrades: a chain switches to a new spec version at the block the "
        "council scheduled (System.schedule_upgrade). A node whose release lacks that version "
        "stops there (no import, no authoring, no fork), logs and reports in system_health "
        "which version to install, and serves RPC meanwhile; restarted with that release it "
        "goes on. TWINCHAIN_MAX_SPEC_VERSION=N (rehearsals, tests) makes this release run "
        "spec versions up to N only, as an older release would.",
    )
    _chain_args(n)
    n.add_argument("--validator", action="store_true", help="author blocks with the aura key")
    n.add_argument("--key", help="author key as //Name or hex seed (instead of the keystore)")
    n.add_argument("--name", default="twinchain-node", help="node name shown to peers and RPC")
    # Also after the subcommand, where Substrate users put it; its own dest, because a
    # subparser's default would overwrite the value given before the subcommand.
    n.add_argument(*LOG_FLAGS, dest="sub_log", **LOG_OPTIONS)
    n.add_argument("--port", type=int, default=30333, help="p2p port")
    n.add_argument(
        "--listen-addr",
        type=_listen_addr,
        default=("127.0.0.1", None),
        help="p2p listen address: an IP, or /ip4/IP[/tcp/PORT] (a PORT overrides --port)",
    )
    n.add_argument("--bootnodes", action="append", default=[], help="peer multiaddr (repeatable)")
    n.add_argument("--no-p2p", action="store_true", help="run without networking")
    _permission_args(n)
    # Test-only: author two different blocks per own slot, to exercise equivocation handling.
    n.add_argument("--unsafe-double-sign", action="store_true", help=argparse.SUPPRESS)
    for options in services:
        options.add_arguments(n)
    n.add_argument(
        "--state-pruning",
        type=_pruning,
        default=256,
        help="states to keep (default 256) or 'archive'",
    )
    n.add_argument(
        "--blocks-pruning",
        type=_blocks_pruning,
        default=None,
        help="keep the bodies of the last N finalized blocks only, or 'archive' (default: "
        "every body); headers and justifications are always kept",
    )
    n.set_defaults(fn=cmd_node, service_options=tuple(services))

    k = sub.add_parser("key", help="key utilities")
    ksub = k.add_subparsers(dest="key_cmd", required=True)
    kg = ksub.add_parser("generate", help="generate a new key pair")
    ki = ksub.add_parser("inspect", help="show the public key and address of a seed or address")
    ki.add_argument("uri", help="//Name, hex seed, hex public key or address")
    ki.add_argument("--public", action="store_true", help="treat a 0x value as a public key")
    kn = ksub.add_parser("insert", help="insert a key into the node's keystore")
    _chain_args(kn)
    kn.add_argument("--key-type", required=True, help=f"one of {', '.join(KEY_TYPES)}")
    kn.add_argument("--suri", help="//Name or hex seed (default: a new random key)")
    for sp in (kg, ki, kn):
        sp.add_argument("--output-type", choices=("text", "json"), default="text")
    k.set_defaults(fn=cmd_key)

    b = sub.add_parser("build-spec", help="print a chain spec as JSON")
    _chain_args(b)
    add_consortium_args(b)
    b.add_argument("--raw", action="store_true", help="include the genesis storage and hash")
    b.set_defaults(fn=cmd_build_spec)

    pc = sub.add_parser("purge-chain", help="remove the chain database")
    _chain_args(pc, base_required=True)
    pc.add_argument("-y", "--yes", action="store_true", help="do not ask")
    pc.set_defaults(fn=cmd_purge_chain)

    e = sub.add_parser("export-blocks", help="export blocks to a file")
    _chain_args(e, base_required=True)
    e.add_argument("--from", dest="from_", type=int, default=0)
    e.add_argument("--to", type=int)
    e.add_argument("file", type=Path)
    e.set_defaults(fn=cmd_export_blocks)

    i = sub.add_parser("import-blocks", help="import (re-execute) blocks from a file")
    _chain_args(i, base_required=True)
    i.add_argument("--state-pruning", type=_pruning, default=256)
    i.add_argument("file", type=Path)
    i.set_defaults(fn=cmd_import_blocks)
