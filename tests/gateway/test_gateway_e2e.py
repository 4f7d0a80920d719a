"""The gateway as a real process between a real MQTT broker (amqtt), a real OPC-UA server
(asyncua) and a real node process keeping its facility's archive: what is published is what
the archive holds and what the chain aggregates of the public metrics, exactly once, through
a SIGKILL of the node and a SIGKILL of the gateway; the spool drains only as the archive
takes the batches; bad input is refused, counted and logged, and the gateway keeps going."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from realnet import free_port, wait_for

from twinchain.client import RpcClient
from twinchain.devnet.chaos.invariants import archive_totals, public_only, twin_totals
from twinchain.gateway.provision import Provisioned, with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import dev_spec

AMQTT = Path(sys.executable).with_name("amqtt")
MACHINES = [
    MachineConfig("press-1", "cnc_mill"),
    MachineConfig("pump-1", "pump"),
    MachineConfig("comp-1", "compressor"),
]
MQTT_DEVICES = ("press-1", "pump-1")
SCALE = {1: 3, 2: 3, 4: 0, 7: 0}  # temperature, vibration, power, units (DEFAULT_METRICS)


# --------------------------------------------------------------------------- OPC-UA server


class OpcServer(threading.Thread):
    """An asyncua server in a thread of its own; ``write`` sets a variable with an explicit
    source timestamp (so a re-subscription shows the same reading, not a new one)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/twinchain/"
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.vars: dict[str, Any] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from asyncua import Server

        self.loop = asyncio.get_running_loop()
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        idx = await server.register_namespace("urn:twinchain:test")
        obj = await server.nodes.objects.add_object(idx, "comp-1")
        for name in ("temperature", "power"):
            self.vars[name] = await obj.add_variable(f"ns={idx};s=comp-1.{name}", name, 0.0)
        async with server:
            self.ready.set()
            while not self._halt.is_set():
                await asyncio.sleep(0.1)

    def write(self, name: str, value: float, ts_ms: int) -> None:
        from asyncua import ua

        dv = ua.DataValue(
            ua.Variant(value, ua.VariantType.Double),
            SourceTimestamp=datetime.fromtimestamp(ts_ms / 1000, UTC),
        )
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self.vars[name].write_value(dv), self.loop).result(5)

    def node_id(self, name: str) -> str:
        return str(self.vars[name].nodeid.to_string())

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


# --------------------------------------------------------------------------- processes


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rpc_port = free_port()
        self.mqtt_port = free_port()
        self.metrics_port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.opc = OpcServer(free_port())
        self.opc.start()
        assert self.opc.ready.wait(20), "OPC-UA server did not start"
        self._start_broker()
        sources = [
            {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": self.mqtt_port,
                "topics": ["plant/#"],
                "client_id": "gw-test",
                "username": "gateway",
                "password": "x",
            },
            {
                "type": "opcua",
                "endpoint": self.opc.endpoint,
                "interval_ms": 50,
                "nodes": [
                    {"node": self.opc.node_id("temperature"), "device": "comp-1", "metric": 1},
                    {"node": self.opc.node_id("power"), "device": "comp-1", "metric": "power"},
                ],
            },
        ]
        self.gw: Provisioned = write_gateway(
            tmp / "gw",
            node=f"http://127.0.0.1:{self.rpc_port}",
            machines=MACHINES,
            first_twin=0,
            simulator=False,
            extra_sources=sources,
            topics={"press-1": "plant/press-1"},
            batching={"max_delay_ms": 200, "max_readings_per_xt": 600, "resubmit_after_s": 4.0},
            prometheus_port=self.metrics_port,
        )
        spec = with_gateway(dev_spec().to_json(), self.gw, MACHINES, window_ms=10_000)
        (tmp / "spec.json").write_text(json.dumps(spec))
        self.rpc = RpcClient(f"http://127.0.0.1:{self.rpc_port}", timeout=5)

    def _start_broker(self) -> None:
        cfg = self.tmp / "broker.yaml"
        # Not anonymous: amqtt keeps offline messages only for authenticated sessions.
        cfg.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{self.mqtt_port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: false\n"
        )
        self.procs["broker"] = subprocess.Popen(
            [str(AMQTT), "-c", str(cfg)],
            stdout=(self.tmp / "broker.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), 0.5):
                return True

        wait_for(up, 20, "the MQTT broker")

    def start_node(self, archive: bool = True) -> None:
        self.procs["node"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twinchain",
                "--log",
                "warning",
                "node",
                "--chain",
                str(self.tmp / "spec.json"),
                "--validator",
                "--key",
                "//Alice",
                "--base-path",
                str(self.tmp / "chain"),
                "--rpc-port",
                str(self.rpc_port),
                "--no-prometheus",
                "--no-p2p",
            ]
            # with_gateway's twins stand in facility 0, whose node this is.
            + (["--archive-facility", "0"] if archive else []),
            stdout=(self.tmp / "node.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: self.rpc.call("system_health") is not None, 30, "the node's RPC")

    def start_gateway(self) -> None:
        self.procs["gateway"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twinchain",
                "gateway",
                "--config",
                str(self.gw.config),
            ],
            stdout=(self.tmp / "gateway.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def archive(self) -> tuple[dict[tuple[str, int], tuple[int, int]], int]:
        """(count, sum) per (device name, metric) in the node's archive, and duplicates."""
        devices = {"0x" + kp.public.hex(): name for name, kp in self.gw.devices.items()}
        return archive_totals(self.tmp / "chain" / "archive", devices)

    def spool_batches(self) -> int:
        """Batches still in the gateway's spool (final ones wait there for the archive)."""
        import sqlite3

        db = sqlite3.connect(f"file:{self.gw.folder / 'spool.sqlite'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
        finally:
            db.close()

    def status(self) -> dict[str, Any]:
        return json.loads((self.gw.folder / "status.json").read_text())  # type: ignore[no-any-return]

    def running_status(self) -> dict[str, Any]:
        s = self.status()
        assert s["pid"] == self.procs["gateway"].pid
        return s

    def close(self) -> None:
        for name in list(self.procs):
            p = self.procs.pop(name)
            p.kill()
            p.wait(10)
        self.opc.stop()
        self.rpc.close()


class Publisher:
    """QoS 1 publisher that remembers what it published (as the chain should aggregate it)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="publisher"
        )
        self.client.username_pw_set("sensor", "x")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.expected: dict[tuple[str, int], list[int]] = defaultdict(list)
        self.ts: dict[str, int] = {}
        self.k = 0

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(10)

    def burst(self, messages: int) -> int:
        """``messages`` messages per device; returns the readings published."""
        n = 0
        for _ in range(messages):
            for dev in MQTT_DEVICES:
                ts = self.ts.get(dev, int(time.time() * 1000) - 300_000) + 7
                self.ts[dev] = ts + 1
                self.k += 1
                k = self.k
                readings: list[Any] = [
                    {"metric": "temperature", "ts": ts, "value": 40 + (k % 97) / 8},
                    {"metric": 2, "ts": ts, "raw": 1_000 + k % 13},
                    [4, ts, 5_000 + k % 101],
                    {"metric": "units_produced", "ts": ts + 1, "value": k % 3},
                ]
                for r in readings:
                    if isinstance(r, list):
                        m, v = r[0], r[2]
                    else:
                        m = r["metric"] if isinstance(r["metric"], int) else _ID[r["metric"]]
                        v = r["raw"] if "raw" in r else round(r["value"] * 10 ** SCALE[m])
                    self.expected[(dev, m)].append(v)
                if dev == "press-1":  # by topic, as JSON
                    self.publish("plant/press-1", json.dumps({"readings": readings}).encode())
                else:  # device named in the payload, as msgpack
                    body = msgpack.packb({"device": dev, "readings": readings})
                    self.publish("plant/other", body)
                n += len(readings)
        return n

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


_ID = {"temperature": 1, "vibration_rms": 2, "power": 4, "units_produced": 7}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def chain_totals(rpc: RpcClient) -> dict[tuple[str, int], tuple[int, int]]:
    return twin_totals(rpc, [(twin, m.name) for twin, m in enumerate(MACHINES)])


@pytest.mark.slow
def test_mqtt_and_opcua_to_chain_exactly_once_through_kills(rig: Rig) -> None:
    rig.start_node()
    rig.start_gateway()
    wait_for(lambda: rig.running_status()["connected"], 30, "the gateway to connect")
    # The OPC-UA subscription delivers each variable's current value first.
    wait_for(lambda: rig.running_status()["received"].get("opcua", 0) >= 2, 20, "OPC-UA")
    pub = Publisher(rig.mqtt_port)
    opc_expected: dict[int, list[int]] = {1: [0], 4: [0]}
    try:
        # Phase 1: MQTT and OPC-UA while everything runs.
        published = pub.burst(30)
        t0 = int(time.time() * 1000) - 2_000
        for i in range(8):
            rig.opc.write("temperature", 60.0 + i * 0.125, t0 + 200 * i)
            rig.opc.write("power", 3000.0 + i, t0 + 200 * i + 1)
            opc_expected[1].append(60_000 + i * 125)
            opc_expected[4].append(3000 + i)
            time.sleep(0.1)
        wait_for(
            lambda: rig.running_status()["spooled"] >= published + 2 + 16, 20, "phase 1 spooled"
        )

        # Phase 2: the node is killed; readings keep coming and are spooled; it comes back.
        rig.kill("node")
        published += pub.burst(30)
        time.sleep(1.0)
        assert rig.running_status()["connected"] is False
        rig.start_node()

        # Phase 3: the gateway is killed with unsettled work in its spool; the broker keeps
        # what is published meanwhile (persistent session) and delivers it on restart.
        wait_for(lambda: rig.running_status()["spooled"] >= published + 18, 20, "phase 2 spooled")
        before = rig.running_status()
        rig.kill("gateway")
        assert before["backlog"] > 0 or before["readings_final"] < published + 18
        published += pub.burst(20)
        rig.start_gateway()
        wait_for(lambda: rig.running_status()["connected"], 30, "the gateway to reconnect")

        # Phase 4: bad input among good input; the gateway refuses, counts, logs, goes on.
        pub.publish("plant/press-1", b"{not json")
        pub.publish("plant/other", b"\xc1\xc1 not msgpack")
        pub.publish(
            "plant/other", json.dumps({"device": "ghost", "metric": 1, "ts": 1, "raw": 1}).encode()
        )
        pub.publish("plant/unknown-topic", json.dumps({"metric": 1, "ts": 5, "raw": 1}).encode())
        old_ts = pub.ts["pump-1"] - 50
        pub.publish(
            "plant/other",
            json.dumps({"device": "pump-1", "metric": 1, "ts": old_ts, "raw": 7}).encode(),
        )
        bad_metric = {"device": "pump-1", "metric": "no_such_metric", "ts": old_ts, "raw": 7}
        pub.publish("plant/other", json.dumps(bad_metric).encode())
        published += pub.burst(5)

        expected: dict[tuple[str, int], tuple[int, int]] = {
            key: (len(vs), sum(vs)) for key, vs in pub.expected.items()
        }
        for m, vs in opc_expected.items():
            expected[("comp-1", m)] = (len(vs), sum(vs))
        wait_for(
            lambda: chain_totals(rig.rpc) == public_only(expected),
            45,
            "the chain to aggregate the public metrics",
        )
        # The archive writes Parquet every 10 s.
        wait_for(lambda: rig.archive()[0] == expected, 45, "the archive to hold it all")
    finally:
        pub.close()

    # Exactly once: every reading archived once, the public ones aggregated once on chain, no
    # sequence gaps, a record per sequence; the spool empties only as the archive takes it.
    held, dupes = rig.archive()
    assert held == expected and dupes == 0
    assert sum(c for c, _ in held.values()) == published + 18
    assert chain_totals(rig.rpc) == public_only(expected)
    assert all(m in (1, 2) for _, m in chain_totals(rig.rpc)), "power, units: private"
    wait_for(lambda: rig.spool_batches() == 0, 20, "the spool to drain")
    for name, kp in rig.gw.devices.items():
        d = rig.rpc.call("twin_device", "0x" + kp.public.hex())
        assert d["gaps"] == 0, name
        assert d["batches"] == d["nextSeq"] > 0, name
        assert d["readings"] == sum(c for (dev, _), (c, _) in held.items() if dev == name)

    # status.json is a snapshot written every second: the chain can hold the last burst
    # before the snapshot that counts the refusals published just ahead of it.
    def refusals_counted() -> bool:
        rej = rig.running_status()["rejected"]
        return (
            rej.get("malformed", 0) >= 2
            and rej.get("unknown_device", 0) >= 2
            and rej.get("out_of_order", 0) >= 1
            and rej.get("unknown_metric", 0) >= 1
        )

    wait_for(refusals_counted, 10, "the status to count every refusal")
    s = rig.running_status()
    assert s["batches_lost"] == 0
    assert s["archive_refused_kept"] == 0 and s["archive_error"] == ""
    rej = s["rejected"]
    assert rej.get("malformed", 0) >= 2 and rej.get("unknown_device", 0) >= 2, rej
    assert rej.get("out_of_order", 0) >= 1 and rej.get("unknown_metric", 0) >= 1, rej
    log = (rig.gw.folder.parent / "gateway.log").read_text()
    for reason in ("malformed", "unknown_device", "out_of_order", "unknown_metric"):
        assert f"{reason}:" in log, reason
    assert rig.procs["gateway"].poll() is None, "the gateway keeps going"
    metrics = httpx.get(f"http://127.0.0.1:{rig.metrics_port}/metrics", timeout=5).text
    assert 'twinchain_gateway_readings_rejected_total{reason="malformed"}' in metrics
    assert "twinchain_gateway_readings_finalized_total" in metrics
    assert "twinchain_gateway_readings_archived_total" in metrics
    assert "twinchain_gateway_archive_lag_seconds" in metrics
    assert 'twinchain_gateway_spool_readings{stage="pending"}' in metrics


@pytest.mark.slow
def test_simulator_readings_exactly_once_through_sigkills_at_random_moments(
    tmp_path: Path,
) -> None:
    """An unpaced simulator into a gateway killed with SIGKILL three times at random moments
    (mid-commit, mid-batch, mid-submit, wherever it lands): the chain ends up with every
    reading the seeded run makes, once. Nothing acknowledges here but the spool itself: the
    simulator's position is committed with its readings and replayed on restart."""
    import random
    import sqlite3

    from twinchain.machines.simulator import FactorySimulator

    rng = random.Random(20261123)
    machines = [MachineConfig("mill-1", "cnc_mill"), MachineConfig("comp-1", "compressor")]
    ticks, seed = 1500, 7
    rpc_port = free_port()
    gw = write_gateway(
        tmp_path / "gw",
        node=f"http://127.0.0.1:{rpc_port}",
        machines=machines,
        first_twin=0,
        seed=seed,
        realtime=False,
        batching={"max_delay_ms": 100, "high_water": 3000, "low_water": 1500},
    )
    text = gw.config.read_text().replace("realtime = false", f"realtime = false\nticks = {ticks}")
    gw.config.write_text(text)
    spec = with_gateway(dev_spec().to_json(), gw, machines)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    rig = Rig.__new__(Rig)  # only its process helpers: no broker or OPC-UA server here
    rig.tmp, rig.rpc_port, rig.gw, rig.procs = tmp_path, rpc_port, gw, {}
    rig.rpc = RpcClient(f"http://127.0.0.1:{rpc_port}", timeout=5)
    try:
        rig.start_node()
        for _ in range(3):
            rig.start_gateway()
            time.sleep(rng.uniform(1.5, 3.0))
            rig.kill("gateway")
        rig.start_gateway()
        db = sqlite3.connect(f"file:{gw.folder / 'spool.sqlite'}?mode=ro", uri=True)
        start = int(db.execute("SELECT value FROM meta WHERE key='sim:0:start'").fetchone()[0])
        db.close()
        sim = FactorySimulator(seed, machines, start_ms=start, tick_ms=1000)
        sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for r in sim.run(ticks):
            sums[(r.machine, r.metric)][0] += 1
            sums[(r.machine, r.metric)][1] += r.value
        expected = {k: (c, s) for k, (c, s) in sums.items()}

        def totals() -> dict[tuple[str, int], tuple[int, int]]:
            return twin_totals(rig.rpc, [(twin, m.name) for twin, m in enumerate(machines)])

        wait_for(lambda: totals() == public_only(expected), 60, "the public metrics on chain")
        wait_for(lambda: rig.archive()[0] == expected, 45, "every reading in the archive")
        assert rig.archive()[1] == 0, "no reading archived twice"
        wait_for(lambda: rig.spool_batches() == 0, 20, "the spool to drain")
        for name, kp in gw.devices.items():
            d = rig.rpc.call("twin_device", "0x" + kp.public.hex())
            assert d["gaps"] == 0 and d["batches"] == d["nextSeq"], name
        # The kills landed mid-run: later lives resumed the simulator part-way.
        log = (tmp_path / "gateway.log").read_text()
        resumed = [int(x.split()[0]) for x in log.split("resuming at tick")[1:]]
        assert len(resumed) == 4 and resumed[0] == 0
        assert sum(1 for t in resumed[1:] if 0 < t < ticks) >= 2, resumed
    finally:
        for p in rig.procs.values():
            p.kill()
            p.wait(10)
        rig.rpc.close()


@pytest.mark.slow
def test_a_batch_leaves_the_spool_only_once_final_and_archived(tmp_path: Path) -> None:
    """A node without its archive: the commitments become final, the batches stay in the
    spool (the status says the archive is unreachable). The node is killed and comes back
    keeping the archive: the spool drains into it, every reading exactly once."""
    from twinchain.machines.simulator import FactorySimulator

    machines = [MachineConfig("mill-1", "cnc_mill"), MachineConfig("pump-1", "pump")]
    ticks = 120
    rpc_port = free_port()
    gw = write_gateway(
        tmp_path / "gw",
        node=f"http://127.0.0.1:{rpc_port}",
        machines=machines,
        first_twin=0,
        seed=11,
        realtime=False,
        batching={"max_delay_ms": 100, "max_readings": 256},
    )
    text = gw.config.read_text().replace("realtime = false", f"realtime = false\nticks = {ticks}")
    gw.config.write_text(text)
    spec = with_gateway(dev_spec().to_json(), gw, machines)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    rig = Rig.__new__(Rig)
    rig.tmp, rig.rpc_port, rig.gw, rig.procs = tmp_path, rpc_port, gw, {}
    rig.rpc = RpcClient(f"http://127.0.0.1:{rpc_port}", timeout=5)
    try:
        rig.start_node(archive=False)
        rig.start_gateway()
        wait_for(lambda: rig.running_status()["connected"], 30, "the gateway to connect")

        def all_final_none_archived() -> bool:
            s = rig.running_status()
            return (
                s["backlog"] == s["archive_pending"] > 0
                and s["spool_pending"] == 0
                and bool(s["archive_error"])
                and s["readings_archived"] == 0
            )

        wait_for(all_final_none_archived, 60, "every batch final, none archived")
        waiting = rig.spool_batches()
        assert waiting > 0 and rig.running_status()["batches_final"] == waiting
        rig.kill("node")
        rig.start_node(archive=True)
        wait_for(lambda: rig.spool_batches() == 0, 60, "the spool to drain into the archive")

        def said() -> bool:  # status.json is a snapshot a second old at most
            s = rig.running_status()
            return s["archive_error"] == "" and s["readings_archived"] == s["readings_final"]

        wait_for(said, 10, "the status to say the archive holds it all")
        s = rig.running_status()
        wait_for(lambda: sum(c for c, _ in rig.archive()[0].values()) == s["readings_final"],
                 30, "the archive's Parquet files")  # fmt: skip
        import sqlite3

        db = sqlite3.connect(f"file:{gw.folder / 'spool.sqlite'}?mode=ro", uri=True)
        start = int(db.execute("SELECT value FROM meta WHERE key='sim:0:start'").fetchone()[0])
        db.close()
        sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for r in FactorySimulator(11, machines, start_ms=start, tick_ms=1000).run(ticks):
            sums[(r.machine, r.metric)][0] += 1
            sums[(r.machine, r.metric)][1] += r.value
        held, dupes = rig.archive()
        assert held == {k: (c, v) for k, (c, v) in sums.items()} and dupes == 0
        for kp in gw.devices.values():
            d = rig.rpc.call("twin_device", "0x" + kp.public.hex())
            assert d["gaps"] == 0 and d["batches"] == d["nextSeq"]
    finally:
        for p in rig.procs.values():
            p.kill()
            p.wait(10)
        rig.rpc.close()
