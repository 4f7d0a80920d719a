"""Python clients for a twinchain node: JSON-RPC calls, calls built from the node's metadata,
signing, submitting and watching extrinsics to finality, storage reads verified by read
proofs, events, and head subscriptions.

``Client`` and ``RpcClient`` block (httpx); ``AsyncClient`` is for asyncio (one WebSocket),
and ``ReconnectingClient`` keeps one connected. Both kinds run the same plans
(:mod:`twinchain.client.plans`) for everything that takes more than one call.
"""

from twinchain.client.aio import (
    AsyncClient,
    ConnectionEvent,
    ReconnectingClient,
    Subscription,
)
from twinchain.client.common import (
    ChainInfo,
    ClientError,
    NodeUnavailable,
    ProofMismatch,
    TxStatus,
    VersionMismatch,
    WatchTimeout,
    is_method_not_found,
)
from twinchain.client.sync import Client, RpcClient

__all__ = [
    "AsyncClient",
    "ChainInfo",
    "Client",
    "ClientError",
    "ConnectionEvent",
    "NodeUnavailable",
    "ProofMismatch",
    "ReconnectingClient",
    "RpcClient",
    "Subscription",
    "TxStatus",
    "VersionMismatch",
    "WatchTimeout",
    "is_method_not_found",
]
