"""Facility reports on a real dev node process: the node keeps facility 0's archive and,
with ``--archive-report-key //Alice`` (the facility's operator), reports each closed window of
its twin: KPIs over all metrics, private ones included, and per-reading alerts, anchored on
chain by digest only. The test delivers batches of known readings as the twin's gateway
(commitments through ``Telemetry.submit``, readings through ``archive_deliver``) and checks
the report against values computed here, the chain for leaks, who may fetch the report,
and that a node killed while anchoring anchors each (twin, window, kind) exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port, poll, public_chain

from twinchain.archive.reports import (
    AlertReport,
    Report,
    decode_document,
    read_index,
    report_digest,
    verify_report,
)
from twinchain.archive.verify import rpc_records
from twinchain.cli import main
from twinchain.client import AccessDenied, Client, RpcClient
from twinchain.gateway.provision import Provisioned, with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    DEFAULT_PUBLIC,
    DOWNTIME,
    ENERGY,
    GOOD_UNITS,
    RUN_TIME,
    TEMPERATURE,
    UNITS_PRODUCED,
    Batch,
    sign_batch,
)
from twinchain.runtime.pallets.equipment.types import READ_TELEMETRY
from twinchain.runtime.pallets.telemetry.types import ANCHOR_ALERT, ANCHOR_KPI

MACHINES = [MachineConfig("mill-1", "cnc_mill")]
WINDOW_MS = 3_000
MIN_INTERVAL_MS = 200  # temperature, twin 0: closer readings are too fast
# Distinctive private values (above 2**32, as no chain field holds by chance).
ENERGY_WH = 0x5EC2_E7A1_0000
GOOD, BAD, UNITS, RUN_S, DOWN_S = 0x7A11_0000_0009, 0x7A11_0000_0001, 0x7A11_0000_000A, 50, 10


class Node:
    """One dev validator process keeping facility 0's archive and reporting it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.gw: Provisioned = write_gateway(
            tmp / "gw", node=self.url, machines=MACHINES, first_twin=0, simulator=False
        )
        spec = with_gateway(dev_spec().to_json(), self.gw, MACHINES, window_ms=WINDOW_MS)
        g = spec["genesis"]
        g["telemetry"]["capture"] = [[0, TEMPERATURE, MIN_INTERVAL_MS, 86_400_000]]
        # A known envelope: temperature only, steps up to 5 degC.
        g["equipment"]["twins"][0]["envelope"] = [[TEMPERATURE, -10_000, 90_000, 5_000]]
        # Charlie may read twin 0's telemetry (a grantee of the owner); Bob may not.
        g["equipment"]["twins"][0]["access"] = [["//Charlie", READ_TELEMETRY, 4_102_444_800_000]]
        (tmp / "spec.json").write_text(json.dumps(spec))
        self.archive = tmp / "chain" / "archive"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.tmp / "node.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twinchain", "node", "--chain", str(self.tmp / "spec.json"),
             "--validator", "--key", "//Alice", "--base-path", str(self.tmp / "chain"),
             "--rpc-port", str(self.port), "--no-prometheus", "--no-p2p",
             "--archive-facility", "0", "--archive-flush-s", "0.5",
             "--archive-report-key", "//Alice", "--archive-report-delay-ms", "0"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},  # one log record a line: the test greps it
        )  # fmt: skip
        with RpcClient(self.url, timeout=5) as rpc:
            poll(lambda: rpc.call("system_health") is not None, 30, "the node's RPC")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return (self.tmp / "node.log").read_text(errors="replace")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        n.start()
        yield n
    finally:
        n.stop()


def window_batches(n: Node, start: int) -> tuple[list[Batch], list[tuple[int, int, int]]]:
    """Two batches of mill-1 in the window at ``start``: production counters (private) and
    temperatures (public) with one reading too fast; and all their readings."""
    dev = n.gw.devices["mill-1"]
    with Client(n.url) as c:
        genesis = c.info.genesis_hash
    production = [
        (RUN_TIME, start + 100, RUN_S),
        (DOWNTIME, start + 100, DOWN_S),
        (UNITS_PRODUCED, start + 100, UNITS),
        (GOOD_UNITS, start + 100, GOOD),
        (BAD_UNITS, start + 100, BAD),
        (ENERGY, start + 100, ENERGY_WH),
    ]
    temps = [
        (TEMPERATURE, start + 200, 40_000),
        (TEMPERATURE, start + 1_200, 40_500),
        (TEMPERATURE, start + 1_250, 40_600),  # 50 ms after the previous one: too fast
        (TEMPERATURE, start + 2_200, 41_000),
    ]
    batches = [
        sign_batch(dev, genesis, 0, seq, rows, public=DEFAULT_PUBLIC)
        for seq, rows in enumerate((production, temps))
    ]
    return batches, production + temps


def send(n: Node, batches: list[Batch]) -> None:
    """As the gateway: the readings to the archive, the commitments on chain (final)."""
    with Client(n.url) as c:
        assert {d.status for d in c.deliver(batches, n.gw.gateway)} == {"staged"}
        call = c.call_function("Telemetry", "submit", batches=[b.commitment() for b in batches])
        final = c.submit_and_watch(call, n.gw.gateway, timeout=30)[-1]
        assert final.kind == "finalized", final


def next_window() -> int:
    """The start of the next window, 1 s away at least (the batches fit in it)."""
    now = time.time_ns() // 1_000_000
    return (now + 1_000) // WINDOW_MS * WINDOW_MS + WINDOW_MS


def anchors(n: Node) -> list[Any]:
    with Client(n.url) as c:
        count = c.read_storage("Telemetry", "AnchorCount", 0)
        return [c.read_storage("Telemetry", "Anchors", 0, i) for i in range(count)]


def test_report_anchored_private_kpis_stay_off_chain(node: Node) -> None:
    start = next_window()
    batches, rows = window_batches(node, start)
    send(node, batches)
    found = poll(lambda: len(anchors(node)) >= 2 and anchors(node), 40, "two anchors")
    assert sorted(a.kind for a in found) == [ANCHOR_KPI, ANCHOR_ALERT]
    alice = Keypair.from_dev_name("Alice").public
    assert all((a.from_ms, a.to_ms, a.by) == (start, start + WINDOW_MS - 1, alice) for a in found)
    kpi = next(a for a in found if a.kind == ANCHOR_KPI)
    alert = next(a for a in found if a.kind == ANCHOR_ALERT)

    # The owner fetches the report by its digest; it decodes to the values computed here.
    with Client(node.url) as c:
        content = c.document(0, kpi.digest, key=Keypair.from_dev_name("Alice"))
    report = decode_document(content)
    assert isinstance(report, Report) and report_digest(report) == kpi.digest
    assert [(b.seq, b.count) for b in report.batches] == [(0, 6), (1, 4)]
    assert report.missing == []
    assert {s.metric: s.sum for s in report.metrics} == {m: v for m, _, v in rows} | {
        TEMPERATURE: 40_000 + 40_500 + 40_600 + 41_000
    }
    t = report.stats(TEMPERATURE)
    assert t is not None and (t.count, t.min, t.max, t.mean) == (4, 40_000, 41_000, 40_525)
    total = max(UNITS, GOOD + BAD)
    k = report.kpis
    assert k.total_units == total
    assert k.availability_ppm == RUN_S * 1_000_000 // (RUN_S + DOWN_S)
    assert k.quality_ppm == GOOD * 1_000_000 // total
    assert k.scrap_ppm == BAD * 1_000_000 // total
    assert k.energy_per_good_mwh == ENERGY_WH * 1000 // GOOD
    assert report.alerts == [("TooFast", 1)]

    # The alert document: the one reading too fast, bound to the KPI report.
    with Client(node.url) as c:
        doc = decode_document(c.document(0, alert.digest, key=Keypair.from_dev_name("Alice")))
    assert isinstance(doc, AlertReport) and doc.report == kpi.digest
    (a,) = doc.alerts
    assert (a.kind, a.seq, a.index, a.ts, a.prev_ts, a.limit) == (
        "TooFast", 1, 2, start + 1_250, start + 1_200, MIN_INTERVAL_MS
    )  # fmt: skip

    # A READ_TELEMETRY grantee reads it too; someone the chain does not let read twin 0 gets
    # the typed refusal, not the report.
    with Client(node.url) as c:
        assert c.document(0, kpi.digest, key=Keypair.from_dev_name("Charlie")) == content
    with Client(node.url) as c, pytest.raises(AccessDenied):
        c.document(0, kpi.digest, key=Keypair.from_dev_name("Bob"))

    # The chain holds the digest only: no private value or KPI in any block, event or state
    # value (the digest itself is the control: the search must find it).
    dump = crawl(node.url)
    assert kpi.digest.hex() in dump
    # (The distinctive ones: a small KPI such as 776 mWh per unit matches digits anywhere.)
    for v in (ENERGY_WH, GOOD, BAD, UNITS, ENERGY_WH * 1000):
        for form in (v.to_bytes(8, "big").hex(), v.to_bytes(16, "big").hex(), str(v)):
            assert form not in dump, f"{v} on chain as {form}"

    # Recomputed from the archive's files, both documents give their anchored digests.
    poll(lambda: any(node.archive.glob("readings/twin=0/day=*/*.parquet")), 20, "a flush")
    with RpcClient(node.url) as rpc:
        for d in (kpi.digest, alert.digest):
            verify_report(node.archive, 0, d, rpc_records(rpc))
    index = poll(
        lambda: len(read_index(node.archive)["reports"]) == 2 and read_index(node.archive),
        10,
        "reports.jsonl",
    )
    digests = {"0x" + kpi.digest.hex(), "0x" + alert.digest.hex()}
    assert {r["digest"] for r in index["reports"]} == digests
    reports, folder, kpi_hex = ["archive", "reports"], str(node.archive), "0x" + kpi.digest.hex()
    assert main([*reports, "verify", "--dir", folder, "--rpc", node.url]) == 0
    assert main([*reports, "list", "--dir", folder]) == 0
    assert main([*reports, "show", "--dir", folder, "--twin", "0", kpi_hex]) == 0
    fetch = [*reports, "fetch", "--rpc", node.url, "--twin", "0", kpi_hex]
    assert main([*fetch, "--key", "//Alice", "--json"]) == 0
    assert main([*fetch, "--key", "//Bob"]) == 1  # FORBIDDEN, as an error


def crawl(url: str) -> str:
    """Every block, its events and the whole finalized state, as hex JSON."""
    with Client(url, timeout=30) as c:
        out = public_chain(c)
    return json.dumps(out, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))


def test_killed_while_anchoring_anchors_each_window_once(node: Node) -> None:
    """SIGKILL as soon as the node logs that it sent the KPI anchor (before finality, as a
    rule), restart: exactly one anchor per (twin, window, kind)."""
    start = next_window()
    batches, _ = window_batches(node, start)
    send(node, batches)
    poll(lambda: "anchor of twin 0 window" in node.log(), 40, "an anchor sent", interval=0.02)
    node.kill()
    node.start()
    found = poll(lambda: len(anchors(node)) >= 2 and anchors(node), 40, "two anchors")
    # A few more blocks and passes: nothing is anchored again.
    with Client(node.url) as c:
        rpc = c.rpc
        fin = rpc.header(rpc.finalized_head()).number  # type: ignore[union-attr]
        poll(lambda: rpc.header(rpc.finalized_head()).number >= fin + 4, 30, "4 more blocks")  # type: ignore[union-attr]
    found = anchors(node)
    keys = [(a.kind, a.from_ms, a.to_ms) for a in found]
    assert sorted(keys) == sorted({(a.kind, a.from_ms, a.to_ms) for a in found})
    assert sorted(k for k, _, _ in keys) == [ANCHOR_KPI, ANCHOR_ALERT]
