"""The asyncio client: JSON-RPC to a node over one WebSocket (the gateway and the explorer
use it; the blocking client watches extrinsics with it).

Requests and subscriptions share the connection: a reader task hands each reply to the
request that waits for it and each notification to its subscription. When the connection
drops, every waiting request raises :class:`NodeUnavailable` and every subscription ends;
a new :class:`AsyncClient` connects again (:class:`ReconnectingClient` does so by itself).

``async with AsyncClient(url) as c`` connects and caches the chain's metadata, genesis hash
and runtime version, for building calls by name, signing and proof-checked reads (the same
plans as the blocking client: :mod:`twinchain.client.plans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import websockets
from websockets.asyncio.client import connect

from twinchain.client import plans
from twinchain.client.common import (
    DEFAULT_URL,
    ChainInfo,
    ClientError,
    Codec,
    Delivery,
    NodeUnavailable,
    Reading,
    TxStatus,
    batch_results,
    is_bad_proof,
    request,
    result_of,
    tls_context,
    ws_url,
)
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Era, Extrinsic, Header
from twinchain.protocol.jsonrpc import RpcError, from_hex, header_from_json, to_hex
from twinchain.protocol.telemetry import Batch

log = logging.getLogger("twinchain.client")

T = TypeVar("T")
_END = object()  # queued when a subscription ends


def _same(x: Any) -> Any:
    return x


def _never(_: Any) -> bool:
    return False


def _final(s: TxStatus) -> bool:
    return s.is_final


class Subscription(Generic[T]):
    """The notifications of one subscription, converted by ``convert``: ``await get()`` (None
    once it has ended), ``await latest()``, or ``async for``. It ends when the connection
    closes, after an item ``is_final`` says is the last, or on :meth:`close`."""

    def __init__(
        self,
        client: AsyncClient,
        convert: Callable[[Any], T],
        is_final: Callable[[T], bool],
        unsubscribe: str | None,
        sink: Callable[[T], None] | None,
    ) -> None:
        self.client = client
        self.id: Any = None
        self._convert, self._is_final = convert, is_final
        self._unsubscribe, self._sink = unsubscribe, sink
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._done = False

    def _push(self, result: Any) -> None:
        if self._sink is not None:
            self._sink(self._convert(result))
        else:
            self._queue.put_nowait(result)

    def _end(self) -> None:
        self._queue.put_nowait(_END)

    def _take(self, raw: Any) -> T | None:
        if raw is _END:
            self._done = True
            return None
        item = self._convert(raw)
        self._done = self._is_final(item)
        return item

    async def get(self) -> T | None:
        """The next notification; None once the subscription has ended."""
        if self._done:
            return None
        return self._take(await self._queue.get())

    async def latest(self) -> T | None:
        """Waits for a notification, then skips to the newest one queued (None once the
        subscription has ended): for followers that only care where the chain is now."""
        if self._done:
            return None
        raw = await self._queue.get()
        while raw is not _END and not self._queue.empty():
            raw = self._queue.get_nowait()
        return self._take(raw)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def close(self) -> None:
        """Stop routing its notifications and, while connected, unsubscribe on the node."""
        self._done = True
        if self.client._subs.pop(self.id, None) is None or self._unsubscribe is None:
            return
        with contextlib.suppress(NodeUnavailable, RpcError):
            await self.client.call(self._unsubscribe, self.id)


class AsyncClient:
    """One WebSocket to a node. ``await connect()`` (NodeUnavailable if the node cannot be
    reached); ``call``, ``batch`` and ``subscribe`` while connected; ``close()`` at the end.
    A request that gets no reply within ``timeout`` seconds raises NodeUnavailable. A wss
    (or https) URL is checked against ``ca_file`` (PEM) if given, else the system's trusted
    authorities."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 15.0,
        connect_timeout: float | None = None,
        ca_file: str | Path | None = None,
    ) -> None:
        self.url = ws_url(url)
        self.ca_file = ca_file
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.closed = asyncio.Event()
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._subscribing: dict[int, Subscription[Any]] = {}
        self._subs: dict[Any, Subscription[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._codec: Codec | None = None

    # -- connection
    async def connect(self) -> AsyncClient:
        try:
            # No permessage-deflate: extrinsics are hex of hashes, signatures and packed
            # integers, and deflating hundreds of kB per submission costs both ends more CPU
            # than a gateway spends on the readings in them.
            # wss:// without a CA file: websockets' default context (the system's trusted
            # authorities); passing ssl=None would refuse the URL instead.
            ctx = tls_context(self.ca_file) if self.url.startswith("wss://") else None
            tls = {"ssl": ctx} if ctx is not None else {}
            self._ws = await asyncio.wait_for(
                connect(
                    self.url,
                    max_size=None,
                    ping_interval=20,
                    ping_timeout=30,
                    compression=None,
                    **tls,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise NodeUnavailable(f"cannot connect to {self.url}: {exc}") from None
        self._reader = asyncio.create_task(self._read(), name="rpc-reader")
        return self

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._fail_all()

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        try:
            await self.refresh()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _fail_all(self) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(NodeUnavailable("connection to the node closed"))
        self._waiting.clear()
        for sub in self._subs.values():
            sub._end()
        self.closed.set()

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                for m in msg if isinstance(msg, list) else [msg]:  # a batch reply: a list
                    self._dispatch(m)
        except (websockets.WebSocketException, OSError) as exc:
            log.debug("websocket read ended: %s", exc)
        finally:
            self._fail_all()

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        rid = msg.get("id")
        if rid is not None:
            sub = self._subscribing.pop(rid, None)
            sid = msg.get("result")
            if sub is not None and isinstance(sid, str | int) and "error" not in msg:
                # Routed from now on: a notification right behind the reply is not lost.
                sub.id = sid
                self._subs[sid] = sub
            fut = self._waiting.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        params = msg.get("params")
        if isinstance(params, dict):
            sub = self._subs.get(params.get("subscription"))
            if sub is not None:
                sub._push(params.get("result"))

    async def _send(self, payload: Any, ids: list[int], timeout: float | None) -> list[Any]:
        if self._ws is None or self.closed.is_set():
            raise NodeUnavailable("not connected")
        loop = asyncio.get_running_loop()
        futs = []
        for i in ids:
            fut: asyncio.Future[Any] = loop.create_future()
            self._waiting[i] = fut
            futs.append(fut)
        wait = self.timeout if timeout is None else timeout
        try:
            await self._ws.send(json.dumps(payload))
            return list(await asyncio.wait_for(asyncio.gather(*futs), wait))
        except (websockets.WebSocketException, OSError) as exc:
            raise NodeUnavailable(str(exc)) from None
        except TimeoutError:
            raise NodeUnavailable(f"no reply within {wait} s") from None
        finally:
            for i in ids:
                self._waiting.pop(i, None)

    # -- calls
    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call ``method``; its result, or RpcError for an error reply."""
        rid = next(self._ids)
        (reply,) = await self._send(request(rid, method, params), [rid], timeout)
        return result_of(reply, rid)

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one message; results in the order of ``calls``. An error in any
        call raises its RpcError (after the whole batch ran)."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = [request(i, m, p) for i, (m, p) in zip(ids, calls, strict=True)]
        return batch_results(await self._send(payload, ids, None), ids)

    async def subscribe(
        self,
        method: str,
        *params: Any,
        convert: Callable[[Any], T] = _same,
        is_final: Callable[[T], bool] = _never,
        unsubscribe: str | None = None,
        sink: Callable[[T], None] | None = None,
    ) -> Subscription[T]:
        """Subscribe with ``method``; its notifications' results, converted. With ``sink``,
        each one is handed to it as it arrives (in the order they come, from the reader
        task) instead of being queued. ``unsubscribe``: the method that ends it on the node
        when it is closed."""
        sub = Subscription(self, convert, is_final, unsubscribe, sink)
        rid = next(self._ids)
        self._subscribing[rid] = sub
        try:
            (reply,) = await self._send(request(rid, method, params), [rid], None)
        finally:
            self._subscribing.pop(rid, None)
        result_of(reply, rid)
        if self.closed.is_set():
            sub._end()
        return sub

    @asynccontextmanager
    async def subscription(
        self,
        method: str,
        *params: Any,
        convert: Callable[[Any], T] = _same,
        is_final: Callable[[T], bool] = _never,
        unsubscribe: str | None = None,
    ) -> AsyncIterator[Subscription[T]]:
        """:meth:`subscribe` as a context manager that closes the subscription on exit."""
        sub = await self.subscribe(
            method, *params, convert=convert, is_final=is_final, unsubscribe=unsubscribe
        )
        try:
            yield sub
        finally:
            await sub.close()

    # -- chain info
    async def refresh(self) -> ChainInfo:
        """(Re)fetch the metadata, genesis hash and runtime version."""
        self._codec = Codec(await self._run(plans.chain_info()))
        return self._codec.info

    async def refresh_version(self) -> bool:
        """Re-read the runtime version (after ``Invalid:BadProof``, or a
        ``chain_subscribeRuntimeVersion`` notification): the metadata again if the best
        block runs another version than the one cached, and the version the next block runs,
        which what this client signs from now on names. True if that changed (said once in
        the log)."""
        before = self.info.signing_version
        current, upcoming = await self._run(plans.next_spec_version(self.codec))
        if current != self.info.spec_version:
            await self.refresh()
        return self.info.adopt_next_version(upcoming, before)

    async def _run(self, plan: plans.Plan[T]) -> T:
        return await plans.run_async(plan, self.call)

    @property
    def codec(self) -> Codec:
        if self._codec is None:
            raise ClientError("no chain info: use `async with AsyncClient(url)` or refresh()")
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
        return await self._run(plans.sign(self.info, call, keypair, tip=tip, era=era))

    async def submit(self, xt: Extrinsic) -> bytes:
        return from_hex(await self.call("author_submitExtrinsic", to_hex(xt.encode())), "hash", 32)

    async def sign_and_submit(
        self, call: Call, keypair: Keypair, *, tip: int = 0, era: Era | None = None
    ) -> bytes:
        """Sign and submit; returns the extrinsic hash. Refused as ``Invalid:BadProof``
        after a runtime upgrade changed the version to sign, it is signed again once."""
        try:
            return await self.submit(await self.sign(call, keypair, tip=tip, era=era))
        except RpcError as exc:
            if not (is_bad_proof(exc) and await self.refresh_version()):
                raise
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
        yield its statuses, which end after a final one (finalized, invalid, dropped,
        usurped). A Call refused as ``Invalid:BadProof`` after a runtime upgrade changed the
        version to sign is signed again once; a signed Extrinsic's refusal is raised (its
        signer calls :meth:`refresh_version`)."""
        if isinstance(call, Extrinsic):
            xt = call
        elif keypair is None:
            raise ClientError("a Call needs a keypair to sign it")
        else:
            xt = await self.sign(call, keypair, tip=tip, era=era)
        try:
            sub = await self._watch(xt)
        except RpcError as exc:
            if isinstance(call, Extrinsic) or keypair is None or not is_bad_proof(exc):
                raise
            if not await self.refresh_version():
                raise
            sub = await self._watch(await self.sign(call, keypair, tip=tip, era=era))
        try:
            yield sub
        finally:
            await sub.close()

    async def _watch(self, xt: Extrinsic) -> Subscription[TxStatus]:
        return await self.subscribe(
            "author_submitAndWatchExtrinsic",
            to_hex(xt.encode()),
            convert=TxStatus.from_json,
            is_final=_final,
            unsubscribe="author_unwatchExtrinsic",
        )

    # -- storage and events
    async def read_storage(
        self, pallet: str, item: str, *keys: Any, at: bytes | None = None, verify: bool = True
    ) -> Any:
        """Read and decode ``pallet.item[keys]`` at ``at`` (default: the finalized head).
        With ``verify`` the value is checked against a read proof and the state root of that
        block's header; ProofMismatch if anything disagrees."""
        return await self._run(
            plans.read_storage(self.codec, pallet, item, keys, at=at, verify=verify)
        )

    async def events(self, at: bytes) -> list[dict[str, Any]]:
        """The events of block ``at``, decoded with the local runtime's types."""
        return await self._run(plans.events(self.codec, at))

    # -- the facility archive
    async def readings(
        self,
        twin: int,
        metric: int,
        from_ms: int,
        to_ms: int,
        *,
        key: Keypair | None = None,
        api_key: str | None = None,
    ) -> list[Reading]:
        """The twin's raw readings of ``metric`` in ``[from_ms, to_ms]`` from this node's
        archive, asked as ``key``'s account or with ``api_key``, each verified against its
        batch's finalized record, read with a state proof (see :func:`plans.readings`)."""
        return await self._run(
            plans.readings(self.codec, twin, metric, from_ms, to_ms, key=key, api_key=api_key)
        )

    async def put_document(
        self, twin: int, content: bytes, *, key: Keypair | None = None, api_key: str | None = None
    ) -> bytes:
        """Keep a document of ``twin`` in this node's archive; its hash (see
        :func:`plans.put_document`)."""
        return await self._run(
            plans.put_document(self.info, twin, content, key=key, api_key=api_key)
        )

    async def document(
        self, twin: int, digest: bytes, *, key: Keypair | None = None, api_key: str | None = None
    ) -> bytes:
        """A document of ``twin`` by hash, checked against it (see :func:`plans.document`)."""
        return await self._run(plans.document(self.info, twin, digest, key=key, api_key=api_key))

    async def deliver(self, batches: list[Batch], gateway_key: Keypair) -> list[Delivery]:
        """Deliver signed device batches to this node's archive as the gateway."""
        return await self._run(plans.deliver(self.info, batches, gateway_key))

    # -- heads
    def subscribe_new_heads(self) -> AbstractAsyncContextManager[Subscription[Header]]:
        """``async with c.subscribe_new_heads() as heads: async for header in heads`` (the
        first one is the current best head)."""
        return self.subscription(
            "chain_subscribeNewHeads",
            convert=header_from_json,
            unsubscribe="chain_unsubscribeNewHeads",
        )

    def subscribe_finalized_heads(self) -> AbstractAsyncContextManager[Subscription[Header]]:
        return self.subscription(
            "chain_subscribeFinalizedHeads",
            convert=header_from_json,
            unsubscribe="chain_unsubscribeFinalizedHeads",
        )


# --------------------------------------------------------------------------- reconnecting

DEFAULT_WS_URL = "ws://127.0.0.1:9944"
#: Event kind -> subscription method, renewed on each connection.
HEAD_SUBSCRIPTIONS: Mapping[str, str] = {
    "newHead": "chain_subscribeNewHeads",
    "finalizedHead": "chain_subscribeFinalizedHeads",
}


@dataclass(frozen=True)
class ConnectionEvent:
    """``kind``: "connected" (``data``: the URL), "disconnected" (``data``: the reason), or
    the kind of a subscription's notification (``data``: its result; by default "newHead"
    and "finalizedHead", with the header JSON)."""

    kind: str
    data: Any = None


class ReconnectingClient:
    """An :class:`AsyncClient` kept connected, for programs that stay up while the node
    comes and goes (the explorer). ``start()`` launches the connect loop: it reconnects with
    exponential back-off whenever the connection drops, and on every connection renews the
    ``subscriptions`` (event kind -> method). Connection changes and notifications arrive in
    order as :class:`ConnectionEvent` items on ``events``.

    ``await call(method, *params)`` while connected (NodeUnavailable otherwise, RpcError for
    an error reply); a node that leaves a call unanswered for ``call_timeout`` seconds is
    treated as gone (reconnect rather than hang)."""

    def __init__(
        self,
        url: str = DEFAULT_WS_URL,
        *,
        subscriptions: Mapping[str, str] = HEAD_SUBSCRIPTIONS,
        call_timeout: float = 10.0,
        connect_timeout: float = 3.0,
        backoff: tuple[float, float] = (0.2, 2.0),
        ca_file: str | Path | None = None,
    ) -> None:
        self.url = ws_url(url)
        self.ca_file = ca_file
        self.subscriptions = dict(subscriptions)
        self.call_timeout, self.connect_timeout = call_timeout, connect_timeout
        self.backoff = backoff
        self.events: asyncio.Queue[ConnectionEvent] = asyncio.Queue()
        self.client: AsyncClient | None = None
        self.connected = False
        self.attempts = 0  # failed connection attempts since the last success
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rpc-reconnect")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.client is not None:
            await self.client.close()

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        client = self.client
        if client is None or client.closed.is_set():
            raise NodeUnavailable("not connected to the node")
        try:
            wait = self.call_timeout if timeout is None else timeout
            return await client.call(method, *params, timeout=wait)
        except NodeUnavailable:
            await client.close()  # the connect loop notices, and connects again
            raise

    def _emit(self, kind: str) -> Callable[[Any], None]:
        return lambda result: self.events.put_nowait(ConnectionEvent(kind, result))

    async def _run(self) -> None:
        low, high = self.backoff
        delay = low
        while True:
            client = AsyncClient(
                self.url,
                timeout=self.call_timeout,
                connect_timeout=self.connect_timeout,
                ca_file=self.ca_file,
            )
            try:
                await client.connect()
            except NodeUnavailable as exc:
                self.attempts += 1
                if self.connected or self.attempts == 1:
                    self.connected = False
                    self.events.put_nowait(ConnectionEvent("disconnected", str(exc)))
                await asyncio.sleep(delay)
                delay = min(high, delay * 2)
                continue
            self.client = client
            self.connected, self.attempts, delay = True, 0, low
            self.events.put_nowait(ConnectionEvent("connected", self.url))
            try:
                for kind, method in self.subscriptions.items():
                    await client.subscribe(method, sink=self._emit(kind))
            except (NodeUnavailable, RpcError) as exc:
                log.debug("subscribe failed: %s", exc)
                await client.close()
            try:
                await client.closed.wait()
            finally:
                await client.close()
            self.client = None
            self.connected = False
            self.events.put_nowait(ConnectionEvent("disconnected", "connection lost"))


__all__ = [
    "DEFAULT_WS_URL",
    "HEAD_SUBSCRIPTIONS",
    "AsyncClient",
    "ConnectionEvent",
    "ReconnectingClient",
    "Subscription",
]
