"""The serving side of sync: answering the requests peers send on their streams to us.

py-libp2p calls :meth:`SyncResponder.handle_inbound` for each stream a peer opens on our sync
protocol; the stream is served in the responder's own task (so stopping the sync service stops
it), one task per stream, at most ``MAX_INBOUND_STREAMS`` per peer and at the rate
``SyncConfig.requests_rate`` allows. Status requests are passed on to the sync service (they
tell it the peer's chain); block, header, ancestry, justification and catch-up requests are
answered from the node (:class:`~twinchain.p2p.abc.NetworkHandler`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio
from libp2p.abc import INetStream

from twinchain.p2p.abc import ChainStatus, NetworkHandler
from twinchain.p2p.gossip import Reporter, TokenBucket
from twinchain.p2p.scoring import Penalty
from twinchain.p2p.sync_session import SyncConfig
from twinchain.p2p.wire import (
    MAX_REQUEST_FRAME,
    MAX_RESPONSE_BYTES,
    AncestryRequest,
    CatchUpRequest,
    FramedStream,
    JustificationRequest,
    Kind,
    ProtocolError,
    RangeRequest,
    Request,
    StreamGone,
    decode_request,
    error_response,
    status_to_wire,
)
from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError

log = logging.getLogger("twinchain.p2p.sync")

#: Inbound sync streams served at once per peer.
MAX_INBOUND_STREAMS = 4

#: (peer, its status): a status request told us the peer's chain. Raises ProtocolError for a
#: peer on another chain (the stream is then dropped and the peer penalised).
StatusSink = Callable[[str, ChainStatus], None]


class SyncResponder:
    """Serves peers' sync requests from ``handler``; ``status`` is our answer to theirs."""

    def __init__(
        self,
        handler: NetworkHandler,
        *,
        status: Callable[[], ChainStatus],
        on_status: StatusSink,
        report: Reporter,
        is_banned: Callable[[str], bool],
        config: SyncConfig,
    ) -> None:
        self.handler = handler
        self.config = config
        self._status = status
        self._on_status = on_status
        self._report = report
        self._is_banned = is_banned
        self._inbound_send, self._inbound_recv = trio.open_memory_channel[
            tuple[INetStream, trio.Event]
        ](64)
        self._serving: dict[str, int] = {}

    async def handle_inbound(self, stream: INetStream) -> None:
        """py-libp2p stream handler: hand the stream to our nursery and wait until served.

        Serving happens in the responder's own task, so shutting sync down stops it; the
        handler task (owned by the connection) only waits.
        """
        done = trio.Event()
        try:
            self._inbound_send.send_nowait((stream, done))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            with trio.CancelScope(shield=True):
                await FramedStream(stream).reset()
            return
        await done.wait()

    async def run(self) -> None:
        """Serve each inbound stream in a task of its own until cancelled; then refuse more."""
        try:
            async with trio.open_nursery() as nursery:
                async for stream, done in self._inbound_recv:
                    nursery.start_soon(self._serve, stream, done)
        finally:
            self._inbound_send.close()

    async def _serve(self, stream: INetStream, done: trio.Event) -> None:
        framed = FramedStream(stream, MAX_REQUEST_FRAME)
        try:
            peer = stream.muxed_conn.peer_id.to_base58()
        except Exception:  # connection already torn down
            done.set()
            return
        bucket = TokenBucket(self.config.requests_rate, self.config.requests_burst, time.monotonic)
        self._serving[peer] = self._serving.get(peer, 0) + 1
        try:
            # An honest peer keeps one request stream open; a few allow for reconnect races.
            if self._is_banned(peer) or self._serving[peer] > MAX_INBOUND_STREAMS:
                return
            while True:
                req = decode_request(await framed.read())
                if not bucket.take():
                    self._report(peer, Penalty.RATE_LIMIT, "sync request rate exceeded")
                    await framed.write(error_response("rate limited"))
                    continue
                await framed.write(self._answer(peer, req))
                await trio.lowlevel.checkpoint()
        except ProtocolError as exc:
            self._report(peer, Penalty.GARBAGE, f"sync request: {exc}")
        except StreamGone:
            pass
        except Exception:
            log.exception("serving sync requests from %s failed", peer)
        finally:
            self._serving[peer] -= 1
            if not self._serving[peer]:
                del self._serving[peer]
            with trio.CancelScope(shield=True):
                await framed.reset()
            done.set()

    def _answer(self, peer: str, req: Request) -> list[object]:
        if isinstance(req, ChainStatus):
            self._on_status(peer, req)
            return [Kind.STATUS.value, status_to_wire(self._status())]
        if isinstance(req, JustificationRequest):
            try:
                return [Kind.JUSTIFICATION.value, self.handler.justification_for(req.block_hash)]
            except Exception:
                log.exception("network handler justification_for raised")
                return error_response("internal error")
        if isinstance(req, CatchUpRequest):
            try:
                return [Kind.CATCH_UP.value, self.handler.catch_up_for(req.set_id, req.round)]
            except Exception:
                log.exception("network handler catch_up_for raised")
                return error_response("internal error")
        if isinstance(req, AncestryRequest):
            log.debug(
                "serving 0x%s… and %d ancestors to %s",
                req.block_hash.hex()[:12],
                req.count - 1,
                peer,
            )
            try:
                items = self.handler.blocks_by_hash(req.block_hash, req.count)
            except Exception:
                log.exception("network handler blocks_by_hash raised")
                return error_response("internal error")
            return [Kind.ANCESTRY.value, _bounded(items, req.count)]
        assert isinstance(req, RangeRequest)
        log.debug("serving %s #%d+%d to %s", req.kind.name.lower(), req.start, req.count, peer)
        try:
            items = self.handler.blocks_by_range(req.start, req.count)
        except Exception:
            log.exception("network handler blocks_by_range(%d, %d) raised", req.start, req.count)
            return error_response("internal error")
        body: list[object] = []
        size = 0
        for raw, justification in items[: req.count]:
            size += len(raw) + len(justification or b"") + 16
            if body and size > MAX_RESPONSE_BYTES:
                break
            if req.kind is Kind.HEADERS:
                try:
                    body.append(codec.encode(codec.decode(raw)[0]))
                except (CodecError, IndexError, TypeError, KeyError):
                    log.error("handler returned an undecodable block")
                    return error_response("internal error")
            else:
                body.append([raw, justification])
        return [req.kind.value, body]


def _bounded(items: list[tuple[bytes, bytes | None]], count: int) -> list[object]:
    """At most ``count`` items and about ``MAX_RESPONSE_BYTES`` (always at least one)."""
    body: list[object] = []
    size = 0
    for raw, justification in items[:count]:
        size += len(raw) + len(justification or b"") + 16
        if body and size > MAX_RESPONSE_BYTES:
            break
        body.append([raw, justification])
    return body
