"""The seam upward: services a node runs beside its own tasks (JSON-RPC, Prometheus metrics).

The node sits below ``twinchain.rpc`` and never imports it. What serves the node to the
outside world is handed to it instead, as :class:`NodeService` objects in
``NodeConfig.services``; whoever builds the node (the ``twinchain node`` command, a test)
chooses them. ``Node.run`` starts each one in its nursery, in the order given, after the
network and before authoring, and they stop with every other task of the node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import trio

if TYPE_CHECKING:
    from twinchain.node.service import Node


class NodeService(Protocol):
    """One service a node hosts in its nursery (e.g. ``twinchain.rpc.hosting.RpcService``)."""

    @property
    def name(self) -> str:
        """Short name, the key of the bound port in ``Node.service_ports`` (``"rpc"`` is the
        one the node's "ready" log line shows)."""

    async def run(self, node: Node, *, task_status: trio.TaskStatus[int]) -> None:
        """Serve ``node`` until cancelled. Call ``task_status.started(port)`` with the port it
        listens on once it accepts connections; raise ``OSError`` if it cannot listen."""
        ...
