"""Peer-to-peer networking on py-libp2p: gossip, sync, peer scoring (see ``service``)."""

from twinchain.p2p.abc import ChainStatus, NetworkHandler, PeerView, Verdict
from twinchain.p2p.scoring import Penalty
from twinchain.p2p.service import NetworkConfig, NetworkService

__all__ = [
    "ChainStatus",
    "NetworkConfig",
    "NetworkHandler",
    "NetworkService",
    "PeerView",
    "Penalty",
    "Verdict",
]
