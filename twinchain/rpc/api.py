"""The RPC seam: what the server needs from a node.

``NodeHandle`` is implemented by ``twinchain.node.service.Node``; tests use a small stand-in.
``ArchiveStore`` is the facility archive (``twinchain.archive``), when the node keeps one.
The JSON shapes both ends share are in :mod:`twinchain.protocol.jsonrpc`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from twinchain.consensus.grandpa import Voter
    from twinchain.node.blockchain import Blockchain
    from twinchain.node.txpool import TransactionPool
    from twinchain.primitives.keystore import Keystore
    from twinchain.protocol.telemetry import Batch


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


@dataclass(frozen=True)
class InThread:
    """A method handler's result still to compute: ``fn()`` runs in a worker thread and its
    return value is the result. For blocking work (the archive's synced writes) after the
    call's checks ran on the node's thread; never for a subscription, whose id must go out
    first."""

    fn: Callable[[], Any]


class Delivery(Protocol):
    """The archive's answer for one delivered batch."""

    device: bytes
    seq: int
    status: str  # "staged" | "archived" | "refused"
    reason: str | None


class ArchivedBatch(Protocol):
    """One archived batch: the device, its sequence number, ALL its readings (a proof of one
    reading needs the whole batch's leaves), its twin and the root of its finalized record."""

    device: bytes
    seq: int
    readings: Sequence[tuple[int, int, int]]
    twin: int
    root: bytes


class ArchiveStore(Protocol):
    """The facility archive as the RPC server uses it (``twinchain.archive.ArchiveStore``)."""

    facility: int

    def deliver(self, gateway: bytes, batches: list[Batch]) -> Sequence[Delivery]:
        """Stage a gateway's batches (thread-safe, sync); one delivery per batch, in order."""
        ...

    def readings(
        self, twin: int, metric: int | None, from_ms: int, to_ms: int, limit: int
    ) -> Sequence[ArchivedBatch]:
        """The archived batches of ``twin`` overlapping ``[from_ms, to_ms]``, at most
        ``limit``."""
        ...


#: What a server is given for its archive: the store, or a function returning it (None until
#: the archive service has opened it).
ArchiveSource = ArchiveStore | Callable[[], ArchiveStore | None] | None


def archive_getter(source: ArchiveSource) -> Callable[[], ArchiveStore | None] | None:
    """``source`` as a function that returns the store (None: no archive yet, or none)."""
    if source is None:
        return None
    if hasattr(source, "readings"):
        store: ArchiveStore = source  # type: ignore[assignment]
        return lambda: store
    return source  # type: ignore[return-value]
