"""JSON-RPC 2.0 over HTTP POST and WebSocket on one port: the ASGI application.

Hypercorn does the HTTP/1.1, HTTP/2 and WebSocket protocol work (h11, h2, wsproto) and runs
on trio inside the node's nursery (see :mod:`twinchain.rpc.hosting`); this module is the ASGI
application: limits, origin checks, JSON-RPC framing and dispatch. What a WebSocket is
subscribed to is :mod:`twinchain.rpc.subscriptions`' business.

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
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import trio

from twinchain.protocol.jsonrpc import (
    BATCH_TOO_LARGE,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    OVERSIZED_REQUEST,
    OVERSIZED_RESPONSE,
    PARSE_ERROR,
    RATE_LIMITED,
    SERVER_BUSY,
    RpcError,
)
from twinchain.rpc.api import ArchiveSource, InThread, NodeHandle, archive_getter
from twinchain.rpc.asgi import Receive, Scope, Send, lifespan
from twinchain.rpc.auth import ApiKeyStore, Authenticator
from twinchain.rpc.methods import METHODS, CallContext, call_method, health
from twinchain.rpc.metrics import rpc_call_finished, rpc_call_started
from twinchain.rpc.subscriptions import ChainEvents, MiB, WsConnection, dumps

log = logging.getLogger("twinchain.rpc")

MAX_BATCH = 1000
# Substrate's --rpc-cors default: browsers on this machine only.
DEFAULT_CORS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
)


def _error(rid: Any, err: RpcError) -> str:
    return dumps({"jsonrpc": "2.0", "error": err.to_json(), "id": rid})


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
        archive: ArchiveSource = None,
        api_keys: ApiKeyStore | None = None,
    ) -> None:
        self.node = node
        # One per server: a signed request accepted here is a replay here from then on.
        self.auth = Authenticator(node.chain.genesis_hash, api_keys)
        self.archive = archive_getter(archive)
        self.unsafe = unsafe
        self.origins = OriginPolicy(cors)
        self.max_request_bytes = max_request_bytes
        self.max_connections = max_connections
        self.max_subscriptions = max_subscriptions_per_connection
        self.max_response_bytes = max_response_bytes
        self.active = 0
        self.limiter = RateLimiter(max_calls_per_second)
        self.hub = ChainEvents(node)
        self.starting_block = node.chain.best.number

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)

    # -- JSON-RPC
    async def handle(
        self, payload: bytes | str, peer: str | None, conn: WsConnection | None = None
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
            auth=self.auth,
            archive=self.archive,
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
                part = await self._one(item, ctx)
                if part is not None:
                    parts.append(part)
                    size += len(part) + 1
                    if size > self.max_response_bytes:
                        return _error(None, self._too_big()), []
            return ("[" + ",".join(parts) + "]" if parts else None), ctx.after_response
        return await self._one(req, ctx), ctx.after_response

    async def _one(self, item: Any, ctx: CallContext) -> str | None:
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
            if isinstance(result, InThread):
                # Checked on the node's thread; the blocking rest (synced archive writes)
                # runs beside it, so that block authoring and gossip do not wait for it.
                result = await trio.to_thread.run_sync(result.fn)
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
            text = dumps({"jsonrpc": "2.0", "result": result, "id": rid})
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
            await _respond(send, 200, dumps(health(self.node)).encode(), extra=extra)
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
        conn = WsConnection(self.hub, self.max_subscriptions)
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

    async def _ws_reader(self, receive: Receive, peer: str | None, conn: WsConnection) -> None:
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
