"""Subscriptions: one outbound queue per WebSocket, and the hub that fans chain events out.

:class:`ChainEvents` hears the chain (imports, finalizations) and the pool (transaction
status) while :meth:`ChainEvents.attached` holds, and notifies each subscriber on its
:class:`WsConnection`: new, all and finalized heads, extrinsic watches
(author_submitAndWatchExtrinsic), storage watches (state_subscribeStorage) and runtime
version watches (chain_subscribeRuntimeVersion). A subscription is live only once its id has
been sent; a client that does not read its notifications is disconnected rather than buffered
without end.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from twinchain.node.blockchain import ImportResult
from twinchain.primitives.types import Block, Header, extrinsic_hash
from twinchain.protocol.jsonrpc import TOO_MANY_SUBSCRIPTIONS, RpcError, header_to_json, to_hex
from twinchain.rpc.api import NodeHandle
from twinchain.rpc.asgi import Send
from twinchain.rpc.methods import NOTIFICATIONS, CallContext, new_subscription_id, runtime_version
from twinchain.storage.trie import StateError

log = logging.getLogger("twinchain.rpc")

MiB = 1024 * 1024
# Bytes queued to one WebSocket: past this, requests wait and subscriptions count as too slow.
MAX_QUEUED_BYTES = 4 * MiB
FINALITY_POLL_S = 0.5  # a safety net: imports and finalizations wake the watch
MAX_FINALIZED_BACKFILL = 64  # a longer finality jump notifies only its last headers


def dumps(obj: Any) -> str:
    """Compact JSON, as every response and notification is sent."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


class WsConnection:
    """One WebSocket: its outbound queue and its subscriptions (``methods.Subscriptions``).

    The queue is bounded in bytes, not messages: a few huge responses or many small
    notifications weigh the same."""

    def __init__(self, hub: ChainEvents, limit: int) -> None:
        self.hub = hub
        self.limit = limit
        self.subs: dict[str, str] = {}  # id -> kind
        self.cancel_scope = trio.CancelScope()
        self.overflowed = False
        self._out, self._out_recv = trio.open_memory_channel[str](math.inf)
        self._queued = 0
        self._drained: trio.Event | None = None

    def subscribe(self, kind: str, ctx: CallContext, arg: Any = None) -> str:
        if len(self.subs) >= self.limit:
            raise RpcError(
                TOO_MANY_SUBSCRIPTIONS,
                "Too many subscriptions on the connection",
                f"at most {self.limit} per connection",
            )
        sid = new_subscription_id()
        while self.hub.has(sid):
            sid = new_subscription_id()
        self.subs[sid] = kind
        self.hub.reserve(self, sid, kind, arg)
        # Live only once the id is queued: no notification may arrive before the id does.
        ctx.after_response.append(partial(self.hub.activate, self, sid, kind))
        return sid

    def unsubscribe(self, kind: str, sub_id: str) -> bool:
        if self.subs.get(sub_id) != kind:
            return False
        del self.subs[sub_id]
        self.hub.remove(sub_id)
        return True

    async def respond(self, text: str) -> None:
        """Queue a response, first waiting (not reading more requests) while the client
        is behind: that pushes back on a client that sends but does not read."""
        while self._queued > MAX_QUEUED_BYTES:
            self._drained = trio.Event()
            await self._drained.wait()
        self._queue(text)

    def notify(self, sid: str, kind: str, result_json: str) -> None:
        if self._queued > MAX_QUEUED_BYTES:
            if not self.overflowed:
                log.warning("rpc: WebSocket client too slow for its subscriptions; disconnecting")
            self.overflowed = True
            self.cancel_scope.cancel()
            return
        method = NOTIFICATIONS[kind]
        self._queue(
            f'{{"jsonrpc":"2.0","method":"{method}",'
            f'"params":{{"subscription":"{sid}","result":{result_json}}}}}'
        )

    def _queue(self, text: str) -> None:
        try:
            self._out.send_nowait(text)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the connection is closing; it removes its subscriptions itself
        self._queued += len(text)

    def close(self) -> None:
        self._out.close()

    async def writer(self, send: Send) -> None:
        try:
            async for text in self._out_recv:
                await send({"type": "websocket.send", "text": text})
                self._queued -= len(text)
                if self._drained is not None and self._queued <= MAX_QUEUED_BYTES:
                    self._drained.set()
        except Exception:  # the transport went away under us
            log.debug("rpc: WebSocket send failed", exc_info=True)
            self.cancel_scope.cancel()


@dataclass
class TxWatch:
    """One author_submitAndWatchExtrinsic subscription."""

    conn: WsConnection
    sid: str
    tx_hash: bytes
    # Updates held until the subscription id has been sent; None once live.
    buffer: list[tuple[str, bool]] | None = field(default_factory=list)
    block: Header | None = None  # the best-chain block that last included it


@dataclass
class StorageWatch:
    """One state_subscribeStorage subscription: its keys and the values last sent."""

    conn: WsConnection
    sid: str
    keys: list[bytes]
    values: dict[bytes, bytes | None] = field(default_factory=dict)
    live: bool = False


# Pool statuses that end a watch (Substrate closes the subscription after them).
_FINAL_POOL_STATUSES = ("invalid", "dropped", "usurped")


class ChainEvents:
    """Feeds subscriptions from the client: import listener for heads, and a finality watch
    woken by each import and each finalization (a poll covers anything else)."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self.subs: dict[str, dict[str, WsConnection]] = {k: {} for k in NOTIFICATIONS}
        self.kind_of: dict[str, str] = {}  # subscription id -> kind
        self._wake = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.get_ident()
        self._last_finalized: Header = node.chain.finalized
        self.tx_watches: dict[bytes, dict[str, TxWatch]] = {}  # tx hash -> sid -> watch
        self.watch_of: dict[str, TxWatch] = {}
        self.storage: dict[str, StorageWatch] = {}
        self.versions: dict[str, int] = {}  # runtimeVersion subscription -> spec version sent

    def has(self, sid: str) -> bool:
        return sid in self.kind_of

    def reserve(self, conn: WsConnection, sid: str, kind: str, arg: Any) -> None:
        """Register at subscribe time, so nothing between the call and the id is missed."""
        self.kind_of[sid] = kind
        if kind == "extrinsic":
            w = TxWatch(conn, sid, arg)
            self.tx_watches.setdefault(arg, {})[sid] = w
            self.watch_of[sid] = w
        elif kind == "storage":
            self.storage[sid] = StorageWatch(conn, sid, list(arg))

    def activate(self, conn: WsConnection, sid: str, kind: str) -> None:
        if conn.subs.get(sid) != kind:
            return  # unsubscribed in the same batch
        if kind == "extrinsic":
            w = self.watch_of[sid]
            pending, w.buffer = w.buffer or [], None
            for text, final in pending:
                if self._tx_deliver(w, text, final):
                    break
            return
        if kind == "storage":
            sw = self.storage[sid]
            sw.live = True
            best = self.node.chain.best
            self._storage_send(sw, best, everything=True)
            return
        if kind == "runtimeVersion":
            self.subs[kind][sid] = conn
            self._version_send(sid, conn, self.node.chain.best.hash)
            return
        if kind == "finalizedHeads":
            self._check_finality()  # flush pending finality first: no duplicate for newcomers
        self.subs[kind][sid] = conn
        self.kind_of[sid] = kind
        # As Substrate does: the current head right away, so a client needs no extra call.
        client = self.node.chain
        current = client.finalized if kind == "finalizedHeads" else client.best
        conn.notify(sid, kind, dumps(header_to_json(current)))

    def remove(self, sid: str) -> None:
        kind = self.kind_of.pop(sid, None)
        if kind is not None:
            self.subs[kind].pop(sid, None)
        w = self.watch_of.pop(sid, None)
        if w is not None:
            same = self.tx_watches.get(w.tx_hash, {})
            same.pop(sid, None)
            if not same:
                self.tx_watches.pop(w.tx_hash, None)
        self.storage.pop(sid, None)
        self.versions.pop(sid, None)

    # -- runtime version watches
    def _version_send(self, sid: str, conn: WsConnection, at: bytes) -> None:
        """Notify ``sid`` of the version block ``at`` ran with, unless it was the last sent
        (a re-org back across an upgrade block notifies the old version again)."""
        try:
            version = runtime_version(self.node, at)
        except RpcError:
            log.debug("rpc: state of 0x%s gone before version notification", at.hex())
            return
        if self.versions.get(sid) != version["specVersion"]:
            self.versions[sid] = version["specVersion"]
            conn.notify(sid, "runtimeVersion", dumps(version))

    # -- extrinsic watches
    def _tx_update(self, tx_hash: bytes, result: Any, final: bool) -> None:
        watches = self.tx_watches.get(tx_hash)
        if not watches:
            return
        text = dumps(result)
        for w in list(watches.values()):
            self._tx_send(w, text, final)

    def _tx_send(self, w: TxWatch, text: str, final: bool) -> None:
        if w.buffer is not None:  # its id is not sent yet
            w.buffer.append((text, final))
        else:
            self._tx_deliver(w, text, final)

    def _tx_deliver(self, w: TxWatch, text: str, final: bool) -> bool:
        """Send one update; a final one ends the subscription. Returns ``final``."""
        w.conn.notify(w.sid, "extrinsic", text)
        if final:
            w.conn.subs.pop(w.sid, None)
            self.remove(w.sid)
        return final

    def on_pool_status(self, tx_hash: bytes, status: str, detail: Any) -> None:
        """Chained onto ``TransactionPool.on_status``."""
        if status in ("ready", "future"):
            self._tx_update(tx_hash, status, False)
        elif status == "usurped":
            by = to_hex(detail) if isinstance(detail, bytes) else str(detail)
            self._tx_update(tx_hash, {"usurped": by}, True)
        elif status in _FINAL_POOL_STATUSES:
            # Substrate sends a bare "invalid"/"dropped"; gateways need to know why, so the
            # reason rides along: {"invalid": "Invalid:Stale"}, {"dropped": "pool is full"}.
            self._tx_update(tx_hash, {status: str(detail or "")}, True)

    def _tx_included(self, block: Block) -> None:
        for raw in block.extrinsics:
            tx_hash = extrinsic_hash(raw)
            watches = self.tx_watches.get(tx_hash)
            if watches:
                for w in watches.values():
                    w.block = block.header
                self._tx_update(tx_hash, {"inBlock": to_hex(block.header.hash)}, False)

    def on_finalized(self, header: Header) -> None:
        if threading.get_ident() != self._thread:
            self._token.run_sync_soon(self._finalized, header)
        else:
            self._finalized(header)

    def _finalized(self, header: Header) -> None:
        # Finality usually advances on a vote, not an import: without this wake-up the
        # finalized-heads subscribers heard of it only at the next poll (~0.35 s later on
        # average, measured at the gateways).
        self._wake.set()
        try:
            blocks = self.node.chain.blocks
            for w in list(self.watch_of.values()):
                b = w.block
                if b is None or b.number > header.number:
                    continue
                if blocks.hash_at(b.number) == b.hash:
                    self._tx_send(w, dumps({"finalized": to_hex(b.hash)}), True)
                else:  # its block lost to the finalized fork; the pool may take it again
                    w.block = None
                    self._tx_send(w, dumps({"retracted": to_hex(b.hash)}), False)
        except Exception:  # a subscriber problem must never fail finalization
            log.exception("rpc: extrinsic finality notification failed")

    # -- storage watches
    def _storage_send(self, sw: StorageWatch, at: Header, *, everything: bool) -> None:
        try:
            state = self.node.chain.state_at(at.hash)
            changes: list[list[str | None]] = []
            for k in sw.keys:
                v = state.get(k)
                if everything or v != sw.values.get(k):
                    changes.append([to_hex(k), None if v is None else to_hex(v)])
                sw.values[k] = v
        except StateError:
            log.debug("rpc: state of %s gone before storage notification", at.hash.hex())
            return
        if changes:
            result = {"block": to_hex(at.hash), "changes": changes}
            sw.conn.notify(sw.sid, "storage", dumps(result))

    def drop(self, conn: WsConnection) -> None:
        for sid in conn.subs:
            self.remove(sid)
        conn.subs.clear()

    def _fan_out(self, kinds: tuple[str, ...], header: Header) -> None:
        result: str | None = None  # serialized once for every subscriber
        for kind in kinds:
            for sid, conn in list(self.subs[kind].items()):
                result = result or dumps(header_to_json(header))
                conn.notify(sid, kind, result)

    @contextmanager
    def attached(self) -> Iterator[None]:
        """Hear the chain's imports and finalizations and the pool's status updates while
        the block runs (chained onto ``pool.on_status``: the node may have one already)."""
        client = self.node.chain
        client.import_listeners.append(self.on_import)
        client.finality_listeners.append(self.on_finalized)
        pool = self.node.pool
        previous_status = pool.on_status

        def on_status(tx_hash: bytes, status: str, detail: Any) -> None:
            if previous_status is not None:
                previous_status(tx_hash, status, detail)
            self.on_pool_status(tx_hash, status, detail)

        pool.on_status = on_status
        try:
            yield
        finally:
            client.import_listeners.remove(self.on_import)
            client.finality_listeners.remove(self.on_finalized)
            if pool.on_status is on_status:
                pool.on_status = previous_status
            else:  # someone chained after us: stay in their chain but stop acting
                self.tx_watches.clear()

    # -- client hook
    def on_import(self, result: ImportResult, block: Block) -> None:
        # Blockchain calls this synchronously; if an import ever runs off the trio thread, hop on.
        if threading.get_ident() != self._thread:
            self._token.run_sync_soon(self._imported, result, block)
        else:
            self._imported(result, block)

    def _imported(self, result: ImportResult, block: Block) -> None:
        try:
            kinds = ("allHeads", "newHeads") if result.is_best else ("allHeads",)
            self._fan_out(kinds, block.header)
            if result.is_best:
                if self.tx_watches:
                    self._tx_included(block)
                for sw in list(self.storage.values()):
                    if sw.live:
                        self._storage_send(sw, block.header, everything=False)
                for sid, conn in list(self.subs["runtimeVersion"].items()):
                    self._version_send(sid, conn, block.header.hash)
        except Exception:  # a subscriber problem must never fail a block import
            log.exception("rpc: head notification failed")
        self._wake.set()

    async def run(self) -> None:
        while True:
            with trio.move_on_after(FINALITY_POLL_S):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                self._check_finality()
            except Exception:
                log.exception("rpc: finality notification failed")

    def _check_finality(self) -> None:
        client = self.node.chain
        fin = client.finalized
        last = self._last_finalized
        if fin.hash == last.hash:
            return
        self._last_finalized = fin
        if not self.subs["finalizedHeads"]:
            return
        headers: list[Header] = []
        first = max(last.number + 1, fin.number - MAX_FINALIZED_BACKFILL + 1)
        for n in range(first, fin.number):
            h = client.blocks.hash_at(n)
            header = None if h is None else client.blocks.header(h)
            if header is not None:
                headers.append(header)
        headers.append(fin)
        for header in headers:
            self._fan_out(("finalizedHeads",), header)
