"""Sync: the request/response protocol and the service that catches up and repairs gaps.

Each connected peer gets one long-lived outbound stream on ``/twinchain/<genesis-hex>/sync/1``
(a new stream per request is four times slower in py-libp2p). On it we send a status request
at once and then every ``status_interval``; the answer tells us the peer's best and finalized
blocks, and our request tells it ours. The same stream carries our block-range requests, one
in flight at a time. Inbound streams from peers are served by a task per stream.

The :class:`SyncService` loop picks the peer with the highest best block; when it is ahead of
us it downloads the missing range in batches (the next batch is fetched while the previous is
imported) and feeds the blocks, in order, to ``handler.import_synced``. That one loop covers the
initial catch-up (to the peer's finalized block and on to its best), following the head when
gossip is lost, and the gaps that gossip reveals (a block whose parent we lack wakes it at once).
If the peer's chain does not attach to our best block, it restarts from our finalized block so
the node's fork choice can see both branches. Far behind, progress shows as a rich progress bar
(on a terminal) and as a log line every few seconds (``sync_progress``).

Here is the requesting side; our session and what we know of each peer are in
``sync_session``, and answering peers' requests is ``sync_responder``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from twinchain.p2p.abc import ChainStatus, NetworkHandler, Verdict
from twinchain.p2p.gossip import Reporter, call_handler
from twinchain.p2p.scoring import Penalty
from twinchain.p2p.sync_progress import SyncProgress
from twinchain.p2p.sync_responder import SyncResponder
from twinchain.p2p.sync_session import (
    OpenFailed,
    PeerState,
    RequestSession,
    RequestTimeout,
    SyncConfig,
    sync_protocol,
)
from twinchain.p2p.wire import (
    MAX_RANGE,
    AncestryRequest,
    CatchUpRequest,
    FramedStream,
    JustificationRequest,
    Kind,
    ProtocolError,
    RangeRequest,
    RemoteError,
    StreamGone,
    decode_blocks_response,
    decode_optional_bytes_response,
    decode_status_response,
)
from twinchain.primitives.codec import CodecError
from twinchain.primitives.types import Block

log = logging.getLogger("twinchain.p2p.sync")


class SyncService:
    """Per-peer status, serving peers' requests, and catching up from them."""

    def __init__(
        self,
        handler: NetworkHandler,
        genesis_hash: bytes,
        *,
        report: Reporter,
        is_banned: Callable[[str], bool],
        config: SyncConfig | None = None,
    ) -> None:
        self.handler = handler
        self.genesis_hash = genesis_hash
        self.protocol = sync_protocol(genesis_hash)
        self.config = config or SyncConfig()
        self._report = report
        self._is_banned = is_banned
        self.peers: dict[str, PeerState] = {}
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None
        #: Answers peers' requests; py-libp2p hands it their streams (``handle_inbound``).
        self.responder = SyncResponder(
            handler,
            status=self.status,
            on_status=self._peer_status,
            report=report,
            is_banned=is_banned,
            config=self.config,
        )
        self._wake = trio.Event()
        self._major_sync = False
        self._progress = SyncProgress(self.config.progress_bar)
        #: Blocks imported by sync (for tests and metrics).
        self.imported = 0

    # ------------------------------------------------------------------ state
    def is_syncing(self) -> bool:
        return self._major_sync

    def status(self) -> ChainStatus:
        s = self.handler.status()
        return ChainStatus(
            s.best_number, s.best_hash, s.finalized_number, s.finalized_hash, self.genesis_hash
        )

    def wake(self) -> None:
        self._wake.set()

    def peer_connected(self, peer_id: str, address: str) -> None:
        """A connection to ``peer_id`` is up: open our sync stream to it (once)."""
        if peer_id in self.peers or self._nursery is None:
            return
        st = PeerState(peer_id, address)
        self.peers[peer_id] = st
        self._nursery.start_soon(self._peer_task, st)

    def peer_disconnected(self, peer_id: str) -> None:
        st = self.peers.pop(peer_id, None)
        if st is not None:
            st.scope.cancel()

    def note_block(self, peer_id: str, number: int, block_hash: bytes, verdict: Verdict) -> None:
        """A block ``peer_id`` has (gossip); wake the loop if it shows we are missing blocks."""
        st = self.peers.get(peer_id)
        if st is not None and verdict is not Verdict.REJECT:
            st.raise_best(number, block_hash)
        if verdict is Verdict.IGNORE and number > self.handler.status().best_number:
            # The node could not import it: most likely a gap (unknown parent). Repair now.
            if st is not None:
                st.ahead_since = 0.0
            self.wake()

    # ------------------------------------------------------------------ outbound sessions
    async def _peer_task(self, st: PeerState) -> None:
        """Own our sync stream to one peer: open it, then refresh its status periodically.

        A broken stream (timeout, a download abandoned mid-request) is reopened; a peer that
        never accepts the protocol is left to gossip only.
        """
        cfg = self.config
        failures = 0
        with st.scope:
            while failures < cfg.open_attempts:
                try:
                    await self._session(st)
                except OpenFailed as exc:
                    failures += 1
                    log.debug("cannot open a sync stream to %s: %s", st.peer_id, exc)
                except (StreamGone, RemoteError) as exc:
                    failures = 0
                    log.debug("sync session with %s ended: %s", st.peer_id, exc)
                except RequestTimeout:
                    failures = 0
                    self._report(st.peer_id, Penalty.TIMEOUT, "status request timed out")
                except ProtocolError as exc:
                    self._report(st.peer_id, Penalty.GARBAGE, f"sync: {exc}")
                    return
                except Exception:
                    log.exception("sync session with %s failed", st.peer_id)
                    failures += 1
                finally:
                    st.session = None
                await trio.sleep(cfg.open_retry)
            st.no_sync = True
            log.info("peer %s does not serve %s; gossip only", st.peer_id, self.protocol)

    async def _session(self, st: PeerState) -> None:
        assert self._host is not None
        cfg = self.config
        try:
            with trio.fail_after(cfg.request_timeout):
                stream = await self._host.new_stream(ID.from_base58(st.peer_id), [self.protocol])
        except Exception as exc:  # py-libp2p raises many types for a failed negotiation
            raise OpenFailed(f"{type(exc).__name__}: {exc}") from None
        session = RequestSession(FramedStream(stream), cfg.request_timeout)
        st.session = session
        try:
            while True:
                status = decode_status_response(await session.request(self.status()))
                self._check_genesis(st.peer_id, status)
                self._on_status(st, status)
                await self._fetch_justification(st, session, status)
                await trio.sleep(cfg.status_interval)
        finally:
            if not session.broken:
                session.broken = True
                with trio.CancelScope(shield=True):
                    await session.framed.reset()

    async def _fetch_justification(
        self, st: PeerState, session: RequestSession, status: ChainStatus
    ) -> None:
        """The peer finalized a block we have but do not know final (we missed the votes,
        or its commit): ask for that block's justification, once per block."""
        ours = self.handler.status()
        if (
            status.finalized_number <= ours.finalized_number
            or status.finalized_number > ours.best_number
            or status.finalized_hash == st.justification_asked
        ):
            return
        st.justification_asked = status.finalized_hash
        raw = decode_optional_bytes_response(
            await session.request(JustificationRequest(status.finalized_hash)),
            Kind.JUSTIFICATION,
        )
        if raw is None:
            log.debug("%s has no justification for #%d", st.peer_id, status.finalized_number)
            return
        verdict = call_handler(
            "import_justification",
            self.handler.import_justification,
            st.peer_id,
            status.finalized_hash,
            raw,
        )
        log.debug(
            "justification of #%d from %s: %s", status.finalized_number, st.peer_id, verdict.value
        )
        if verdict is Verdict.IGNORE:
            st.justification_asked = b""  # not usable yet (its branch is being fetched): again
        if verdict is Verdict.REJECT:
            self._report(st.peer_id, Penalty.BAD_RESPONSE, "invalid justification")

    def request_catch_up(self, peer_id: str, set_id: int, round: int) -> bool:
        """Ask ``peer_id`` for a finality catch-up (in the background; the answer goes to
        ``handler.on_catch_up``). False if there is no usable session with it now."""
        return self._in_background(peer_id, self._catch_up, CatchUpRequest(set_id, round))

    def request_ancestry(self, peer_id: str, block_hash: bytes, count: int) -> bool:
        """Fetch block ``block_hash`` and up to ``count - 1`` ancestors from ``peer_id`` (in
        the background) and import them oldest first: a block a finality vote or commit names
        on a branch we never imported. False if there is no usable session with it now."""
        req = AncestryRequest(block_hash, max(1, min(count, MAX_RANGE)))
        return self._in_background(peer_id, self._ancestry, req)

    def _in_background(
        self,
        peer_id: str,
        task: Callable[[PeerState, Any, object], Awaitable[None]],
        req: CatchUpRequest | AncestryRequest,
    ) -> bool:
        """Run ``task(st, req, answer)`` once ``req`` is answered on the peer's session; one such
        request per peer at a time, so a slow peer cannot pile them up."""
        st = self.peers.get(peer_id)
        session = None if st is None else st.session
        if st is None or session is None or session.broken or st.request_in_flight:
            return False
        if self._nursery is None:
            return False
        st.request_in_flight = True

        async def ask() -> None:
            what = type(req).__name__
            try:
                answer = await session.request(req)
            except RequestTimeout:
                self._report(st.peer_id, Penalty.TIMEOUT, f"{what} timed out")
                return
            except (StreamGone, RemoteError) as exc:
                log.debug("%s to %s failed: %s", what, st.peer_id, exc)
                return
            finally:
                st.request_in_flight = False
            try:
                await task(st, req, answer)
            except ProtocolError as exc:
                self._report(st.peer_id, Penalty.BAD_RESPONSE, f"{what} answer: {exc}")

        self._nursery.start_soon(ask)
        return True

    async def _catch_up(self, st: PeerState, req: CatchUpRequest, answer: object) -> None:
        raw = decode_optional_bytes_response(answer, Kind.CATCH_UP)
        if raw is None:
            log.debug("%s has no catch-up for round %d", st.peer_id, req.round)
            return
        verdict = call_handler("on_catch_up", self.handler.on_catch_up, st.peer_id, raw)
        log.debug("catch-up from %s: %s", st.peer_id, verdict.value)
        if verdict is Verdict.REJECT:
            self._report(st.peer_id, Penalty.BAD_RESPONSE, "invalid catch-up")

    async def _ancestry(self, st: PeerState, req: AncestryRequest, answer: object) -> None:
        items = decode_blocks_response(answer, req.count, Kind.ANCESTRY)
        expect = req.block_hash
        chain: list[tuple[bytes, bytes | None]] = []
        for raw, justification in items:
            try:
                header = Block.decode(raw).header
            except CodecError:
                header = None
            if header is None or header.hash != expect:
                self._report(st.peer_id, Penalty.BAD_RESPONSE, "ancestry does not link")
                return
            chain.append((raw, justification))
            expect = header.parent_hash
        imported = 0
        for raw, justification in reversed(chain):  # oldest first: each parent before its child
            verdict = call_handler("import_synced", self.handler.import_synced, raw, justification)
            if verdict is Verdict.REJECT:
                self._report(st.peer_id, Penalty.INVALID_BLOCK, "invalid block in ancestry")
                return
            imported += verdict is Verdict.ACCEPT
            await trio.lowlevel.checkpoint()
        self.imported += imported
        log.debug(
            "ancestry of 0x%s… from %s: %d blocks, %d new",
            req.block_hash.hex()[:12],
            st.peer_id,
            len(chain),
            imported,
        )

    def _check_genesis(self, peer: str, status: ChainStatus) -> None:
        if status.genesis_hash != self.genesis_hash:
            raise ProtocolError(f"peer {peer} is on another chain")

    def _peer_status(self, peer: str, status: ChainStatus) -> None:
        """A peer's status request (served by the responder): its chain, as its answer is."""
        self._check_genesis(peer, status)
        st = self.peers.get(peer)
        if st is not None:
            self._on_status(st, status)

    def _on_status(self, st: PeerState, status: ChainStatus) -> None:
        if log.isEnabledFor(logging.DEBUG):
            ours = self.handler.status()
            log.debug(
                "status from %s: best #%d (0x%s…), finalized #%d; ours best #%d, finalized #%d",
                st.peer_id,
                status.best_number,
                status.best_hash.hex()[:12],
                status.finalized_number,
                ours.best_number,
                ours.finalized_number,
            )
        st.status = status
        if status.best_number < st.best_number and status.best_hash != st.best_hash:
            # The peer re-organised or pruned: believe its own word over old gossip.
            st.best_number, st.best_hash = status.best_number, status.best_hash
        st.raise_best(status.best_number, status.best_hash)
        if st.best_number > self.handler.status().best_number:
            self.wake()

    # ------------------------------------------------------------------ catching up
    def _pick(self, now: float) -> tuple[PeerState | None, float]:
        """The peer to sync from now, or the time to wait before looking again."""
        ours = self.handler.status().best_number
        best: PeerState | None = None
        wait = 1.0
        for st in self.peers.values():
            if st.session is None or st.session.broken or self._is_banned(st.peer_id):
                continue
            if st.best_number <= ours:
                st.ahead_since = None
                continue
            if st.ahead_since is None:
                st.ahead_since = now
            ready_at = st.retry_after
            if st.best_number - ours == 1:
                ready_at = max(ready_at, st.ahead_since + self.config.follow_grace)
            if ready_at > now:
                wait = min(wait, ready_at - now)
                continue
            fin = st.status.finalized_number if st.status else 0
            best_fin = best.status.finalized_number if best and best.status else 0
            if best is None or (st.best_number, fin) > (best.best_number, best_fin):
                best = st
        return best, wait

    async def _sync_loop(self) -> None:
        while True:
            st, wait = self._pick(time.monotonic())
            if st is None:
                if self._major_sync:
                    self._major_sync = False
                    log.info("sync: caught up at #%d", self.handler.status().best_number)
                with trio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = trio.Event()
                continue
            before = self.handler.status().best_number
            try:
                await self._download(st)
            except Exception:
                # A bug must not stop syncing for good: log it and let the pause below apply.
                log.exception("sync from %s failed", st.peer_id)
            if self.handler.status().best_number <= before:
                st.retry_after = time.monotonic() + self.config.retry_pause

    async def _download(self, st: PeerState) -> None:
        """Fetch and import blocks from ``st`` until we reach its best block."""
        ours = self.status()
        gap = st.best_number - ours.best_number
        log.debug(
            "sync from %s: its best #%d is %d ahead of ours (#%d, finalized #%d)",
            st.peer_id,
            st.best_number,
            gap,
            ours.best_number,
            ours.finalized_number,
        )
        self._major_sync = self._major_sync or gap > self.config.major_sync_blocks
        show = gap >= self.config.progress_min_blocks
        if show:
            self._progress.start(ours.best_number, st.best_number)
        try:
            start, parent = ours.best_number + 1, ours.best_hash
            outcome = await self._fetch_and_import(st, start, parent, show)
            if outcome != "fork":
                return
            # Block ``start`` does not attach to ``parent``, our best block when we asked.
            # That proves a conflict with our finalized chain only if ``parent`` *is* our
            # finalized block. Finality may also have moved on during the download (our
            # voter finalized the peer's branch meanwhile: a validator resumed on a stale
            # branch of its own): then the peer's chain is tried again from our finalized
            # block as it is now, as for any other branch. Comparing numbers alone banned
            # honest validators for a finalization racing the request.
            ours = self.status()
            if ours.finalized_hash == parent:
                self._report(st.peer_id, Penalty.BAD_RESPONSE, "chain conflicts with our finalized")
                return
            log.info(
                "sync: %s is on another branch; re-syncing from #%d",
                st.peer_id,
                ours.finalized_number + 1,
            )
            start, parent = ours.finalized_number + 1, ours.finalized_hash
            if await self._fetch_and_import(st, start, parent, show) == "fork":
                self._report(st.peer_id, Penalty.BAD_RESPONSE, "chain conflicts with our finalized")
        finally:
            if show:
                self._progress.stop(self.handler.status().best_number)

    async def _fetch_and_import(self, st: PeerState, start: int, parent: bytes, show: bool) -> str:
        """Download from ``start`` (whose parent must be ``parent``) and import in order.

        Returns "done" (the peer has nothing more, or the stream failed), "fork" (block
        ``start`` does not attach to ``parent``) or "abort" (the peer sent bad data; reported).
        """
        send, recv = trio.open_memory_channel[tuple[int, list[tuple[bytes, bytes | None]]]](2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fetcher, st, start, send)
            async with recv:
                outcome = await self._import_batches(st, start, parent, recv, show)
            if outcome == "abort":
                nursery.cancel_scope.cancel()
            # Otherwise let the fetcher finish its request in flight (closing ``recv`` stops it
            # at its next send), so the stream stays usable.
        return outcome

    async def _import_batches(
        self,
        st: PeerState,
        start: int,
        parent: bytes,
        recv: trio.MemoryReceiveChannel[tuple[int, list[tuple[bytes, bytes | None]]]],
        show: bool,
    ) -> str:
        number, parent_hash = start, parent
        async for _, items in recv:
            for i, (raw, justification) in enumerate(items):
                try:
                    header = Block.decode(raw).header
                except CodecError as exc:
                    self._report(st.peer_id, Penalty.BAD_RESPONSE, f"undecodable block: {exc}")
                    return "abort"
                if header.number != number:
                    self._report(st.peer_id, Penalty.BAD_RESPONSE, "block numbers out of order")
                    return "abort"
                if header.parent_hash != parent_hash:
                    if header.number == start:
                        return "fork"
                    if i == 0:
                        # The first block of a later range: the peer switched to another
                        # branch between our requests (a re-org, common when slots fork
                        # under load). Honest; start over from our new best later.
                        log.debug("sync: %s re-orged at #%d; retrying", st.peer_id, number)
                        return "done"
                    self._report(st.peer_id, Penalty.BAD_RESPONSE, "blocks do not link")
                    return "abort"
                verdict = call_handler(
                    "import_synced", self.handler.import_synced, raw, justification
                )
                if verdict is Verdict.REJECT:
                    log.debug("sync: block #%d from %s rejected by import", number, st.peer_id)
                    self._report(
                        st.peer_id, Penalty.INVALID_BLOCK, f"invalid block #{number} in sync"
                    )
                    return "abort"
                if verdict is Verdict.ACCEPT:
                    self.imported += 1
                elif header.number > self.handler.status().best_number:
                    # Neither imported nor known (a future slot, say): the blocks after it
                    # cannot import either, so stop here and retry after a pause.
                    log.debug("sync: #%d from %s not imported; pausing", number, st.peer_id)
                    return "done"
                number, parent_hash = header.number + 1, header.hash
                st.raise_best(header.number, header.hash)
                # Let gossip, RPC and authoring run between blocks.
                await trio.lowlevel.checkpoint()
            if items:
                log.debug(
                    "sync: imported range #%d..#%d from %s (best now #%d)",
                    number - len(items),
                    number - 1,
                    st.peer_id,
                    self.handler.status().best_number,
                )
            if show:
                self._progress.update(self.handler.status().best_number, st.best_number)
        return "done"

    async def _fetcher(
        self,
        st: PeerState,
        start: int,
        send: trio.MemorySendChannel[tuple[int, list[tuple[bytes, bytes | None]]]],
    ) -> None:
        """Request consecutive ranges from ``st`` while the importer works on the last one."""
        async with send:
            nxt = start
            while nxt <= st.best_number:
                session = st.session
                if session is None or session.broken:
                    return
                count = min(self.config.batch_size, MAX_RANGE, st.best_number - nxt + 1)
                log.debug("requesting blocks #%d..#%d from %s", nxt, nxt + count - 1, st.peer_id)
                try:
                    raw = await session.request(RangeRequest(Kind.BLOCKS, nxt, count))
                    items = decode_blocks_response(raw, count)
                except RequestTimeout:
                    self._report(st.peer_id, Penalty.TIMEOUT, "blocks request timed out")
                    return
                except ProtocolError as exc:
                    self._report(st.peer_id, Penalty.BAD_RESPONSE, f"blocks response: {exc}")
                    return
                except (StreamGone, RemoteError) as exc:
                    log.debug("blocks request to %s failed: %s", st.peer_id, exc)
                    return
                if not items:
                    return  # the peer's best moved back (re-org) since its status
                try:
                    await send.send((nxt, items))
                except trio.BrokenResourceError:
                    return  # the importer stopped (fork or done)
                nxt += len(items)

    # ------------------------------------------------------------------ task
    async def run(
        self, host: IHost, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._host = host
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.responder.run)
                nursery.start_soon(self._sync_loop)
                task_status.started()
        finally:
            self._nursery = None
            self._progress.close()
