"""The trio client: calls over httpx.AsyncClient, subscriptions over trio-websocket.

Subscriptions are async context managers that hand out an async iterator
(``async with c.subscribe_new_heads() as heads: async for h in heads``): each one owns a
WebSocket with a background reader, and trio needs that nursery scoped by the caller rather
than hidden inside an async generator, where cancellation would reach the wrong task.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from twinchain.client.common import (
    ChainInfo,
    ClientError,
    Codec,
    TxStatus,
    check_read,
    checked_header,
)
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Era, Extrinsic, Header
from twinchain.protocol.jsonrpc import SERVER_ERROR, RpcError, from_hex, header_from_json, to_hex

T = TypeVar("T")


def http_url(url: str) -> str:
    """``host:port``, ``http://``, or ``ws://`` forms all map to the HTTP endpoint."""
    if url.startswith(("ws://", "wss://")):
        url = "http" + url[2:]
    elif not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url.rstrip("/") + "/"


def ws_url(url: str) -> str:
    return "ws" + http_url(url)[4:]


def rpc_result(reply: Any) -> Any:
    """The result of a JSON-RPC reply, or its error raised as RpcError."""
    if not isinstance(reply, dict):
        raise RpcError(SERVER_ERROR, "malformed response", reply)
    err = reply.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        raise RpcError(
            code if type(code) is int else SERVER_ERROR,
            str(err.get("message", "Server error")),
            err.get("data"),
        )
    if "result" not in reply:
        raise RpcError(SERVER_ERROR, "malformed response", reply)
    return reply["result"]


class Subscription(Generic[T]):
    """Notifications of one subscription as an async iterator, converted by ``convert``;
    it ends when ``is_final`` says so or the connection closes."""

    def __init__(
        self,
        ws: WebSocketConnection,
        sid: str,
        early: list[Any],
        convert: Callable[[Any], T],
        is_final: Callable[[T], bool],
    ) -> None:
        self.ws, self.id = ws, sid
        self._early = early
        self._convert, self._is_final = convert, is_final
        self._done = False

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        while True:
            if self._early:
                msg = self._early.pop(0)
            else:
                try:
                    msg = json.loads(await self.ws.get_message())
                except ConnectionClosed:
                    self._done = True
                    raise StopAsyncIteration from None
            params = msg.get("params") if isinstance(msg, dict) else None
            if isinstance(params, dict) and params.get("subscription") == self.id:
                item = self._convert(params.get("result"))
                self._done = self._is_final(item)
                return item


@asynccontextmanager
async def open_subscription(
    url: str,
    method: str,
    params: list[Any],
    convert: Callable[[Any], T],
    is_final: Callable[[T], bool] = lambda _: False,
) -> AsyncIterator[Subscription[T]]:
    """A subscription on its own WebSocket; the connection closes when the block exits."""
    async with open_websocket_url(ws_url(url)) as ws:
        await ws.send_message(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        )
        early: list[Any] = []  # notifications that overtake the reply are kept, not lost
        while True:
            msg = json.loads(await ws.get_message())
            if isinstance(msg, dict) and msg.get("id") == 1:
                sid = rpc_result(msg)
                break
            early.append(msg)
        yield Subscription(ws, sid, early, convert, is_final)


def _final(s: TxStatus) -> bool:
    return s.is_final


class AsyncClient:
    """``async with AsyncClient(url) as c:`` connects and caches the chain's metadata,
    genesis hash and runtime version."""

    def __init__(self, url: str = "127.0.0.1:9944", *, timeout: float = 10.0) -> None:
        self.url = http_url(url)
        self._http = httpx.AsyncClient(timeout=timeout)
        self._ids = itertools.count(1)
        self._codec: Codec | None = None

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        resp = await self._http.post(self.url, json=body)
        try:
            reply = resp.json()
        except ValueError:
            raise RpcError(SERVER_ERROR, f"HTTP {resp.status_code}: not JSON") from None
        return rpc_result(reply)

    # -- chain info
    async def connect(self) -> ChainInfo:
        """(Re)fetch the metadata, genesis hash and runtime version."""
        genesis = from_hex(await self.call("chain_getBlockHash", 0), "genesis hash", 32)
        version = await self.call("state_getRuntimeVersion")
        metadata = await self.call("state_getMetadata")
        self._codec = Codec(ChainInfo(genesis, version, metadata))
        return self._codec.info

    @property
    def codec(self) -> Codec:
        if self._codec is None:
            raise ClientError("not connected: use `async with AsyncClient(url)` or connect()")
        return self._codec

    @property
    def info(self) -> ChainInfo:
        return self.codec.info

    def call_function(self, pallet: str, call: str, **args: Any) -> Call:
        """Build ``pallet.call(**args)`` from the node's metadata. Argument values are encoded
        with the local runtime's types (``Runtime.call_by_name``), which needs the node's
        specVersion to equal the local one: VersionMismatch otherwise."""
        return self.codec.build_call(pallet, call, args)

    # -- extrinsics
    async def sign(
        self, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
    ) -> Extrinsic:
        """Sign with the next nonce (chain plus pool); a mortal era is born at the best block."""
        nonce = await self.call("system_accountNextIndex", to_hex(keypair.public))
        birth_hash = None
        if era is not None and not era.is_immortal:
            best = header_from_json(await self.call("chain_getHeader"))
            birth_hash = from_hex(
                await self.call("chain_getBlockHash", era.birth(best.number)), "birth hash", 32
            )
        info = self.info
        return Extrinsic.sign(
            call,
            keypair,
            nonce,
            info.genesis_hash,
            info.spec_version,
            tip=tip,
            era=era,
            birth_hash=birth_hash,
        )

    async def submit(self, xt: Extrinsic) -> bytes:
        return from_hex(await self.call("author_submitExtrinsic", to_hex(xt.encode())), "hash", 32)

    async def sign_and_submit(
        self, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
    ) -> bytes:
        """Sign and submit; returns the extrinsic hash."""
        return await self.submit(await self.sign(call, keypair, tip=tip, era=era))

    @asynccontextmanager
    async def submit_and_watch(
        self,
        call: Call | Extrinsic,
        keypair: Keypair | None = None,
        *,
        tip: int = 0,
        era: Era | None = None,
    ) -> AsyncIterator[Subscription[TxStatus]]:
        """Submit (signing ``call`` with ``keypair`` unless it is an Extrinsic already) and
        yield an async iterator of its statuses, which ends after a final one (finalized,
        invalid, dropped, usurped)."""
        if isinstance(call, Extrinsic):
            xt = call
        elif keypair is None:
            raise ClientError("a Call needs a keypair to sign it")
        else:
            xt = await self.sign(call, keypair, tip=tip, era=era)
        async with open_subscription(
            self.url,
            "author_submitAndWatchExtrinsic",
            [to_hex(xt.encode())],
            TxStatus.from_json,
            _final,
        ) as sub:
            yield sub

    # -- storage
    async def read_storage(
        self, pallet: str, item: str, *keys: Any, at: bytes | None = None, verify: bool = True
    ) -> Any:
        """Read and decode ``pallet.item[keys]`` at ``at`` (default: the finalized head).
        With ``verify`` the value is checked against a read proof and the state root of that
        block's header; ProofMismatch if anything disagrees."""
        key = self.codec.storage_key(pallet, item, keys)
        if at is None:
            at = from_hex(await self.call("chain_getFinalizedHead"), "hash", 32)
        value_json = await self.call("state_getStorage", to_hex(key), to_hex(at))
        if not verify:
            raw = None if value_json is None else from_hex(value_json, "storage value")
            return self.codec.decode_value(pallet, item, raw)
        header = checked_header(at, await self.call("chain_getHeader", to_hex(at)))
        proof = await self.call("state_getReadProof", [to_hex(key)], to_hex(at))
        return self.codec.decode_value(pallet, item, check_read(key, header, proof, value_json))

    # -- heads
    def subscribe_new_heads(self) -> AbstractAsyncContextManager[Subscription[Header]]:
        """``async with c.subscribe_new_heads() as heads: async for header in heads`` (the
        first one is the current best head)."""
        return open_subscription(self.url, "chain_subscribeNewHeads", [], header_from_json)

    def subscribe_finalized_heads(self) -> AbstractAsyncContextManager[Subscription[Header]]:
        return open_subscription(self.url, "chain_subscribeFinalizedHeads", [], header_from_json)


async def collect_statuses(url: str, xt: Extrinsic, timeout: float) -> list[TxStatus]:
    """Submit ``xt`` and gather its statuses up to a final one (used by the sync client)."""
    out: list[TxStatus] = []
    with trio.fail_after(timeout):
        async with open_subscription(
            url, "author_submitAndWatchExtrinsic", [to_hex(xt.encode())], TxStatus.from_json, _final
        ) as sub:
            async for status in sub:
                out.append(status)
    return out


__all__ = ["AsyncClient", "Subscription", "collect_statuses", "open_subscription"]
