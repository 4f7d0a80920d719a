"""The Benchmark and Maintenance twin_* reads (twin_benchmark, twin_classBenchmark, twin_alerts,
twin_workOrders, twin_workOrder) decoded from a real chain, directly and over the live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stub_node import StubNode

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.types import Extrinsic
from twinchain.protocol import jsonrpc
from twinchain.protocol.jsonrpc import RpcError, to_hex
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch
from twinchain.rpc import methods
from twinchain.rpc.twin import benchmark as twin_benchmark
from twinchain.rpc.twin import maintenance as twin_maintenance
from twinchain.runtime.pallets.maintenance.types import Part

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
GW, OWNER, SP = BOB, CHARLIE, DAVE
DEVICE = Keypair.from_dev_name("Device1")
CLS = "pump"
TEMP = 1
SLOT = 1001
NOW = SLOT * 1000
WINDOW = 1000
PAY = 7 * 10**12
H1, H2 = b"\x01" * 32, b"\x02" * 32


def genesis() -> dict[str, Any]:
    return {
        "roles": {
            "grants": [
                ["//Alice", "EquipmentManufacturer"],
                ["//Charlie", "EquipmentOwner"],
                ["//Bob", "Gateway"],
                ["//Dave", "ServiceProvider"],
            ]
        },
        "equipment": {
            "twins": [
                {
                    "manufacturer": "//Alice",
                    "owner": "//Charlie",
                    "class": CLS,
                    "serial": f"P-{i}",
                    "lifecycle": "Active",
                    "envelope": [[TEMP, 0, 90_000, 0]],
                }
                for i in range(2)
            ]
        },
        "telemetry": {"window_ms": WINDOW, "devices": [{"device": "//Device1", "twin": 0}]},
        "benchmark": {
            "baseline_windows": 2,
            "class_owners": [[CLS, "//Alice"]],
            "class_specs": [[CLS, TEMP, 50_000, 1_000]],
            "standards": [[CLS, TEMP, "EN 809", 0, 80_000]],
        },
        "maintenance": {
            "verify_windows": 2,
            "class_thresholds": [[CLS, TEMP, 2_000, 500, 2]],
        },
    }


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StubNode]:
    """Overrides the RPC conftest's node: the dev chain plus the world of this module."""
    spec = dev_spec()
    spec.genesis.update(genesis())
    client = Blockchain(spec, None)
    n = StubNode(client, TransactionPool(client.validate_transaction), Keystore(tmp_path / "ks"))
    yield n
    client.close()


class Author:
    """Signs extrinsics with per-account nonces and seals them into blocks."""

    def __init__(self, node: StubNode) -> None:
        self.chain = node.chain
        self.nonces: dict[bytes, int] = {}
        self.seq = 0

    def xt(self, who: Keypair, pallet: str, name: str, *args: Any) -> tuple[bytes, bytes]:
        n = self.nonces.get(who.public, 0)
        self.nonces[who.public] = n + 1
        rt = self.chain.runtime
        call = rt.call_by_name(pallet, name, *args)
        return b"", Extrinsic.sign(call, who, n, self.chain.genesis_hash, rt.spec_version).encode()

    def reading(self, ts: int, temp: int) -> tuple[bytes, bytes]:
        rs = [(TEMP, ts, temp)]  # temperature: public by default
        b = sign_batch(
            DEVICE, self.chain.genesis_hash, 0, self.seq, rs, DEFAULT_PUBLIC
        ).commitment()
        self.seq += 1
        return self.xt(GW, "Telemetry", "submit", [b])

    def block(self, slot: int, ready: list[tuple[bytes, bytes]]) -> bytes:
        _, result = self.chain.propose(ALICE, slot, slot * 1000, ready)
        assert all(o.success for o in result.outcomes), [o.error for o in result.outcomes]
        return result.hash


def populate(node: StubNode) -> tuple[bytes, bytes]:
    """Block 1: two windows learn the baseline, two more raise an alert (their closes run at
    block 2's start); in block 2 the owner orders the repair from it, the provider does it
    and claims. Block 3: two good windows after the claim, which verify it at block 4's
    start. Another order stays open. Returns the hashes of blocks 2 and 4."""
    a = Author(node)
    base = NOW - 10 * WINDOW
    temps = [50_000, 50_000, 61_000, 61_000, 61_000]
    parts = [Part("impeller", 1, 10**12)]
    a.block(SLOT, [a.reading(base + i * WINDOW, t) for i, t in enumerate(temps)])
    first = a.block(
        SLOT + 1,
        [
            a.xt(OWNER, "Maintenance", "create_from_alert", 0, H1, PAY, "Telemetry"),
            a.xt(OWNER, "Maintenance", "assign", 0, SP.public),
            a.xt(SP, "Maintenance", "schedule", 0, NOW - 1_000, NOW + 3_600_000),
            a.xt(SP, "Maintenance", "start", 0),
            a.xt(SP, "Maintenance", "claim_completion", 0, H2, parts),
            a.xt(OWNER, "Maintenance", "create", 0, "Preventive", H1, PAY, "Inspector"),
        ],
    )
    a.block(SLOT + 2, [a.reading(NOW + i * WINDOW, 50_000) for i in range(1, 4)])
    second = a.block(SLOT + 3, [])
    return first, second


@pytest.fixture
def chain(node: StubNode) -> tuple[StubNode, bytes, bytes]:
    first, second = populate(node)
    return node, first, second


def rpc_error(fn: Any, *args: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        fn(*args)
    return info.value


def test_methods_are_registered() -> None:
    names = set(twin_benchmark.METHODS) | set(twin_maintenance.METHODS)
    assert names == {
        "twin_benchmark", "twin_classBenchmark", "twin_alerts", "twin_alert",
        "twin_workOrders", "twin_workOrder",
    }  # fmt: skip
    assert names <= set(methods.METHODS)


def test_benchmark_of_a_twin(chain: Any) -> None:
    node, _, _ = chain
    b = twin_benchmark.benchmark(node.chain, [0])
    assert (b["twin"], b["class"], b["baselineWindows"]) == (0, CLS, 2)
    assert b["windows"] == 7 and b["standardViolations"] == 0
    [m] = b["metrics"]
    assert (m["metric"], m["name"]) == (TEMP, "temperature")
    assert m["spec"] == {"expected": 50_000, "tolerance": 1_000}
    assert m["standard"] == {"name": "EN 809", "min": 0, "max": 80_000}
    assert m["baseline"]["mean"] == 50_000 and m["learning"] is None
    assert m["drift"]["recent"] == [2_200, 2_200, 2_200, 0, 0]
    assert b["health"] == 10_000 - m["drift"]["ewmaBp"] and 0 < b["health"] < 10_000
    assert b["percentile"] == {"bp": 5_000, "peers": 1}
    empty = twin_benchmark.benchmark(node.chain, {"twin": 1})
    assert empty["health"] is None and empty["percentile"] is None and empty["windows"] == 0
    assert [x["metric"] for x in empty["metrics"]] == [TEMP]  # the class spec
    assert twin_benchmark.benchmark(node.chain, [9]) is None
    json.dumps(b)


def test_class_benchmark(chain: Any) -> None:
    node, _, _ = chain
    c = twin_benchmark.class_benchmark(node.chain, [CLS])
    assert c["owner"] == to_hex(ALICE.public) and c["twins"] == 2
    assert c["metrics"] == [
        {
            "metric": TEMP,
            "spec": {"expected": 50_000, "tolerance": 1_000},
            "standard": {"name": "EN 809", "min": 0, "max": 80_000},
            "rules": [],
        }
    ]
    [peer] = c["peers"]
    assert (peer["twin"], peer["percentileBp"], peer["facility"]) == (0, 5_000, None)
    unknown = twin_benchmark.class_benchmark(node.chain, ["lathe"])
    assert unknown == {"class": "lathe", "owner": None, "metrics": [], "twins": 0, "peers": []}


def test_alerts(chain: Any) -> None:
    node, first, _ = chain
    c = node.chain
    [a] = twin_maintenance.alerts(c, [0])
    assert (a["id"], a["kind"], a["metric"], a["deviationBp"]) == (0, "Deviation", TEMP, 2_200)
    assert (a["status"], a["workOrder"], a["open"]) == ("Resolved", 0, False)
    assert twin_maintenance.alerts(c, {"twin": 0, "openOnly": True}) == []
    assert twin_maintenance.alerts(c, None) == [a]
    assert twin_maintenance.alerts(c, [1]) == []
    # At block 1 the alert was open (its order only claimed).
    [old] = twin_maintenance.alerts(c, [0, True, to_hex(first)])
    assert old["status"] == "Open" and old["open"] is True


def test_work_orders(chain: Any) -> None:
    node, first, _ = chain
    c = node.chain
    orders = twin_maintenance.work_orders(c, [0])
    assert [(o["id"], o["status"], o["open"]) for o in orders] == [
        (0, "Verified", False), (1, "Created", True)
    ]  # fmt: skip
    assert [o["id"] for o in twin_maintenance.work_orders(c, [None, True])] == [1]
    o = twin_maintenance.work_order(c, [0])
    assert (o["payer"], o["provider"], o["payment"]) == (
        to_hex(OWNER.public), to_hex(SP.public), PAY
    )  # fmt: skip
    assert (o["kind"], o["verification"], o["okWindows"], o["report"]) == (
        "Corrective", "Telemetry", 2, to_hex(H2)
    )  # fmt: skip
    assert o["window"] == [NOW - 1_000, NOW + 3_600_000] and o["claimedAt"] == NOW + 1_000
    assert o["parts"] == [{"part": "impeller", "quantity": 1, "cost": 10**12}]
    assert o["alertDetail"]["id"] == 0 and o["twinLifecycle"] == "Active"
    assert o["twinCosts"] == {"orders": 1, "service": PAY, "parts": 10**12}
    assert o["providerStats"] == {"completed": 1, "expired": 0, "earned": PAY}
    at_first = twin_maintenance.work_order(c, {"id": 0, "at": to_hex(first)})
    assert at_first["status"] == "Claimed" and at_first["twinLifecycle"] == "Maintenance"
    assert twin_maintenance.work_order(c, [9]) is None
    json.dumps(o)


@pytest.mark.parametrize(
    ("fn", "params"),
    [
        (twin_benchmark.benchmark, []),
        (twin_benchmark.benchmark, ["0"]),
        (twin_benchmark.benchmark, [0, "0x00"]),
        (twin_benchmark.class_benchmark, [""]),
        (twin_benchmark.class_benchmark, [5]),
        (twin_benchmark.class_benchmark, ["x" * 49]),
        (twin_maintenance.alerts, [-1]),
        (twin_maintenance.alerts, [0, "yes"]),
        (twin_maintenance.alerts, {"twin": 0, "open": True}),
        (twin_maintenance.work_orders, [0, 1]),
        (twin_maintenance.work_order, []),
        (twin_maintenance.work_order, [None]),
        (twin_maintenance.work_order, [0, None, 1]),
    ],
)
def test_bad_params(node: StubNode, fn: Any, params: Any) -> None:
    assert rpc_error(fn, node.chain, params).code == jsonrpc.INVALID_PARAMS


def test_unknown_block(node: StubNode) -> None:
    e = rpc_error(twin_maintenance.work_order, node.chain, [0, "0x" + "ab" * 32])
    assert e.code == jsonrpc.STATE_UNAVAILABLE


async def call(url: str, method: str, params: Any) -> Any:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with httpx.AsyncClient() as http:
        r = await http.post(f"http://{url}/", json=payload)
    body = r.json()
    if "error" in body:
        e = body["error"]
        raise RpcError(e["code"], e["message"], e.get("data"))
    return body["result"]


async def test_over_the_server(chain: Any, server: str) -> None:
    o = await call(server, "twin_workOrder", [0])
    assert o["status"] == "Verified"
    assert [a["id"] for a in await call(server, "twin_alerts", {"twin": 0})] == [0]
    assert len(await call(server, "twin_workOrders", None)) == 2
    assert (await call(server, "twin_benchmark", [0]))["percentile"]["peers"] == 1
    assert (await call(server, "twin_classBenchmark", [CLS]))["owner"] == to_hex(ALICE.public)
    with pytest.raises(RpcError) as info:
        await call(server, "twin_workOrder", [])
    assert info.value.code == jsonrpc.INVALID_PARAMS
