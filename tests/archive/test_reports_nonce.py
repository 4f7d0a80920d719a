"""The report service's nonce rule on a real in-process dev node, from what a crash left (a
decided anchor with its nonce and signed extrinsic in the report LevelDB):

* an extrinsic no pool takes (signed for another chain) is sent again unchanged while its
  nonce is free, and signed again with a new nonce only once the finalized chain has used
  that nonce for something else;
* one signed for a runtime version the chain no longer runs is signed again with the SAME
  nonce.

Either way one anchor results."""

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
from twinchain.runtime.runtime import Runtime
from twinchain.storage.abc import WriteBatch

MACHINES = [MachineConfig("mill-1", "cnc_mill")]
ALICE = Keypair.from_dev_name("Alice")
DIGEST, LO, HI = blake3_hash(b"a report"), 60_000, 119_999


class Setup:
    """A dev node (Alice owns twin 0) whose report service finds ``pending`` on start."""

    def __init__(self, tmp: Path) -> None:
        gw = write_gateway(tmp / "gw", node="http://127.0.0.1:1", machines=MACHINES, first_twin=0)
        spec = ChainSpec.from_json(with_gateway(dev_spec().to_json(), gw, MACHINES))
        self.store = ArchiveStore(tmp / "archive", 0)
        self.reporter = ReportService(self.store, ALICE, resubmit_s=0.2)
        self.node = Node(
            NodeConfig(
                spec=spec,
                base_path=tmp / "node",
                validator=True,
                author_key=ALICE,
                port=None,
                services=[ArchiveService(self.store, flush_s=0.2), self.reporter],
            )
        )
        self.spec_version = self.node.chain.next_spec_version()

    def signed(self, nonce: int, genesis: bytes | None = None, spec: int | None = None) -> bytes:
        call = Runtime().call_by_name("Telemetry", "anchor", 0, ANCHOR_KPI, LO, HI, DIGEST)
        genesis = self.node.chain.genesis_hash if genesis is None else genesis
        spec = self.spec_version if spec is None else spec
        return Extrinsic.sign(call, ALICE, nonce, genesis, spec).encode()

    def leave(self, pending: Pending) -> None:
        book = ReportBook(self.store.path / "reports")
        wb = WriteBatch()
        _put_pending(wb, 0, LO, ANCHOR_KPI, pending)
        book.write(wb)
        book.close()

    def anchors(self) -> list[tuple[int, object]]:
        node = self.node
        return runtime_at(node.chain, node.chain.finalized.hash).telemetry.anchors(0)

    async def a_few_more_blocks(self) -> None:
        fin = self.node.chain.finalized.number
        while self.node.chain.finalized.number < fin + 3:  # more passes: no second anchor
            await trio.sleep(0.1)

    def check_one_anchor(self, nonce: int) -> None:
        rt = runtime_at(self.node.chain, self.node.chain.finalized.hash)
        (only,) = rt.telemetry.anchors(0)
        assert only[1].digest == DIGEST and only[1].kind == ANCHOR_KPI
        assert find_anchor(rt, 0, ANCHOR_KPI, LO, HI, ALICE.public) is not None
        assert rt.system.nonce(ALICE.public) == nonce

    def check_book(self) -> None:
        book = ReportBook(self.store.path / "reports")
        try:
            assert book.pending() == [] and [d[3] for d in book.done()] == [DIGEST]
        finally:
            book.close()


async def test_a_used_nonce_is_replaced_and_the_anchor_made_once(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    stale = s.signed(0, genesis=b"\x01" * 32)  # no pool takes it
    s.leave(Pending(DIGEST, LO, HI, 0, 0, stale, s.spec_version))
    async with trio.open_nursery() as nursery:
        await nursery.start(s.node.run)
        with trio.fail_after(20):
            while s.reporter.stats.resubmitted < 2:  # the same extrinsic, refused each time
                await trio.sleep(0.05)
        assert s.anchors() == []
        # Alice's nonce 0 goes to another extrinsic.
        remark = s.node.chain.runtime.call_by_name("System", "remark", b"not an anchor")
        other = Extrinsic.sign(remark, ALICE, 0, s.node.chain.genesis_hash, s.spec_version)
        s.node.submit_extrinsic(other.encode())
        with trio.fail_after(30):
            while not s.anchors():
                await trio.sleep(0.1)
            await s.a_few_more_blocks()
        s.check_one_anchor(nonce=2)  # the remark, then the anchor with nonce 1
        nursery.cancel_scope.cancel()
    s.check_book()


async def test_signed_for_an_old_runtime_version_it_is_signed_again_with_its_nonce(
    tmp_path: Path,
) -> None:
    s = Setup(tmp_path)
    old = s.spec_version - 1
    s.leave(Pending(DIGEST, LO, HI, 0, 0, s.signed(0, spec=old), old))
    async with trio.open_nursery() as nursery:
        await nursery.start(s.node.run)
        with trio.fail_after(30):
            while not s.anchors():
                await trio.sleep(0.1)
            await s.a_few_more_blocks()
        s.check_one_anchor(nonce=1)  # nonce 0: the one the crash left
        nursery.cancel_scope.cancel()
    s.check_book()
