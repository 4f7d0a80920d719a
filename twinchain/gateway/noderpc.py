"""JSON-RPC to the node over one WebSocket, for asyncio (the node's own client is trio).

Requests and subscriptions share the connection: a reader task hands each reply to the
request that waits for it and each notification to its subscription's queue. When the
connection drops, every waiting request raises :class:`NodeUnavailable` and every
subscription ends (its queue yields ``None``); the gateway reconnects with a new instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import websockets
from websockets.asyncio.client import connect

from twinchain.client.aio import rpc_result, ws_url
from twinchain.protocol.jsonrpc import RpcError


class NodeUnavailable(ConnectionError):
    """The node cannot be reached, or the connection dropped."""


class NodeRpc:
    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        self.url = ws_url(url)
        self.timeout = timeout
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._subs: dict[str, asyncio.Queue[Any]] = {}
        self._early: dict[str, list[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self) -> NodeRpc:
        try:
            # No permessage-deflate: the extrinsics are hex of hashes, signatures and packed
            # integers, and deflating hundreds of kB per submission costs both ends more CPU
            # than the gateway spends on the readings in them.
            self._ws = await asyncio.wait_for(
                connect(
                    self.url, max_size=None, ping_interval=20, ping_timeout=30, compression=None
                ),
                self.timeout,
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise NodeUnavailable(f"cannot connect to {self.url}: {exc}") from None
        self._reader = asyncio.create_task(self._read())
        return self

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._fail_all()

    def _fail_all(self) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(NodeUnavailable("connection to the node closed"))
        self._waiting.clear()
        for q in self._subs.values():
            q.put_nowait(None)
        self.closed.set()

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(msg, list):  # a batch reply
                    for m in msg:
                        self._dispatch(m)
                else:
                    self._dispatch(msg)
        except (websockets.WebSocketException, OSError):
            pass
        finally:
            self._fail_all()

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if "id" in msg and msg["id"] is not None:
            fut = self._waiting.pop(msg["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        params = msg.get("params")
        if isinstance(params, dict):
            sid = params.get("subscription")
            q = self._subs.get(sid)  # type: ignore[arg-type]
            if q is not None:
                q.put_nowait(params.get("result"))
            elif isinstance(sid, str):
                self._early.setdefault(sid, []).append(params.get("result"))

    async def _send(self, payload: Any, ids: list[int]) -> list[Any]:
        if self._ws is None or self.closed.is_set():
            raise NodeUnavailable("not connected")
        loop = asyncio.get_running_loop()
        futs = []
        for i in ids:
            fut: asyncio.Future[Any] = loop.create_future()
            self._waiting[i] = fut
            futs.append(fut)
        try:
            await self._ws.send(json.dumps(payload))
            return list(await asyncio.wait_for(asyncio.gather(*futs), self.timeout))
        except (websockets.WebSocketException, OSError) as exc:
            raise NodeUnavailable(str(exc)) from None
        except TimeoutError:
            raise NodeUnavailable(f"no reply within {self.timeout} s") from None
        finally:
            for i in ids:
                self._waiting.pop(i, None)

    async def call(self, method: str, *params: Any) -> Any:
        rid = next(self._ids)
        (reply,) = await self._send(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}, [rid]
        )
        return rpc_result(reply)

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one message; results (or RpcError instances) in order."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        out = []
        for reply in await self._send(payload, ids):
            try:
                out.append(rpc_result(reply))
            except RpcError as exc:
                out.append(exc)
        return out

    async def subscribe(self, method: str, *params: Any) -> asyncio.Queue[Any]:
        """Subscribe; the queue yields each notification's result, then None at the end."""
        sid = await self.call(method, *params)
        q: asyncio.Queue[Any] = asyncio.Queue()
        for item in self._early.pop(sid, []):
            q.put_nowait(item)
        self._subs[sid] = q
        if self.closed.is_set():
            q.put_nowait(None)
        return q
