"""The gateway: accept readings from sources, spool them, batch and sign them per device,
submit their commitments in telemetry extrinsics, deliver the batches themselves to the
facility archive, and forget them once the commitment is final and the archive holds them.

One asyncio loop (uvloop when installed), SQLite work in one worker thread. The
:class:`Gateway` owns the life cycle and the connection to the node, and runs the stages,
each in its own module over the state they share (:mod:`.state`):

* :mod:`.intake`: the sources' readings checked, made durable (group commit) and only then
  acknowledged; back-pressure;
* :mod:`.cutting`: per-device batches within one of the chain's telemetry windows, signed
  with the device key and a fixed sequence number, summarizing the metrics the twin's
  disclosure policy makes public (:mod:`.disclosure`);
* :mod:`.submission`: the packer (extrinsics of commitments signed by the gateway key, an
  adaptive window in flight) and the resubmitter (back-off, and no resending of what the
  best chain holds);
* :mod:`.settlement`: extrinsics settled from finalized state, and their batches found
  (final), given back (signed again if the policy changed) or counted lost;
* :mod:`.archiving`: final batches delivered to the facility archive until it holds them;
* :mod:`.finality`: how far finality is behind the best block (log and status);
* :mod:`.versions`: the runtime spec version signed for, across runtime upgrades (what was
  signed for the old one and is not in a block yet is signed again, same nonce and batches).

Exactly once: a batch's sequence number is fixed when it is signed, and after any restart the
stored extrinsic bytes are sent again unchanged: the chain refuses a used nonce and a used
sequence number, so nothing is applied twice; the archive takes a batch once per (device,
seq) however often it is delivered; and nothing leaves the spool before a finalized block
holds its commitment and the archive has answered "archived" for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from twinchain.client import AsyncClient, NodeUnavailable
from twinchain.gateway.archiving import Archiver
from twinchain.gateway.config import GatewayConfig
from twinchain.gateway.cutting import Cutter
from twinchain.gateway.disclosure import Disclosure
from twinchain.gateway.finality import FinalityWatch
from twinchain.gateway.intake import Intake
from twinchain.gateway.payloads import Metrics
from twinchain.gateway.settlement import Settler
from twinchain.gateway.spool import Spool, SpoolError, unpack
from twinchain.gateway.state import LATENCY_BUCKET_MS, GatewayState, InFlight
from twinchain.gateway.submission import Submitter
from twinchain.gateway.versions import VersionWatch
from twinchain.protocol.jsonrpc import RpcError, to_hex

log = logging.getLogger("twinchain.gateway")


class Gateway:
    def __init__(self, cfg: GatewayConfig, *, on_settled: Callable[[], None] | None = None):
        self.cfg = cfg
        self.state = state = GatewayState(cfg)
        self.intake = Intake(state)
        self.cutter = Cutter(state)
        self.finality = FinalityWatch(state)
        self.submitter = Submitter(state, self.finality)
        self.versions = VersionWatch(state, self.submitter)
        self.finality.on_best = self.versions.on_best
        self.disclosure = Disclosure(state)
        self.archiver = Archiver(state, self.intake.update_space)
        self.settler = Settler(
            state,
            intake=self.intake,
            submitter=self.submitter,
            finality=self.finality,
            disclosure=self.disclosure,
            on_settled=on_settled,
        )
        self.rpc: AsyncClient | None = None
        self.node_error = ""
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------ life cycle
    async def open(self) -> None:
        """Open the spool and reload what a previous run left in it."""
        s = self.state
        try:
            s.spool = sp = await s.db(Spool, self.cfg.spool)
        except SpoolError as exc:
            raise SystemExit(str(exc)) from None
        for (key, metric), ts in (await s.db(sp.load_last_ts)).items():
            dev = s.by_key.get(key)
            if dev is not None:
                dev.last_ts[metric] = ts
        seqs = await s.db(sp.seqs)
        for d in s.devices.values():
            d.next_seq = seqs.get(d.key, 0)
        for row in await s.db(sp.load_pending):
            d = s.by_key.get(row.device)
            if d is None:
                log.warning(
                    "spool holds readings of a device no longer configured: 0x%s", row.device.hex()
                )
                continue
            d.pending.append(row)
            d.pending_n += len(row.readings)
        s.chain.genesis = await s.db(sp.get_meta, "genesis")
        v = await s.db(sp.get_meta, "spec_version")
        s.chain.spec_version = int(v.decode()) if v else 0
        m = await s.db(sp.get_meta, "metrics")
        if m:
            s.metrics = Metrics({int(k): (n, sc) for k, (n, sc) in json.loads(m).items()})
        w = await s.db(sp.get_meta, "window_ms")
        s.chain.window_ms = int(w.decode()) if w else 0
        self.disclosure.load(await s.db(sp.get_meta, "policy"))
        for b in await s.db(sp.to_archive):
            s.to_archive[b.id] = b
            s.archive_n += b.n
        s.refused_n = await s.db(sp.refused_count)
        for xt in await s.db(sp.xts):
            s.inflight[xt.nonce] = InFlight(xt, await s.db(sp.xt_batches, xt.nonce))
        p, u, f, _ = await s.db(sp.batch_totals)
        s.unpacked_n = u
        lf = await s.db(sp.get_meta, "last_finalized")
        if lf:
            dev, seq, blk = unpack(lf)
            s.last_final = (bytes(dev), seq, blk)
        log.info(
            "spool %s: %d readings waiting, %d batched, %d in %d unsettled extrinsics, "
            "%d final for the archive, %d batches the archive refused",
            self.cfg.spool,
            p,
            u,
            f,
            len(s.inflight),
            s.archive_n,
            s.refused_n,
        )
        self.intake.update_space()

    async def run(self, sources: Sequence[Callable[[Gateway], Awaitable[None]]] = ()) -> None:
        """Run until :meth:`stop` (or a task fails)."""
        s = self.state
        if s.spool is None:
            await self.open()
        spawn = asyncio.create_task
        self._tasks = [
            spawn(self.intake.run(), name="committer"),
            spawn(self.cutter.run(), name="batcher"),
            spawn(self._node_loop(), name="node"),
        ] + [spawn(src(self), name=f"source-{i}") for i, src in enumerate(sources)]
        stop = spawn(self._stopping.wait())
        try:
            waiting = {*self._tasks, stop}
            while not stop.done():
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is not stop and not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                    if t.get_name().startswith("source-"):
                        log.info("%s has no more readings", t.get_name())  # the rest go on
        finally:
            stop.cancel()
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(BaseException):
                    await t
            # Readings accepted but not committed were never acknowledged: dropping them is
            # safe (the sources deliver them again); committing them now is better.
            with contextlib.suppress(Exception):
                await self.intake.commit_queued()
            if self.rpc is not None:
                await self.rpc.close()
            if s.spool is not None:
                await s.db(s.spool.close)
            s.close_db()

    def stop(self) -> None:
        self._stopping.set()

    # ------------------------------------------------------------------ node
    async def _node_loop(self) -> None:
        """Connect, run the per-connection stages (settler, head follower, packer,
        resubmitter) until the connection fails, and connect again, backing off."""
        s = self.state
        delay = 0.5
        while True:
            rpc = AsyncClient(self.cfg.node, ca_file=self.cfg.ca_file)
            try:
                await rpc.connect()
                self.rpc = rpc
                await self._on_connect(rpc)
                s.connected = True
                self.node_error = ""
                delay = 0.5
                log.info("connected to %s", self.cfg.node)
                heads = await rpc.subscribe("chain_subscribeFinalizedHeads")
                best = await rpc.subscribe("chain_subscribeNewHeads")
                # The node may have restarted with an empty pool: everything not on the best
                # chain is sent again now, whatever its back-off said.
                await self.submitter.resubmit_due(rpc, "reconnected", everything=True)
                tasks = [
                    asyncio.create_task(self.settler.run(rpc, heads)),
                    asyncio.create_task(self.finality.follow_best(best)),
                    asyncio.create_task(self.submitter.run_packer(rpc)),
                    asyncio.create_task(self.submitter.run_resubmitter(rpc)),
                    asyncio.create_task(self.archiver.run(rpc)),
                    asyncio.create_task(self.versions.run(rpc)),
                ]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for t in tasks:
                        t.cancel()
                    for t in tasks:
                        with contextlib.suppress(BaseException):
                            await t
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            except (NodeUnavailable, RpcError, OSError) as exc:
                self.node_error = str(exc)[:200]
            except Exception as exc:  # a node we do not understand: say why, keep spooling
                log.exception("talking to the node failed")
                self.node_error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                s.connected = False
                self.rpc = None
                await rpc.close()
            log.warning(
                "node %s unavailable (%s); retrying in %.1f s",
                self.cfg.node,
                self.node_error or "connection closed",
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _on_connect(self, rpc: AsyncClient) -> None:
        """Learn the chain (and refuse another chain than the spool's), its metrics, whether
        the gateway and its devices are registered, the next nonce and the runtime version
        to sign for."""
        s = self.state
        chain = s.chain
        assert s.spool is not None
        info = await rpc.refresh()
        genesis = info.genesis_hash
        if chain.genesis is not None and genesis != chain.genesis:
            raise SystemExit(
                f"the spool {self.cfg.spool} belongs to chain 0x{chain.genesis.hex()[:16]}…, "
                f"the node runs 0x{genesis.hex()[:16]}…: use another spool file"
            )
        chain.codec = rpc.codec
        probe = chain.codec.build_call("Telemetry", "submit", {"batches": []})
        chain.submit_index = (probe.pallet, probe.index)
        slot = await rpc.call("state_getStorage", chain.key("Authority", "SlotDuration"))
        chain.slot_ms = int(chain.decode("Authority", "SlotDuration", slot))
        window = await rpc.call("state_getStorage", chain.key("Telemetry", "WindowMs"))
        chain.window_ms = int(chain.decode("Telemetry", "WindowMs", window))
        await s.db(s.spool.set_meta, "window_ms", str(chain.window_ms).encode())
        await self.disclosure.refresh(rpc)
        metrics = await rpc.call("twin_metrics")
        s.metrics = Metrics({m["id"]: (m["name"], m["scale"]) for m in metrics})
        await s.db(s.spool.set_meta, "genesis", genesis)
        await s.db(
            s.spool.set_meta,
            "metrics",
            json.dumps({m: list(v) for m, v in s.metrics.by_id.items()}).encode(),
        )
        chain.genesis = genesis
        me = to_hex(s.keypair.public)
        roles = {r["role"] for r in await rpc.call("twin_roles", me)}
        if "Gateway" not in roles:
            log.error("the gateway key %s does not hold the Gateway role on chain", me)
        for d in s.devices.values():
            found = await rpc.call("twin_device", to_hex(d.key))
            problem = ""
            if found is None or not found["active"]:
                problem = "not bound to a twin on chain"
            elif found["twin"] != d.twin:
                problem = f"bound to twin {found['twin']} on chain, not {d.twin}"
            elif found["gateway"] not in (None, me):
                problem = f"pinned to another gateway {found['gateway']}"
            d.usable, d.problem = not problem, problem
            if problem:
                log.error("device %s: %s; its readings are refused", d.name, problem)
                continue
            if found["nextSeq"] > d.next_seq:
                d.next_seq = found["nextSeq"]
                await s.db(s.spool.set_seq, d.key, d.next_seq)
        chain_next = int(await rpc.call("system_accountNextIndex", me))
        top = max(s.inflight, default=-1)
        self.submitter.next_nonce = max(chain_next, top + 1)
        # The version the next block runs (kept in the spool): what the spool's unsettled
        # extrinsics were signed for before a restart across an upgrade is signed again.
        await self.versions.check(rpc, send=False)  # sent with the rest once connected

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        s, fin = self.state, self.finality
        stats = s.stats
        rin, rfin = stats.tick()
        pending = s.pending_readings()
        flying = s.flying_readings()
        lf = s.last_final
        stalled = fin.stalled_since
        return {
            "name": self.cfg.name,
            "pid": os.getpid(),
            "node": self.cfg.node,
            "connected": s.connected,
            "node_error": self.node_error,
            "gateway": to_hex(s.keypair.public),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "received": dict(stats.received),
            "rejected": dict(stats.rejected),
            "sources": json.loads(json.dumps(s.sources)),  # a snapshot
            "spooled": stats.spooled,
            "rate_in": round(rin, 1),
            "rate_final": round(rfin, 1),
            "spool_pending": pending,
            "spool_batched": s.unpacked_n,
            "spool_in_flight": flying,
            "backlog": s.backlog(),
            "backpressure": self.intake.backpressure,
            "backpressure_pauses": self.intake.pauses,
            "xts_in_flight": len(s.inflight),
            "xts_window": round(self.submitter.window, 1),
            "xts_submitted": stats.xts_submitted,
            "submit_attempts": stats.submit_attempts,
            "xts_on_best": sum(1 for x in s.inflight.values() if x.on_best),
            "submit_errors": dict(stats.submit_errors),
            "batches_signed": stats.batches_signed,
            "batches_final": stats.batches_final,
            "batches_requeued": stats.batches_requeued,
            "batches_lost": stats.batches_lost,
            "batches_resigned": stats.batches_resigned,
            "spec_version": s.chain.spec_version,
            "xts_resigned": stats.xts_resigned,
            "runtime_upgrades": [
                {"from": a, "to": b, "best_block": n} for a, b, n in self.versions.upgrades
            ],
            "readings_final": stats.readings_final,
            "archive_pending": s.archive_n,
            "archive_pending_batches": len(s.to_archive),
            "archive_lag_s": round(s.archive_lag_s(), 1),
            "archive_error": s.archive_error,
            "batches_archived": stats.batches_archived,
            "readings_archived": stats.readings_archived,
            "archive_refused": dict(stats.archive_refused),
            "archive_refused_kept": s.refused_n,
            "final_to_archived_p50_s": stats.percentile(0.5, stats.archive_latency),
            "final_to_archived_p99_s": stats.percentile(0.99, stats.archive_latency),
            "window_ms": s.chain.window_ms,
            "public_metrics": {str(t): sorted(p) for t, p in sorted(s.policy.items())},
            "finalized_block": fin.finalized_number,
            "best_block": fin.best_number,
            "finality_lag": fin.lag(),
            "finality_stalled_s": None if stalled is None else round(time.monotonic() - stalled),
            "finality": fin.note(),
            "last_final_batch": None
            if lf is None
            else {"device": to_hex(lf[0]), "seq": lf[1], "block": lf[2]},
            "latency_p50_s": stats.percentile(0.5),
            "latency_p99_s": stats.percentile(0.99),
            "latency_hist_ms": [LATENCY_BUCKET_MS, stats.latency],
            "submit_to_final_p50_s": stats.percentile(0.5, stats.chain_latency),
            "submit_to_final_p99_s": stats.percentile(0.99, stats.chain_latency),
            "submit_to_final_hist_ms": [LATENCY_BUCKET_MS, stats.chain_latency],
            "devices": {
                d.name: {
                    "next_seq": d.next_seq,
                    "pending": d.pending_n,
                    "usable": d.usable,
                    "problem": d.problem,
                }
                for d in s.devices.values()
            },
        }


__all__ = ["Gateway"]
