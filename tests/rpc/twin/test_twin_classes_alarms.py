"""Spec 5's reads: the registered equipment classes (twin_classes, twin_class) and alerts with
their prognosis and alarm lifecycle (twin_alerts, twin_alert), from a real chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stub_node import StubNode

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import TransactionPool
from twinchain.primitives import codec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.classdef import class_hash, load_class
from twinchain.protocol.jsonrpc import to_hex
from twinchain.rpc.twin import maintenance as twin_maintenance
from twinchain.rpc.twin import registry

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
OWNER, WORKER = CHARLIE, DAVE
MODEL, H1 = b"\x42" * 32, b"\x01" * 32
SLOT = 1001


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StubNode]:
    spec = dev_spec()  # registers the built-in classes
    g = spec.genesis
    g["roles"] = {
        "grants": [
            ["//Alice", "EquipmentManufacturer"],
            ["//Charlie", "EquipmentOwner"],
            ["//Dave", "PredictiveWorker"],
        ]
    }
    g["equipment"]["twins"] = [
        {"manufacturer": "//Alice", "owner": "//Charlie", "class": "pump", "serial": "P-1",
         "lifecycle": "Active", "envelope": [[2, 0, 8_800, 5_500]]}
    ]  # fmt: skip
    client = Blockchain(spec, None)
    n = StubNode(client, TransactionPool(client.validate_transaction), Keystore(tmp_path / "ks"))
    yield n
    client.close()


def populate(node: StubNode) -> None:
    chain, nonces = node.chain, {}

    def xt(who: Keypair, pallet: str, name: str, *args: Any) -> tuple[bytes, bytes]:
        nonce = nonces[who.public] = nonces.get(who.public, -1) + 1
        call = chain.runtime.call_by_name(pallet, name, *args)
        raw = Extrinsic.sign(call, who, nonce, chain.genesis_hash, chain.runtime.spec_version)
        return b"", raw.encode()

    params = codec.encode(["artifact", 1])
    ready = [
        xt(WORKER, "Simulation", "register_model", MODEL, "pump", "pdm", params, 1),
        xt(WORKER, "Maintenance", "submit_prognosis", 0, "bearing_wear", 9_200, 172_800_000,
           36_000_000, 72_000_000, 108_000_000, MODEL, H1),
        xt(OWNER, "Maintenance", "acknowledge_alert", 0),
        xt(OWNER, "Maintenance", "assign_alert", 0, BOB.public),
        xt(OWNER, "Maintenance", "comment_alert", 0, "vibration up since Monday"),
    ]  # fmt: skip
    _, result = chain.propose(ALICE, SLOT, SLOT * 1000, ready)
    assert all(o.success for o in result.outcomes), [o.error for o in result.outcomes]


def test_registered_classes(node: StubNode) -> None:
    rows = registry.classes(node.chain, None)
    assert [r["name"] for r in rows] == ["cnc_mill", "compressor", "pump"]
    pump = registry.equipment_class(node.chain, ["pump"])
    assert pump["version"] == 1 and pump["registrant"] is None
    assert pump["hash"] == to_hex(class_hash(load_class("pump")))
    assert pump["failureModes"] == ["bearing_wear", "overheating", "misalignment"]
    assert pump["record"]["metrics"][0]["rated"] == 55_000  # fixed point, as on chain
    assert "limit = 7.1" in pump["toml"]
    assert registry.equipment_class(node.chain, {"name": "lathe"}) is None
    json.dumps(rows)


def test_alerts_carry_prognosis_and_lifecycle(node: StubNode) -> None:
    populate(node)
    [a] = twin_maintenance.alerts(node.chain, [0, True])
    assert a["state"] == "Acknowledged" and a["acknowledged"]["by"] == to_hex(OWNER.public)
    assert a["assignee"]["assignee"] == to_hex(BOB.public) and a["comments"] == 1
    assert a["prognosis"] == {
        "mode": "bearing_wear", "probabilityBp": 9_200, "horizonMs": 172_800_000,
        "rulP10Ms": 36_000_000, "rulP50Ms": 72_000_000, "rulP90Ms": 108_000_000,
        "at": SLOT * 1000,
    }  # fmt: skip
    full = twin_maintenance.alert(node.chain, [0])
    assert [c["text"] for c in full["commentList"]] == ["vibration up since Monday"]
    assert twin_maintenance.alert(node.chain, [7]) is None
    json.dumps(full)
