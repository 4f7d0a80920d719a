"""The report service's nonce rule on a real in-process dev node: an anchor whose signed
extrinsic can never be included (here: signed for another chain, so the pool refuses it)
is sent again unchanged while its nonce is free, and signed again with a new nonce only once
the finalized chain has used that nonce for something else. One anchor results."""

from __future__ import annotations

from pathlib import Path

import trio

from twinchain.archive.hosting import ArchiveService
from twinchain.archive.reports import (
    Pending,
    ReportBook,
    ReportService,
    _put_pending,
    find_anchor,
    runtime_at,
)
from twinchain.archive.store import ArchiveStore
from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import ChainSpec, dev_spec
from twinchain.node.service import Node, NodeConfig
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.runtime.pallets.telemetry.types import ANCHOR_KPI
from twinchain.runtime.runtime import SPEC_VERSION, Runtime
from twinchain.storage.abc import WriteBatch

MACHINES = [MachineConfig("mill-1", "cnc_mill")]


async def test_a_used_nonce_is_replaced_and_the_anchor_made_once(tmp_path: Path) -> None:
    gw = write_gateway(tmp_path / "gw", node="http://127.0.0.1:1", machines=MACHINES, first_twin=0)
    spec = ChainSpec.from_json(with_gateway(dev_spec().to_json(), gw, MACHINES))
    alice = Keypair.from_dev_name("Alice")
    store = ArchiveStore(tmp_path / "archive", 0)
    # What a crash left: a decided anchor with its nonce (0) and extrinsic, which no pool
    # will take.
    digest, lo, hi = blake3_hash(b"a report"), 60_000, 119_999
    call = Runtime().call_by_name("Telemetry", "anchor", 0, ANCHOR_KPI, lo, hi, digest)
    stale = Extrinsic.sign(call, alice, 0, b"\x01" * 32, SPEC_VERSION).encode()
    book = ReportBook(store.path / "reports")
    wb = WriteBatch()
    _put_pending(wb, 0, lo, ANCHOR_KPI, Pending(digest, lo, hi, 0, 0, stale))
    book.write(wb)
    book.close()

    reporter = ReportService(store, alice, resubmit_s=0.2)
    node = Node(
        NodeConfig(
            spec=spec,
            base_path=tmp_path / "node",
            validator=True,
            author_key=alice,
            port=None,
            services=[ArchiveService(store, flush_s=0.2), reporter],
        )
    )

    def anchors() -> list[object]:
        return runtime_at(node.chain, node.chain.finalized.hash).telemetry.anchors(0)

    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with trio.fail_after(20):
            while reporter.stats.resubmitted < 2:  # the same extrinsic, refused each time
                await trio.sleep(0.05)
        assert anchors() == []
        # Alice's nonce 0 goes to another extrinsic.
        remark = node.chain.runtime.call_by_name("System", "remark", b"not an anchor")
        other = Extrinsic.sign(remark, alice, 0, node.chain.genesis_hash, SPEC_VERSION)
        node.submit_extrinsic(other.encode())
        with trio.fail_after(30):
            while not anchors():
                await trio.sleep(0.1)
            fin = node.chain.finalized.number
            while node.chain.finalized.number < fin + 3:  # a few more passes: no second one
                await trio.sleep(0.1)
        rt = runtime_at(node.chain, node.chain.finalized.hash)
        (only,) = rt.telemetry.anchors(0)
        assert only[1].digest == digest and only[1].kind == ANCHOR_KPI
        assert find_anchor(rt, 0, ANCHOR_KPI, lo, hi, alice.public) is not None
        assert rt.system.nonce(alice.public) == 2  # the remark, then the anchor
        nursery.cancel_scope.cancel()
    book = ReportBook(store.path / "reports")
    try:
        assert book.pending() == [] and [d[3] for d in book.done()] == [digest]
    finally:
        book.close()
