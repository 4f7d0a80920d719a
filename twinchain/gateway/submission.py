"""Submission: signed batches' commitments into extrinsics, and extrinsics to the node until
they settle (the readings themselves never go to the chain: see :mod:`.archiving`).

* the *packer* puts up to ``max_batches_per_xt`` commitments into a ``Telemetry.submit``
  extrinsic signed by the gateway key with the next nonce (immortal era), stores its exact
  bytes, then submits them, keeping a window of extrinsics unsettled (at most
  ``max_in_flight``; halved when one takes longer than ``target_latency_s`` to finalize,
  grown while they are fast: the chain is not fed faster than it finalizes);
* the *resubmitter* sends an unsettled extrinsic again after ``resubmit_after_s``, then after
  twice as long each time up to ``resubmit_max_s`` (with jitter), except one whose nonce the
  best chain has already used: that one is in a block that is not final yet, and sending it
  again only earns ``Stale``; finality settles it (it is sent again only if a reorg frees its
  nonce).

The stored bytes are what is sent, every time: the chain refuses a used nonce and a used
sequence number, so nothing is applied twice. The one exception is a runtime upgrade: the
signature covers the spec version, so from the block before the upgrade's height on, the
pool refuses what was signed for the old one (``Invalid:BadProof``). Those extrinsics whose
nonce the best chain has not used are signed again for the new version (:meth:`resign_stale`,
told by :mod:`.versions`) with the same nonce and the same batches, and the new bytes replace
the old in the spool before they are sent: two signings of one nonce can never both apply.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from twinchain.client import AsyncClient, NodeUnavailable
from twinchain.gateway.encoding import XtBuilder, signed_for
from twinchain.gateway.finality import FinalityWatch
from twinchain.gateway.spool import BatchRow, XtRow
from twinchain.gateway.state import GatewayState, InFlight, now_ms
from twinchain.primitives.types import extrinsic_hash
from twinchain.protocol.jsonrpc import RpcError, to_hex

log = logging.getLogger("twinchain.gateway")


class Submitter:
    def __init__(self, state: GatewayState, finality: FinalityWatch) -> None:
        self.state = state
        self.b = state.b
        self.finality = finality
        self.window = float(min(4, self.b.max_in_flight))  # extrinsics in flight, adaptive
        self._window_cut_at = -1e9
        self._slow_start = True
        self.next_nonce = 0
        self._xt_builder: XtBuilder | None = None
        self._submits: set[asyncio.Task[bool]] = set()
        # Called on an Invalid:BadProof refusal: the runtime version may have changed.
        self.on_bad_proof: Callable[[], None] | None = None

    # ------------------------------------------------------------------ packing
    def _make_xt(self, batches: list[BatchRow], nonce: int) -> XtRow:
        s = self.state
        chain = s.chain
        assert chain.submit_index is not None and chain.genesis is not None
        xb = self._xt_builder
        if xb is None or (xb.genesis, xb.spec_version, xb.call_index) != (
            chain.genesis,
            chain.spec_version,
            chain.submit_index,
        ):
            xb = self._xt_builder = XtBuilder(
                s.keypair, chain.genesis, chain.spec_version, chain.submit_index
            )
        raw = xb.build([b.commit for b in batches], nonce)
        return XtRow(
            nonce, extrinsic_hash(raw), raw, now_ms(), len(batches), sum(b.n for b in batches)
        )

    def _group(self, rows: list[BatchRow], slots: int) -> list[list[BatchRow]]:
        """Consecutive batches into at most ``slots`` extrinsics within the size limits."""
        usable = {d.key for d in self.state.devices.values() if d.usable}
        groups: list[list[BatchRow]] = []
        cur: list[BatchRow] = []
        n = 0
        for r in rows:
            if r.device not in usable:
                continue  # held until the chain says the device is ours again
            if cur and (
                n + r.n > self.b.max_readings_per_xt or len(cur) >= self.b.max_batches_per_xt
            ):
                groups.append(cur)
                if len(groups) >= slots:
                    return groups
                cur, n = [], 0
            cur.append(r)
            n += r.n
        if cur:
            groups.append(cur)
        return groups[:slots]

    def adapt_window(self, latencies: list[float]) -> None:
        """Congestion control (AIMD, as TCP does): the extrinsics in flight may grow by one
        per window of settled ones while they settle within ``target_latency_s``, and halve
        (at most once per target) when one takes longer. A chain fed beyond what its
        validators can import and finalize in time forks and slows down; the readings wait
        better in the spool than in the pool."""
        if not latencies:
            return
        now = time.monotonic()
        target = self.b.target_latency_s
        if max(latencies) > target:
            if now - self._window_cut_at >= target:
                self._window_cut_at = now
                self._slow_start = False
                self.window = max(1.0, self.window / 2)
        else:
            # Slow start until the first cut: the window doubles per round trip (a round
            # trip is a few seconds here: inclusion, then finality), instead of taking a
            # minute of linear growth to carry the offered load.
            grow = len(latencies) if self._slow_start else len(latencies) / self.window
            self.window = min(float(self.b.max_in_flight), self.window + grow)

    def _sign_and_store(self, groups: list[list[BatchRow]], first: int) -> tuple[list[XtRow], int]:
        """Sign the extrinsics and store them, in one transaction (in the spool's thread);
        the spec version they are signed for."""
        spool = self.state.spool
        assert spool is not None
        version = self.state.chain.spec_version
        xts = [self._make_xt(g, first + i) for i, g in enumerate(groups)]
        spool.store_xts([(x, [b.id for b in g]) for x, g in zip(xts, groups, strict=True)])
        return xts, version

    async def run_packer(self, rpc: AsyncClient) -> None:
        """The packer task, for one connection."""
        s = self.state
        assert s.spool is not None
        spool = s.spool
        while True:
            slots = int(self.window) - len(s.inflight)
            if slots <= 0 or s.unpacked_n == 0:
                s.pack_ready.clear()
                await s.pack_ready.wait()
                continue
            rows = await s.db(spool.unpacked, slots * self.b.max_batches_per_xt)
            groups = self._group(rows, slots)
            if not groups:
                s.pack_ready.clear()
                await s.pack_ready.wait()
                continue
            # The spool's thread finishes the job even if this task is cancelled meanwhile (the
            # connection dropped): what it stored is put in flight when it is done, whatever
            # becomes of this task, or its nonces would be handed out again (a UNIQUE error
            # on every reconnect) and its batches wait for a restart.
            first = self.next_nonce
            job = asyncio.ensure_future(s.db(self._sign_and_store, groups, first))
            job.add_done_callback(functools.partial(self._stored, groups, first))
            xts, _ = await asyncio.shield(job)
            for f in self._in_flight(xts):
                # Not awaited: the requests leave in nonce order on the one connection, and
                # the next extrinsics are packed while the node validates these.
                t = asyncio.create_task(self.submit(rpc, f))
                self._submits.add(t)
                t.add_done_callback(self._submits.discard)

    def _stored(self, groups: list[list[BatchRow]], first: int, job: asyncio.Future[Any]) -> None:
        """The packer's extrinsics are in the spool: in flight in memory too (run by the loop
        as soon as the spool's thread is done, before the packer resumes)."""
        if job.cancelled() or job.exception() is not None:
            return
        s = self.state
        xts, version = job.result()
        self.next_nonce = max(self.next_nonce, first + len(xts))
        for xt, g in zip(xts, groups, strict=True):
            for b in g:
                b.xt = xt.nonce
            s.inflight[xt.nonce] = InFlight(xt, g, spec_version=version)
            s.unpacked_n -= xt.readings

    def _in_flight(self, xts: list[XtRow]) -> list[InFlight]:
        inflight = self.state.inflight
        return [inflight[x.nonce] for x in xts if x.nonce in inflight]

    # ------------------------------------------------------------------ sending
    def backoff(self, tries: int) -> float:
        """Seconds until an extrinsic sent ``tries`` times is sent again: doubling from
        ``resubmit_after_s`` up to ``resubmit_max_s``, less up to 20 % jitter (gateways that
        saw the same stall do not all come back in the same second)."""
        b = self.b
        return min(b.resubmit_max_s, b.resubmit_after_s * 2 ** min(tries - 1, 30)) * (
            1 - 0.2 * random.random()
        )

    async def submit(self, rpc: AsyncClient, f: InFlight) -> bool:
        stats = self.state.stats
        f.submitted_at = time.monotonic()
        f.tries += 1
        f.due_at = f.submitted_at + self.backoff(f.tries)
        stats.submit_attempts += 1
        try:
            await rpc.call("author_submitExtrinsic", to_hex(f.row.raw))
            stats.xts_submitted += 1
            return True
        except NodeUnavailable:
            return False  # resubmitted after the reconnect
        except RpcError as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            kind = str(data.get("code") or exc.message)[:40]
            reason = f"{kind}: {data.get('detail', '')}"
            stats.submit_errors[kind] = stats.submit_errors.get(kind, 0) + 1
            if kind == "Invalid:Stale":
                # Its nonce is used on the best chain, most likely by this very extrinsic in
                # a block that is not final yet: sending it again cannot help.
                if not f.on_best:
                    log.info(
                        "extrinsic #%d: nonce already used on the best chain (%s): "
                        "not sent again, finality settles it",
                        f.row.nonce,
                        reason,
                    )
                self.hold_on_best(f)
            elif kind == "Invalid:BadProof":
                # Signed for a spec version the next block does not run (an upgrade): the
                # version watch re-reads it and signs what needs it again, saying so once.
                if self.on_bad_proof is not None:
                    self.on_bad_proof()
            # Already in the pool or on chain: the settler will see it. Anything else is
            # retried with the same bytes later, backing off.
            elif exc.code not in (1013, 1012):
                log.info(
                    "extrinsic #%d not accepted now (%s): will retry in %.0f s",
                    f.row.nonce,
                    reason,
                    f.due_at - f.submitted_at,
                )
            return False

    def hold_on_best(self, f: InFlight) -> None:
        """Wait for finality instead of resending; look again later, in case a reorg drops
        the block that holds it (then its nonce is free again and it is sent again)."""
        f.on_best = True
        f.due_at = time.monotonic() + self.b.resubmit_after_s

    async def best_nonce(self, rpc: AsyncClient) -> int:
        """The gateway account's nonce in the best block's state (no pool, unlike
        ``system_accountNextIndex``)."""
        chain = self.state.chain
        me = self.state.keypair.public
        acct = await rpc.call("state_getStorage", chain.key("System", "Account", me))
        info = chain.decode("System", "Account", acct)
        return 0 if info is None else int(info.nonce)

    async def resubmit_due(self, rpc: AsyncClient, why: str, *, everything: bool = False) -> None:
        """Send again the unsettled extrinsics whose back-off ran out (``everything``: all
        of them), except those the best chain already holds."""
        inflight = self.state.inflight
        if not inflight:
            return
        now = time.monotonic()
        due = [f for _, f in sorted(inflight.items()) if everything or f.due_at <= now]
        if not due:
            return
        used = await self.best_nonce(rpc)
        send: list[InFlight] = []
        held = 0
        for f in due:
            if f.row.nonce < used:
                held += not f.on_best
                self.hold_on_best(f)
                continue
            if f.on_best:
                log.warning(
                    "extrinsic #%d is no longer on the best chain (a reorg): sending it again",
                    f.row.nonce,
                )
                f.on_best = False
            send.append(f)
        if held:
            log.info(
                "%d extrinsics are in blocks not final yet (nonces below %d used on the best "
                "chain): not sent again, finality settles them",
                held,
                used,
            )
        if not send:
            return
        log.info(
            "%s: submitting %d of %d unsettled extrinsics again",
            why,
            len(send),
            len(inflight),
        )
        for f in send:
            if inflight.get(f.row.nonce) is f:
                await self.submit(rpc, f)

    def signed_for(self, f: InFlight, version: int) -> bool:
        """Whether ``f``'s bytes are signed for ``version`` (checked against the signature
        once when not known: an extrinsic reloaded from the spool)."""
        if f.spec_version is None:
            genesis = self.state.chain.genesis
            assert genesis is not None
            f.spec_version = version if signed_for(f.row.raw, genesis, version) else 0
        return f.spec_version == version  # 0: signed for a version not known here

    def _resign(self, stale: list[InFlight]) -> list[XtRow]:
        """New bytes for ``stale`` (same nonces, same batches, the current spec version),
        stored in place of the old in one durable transaction (in the spool's thread)."""
        spool = self.state.spool
        assert spool is not None
        rows = [self._make_xt(f.batches, f.row.nonce) for f in stale]
        for old, new in zip(stale, rows, strict=True):
            new.created_ms = old.row.created_ms
        spool.replace_xts(rows)
        return rows

    async def resign_stale(self, rpc: AsyncClient, *, send: bool = True) -> list[InFlight]:
        """Sign again, for the chain's current spec version, the unsettled extrinsics signed
        for another one whose nonce the best chain has not used (those it has are in a block:
        finality settles them), store them and (``send``) send them at once, in nonce order.
        The extrinsics signed again."""
        s = self.state
        version = s.chain.spec_version
        other = [f for _, f in sorted(s.inflight.items()) if not self.signed_for(f, version)]
        if not other:
            return []
        used = await self.best_nonce(rpc)
        stale = [f for f in other if f.row.nonce >= used]
        if not stale:
            return []
        rows = await s.db(self._resign, stale)
        done: list[InFlight] = []
        for f, row in zip(stale, rows, strict=True):
            if s.inflight.get(f.row.nonce) is not f:
                continue  # settled meanwhile (its stored row is gone: nothing was revived)
            f.row, f.spec_version, f.on_best, f.tries = row, version, False, 0
            done.append(f)
        s.stats.xts_resigned += len(done)
        for f in done if send else ():
            if s.inflight.get(f.row.nonce) is f:
                await self.submit(rpc, f)
        return done

    async def run_resubmitter(self, rpc: AsyncClient) -> None:
        """The resubmitter task, for one connection (it also keeps the lag status fresh)."""
        while True:
            await asyncio.sleep(1.0)
            self.finality.check()
            now = time.monotonic()
            if any(f.due_at <= now for f in self.state.inflight.values()):
                await self.resubmit_due(rpc, "extrinsics not final in time")


__all__ = ["Submitter"]
