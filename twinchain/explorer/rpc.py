"""The explorer's JSON-RPC layer: one WebSocket to the node (asyncio, wsproto), reconnecting
with backoff, with head subscriptions renewed on every connection.

Textual runs on asyncio while the project's own async client is trio's, so this is a small
client of its own over ``asyncio.open_connection`` and wsproto (already a dependency through
hypercorn). The widgets never see it directly: they read :class:`ConnectionEvent` items from
``events`` and ask :mod:`twinchain.explorer.data` for decoded data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from twinchain.client.aio import rpc_result, ws_url
from twinchain.protocol.jsonrpc import METHOD_NOT_FOUND, RpcError

log = logging.getLogger("twinchain.explorer")

DEFAULT_URL = "ws://127.0.0.1:9944"
CALL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0
BACKOFF_MIN, BACKOFF_MAX = 0.2, 2.0
READ_CHUNK = 1 << 16


class Disconnected(Exception):
    """No connection to the node right now (the client keeps trying in the background)."""


def is_method_not_found(exc: BaseException) -> bool:
    return isinstance(exc, RpcError) and exc.code == METHOD_NOT_FOUND


@dataclass(frozen=True)
class ConnectionEvent:
    """``kind``: "connected", "disconnected", "newHead" or "finalizedHead" (``data``: the
    header JSON; for "disconnected" the reason)."""

    kind: str
    data: Any = None


class _Socket:
    """One open WebSocket: a reader task routes replies to waiting calls and notifications
    to the owning client."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ws: WSConnection,
        on_notification: Any,
    ) -> None:
        self.reader, self.writer, self.ws = reader, writer, ws
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.on_notification = on_notification
        self.closed = asyncio.Event()
        self._text: list[str] = []
        self._lock = asyncio.Lock()

    async def send_text(self, text: str) -> None:
        async with self._lock:
            self.writer.write(self.ws.send(TextMessage(data=text)))
            await self.writer.drain()

    async def read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_CHUNK)
                if not data:
                    break
                self.ws.receive_data(data)
                for ev in self.ws.events():
                    if isinstance(ev, TextMessage):
                        self._text.append(ev.data)
                        if ev.message_finished:
                            text, self._text = "".join(self._text), []
                            self._dispatch(text)
                    elif isinstance(ev, Ping):
                        self.writer.write(self.ws.send(ev.response()))
                    elif isinstance(ev, CloseConnection):
                        with contextlib.suppress(Exception):
                            self.writer.write(self.ws.send(ev.response()))
                        return
                    elif isinstance(ev, BytesMessage):
                        continue
        except Exception as exc:  # any read failure ends this socket; the loop reconnects
            log.debug("websocket read ended: %s", exc)
        finally:
            self.close()

    def _dispatch(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        for item in msg if isinstance(msg, list) else [msg]:
            if not isinstance(item, dict):
                continue
            rid = item.get("id")
            if rid is not None:
                fut = self.pending.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result(item)
            elif isinstance(item.get("params"), dict):
                self.on_notification(item.get("method"), item["params"])

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(Disconnected("connection closed"))
        self.pending.clear()
        with contextlib.suppress(Exception):
            self.writer.close()


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, WSConnection]:
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// (or http://) URLs are supported, not {url!r}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=1 << 24), CONNECT_TIMEOUT
    )
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(Request(host=f"{host}:{port}", target=parts.path or "/")))
    await writer.drain()
    while True:
        data = await asyncio.wait_for(reader.read(READ_CHUNK), CONNECT_TIMEOUT)
        if not data:
            raise ConnectionError("closed during the WebSocket handshake")
        ws.receive_data(data)
        for ev in ws.events():
            if isinstance(ev, AcceptConnection):
                return reader, writer, ws
            if isinstance(ev, RejectConnection):
                raise ConnectionError(f"WebSocket refused with HTTP {ev.status_code}")


class NodeRpc:
    """``await rpc.call(method, *params)`` while connected (Disconnected otherwise, RpcError
    for an error reply); ``events`` carries connection changes and new/finalized heads.

    ``start()`` launches the connect loop; it reconnects with exponential backoff whenever
    the socket drops (node restarted, network gone) until ``stop()``.
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = ws_url(url)
        self.events: asyncio.Queue[ConnectionEvent] = asyncio.Queue()
        self._sock: _Socket | None = None
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._subs: dict[str, str] = {}  # subscription id -> event kind
        self._early: dict[str, list[Any]] = {}
        self.connected = False
        self.attempts = 0  # failed connection attempts since the last success

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="explorer-rpc")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sock is not None:
            self._sock.close()

    async def call(self, method: str, *params: Any, timeout: float = CALL_TIMEOUT) -> Any:
        sock = self._sock
        if sock is None or sock.closed.is_set():
            raise Disconnected("not connected to the node")
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sock.pending[rid] = fut
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
        try:
            await sock.send_text(json.dumps(body))
            reply = await asyncio.wait_for(fut, timeout)
        except (OSError, ConnectionError, RuntimeError) as exc:
            sock.close()
            raise Disconnected(str(exc)) from None
        except TimeoutError:
            # A node that stops answering is treated as gone: reconnect rather than hang.
            sock.close()
            raise Disconnected(f"{method}: no reply within {timeout}s") from None
        return rpc_result(reply)

    # -- the connection loop
    def _notify(self, method: Any, params: dict[str, Any]) -> None:
        sid = params.get("subscription")
        kind = self._subs.get(sid)  # type: ignore[arg-type]
        if kind is not None:
            self.events.put_nowait(ConnectionEvent(kind, params.get("result")))
        elif isinstance(sid, str) and len(self._early) < 16:
            # Dispatched before the subscribe call's caller resumed: kept, not lost.
            self._early.setdefault(sid, []).append(params.get("result"))

    async def _subscribe(self, method: str, kind: str) -> None:
        sid = await self.call(method)
        self._subs[sid] = kind
        for result in self._early.pop(sid, []):
            self.events.put_nowait(ConnectionEvent(kind, result))

    async def _run(self) -> None:
        delay = BACKOFF_MIN
        while True:
            try:
                reader, writer, ws = await _open(self.url)
            except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
                self.attempts += 1
                if self.connected or self.attempts == 1:
                    self.connected = False
                    self.events.put_nowait(ConnectionEvent("disconnected", str(exc)))
                await asyncio.sleep(delay)
                delay = min(BACKOFF_MAX, delay * 2)
                continue
            sock = _Socket(reader, writer, ws, self._notify)
            self._sock = sock
            reader_task = asyncio.create_task(sock.read_loop(), name="explorer-rpc-read")
            self.connected, self.attempts, delay = True, 0, BACKOFF_MIN
            self.events.put_nowait(ConnectionEvent("connected", self.url))
            try:
                self._subs, self._early = {}, {}
                await self._subscribe("chain_subscribeNewHeads", "newHead")
                await self._subscribe("chain_subscribeFinalizedHeads", "finalizedHead")
            except (Disconnected, RpcError) as exc:
                log.debug("subscribe failed: %s", exc)
                sock.close()
            try:
                await sock.closed.wait()
            finally:
                sock.close()
                reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader_task
            self._sock = None
            self.connected = False
            self.events.put_nowait(ConnectionEvent("disconnected", "connection lost"))
