"""JSON-RPC and Prometheus hosted in a node: the ``NodeService`` objects and their flags.

The node never imports rpc; ``twinchain node`` (wired in ``twinchain.cli``) adds the flags
below to its parser and hands the services they ask for to ``NodeConfig.services``. A test
that wants a node with RPC does the same: ``NodeConfig(..., services=[RpcService(port=0)])``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import trio

from twinchain.node.services import NodeService
from twinchain.rpc.api import NodeHandle
from twinchain.rpc.metrics import DEFAULT_PORT as METRICS_PORT
from twinchain.rpc.metrics import serve_metrics
from twinchain.rpc.server import serve_rpc

RPC_PORT = 9944  # Substrate's


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

    async def run(self, node: NodeHandle, *, task_status: trio.TaskStatus[int]) -> None:
        await serve_rpc(
            node,
            self.host,
            self.port,
            unsafe=self.unsafe,
            cors=self.cors or None,
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
    """The RPC and Prometheus flags of ``twinchain node``, and the services they ask for."""

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

    def services(self, args: argparse.Namespace) -> list[NodeService]:
        out: list[NodeService] = []
        if not args.no_rpc:
            out.append(
                RpcService(
                    host="0.0.0.0" if args.rpc_external else "127.0.0.1",
                    port=args.rpc_port,
                    unsafe=args.rpc_methods == "unsafe",
                    cors=[c for c in (args.rpc_cors or "").split(",") if c],
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


__all__ = ["RPC_PORT", "MetricsService", "NodeHostingOptions", "RpcService"]
