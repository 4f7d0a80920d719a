"""The PdM worker against a real node process: simulated telemetry of a failing pump and a
healthy one goes on chain through the telemetry pallet; the worker registers its model in
Simulation, follows the finalized aggregates and lands a Maintenance alert naming the model,
for the failing pump only, before its failure."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twinchain.client import Client, RpcClient
from twinchain.machines.classes import class_spec
from twinchain.machines.simulator import FactorySimulator, Fault, MachineConfig
from twinchain.node.chain_spec import dev_spec
from twinchain.offchain.cli import TRAINED
from twinchain.offchain.worker import PdmWorker, load_models
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, MAX_BATCHES, MAX_READINGS, sign_batch

HOUR = 3_600_000
TICK_MS = 300_000  # 5 min ticks keep the upload small; features are window means
GATEWAY = Keypair.from_dev_name("Dave")
WORKER = Keypair.from_dev_name("Bob")
DEVICES = [Keypair.from_dev_name("pdm-device-0"), Keypair.from_dev_name("pdm-device-1")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spec(path: Path) -> None:
    spec = dev_spec()
    pump = class_spec("pump", TICK_MS)
    # The worker (Bob) reads the pumps' private metrics (power, run and down time, units)
    # from the facility's archive with the owner's READ_TELEMETRY grant.
    twin = {"manufacturer": "//Eve", "owner": "//Charlie", "class": "pump",
            "lifecycle": "Active", "facility": 0, **pump,
            "access": [["//Bob", 1, 10**15]]}  # fmt: skip
    spec.genesis.update(
        {
            "facility": {"facilities": [{"operator": "//Charlie", "name": "Test Plant"}]},
            "roles": {"grants": [["//Dave", "Gateway"], ["//Bob", "PredictiveWorker"]]},
            "equipment": {"twins": [{**twin, "serial": "P-1"}, {**twin, "serial": "P-2"}]},
            "telemetry": {
                "devices": [
                    {"device": "0x" + d.public.hex(), "twin": i, "gateway": "//Dave"}
                    for i, d in enumerate(DEVICES)
                ]
            },
        }
    )
    path.write_text(json.dumps(spec.to_json()))


@pytest.fixture
def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    _spec(tmp_path / "spec.json")
    port = _free_port()
    log = tmp_path / "node.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "--log", "warning", "node",
         "--chain", str(tmp_path / "spec.json"), "--base-path", str(tmp_path / "db"),
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


def _upload(client: Client, sim: FactorySimulator, until_ms: int) -> None:
    """Every reading until ``until_ms``, device-signed in batches that each stay within one
    window: their commitments submitted by the gateway, their readings delivered to the
    facility's archive."""
    per_device: dict[str, dict[int, list[tuple[int, int, int]]]] = {"p0": {}, "p1": {}}
    while sim.now_ms < until_ms:
        for r in sim.step():
            per_device[r.machine].setdefault(r.ts_ms // HOUR, []).append(
                (r.metric, r.ts_ms, r.value)
            )
    genesis = client.info.genesis_hash
    batches = []
    for i, name in enumerate(("p0", "p1")):
        seq = 0
        for _, rs in sorted(per_device[name].items()):
            for k in range(0, len(rs), MAX_READINGS):
                chunk = rs[k : k + MAX_READINGS]
                batches.append(sign_batch(DEVICES[i], genesis, i, seq, chunk, DEFAULT_PUBLIC))
                seq += 1
    for k in range(0, len(batches), MAX_BATCHES):
        part = batches[k : k + MAX_BATCHES]
        call = client.call_function("Telemetry", "submit", batches=[b.commitment() for b in part])
        final = client.submit_and_watch(call, GATEWAY, timeout=60)[-1]
        assert final.kind == "finalized", final
        # Their commitments are final: the archive checks and keeps them at once.
        assert {d.status for d in client.deliver(part, GATEWAY)} == {"archived"}


def test_worker_alert_lands_on_chain_naming_the_registered_model(node: str) -> None:
    model = load_models(TRAINED / "plant")["pump"]
    with Client(node, timeout=30) as client:
        now = int(time.time() * 1000)  # block timestamps follow the wall clock
        start = now - now % HOUR - 60 * HOUR
        fault = Fault("p0", "bearing_wear", start + 16 * HOUR, 40 * HOUR)
        sim = FactorySimulator(
            7, [MachineConfig("p0", "pump"), MachineConfig("p1", "pump")],
            start_ms=start, tick_ms=TICK_MS, faults=[fault],
        )  # fmt: skip
        # Up to 3 h before the failure: the closed windows must already carry the warning.
        _upload(client, sim, fault.at_ms + fault.ramp_ms - 3 * HOUR)

        worker = PdmWorker(client, WORKER, 0, {"pump": model}, since_ms=0)
        worker.ensure_models_registered()
        info = client.read_storage("Simulation", "Models", model.hash)
        assert info is not None and info.active and info.kind == model.kind
        assert info.params == model.chain_params() and info.version == model.version
        alerts = worker.poll_once()

        assert [a.twin for a in alerts] == [0]  # the failing pump, not the healthy one
        a = alerts[0]
        assert fault.at_ms <= a.window_start < fault.at_ms + fault.ramp_ms
        aid = client.read_storage("Maintenance", "OpenPrediction", 0, model.hash)
        assert aid is not None
        on_chain = client.read_storage("Maintenance", "Alerts", aid)
        assert on_chain.model == model.hash and on_chain.evidence == a.evidence
        assert on_chain.probability_bp == a.probability_bp >= model.threshold_bp
        assert on_chain.horizon_ms == model.horizon_ms
        assert on_chain.raised_by == WORKER.public
        assert client.read_storage("Maintenance", "OpenPrediction", 1, model.hash) is None
        # A second poll on the same finalized state submits nothing new; a restarted worker
        # registers nothing twice and, by default, does not re-raise old windows.
        assert worker.poll_once() == []
        again = PdmWorker(client, WORKER, 0, {"pump": model})
        again.ensure_models_registered()
        assert again.poll_once() == []
        # The command line worker finds the shipped models for the chain's 1 h windows, finds
        # them registered, and has nothing new to raise.
        cli = subprocess.run(
            [sys.executable, "-m", "twinchain", "offchain", "pdm", "--rpc", node,
             "--key", "//Bob", "--facility", "0", "--once"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert client.read_storage("Maintenance", "NextAlertId") == aid + 1
