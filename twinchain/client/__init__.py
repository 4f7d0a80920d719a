"""Python clients for a twinchain node: JSON-RPC calls, calls built from the node's metadata,
signing, submitting and watching extrinsics to finality, storage reads verified by read
proofs, events, and head subscriptions.

``Client`` and ``RpcClient`` block (httpx); ``AsyncClient`` is for asyncio (one WebSocket),
and ``ReconnectingClient`` keeps one connected. Both kinds run the same plans
(:mod:`twinchain.client.plans`) for everything that takes more than one call, among them
the facility archive's: ``readings`` (signed or API-key reads, every reading verified against
its batch's finalized root) and ``deliver`` (a gateway's batches). https/wss endpoints take
an optional ``ca_file``.
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
    Delivery,
    NodeUnavailable,
    ProofMismatch,
    Reading,
    TxStatus,
    VersionMismatch,
    WatchTimeout,
    is_bad_proof,
    is_method_not_found,
    tls_context,
)
from twinchain.client.sync import Client, RpcClient
from twinchain.protocol.jsonrpc import AccessDenied

__all__ = [
    "AccessDenied",
    "AsyncClient",
    "ChainInfo",
    "Client",
    "ClientError",
    "ConnectionEvent",
    "Delivery",
    "NodeUnavailable",
    "ProofMismatch",
    "Reading",
    "ReconnectingClient",
    "RpcClient",
    "Subscription",
    "TxStatus",
    "VersionMismatch",
    "WatchTimeout",
    "is_bad_proof",
    "is_method_not_found",
    "tls_context",
]
