"""JSON-RPC and Prometheus hosted in a node: the servers, the ``NodeService`` objects that
start them in the node's nursery, and the flags of ``twinchain node`` that ask for them.

The node never imports rpc; ``twinchain node`` (wired in ``twinchain.cli``) adds the flags
below to its parser and hands the services they ask for to ``NodeConfig.services``. A test
that wants a node with RPC does the same: ``NodeConfig(..., services=[RpcService(port=0)])``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from twinchain.node.services import NodeService
from twinchain.primitives.errors import CliError
from twinchain.rpc.api import ArchiveSource, NodeHandle
from twinchain.rpc.asgi import bind_address, hypercorn_config, serve_asgi
from twinchain.rpc.auth import API_KEYS_FILE, ApiKeyStore, add_api_key_commands
from twinchain.rpc.metrics import DEFAULT_PORT as METRICS_PORT
from twinchain.rpc.metrics import MetricsApp
from twinchain.rpc.subscriptions import MiB
from twinchain.rpc.transport import RpcApp, is_loopback

log = logging.getLogger("twinchain.rpc")
metrics_log = logging.getLogger("twinchain.rpc.metrics")

RPC_PORT = 9944  # Substrate's


async def serve_rpc(
    node: NodeHandle,
    host: str,
    port: int,
    *,
    unsafe: bool,
    cors: list[str] | None = None,
    max_request_bytes: int = 10 * MiB,
    max_connections: int = 100,
    max_subscriptions_per_connection: int = 1024,
    max_response_bytes: int = 20 * MiB,
    max_calls_per_second: float = 1000.0,
    archive: ArchiveSource = None,
    api_keys: ApiKeyStore | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC on ``host:port`` (HTTP and WebSocket) until cancelled.

    ``task_status.started(port)`` reports the bound port (useful with ``port=0``). ``unsafe``
    answers unsafe methods (author_insertKey, ...) from any address; without it they are
    answered only to loopback peers. ``cors``: allowed browser origins (see OriginPolicy).
    ``archive``: the facility archive (``archive_deliver``, ``twin_readings``); ``api_keys``:
    the keys the operator issued. With ``tls_cert`` and ``tls_key`` (PEM files) it serves
    https and wss only (hypercorn's TLS).
    """
    app = RpcApp(
        node,
        unsafe=unsafe,
        cors=cors,
        max_request_bytes=max_request_bytes,
        max_connections=max_connections,
        max_subscriptions_per_connection=max_subscriptions_per_connection,
        max_response_bytes=max_response_bytes,
        max_calls_per_second=max_calls_per_second,
        archive=archive,
        api_keys=api_keys,
    )
    # A peer that sends nothing for read_timeout is dropped (slow-loris request bodies, dead
    # sockets); WebSocket clients answer the pings, so quiet subscribers stay connected.
    config = hypercorn_config(host, port, errorlog="twinchain.rpc.http", read_timeout=60)
    config.websocket_max_message_size = max_request_bytes
    config.websocket_ping_interval = 20.0
    config.keep_alive_timeout = 5.0  # idle keep-alive sockets are not counted as connections
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both a certificate and its key")
    if tls_cert is not None:
        config.certfile, config.keyfile = str(tls_cert), str(tls_key)
    http, ws = ("https", "wss") if tls_cert is not None else ("http", "ws")

    def listening(bound: int) -> None:
        where = bind_address(host, bound)
        log.info("JSON-RPC on %s://%s and %s://%s", http, where, ws, where)
        if not unsafe and not is_loopback(host):
            log.info("unsafe RPC methods are answered to loopback peers only")

    with app.hub.attached():
        await serve_asgi(
            app,
            config,
            what="JSON-RPC",
            on_listening=listening,
            beside=app.hub.run,
            task_status=task_status,
        )


async def serve_metrics(
    node: NodeHandle,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve Prometheus metrics on ``host:port`` until cancelled; ``task_status.started(port)``
    reports the bound port (useful with ``port=0``)."""
    app = MetricsApp(node)
    config = hypercorn_config(host, port, errorlog="twinchain.rpc.metrics.http", read_timeout=30)
    client = node.chain
    client.import_listeners.append(app.on_import)
    try:
        await serve_asgi(
            app,
            config,
            what="Prometheus",
            on_listening=lambda bound: metrics_log.info(
                "Prometheus metrics on http://%s/metrics", bind_address(host, bound)
            ),
            task_status=task_status,
        )
    finally:
        client.import_listeners.remove(app.on_import)


@dataclass
class RpcService:
    """JSON-RPC over HTTP and WebSocket on ``host:port`` (``port=0``: one the OS picks)."""

    host: str = "127.0.0.1"
    port: int = RPC_PORT
    #: Answer unsafe methods (keys, peers) off loopback too.
    unsafe: bool = False
    #: Allowed browser origins; empty: Substrate's default (this machine only).
    cors: list[str] = field(default_factory=list)
    name: str = "rpc"
    #: The facility archive, or a function returning it once it is open (None: no archive).
    archive: ArchiveSource = None
    #: ``api-keys.json`` of the keys the operator issued (None: API keys are refused).
    api_keys: Path | None = None
    #: PEM certificate (chain) and private key: serve https/wss instead of http/ws.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    async def run(self, node: NodeHandle, *, task_status: trio.TaskStatus[int]) -> None:
        await serve_rpc(
            node,
            self.host,
            self.port,
            unsafe=self.unsafe,
            cors=self.cors or None,
            archive=self.archive,
            api_keys=None if self.api_keys is None else ApiKeyStore(self.api_keys),
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            task_status=task_status,
        )


@dataclass
class MetricsService:
    """Prometheus metrics on ``http://host:port/metrics``."""

    host: str = "127.0.0.1"
    port: int = METRICS_PORT
    name: str = "prometheus"

    async def run(self, node: NodeHandle, *, task_status: trio.TaskStatus[int]) -> None:
        await serve_metrics(node, self.host, self.port, task_status=task_status)


class NodeHostingOptions:
    """The RPC and Prometheus flags of ``twinchain node``, and the services they ask for.

    ``archive(args)`` gives the facility archive the RPC methods serve (the store, or a
    function returning it once open; None: no archive), e.g. the archive options'
    ``store_for``. API keys are read from ``<base-path>/api-keys.json``, managed with
    ``twinchain node api-key``."""

    def __init__(
        self, archive: Callable[[argparse.Namespace], ArchiveSource] | None = None
    ) -> None:
        self.archive = archive

    def add_arguments(self, n: argparse.ArgumentParser) -> None:
        n.add_argument("--rpc-port", type=int, default=RPC_PORT, help="JSON-RPC port (HTTP+WS)")
        n.add_argument("--no-rpc", action="store_true", help="do not serve JSON-RPC")
        n.add_argument(
            "--prometheus-port", type=int, default=METRICS_PORT, help="Prometheus metrics port"
        )
        n.add_argument(
            "--no-prometheus", action="store_true", help="do not serve Prometheus metrics"
        )
        n.add_argument(
            "--prometheus-external", action="store_true", help="serve metrics on all interfaces"
        )
        n.add_argument("--rpc-external", action="store_true", help="listen on all interfaces")
        n.add_argument(
            "--rpc-methods",
            choices=("safe", "unsafe"),
            default="safe",
            help="'unsafe' answers key and peer admin methods off loopback too",
        )
        n.add_argument("--rpc-cors", help="comma-separated allowed origins, or 'all'")
        n.add_argument("--rpc-tls-cert", type=Path, help="PEM certificate: serve https/wss")
        n.add_argument("--rpc-tls-key", type=Path, help="PEM private key of --rpc-tls-cert")
        add_api_key_commands(n)

    def services(self, args: argparse.Namespace) -> list[NodeService]:
        out: list[NodeService] = []
        if not args.no_rpc:
            cert, key = args.rpc_tls_cert, args.rpc_tls_key
            if (cert is None) != (key is None):
                raise CliError("--rpc-tls-cert and --rpc-tls-key go together")
            for f in (cert, key):
                if f is not None and not f.is_file():
                    raise CliError(f"no such file: {f}")
            base = getattr(args, "base_path", None)
            out.append(
                RpcService(
                    host="0.0.0.0" if args.rpc_external else "127.0.0.1",
                    port=args.rpc_port,
                    unsafe=args.rpc_methods == "unsafe",
                    cors=[c for c in (args.rpc_cors or "").split(",") if c],
                    archive=None if self.archive is None else self.archive(args),
                    api_keys=None if base is None else Path(base) / API_KEYS_FILE,
                    tls_cert=cert,
                    tls_key=key,
                )
            )
        if not args.no_prometheus:
            out.append(
                MetricsService(
                    host="0.0.0.0" if args.prometheus_external else "127.0.0.1",
                    port=args.prometheus_port,
                )
            )
        return out


__all__ = [
    "RPC_PORT",
    "MetricsService",
    "NodeHostingOptions",
    "RpcService",
    "serve_metrics",
    "serve_rpc",
]
