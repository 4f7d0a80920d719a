"""Python client for a twinchain node: build calls from metadata, sign, submit and watch
extrinsics to finality, read storage verified by read proofs, subscribe to heads.

``Client`` blocks (httpx); ``AsyncClient`` is for trio (httpx + trio-websocket).
"""

from twinchain.client.aio import AsyncClient, Subscription
from twinchain.client.common import (
    ChainInfo,
    ClientError,
    ProofMismatch,
    TxStatus,
    VersionMismatch,
    WatchTimeout,
)
from twinchain.client.sync import Client

__all__ = [
    "AsyncClient",
    "ChainInfo",
    "Client",
    "ClientError",
    "ProofMismatch",
    "Subscription",
    "TxStatus",
    "VersionMismatch",
    "WatchTimeout",
]
