"""The archive hosted in a real dev node: a gateway's batch is staged, its commitment goes on
chain through Telemetry.submit, finality settles it (read through BlockchainView), the flush
puts it in Parquet, and it verifies against the chain. A tampered batch is refused."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import trio

from twinchain.archive.chain import BlockchainView
from twinchain.archive.hosting import ArchiveOptions, ArchiveService
from twinchain.archive.query import ArchiveQuery
from twinchain.archive.store import NOT_THE_GATEWAY, ArchiveStore
from twinchain.archive.verify import chain_records, verify_archive
from twinchain.cli import build_parser, main
from twinchain.client import Client
from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import ChainSpec, dev_spec
from twinchain.node.service import Node, NodeConfig
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, PRESSURE, TEMPERATURE, sign_batch
from twinchain.rpc.hosting import RpcService
from twinchain.runtime.runtime import SPEC_VERSION

MACHINES = [MachineConfig("mill-1", "cnc_mill")]


def test_options_create_one_store_per_node(tmp_path: Path) -> None:
    options = ArchiveOptions()
    parser = build_parser()
    args = parser.parse_args(["node", "--dev", "--base-path", str(tmp_path)])
    assert options.store_for(args) is None and options.services(args) == []
    args = parser.parse_args(
        ["node", "--dev", "--base-path", str(tmp_path), "--archive-facility", "3",
         "--archive-retention-days", "30", "--archive-flush-s", "2.5"]
    )  # fmt: skip
    store = options.store_for(args)
    assert store is not None and store is options.store_for(args)
    (service,) = options.services(args)
    assert isinstance(service, ArchiveService) and service.store is store
    assert (store.facility, store.retention_days, service.flush_s) == (3, 30, 2.5)
    assert store.path == tmp_path / "archive"
    store.close()


async def test_node_settles_flushes_and_verifies(tmp_path: Path) -> None:
    gw = write_gateway(tmp_path / "gw", node="http://127.0.0.1:1", machines=MACHINES, first_twin=0)
    spec = ChainSpec.from_json(with_gateway(dev_spec().to_json(), gw, MACHINES))
    store = ArchiveStore(tmp_path / "archive", 0)
    service = ArchiveService(store, flush_s=0.2)
    rpc = RpcService(port=0, archive=store)
    node = Node(
        NodeConfig(
            spec=spec,
            base_path=tmp_path / "node",
            validator=True,
            author_key=Keypair.from_dev_name("Alice"),
            port=None,
            services=[service, rpc],
        )
    )
    dev, genesis = gw.devices["mill-1"], node.chain.genesis_hash
    window = 60_000
    start = time.time_ns() // 1_000_000 // window * window  # within this telemetry window
    batches = [
        sign_batch(
            dev, genesis, 0, seq,
            [(TEMPERATURE if i % 2 else PRESSURE, start + seq * 100 + i, 2 * i) for i in range(40)],
            public=DEFAULT_PUBLIC,
        )
        for seq in range(2)
    ]  # fmt: skip
    good, bad = batches
    tampered = replace(bad, readings=[*bad.readings[:-1], (PRESSURE, bad.readings[-1][1], 1)])

    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        url = f"http://127.0.0.1:{node.service_ports['rpc']}"

        def deliver_over_rpc() -> list[str]:
            with Client(url) as client:
                return [d.status for d in client.deliver([good, tampered], gw.gateway)]

        # Through archive_deliver, signed by the gateway key: the same store.
        assert await trio.to_thread.run_sync(deliver_over_rpc) == ["staged", "staged"]
        (wrong,) = await trio.to_thread.run_sync(store.deliver, dev.public, [good])
        assert (wrong.status, wrong.reason) == ("refused", NOT_THE_GATEWAY)
        call = node.chain.runtime.call_by_name(
            "Telemetry", "submit", [good.commitment(), bad.commitment()]
        )
        xt = Extrinsic.sign(call, gw.gateway, 0, genesis, SPEC_VERSION)
        node.submit_extrinsic(xt.encode())
        with trio.fail_after(30):
            while store.status(dev.public, 0) != "archived" or store.stats()["staged_batches"]:
                await trio.sleep(0.1)
            while store.pending_rows:
                await trio.sleep(0.1)
        s = store.stats()
        assert (s["archived_batches"], s["archived_readings"]) == (1, 40)
        assert s["refused"] == {
            NOT_THE_GATEWAY: 1,
            "the readings do not give the committed Merkle root": 1,
        }
        view = BlockchainView(node.chain)
        assert view.twin_facility(0) == 0 and view.device(dev.public).next_seq == 2  # type: ignore[union-attr]
        report = await trio.to_thread.run_sync(verify_archive, store.path, chain_records(view))
        assert report.ok and (report.batches, report.readings) == (1, 40)
        # The command, over JSON-RPC twin_batchRecord.
        argv = ["archive", "verify", "--dir", str(store.path), "--rpc", url]
        assert await trio.to_thread.run_sync(main, argv) == 0
        nursery.cancel_scope.cancel()
    with ArchiveQuery(store.path) as q:
        assert q.rows("SELECT twin, count(*) FROM readings GROUP BY twin")[1] == [(0, 40)]
        assert ("temperature",) in q.rows("SELECT name FROM metrics")[1]
    # The service closed the store with the node; it reopens with the same state.
    again = ArchiveStore(tmp_path / "archive", 0)
    try:
        assert again.stats()["archived_batches"] == 1
    finally:
        again.close()
