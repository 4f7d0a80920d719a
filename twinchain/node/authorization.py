"""Node authorization from chain state: the node side of Substrate's pallet-node-authorization.

The Facility pallet holds the peer ids the network admits (``Facility.authorized_nodes``):
the well-known nodes, the nodes of each verified facility, and those of validators still in
the authority set. After every finalized block the node reads that set from the finalized
state and hands it to the p2p layer's admission (:class:`ChainAuthorizer`); peers outside
it are refused in the handshake and connected ones are dropped within a second.

**When.** Chain authorization is on while the finalized state lists any node (a chain whose
genesis or governance authorized none stays open, as ``--dev`` and ad-hoc test networks
are). Finalized, not best, state: a fork cannot admit or evict a peer.

**Union.** A peer is admitted if the chain authorizes it, or the node's own configuration
does: ``--reserved-nodes`` (always) and ``--authorized-peers-file`` (a local addition, e.g.
an observer the operator runs); ``--reserved-only`` still admits reserved peers only.

**Catch-up.** A node syncing from far behind reads an old set: a node the chain authorized
later is refused by it until it catches up. List such peers as reserved nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from twinchain.node.blockchain import Blockchain
from twinchain.p2p.permission import PeerPermissions
from twinchain.primitives.types import Header
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets.facility.types import peer_id_text
from twinchain.runtime.runtime import Runtime

log = logging.getLogger("twinchain.node.authorization")


class ChainAuthorizer:
    """The node's :class:`~twinchain.p2p.abc.PeerAuthorizer`: the chain's authorized peers,
    united with the network's own permissions (reserved peers, the authorized peers file).

    Built before the network service, which creates those permissions: :meth:`attach` them
    once it exists (until then nobody is allowed)."""

    def __init__(self) -> None:
        self._base: PeerPermissions | None = None
        self._chain: frozenset[str] | None = None

    def attach(self, base: PeerPermissions) -> None:
        self._base = base

    @property
    def chain_peers(self) -> frozenset[str] | None:
        """The chain's authorized peers, None while the chain lists none (open)."""
        return self._chain

    def set_chain_peers(self, peers: Iterable[str]) -> bool:
        """Replace the chain's set (empty: chain authorization off); True if it changed."""
        new = frozenset(peers) or None
        if new == self._chain:
            return False
        old = self._chain or frozenset()
        self._chain = new
        if new is None:
            log.info("🔓 the chain authorizes no node: admission by local configuration only")
        else:
            log.info(
                "🔐 authorized by the chain: %d nodes (+%d, -%d)",
                len(new),
                len(new - old),
                len(old - new),
            )
        return True

    # -- PeerAuthorizer
    def allows(self, peer_id: str) -> bool:
        base = self._base
        if base is None:
            return False
        if self._chain is None:
            return base.allows(peer_id)
        if base.is_reserved(peer_id):
            return True
        if base.reserved_only:
            return False
        return peer_id in self._chain or base.is_authorized(peer_id)

    def is_reserved(self, peer_id: str) -> bool:
        return self._base is not None and self._base.is_reserved(peer_id)

    def is_authorized(self, peer_id: str) -> bool:
        chain = self._chain
        in_chain = chain is not None and peer_id in chain
        return in_chain or (self._base is not None and self._base.is_authorized(peer_id))


def authorized_peers(rt: Runtime) -> list[str]:
    """The peer ids (base58) the state ``rt`` reads admits; the set's session keys are
    mapped to their validator accounts, which facilities register."""
    accounts = [rt.session.account_of(k) for k in rt.authority.authorities()]
    return [peer_id_text(p) for p in rt.facility.authorized_nodes(accounts)]


class ChainAuthorization:
    """Feeds :class:`ChainAuthorizer` from each finalized block (a finality listener)."""

    def __init__(self, chain: Blockchain, authorizer: ChainAuthorizer) -> None:
        self.chain = chain
        self.authorizer = authorizer
        self._runtime = Runtime(chain.genesis_hash)
        self._seen: bytes | None = None
        self.on_finalized(chain.finalized)
        chain.finality_listeners.append(self.on_finalized)

    def on_finalized(self, header: Header) -> None:
        if header.hash == self._seen:
            return
        try:
            self._runtime.state = Overlay(self.chain.state_at(header.hash))
            peers = authorized_peers(self._runtime)
        except Exception:
            # A listener must never fail finalization; the next finalized block retries.
            log.exception("cannot read the authorized nodes at #%d", header.number)
            return
        self._seen = header.hash
        self.authorizer.set_chain_peers(peers)
