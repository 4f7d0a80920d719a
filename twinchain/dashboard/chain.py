"""What the dashboard reads from its facility's node, over JSON-RPC only (``twinchain.client``).

:class:`ChainView` keeps one reconnecting WebSocket to the node, follows its finalized heads
(each one is fanned out to the browsers' event streams, :class:`Hub`) and answers the pages'
questions: facilities, twins, alerts, work orders, KPIs, reports, network; the rights of an
account on a twin (the chain's ``Telemetry.may_read`` rule at the finalized block); raw
readings of a twin from the facility archive, read either from the archive's own Parquet
files (``--archive-dir``, when the dashboard runs beside its node) or over RPC with every
reading's proof checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from twinchain.client import ClientError, NodeUnavailable, ReconnectingClient, is_method_not_found
from twinchain.primitives.keys import Keypair
from twinchain.protocol.jsonrpc import RpcError, from_hex, header_from_json, to_hex

log = logging.getLogger("twinchain.dashboard")

#: Where each twin_* read takes its ``at`` block parameter (positional).
AT_INDEX = {
    "twin_facilities": 0,
    "twin_metrics": 0,
    "twin_facility": 1,
    "twin_alert": 1,
    "twin_equipment": 1,
    "twin_disclosure": 1,
    "twin_kpis": 1,
    "twin_facilityKpis": 1,
    "twin_state": 1,
    "twin_reports": 1,
    "twin_benchmark": 1,
    "twin_alerts": 2,
    "twin_workOrders": 2,
    "twin_telemetryAggregates": 2,
    "twin_telemetryBatches": 3,
}
READ_TELEMETRY = 1  # Equipment access right bit (twinchain.runtime.pallets.equipment.types)
#: Raw readings fetched over RPC for one chart, at most (each comes with its Merkle proof).
MAX_RPC_READINGS = 50_000


class Forbidden(Exception):
    """The signed-in account may not read this (the chain's rule)."""


class NotFound(Exception):
    """No such twin, metric, alert or work order."""


@dataclass
class Head:
    number: int
    hash: str
    at_ms: int  # when the dashboard saw it finalized


class Hub:
    """Fans each finalized head out to every open event stream (one queue each)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Head]] = set()

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[Head]]:
        q: asyncio.Queue[Head] = asyncio.Queue(maxsize=64)
        self._queues.add(q)
        try:
            yield q
        finally:
            self._queues.discard(q)

    def publish(self, head: Head) -> None:
        for q in list(self._queues):
            if q.full():  # a stalled browser: drop its oldest head, it only needs the newest
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(head)

    @property
    def listeners(self) -> int:
        return len(self._queues)


class ChainView:
    """One facility node seen through JSON-RPC (see the module docstring)."""

    def __init__(
        self,
        rpc_url: str,
        *,
        facility: int | None = None,
        archive_rpc: str | None = None,
        archive_dir: Path | None = None,
        reader_key: Keypair | None = None,
        reader_api_key: str | None = None,
    ) -> None:
        self.rpc = ReconnectingClient(
            rpc_url, subscriptions={"finalizedHead": "chain_subscribeFinalizedHeads"}
        )
        self.archive_rpc = (
            None if archive_rpc is None else ReconnectingClient(archive_rpc, subscriptions={})
        )
        self.facility = facility
        self.archive_dir = archive_dir
        self.reader_key, self.reader_api_key = reader_key, reader_api_key
        self.hub = Hub()
        self.head: Head | None = None
        self.genesis: bytes | None = None
        self.chain_name = ""
        self._metrics: dict[int, dict[str, Any]] = {}
        self._cache: dict[tuple[Any, ...], tuple[str, Any]] = {}  # per finalized hash
        self._may_read_rpc: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._archive_q: Any = None
        self.connected = asyncio.Event()

    # -- life
    async def start(self, timeout: float = 30.0) -> None:
        self.rpc.start()
        if self.archive_rpc is not None:
            self.archive_rpc.start()
        self._task = asyncio.create_task(self._follow(), name="dashboard-heads")
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.rpc.stop()
        if self.archive_rpc is not None:
            await self.archive_rpc.stop()
        if self._archive_q is not None:
            self._archive_q.close()

    async def _follow(self) -> None:
        while True:
            ev = await self.rpc.events.get()
            if ev.kind == "connected":
                try:
                    client = self.rpc.client
                    if client is not None:
                        await client.refresh()
                    self.genesis = from_hex(await self.rpc.call("chain_getBlockHash", 0), "g", 32)
                    self.chain_name = str(await self.rpc.call("system_chain"))
                    self._metrics = {m["id"]: m for m in await self.rpc.call("twin_metrics")}
                    self.connected.set()
                    h = await self.rpc.call("chain_getFinalizedHead")
                    hdr = header_from_json(await self.rpc.call("chain_getHeader", h))
                    self._new_head(hdr.number, h)
                except (NodeUnavailable, RpcError, ClientError) as exc:
                    log.warning("node connected but not readable yet: %s", exc)
            elif ev.kind == "finalizedHead":
                try:
                    hdr = header_from_json(ev.data)
                except (ValueError, KeyError, TypeError):
                    continue
                self._new_head(hdr.number, to_hex(hdr.hash))
            elif ev.kind == "disconnected":
                log.warning("node connection lost: %s", ev.data)

    def _new_head(self, number: int, h: str) -> None:
        if self.head is not None and number <= self.head.number:
            return
        self.head = Head(number, h, int(time.time() * 1000))
        self._cache = {k: v for k, v in self._cache.items() if v[0] == h}
        self.hub.publish(self.head)

    # -- plain reads at the finalized head (cached per head)
    async def call(self, method: str, *params: Any) -> Any:
        return await self.rpc.call(method, *params)

    async def at_head(self, method: str, *params: Any) -> Any:
        """``method(*params, at=finalized head)``, cached until the next finalized head."""
        h = self.head.hash if self.head is not None else None
        key = (method, *params)
        got = self._cache.get(key)
        if got is not None and got[0] == h:
            return got[1]
        args = list(params)
        at = AT_INDEX.get(method)
        if h is not None and at is not None:
            args += [None] * (at - len(args)) + [h]
        value = await self.rpc.call(method, *args)
        if h is not None:
            self._cache[key] = (h, value)
        return value

    @property
    def metrics(self) -> dict[int, dict[str, Any]]:
        return self._metrics

    def metric_id(self, name_or_id: str) -> int:
        for mid, m in self._metrics.items():
            if str(mid) == name_or_id or m.get("name") == name_or_id:
                return mid
        raise NotFound(f"unknown metric {name_or_id!r}")

    async def twin_count(self) -> int:
        # Twins are numbered from 0; twin_equipment answers None past the last one.
        fac = await self.at_head("twin_facilities")
        ids: list[int] = []
        for f in fac:
            ids += [int(t) for t in f.get("twins", []) or []]
        return max(ids) + 1 if ids else 0

    async def twins(self) -> list[dict[str, Any]]:
        out = []
        tid = 0
        while True:
            t = await self.at_head("twin_equipment", tid)
            if t is None:
                break
            out.append(t)
            tid += 1
        return out

    # -- rights
    async def may_read(self, twin: int, account: bytes, metric: int | None = None) -> bool:
        """Whether the chain lets ``account`` read the twin's raw readings (of ``metric``, or
        every metric) at the finalized block: ``twin_mayRead`` when the node serves it, else
        the same rule from the finalized twin and facility records (owner, an unexpired
        READ_TELEMETRY right, the auditor of the facility's unexpired verification); a
        disclosure grant of one window is left to the archive's own check."""
        if self._may_read_rpc is not False:
            try:
                return bool(await self.at_head("twin_mayRead", twin, metric, to_hex(account)))
            except RpcError as exc:
                if not is_method_not_found(exc):
                    raise
                self._may_read_rpc = False
        t = await self.at_head("twin_equipment", twin)
        if t is None:
            return False
        who = to_hex(account)
        if t.get("owner") == who:
            return True
        for g in t.get("access", []):
            if (
                g.get("account") == who
                and not g.get("expired")
                and g.get("rights", 0) & READ_TELEMETRY
            ):
                return True
        fid = t.get("facility")
        if fid is None:
            return False
        f = await self.at_head("twin_facility", fid)
        v = None if f is None else f.get("verification")
        now = None if f is None else f.get("now")
        return bool(
            v
            and v.get("auditor") == who
            and now is not None
            and int(v.get("expires", 0)) > int(now)
            and any(account)
        )

    async def public_metrics(self, twin: int) -> set[int]:
        return set((await self.at_head("twin_disclosure", twin))["public"])

    # -- readings
    def _archive_query(self) -> Any:
        if self._archive_q is None:
            from twinchain.archive.query import ArchiveQuery

            self._archive_q = ArchiveQuery(self.archive_dir, threads=1)  # type: ignore[arg-type]
        return self._archive_q

    async def raw_series(
        self, twin: int, metric: int, lo: int, hi: int, *, api_key: str | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
        """Times (ms) and fixed-point values of the twin's raw readings in ``[lo, hi]`` and
        where they came from. The caller has checked the right; ``api_key``: read with the
        user's own API key (the archive checks it again)."""
        if self.archive_dir is not None and api_key is None:
            q = self._archive_query()

            def read() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
                q.refresh()
                tbl = q.sql(
                    "SELECT ts_ms, value FROM readings WHERE twin = ? AND metric = ? "
                    "AND ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
                    params=[twin, metric, lo, hi],
                ).fetchnumpy()
                return (
                    np.asarray(tbl["ts_ms"], dtype=np.float64),
                    np.asarray(tbl["value"], dtype=np.float64),
                )

            t, v = await asyncio.to_thread(read)
            return t, v, "archive files"
        rc = self.archive_rpc or self.rpc
        client = rc.client
        if client is None:
            raise NodeUnavailable("not connected to the archive node")
        try:
            client.info  # noqa: B018
        except ClientError:
            await client.refresh()
        key = None if api_key is not None else self.reader_key
        ak = api_key if api_key is not None else self.reader_api_key
        if key is None and ak is None:
            raise Forbidden("this dashboard has no identity to read the archive with")
        try:
            found = await client.readings(twin, metric, lo, hi, key=key, api_key=ak)
        except RpcError as exc:
            if exc.code in (5001, 5003):
                raise Forbidden(f"the archive refused: {exc.message}") from None
            raise
        found = found[-MAX_RPC_READINGS:]
        t = np.fromiter((r.timestamp for r in found), dtype=np.float64, count=len(found))
        v = np.fromiter((r.value for r in found), dtype=np.float64, count=len(found))
        return t, v, "archive over RPC, every reading proof-checked"

    async def document(self, twin: int, digest: bytes, *, api_key: str | None = None) -> bytes:
        """A document of the twin by hash: from the archive's files when the dashboard runs
        beside it (re-hashed on read), else over RPC with the user's API key or the
        dashboard's reader identity (the archive checks the right and the client the hash).
        The caller has checked the right."""
        if self.archive_dir is not None and api_key is None:
            from twinchain.archive.documents import DocumentError, DocumentStore

            store = DocumentStore(self.archive_dir / "documents")
            try:
                got = await asyncio.to_thread(store.get, twin, digest)
            except DocumentError as exc:
                raise NotFound(str(exc)) from None
            if got is None:
                raise NotFound(f"the archive holds no document 0x{digest.hex()} of twin {twin}")
            return got
        if api_key is None and self.reader_key is None and self.reader_api_key is None:
            raise Forbidden("this dashboard has no identity to read the archive with")
        rc = self.archive_rpc or self.rpc
        client = rc.client
        if client is None:
            raise NodeUnavailable("not connected to the archive node")
        try:
            client.info  # noqa: B018
        except ClientError:
            await client.refresh()
        key = None if api_key is not None else self.reader_key
        ak = api_key if api_key is not None else self.reader_api_key
        try:
            return await client.document(twin, digest, key=key, api_key=ak)
        except RpcError as exc:
            if exc.code in (5001, 5003):
                raise Forbidden(f"the archive refused: {exc.message}") from None
            if exc.code == 5005:
                raise NotFound(exc.message) from None
            raise


__all__ = ["ChainView", "Forbidden", "Head", "Hub", "NotFound"]
