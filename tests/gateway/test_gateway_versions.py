"""Gateway parts across a runtime upgrade, without a node: which spec version an extrinsic's
signature names (its bytes do not carry it), and re-signing the unsettled extrinsics held for
the old version: same nonces and batches, new bytes stored in place of the old before they are
sent, those already in a block left alone, nothing re-signed twice."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from gateway.offline import offline_gateway

from twinchain.gateway.encoding import XtBuilder, encode_commitment, signed_for
from twinchain.gateway.spool import BatchRow
from twinchain.gateway.state import InFlight
from twinchain.machines.simulator import MachineConfig
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch

GENESIS = os.urandom(32)
SUBMIT = (12, 0)


def commitments(n: int) -> list[bytes]:
    device = Keypair.generate()
    out = []
    for seq in range(n):
        readings = [(1, 1_750_000_000_000 + seq * 10 + i, i) for i in range(3)]
        batch = sign_batch(device, GENESIS, 3, seq, readings, public=DEFAULT_PUBLIC)
        out.append(encode_commitment(batch.commitment()))
    return out


def test_signed_for_tells_the_version_a_signature_names() -> None:
    body = commitments(1)
    raw = XtBuilder(Keypair.generate(), GENESIS, 3, SUBMIT).build(body, 5)
    assert signed_for(raw, GENESIS, 3)
    assert not signed_for(raw, GENESIS, 4)
    assert not signed_for(raw, os.urandom(32), 3)
    assert not signed_for(b"\x00junk", GENESIS, 3)


def test_held_extrinsics_are_signed_again_for_the_new_version_in_place(tmp_path: Path) -> None:
    gw = offline_gateway(tmp_path, [MachineConfig("m1", "cnc_mill")])
    s, sub = gw.state, gw.submitter
    bodies = commitments(3)
    sent: list[int] = []

    async def best_nonce(_: Any) -> int:
        return 1  # nonce 0 is in a block of the best chain

    async def submit(_: Any, f: InFlight) -> bool:
        sent.append(f.row.nonce)
        return True

    sub.best_nonce = best_nonce  # type: ignore[method-assign]
    sub.submit = submit  # type: ignore[method-assign]

    old: dict[int, bytes] = {}

    async def main() -> tuple[list[int], list[int]]:
        await gw.open()
        assert s.spool is not None
        s.chain.genesis, s.chain.spec_version, s.chain.submit_index = GENESIS, 3, SUBMIT
        groups = [[BatchRow(i, b"\x01" * 32, i, 3, [], b"", None, commit=c)]
                  for i, c in enumerate(bodies)]  # fmt: skip
        xts, version = sub._sign_and_store(groups, 0)
        assert version == 3
        for xt, g in zip(xts, groups, strict=True):
            s.inflight[xt.nonce] = InFlight(xt, g, spec_version=version)
            old[xt.nonce] = xt.raw
        s.inflight[2].spec_version = None  # as reloaded from the spool: read off its signature
        s.chain.spec_version = 4  # the next block runs spec 4
        first = [f.row.nonce for f in await sub.resign_stale(object())]
        again = [f.row.nonce for f in await sub.resign_stale(object())]
        return first, again

    try:
        first, again = asyncio.run(main())
        assert first == [1, 2] and sent == [1, 2], "in nonce order, sent at once"
        assert again == [] and sent == [1, 2], "nothing signed twice for one version"
        assert s.stats.xts_resigned == 2
        assert s.spool is not None
        rows = {x.nonce: x for x in s.spool.xts()}
        assert signed_for(rows[0].raw, GENESIS, 3), "in a block already: left alone"
        for n in (1, 2):
            assert signed_for(rows[n].raw, GENESIS, 4) and not signed_for(rows[n].raw, GENESIS, 3)
            assert rows[n].raw == s.inflight[n].row.raw and s.inflight[n].spec_version == 4
            new, before = Extrinsic.decode(rows[n].raw), Extrinsic.decode(old[n])
            assert new.call == before.call, "the same batches"
            assert new.signed is not None and new.signed.nonce == n, "the same nonce"
        # A row settled meanwhile is not revived by a late replacement.
        s.spool.replace_xts([sub._make_xt(s.inflight[1].batches, 99)])
        assert 99 not in {x.nonce for x in s.spool.xts()}
    finally:
        if s.spool is not None:
            s.spool.close()
        s.close_db()
