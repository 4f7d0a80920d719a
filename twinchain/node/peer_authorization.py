"""The chain's authorized node peer ids, fed to the network at each finalized block.

The seam for issue 20's onboarding: once the chain records each facility's node peer ids, the
node is built with ``NodeConfig.services.append(ChainAuthorizedPeers(read))``, where
``read(chain, header)`` returns the peer ids the state of finalized block ``header``
authorizes, or None while the chain holds no node authorization. The ids become the "chain"
part of the network's authorized set (``NetworkService.set_authorized_peers``), beside the
``--authorized-peers-file`` one; peers that fall out of it are disconnected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from twinchain.node.blockchain import Blockchain
from twinchain.primitives.types import Header

if TYPE_CHECKING:
    from twinchain.node.service import Node

log = logging.getLogger("twinchain.node")

#: Reads the authorized node peer ids in the state of a finalized block (None: none held).
PeerIdsAt = Callable[[Blockchain, Header], Iterable[str] | None]


@dataclass
class ChainAuthorizedPeers:
    """A :class:`~twinchain.node.services.NodeService` keeping the network's authorized set in
    step with finalized state (finalized, never best: a fork cannot admit a peer)."""

    read: PeerIdsAt
    name: str = "authorized-peers"
    _wake: trio.Event = field(default_factory=trio.Event, init=False, repr=False)
    _latest: Header | None = field(default=None, init=False, repr=False)

    async def run(self, node: Node, *, task_status: trio.TaskStatus[int]) -> None:
        if node.network is None:  # --no-p2p: nothing to admit
            task_status.started(0)
            return
        listeners = node.chain.finality_listeners
        listeners.append(self._on_finalized)
        try:
            # Before the first finality after a restart, the state we already hold applies.
            self._apply(node, node.chain.finalized)
            task_status.started(0)  # listens on no port
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                if self._latest is not None:
                    self._apply(node, self._latest)
        finally:
            listeners.remove(self._on_finalized)

    def _on_finalized(self, header: Header) -> None:
        self._latest = header  # many blocks finalized at once: the newest one is read
        self._wake.set()

    def _apply(self, node: Node, header: Header) -> None:
        assert node.network is not None
        try:
            peers = self.read(node.chain, header)
        except Exception:  # a state pruned while read, a bug: keep the set, retry next block
            log.exception("reading the authorized peers at #%d failed", header.number)
            return
        node.network.set_authorized_peers("chain", None if peers is None else list(peers))
