"""JSON-RPC 2.0 over HTTP POST and WebSocket on one port: an ASGI app served by hypercorn.

Hypercorn does the HTTP/1.1, HTTP/2 and WebSocket protocol work (h11, h2, wsproto) and runs
on trio inside the node's nursery; this module is only the ASGI application: limits, origin
checks, JSON-RPC framing, dispatch and subscriptions.

Limits, so that no request can take the server down: request bodies and WebSocket messages of
at most ``max_request_bytes`` (413 / close 1009), responses of at most ``max_response_bytes``
(-32008), batches of at most ``MAX_BATCH`` calls (yielding between calls, so a batch cannot
stall block authoring), at most ``max_connections`` concurrent HTTP requests plus open
WebSockets (503), a per-connection cap on subscriptions, and an outbound queue per WebSocket
bounded in bytes (a client that does not read its notifications is disconnected rather than
buffered without end). Handler exceptions are logged here and answered with -32603, never with
a traceback.

Unsafe methods (keystore, peers) are answered to loopback peers only unless ``unsafe``. Behind
a reverse proxy on the same machine every peer looks local: a proxy in front of a validator
must filter the unsafe methods itself.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from twinchain.node.blockchain import ImportResult
from twinchain.primitives.types import Block, Header, extrinsic_hash
from twinchain.protocol.jsonrpc import (
    BATCH_TOO_LARGE,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    OVERSIZED_REQUEST,
    OVERSIZED_RESPONSE,
    PARSE_ERROR,
    RATE_LIMITED,
    SERVER_BUSY,
    TOO_MANY_SUBSCRIPTIONS,
    RpcError,
    header_to_json,
    to_hex,
)
from twinchain.rpc.api import NodeHandle
from twinchain.rpc.methods import (
    METHODS,
    NOTIFICATIONS,
    CallContext,
    call_method,
    health,
    new_subscription_id,
)
from twinchain.rpc.metrics import rpc_call_finished, rpc_call_started
from twinchain.storage.trie import StateError

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

log = logging.getLogger("twinchain.rpc")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MiB = 1024 * 1024
MAX_BATCH = 1000
# Bytes queued to one WebSocket: past this, requests wait and subscriptions count as too slow.
MAX_QUEUED_BYTES = 4 * MiB
FINALITY_POLL_S = 0.5  # a safety net: imports and finalizations wake the watch
MAX_FINALIZED_BACKFILL = 64  # a longer finality jump notifies only its last headers
# Substrate's --rpc-cors default: browsers on this machine only.
DEFAULT_CORS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _error(rid: Any, err: RpcError) -> str:
    return _dumps({"jsonrpc": "2.0", "error": err.to_json(), "id": rid})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # "::ffff:127.0.0.1" from a dual-stack socket
    return ip.is_loopback


class OriginPolicy:
    """Which browser origins may call us. ``None`` means Substrate's default (this machine);
    ``"all"`` or ``"*"`` allows any; ``"http://host:*"`` allows any port of that host.
    Requests without an Origin header (not from a browser) are always allowed."""

    def __init__(self, cors: list[str] | None) -> None:
        patterns = list(DEFAULT_CORS if cors is None else cors)
        self.any = any(p in ("all", "*") for p in patterns)
        self.exact = {p.rstrip("/") for p in patterns if not p.endswith(":*")}
        self.any_port = {p[:-2] for p in patterns if p.endswith(":*")}

    def allows(self, origin: str | None) -> bool:
        if origin is None or self.any:
            return True
        origin = origin.rstrip("/")
        if origin in self.exact or origin in self.any_port:
            return True
        base, sep, port = origin.rpartition(":")
        return bool(sep) and port.isdigit() and base in self.any_port


# --------------------------------------------------------------------------- subscriptions


class _WsConnection:
    """One WebSocket: its outbound queue and its subscriptions (``methods.Subscriptions``).

    The queue is bounded in bytes, not messages: a few huge responses or many small
    notifications weigh the same."""

    def __init__(self, hub: _ChainEvents, limit: int) -> None:
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
class _TxWatch:
    """One author_submitAndWatchExtrinsic subscription."""

    conn: _WsConnection
    sid: str
    tx_hash: bytes
    # Updates held until the subscription id has been sent; None once live.
    buffer: list[tuple[str, bool]] | None = field(default_factory=list)
    block: Header | None = None  # the best-chain block that last included it


@dataclass
class _StorageWatch:
    """One state_subscribeStorage subscription: its keys and the values last sent."""

    conn: _WsConnection
    sid: str
    keys: list[bytes]
    values: dict[bytes, bytes | None] = field(default_factory=dict)
    live: bool = False


# Pool statuses that end a watch (Substrate closes the subscription after them).
_FINAL_POOL_STATUSES = ("invalid", "dropped", "usurped")


class _ChainEvents:
    """Feeds subscriptions from the client: import listener for heads, and a finality watch
    woken by each import and each finalization (a poll covers anything else)."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self.subs: dict[str, dict[str, _WsConnection]] = {k: {} for k in NOTIFICATIONS}
        self.kind_of: dict[str, str] = {}  # subscription id -> kind
        self._wake = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.get_ident()
        self._last_finalized: Header = node.chain.finalized
        self.tx_watches: dict[bytes, dict[str, _TxWatch]] = {}  # tx hash -> sid -> watch
        self.watch_of: dict[str, _TxWatch] = {}
        self.storage: dict[str, _StorageWatch] = {}

    def has(self, sid: str) -> bool:
        return sid in self.kind_of

    def reserve(self, conn: _WsConnection, sid: str, kind: str, arg: Any) -> None:
        """Register at subscribe time, so nothing between the call and the id is missed."""
        self.kind_of[sid] = kind
        if kind == "extrinsic":
            w = _TxWatch(conn, sid, arg)
            self.tx_watches.setdefault(arg, {})[sid] = w
            self.watch_of[sid] = w
        elif kind == "storage":
            self.storage[sid] = _StorageWatch(conn, sid, list(arg))

    def activate(self, conn: _WsConnection, sid: str, kind: str) -> None:
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
        if kind == "finalizedHeads":
            self._check_finality()  # flush pending finality first: no duplicate for newcomers
        self.subs[kind][sid] = conn
        self.kind_of[sid] = kind
        # As Substrate does: the current head right away, so a client needs no extra call.
        client = self.node.chain
        current = client.finalized if kind == "finalizedHeads" else client.best
        conn.notify(sid, kind, _dumps(header_to_json(current)))

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

    # -- extrinsic watches
    def _tx_update(self, tx_hash: bytes, result: Any, final: bool) -> None:
        watches = self.tx_watches.get(tx_hash)
        if not watches:
            return
        text = _dumps(result)
        for w in list(watches.values()):
            self._tx_send(w, text, final)

    def _tx_send(self, w: _TxWatch, text: str, final: bool) -> None:
        if w.buffer is not None:  # its id is not sent yet
            w.buffer.append((text, final))
        else:
            self._tx_deliver(w, text, final)

    def _tx_deliver(self, w: _TxWatch, text: str, final: bool) -> bool:
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
                    self._tx_send(w, _dumps({"finalized": to_hex(b.hash)}), True)
                else:  # its block lost to the finalized fork; the pool may take it again
                    w.block = None
                    self._tx_send(w, _dumps({"retracted": to_hex(b.hash)}), False)
        except Exception:  # a subscriber problem must never fail finalization
            log.exception("rpc: extrinsic finality notification failed")

    # -- storage watches
    def _storage_send(self, sw: _StorageWatch, at: Header, *, everything: bool) -> None:
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
            sw.conn.notify(sw.sid, "storage", _dumps(result))

    def drop(self, conn: _WsConnection) -> None:
        for sid in conn.subs:
            self.remove(sid)
        conn.subs.clear()

    def _fan_out(self, kinds: tuple[str, ...], header: Header) -> None:
        result: str | None = None  # serialized once for every subscriber
        for kind in kinds:
            for sid, conn in list(self.subs[kind].items()):
                result = result or _dumps(header_to_json(header))
                conn.notify(sid, kind, result)

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


# --------------------------------------------------------------------------- ASGI app


class RpcApp:
    """The ASGI application: HTTP POST and WebSocket JSON-RPC, GET /health."""

    def __init__(
        self,
        node: NodeHandle,
        *,
        unsafe: bool,
        cors: list[str] | None = None,
        max_request_bytes: int = 10 * MiB,
        max_connections: int = 100,
        max_subscriptions_per_connection: int = 1024,
        max_response_bytes: int = 20 * MiB,
        max_calls_per_second: float = 1000.0,
    ) -> None:
        self.node = node
        self.unsafe = unsafe
        self.origins = OriginPolicy(cors)
        self.max_request_bytes = max_request_bytes
        self.max_connections = max_connections
        self.max_subscriptions = max_subscriptions_per_connection
        self.max_response_bytes = max_response_bytes
        self.active = 0
        self.limiter = RateLimiter(max_calls_per_second)
        self.hub = _ChainEvents(node)
        self.starting_block = node.chain.best.number

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # -- JSON-RPC
    async def handle(
        self, payload: bytes | str, peer: str | None, conn: _WsConnection | None = None
    ) -> tuple[str | None, list[Callable[[], None]]]:
        """One HTTP body or WebSocket message in, the response text (None: nothing to send)
        and the hooks to run once it is queued. Never raises for anything the peer sends.

        Handlers are synchronous and run on the node's trio thread (the client is not
        thread-safe); a batch yields between calls so that it cannot starve block authoring.
        """
        ctx = CallContext(
            self.node,
            peer,
            allow_unsafe=self.unsafe or is_loopback(peer),
            subscriptions=conn,
            starting_block=self.starting_block,
        )
        try:
            text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
            req = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):  # includes UnicodeDecodeError, JSONDecodeError
            return _error(None, RpcError(PARSE_ERROR)), []
        if not self.limiter.allow(peer, len(req) if isinstance(req, list) else 1):
            err = RpcError(RATE_LIMITED, "Too many requests", "over this client's calls per second")
            return _error(None, err), []
        if isinstance(req, list):
            if not req:
                return _error(None, RpcError(INVALID_REQUEST, "Invalid request", "empty batch")), []
            if len(req) > MAX_BATCH:
                err = RpcError(BATCH_TOO_LARGE, "Batch too large", f"at most {MAX_BATCH} calls")
                return _error(None, err), []
            parts: list[str] = []
            size = 0
            for i, item in enumerate(req):
                if i:
                    await trio.sleep(0)
                part = self._one(item, ctx)
                if part is not None:
                    parts.append(part)
                    size += len(part) + 1
                    if size > self.max_response_bytes:
                        return _error(None, self._too_big()), []
            return ("[" + ",".join(parts) + "]" if parts else None), ctx.after_response
        return self._one(req, ctx), ctx.after_response

    def _one(self, item: Any, ctx: CallContext) -> str | None:
        if not isinstance(item, dict):
            return _error(None, RpcError(INVALID_REQUEST))
        is_call = "id" in item
        rid = item.get("id")
        if is_call and not (rid is None or type(rid) in (int, float, str)):
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request", "bad id"))
        method = item.get("method")
        params = item.get("params")
        if (
            item.get("jsonrpc") != "2.0"
            or type(method) is not str
            or not (params is None or isinstance(params, (list, dict)))
        ):
            return _error(rid, RpcError(INVALID_REQUEST))
        protocol = "http" if ctx.subscriptions is None else "ws"
        # Only known names become labels: clients must not grow the metric without bound.
        label = method if method in METHODS else "unknown"
        if not is_call:  # a notification: run it, answer nothing, open no subscription
            ctx = replace(ctx, subscriptions=None, after_response=[])
        rpc_call_started(protocol, label)
        try:
            result = call_method(method, params, ctx)
        except RpcError as err:
            rpc_call_finished(protocol, label, True)
            return _error(rid, err) if is_call else None
        except Exception:
            rpc_call_finished(protocol, label, True)
            log.exception("rpc: %s failed", method)
            return _error(rid, RpcError(INTERNAL_ERROR)) if is_call else None
        rpc_call_finished(protocol, label, False)
        if not is_call:
            return None
        try:
            text = _dumps({"jsonrpc": "2.0", "result": result, "id": rid})
        except (TypeError, ValueError):
            log.exception("rpc: %s returned a result that is not JSON", method)
            return _error(rid, RpcError(INTERNAL_ERROR))
        return _error(rid, self._too_big()) if len(text) > self.max_response_bytes else text

    def _too_big(self) -> RpcError:
        return RpcError(
            OVERSIZED_RESPONSE, "Response is too big", f"at most {self.max_response_bytes} bytes"
        )

    # -- HTTP
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if not self.origins.allows(origin):
            await _respond(send, 403, b"Origin not allowed", "text/plain")
            return
        extra: list[tuple[bytes, bytes]] = []
        if origin is not None:
            extra = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"origin")]
        method = scope["method"]
        if method == "OPTIONS":  # CORS preflight
            extra += [
                (b"access-control-allow-methods", b"POST, GET, OPTIONS"),
                (b"access-control-allow-headers", b"content-type"),
                (b"access-control-max-age", b"86400"),
            ]
            await _respond(send, 204, b"", None, extra)
            return
        if method == "GET" and scope["path"] == "/health":
            await _respond(send, 200, _dumps(health(self.node)).encode(), extra=extra)
            return
        if method != "POST":
            await _respond(send, 405, b"Use POST", "text/plain", [*extra, (b"allow", b"POST")])
            return
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # Also what stops a web page posting text/plain (no preflight) to a local node.
            await _respond(send, 415, b"Supported content types: application/json", "text/plain")
            return
        if self.active >= self.max_connections:
            err = RpcError(SERVER_BUSY, "Server is busy, try again later")
            close = [*extra, (b"connection", b"close")]
            await _respond(send, 503, _error(None, err).encode(), extra=close)
            return
        self.active += 1
        try:
            body = await self._read_body(receive, headers.get("content-length"))
            if body is None:
                err = RpcError(
                    OVERSIZED_REQUEST,
                    "Request is too big",
                    f"at most {self.max_request_bytes} bytes",
                )
                # The rest of the body stays unread: the connection cannot be reused.
                close = [*extra, (b"connection", b"close")]
                await _respond(send, 413, _error(None, err).encode(), extra=close)
                return
            client = scope.get("client")
            text, _ = await self.handle(body, client[0] if client else None)
            if text is None:
                await _respond(send, 204, b"", None, extra)
            else:
                await _respond(send, 200, text.encode(), extra=extra)
        finally:
            self.active -= 1

    async def _read_body(self, receive: Receive, declared: str | None) -> bytes | None:
        """The request body, or None if it is larger than allowed (read no further)."""
        limit = self.max_request_bytes
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # http.disconnect
                return b""
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    # -- WebSocket
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.origins.allows(headers.get("origin")):
            await _ws_reject(scope, send, 403, b"Origin not allowed")
            return
        if self.active >= self.max_connections:
            await _ws_reject(scope, send, 503, b"Server is busy, try again later")
            return
        client = scope.get("client")
        peer = client[0] if client else None
        self.active += 1
        conn = _WsConnection(self.hub, self.max_subscriptions)
        try:
            await send({"type": "websocket.accept"})
            with conn.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(conn.writer, send)
                    await self._ws_reader(receive, peer, conn)
                    nursery.cancel_scope.cancel()
        finally:
            self.hub.drop(conn)
            conn.close()
            self.active -= 1
        if conn.overflowed:
            with trio.move_on_after(1):
                await send({"type": "websocket.close", "code": 1008, "reason": "too slow"})

    async def _ws_reader(self, receive: Receive, peer: str | None, conn: _WsConnection) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg["type"] != "websocket.receive":
                continue
            data = msg.get("text")
            if data is None:
                data = msg.get("bytes") or b""
            text, hooks = await self.handle(data, peer, conn)
            if text is not None:
                await conn.respond(text)
            for hook in hooks:
                hook()

    # -- lifespan
    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str | None = "application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = list(extra or [])
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _ws_reject(scope: Scope, send: Send, status: int, body: bytes) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


# --------------------------------------------------------------------------- entry point


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_of(binds: list[str]) -> int:
    # hypercorn reports "http://127.0.0.1:40123" or "http://[::1]:40123".
    return int(binds[0].rsplit(":", 1)[1])


class RateLimiter:
    """A token bucket per client address: ``rate`` calls per second, bursts of twice that.

    Calls over the budget are answered with an error rather than queued, so one busy client
    cannot starve the others or the node (handlers share the node's trio thread).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = trio.current_time) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self._clock = clock
        self._buckets: dict[str | None, tuple[float, float]] = {}

    def allow(self, peer: str | None, cost: int = 1) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) > 10_000:  # forget idle clients rather than grow without bound
            self._buckets.clear()
        if tokens < cost:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - cost, now)
        return True


async def serve_rpc(
    node: NodeHandle,
    host: str,
    port: int,
    *,
    unsafe: bool,
    cors: list[str] | None = None,
    max_request_bytes: int = 10 * MiB,
    max_connections: int = 100,
    max_subscriptions_per_connection: int = 1024,
    max_response_bytes: int = 20 * MiB,
    max_calls_per_second: float = 1000.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC on ``host:port`` (HTTP and WebSocket) until cancelled.

    ``task_status.started(port)`` reports the bound port (useful with ``port=0``). ``unsafe``
    answers unsafe methods (author_insertKey, ...) from any address; without it they are
    answered only to loopback peers. ``cors``: allowed browser origins (see OriginPolicy).
    """
    app = RpcApp(
        node,
        unsafe=unsafe,
        cors=cors,
        max_request_bytes=max_request_bytes,
        max_connections=max_connections,
        max_subscriptions_per_connection=max_subscriptions_per_connection,
        max_response_bytes=max_response_bytes,
        max_calls_per_second=max_calls_per_second,
    )
    config = Config()
    config.bind = [_bind(host, port)]
    config.accesslog = None
    config.errorlog = logging.getLogger("twinchain.rpc.http")
    config.websocket_max_message_size = max_request_bytes
    # A peer that sends nothing for read_timeout is dropped (slow-loris request bodies, dead
    # sockets); WebSocket clients answer the pings, so quiet subscribers stay connected.
    config.read_timeout = 60
    config.websocket_ping_interval = 20.0
    config.keep_alive_timeout = 5.0  # idle keep-alive sockets are not counted as connections
    config.graceful_timeout = 1.0
    config.include_server_header = False

    client = node.chain
    client.import_listeners.append(app.hub.on_import)
    client.finality_listeners.append(app.hub.on_finalized)
    # Chain onto the pool's status callback (the node or metrics may have one already).
    pool = node.pool
    previous_status = pool.on_status

    def on_status(tx_hash: bytes, status: str, detail: Any) -> None:
        if previous_status is not None:
            previous_status(tx_hash, status, detail)
        app.hub.on_pool_status(tx_hash, status, detail)

    pool.on_status = on_status
    listening = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.hub.run)

            async def http_server(task_status: trio.TaskStatus[list[str]]) -> None:
                # Our app speaks plain ASGI dicts, not hypercorn's TypedDicts.
                asgi = cast("ASGIFramework", app)
                await serve(asgi, config, mode="asgi", task_status=task_status)
                nursery.cancel_scope.cancel()  # hypercorn stopped: so does the hub

            binds: list[str] = await nursery.start(http_server)
            listening = True
            bound = _port_of(binds)
            log.info("JSON-RPC on http://%s and ws://%s", _bind(host, bound), _bind(host, bound))
            if not unsafe and not is_loopback(host):
                log.info("unsafe RPC methods are answered to loopback peers only")
            task_status.started(bound)
    except BaseExceptionGroup as group:
        # A port in use arrives wrapped in nested nursery groups: give the caller the OSError.
        bind_errors, rest = group.split(OSError)
        if listening or bind_errors is None or rest is not None:
            raise
        exc = _first_leaf(bind_errors)
        raise OSError(
            exc.errno, f"JSON-RPC cannot listen on {_bind(host, port)}: {exc.strerror}"
        ) from None
    finally:
        client.import_listeners.remove(app.hub.on_import)
        client.finality_listeners.remove(app.hub.on_finalized)
        if pool.on_status is on_status:
            pool.on_status = previous_status
        else:  # someone chained after us: stay in their chain but stop acting
            app.hub.tx_watches.clear()


def _first_leaf(group: BaseExceptionGroup[OSError]) -> OSError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
