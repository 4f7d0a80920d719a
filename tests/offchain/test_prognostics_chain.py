"""The prognostic worker against a real node process: a gearbox class registered in genesis
(not one of the simulator's), two twins whose readings go on chain as device-signed batches
(the oil temperature public, the other metrics private, read back from the archive), and a
model trained offline from a CSV with windows twice the chain's. The worker lands one
``submit_prognosis`` alert, for the failing unit, on the very window, with the very
probability and RUL that ``offchain evaluate`` finds in the same rows offline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from realnet import free_port
from test_prognostics import GEARBOX, fleet

from twinchain.cli import main
from twinchain.client import Client, RpcClient
from twinchain.node.chain_spec import dev_spec
from twinchain.offchain.history import History, UnitHistory, read_history
from twinchain.offchain.prognostics import (
    PrognosticModel,
    evaluate_unit,
    fixed_columns,
    train_prognostic,
)
from twinchain.offchain.worker import PdmWorker
from twinchain.primitives.keys import Keypair
from twinchain.protocol.classdef import (
    class_record,
    genesis_classes,
    parse_class,
    record_to_json,
)
from twinchain.protocol.telemetry import DEFAULT_METRICS, MAX_BATCHES, MAX_READINGS, sign_batch

CHAIN_WINDOW_MS = 60_000
MODEL_WINDOW_S = 120
IDS = {"oil_temperature": 256, "shaft_speed": 257, "acoustic_level": 258}
GATEWAY = Keypair.from_dev_name("Dave")
WORKER = Keypair.from_dev_name("Bob")
DEVICES = [Keypair.from_dev_name("gearbox-device-0"), Keypair.from_dev_name("gearbox-device-1")]


def _class():  # type: ignore[no-untyped-def]
    import tomllib

    doc = tomllib.loads(GEARBOX)
    for m in doc["metrics"]:
        m["id"] = IDS[m["name"]]
        m["public"] = m["name"] == "oil_temperature"
    return parse_class(doc)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("prognostic-node")
    cls = _class()
    spec = dev_spec()
    twin = {"manufacturer": "//Eve", "owner": "//Charlie", "class": "gearbox",
            "model": "GB-1", "lifecycle": "Active", "facility": 0, "rated": [], "envelope": [],
            "access": [["//Bob", 1, 10**15]]}  # fmt: skip
    spec.genesis.update(
        {
            "facility": {"facilities": [{"operator": "//Charlie", "name": "Test Plant"}]},
            "roles": {
                "grants": [
                    ["//Dave", "Gateway"],
                    ["//Bob", "PredictiveWorker"],
                    ["//Eve", "EquipmentManufacturer"],
                ]
            },
            "equipment": {
                "classes": [*genesis_classes(), record_to_json(class_record(cls))],
                "twins": [{**twin, "serial": "G-1"}, {**twin, "serial": "G-2"}],
            },
            "telemetry": {
                "window_ms": CHAIN_WINDOW_MS,
                "metrics": [list(m) for m in DEFAULT_METRICS]
                + [
                    [IDS[m.name], m.name, m.unit, m.scale, m.kind.capitalize()] for m in cls.metrics
                ],
                "default_public": [IDS["oil_temperature"]],
                "devices": [
                    {"device": "0x" + d.public.hex(), "twin": i, "gateway": "//Dave"}
                    for i, d in enumerate(DEVICES)
                ],
            },
        }
    )
    (tmp / "spec.json").write_text(json.dumps(spec.to_json()))
    port = free_port()
    log = tmp / "node.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "--log", "warning", "node",
         "--chain", str(tmp / "spec.json"), "--base-path", str(tmp / "db"),
         "--validator", "--key", "//Alice", "--no-p2p", "--rpc-port", str(port),
         "--no-prometheus", "--archive-facility", "0"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        rpc = RpcClient(f"http://127.0.0.1:{port}")
        end = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"node exited:\n{log.read_text()[-3000:]}")
            try:
                rpc.call("chain_getHeader")
                break
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _upload(client: Client, rows: list[list[tuple[int, int, int]]]) -> None:
    """Each device's readings (metric, ts, value), signed in batches within one chain
    window, committed by the gateway and delivered to the facility's archive."""
    genesis = client.info.genesis_hash
    batches = []
    for i, readings in enumerate(rows):
        per_window: dict[int, list[tuple[int, int, int]]] = {}
        for r in readings:
            per_window.setdefault(r[1] // CHAIN_WINDOW_MS, []).append(r)
        seq = 0
        for _, rs in sorted(per_window.items()):
            for k in range(0, len(rs), MAX_READINGS):
                chunk = rs[k : k + MAX_READINGS]
                public = [IDS["oil_temperature"]]
                batches.append(sign_batch(DEVICES[i], genesis, i, seq, chunk, public))
                seq += 1
    for k in range(0, len(batches), MAX_BATCHES):
        part = batches[k : k + MAX_BATCHES]
        call = client.call_function("Telemetry", "submit", batches=[b.commitment() for b in part])
        final = client.submit_and_watch(call, GATEWAY, timeout=60)[-1]
        assert final.kind == "finalized", final
        assert {d.status for d in client.deliver(part, GATEWAY)} == {"archived"}


@dataclass
class Plant:
    """What the module's node holds: a failing unit (twin 0) and a healthy one (twin 1) of
    the runs CSV, replayed from ``base`` (ms) on."""

    base: int
    history: History
    failures: dict[str, float | None]
    folder: Path

    @property
    def failing(self) -> UnitHistory:
        return self.history.units[0]

    @property
    def healthy(self) -> UnitHistory:
        return self.history.units[5]


@pytest.fixture(scope="module")
def plant(node: str, tmp_path_factory: pytest.TempPathFactory) -> Plant:
    cls = _class()
    folder = tmp_path_factory.mktemp("gearbox-plant")
    healthy, _ = fleet(1, 6, 0)
    (folder / "healthy.csv").write_text(healthy)
    runs, failures = fleet(2, 8, 4)
    (folder / "runs.csv").write_text(runs)
    history = read_history(folder / "runs.csv", [m.name for m in cls.metrics])
    p = Plant(0, history, failures, folder)
    with Client(node, timeout=30) as client:
        now = int(time.time() * 1000)
        # the replay's base: a whole day, as the historian gateway source aligns it
        base = now - now % 86_400_000 - 86_400_000
        while base + p.failing.end_ms > now - 120_000:
            base -= 86_400_000
        p.base = base
        rows = []
        for unit in (p.failing, p.healthy):
            cols = fixed_columns(cls, unit)
            out = []
            for j, m in enumerate(cls.metrics):
                col = cols[j]
                assert col is not None
                for t, v in zip(unit.t_ms.tolist(), col.tolist(), strict=True):
                    if not np.isnan(v):
                        out.append((IDS[m.name], base + t, int(v)))
            out.sort(key=lambda r: r[1])
            rows.append(out)
        _upload(client, rows)
    return p


def test_worker_prognosis_equals_offline_evaluate(node: str, plant: Plant) -> None:
    cls = _class()
    names = [m.name for m in cls.metrics]
    model = train_prognostic(
        cls, read_history(plant.folder / "healthy.csv", names), window_s=MODEL_WINDOW_S
    )
    offline = evaluate_unit(model, cls, plant.failing)
    assert offline.first_alert_s is not None
    assert offline.first_alert_s < (plant.failures[plant.failing.unit] or 0)
    assert evaluate_unit(model, cls, plant.healthy).first_alert_s is None

    with Client(node, timeout=30) as client:
        worker = PdmWorker(client, WORKER, 0, {"gearbox": model}, since_ms=0)
        worker.ensure_models_registered()
        alerts = worker.poll_once()
        # the failing unit, not the healthy one: raised, then updated while its prognosis moved
        assert alerts and {a.twin for a in alerts} == {0}
        a = alerts[0]
        # the same window, probability and RUL as offline: the chain's windows are the CSV's
        assert a.window_start + model.window_ms == plant.base + round(offline.first_alert_s * 1000)
        assert a.mode == offline.mode == "overheating"
        assert a.probability_bp == round(offline.probability * 10_000)
        assert offline.rul_s is not None
        assert a.rul_ms is not None and a.rul_ms[1] == round(offline.rul_s * 1000)
        info = client.read_storage("Simulation", "Models", model.hash)
        assert info is not None and info.kind == "prognostic"
        key = (model.hash, "overheating")
        aid = client.read_storage("Maintenance", "OpenPrognosis", 0, key)
        assert aid is not None
        alert = client.read_storage("Maintenance", "Alerts", aid)
        assert alert.model == model.hash
        last = alerts[-1]  # the alert on chain carries the latest prognosis
        assert alert.evidence == last.evidence and alert.probability_bp == last.probability_bp
        prognosis = client.read_storage("Maintenance", "Prognoses", aid)
        assert prognosis.mode == "overheating" and prognosis.probability_bp == last.probability_bp
        assert (prognosis.rul_p10_ms, prognosis.rul_p50_ms, prognosis.rul_p90_ms) == last.rul_ms
        assert all(b.window_start > a.window_start for b in alerts[1:])
        assert client.read_storage("Maintenance", "OpenPrognosis", 1, key) is None
        assert worker.poll_once() == []  # nothing new on the same finalized state
        # A worker started after the alert's window: the unit is still alarmed, so its first
        # live window submits the prognosis (updating the open alert), not nothing.
        since = a.window_start + 4 * model.window_ms
        late = PdmWorker(client, WORKER, 0, {"gearbox": model}, since_ms=since)
        first = late.poll_once()[0]
        assert first.twin == 0 and first.window_start + model.window_ms >= since
        assert client.read_storage("Maintenance", "OpenPrognosis", 0, key) == aid


def test_train_on_a_twins_finalized_history(node: str, plant: Plant, tmp_path: Path) -> None:
    """``offchain train --rpc``: the healthy twin's history on chain (public aggregates,
    private readings from the archive as the worker's key) over a range marked healthy
    gives the very model its CSV rows give offline."""
    cls = _class()
    lo = plant.base + plant.healthy.start_ms
    hi = plant.base + plant.healthy.end_ms + 1
    out = tmp_path / "models"
    assert main(["offchain", "train", "--rpc", node, "--twin", "1", "--from-ms", str(lo),
                 "--to-ms", str(hi), "--window-s", str(MODEL_WINDOW_S), "--key", "//Bob",
                 "--out", str(out)]) == 0  # fmt: skip
    model = PrognosticModel.load(out / "gearbox-prognostic-v1.json")
    one = History([plant.healthy], plant.history.metrics, "s")
    offline = train_prognostic(cls, one, window_s=MODEL_WINDOW_S)
    assert model.window_ms == offline.window_ms and model.training["units"] == 1
    assert model.training["windows"] == offline.training["windows"]
    # the chain's windows are the CSV's: the same statistics, to the last bit
    assert model.sigma == offline.sigma and model.threshold == offline.threshold
