"""Our side of a sync stream to one peer: the protocol id, the settings, the request session
and what we know of the peer. The protocol itself is in ``twinchain.p2p.wire``; the service
that uses these is ``twinchain.p2p.sync``, the one that answers peers ``sync_responder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio
from libp2p.custom_types import TProtocol

from twinchain.p2p.abc import ChainStatus
from twinchain.p2p.wire import FramedStream, Request, StreamGone, encode_request


def sync_protocol(genesis_hash: bytes) -> TProtocol:
    return TProtocol(f"/twinchain/{genesis_hash.hex()}/sync/1")


@dataclass(frozen=True)
class SyncConfig:
    #: Blocks asked for in one request.
    batch_size: int = 128
    #: How often each peer is asked for its status (the fallback when gossip is lost).
    status_interval: float = 2.0
    #: How long one request may take before the stream is given up.
    request_timeout: float = 20.0
    #: Opening a sync stream: attempts and the pause between them.
    open_attempts: int = 3
    open_retry: float = 1.0
    #: One block behind: give gossip this long to deliver it before asking for it.
    follow_grace: float = 0.6
    #: After a round that made no progress, do not ask the same peer again before this.
    retry_pause: float = 1.0
    #: Behind by more than this many blocks: "major sync" (``is_syncing()`` is true).
    major_sync_blocks: int = 8
    #: Behind by at least this many blocks: show the progress bar.
    progress_min_blocks: int = 256
    #: Progress bar on the terminal: None means "if stderr is a terminal".
    progress_bar: bool | None = None
    #: Inbound requests per second allowed per peer (and burst).
    requests_rate: float = 500.0
    requests_burst: float = 1000.0


class RequestTimeout(Exception):
    pass


class RequestSession:
    """Our outbound sync stream to one peer: requests go out one at a time, in order."""

    def __init__(self, framed: FramedStream, timeout: float) -> None:
        self.framed = framed
        self.timeout = timeout
        self.broken = False
        self._lock = trio.Lock()

    async def request(self, req: Request) -> object:
        """Send ``req`` and return the raw response value.

        Raises StreamGone, RequestTimeout or ProtocolError; after any of them (or a
        cancellation mid-request) the stream is out of step and the session is broken.
        """
        async with self._lock:
            if self.broken:
                raise StreamGone("session already broken")
            done = False
            try:
                with trio.move_on_after(self.timeout) as scope:
                    await self.framed.write(encode_request(req))
                    response = await self.framed.read()
                    done = True
                if scope.cancelled_caught:
                    raise RequestTimeout(f"no answer within {self.timeout:.0f} s")
                return response
            finally:
                if not done:
                    self.broken = True
                    with trio.CancelScope(shield=True):
                        await self.framed.reset()


@dataclass
class PeerState:
    peer_id: str
    address: str = ""
    status: ChainStatus | None = None
    #: Best block known to be held by the peer: its status, raised by gossip from it.
    best_number: int = 0
    best_hash: bytes = b""
    session: RequestSession | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    no_sync: bool = False  # the peer does not serve our sync protocol (another implementation)
    ahead_since: float | None = None
    retry_after: float = 0.0
    #: The peer's finalized block whose justification we last asked it for.
    justification_asked: bytes = b""
    #: A catch-up or ancestry request to this peer is in flight.
    request_in_flight: bool = False

    def raise_best(self, number: int, block_hash: bytes) -> None:
        if number > self.best_number:
            self.best_number = number
            self.best_hash = block_hash


class OpenFailed(Exception):
    """Our sync stream to a peer could not be opened (the protocol was not negotiated)."""
