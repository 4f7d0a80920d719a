"""Archiving: a final batch goes to the facility archive, and leaves the spool once the
archive holds it.

The chain keeps only each batch's commitment; the readings themselves go to the archive of
the facility that owns the twin, hosted by the node the gateway talks to. The *archiver*
delivers every batch whose commitment is final with ``archive_deliver`` (the whole signed
batch, a request signed with the gateway key: ``protocol.access``), in requests of at most
``archive_max_bytes``, and acts on the answer per batch:

* ``archived``: the archive checked it against the finalized commitment and holds it
  durably: it leaves the spool;
* ``staged``: the archive keeps it but has not checked it yet (its view of the chain is
  behind ours): delivered again after the next finalized block or ``archive_retry_s``;
* ``refused``: it will never take it (its readings do not match the commitment, another
  facility's device...): logged, counted by reason in the status, and kept in the spool,
  out of the way, for the operator (``twinchain gateway refused``: list, export, retry).

Delivery is idempotent on (device, seq), so after a crash of the gateway or the node what is
still in the spool is simply delivered again: every batch lands in the archive exactly once.

A facility may keep its archive on more than one machine: the gateway's
``archive_replicas`` are further nodes (non-validators, following the chain) run with the
same ``--archive-facility``. A batch the node archived is delivered to each of them as well,
and leaves the spool only once every one holds it; a replica that is down or behind keeps
the batch in the spool (it counts against the high-water mark), so losing one machine loses
no raw readings.
An archive that cannot be reached (a node without ``--archive-facility``, a refused
signature) is retried with back-off, said in the log and the status; meanwhile its batches
count against the spool's high-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from twinchain.client import AsyncClient, NodeUnavailable
from twinchain.gateway.spool import BatchRow
from twinchain.gateway.state import GatewayState, now_ms
from twinchain.protocol.access import sign_request
from twinchain.protocol.jsonrpc import RpcError, to_hex
from twinchain.protocol.telemetry import MAX_BATCHES

log = logging.getLogger("twinchain.gateway")

METHOD = "archive_deliver"
ERROR_LOG_EVERY_S = 30.0


class Archiver:
    def __init__(self, state: GatewayState, on_space: Callable[[], None] = lambda: None) -> None:
        self.state = state
        self.b = state.b
        self.replicas = list(state.cfg.archive_replicas)
        self._replica_clients: dict[str, AsyncClient | None] = dict.fromkeys(self.replicas)
        # Replica URL -> ids of the spool's batches it answered "archived" for.
        self._replicated: dict[str, set[int]] = {url: set() for url in self.replicas}
        self.on_space = on_space  # the backlog shrank: the intake may let the sources go on
        self._backoff = 0.0  # seconds to wait after a failed delivery (0: none failed)
        self._error_logged = -1e9
        # Batch id -> when the archive answered "staged": not sent again (whole readings)
        # before archive_retry_s.
        self._staged_at: dict[int, float] = {}

    async def run(self, rpc: AsyncClient) -> None:
        """The archiver task, for one connection."""
        s = self.state
        s.archive_ready.set()  # what a previous connection or run left
        try:
            await self._loop(rpc)
        finally:
            for url, client in self._replica_clients.items():
                if client is not None:
                    self._replica_clients[url] = None
                    with contextlib.suppress(Exception):
                        await client.close()

    async def _loop(self, rpc: AsyncClient) -> None:
        s = self.state
        while True:
            if self._backoff:  # after a failure, wait it out even if batches keep coming
                await asyncio.sleep(self._backoff)
            else:
                wait = self.b.archive_retry_s if s.to_archive else None
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
                    # arrives as the event is set, and the task would never end.
                    async with asyncio.timeout(wait):
                        await s.archive_ready.wait()
            s.archive_ready.clear()
            if s.to_archive:
                await self.deliver_due(rpc)

    def _requests(self) -> list[list[BatchRow]]:
        """The batches waiting, oldest first, in requests of at most ``archive_max_bytes`` and
        MAX_BATCHES batches (the node's limits per request)."""
        out: list[list[BatchRow]] = []
        cur: list[BatchRow] = []
        size = 0
        soon = time.monotonic() - self.b.archive_retry_s
        for b in sorted(self.state.to_archive.values(), key=lambda r: r.id):
            if self._staged_at.get(b.id, -1e9) > soon:
                continue
            if cur and (size + len(b.body) > self.b.archive_max_bytes or len(cur) >= MAX_BATCHES):
                out.append(cur)
                cur, size = [], 0
            cur.append(b)
            size += len(b.body)
        if cur:
            out.append(cur)
        return out

    async def deliver_due(self, rpc: AsyncClient) -> None:
        """Deliver every final batch not archived yet (False on a failure)."""
        for rows in self._requests():
            if not await self.deliver(rpc, rows):
                return

    async def _ask(
        self, rpc: AsyncClient, rows: list[BatchRow], where: str
    ) -> dict[tuple[bytes, int], tuple[str, str]] | None:
        """One ``archive_deliver`` request to one archive node: (status, reason) per batch
        answered; None if it failed (said in the status and the log)."""
        s = self.state
        genesis = s.chain.genesis
        assert genesis is not None
        batches = [to_hex(b.body) for b in rows]
        # Signed over the params by name, as the node checks them (client.plans.deliver's
        # form; the gateway sends the bytes it holds rather than decoding every batch).
        auth = sign_request(s.keypair, genesis, METHOD, {"batches": batches})
        s.stats.archive_attempts += 1
        try:
            answers = await rpc.call(METHOD, batches, auth)
        except NodeUnavailable as exc:
            if where != "the node":
                self._failed(f"{where}: {exc}")
            return None  # the node: delivered again after the reconnect
        except RpcError as exc:
            detail = f" ({exc.data})" if exc.data else ""
            self._failed(f"{where}: {exc.code}: {exc.message}{detail}")
            return None
        if not isinstance(answers, list):
            self._failed(f"{where}: {METHOD} answered {str(answers)[:80]!r}, not a list")
            return None
        out: dict[tuple[bytes, int], tuple[str, str]] = {}
        for a in answers:
            key = _key(a)
            if key is not None:
                out[key] = (str(a.get("status")), str(a.get("reason") or "refused"))
        return out

    async def _replica(self, url: str) -> AsyncClient | None:
        """The connection to one replica, opened on first use and again after a failure."""
        client = self._replica_clients.get(url)
        if client is not None and not client.closed.is_set():
            return client
        try:
            client = await AsyncClient(url, ca_file=self.state.cfg.ca_file).connect()
        except (NodeUnavailable, OSError) as exc:
            self._failed(f"replica {url}: {exc}")
            return None
        self._replica_clients[url] = client
        return client

    async def deliver(self, rpc: AsyncClient, rows: list[BatchRow]) -> bool:
        """Deliver ``rows`` to the node's archive, then what it archived to every replica;
        act on the answers (False: the node's request failed)."""
        s = self.state
        assert s.spool is not None
        answers = await self._ask(rpc, rows, "the node")
        if answers is None:
            return False
        replica_failed = False
        for url in self.replicas:
            done = self._replicated[url]
            todo = [
                b for b in rows
                if answers.get((b.device, b.seq), ("",))[0] == "archived" and b.id not in done
            ]  # fmt: skip
            if not todo:
                continue
            client = await self._replica(url)
            got = None if client is None else await self._ask(client, todo, f"replica {url}")
            replica_failed |= got is None
            if got is None and client is not None:
                self._replica_clients[url] = None
                with contextlib.suppress(Exception):
                    await client.close()
            for b in todo:
                status, reason = (got or {}).get((b.device, b.seq), ("staged", ""))
                if status == "archived":
                    done.add(b.id)
                elif status == "refused":
                    answers[(b.device, b.seq)] = ("refused", f"replica {url}: {reason}")
                else:  # not there yet: the batch waits for every copy
                    answers[(b.device, b.seq)] = ("staged", "")
        archived: list[BatchRow] = []
        refused: list[tuple[BatchRow, str]] = []
        for b in rows:
            status, reason = answers.get((b.device, b.seq), ("", ""))
            if status == "archived":
                archived.append(b)
            elif status == "refused":
                refused.append((b, reason))
            elif (b.device, b.seq) in answers:  # staged: kept, delivered again later
                self._staged_at[b.id] = time.monotonic()
        if not replica_failed:
            self._ok()
        if archived:
            await s.db(s.spool.archived, [b.id for b in archived])
        if refused:
            await s.db(s.spool.refuse, [(b.id, r) for b, r in refused])
        t = now_ms()
        stats = s.stats
        for done in self._replicated.values():
            done.difference_update(b.id for b in archived)
            done.difference_update(b.id for b, _ in refused)
        for b in archived:
            self._staged_at.pop(b.id, None)
            s.to_archive.pop(b.id, None)
            s.archive_n -= b.n
            stats.batches_archived += 1
            stats.readings_archived += b.n
            stats.observe_latency(t - b.final_ms, b.n, stats.archive_latency)
        for b, reason in refused:
            self._staged_at.pop(b.id, None)
            s.to_archive.pop(b.id, None)
            s.archive_n -= b.n
            s.refused_n += 1
            stats.archive_refused[reason] = stats.archive_refused.get(reason, 0) + 1
            log.error(
                "the archive refused batch %d of device 0x%s (%d readings): %s; kept in the "
                "spool for the operator (twinchain gateway refused)",
                b.seq,
                b.device.hex()[:16],
                b.n,
                reason,
            )
        if archived or refused:
            self.on_space()
        return True

    def _failed(self, why: str) -> None:
        s = self.state
        s.archive_error = why[:200]
        self._backoff = min(max(self._backoff * 2, 1.0), 30.0)
        t = time.monotonic()
        if t - self._error_logged >= ERROR_LOG_EVERY_S:
            self._error_logged = t
            log.error(
                "the facility archive did not take %d final batches (%s): they stay in the "
                "spool and are delivered again (is the node run with --archive-facility?)",
                len(s.to_archive),
                s.archive_error,
            )

    def _ok(self) -> None:
        if self.state.archive_error:
            log.info("the facility archive answers again")
        self.state.archive_error = ""
        self._backoff = 0.0


def _key(answer: Any) -> tuple[bytes, int] | None:
    """(device, seq) of one answer, None if malformed."""
    try:
        return bytes.fromhex(str(answer["device"]).removeprefix("0x")), int(answer["seq"])
    except (KeyError, TypeError, ValueError):
        return None


__all__ = ["Archiver"]
