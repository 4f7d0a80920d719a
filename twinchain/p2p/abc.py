"""The network layer's interfaces, on one page.

The node implements :class:`NetworkHandler`; the network layer (``twinchain.p2p.service``)
calls it for everything that arrives from peers and never touches the chain otherwise. All
handler methods are synchronous and called from the node's trio thread; an exception raised by
one is logged and treated as :attr:`Verdict.REJECT` for data from a peer, so a handler bug can
never stop the network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TypedDict, runtime_checkable


class Verdict(enum.Enum):
    """What the node thinks of one piece of data from a peer."""

    #: Valid and new: imported or queued; gossip is forwarded to other peers.
    ACCEPT = "accept"
    #: Not useful but not the sender's fault (already known, unknown parent, a future slot,
    #: stale): dropped, not forwarded, no penalty.
    IGNORE = "ignore"
    #: Invalid: dropped, not forwarded, and the sender's score is lowered.
    REJECT = "reject"


@dataclass(frozen=True)
class ChainStatus:
    """A node's view of its chain, exchanged with every peer on connect and periodically."""

    best_number: int
    best_hash: bytes
    finalized_number: int
    finalized_hash: bytes
    genesis_hash: bytes


@runtime_checkable
class NetworkHandler(Protocol):
    """The node side of the network: the chain, the transaction pool and the finality gadget."""

    def status(self) -> ChainStatus:
        """The current best and finalized blocks (cheap: called often)."""
        ...

    def on_block(self, peer_id: str, raw: bytes) -> Verdict:
        """A block announced by gossip (canonical ``Block`` bytes); import it.

        Return IGNORE for a known block, an unknown parent or a future slot: the network layer
        repairs gaps itself by asking the sender for the missing range.
        """
        ...

    def on_vote(self, peer_id: str, raw: bytes) -> Verdict:
        """A finality vote from gossip (opaque bytes, defined by the finality gadget)."""
        ...

    def describe_vote(self, raw: bytes) -> str:
        """A finality vote from gossip for a debug line (the network layer does not know the
        format); it must not raise for undecodable bytes."""
        ...

    def on_commit(self, peer_id: str, raw: bytes) -> Verdict:
        """A finality commit from gossip (a justification): finalize its block if it is ours.
        IGNORE when already final or the block is unknown (sync fetches it)."""
        ...

    def justification_for(self, block_hash: bytes) -> bytes | None:
        """The stored justification of ``block_hash``, to serve a peer's request."""
        ...

    def import_justification(self, peer_id: str, block_hash: bytes, raw: bytes) -> Verdict:
        """A justification a peer sent for ``block_hash`` (one we asked for: the peer's
        finalized block, known to us). REJECT if it does not prove that block final."""
        ...

    def catch_up_for(self, set_id: int, round: int) -> bytes | None:
        """A finality catch-up for a voter of set ``set_id`` in ``round``, or None."""
        ...

    def on_catch_up(self, peer_id: str, raw: bytes) -> Verdict:
        """A catch-up a peer answered with (we asked for it); REJECT if it proves nothing."""
        ...

    def on_transactions(self, peer_id: str, raws: list[bytes]) -> Verdict:
        """A batch of transactions from gossip; REJECT only if the batch is clearly bogus
        (undecodable, bad signatures), not for transactions that merely became stale."""
        ...

    def blocks_by_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        """Up to ``count`` canonical (best-chain) blocks from number ``start``, each with its
        justification if it has one; stops early at the best block."""
        ...

    def blocks_by_hash(self, block_hash: bytes, count: int) -> list[tuple[bytes, bytes | None]]:
        """Block ``block_hash`` (on any branch) and up to ``count - 1`` of its ancestors,
        newest first, each with its justification if it has one; empty if unknown."""
        ...

    def import_synced(self, raw: bytes, justification: bytes | None) -> Verdict:
        """A block fetched by sync, in chain order, with its justification if the serving peer
        had one. IGNORE for an already known block; REJECT for an invalid block or an invalid
        justification."""
        ...


class PeerView(TypedDict):
    """One connected peer as reported by :meth:`NetworkService.peers` (JSON-ready)."""

    peerId: str
    address: str
    bestNumber: int
    bestHash: str
    finalizedNumber: int
    score: int


@runtime_checkable
class PeerAuthorizer(Protocol):
    """Who may be connected to this node: Substrate's reserved peers and node authorization.

    The network asks :meth:`allows` once per connection, as soon as the Noise handshake has
    proved the remote peer's id and before any protocol stream (identify, gossip, sync) is
    served, and again every second for each connected peer, so a peer dropped from the set
    is disconnected. Implementations answer from memory: these calls are synchronous and
    frequent. ``twinchain.p2p.permission.PeerPermissions`` answers from the node's own
    configuration (reserved peers, ``--authorized-peers-file``); the node's
    ``twinchain.node.authorization.ChainAuthorizer`` unites it with the peers the chain
    authorizes at each finalized block.
    """

    def allows(self, peer_id: str) -> bool:
        """May ``peer_id`` (base58) be connected?"""
        ...

    def is_reserved(self, peer_id: str) -> bool:
        """A reserved peer: always allowed, kept connected, never counted against the caps."""
        ...

    def is_authorized(self, peer_id: str) -> bool:
        """Named in the authorized set (a known node): exempt from the per-IP cap, which
        otherwise counts its connections (a facility's nodes may share one address)."""
        ...
