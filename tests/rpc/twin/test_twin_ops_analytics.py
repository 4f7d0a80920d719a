"""twin_* reads of Analytics and Simulation on a real chain (in-memory client, real pool):
KPIs, facility KPIs, reports, rewards, models, scenarios, twin state; and the
``twinchain simulate`` commands against the live RPC server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import trio

from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol import jsonrpc
from twinchain.protocol.jsonrpc import RpcError, to_hex
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, Commitment, sign_batch
from twinchain.rpc import methods, twin
from twinchain.rpc.twin import analytics as twin_analytics
from twinchain.rpc.twin import simulation as twin_simulation
from twinchain.runtime.pallets.analytics.types import treasury_account
from twinchain.runtime.pallets.equipment.types import Spec
from twinchain.twinsim.engine import (
    DegradationModel,
    default_inputs,
    model_hash,
    run_encoded,
    start_wear_from_health,
)

if TYPE_CHECKING:
    from stub_node import StubNode

ALICE, BOB, CHARLIE, DAVE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
DEVICE = Keypair.from_dev_name("Device1")
UNIT = 10**12
H = b"\x05" * 32
FAR = 10**13
DAY = 86_400_000
PUMP = DegradationModel(wear_per_hour=3_000, failure_threshold=1_000_000, noise_ppm=100_000)
PARAMS = PUMP.encode()
MODEL = model_hash("pump", "degradation", PARAMS, 1)
SEED = 9


class Author:
    """Signs extrinsics with the right nonces and authors blocks at chosen slots."""

    def __init__(self, node: StubNode) -> None:
        self.node, self.chain, self.rt = node, node.chain, node.chain.runtime
        self.nonces: dict[bytes, int] = {}

    def xt(self, who: Keypair, pallet: str, name: str, *args: Any) -> tuple[bytes, bytes]:
        n = self.nonces.get(who.public, 0)
        self.nonces[who.public] = n + 1
        call = self.rt.call_by_name(pallet, name, *args)
        return b"", Extrinsic.sign(
            call, who, n, self.chain.genesis_hash, self.rt.spec_version
        ).encode()

    def sudo(self, pallet: str, name: str, *args: Any) -> tuple[bytes, bytes]:
        inner = list(self.rt.call_by_name(pallet, name, *args).to_wire())
        return self.xt(ALICE, "Sudo", "sudo", inner)

    def block(self, slot: int, *ready: tuple[bytes, bytes]) -> bytes:
        _, result = self.chain.propose(ALICE, slot, slot * 1000, list(ready))
        assert all(o.success for o in result.outcomes), [o.error for o in result.outcomes]
        self.node.slot = slot
        return result.hash


PUBLISHED = (5, 7, 8, 9, 11)  # energy, units, good, bad, run time


def commit(gen: bytes, seq: int, readings: list[tuple[int, int, int]]) -> Commitment:
    """The commitment of the device's batch, with the summaries of the published metrics."""
    public = DEFAULT_PUBLIC | set(PUBLISHED)
    return sign_batch(DEVICE, gen, 0, seq, readings, public).commitment()


def scenario_args(seed: int = SEED, tamper: bool = False) -> list[Any]:
    data = default_inputs(
        PUMP, start_ms=90_000_000, health_bp=None, temperature_milli=50_000, steps=100, paths=50
    ).encode()
    out, h = run_encoded(MODEL, PARAMS, "FailureRisk", data, seed)
    if tamper:
        h = bytes(32)
    return [0, MODEL, "FailureRisk", data, seed, h, *out.summary()]


def populate(node: StubNode) -> dict[str, bytes]:
    """A pump twin at a verified facility with a device; one window of production in period
    0 (closed by a reading a day later, the close run at the next block's start), period 0
    closed by on_initialize, a report, a data
    reward, a registered model and two anchored scenarios (one challenged and refuted)."""
    a = Author(node)
    gen = node.chain.genesis_hash
    w0 = [(11, 500_000, 1800), (7, 500_000, 30), (8, 600_000, 29), (9, 600_000, 1),
          (5, 700_000, 900), (1, 700_000, 52_000)]  # fmt: skip
    b1 = a.block(
        1001,
        a.sudo("Roles", "force_grant", ALICE.public, "FacilityOperator"),
        a.sudo("Roles", "force_grant", BOB.public, "CertifiedAuditor"),
        a.sudo("Roles", "force_grant", ALICE.public, "EquipmentManufacturer"),
        a.sudo("Roles", "force_grant", CHARLIE.public, "Gateway"),
        a.xt(ALICE, "Facility", "register", "Plant", "Berlin", ["pumps"], DAVE.public),
        a.xt(BOB, "Facility", "verify", 0, H, True, FAR),
        a.xt(ALICE, "Equipment", "mint", "pump", "P-1", "SN-1", Spec([(7, 60)], []), ALICE.public),
        a.xt(ALICE, "Equipment", "commission", 0, 0),
        a.xt(ALICE, "Equipment", "activate", 0),
        a.xt(ALICE, "Telemetry", "bind_device", 0, DEVICE.public, None),
        # Production, run time and energy are private by default: the owner publishes them.
        *(a.xt(ALICE, "Telemetry", "set_disclosure", 0, m, True) for m in PUBLISHED),
        a.xt(CHARLIE, "Telemetry", "submit", [commit(gen, 0, w0)]),
        a.xt(ALICE, "Simulation", "register_model", MODEL, "pump", "degradation", PARAMS, 1),
        a.xt(ALICE, "Balances", "transfer", treasury_account(), 100 * UNIT),
    )
    late = commit(gen, 1, [(1, 89_990_000, 51_000)])  # closes window 0
    b2 = a.block(
        90_000,
        a.xt(CHARLIE, "Telemetry", "submit", [late]),
        a.xt(ALICE, "Simulation", "anchor_scenario", *scenario_args()),
        a.xt(ALICE, "Simulation", "anchor_scenario", *scenario_args(tamper=True)),
    )
    # Its start runs the window close b2's submit queued; its on_initialize still sees
    # 90_000 s: before the end plus grace (2 h).
    b3 = a.block(94_000)
    # The next block's on_initialize closes period 0. Hand-computed: planned 86_400 s, no
    # downtime -> availability 100 %; 60/h x 1800 s = 30 ideal, 30 made -> performance
    # 100 %; 29 good of 30 -> quality 966_666 ppm = OEE.
    b4 = a.block(
        94_001,
        a.xt(ALICE, "Analytics", "anchor_report", ("Twin", 0), 0, [("oee_ppm", 966_666)], H),
        a.xt(ALICE, "Analytics", "claim_data_reward", 0, 0),
        a.xt(BOB, "Simulation", "challenge", 1),
    )
    return {"b1": b1, "b2": b2, "b3": b3, "b4": b4}


@pytest.fixture
def chain(node: StubNode) -> StubNode:
    node.hashes = populate(node)  # type: ignore[attr-defined]
    return node


def rpc_error(fn: Any, *args: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        fn(*args)
    return info.value


def test_methods_are_registered() -> None:
    names = set(twin_analytics.METHODS) | set(twin_simulation.METHODS)
    assert names == {
        "twin_kpis", "twin_facilityKpis", "twin_reports", "twin_rewards", "twin_models",
        "twin_scenario", "twin_scenarios", "twin_state",
    }  # fmt: skip
    assert names <= set(methods.METHODS) and names <= set(twin.all_methods())


def test_kpis_and_facility_kpis(chain: StubNode) -> None:
    c = chain.chain
    k = twin_analytics.kpis(c, [0])
    assert (k["twin"], k["periodMs"], k["idealRateMilli"], k["plannedMs"]) == (0, DAY, 60_000, DAY)
    assert (k["lastClosed"], k["firstPeriod"], k["openPeriod"]) == (0, 0, None)
    latest = k["latest"]
    assert latest == k["periods"][-1]
    assert (latest["availabilityPpm"], latest["performancePpm"], latest["qualityPpm"]) == (
        1_000_000, 1_000_000, 966_666
    )  # fmt: skip
    assert latest["oeePpm"] == 966_666 and latest["energyPerGoodMwh"] == 900_000 * 1000 // 29_000
    assert latest["sums"]["runS"] == 1800 and latest["sums"]["validWindows"] == 1
    assert latest["mtbfS"] is None and latest["facility"] == 0
    assert k["dataClaimedUpTo"] == 0 and k["baseline"]["periods"] == 1
    f = twin_analytics.facility_kpis(c, {"facility": 0})
    assert f["latest"]["oeePpm"] == 966_666 and f["latest"]["twins"] == 1
    assert twin_analytics.facility_kpis(c, [3])["periods"] == []
    # At the block before the close, the period is still open with its sums.
    before = twin_analytics.kpis(c, [0, to_hex(chain.hashes["b3"])])  # type: ignore[attr-defined]
    assert before["latest"] is None and before["open"]["period"] == 0
    assert before["open"]["units"] == 30
    json.dumps(k)


def test_reports_and_rewards(chain: StubNode) -> None:
    c = chain.chain
    [r] = twin_analytics.reports(c, [0])
    assert r["scope"] == {"kind": "Twin", "id": 0} and r["period"] == 0
    assert r["figures"] == [{"name": "oee_ppm", "value": 966_666}] and r["reportHash"] == to_hex(H)
    assert twin_analytics.reports(c, None) == [r] and twin_analytics.reports(c, [1]) == []
    rw = twin_analytics.rewards(c, [ALICE.address])
    [paid] = rw["rewards"]
    rules = rw["rules"]
    assert (paid["kind"], paid["twin"], paid["fromPeriod"], paid["toPeriod"]) == ("Data", 0, 0, 0)
    assert paid["amount"] == rules["dataRewardPerWindow"] == rw["total"] == rw["totalRewarded"]
    assert rw["treasury"] == to_hex(treasury_account())
    assert rw["treasuryBalance"] == 100 * UNIT - paid["amount"]
    assert twin_analytics.rewards(c, [to_hex(BOB.public)])["rewards"] == []


def test_models_scenarios_and_state(chain: StubNode) -> None:
    c = chain.chain
    [m] = twin_simulation.models(c, None)
    assert m["model"] == to_hex(MODEL) and m["active"] and m["kind"] == "degradation"
    assert m["decoded"]["wear_per_hour"] == 3_000 and m["params"] == to_hex(PARAMS)
    honest, refuted = twin_simulation.scenarios(c, [0])
    assert (honest["id"], honest["status"], refuted["id"], refuted["status"]) == (
        0, "Anchored", 1, "Refuted"
    )  # fmt: skip
    assert refuted["challenger"] == to_hex(BOB.public) and refuted["bond"] == 0
    one = twin_simulation.scenario(c, [0])
    assert one == honest
    assert one["inputsDecoded"]["paths"] == 50 and one["inputsDecoded"]["work"] == 5_000
    assert one["inputsDecoded"]["schedules"] == [[{"steps": 1, "loadPpm": 10**6, "dutyPpm": 10**6}]]
    assert one["challengeUntilBlock"] == 2 + 600
    assert twin_simulation.scenario(c, [7]) is None
    st = twin_simulation.state(c, [0])
    assert (st["twin"], st["windowStart"], st["windowMs"], st["equipmentClass"]) == (
        0, 0, 3_600_000, "pump"
    )  # fmt: skip
    temp = next(x for x in st["metrics"] if x["metric"] == 1)
    assert (temp["count"], temp["mean"]) == (1, 52_000)
    assert twin_simulation.state(c, [1]) is None
    json.dumps([m, honest, st])


@pytest.mark.parametrize(
    ("fn", "params"),
    [
        (twin_analytics.kpis, []),
        (twin_analytics.kpis, ["0"]),
        (twin_analytics.facility_kpis, [2**32]),
        (twin_analytics.reports, [-1]),
        (twin_analytics.rewards, ["nope"]),
        (twin_simulation.models, [None, 1]),
        (twin_simulation.scenario, [{"x": 1}]),
        (twin_simulation.scenarios, {"twn": 0}),
        (twin_simulation.state, [0, "0x00"]),
    ],
)
def test_bad_params(node: StubNode, fn: Any, params: Any) -> None:
    assert rpc_error(fn, node.chain, params).code == jsonrpc.INVALID_PARAMS


# --------------------------------------------------------------------------- CLI over RPC


def cli(argv: list[str]) -> tuple[int, Any]:
    """``twinchain simulate ...`` in this thread; returns (exit status, printed JSON)."""
    import contextlib
    import io

    from twinchain.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    text = buf.getvalue()
    return rc, json.loads(text) if text.strip() else None


async def test_simulate_cli_run_submit_and_verify(chain: StubNode, server: str) -> None:
    url = f"http://{server}"
    # Verify: the honest scenario matches; the refuted one does not.
    rc, out = await trio.to_thread.run_sync(
        cli, ["simulate", "verify", "--rpc", url, "--scenario", "0"]
    )
    assert rc == 0 and out["matches"] and out["recomputedHash"] == out["anchoredHash"]
    rc, out = await trio.to_thread.run_sync(
        cli, ["simulate", "verify", "--rpc", url, "--scenario", "1"]
    )
    assert rc == 2 and not out["matches"]
    # Run from the twin's chain state and anchor it; then it verifies.
    argv = ["simulate", "run", "--rpc", url, "--twin", "0", "--model", to_hex(MODEL), "--seed",
            "77", "--steps", "50", "--paths", "40", "--submit", "--suri", "//Charlie",
            "--no-wait"]  # fmt: skip
    rc, out = await trio.to_thread.run_sync(cli, argv)
    assert rc == 0 and out["submitted"]["status"] == "submitted"
    chain.author()
    assert twin_simulation.scenario(chain.chain, [2]) is None  # not Charlie's twin: failed
    argv[argv.index("//Charlie")] = "//Alice"
    rc, out = await trio.to_thread.run_sync(cli, argv)
    assert rc == 0 and out["fromState"] and out["submitted"]["status"] == "submitted"
    chain.author()
    sc = twin_simulation.scenario(chain.chain, [2])
    assert sc is not None and sc["outputHash"] == out["outputHash"] and sc["seed"] == 77
    # Started from the twin state: its 52 degC mean and its health score (None: as new).
    st = twin_simulation.state(chain.chain, [0])
    assert sc["inputsDecoded"]["temperatureMilli"] == 52_000
    assert sc["inputsDecoded"]["startWear"] == start_wear_from_health(PUMP, st["healthBp"])
    rc, out = await trio.to_thread.run_sync(
        cli, ["simulate", "verify", "--rpc", url, "--scenario", "2"]
    )
    assert rc == 0 and out["matches"]
    rc, _ = await trio.to_thread.run_sync(
        cli, ["simulate", "verify", "--rpc", url, "--scenario", "9"]
    )
    assert rc == 1
