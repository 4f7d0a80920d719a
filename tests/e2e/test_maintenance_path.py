"""The maintenance path on a real node process, driven over JSON-RPC with twinchain.client.

Two pump twins on one production line learn their baselines from device-signed telemetry,
drift past the class threshold and raise deviation alerts; the owner orders a repair of each
(payment reserved in escrow), the provider schedules them (an overlapping window on the line is
refused), starts and claims them. Twin 0's telemetry comes back inside the envelope for K
windows: the order verifies itself and the escrow pays the provider. Twin 1's stays out of the
envelope: its order expires at the deadline block and the escrow returns to the owner. Every
step is asserted from the blocks' System events.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from realnet import free_port

from twinchain.client import Client
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.protocol.jsonrpc import from_hex, to_hex
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch
from twinchain.runtime.executive import decode_events
from twinchain.runtime.pallets.maintenance.types import Part
from twinchain.runtime.runtime import Runtime

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
GW, OWNER, SP = BOB, CHARLIE, DAVE
DEVICES = [Keypair.from_dev_name("Device1"), Keypair.from_dev_name("Device2")]
CLS = "pump"
TEMP = 1
WINDOW = 2_000
K = 2
DEADLINE = 12
PAY = 25 * 10**12
H_DESC, H_REPORT = b"\x0d" * 32, b"\x0e" * 32
BUDGET_S = 60


def chain_spec() -> dict[str, Any]:
    spec = dev_spec()
    spec.id = "maintenance_e2e"
    spec.genesis.update(
        {
            "roles": {
                "grants": [
                    ["//Alice", "EquipmentManufacturer"],
                    ["//Alice", "FacilityOperator"],
                    ["//Charlie", "EquipmentOwner"],
                    ["//Bob", "Gateway"],
                    ["//Dave", "ServiceProvider"],
                ]
            },
            "facility": {
                "facilities": [{"operator": "//Alice", "name": "Plant", "verified_until": 2**62}]
            },
            "equipment": {
                "twins": [
                    {
                        "manufacturer": "//Alice",
                        "owner": "//Charlie",
                        "class": CLS,
                        "serial": f"P-{i}",
                        "lifecycle": "Active",
                        "facility": 0,
                        "rated": [[4, 5_000]],
                        "envelope": [[TEMP, 0, 90_000, 0]],
                    }
                    for i in range(2)
                ]
            },
            "telemetry": {
                "window_ms": WINDOW,
                "devices": [
                    {"device": "//Device1", "twin": 0, "gateway": "//Bob"},
                    {"device": "//Device2", "twin": 1, "gateway": "//Bob"},
                ],
            },
            "benchmark": {"baseline_windows": 2, "class_specs": [[CLS, TEMP, 50_000, 1_000]]},
            "maintenance": {
                "verify_windows": K,
                "deadline_blocks": DEADLINE,
                "class_thresholds": [[CLS, TEMP, 2_000, 500, 2]],
                "lines": [[0, 1], [1, 1]],
            },
        }
    )
    return spec.to_json()


class Events:
    """Every event of every block, read block by block from System.Events over RPC."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.rt = Runtime()
        self.key = client.codec.storage_key("System", "Events", ())
        self.next = 1
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> None:
        best = int(self.client.call("chain_getHeader")["number"], 16)
        for n in range(self.next, best + 1):
            h = self.client.call("chain_getBlockHash", n)
            raw = self.client.call("state_getStorage", to_hex(self.key), h)
            for ev in decode_events(self.rt, from_hex(raw, "events") if raw else b""):
                self.seen.append({"block": n, **ev})
            self.next = n + 1

    def find(self, pallet: str, event: str, **args: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.seen
            if e["pallet"] == pallet
            and e["event"] == event
            and all(e["args"].get(k) == v for k, v in args.items())
        ]

    def wait(self, pallet: str, event: str, timeout: float = 20, **args: Any) -> dict[str, Any]:
        """The first matching event; fails fast on an unexpected failed extrinsic."""
        end = time.monotonic() + timeout
        while True:
            self.poll()
            found = self.find(pallet, event, **args)
            if found:
                return found[0]
            failed = [
                e["args"]
                for e in self.find("System", "ExtrinsicFailed")
                if e["args"]["error"] != "DowntimeOverlap"
            ]
            assert not failed, f"extrinsics failed: {failed}"
            assert time.monotonic() < end, f"no {pallet}.{event}{args} within {timeout}s"
            time.sleep(0.2)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[str]:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(chain_spec()))
    port = free_port()
    log = tmp_path / "node.log"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "twinchain", "--log", "warning", "node",
            "--chain", str(spec_path), "--validator", "--key", "//Alice",
            "--base-path", str(tmp_path / "base"), "--rpc-port", str(port),
            "--no-prometheus", "--no-p2p",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"node exited: {log.read_text()[-3000:]}")
            try:
                with Client(url) as c:
                    if int(c.call("chain_getHeader")["number"], 16) >= 1:
                        break
            except Exception:  # not listening yet
                pass
            assert time.monotonic() < end, "node did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_deviation_alert_order_escrow_verification_and_expiry(node: str) -> None:
    t_start = time.monotonic()
    client = Client(node)
    ev = Events(client)
    genesis = client.info.genesis_hash
    seqs = [0, 0]

    def send(who: Keypair, pallet: str, call: str, **args: Any) -> None:
        client.sign_and_submit(client.call_function(pallet, call, **args), who)

    def readings(twin: int, start_ms: int, temps: list[int]) -> None:
        """One submit per window (each closes the window before it)."""
        for i, t in enumerate(temps):
            r = [(TEMP, start_ms + i * WINDOW + 100, t)]
            batch = sign_batch(DEVICES[twin], genesis, twin, seqs[twin], r, public=DEFAULT_PUBLIC)
            seqs[twin] += 1
            # The chain takes the commitment: temperature's public summary drives the windows.
            send(GW, "Telemetry", "submit", batches=[batch.commitment()])

    def order(oid: int) -> dict[str, Any]:
        return client.call("twin_workOrder", oid)  # type: ignore[no-any-return]

    def chain_now() -> int:
        return int(client.read_storage("Timestamp", "Now", verify=False, at=best()))

    def best() -> bytes:
        return from_hex(client.call("chain_getBlockHash"), "hash", 32)

    # 1. Telemetry from the past: two windows learn each baseline, two beyond +20 % raise.
    base = (chain_now() - 120_000) // WINDOW * WINDOW
    for twin in (0, 1):
        readings(twin, base, [50_000, 50_000, 61_000, 61_000, 61_000])
    alerts = [ev.wait("Maintenance", "AlertRaised", twin=twin)["args"] for twin in (0, 1)]
    for twin in (0, 1):
        assert ev.find("Benchmark", "BaselineLearned", twin=twin, metric=TEMP, mean=50_000)
    assert [(a["kind"], a["metric"], a["deviation_bp"]) for a in alerts] == [
        ("Deviation", TEMP, 2_200)
    ] * 2

    # 2. The owner orders both repairs from the alerts; the payments go into escrow.
    for a in alerts:
        send(OWNER, "Maintenance", "create_from_alert", alert=a["alert"], description=H_DESC,
             payment=PAY, verification="Telemetry")  # fmt: skip
    for oid in (0, 1):
        send(OWNER, "Maintenance", "assign", order=oid, provider=SP.public)
    ev.wait("Maintenance", "WorkOrderAssigned", order=1)
    created = ev.find("Maintenance", "WorkOrderCreated")
    assert [(c["args"]["twin"], c["args"]["alert"]) for c in created] == [
        (0, alerts[0]["alert"]), (1, alerts[1]["alert"])
    ]  # fmt: skip
    assert len(ev.find("Balances", "Reserved", who=OWNER.public, amount=PAY)) == 2

    # 3. Downtime on line 1: order 1 may not overlap order 0's window.
    t = chain_now()
    send(SP, "Maintenance", "schedule", order=0, start=t - 5_000, end=t + 3_000)
    send(SP, "Maintenance", "schedule", order=1, start=t, end=t + 30_000)
    send(SP, "Maintenance", "schedule", order=1, start=t + 3_000, end=t + 60_000)
    send(SP, "Maintenance", "start", order=0)
    ev.wait("Maintenance", "WorkOrderScheduled", order=1)
    [overlap] = [e for e in ev.find("System", "ExtrinsicFailed")]
    assert (overlap["args"]["module"], overlap["args"]["error"]) == (
        "Maintenance",
        "DowntimeOverlap",
    )
    started = ev.wait("Maintenance", "WorkOrderStarted", order=0)
    assert ev.find("Equipment", "LifecycleChanged", twin=0, to="Maintenance")
    assert started["args"]["deadline"] == started["block"] + DEADLINE

    # 4. The provider claims order 0; the twin's telemetry after the claim verifies it.
    parts = [Part("mechanical seal", 1, 3 * 10**12), Part("bearing 6305", 2, 10**12)]
    send(SP, "Maintenance", "claim_completion", order=0, report=H_REPORT, parts=parts)
    ev.wait("Maintenance", "CompletionClaimed", order=0)
    claimed_at = order(0)["claimedAt"]
    first = -(-claimed_at // WINDOW) * WINDOW
    readings(0, first, [50_000, 50_200, 49_900])
    verified = ev.wait("Maintenance", "WorkOrderVerified", order=0)
    assert verified["args"] == {"order": 0, "twin": 0, "provider": SP.public, "by": None}
    progress = [
        e["args"]["ok_windows"] for e in ev.find("Maintenance", "VerificationProgress", order=0)
    ]
    assert progress == [1, 2]
    assert ev.find("Maintenance", "EscrowReleased", order=0, provider=SP.public, amount=PAY)
    assert ev.find("Balances", "ReserveRepatriated", **{"from": OWNER.public, "to": SP.public})
    assert ev.find("Equipment", "ServiceRecorded", twin=0, provider=SP.public)
    assert ev.find("Equipment", "LifecycleChanged", twin=0, to="Active")
    o0 = order(0)
    assert (o0["status"], o0["twinLifecycle"], o0["alertDetail"]["status"]) == (
        "Verified", "Active", "Resolved"
    )  # fmt: skip
    assert o0["twinCosts"] == {"orders": 1, "service": PAY, "parts": 4 * 10**12}  # line totals
    assert verified["block"] < started["args"]["deadline"]

    # 5. Order 1 starts once its window opened; its twin stays out of the envelope.
    while chain_now() < t + 3_000:
        time.sleep(0.2)
    send(SP, "Maintenance", "start", order=1)
    send(SP, "Maintenance", "claim_completion", order=1, report=H_REPORT, parts=[])
    ev.wait("Maintenance", "CompletionClaimed", order=1)
    first = -(-order(1)["claimedAt"] // WINDOW) * WINDOW
    readings(1, first, [95_000, 96_000, 97_000])
    ev.wait("Maintenance", "VerificationProgress", order=1, ok_windows=0)
    expired = ev.wait("Maintenance", "WorkOrderExpired", order=1, timeout=DEADLINE + 10)
    start1 = ev.find("Maintenance", "WorkOrderStarted", order=1)[0]
    assert expired["block"] == start1["args"]["deadline"] and expired["phase"] == "initialization"
    assert ev.find("Maintenance", "EscrowReturned", order=1, payer=OWNER.public, amount=PAY)
    assert ev.find("Balances", "Unreserved", who=OWNER.public, amount=PAY)
    assert not ev.find("Maintenance", "WorkOrderVerified", order=1)
    o1 = order(1)
    assert (o1["status"], o1["twinLifecycle"], o1["providerStats"]["expired"]) == (
        "Expired", "Maintenance", 1
    )  # fmt: skip
    owner = client.read_storage("Balances", "Account", OWNER.public, at=best(), verify=False)
    assert owner.reserved == 0
    assert [a["status"] for a in client.call("twin_alerts", 1)] == ["Open"]
    assert time.monotonic() - t_start < BUDGET_S
    client.close()
