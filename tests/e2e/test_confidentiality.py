"""Nothing private leaves the owner: a node, a real gateway (simulator and MQTT sources) and
the facility archive run; afterwards every block, event and state value the node stores, its
log, and every public JSON-RPC answer are searched for the raw readings and the aggregates of
the metrics the twins keep private. None may be there; they must all be in the archive.

The needles are canaries: readings published over MQTT for one device with values no chain
field could hold by chance, in every encoding a value could take (8-byte big- and
little-endian, decimal, hex). A public canary (temperature, public by default) is the control:
its summaries are on chain by design, so the search must find it, or it proves nothing. The
simulator's own readings flow beside them; the structure of what the chain holds is checked
for them (each commitment's summaries name only public metrics, aggregates exist only for
public metrics).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import plyvel
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from realnet import free_port, poll, public_chain

from twinchain.archive.query import ArchiveQuery
from twinchain.client import Client, RpcClient
from twinchain.gateway.provision import Provisioned, with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import dev_spec
from twinchain.protocol.jsonrpc import to_hex
from twinchain.protocol.telemetry import (
    DEFAULT_PUBLIC,
    ENERGY,
    TEMPERATURE,
    UNITS_PRODUCED,
)

AMQTT = Path(sys.executable).with_name("amqtt")
MACHINES = [
    MachineConfig("mill-1", "cnc_mill"),
    MachineConfig("pump-1", "pump"),
    MachineConfig("canary-1", "compressor"),
]
SIMULATED = ("mill-1", "pump-1")
WINDOW_MS = 10_000
# Canary values: large, odd-looking, distinct; i64.
PRIVATE_BASE = 0x5EC2_E7A1_0000
PUBLIC_BASE = 0x0C0A_7E00_0000
CANARIES = 24  # readings per canary metric, 4 per second


class Plant:
    """A dev node keeping facility 0's archive, an MQTT broker and the facility's gateway."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rpc_port, self.mqtt_port = free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        sources = [
            {
                "type": "simulator",
                "seed": 3,
                "tick_ms": 500,
                "realtime": True,
                "machines": [
                    {"name": m.name, "class": m.equipment_class}
                    for m in MACHINES
                    if m.name in SIMULATED
                ],
            },
            {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": self.mqtt_port,
                "topics": ["plant/#"],
                "client_id": "gw-leak",
                "username": "gateway",
                "password": "x",
            },
        ]
        self.gw: Provisioned = write_gateway(
            tmp / "gw",
            node=f"http://127.0.0.1:{self.rpc_port}",
            machines=MACHINES,
            first_twin=0,
            simulator=False,
            extra_sources=sources,
            batching={"max_delay_ms": 300},
        )
        spec = with_gateway(dev_spec().to_json(), self.gw, MACHINES, window_ms=WINDOW_MS)
        (tmp / "spec.json").write_text(json.dumps(spec))
        self.db = tmp / "chain"
        self.archive = self.db / "archive"

    def start(self) -> None:
        cfg = self.tmp / "broker.yaml"
        cfg.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{self.mqtt_port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: false\n"
        )
        self._spawn("broker", [str(AMQTT), "-c", str(cfg)])

        def broker_up() -> bool:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), 0.5):
                return True

        poll(broker_up, 20, "the MQTT broker")
        self._spawn(
            "node",
            [sys.executable, "-m", "twinchain", "node", "--chain", str(self.tmp / "spec.json"),
             "--validator", "--key", "//Alice", "--base-path", str(self.db),
             "--rpc-port", str(self.rpc_port), "--no-prometheus", "--no-p2p",
             "--archive-facility", "0", "--archive-flush-s", "1"],
        )  # fmt: skip
        with RpcClient(self.url, timeout=5) as rpc:
            poll(lambda: rpc.call("system_health") is not None, 30, "the node's RPC")
        self._spawn(
            "gateway",
            [sys.executable, "-m", "twinchain", "gateway", "--config", str(self.gw.config)],
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    p = Plant(tmp_path)
    try:
        p.start()
        yield p
    finally:
        p.close()


def publish_canaries(port: int) -> dict[int, list[tuple[int, int]]]:
    """Publish the canary readings of ``canary-1`` over MQTT; metric -> [(ts, value)]."""
    sent: dict[int, list[tuple[int, int]]] = {ENERGY: [], UNITS_PRODUCED: [], TEMPERATURE: []}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="canary-publisher")
    client.username_pw_set("publisher", "x")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for i in range(CANARIES):
            ts = int(time.time() * 1000)
            readings = []
            for metric, base in (
                (ENERGY, PRIVATE_BASE),
                (UNITS_PRODUCED, PRIVATE_BASE + 0x1_0000_0000),
                (TEMPERATURE, PUBLIC_BASE),
            ):
                value = base + 0x1111 * (i + 1)
                readings.append({"metric": metric, "ts": ts, "raw": value})
                sent[metric].append((ts, value))
            body = json.dumps({"device": "canary-1", "readings": readings})
            client.publish("plant/canary-1", body, qos=1).wait_for_publish(10)
            time.sleep(0.25)
    finally:
        client.loop_stop()
        client.disconnect()
    return sent


def aggregates(readings: Iterable[tuple[int, int]]) -> set[int]:
    """The values a leak of aggregates would show: per window sum, min, max and last."""
    windows: dict[int, list[tuple[int, int]]] = {}
    for ts, v in readings:
        windows.setdefault(ts - ts % WINDOW_MS, []).append((ts, v))
    out: set[int] = set()
    for rs in windows.values():
        values = [v for _, v in rs]
        out |= {sum(values), min(values), max(values), max(rs)[1]}
    return out


def encodings(v: int) -> tuple[list[bytes], list[str]]:
    """(binary, text) forms a value could take in storage or in a JSON answer: i64 either
    way round, i128 (the chain's window sums), decimal and hex. The canaries are above 2**32,
    so msgpack (the chain's codec) writes them as a marker and the same big-endian i64."""
    be, le = v.to_bytes(8, "big", signed=True), v.to_bytes(8, "little", signed=True)
    be16 = v.to_bytes(16, "big", signed=True)
    return [be, le, be16], [str(v), be.hex(), be16.hex(), f"{v:x}"]


def crawl_rpc(url: str, twins: int, devices: list[bytes]) -> str:
    """Every public answer about the chain: blocks, their events, the whole state at the
    finalized head, and the twin_* reads of every twin and device."""
    with Client(url, timeout=30) as c:
        out = public_chain(c)
        for t in range(twins):
            for method in ("twin_equipment", "twin_telemetryAggregates", "twin_telemetryBatches",
                           "twin_disclosure"):  # fmt: skip
                out.append(c.call(method, t))
        for d in devices:
            out.append(c.call("twin_device", to_hex(d)))
    return json.dumps(out, default=str)


def dump_leveldb(path: Path) -> bytes:
    """Every key and value of the node's chain database (the node is stopped)."""
    parts: list[bytes] = []
    db = plyvel.DB(str(path))
    try:
        for k, v in db.iterator():
            parts += (k, v)
    finally:
        db.close()
    return b"\x00".join(parts)


@pytest.mark.slow
def test_no_private_reading_or_aggregate_leaves_the_owner(plant: Plant) -> None:
    # Once the gateway streams (its MQTT subscription is up: the broker keeps no messages
    # for a session that does not exist yet), the canaries.
    status = plant.gw.folder / "status.json"
    poll(lambda: json.loads(status.read_text())["readings_final"] > 0, 60, "a gateway")
    sent = publish_canaries(plant.mqtt_port)
    private = sent[ENERGY] + sent[UNITS_PRODUCED]
    canary_key = plant.gw.devices["canary-1"].public.hex()

    # All canaries reach the archive (so they went through the whole pipeline), and the chain
    # keeps aggregating the public one while the simulator streams.
    def archived() -> bool:
        _, rows = ArchiveQuery(plant.archive).rows(
            f"SELECT metric, count(*) FROM readings WHERE device = '{canary_key}' GROUP BY metric"
        )
        return {int(m): int(n) for m, n in rows} == {m: CANARIES for m in sent}

    poll(archived, 60, "every canary reading in the facility archive")
    with Client(plant.url, timeout=10) as c:
        canary_twin = MACHINES.index(MachineConfig("canary-1", "compressor"))
        public = set(c.call("twin_disclosure", canary_twin)["public"])
        assert public == set(DEFAULT_PUBLIC) and ENERGY not in public
        poll(
            lambda: any(
                a["metric"] == TEMPERATURE for a in c.call("twin_telemetryAggregates", canary_twin)
            ),
            30,
            "the public canary's aggregates on chain",
        )
        # The simulator's machines: each commitment names only public metrics, and the chain
        # aggregates nothing else.
        for t in range(len(MACHINES)):
            assert {a["metric"] for a in c.call("twin_telemetryAggregates", t)} <= public

    rpc_text = crawl_rpc(
        plant.url, len(MACHINES), list(d.public for d in plant.gw.devices.values())
    )
    plant.stop("gateway")
    plant.stop("node")
    stored = dump_leveldb(plant.db / "chains" / "dev" / "db")
    log = (plant.tmp / "node.log").read_text(errors="replace")

    def found(values: Iterable[int]) -> list[str]:
        hits = []
        for v in values:
            binary, text = encodings(v)
            where = [w for b, w in ((b, "stored") for b in binary) if b in stored]
            where += [w for s, w in ((s, "rpc") for s in text) if s in rpc_text]
            where += ["log" for s in text if s in log]
            if where:
                hits.append(f"{v:#x} in {sorted(set(where))}")
        return hits

    # The control: the public canary's summaries are on chain, and the search finds them.
    assert found(aggregates(sent[TEMPERATURE])), "the search cannot even find public values"
    # No private canary, raw or aggregated, anywhere outside the archive.
    leaked = found({v for _, v in private}) + found(aggregates(sent[ENERGY]))
    leaked += found(aggregates(sent[UNITS_PRODUCED]))
    assert not leaked, f"private values left the owner: {leaked}"
