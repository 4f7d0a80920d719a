"""The RPC seam: what the server needs from a node.

``NodeHandle`` is implemented by ``twinchain.node.service.Node``; tests use a small stand-in.
The JSON shapes both ends share are in :mod:`twinchain.protocol.jsonrpc`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from twinchain.consensus.grandpa import Voter
    from twinchain.node.blockchain import Blockchain
    from twinchain.node.txpool import TransactionPool
    from twinchain.primitives.keystore import Keystore


class NodeHandle(Protocol):
    """The running node as the RPC server sees it (read-only properties: plain attributes of
    the node satisfy them too)."""

    @property
    def chain(self) -> Blockchain:
        """Chain database and runtime."""

    @property
    def pool(self) -> TransactionPool:
        """The transaction pool (``pending()`` feeds author_pendingExtrinsics)."""

    @property
    def keystore(self) -> Keystore:
        """Local keys (author_insertKey / author_hasKey / author_rotateKeys)."""

    @property
    def name(self) -> str:
        """Human-readable node name (system_name)."""

    @property
    def version(self) -> str:
        """Implementation version (system_version)."""

    @property
    def roles(self) -> list[str]:
        """Substrate role names: "Authority", "Full", "Light"."""

    @property
    def is_syncing(self) -> bool:
        """True while the node is catching up with its peers."""

    @property
    def peers(self) -> list[dict[str, Any]]:
        """Connected peers in system_peers' shape (peerId, roles, bestHash, bestNumber)."""

    @property
    def local_peer_id(self) -> str:
        """This node's libp2p peer id (base58)."""

    @property
    def listen_addresses(self) -> list[str]:
        """Multiaddresses this node listens on for p2p."""

    @property
    def voter(self) -> Voter | None:
        """The finality voter of the current authority set (grandpa_roundState, finality
        metrics); read on each use, since a new set replaces it. None: no finality runs."""

    def submit_extrinsic(self, raw: bytes) -> bytes:
        """Validate and pool ``raw``; return its hash. Raises ``PoolError``."""
        ...
