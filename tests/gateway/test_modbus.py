"""The Modbus TCP source against pymodbus's own server: register decoding (types, word and
byte order), read requests merged over contiguous ranges, configuration refused with its
reason, and, with a real node, every accepted poll on chain exactly once across the server
going away and coming back, while exception responses and out-of-range values are refused
and counted."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port, wait_for

from twinchain.client import RpcClient
from twinchain.gateway import config as gwconfig
from twinchain.gateway import sources
from twinchain.gateway.core import Gateway
from twinchain.gateway.modbus import TYPES, Register, decode, encode, parse_config, plan
from twinchain.gateway.provision import Provisioned, with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import dev_spec

MACHINES = [MachineConfig("pump-1", "pump"), MachineConfig("comp-1", "compressor")]


def test_registers_decode_and_reads_merge() -> None:
    # float32 1234.5 is 0x449A5000: big word and byte order, low word first, bytes swapped.
    assert encode(1234.5, "float32") == [0x449A, 0x5000]
    assert encode(1234.5, "float32", word_order="little") == [0x5000, 0x449A]
    assert encode(1234.5, "float32", byte_order="little") == [0x9A44, 0x0050]
    assert decode([0xFFFF, 0xFFFE], "int32") == -2
    assert decode([0xFFFE, 0xFFFF], "int32", word_order="little") == -2
    assert decode([0x8000], "int16") == -32768 and decode([0x8000], "uint16") == 32768
    samples = {"int16": -300, "uint16": 65000, "int32": -70000, "uint32": 4_000_000_000,
               "int64": -(2**40) - 3, "uint64": 2**63 + 5, "float32": 0.5,
               "float64": -1e-9}  # fmt: skip
    for kind, value in samples.items():
        for wo in ("big", "little"):
            for bo in ("big", "little"):
                regs = encode(value, kind, wo, bo)
                assert len(regs) == TYPES[kind][1] and decode(regs, kind, wo, bo) == value

    def reg(table: str, address: int, kind: str = "uint16") -> Register:
        return Register("d", "temperature", table, address, kind)

    blocks = plan([reg("holding", 0, "float32"), reg("holding", 2), reg("input", 2),
                   reg("holding", 5, "int64"), reg("holding", 1), reg("holding", 200)])  # fmt: skip
    assert [(b.table, b.start, b.count, len(b.registers)) for b in blocks] == [
        ("holding", 0, 3, 3),  # contiguous and overlapping: one request
        ("holding", 5, 4, 1),  # a gap of 2: another
        ("holding", 200, 1, 1),
        ("input", 2, 1, 1),
    ]
    gap = plan([reg("holding", 0), reg("holding", 3)], max_gap=2)
    assert [(b.start, b.count) for b in gap] == [(0, 4)]
    run = plan([reg("holding", a) for a in range(300, 426)])  # 126 contiguous registers
    assert [(b.start, b.count) for b in run] == [(300, 125), (425, 1)]  # 125: the most
    good = {"registers": [{"device": "d", "metric": "power", "address": 1}]}
    assert parse_config(good, Path("."), {"d"}).registers[0].table == "holding"
    for bad, why in (
        ({"registers": []}, "non-empty"),
        ({"registers": [{"device": "x", "metric": 1, "address": 1}]}, "not a configured"),
        ({"registers": [{"device": "d", "metric": 1, "address": 1, "type": "bcd"}]}, "type"),
        ({"registers": [{"device": "d", "metric": 1, "address": 65535, "type": "int32"}]}, "past"),
        ({"registers": [{"device": "d", "metric": 1, "address": 1, "table": "coil"}]}, "table"),
        (good | {"interval_ms": 1}, "interval_ms"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_config(bad, Path("."), {"d"})
    with pytest.raises(gwconfig.ConfigError, match="modbus"):
        gwconfig.parse({"sources": [{"type": "modbus", **good}]}, Path("."))  # no device "d"


# --------------------------------------------------------------------------- a real node

# (device, metric, table, address, type, options, registers written, on chain per poll)
MAP: list[tuple[str, str, str, int, str, dict[str, Any], list[int], int | None]] = [
    ("pump-1", "temperature", "input", 0, "int16", {"scale": 0.1}, encode(456, "int16"), 45_600),
    ("pump-1", "pressure", "holding", 10, "float32", {"word_order": "little"},
     encode(401.25, "float32", "little"), 401_250),
    ("pump-1", "vibration_rms", "holding", 12, "uint32",
     {"byte_order": "little", "scale": 0.001}, encode(2345, "uint32", "big", "little"), 2_345),
    ("pump-1", "power", "holding", 14, "int64", {}, encode(15_000, "int64"), 15_000),
    ("comp-1", "pressure", "input", 1, "int16", {"offset": 100}, encode(5, "int16"), 105_000),
    # Refused every poll: above its limit; beyond the server's registers (an exception).
    ("comp-1", "vibration_rms", "holding", 20, "uint16", {"scale": 0.01, "max": 5.0},
     encode(900, "uint16"), None),
    ("comp-1", "temperature", "holding", 60, "int16", {}, [], None),
]  # fmt: skip


class ModbusServer:
    """pymodbus's asyncio TCP server with 50 holding and 10 input registers of unit 1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: Any = None
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        def block(n: int, bits: bool = False) -> list[Any]:
            kind = DataType.BITS if bits else DataType.REGISTERS
            return [SimData(0, count=n, values=False if bits else 0, datatype=kind)]

        device = SimDevice(1, simdata=(block(1, True), block(1, True), block(50), block(10)))
        self.server = ModbusTcpServer([device], address=("127.0.0.1", self.port))
        self.task = asyncio.create_task(self.server.serve_forever())
        await asyncio.sleep(0.2)
        for _, _, table, address, _, _, regs, _ in MAP:
            if regs:  # function codes: 16 writes holding registers, 4 names the input ones
                await self.server.async_setValues(1, 16 if table == "holding" else 4, address, regs)

    async def stop(self) -> None:
        await self.server.shutdown()
        assert self.task is not None
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture(scope="module")
def modbus_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Provisioned, str]]:
    """A dev chain whose genesis binds the gateway's devices, its node running (one for the
    module); the gateway's Modbus source points at a port of its own."""
    tmp = tmp_path_factory.mktemp("modbus")
    rpc_port, mb_port = free_port(), free_port()
    source = {
        "type": "modbus",
        "port": mb_port,
        "interval_ms": 100,
        "timeout_s": 1.0,
        "reconnect_max_s": 1.0,
        "registers": [
            {"device": d, "metric": m, "table": t, "address": a, "type": k, **opts}
            for d, m, t, a, k, opts, _, _ in MAP
        ],
    }
    gw = write_gateway(
        tmp / "gw", node=f"http://127.0.0.1:{rpc_port}", machines=MACHINES, first_twin=0,
        simulator=False, extra_sources=[source], batching={"max_delay_ms": 200},
    )  # fmt: skip
    spec = with_gateway(dev_spec().to_json(), gw, MACHINES, window_ms=10_000)
    (tmp / "spec.json").write_text(json.dumps(spec))
    node = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "--log", "warning", "node", "--chain",
         str(tmp / "spec.json"), "--validator", "--key", "//Alice", "--base-path",
         str(tmp / "chain"), "--rpc-port", str(rpc_port), "--no-prometheus", "--no-p2p"],
        stdout=(tmp / "node.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{rpc_port}"
    try:
        with RpcClient(url, timeout=5) as rpc:
            wait_for(lambda: rpc.call("system_health") is not None, 30, "the node's RPC")
        yield gw, url
    finally:
        node.kill()
        node.wait(10)


@pytest.mark.slow
def test_polls_land_on_chain_exactly_once_across_a_server_restart(
    modbus_node: tuple[Provisioned, str],
) -> None:
    p, url = modbus_node
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    cfg = gwconfig.load(p.config)
    server = ModbusServer(cfg.sources[0]["port"])

    async def until(cond: Any, timeout: float, what: str) -> None:
        for _ in range(int(timeout / 0.05)):
            if cond():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        gw = Gateway(cfg)
        await gw.open()
        await server.start()
        task = asyncio.create_task(gw.run([sources.build(0, s) for s in cfg.sources]))
        try:
            src = gw.state.sources

            def info() -> dict[str, Any]:
                return src.get("modbus-0", {"polls": 0, "refused": {}, "connected": False})

            await until(lambda: info()["polls"] >= 8, 20, "polls")
            await server.stop()  # the server goes away: read errors, reconnection attempts
            await until(lambda: info()["refused"].get("read_error", 0) >= 1, 10, "a read error")
            before = info()["polls"]
            await server.start()
            await until(lambda: info()["polls"] >= before + 8, 15, "polls after reconnecting")
            await server.stop()
            await until(lambda: not info()["connected"], 10, "the server gone")

            def settled() -> bool:
                s = gw.status()
                return s["readings_final"] == s["spooled"] == info()["readings"] > 0

            await until(settled, 30, "every accepted poll final on chain")
            return gw.status(), dict(info())
        finally:
            gw.stop()
            await task

    status, info = asyncio.run(main())
    polls = info["polls"]
    assert info["reconnects"] >= 1 and info["readings"] == polls * 5
    assert info["refused"]["modbus_exception"] == polls  # one register in that request
    assert info["refused"]["out_of_range"] == polls
    with RpcClient(url, timeout=5) as rpc:
        on_chain = 0
        for name, kp in p.devices.items():
            d = rpc.call("twin_device", "0x" + kp.public.hex())
            assert d["gaps"] == 0 and d["batches"] == d["nextSeq"] > 0, (name, d)
            on_chain += d["readings"]
        assert on_chain == info["readings"] == status["spooled"]  # each accepted poll once
        for twin, (name, _) in enumerate((m.name, m) for m in MACHINES):
            sums: dict[int, list[int]] = {}
            for a in rpc.call("twin_telemetryAggregates", twin):
                acc = sums.setdefault(a["metric"], [0, 0])
                acc[0] += a["count"]
                acc[1] += int(a["sum"])
            want = {
                {"temperature": 1, "vibration_rms": 2, "pressure": 3}[m]: [polls, polls * v]
                for d, m, *_, v in MAP
                if d == name and v is not None and m != "power"  # power is private
            }
            assert sums == want, name
