"""Settlement: a batch is final once a finalized block holds its commitment.

The *settler* follows the node's finalized heads: an extrinsic whose nonce is used in a
finalized block is settled by reading its first batch's record (in its device's
``Telemetry.BatchChunks``) at that block: there, all its batches are on chain (a call applies
whole); absent, the call failed, and each of its batches is either found, given back to the
packer (its sequence number is still free) or counted lost (a later one took the device past
it). A batch given back whose public summaries the twin's policy no longer allows (the call
failed with ``NotPublic``: the owner made a metric private meanwhile) is signed again with
the current policy under the same sequence number. A final batch waits in the spool for the
facility archive (:mod:`.archiving`); nothing leaves the spool before both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from twinchain.client import AsyncClient, Subscription
from twinchain.gateway.cutting import resign
from twinchain.gateway.disclosure import Disclosure
from twinchain.gateway.finality import FinalityWatch
from twinchain.gateway.intake import Intake
from twinchain.gateway.spool import BatchRow
from twinchain.gateway.state import GatewayState, InFlight, now_ms
from twinchain.gateway.submission import Submitter
from twinchain.primitives import codec
from twinchain.protocol.telemetry import BATCH_CHUNK, Commitment, chunk_record

log = logging.getLogger("twinchain.gateway")


class Settler:
    def __init__(
        self,
        state: GatewayState,
        *,
        intake: Intake,
        submitter: Submitter,
        finality: FinalityWatch,
        disclosure: Disclosure,
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.intake, self.submitter, self.finality = intake, submitter, finality
        self.disclosure = disclosure
        self.on_settled = on_settled

    async def run(self, rpc: AsyncClient, heads: Subscription[Any]) -> None:
        """The settler task, for one connection: ``heads`` are the finalized ones."""
        while True:
            head = await heads.latest()  # only the newest finalized head matters
            if head is None:
                return  # connection closed
            number = int(head["number"], 16)
            block = await rpc.call("chain_getBlockHash", number)
            if block is None:
                continue
            self.finality.finalized(number)
            if self.disclosure.due(number):
                await self.disclosure.refresh(rpc, number=number)
            await self.settle(rpc, block, number)
            self.finality.check()
            # Final batches the archive only staged are delivered again after a new block.
            if self.state.to_archive:
                self.state.archive_ready.set()

    async def settle(self, rpc: AsyncClient, block: str, number: int) -> None:
        s = self.state
        if not s.inflight:
            return
        assert s.spool is not None
        me = s.keypair.public
        acct = await rpc.call("state_getStorage", s.chain.key("System", "Account", me), block)
        info = s.chain.decode("System", "Account", acct)
        used = 0 if info is None else info.nonce
        due = [s.inflight[n] for n in sorted(s.inflight) if n < used]
        if not due:
            return
        firsts = await self._on_chain(rpc, block, [f.batches[0] for f in due])
        confirmed: list[BatchRow] = []
        requeue: list[BatchRow] = []
        lost: list[BatchRow] = []
        for f, found in zip(due, firsts, strict=True):
            if found:
                confirmed += f.batches
                continue
            # The call failed (or the nonce went to another extrinsic): batch by batch.
            await self._sort_failed(rpc, block, f, confirmed, requeue, lost)
        last = None
        if confirmed:
            b = confirmed[-1]
            last = (b.device, b.seq, number)
        if requeue:  # before they are given back: the packer must not take the old bytes
            await self._resign_refused(rpc, block, number, requeue)
        t = now_ms()
        await s.db(
            s.spool.settle,
            [b.id for b in confirmed],
            [b.id for b in requeue],
            [b.id for b in lost],
            [f.row.nonce for f in due],
            last,
            number,
            t,
        )

        waits = [time.monotonic() - f.submitted_at for f in due]
        # A wait through a stalled finality says nothing of what the chain can carry.
        fin = self.finality
        if fin.stalled_since is None and all(f.submitted_at >= fin.stall_ended for f in due):
            self.submitter.adapt_window(waits)
        stats = s.stats
        for w in waits:
            stats.observe_latency(int(w * 1000), 1, stats.chain_latency)
        for f in due:
            del s.inflight[f.row.nonce]
        for b in confirmed:
            for received, count in b.segs:
                stats.observe_latency(t - received, count)
            stats.readings_final += b.n
            b.xt, b.final, b.final_ms = None, number, t
            s.to_archive[b.id] = b
            s.archive_n += b.n
        stats.batches_final += len(confirmed)
        stats.batches_lost += len(lost)
        stats.batches_requeued += len(requeue)
        for b in requeue:
            b.xt = None
        s.unpacked_n += sum(b.n for b in requeue)
        if last is not None:
            s.last_final = last
        self.intake.update_space()
        s.pack_ready.set()
        if confirmed:
            s.archive_ready.set()
        if self.on_settled is not None:
            self.on_settled()

    async def _resign_refused(
        self, rpc: AsyncClient, block: str, number: int, batches: list[BatchRow]
    ) -> None:
        """Sign again, under their free sequence numbers, the batches given back whose
        public summaries the twin's policy at ``block`` no longer allows (NotPublic)."""
        s = self.state
        genesis = s.chain.genesis
        assert s.spool is not None and genesis is not None
        twin_of = {d.key: d for d in s.devices.values()}
        twins = {twin_of[b.device].twin for b in batches if b.device in twin_of}
        await self.disclosure.refresh(rpc, twins, at=block, number=number)
        stale = []
        for b in batches:
            d = twin_of.get(b.device)
            if d is None:
                continue
            c = Commitment.wire_type().from_wire(codec.decode(b.commit))
            if not {m.metric for m in c.public} <= s.policy[d.twin]:
                stale.append((b, d))
        if not stale:
            return

        def sign_all() -> list[tuple[int, bytes, bytes]]:
            out = []
            for b, d in stale:
                body, commit = resign(d.keypair, genesis, d.twin, b.body, s.policy[d.twin])
                out.append((b.id, body, commit))
            assert s.spool is not None
            s.spool.resign(out)
            return out

        done = await s.db(sign_all)
        for (b, _), (_, body, commit) in zip(stale, done, strict=True):
            b.body, b.commit = body, commit
        s.stats.batches_resigned += len(stale)
        log.warning(
            "%d batches carried summaries of metrics their twins no longer make public "
            "(NotPublic): signed again with the current policy under the same sequence numbers",
            len(stale),
        )

    async def _on_chain(self, rpc: AsyncClient, block: str, batches: list[BatchRow]) -> list[bool]:
        """Whether each batch's record is in the state at ``block`` (one read per chunk)."""
        chain = self.state.chain
        chunks = sorted({(b.device, b.seq // BATCH_CHUNK) for b in batches})
        values = await rpc.batch(
            [
                ("state_getStorage", [chain.key("Telemetry", "BatchChunks", dev, c), block])
                for dev, c in chunks
            ]
        )
        packed: dict[tuple[bytes, int], bytes] = {}
        for key, v in zip(chunks, values, strict=True):
            packed[key] = chain.decode("Telemetry", "BatchChunks", v)
        return [
            chunk_record(packed[(b.device, b.seq // BATCH_CHUNK)], b.seq) is not None
            for b in batches
        ]

    async def _sort_failed(
        self,
        rpc: AsyncClient,
        block: str,
        f: InFlight,
        confirmed: list[BatchRow],
        requeue: list[BatchRow],
        lost: list[BatchRow],
    ) -> None:
        chain = self.state.chain
        recs = await self._on_chain(rpc, block, f.batches)
        devs = sorted({b.device for b in f.batches})
        infos = await rpc.batch(
            [("state_getStorage", [chain.key("Telemetry", "Devices", dev), block]) for dev in devs]
        )
        next_seq = {}
        for dev, v in zip(devs, infos, strict=True):
            d = chain.decode("Telemetry", "Devices", v)
            next_seq[dev] = 0 if d is None else d.next_seq
        for b, found in zip(f.batches, recs, strict=True):
            if found:
                confirmed.append(b)
            elif b.seq >= next_seq[b.device]:
                requeue.append(b)
            else:
                lost.append(b)
                log.error(
                    "batch %d of device 0x%s can no longer be applied (the device is "
                    "past it on chain): %d readings lost",
                    b.seq,
                    b.device.hex()[:16],
                    b.n,
                )
        log.warning(
            "extrinsic #%d failed on chain: %d batches found, %d requeued, %d lost",
            f.row.nonce,
            sum(recs),
            sum(1 for b in f.batches if b in requeue),
            sum(1 for b in f.batches if b in lost),
        )


__all__ = ["Settler"]
