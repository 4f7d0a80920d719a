"""The packer when its connection drops while the spool's thread signs and stores extrinsics:
the job finishes there anyway, so what it stored is in flight in memory too; its nonces are
not handed out again (they were: a UNIQUE error on every reconnect, the batches stuck)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from gateway.offline import offline_gateway

from twinchain.gateway.encoding import encode_commitment
from twinchain.gateway.spool import BatchRow
from twinchain.machines.simulator import MachineConfig
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch

GENESIS = os.urandom(32)


def test_extrinsics_stored_while_the_packer_is_cancelled_are_in_flight(tmp_path: Path) -> None:
    gw = offline_gateway(tmp_path, [MachineConfig("m1", "cnc_mill")])
    s, sub = gw.state, gw.submitter
    device = Keypair.generate()
    readings = [(1, 1_750_000_000_000 + i, i) for i in range(3)]
    commit = encode_commitment(
        sign_batch(device, GENESIS, 3, 0, readings, public=DEFAULT_PUBLIC).commitment()
    )
    (dev,) = s.devices.values()
    rows = [BatchRow(1, dev.key, 0, 3, [], b"", None, commit=commit)]
    storing, release = threading.Event(), threading.Event()
    real = sub._sign_and_store

    def slow_sign_and_store(*args: Any) -> Any:
        storing.set()
        release.wait(5)  # the connection drops meanwhile
        return real(*args)

    sub._sign_and_store = slow_sign_and_store  # type: ignore[method-assign]

    async def main() -> None:
        await gw.open()
        assert s.spool is not None
        s.chain.genesis, s.chain.spec_version, s.chain.submit_index = GENESIS, 3, (12, 0)
        s.spool.unpacked = lambda limit: rows  # type: ignore[method-assign]
        s.unpacked_n = 3
        sub.next_nonce = 7
        packer = asyncio.create_task(sub.run_packer(object()))  # type: ignore[arg-type]
        await asyncio.get_running_loop().run_in_executor(None, storing.wait, 5)
        packer.cancel()
        release.set()
        await asyncio.gather(packer, return_exceptions=True)
        await s.db(lambda: None)  # the spool's thread is done with the job
        await asyncio.sleep(0)

    try:
        asyncio.run(main())
        assert s.spool is not None
        assert [x.nonce for x in s.spool.xts()] == [7]
        assert list(s.inflight) == [7] and s.inflight[7].spec_version == 3
        assert sub.next_nonce == 8 and s.unpacked_n == 0
        assert rows[0].xt == 7
    finally:
        if s.spool is not None:
            s.spool.close()
        s.close_db()
