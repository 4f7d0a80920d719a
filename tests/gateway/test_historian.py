"""The historian source: a plant's history (CSV, Parquet) replayed into the gateway.

Exact conversion (decimal text to fixed point, half to even; times in s, ms, ISO-8601); a
compromised file refused row by row with counted reasons and never fatal; a replay stopped
part-way and resumed over the same spool holding exactly what one uninterrupted replay
holds; CSV and Parquet giving the same readings; and, with a real node: ``gateway init
--class --from-csv``, then a gateway process killed with SIGKILL mid-replay and restarted,
every accepted row on chain exactly once and every refusal counted once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port, wait_for

from twinchain.client import RpcClient
from twinchain.gateway import config as gwconfig
from twinchain.gateway import sources
from twinchain.gateway.core import Gateway
from twinchain.gateway.engineering import Limits, to_decimal, to_fixed
from twinchain.gateway.historian import detect_time_unit, time_parser
from twinchain.gateway.payloads import Metrics, Rejected
from twinchain.gateway.provision import write_gateway
from twinchain.gateway.spool import Spool
from twinchain.gateway.status import table
from twinchain.machines.simulator import MachineConfig
from twinchain.protocol.classdef import class_hash, load_class
from twinchain.protocol.telemetry import DEFAULT_METRICS

GEARBOX = """
[class]
name = "gearbox"
description = "Helical gearbox"
window_s = 60

[[metrics]]
name = "oil_temperature"
unit = "degC"
scale = 2
kind = "gauge"
rated = 65.0
min = -20.0
max = 120.0
public = true

[[metrics]]
name = "shaft_speed"
unit = "rpm"
scale = 0
kind = "gauge"
min = 0.0
max = 3000.0

[[metrics]]
name = "vibration_rms"
unit = "mm/s"
scale = 3
kind = "gauge"
min = 0.0
max = 45.0
public = true
"""
SCALES = {"oil_temperature": 2, "shaft_speed": 0, "vibration_rms": 3}
METRIC_COLUMNS = tuple(SCALES)


def fixed(text: str, scale: int) -> int:
    return int((Decimal(text) * 10**scale).to_integral_value(ROUND_HALF_EVEN))


def test_values_and_times_convert_exactly() -> None:
    # Half to even, on the decimal the text spells (a float: its shortest form).
    assert to_fixed(to_decimal("21.0005"), 3) == 21_000
    assert to_fixed(to_decimal("21.0015"), 3) == 21_002
    assert to_fixed(to_decimal(2.675), 2) == 268  # the binary float is 2.67499…
    assert to_fixed(to_decimal(" -0.0005 "), 3) == 0
    assert to_fixed(to_decimal(7), 3) == 7_000
    for bad in ("nan", "inf", "abc", "", True, None, [1]):
        with pytest.raises(Rejected) as e:
            to_decimal(bad)
        assert e.value.reason == "malformed", bad
    for huge in ("1e999", "9223372036854775.808"):
        with pytest.raises(Rejected) as e:
            to_fixed(to_decimal(huge), 3)
        assert e.value.reason == "out_of_range", huge
    with pytest.raises(Rejected) as e:
        Limits.of(-20.0, 120.0).check(to_decimal("120.01"))
    assert e.value.reason == "out_of_range"
    Limits.of(-20.0, 120.0).check(to_decimal("120.00"))

    s, ms, iso = time_parser("s"), time_parser("ms"), time_parser("iso")
    assert (s("1.0005"), s("1.0015"), s(12), s("7")) == (1000, 1002, 12_000, 7000)
    assert (ms("1700000000000"), ms(5), ms("5.5")) == (1_700_000_000_000, 5, 6)
    assert iso("2026-03-01T12:00:00Z") == 1_772_366_400_000
    assert iso("2026-03-01T13:00:00.123999+01:00") == 1_772_366_400_123
    assert iso("2026-03-01 12:00:00") == 1_772_366_400_000  # no zone: UTC
    for parse, bad in ((s, "x"), (ms, "nan"), (iso, "yesterday"), (iso, 5)):
        with pytest.raises(Rejected) as e:
            parse(bad)
        assert e.value.reason == "bad_time"
    assert detect_time_unit("t_seconds", "1") == "s"
    assert detect_time_unit("time_ms", "1") == "ms"
    assert detect_time_unit("time", "1700000000000") == "ms"
    assert detect_time_unit("time", "1700000000") == "s"
    assert detect_time_unit("time", "2026-03-01T12:00:00Z") == "iso"


# --------------------------------------------------------------------------- offline


@dataclass
class History:
    """A gearbox history with one bad row of every kind, and what it should give."""

    lines: list[str]
    good: list[tuple[str, str, dict[str, str]]]  # (unit, iso time, metric -> cell)
    refused: dict[str, int]

    def expected(self, ids: dict[str, int]) -> list[tuple[str, int, int, int]]:
        """(unit, metric id, ms, fixed) of every reading, in the file's order per unit."""
        iso = time_parser("iso")
        return [
            (u, ids[m], iso(t), fixed(v, SCALES[m])) for u, t, cells in self.good
            for m, v in cells.items()
        ]  # fmt: skip


def gearbox_history(rows: int = 40) -> History:
    lines = ["unit,time," + ",".join(METRIC_COLUMNS) + ",notes"]
    good: list[tuple[str, str, dict[str, str]]] = []

    def row(unit: str, t: str, cells: tuple[str, str, str], keep: dict[str, str]) -> None:
        lines.append(f"{unit},{t}," + ",".join(cells) + ",x")
        if keep:
            good.append((unit, t, keep))

    for k in range(rows):
        t = f"2026-01-01T00:{k // 6:02d}:{k % 6 * 10:02d}Z"
        for u in ("GB-1", "GB-2"):
            cells = (f"{60 + k * 0.125:.3f}", str(1500 + k), f"{1 + k / 2000:.4f}")
            row(u, t, cells, dict(zip(METRIC_COLUMNS, cells, strict=True)))
        if k == 5:
            lines.append("GB-1,not-a-time,60,1500,1,x")  # bad_time
            lines.append("GB-7,2026-01-01T00:00:55Z,60,1500,1,x")  # unknown_unit
            lines.append("GB-1,2026-01-01T00:00:10Z,60,1500,1,x")  # out_of_order
            lines.append("GB-2,2026-01-01T00:00:55Z,60,1500,1")  # malformed: 5 fields
            lines.append("")  # a blank line: skipped, not refused
        if k == 9:  # bad cells (out of the class's range, not a number): the rest goes on
            row("GB-1", "2026-01-01T00:01:35Z", ("130.0", "1500", "oops"), {"shaft_speed": "1500"})
        if k == 12:  # empty cells: no reading
            row("GB-2", "2026-01-01T00:02:05Z", ("", "1501", ""), {"shaft_speed": "1501"})
    lines.append('GB-1,"2026-01-01T01:00:00Z,1,1,1,x')  # an unterminated quote to the end
    refused = {"bad_time": 1, "unknown_unit": 1, "out_of_order": 1, "malformed": 3}
    refused["out_of_range"] = 1
    return History(lines, good, refused)


def _ids() -> dict[str, int]:
    return {"oil_temperature": 256, "shaft_speed": 257, "vibration_rms": 2}


def _gateway(tmp: Path, source: dict[str, Any], **batching: int) -> Gateway:
    """A gateway of devices GB-1 and GB-2 with one historian source; nothing is cut into
    batches (the readings stay pending in the spool, for the test to read)."""
    p = write_gateway(
        tmp, node="http://127.0.0.1:9", first_twin=0, simulator=False, extra_sources=[source],
        machines=[MachineConfig("GB-1", "pump"), MachineConfig("GB-2", "pump")],
        batching={"max_delay_ms": 3_600_000, "slot_lead_ms": 0, **batching},
    )  # fmt: skip
    return Gateway(gwconfig.load(p.config))


async def _replay(gw: Gateway, stop_after_rows: int | None = None) -> dict[str, Any]:
    """Run the gateway's historian against a chain it never reaches (genesis and metrics
    set by hand); stop once done, or once ``stop_after_rows`` rows are read."""
    await gw.open()
    gw.state.chain.genesis = b"\x01" * 32
    known = {m[0]: (m[1], m[3]) for m in DEFAULT_METRICS}
    gw.state.metrics = Metrics(known | {256: ("oil_temperature", 2), 257: ("shaft_speed", 0)})
    task = asyncio.create_task(gw.run([sources.build(0, s) for s in gw.cfg.sources]))
    report: dict[str, Any] = {}
    for _ in range(1000):
        await asyncio.sleep(0.005)
        report = gw.status()["sources"].get("historian-0", {})
        if report.get("done") or report.get("error"):
            break
        if stop_after_rows is not None and report.get("rows", 0) >= stop_after_rows:
            break
    gw.stop()
    await task
    return report


def _spooled(spool: Path, names: dict[bytes, str]) -> dict[str, list[tuple[int, int, int]]]:
    """The readings pending in a spool, per device name, in order."""
    sp = Spool(spool)
    try:
        rows = sp.load_pending()
    finally:
        sp.close()
    out: dict[str, list[tuple[int, int, int]]] = {}
    for r in rows:
        out.setdefault(names[r.device], []).extend(r.readings)
    return out


def test_a_compromised_history_is_refused_row_by_row_and_resumes_exactly(tmp_path: Path) -> None:
    h = gearbox_history()
    (tmp_path / "gearbox.toml").write_text(GEARBOX)
    csv_path = tmp_path / "history.csv"
    csv_path.write_text("\ufeff" + "\n".join(h.lines) + "\n")  # with a BOM, as Excel writes
    src = {"type": "historian", "class": str(tmp_path / "gearbox.toml"), "time_column": "time",
           "chunk_rows": 7}  # fmt: skip

    # One uninterrupted replay: the good readings, the bad rows and cells counted by reason.
    gw = _gateway(tmp_path / "one", src | {"path": str(csv_path)})
    names = {d.key: d.name for d in gw.state.devices.values()}
    report = asyncio.run(_replay(gw))
    assert report["done"] and report["error"] == "" and report["time_unit"] == "iso"
    assert report["refused"] == h.refused
    whole = _spooled(gw.cfg.spool, names)
    expected: dict[str, list[tuple[int, int, int]]] = {}
    for u, m, ts, v in h.expected(_ids()):
        expected.setdefault(u, []).append((m, ts, v))
    assert whole == expected

    # Held part-way by back-pressure (no node drains the spool) and stopped there; resumed by
    # another gateway over the same spool: the same readings, each once, the same counts.
    gw2 = _gateway(tmp_path / "two", src | {"path": str(csv_path)}, high_water=60, low_water=1)
    names2 = {d.key: d.name for d in gw2.state.devices.values()}
    first = asyncio.run(_replay(gw2, stop_after_rows=14))
    assert not first["done"] and 14 <= first["rows"] < report["rows"] // 2
    gw3 = Gateway(replace(gw2.cfg, batching=replace(gw2.cfg.batching, high_water=10_000)))
    again = asyncio.run(_replay(gw3))
    assert again["done"] and again["refused"] == h.refused and again["rows"] == report["rows"]
    assert _spooled(gw3.cfg.spool, names2) == whole

    # The good rows as Parquet, time as a timestamp column: bit-identical readings.
    import pyarrow as pa
    import pyarrow.parquet as pq

    iso = time_parser("iso")
    cols: dict[str, list[Any]] = {"unit": [], "time": []} | {m: [] for m in METRIC_COLUMNS}
    for u, t, cells in h.good:
        cols["unit"].append(u)
        cols["time"].append(iso(t))
        for m in METRIC_COLUMNS:
            cols[m].append(float(cells[m]) if m in cells else None)
    tbl = pa.table(cols).set_column(1, "time", pa.array(cols["time"], pa.timestamp("ms", tz="UTC")))
    pq.write_table(tbl, tmp_path / "history.parquet", row_group_size=16)
    gw4 = _gateway(tmp_path / "four", src | {"path": str(tmp_path / "history.parquet")})
    names4 = {d.key: d.name for d in gw4.state.devices.values()}
    rep4 = asyncio.run(_replay(gw4))
    assert rep4["done"] and rep4["refused"] == {}
    assert _spooled(gw4.cfg.spool, names4) == whole


# --------------------------------------------------------------------------- a real node


def node_history(rows: int = 300) -> History:
    """Two gearboxes every 10 s from t = 0 (relative seconds, as a CSV export has them),
    with bad rows; ``good`` holds t in seconds instead of ISO."""
    lines = ["unit,t_seconds," + ",".join(METRIC_COLUMNS)]
    good: list[tuple[str, str, dict[str, str]]] = []
    for k in range(rows):
        for j, u in enumerate(("GB-1", "GB-2")):
            cells = (f"{60 + (k % 40) * 0.125 + j:.3f}", str(1500 + k), f"{1 + k / 2000:.4f}")
            lines.append(f"{u},{k * 10}," + ",".join(cells))
            good.append((u, str(k * 10), dict(zip(METRIC_COLUMNS, cells, strict=True))))
        if k == 50:
            lines += ["GB-1,ten,60,1500,1", ",505,60,1500,1", "GB-2,20,60,1500,1", "GB-1,1"]
        if k == 150:
            lines.append("GB-2,1505,121.5,1500,-1")  # both gauges out of the class's range
            good.append(("GB-2", "1505", {"shaft_speed": "1500"}))
    refused = {"bad_time": 1, "unknown_unit": 1, "out_of_order": 1, "malformed": 1}
    refused["out_of_range"] = 2
    return History(lines, good, refused)


@dataclass
class ReplayRig:
    tmp: Path
    config: Path
    devices: dict[str, str]  # unit -> device key (0x)
    rpc: RpcClient
    procs: dict[str, subprocess.Popen[bytes]]

    def start_gateway(self) -> None:
        self.procs["gateway"] = subprocess.Popen(
            [sys.executable, "-m", "twinchain", "gateway", "--config", str(self.config)],
            stdout=(self.tmp / "gateway.log").open("ab"),
            stderr=subprocess.STDOUT,
            env=os.environ | {"COLUMNS": "400"},  # one log line a line
        )

    def kill_gateway(self) -> None:
        p = self.procs.pop("gateway")
        p.kill()  # SIGKILL
        p.wait(10)

    def status(self) -> dict[str, Any]:
        s: dict[str, Any] = json.loads((self.config.parent / "status.json").read_text())
        assert s["pid"] == self.procs["gateway"].pid
        return s

    def on_chain(self) -> dict[str, dict[str, Any]]:
        return {u: self.rpc.call("twin_device", key) for u, key in self.devices.items()}


@pytest.fixture(scope="module")
def replay_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayRig]:
    """``gateway init --class gearbox.toml --from-csv history.csv`` and its dev chain's node
    (one for the module)."""
    tmp = tmp_path_factory.mktemp("replay")
    (tmp / "gearbox.toml").write_text(GEARBOX)
    (tmp / "history.csv").write_text("\n".join(node_history().lines) + "\n")
    port = free_port()
    cmd = [sys.executable, "-m", "twinchain", "gateway", "init", "--dir", str(tmp / "gw"),
           "--class", str(tmp / "gearbox.toml"), "--from-csv", str(tmp / "history.csv"),
           "--node", f"http://127.0.0.1:{port}", "--prometheus-port", "0",
           "--speed", "600"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    config = tmp / "gw" / "gateway.toml"
    config.write_text(
        config.read_text().replace("[batching]\n", "[batching]\nmax_delay_ms = 200\n")
    )
    import tomllib

    devices = {d["name"]: d["key"] for d in tomllib.loads(config.read_text())["devices"]}
    node = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "--log", "warning", "node", "--chain",
         str(tmp / "gw" / "spec.json"), "--validator", "--key", "//Alice", "--base-path",
         str(tmp / "chain"), "--rpc-port", str(port), "--no-prometheus", "--no-p2p",
         "--archive-facility", "0"],
        stdout=(tmp / "node.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    rig = ReplayRig(tmp, config, devices, RpcClient(f"http://127.0.0.1:{port}", timeout=5), {})
    rig.procs["node"] = node
    try:
        wait_for(lambda: rig.rpc.call("system_health") is not None, 30, "the node's RPC")
        yield rig
    finally:
        for p in rig.procs.values():
            p.kill()
            p.wait(10)
        rig.rpc.close()


@pytest.mark.slow
def test_a_replay_lands_on_chain_exactly_once_through_a_kill(replay_rig: ReplayRig) -> None:
    rig = replay_rig
    h = node_history()
    ids = {"oil_temperature": 256, "shaft_speed": 257, "vibration_rms": 2}
    per_unit: dict[str, int] = {}
    sums: dict[tuple[str, int], list[int]] = {}
    for u, _, cells in h.good:
        per_unit[u] = per_unit.get(u, 0) + len(cells)
        for m, v in cells.items():
            acc = sums.setdefault((u, ids[m]), [0, 0])
            acc[0] += 1
            acc[1] += fixed(v, SCALES[m])

    # init registered the class in genesis, its new metrics under the chain's ids.
    registered = rig.rpc.call("twin_class", "gearbox")
    assert {m["name"]: m["id"] for m in registered["record"]["metrics"]} == ids
    assert registered["hash"] == "0x" + class_hash(load_class(rig.tmp / "gearbox.toml")).hex()

    # First life: killed with SIGKILL part-way through the (paced) replay.
    rig.start_gateway()

    def part_way() -> bool:
        s = rig.status()["sources"]["historian-0"]
        return s["rows"] >= 200 and not s["done"]

    wait_for(part_way, 30, "the replay part-way")
    rig.kill_gateway()
    # Second life: resumes where the spool is, and finishes.
    rig.start_gateway()
    wait_for(lambda: rig.status()["sources"]["historian-0"]["done"], 30, "the replay's end")
    total = sum(per_unit.values())
    wait_for(
        lambda: sum(d["readings"] for d in rig.on_chain().values()) >= total,
        30,
        lambda: f"{total} readings on chain: {rig.on_chain()}",
    )
    for u, d in rig.on_chain().items():  # each reading once: no more, no gaps
        assert d["readings"] == per_unit[u] and d["gaps"] == 0, (u, d)
        assert d["batches"] == d["nextSeq"] > 0, (u, d)
    chain: dict[tuple[str, int], list[int]] = {}
    for twin, u in enumerate(("GB-1", "GB-2")):  # init's twins follow the units' order
        for a in rig.rpc.call("twin_telemetryAggregates", twin):
            acc = chain.setdefault((u, a["metric"]), [0, 0])
            acc[0] += a["count"]
            acc[1] += int(a["sum"])
            assert a["windowStart"] % 86_400_000 % a["windowMs"] == 0
    assert chain == {k: v for k, v in sums.items() if k[1] in (2, 256)}  # the public ones
    # t = 0 landed on a midnight UTC (time_offset "now", aligned by a day).
    last = {r["metric"]: r["timestamp"] for r in rig.on_chain()["GB-2"]["lastReadings"]}
    assert last[256] % 86_400_000 == 2990 * 1000

    # Refusals: counted once across both lives (kept in the spool with the position).
    s = rig.status()
    src = s["sources"]["historian-0"]
    assert src["refused"] == h.refused and src["error"] == ""
    assert src["rows"] == len(h.lines) - 1
    log = (rig.tmp / "gateway.log").read_text()
    resumed = [int(r) for r in re.findall(r"resuming at history\.csv row (\d+)", log)]
    assert len(resumed) == 2 and resumed[0] == 0 and 200 <= resumed[1] < src["rows"], resumed
    from rich.console import Console

    out = Console(record=True, width=200)
    out.print(table(s))
    text = out.export_text()
    assert "historian-0" in text and "(done)" in text and "out_of_range 2" in text
