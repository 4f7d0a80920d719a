"""``twinchain``: the one command line, at the top of the layers.

Each package that has commands registers them here through its ``cli.add_parser(sub)``; this
module owns only what is global: ``--version``, ``-l/--log`` and how an error ends the
process. ``python -m twinchain`` runs :func:`main`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rich.logging import RichHandler

from twinchain import __version__
from twinchain.archive.cli import ArchiveCommands
from twinchain.archive.hosting import ArchiveOptions
from twinchain.client import cli as readings_cli
from twinchain.client import consortium as consortium_cli
from twinchain.client import equipment as equipment_cli
from twinchain.client import facility as facility_cli
from twinchain.client import maintenance as maintenance_cli
from twinchain.client import session as session_cli
from twinchain.client.sync import RpcClient
from twinchain.dashboard import cli as dashboard_cli
from twinchain.devnet import cli as devnet_cli
from twinchain.explorer import cli as explorer_cli
from twinchain.gateway import cli as gateway_cli
from twinchain.node import cli as node_cli
from twinchain.node import logspec
from twinchain.node.chain_spec import ChainSpecError
from twinchain.offchain import cli as offchain_cli
from twinchain.offchain import simulate as simulate_cli
from twinchain.primitives.errors import CliError
from twinchain.primitives.keystore import KeystoreError
from twinchain.rpc.hosting import NodeHostingOptions
from twinchain.storage.kv import StorageError

#: In the order ``twinchain --help`` lists them, after the node's own.
COMMANDS = (
    devnet_cli,
    gateway_cli,
    offchain_cli,
    explorer_cli,
    dashboard_cli,
    simulate_cli,
    ArchiveCommands(rpc=RpcClient),
    readings_cli,
    consortium_cli,
    facility_cli,
    session_cli,
    equipment_cli,
    maintenance_cli,
)
#: The facility archive's flags; its one store is shared by its service and the RPC's.
ARCHIVE = ArchiveOptions()
#: What ``twinchain node`` hosts beside the chain, each with its flags: wired here, at the
#: top, because the node sits below rpc and cannot import it. The archive first: it settles
#: and stores what the RPC service's archive_deliver hands it.
NODE_SERVICES = (ARCHIVE, NodeHostingOptions(archive=ARCHIVE.store_for))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinchain", description="twinchain node")
    p.add_argument("--version", action="version", version=f"twinchain {__version__}")
    p.add_argument(*node_cli.LOG_FLAGS, dest="log", **node_cli.LOG_OPTIONS)
    sub = p.add_subparsers(dest="cmd", required=True)
    node_cli.add_parser(sub, services=NODE_SERVICES)
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = RichHandler(console=node_cli.console, show_path=False, rich_tracebacks=False)
    handler.setFormatter(logspec.TargetFormatter("%(message)s"))
    logging.basicConfig(format="%(message)s", handlers=[handler])
    # Per-request lines from the HTTP client (devnet status polling) are noise at info level;
    # set before the -l targets so that an explicit httpx=debug still wins.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logspec.apply(logspec.parse(node_cli.log_values(args)))
    try:
        return int(args.fn(args) or 0)
    except (CliError, ChainSpecError, KeystoreError) as exc:
        node_cli.console.print(f"[red]error:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except StorageError as exc:
        return _storage_failed(exc)
    except BaseExceptionGroup as group:
        # trio wraps what a node task raised in (nested) groups: a storage error anywhere in
        # it is the reason the node stopped; anything else is a bug and keeps its traceback.
        found, _ = group.split(StorageError)
        if found is None:
            raise
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        return _storage_failed(found)  # type: ignore[arg-type]


def _storage_failed(exc: StorageError) -> int:
    """One clear line, then exit 74 (EX_IOERR): the database took no half-written state."""
    logging.getLogger("twinchain.node").critical("%s; stopping the node", exc)
    return 74


if __name__ == "__main__":
    sys.exit(main())
