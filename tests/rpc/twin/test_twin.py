"""The twin_* reads: facilities, equipment twins, devices, telemetry batches and aggregates,
disclosure proofs and roles, decoded from a real chain, directly and over the live server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol import jsonrpc
from twinchain.protocol.jsonrpc import RpcError, to_hex
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, batch_root, reading_proof, sign_batch
from twinchain.rpc import methods, twin
from twinchain.rpc.twin import registry, telemetry
from twinchain.runtime.pallets.equipment.types import Envelope, Spec

if TYPE_CHECKING:
    from stub_node import StubNode

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
DEVICE = Keypair.from_dev_name("Device1")
H = b"\x05" * 32
FAR = 10**13
SLOT = 1001
NOW = SLOT * 1000
# Temperature (public by default; one reading beyond the envelope) and good units (private).
READINGS = [(1, NOW - 3_000, 20_000), (1, NOW - 2_000, 95_000), (8, NOW - 1_000, 5)]
SPEC = Spec([(1, 60_000)], [Envelope(1, -20_000, 90_000, 0)])


def populate(node: StubNode) -> bytes:
    """One block: roles through sudo, a verified and certified facility, a commissioned and
    active twin with a bound device, and one telemetry batch. Returns the block hash."""
    client = node.chain
    rt = client.runtime
    nonces: dict[bytes, int] = {}

    def xt(who: Keypair, pallet: str, name: str, *args: Any) -> tuple[bytes, bytes]:
        n = nonces.get(who.public, 0)
        nonces[who.public] = n + 1
        call = rt.call_by_name(pallet, name, *args)
        raw = Extrinsic.sign(call, who, n, client.genesis_hash, rt.spec_version).encode()
        return b"", raw

    def sudo(pallet: str, name: str, *args: Any) -> tuple[bytes, bytes]:
        return xt(ALICE, "Sudo", "sudo", list(rt.call_by_name(pallet, name, *args).to_wire()))

    batch = sign_batch(DEVICE, client.genesis_hash, 0, 0, READINGS, DEFAULT_PUBLIC).commitment()
    ready = [
        sudo("Roles", "force_grant", ALICE.public, "FacilityOperator"),
        sudo("Roles", "force_grant", BOB.public, "CertifiedAuditor"),
        sudo("Roles", "force_grant", ALICE.public, "EquipmentManufacturer"),
        sudo("Roles", "force_grant", CHARLIE.public, "Gateway"),
        xt(ALICE, "Facility", "register", "Plant", "Berlin", ["milling"], DAVE.public),
        xt(BOB, "Facility", "verify", 0, H, True, FAR),
        xt(BOB, "Facility", "issue_certification", 0, "ISO 9001", "all", 0, FAR, H),
        xt(ALICE, "Equipment", "mint", "mill", "M-1", "SN-1", SPEC, ALICE.public),
        xt(ALICE, "Equipment", "commission", 0, 0),
        xt(ALICE, "Equipment", "activate", 0),
        xt(ALICE, "Telemetry", "bind_device", 0, DEVICE.public, None),
        xt(CHARLIE, "Telemetry", "submit", [batch]),
    ]
    block, result = client.propose(ALICE, SLOT, NOW, ready)
    assert len(block.extrinsics) == len(ready) + 1
    assert all(o.success for o in result.outcomes), [o.error for o in result.outcomes]
    return result.hash


@pytest.fixture
def chain(node: StubNode) -> StubNode:
    populate(node)
    return node


def rpc_error(fn: Any, *args: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        fn(*args)
    return info.value


# --------------------------------------------------------------------------- direct calls


def test_every_twin_method_is_registered() -> None:
    assert set(twin.all_methods()) <= set(methods.METHODS)
    assert all(n.startswith("twin_") for n in twin.all_methods())


def test_facilities(chain: StubNode) -> None:
    c = chain.chain
    [f] = registry.facilities(c, None)
    assert (f["id"], f["name"], f["status"], f["verifiedNow"]) == (0, "Plant", "Verified", True)
    assert f["operator"] == to_hex(ALICE.public) and f["validator"] == to_hex(DAVE.public)
    assert f["verification"]["auditor"] == to_hex(BOB.public)
    full = registry.facility(c, [0])
    assert full["now"] == NOW
    [cert] = full["certifications"]
    assert (cert["standard"], cert["counts"], cert["issuer"]) == (
        "ISO 9001", True, to_hex(BOB.public)
    )  # fmt: skip
    assert [e["kind"] for e in full["auditLog"]] == [
        "Registered", "Verified", "CertificationIssued"
    ]  # fmt: skip
    assert full["validatorProposal"] is None
    assert registry.facility(c, [5]) is None
    json.dumps(full)


def test_equipment_twin(chain: StubNode) -> None:
    c = chain.chain
    t = registry.equipment(c, {"id": 0})
    assert (t["owner"], t["lifecycle"], t["facility"]) == (to_hex(ALICE.public), "Active", 0)
    assert (t["equipmentClass"], t["model"], t["serial"], t["operational"]) == (
        "mill", "M-1", "SN-1", True
    )  # fmt: skip
    assert t["spec"]["envelope"] == [{"metric": 1, "min": -20_000, "max": 90_000, "maxStep": 0}]
    assert [p["kind"] for p in t["provenance"]] == ["Minted", "Commissioned", "Activated"]
    assert t["devices"] == [to_hex(DEVICE.public)]
    assert t["warranty"] is None and t["access"] == [] and t["serviceHistory"] == []
    assert registry.equipment_of(c, [ALICE.address]) == [0]
    assert registry.equipment_of(c, [to_hex(BOB.public)]) == []
    assert registry.equipment(c, [9]) is None
    json.dumps(t)


def test_device_batches_and_aggregates(chain: StubNode) -> None:
    c = chain.chain
    d = telemetry.device(c, [to_hex(DEVICE.public)])
    assert (d["twin"], d["nextSeq"], d["batches"], d["readings"], d["active"]) == (0, 1, 1, 3, True)
    # Good units are private: no latest value, no aggregate.
    assert d["lastReadings"] == [{"metric": 1, "timestamp": NOW - 2_000, "value": 95_000}]
    page = telemetry.telemetry_batches(c, [0])
    assert page["total"] == 1
    [b] = page["batches"]
    # The temperature summary is out of range: its two readings are flagged.
    assert (b["device"], b["seq"], b["count"], b["flagged"]) == (to_hex(DEVICE.public), 0, 3, 2)
    assert b["root"] == to_hex(batch_root(READINGS))
    assert b["gateway"] == to_hex(CHARLIE.public)
    assert telemetry.telemetry_batches(c, [0, 1, 10])["batches"] == []
    aggs = telemetry.telemetry_aggregates(c, [0])
    assert [(a["metric"], a["count"], a["min"], a["max"], a["sum"], a["last"]) for a in aggs] == [
        (1, 2, 20_000, 95_000, 115_000, 95_000)
    ]  # fmt: skip
    assert aggs[0]["flagged"] == 2 and aggs[0]["windowMs"] == 3_600_000
    assert telemetry.telemetry_aggregates(c, {"twin": 0, "metric": 8}) == []
    start = aggs[0]["windowStart"]
    assert len(telemetry.telemetry_aggregates(c, {"twin": 0, "since": start})) == 1
    assert telemetry.telemetry_aggregates(c, {"twin": 0, "since": start + 1}) == []
    with pytest.raises(RpcError):
        telemetry.telemetry_aggregates(c, {"twin": 0, "since": -1})
    assert telemetry.device(c, [to_hex(BOB.public)]) is None


def test_batch_record(chain: StubNode) -> None:
    c = chain.chain
    dev = to_hex(DEVICE.public)
    rec = telemetry.batch_record(c, [dev, 0])
    assert rec == {
        "device": dev, "seq": 0, "twin": 0, "root": to_hex(batch_root(READINGS)), "count": 3,
        "firstTs": NOW - 3_000, "lastTs": NOW - 1_000, "gateway": to_hex(CHARLIE.public),
        "block": 1, "flagged": 2,
    }  # fmt: skip
    assert telemetry.batch_record(c, {"device": dev, "seq": 1}) is None
    assert telemetry.batch_record(c, [to_hex(BOB.public), 0]) is None
    genesis = to_hex(c.genesis_hash)
    assert telemetry.batch_record(c, [dev, 0, genesis]) is None  # not yet at genesis
    json.dumps(rec)


def test_disclosure_policy_and_what_it_shows(chain: StubNode) -> None:
    """The policy is the twin's, read at any block; a metric made public shows its latest
    values and aggregates, and made private again hides them from then on."""
    c = chain.chain
    rt = c.runtime
    first = c.best.hash
    assert telemetry.disclosure(c, [0]) == {"twin": 0, "public": sorted(DEFAULT_PUBLIC)}
    assert telemetry.disclosure(c, {"twin": 7}) == {"twin": 7, "public": sorted(DEFAULT_PUBLIC)}

    later = [(8, (SLOT + 1) * 1000 - 500, 7), (1, (SLOT + 1) * 1000 - 400, 21_000)]
    on = rt.call_by_name("Telemetry", "set_disclosure", 0, 8, True)
    x = Extrinsic.sign(on, ALICE, _nonce(c, ALICE), c.genesis_hash, rt.spec_version)
    _, res = c.propose(ALICE, SLOT + 1, (SLOT + 1) * 1000, [(b"", x.encode())])
    assert all(o.success for o in res.outcomes)
    assert telemetry.disclosure(c, [0])["public"] == sorted(DEFAULT_PUBLIC | {8})
    assert telemetry.disclosure(c, [0, to_hex(first)])["public"] == sorted(DEFAULT_PUBLIC)
    public = DEFAULT_PUBLIC | {8}
    b1 = sign_batch(DEVICE, c.genesis_hash, 0, 1, later, public).commitment()
    submit = rt.call_by_name("Telemetry", "submit", [b1])
    x = Extrinsic.sign(submit, CHARLIE, _nonce(c, CHARLIE), c.genesis_hash, rt.spec_version)
    _, res = c.propose(ALICE, SLOT + 2, (SLOT + 2) * 1000, [(b"", x.encode())])
    assert all(o.success for o in res.outcomes), [o.error for o in res.outcomes]
    d = telemetry.device(c, [to_hex(DEVICE.public)])
    assert [r["metric"] for r in d["lastReadings"]] == [1, 8]
    assert 8 in [a["metric"] for a in telemetry.telemetry_aggregates(c, [0])]
    off = rt.call_by_name("Telemetry", "set_disclosure", 0, 8, False)
    x = Extrinsic.sign(off, ALICE, _nonce(c, ALICE), c.genesis_hash, rt.spec_version)
    _, res = c.propose(ALICE, SLOT + 3, (SLOT + 3) * 1000, [(b"", x.encode())])
    assert all(o.success for o in res.outcomes)
    d = telemetry.device(c, [to_hex(DEVICE.public)])
    assert [r["metric"] for r in d["lastReadings"]] == [1]
    assert 8 not in [a["metric"] for a in telemetry.telemetry_aggregates(c, [0])]


def _nonce(c: Any, who: Keypair) -> int:
    from twinchain.rpc.twin.common import runtime_at

    return int(runtime_at(c, None).system.nonce(who.public))


def test_verify_reading(chain: StubNode) -> None:
    c = chain.chain
    dev = to_hex(DEVICE.public)
    proof = [to_hex(p) for p in reading_proof(READINGS, 1)]
    ok = telemetry.verify_reading_proof(c, [dev, 0, list(READINGS[1]), 1, proof])
    assert ok == {"valid": True, "root": to_hex(batch_root(READINGS)), "count": 3, "twin": 0}
    tampered = [1, NOW - 2_000, 95_001]
    assert not telemetry.verify_reading_proof(c, [dev, 0, tampered, 1, proof])["valid"]
    assert not telemetry.verify_reading_proof(c, [dev, 0, list(READINGS[1]), 2, proof])["valid"]
    assert telemetry.verify_reading_proof(c, [dev, 7, list(READINGS[1]), 1, proof])["root"] is None


def test_roles_and_metrics(chain: StubNode) -> None:
    c = chain.chain
    roles = [r["role"] for r in registry.roles(c, [ALICE.address])]
    assert roles == ["EquipmentManufacturer", "FacilityOperator"]  # sorted by name
    [device_role] = registry.roles(c, [to_hex(DEVICE.public)])
    assert device_role == {"role": "Device", "grantedBy": to_hex(ALICE.public), "since": 1}
    ms = telemetry.metrics(c, None)
    assert {"id": 8, "name": "good_units", "unit": "units", "scale": 0, "kind": "Delta"} in ms


def test_reads_at_an_older_block(node: StubNode) -> None:
    genesis = to_hex(node.chain.genesis_hash)
    populate(node)
    assert registry.facilities(node.chain, [genesis]) == []
    assert registry.equipment(node.chain, [0, genesis]) is None
    assert len(registry.facilities(node.chain, None)) == 1


@pytest.mark.parametrize(
    ("fn", "params", "code"),
    [
        (registry.facility, [], jsonrpc.INVALID_PARAMS),
        (registry.facility, ["0"], jsonrpc.INVALID_PARAMS),
        (registry.facility, [-1], jsonrpc.INVALID_PARAMS),
        (registry.facility, [0, "0x00"], jsonrpc.INVALID_PARAMS),
        (registry.facility, [0, "0x" + "ab" * 32], jsonrpc.STATE_UNAVAILABLE),
        (registry.facility, {"idd": 0}, jsonrpc.INVALID_PARAMS),
        (registry.facilities, [None, 1], jsonrpc.INVALID_PARAMS),
        (registry.equipment_of, ["not-an-address"], jsonrpc.INVALID_PARAMS),
        (telemetry.telemetry_batches, [0, 0, 5000], jsonrpc.INVALID_PARAMS),
        (telemetry.verify_reading_proof, [to_hex(H), 0, [1, 2], 0, []], jsonrpc.INVALID_PARAMS),
        (
            telemetry.verify_reading_proof,
            [to_hex(H), 0, [1, 2, 3], 0, ["0x12"]],
            jsonrpc.INVALID_PARAMS,
        ),
        (telemetry.verify_reading_proof, [to_hex(H), 0, [1, 2, 3], 0, "x"], jsonrpc.INVALID_PARAMS),
        (telemetry.metrics, "x", jsonrpc.INVALID_PARAMS),
        (telemetry.batch_record, [to_hex(H)], jsonrpc.INVALID_PARAMS),
        (telemetry.batch_record, [to_hex(H), -1], jsonrpc.INVALID_PARAMS),
        (telemetry.batch_record, ["nope", 0], jsonrpc.INVALID_PARAMS),
        (telemetry.disclosure, [], jsonrpc.INVALID_PARAMS),
        (telemetry.disclosure, ["0"], jsonrpc.INVALID_PARAMS),
        (telemetry.disclosure, [0, "0x" + "ab" * 32], jsonrpc.STATE_UNAVAILABLE),
    ],
)
def test_bad_params(node: StubNode, fn: Any, params: Any, code: int) -> None:
    assert rpc_error(fn, node.chain, params).code == code


# --------------------------------------------------------------------------- over the server


async def call(url: str, method: str, params: Any) -> Any:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"http://{url}/",
            content=json.dumps(payload),
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    if "error" in body:
        e = body["error"]
        raise RpcError(e["code"], e["message"], e.get("data"))
    return body["result"]


async def test_over_the_server(chain: StubNode, server: str) -> None:
    t = await call(server, "twin_equipment", [0])
    assert t["owner"] == to_hex(ALICE.public) and t["lifecycle"] == "Active"
    proof = [to_hex(p) for p in reading_proof(READINGS, 2)]
    res = await call(
        server,
        "twin_verifyReading",
        {"device": to_hex(DEVICE.public), "seq": 0, "reading": list(READINGS[2]), "index": 2,
         "proof": proof},
    )  # fmt: skip
    assert res["valid"] is True
    assert [f["id"] for f in await call(server, "twin_facilities", None)] == [0]
    with pytest.raises(RpcError) as info:
        await call(server, "twin_facility", [])
    assert info.value.code == jsonrpc.INVALID_PARAMS
    pol = await call(server, "twin_disclosure", [0])
    assert pol == {"twin": 0, "public": sorted(DEFAULT_PUBLIC)}
    rec = await call(server, "twin_batchRecord", [to_hex(DEVICE.public), 0])
    assert rec["root"] == to_hex(batch_root(READINGS)) and rec["count"] == 3
    names = (await call(server, "rpc_methods", None))["methods"]
    assert set(twin.all_methods()) <= set(names)
