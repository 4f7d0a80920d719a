"""Simulation: model registration, anchored scenarios with bonds, on-chain challenges (an
honest result survives, a tampered one is refuted and slashed), twin state synchronization
and the permission matrix of every call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from twinchain.primitives import codec
from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.equipment.types import OPERATE, READ_TELEMETRY
from twinchain.runtime.weights.simulation import W_CHALLENGE_BASE, W_PER_PATH_STEP
from twinchain.twinsim import engine
from twinchain.twinsim.engine import DegradationModel, default_inputs, model_hash, run_encoded

NAMES = ("Maker", "Owner", "Delegate", "Reader", "Operator", "Operator2", "Worker", "FWorker",
         "OWorker", "Nobody", "Poor")  # fmt: skip
K = {n: Keypair.from_dev_name(n) for n in NAMES}
GW, DEV = Keypair.from_dev_name("Bob"), Keypair.from_dev_name("Device1")
UNIT = 10**12
BOND = 10 * UNIT
FAR = 10**13
HOUR = 3_600_000
CHALLENGE_BLOCKS = 5
PUMP = DegradationModel(
    wear_per_hour=2_000, failure_threshold=1_000_000, load_exponent_milli=1_500,
    temp_coeff_ppm=20_000, noise_ppm=200_000, spread_ppm=200_000, shock_ppm_per_hour=1_000,
    shock_wear=30_000,
)  # fmt: skip
PARAMS = PUMP.encode()
MODEL = model_hash("pump", "degradation", PARAMS, 1)
MILL_PARAMS = replace(PUMP, wear_per_hour=500).encode()
MILL_MODEL = model_hash("cnc_mill", "degradation", MILL_PARAMS, 1)
OTHER = b"\x77" * 32  # an off-chain predictive model, registered by artifact hash
SEED = 42


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(name: str) -> Origin:
    return Origin.signed(K[name].public)


def world() -> dict[str, Any]:
    twin = {"manufacturer": "//Maker", "owner": "//Owner", "model": "P", "lifecycle": "Active"}
    funded = [n for n in NAMES if n != "Poor"]
    return {
        "balances": {
            "balances": [[f"//{n}", 1_000 * UNIT] for n in (*funded, "Alice", "Bob")]
            + [["//Poor", 2 * 10**9]]
        },
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Operator", "FacilityOperator"],
                ["//Operator2", "FacilityOperator"],
                ["//Worker", "PredictiveWorker"],
                ["//Bob", "Gateway"],
            ]
        },
        "facility": {
            "facilities": [
                {"operator": "//Operator", "name": "A", "verified_until": FAR},
                {"operator": "//Operator2", "name": "B", "verified_until": FAR},
            ]
        },
        "equipment": {
            "twins": [
                twin | {"serial": "1", "class": "pump", "facility": 0},
                twin | {"serial": "2", "class": "cnc_mill", "facility": 0},
            ]
        },
        "telemetry": {"window_ms": 10_000, "devices": [{"device": "//Device1", "twin": 0}]},
        "simulation": {
            "scenario_bond": BOND,
            "challenge_blocks": CHALLENGE_BLOCKS,
            "models": [
                {
                    "equipment_class": "pump",
                    "params": "0x" + PARAMS.hex(),
                    "registered_by": "//Maker",
                }
            ],
        },
    }


@pytest.fixture
def chain(make_chain: Any) -> Any:
    return make_chain(extra=world())


@pytest.fixture
def blk(chain: Any) -> Any:
    chain.start_block(100)
    chain.dispatch(signed("Operator"), "Roles", "grant", K["FWorker"].public, "PredictiveWorker")
    chain.dispatch(signed("Operator2"), "Roles", "grant", K["OWorker"].public, "PredictiveWorker")
    owner = signed("Owner")
    chain.dispatch(owner, "Equipment", "grant_access", 0, K["Delegate"].public, OPERATE, FAR)
    chain.dispatch(owner, "Equipment", "grant_access", 0, K["Reader"].public, READ_TELEMETRY, FAR)
    return chain


def inputs(**kw: Any) -> bytes:
    base = default_inputs(
        PUMP, start_ms=100_000, health_bp=2_500, temperature_milli=50_000, steps=120, paths=100
    )
    return replace(base, **kw).encode()


def honest(data: bytes | None = None, seed: int = SEED, kind: str = "FailureRisk") -> list[Any]:
    """anchor_scenario arguments of an honest result."""
    data = inputs() if data is None else data
    out, h = run_encoded(MODEL, PARAMS, kind, data, seed)
    return [0, MODEL, kind, data, seed, h, *out.summary()]


def anchor(chain: Any, args: list[Any], who: str = "Owner") -> int:
    sid = chain.rt.simulation.NextScenarioId.get()
    chain.dispatch(signed(who), "Simulation", "anchor_scenario", *args)
    return int(sid)


# --------------------------------------------------------------------------- models


def test_genesis_model_and_api(chain: Any) -> None:
    sim = chain.rt.simulation
    info = sim.model(MODEL)
    assert (info.equipment_class, info.kind, info.params, info.version) == (
        "pump",
        "degradation",
        PARAMS,
        1,
    )
    assert sim.model_active(MODEL) and not sim.model_active(OTHER)
    assert (sim.ScenarioBond.get(), sim.ChallengeBlocks.get()) == (BOND, CHALLENGE_BLOCKS)


def test_register_models(blk: Any) -> None:
    sim = blk.rt.simulation
    evs = blk.dispatch(signed("Maker"), "Simulation", "register_model", MILL_MODEL, "cnc_mill",
                       "degradation", MILL_PARAMS, 1)  # fmt: skip
    assert blk.args(evs[-1]) == {
        "model": MILL_MODEL, "class": "cnc_mill", "kind": "degradation", "version": 1,
        "by": K["Maker"].public,
    }  # fmt: skip
    # Any other kind is registered by the hash of its artifact, params opaque but canonical.
    opaque = codec.encode([b"isolation-forest", 200, 8])
    blk.dispatch(
        signed("Worker"), "Simulation", "register_model", OTHER, "pump", "iforest", opaque, 3
    )
    assert sim.model_active(OTHER) and sim.model(OTHER).registered_by == K["Worker"].public


@pytest.mark.parametrize(
    ("model", "cls", "kind", "params", "version", "error"),
    [
        (MODEL, "pump", "degradation", PARAMS, 1, "ModelExists"),
        (b"\x01" * 32, "pump", "degradation", PARAMS, 2, "InvalidModelHash"),
        (model_hash("pump", "degradation", PARAMS, 2), "mill", "degradation", PARAMS, 2,
         "InvalidModelHash"),
        (b"\x01" * 32, "pump", "degradation", codec.encode(["degradation", 1, [0] * 9]), 1,
         "InvalidParams"),
        (b"\x01" * 32, "pump", "iforest", b"\xc1", 1, "InvalidModel"),
        (b"\x01" * 32, "pump", "iforest", codec.encode(1) + b"\x00", 1, "InvalidModel"),
        (b"\x01" * 32, "", "iforest", codec.encode(1), 1, "InvalidModel"),
        (b"\x01" * 32, "pump", "", codec.encode(1), 1, "InvalidModel"),
    ],
)  # fmt: skip
def test_register_rejects(
    blk: Any, model: bytes, cls: str, kind: str, params: bytes, version: int, error: str
) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(
            signed("Maker"), "Simulation", "register_model", model, cls, kind, params, version
        )
    assert err(e) == f"Simulation.{error}"
    assert len(list(blk.rt.simulation.Models.iter())) == 1


def test_deactivate(blk: Any) -> None:
    sim = blk.rt.simulation
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed("Operator"), "Simulation", "deactivate_model", MODEL)
    assert err(e) == "Simulation.NotRegistrant"
    blk.dispatch(signed("Maker"), "Simulation", "deactivate_model", MODEL)
    assert not sim.model_active(MODEL) and sim.model(MODEL) is not None
    for origin, error in [(signed("Maker"), "ModelInactive"), (Origin.root(), "ModelInactive")]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(origin, "Simulation", "deactivate_model", MODEL)
        assert err(e) == f"Simulation.{error}"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(Origin.root(), "Simulation", "deactivate_model", OTHER)
    assert err(e) == "Simulation.UnknownModel"
    with pytest.raises(DispatchError) as e:  # no new scenario on a retired model
        anchor(blk, honest())
    assert err(e) == "Simulation.ModelInactive"


# --------------------------------------------------------------------------- scenarios


def test_anchor_reserves_the_bond(blk: Any) -> None:
    args = honest()
    free = blk.free(K["Owner"].public)
    sid = anchor(blk, args)
    s = blk.rt.simulation.scenario(sid)
    assert (s.twin, s.model, s.kind, s.seed, s.output_hash) == (
        0,
        MODEL,
        "FailureRisk",
        SEED,
        args[5],
    )
    assert (s.failure_bp, s.ttf_ms, s.window_start, s.window_end) == tuple(args[6:])
    assert (s.status, s.bond, s.submitter, s.block) == ("Anchored", BOND, K["Owner"].public, 1)
    assert blk.reserved(K["Owner"].public) == BOND and blk.free(K["Owner"].public) == free - BOND
    assert blk.rt.simulation.scenarios_of(0) == [sid]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({0: 1}, "ModelClassMismatch"),  # a cnc_mill twin, a pump model
        ({0: 9}, "UnknownTwin"),
        ({1: OTHER}, "UnknownModel"),
        ({3: b"\xc1"}, "InvalidInputs"),
        ({3: codec.encode([1, 2, 3])}, "InvalidInputs"),
        ({3: "TOO_LARGE"}, "ScenarioTooLarge"),
        ({2: "FailureRisk", 3: "TWO_SCHEDULES"}, "InvalidInputs"),
        ({6: 10_001}, "InvalidSummary"),
        ({8: 5, 9: None}, "InvalidSummary"),
        ({8: 10**15, 9: 10**15 + 1}, "InvalidSummary"),  # past the horizon
    ],
)
def test_anchor_rejects(blk: Any, change: dict[int, Any], error: str) -> None:
    args = honest()
    for i, v in change.items():
        if v == "TOO_LARGE":
            v = codec.encode([100_000, 0, 0, HOUR, 2_000, 1_000, 100, [[[1, 10**6, 10**6]]]])
        elif v == "TWO_SCHEDULES":
            v = replace(
                engine.ScenarioInputs.decode(inputs()),
                schedules=(((engine.Segment(1, 1, 1)),),) * 2,
            ).to_wire()
            v = codec.encode(v)
        args[i] = v
    with pytest.raises(DispatchError) as e:
        anchor(blk, args)
    assert err(e) == f"Simulation.{error}"
    assert blk.rt.simulation.NextScenarioId.get() == 0 and blk.reserved(K["Owner"].public) == 0


def test_anchor_needs_the_bond(blk: Any) -> None:
    blk.dispatch(signed("Owner"), "Equipment", "grant_access", 0, K["Poor"].public, OPERATE, FAR)
    with pytest.raises(DispatchError) as e:
        anchor(blk, honest(), who="Poor")
    assert err(e) == "Simulation.InsufficientBond"


def test_not_simulatable_kind(blk: Any) -> None:
    blk.dispatch(signed("Worker"), "Simulation", "register_model", OTHER, "pump", "iforest",
                 codec.encode(1), 1)  # fmt: skip
    args = honest()
    args[1] = OTHER
    with pytest.raises(DispatchError) as e:
        anchor(blk, args)
    assert err(e) == "Simulation.NotSimulatable"


def test_honest_result_survives_a_challenge(blk: Any) -> None:
    sid = anchor(blk, honest(kind="WhatIf", data=inputs(schedules=(
        (engine.Segment(1, 10**6, 10**6),), (engine.Segment(2, 500_000, 10**6),
                                              engine.Segment(1, 10**6, 0))))))  # fmt: skip
    before = list(blk.rt.state.iter_prefix(b""))
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed("Nobody"), "Simulation", "challenge", sid)
    assert err(e) == "Simulation.ChallengeFailed"
    assert list(blk.rt.state.iter_prefix(b"")) == before
    assert blk.rt.simulation.scenario(sid).status == "Anchored"


@pytest.mark.parametrize("tamper", ["hash", "seed", "failure_bp", "window"])
def test_tampered_result_is_refuted_and_slashed(blk: Any, tamper: str) -> None:
    args = honest()
    assert args[8] is not None and 0 < args[6] < 10_000  # a window and partial risk
    if tamper == "hash":
        args[5] = bytes([args[5][0] ^ 1]) + args[5][1:]
    elif tamper == "seed":  # the output of another seed, claimed for this one
        args[4] = SEED + 1
    elif tamper == "failure_bp":  # right hash, a rosier headline figure
        args[6] = max(0, args[6] - 1_000)
    else:
        args[8], args[9] = None, None
    sid = anchor(blk, args)
    nobody = K["Nobody"].public
    free = blk.free(nobody)
    evs = blk.dispatch(signed("Nobody"), "Simulation", "challenge", sid)
    _, expected = run_encoded(MODEL, PARAMS, "FailureRisk", args[3], args[4])
    assert blk.args(evs[-1]) == {
        "id": sid,
        "challenger": nobody,
        "expected": expected,
        "slashed": BOND,
    }
    assert blk.free(nobody) == free + BOND
    assert blk.reserved(K["Owner"].public) == 0
    s = blk.rt.simulation.scenario(sid)
    assert (s.status, s.challenger, s.bond) == ("Refuted", nobody, 0)
    for name in ("challenge", "release_bond"):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed("Nobody"), "Simulation", name, sid)
        assert err(e) == "Simulation.NotChallengeable"


def test_challenge_period_and_bond_release(chain: Any) -> None:
    chain.start_block(100)
    sid = anchor(chain, honest())
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed("Nobody"), "Simulation", "release_bond", sid)
    assert err(e) == "Simulation.ChallengePeriodOpen"
    chain.finish_block()
    for _ in range(CHALLENGE_BLOCKS):
        chain.produce()
    chain.start_block()  # block 1 + CHALLENGE_BLOCKS + 1
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed("Nobody"), "Simulation", "challenge", sid)
    assert err(e) == "Simulation.ChallengePeriodOver"
    evs = chain.dispatch(signed("Nobody"), "Simulation", "release_bond", sid)
    assert chain.args(evs[-1]) == {"id": sid, "submitter": K["Owner"].public, "amount": BOND}
    assert chain.reserved(K["Owner"].public) == 0
    assert chain.rt.simulation.scenario(sid).status == "Final"
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed("Nobody"), "Simulation", "release_bond", 99)
    assert err(e) == "Simulation.UnknownScenario"


def test_challenge_as_a_real_extrinsic_is_weighed_by_its_work(chain: Any) -> None:
    chain.start_block(100)
    args = honest()
    args[5] = b"\x00" * 32
    sid = anchor(chain, args)
    chain.finish_block()
    challenger = Keypair.from_dev_name("Nobody")
    honest_sid = None
    chain.start_block()
    honest_sid = anchor(chain, honest(seed=5))
    chain.finish_block()
    raw_bad = chain.sign(challenger, chain.call("Simulation", "challenge", sid))
    raw_ok = chain.sign(challenger, chain.call("Simulation", "challenge", honest_sid), nonce=1)
    out_bad, out_ok = chain.produce(raw_bad, raw_ok)
    work = 100 * 120
    assert out_bad.success and out_bad.weight >= W_CHALLENGE_BASE + W_PER_PATH_STEP * work
    assert not out_ok.success and out_ok.error.error == "ChallengeFailed"
    assert chain.rt.simulation.scenario(sid).status == "Refuted"
    assert chain.rt.simulation.scenario(honest_sid).status == "Anchored"


# --------------------------------------------------------------------------- twin state


def test_window_close_synchronizes_twin_state(chain: Any) -> None:
    sim, bench, maint = chain.rt.simulation, chain.rt.benchmark, chain.rt.maintenance
    chain.start_block(100)
    # The twin's health and last alert, as Benchmark and Maintenance keep them: metric 1
    # drifting 18 % (health 8200 once its window closes) and alert 7 its latest.
    bench.Ewmas.insert(0, [(1, 1_800)])
    maint.LastAlert.insert(0, 7)
    readings = [(1, 81_000, 50_000), (1, 82_000, 52_001), (4, 83_000, 1_500), (7, 84_000, 3)]
    chain.make_public(0, 4, 7)  # power and units produced: private unless the owner says so
    chain.dispatch(signed_gw(), "Telemetry", "submit", [chain.commitment(DEV, 0, 0, readings)])
    assert sim.twin_state(0) is None  # window still open
    late = chain.commitment(DEV, 0, 1, [(1, 95_000, 49_000)])
    evs = chain.dispatch(signed_gw(), "Telemetry", "submit", [late])
    assert sim.twin_state(0) is None  # the close is queued for the next block's start
    evs += chain.close_windows()
    st = sim.twin_state(0)
    assert (st.window_start, st.window_ms, st.health_bp, st.last_alert, st.block) == (
        80_000,
        10_000,
        8_200,
        7,
        1,
    )
    assert (st.health_bp, st.last_alert) == (bench.health_bp(0), maint.last_alert(0))
    assert [(m.metric, m.count, m.mean, m.min, m.max, m.last) for m in st.metrics] == [
        (1, 2, 51_000, 50_000, 52_001, 52_001), (4, 1, 1_500, 1_500, 1_500, 1_500),
        (7, 1, 3, 3, 3, 3),
    ]  # fmt: skip
    assert "Simulation.TwinStateUpdated" in chain.names(evs)
    # A twin with neither a drift nor an alert yet: None for both.
    sim.on_window_closed(1, 90_000, 10_000, {})
    st1 = sim.twin_state(1)
    assert (st1.health_bp, st1.last_alert, st1.metrics) == (None, None, [])


def signed_gw() -> Origin:
    return Origin.signed(GW.public)


# --------------------------------------------------------------------------- permissions

ACTORS = ("Owner", "Delegate", "Reader", "Maker", "Operator", "Worker", "FWorker", "OWorker",
          "Nobody", "root")  # fmt: skip
MATRIX: dict[str, dict[str, str]] = {
    # Manufacturers, operators and predictive workers register models.
    "register_model": {"Owner": "NotAllowed", "Delegate": "NotAllowed", "Reader": "NotAllowed",
                       "Maker": "ok", "Operator": "ok", "Worker": "ok", "FWorker": "ok",
                       "OWorker": "ok", "Nobody": "NotAllowed", "root": "BadOrigin"},
    # The registrant (Maker, for the genesis model) or root.
    "deactivate_model": {a: "NotRegistrant" for a in ACTORS} | {"Maker": "ok", "root": "ok"},
    # Owner, OPERATE delegate, or a worker granted by root or by this facility's operator.
    "anchor_scenario": {"Owner": "ok", "Delegate": "ok", "Reader": "NoPermission",
                        "Maker": "NoPermission", "Operator": "NoPermission", "Worker": "ok",
                        "FWorker": "ok", "OWorker": "NoPermission", "Nobody": "NoPermission",
                        "root": "BadOrigin"},
    # Anyone signed may challenge (here: a tampered result) or release an expired bond.
    "challenge": {a: "ok" for a in ACTORS} | {"root": "BadOrigin"},
    "release_bond": {a: "ok" for a in ACTORS} | {"root": "BadOrigin"},
}  # fmt: skip


def _args(blk: Any, name: str) -> list[Any]:
    if name == "register_model":
        return [MILL_MODEL, "cnc_mill", "degradation", MILL_PARAMS, 1]
    if name == "deactivate_model":
        return [MODEL]
    if name == "anchor_scenario":
        return honest()
    args = honest()
    if name == "challenge":
        args[5] = b"\x00" * 32
    sid = anchor(blk, args)
    if name == "release_bond":
        blk.rt.simulation.ChallengeBlocks.put(0)
        blk.finish_block()
        blk.start_block()
    return [sid]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("name", list(MATRIX))
def test_permission_matrix(blk: Any, name: str, actor: str) -> None:
    args = _args(blk, name)
    origin = Origin.root() if actor == "root" else signed(actor)
    expected = MATRIX[name][actor]
    if expected == "ok":
        blk.dispatch(origin, "Simulation", name, *args)
        return
    before = list(blk.rt.state.iter_prefix(b""))
    with pytest.raises(DispatchError) as e:
        blk.dispatch(origin, "Simulation", name, *args)
    module = "System" if expected == "BadOrigin" else "Simulation"
    assert err(e) == f"{module}.{expected}"
    assert list(blk.rt.state.iter_prefix(b"")) == before


def test_matrix_covers_every_call() -> None:
    from twinchain.runtime.pallets.simulation import Simulation

    assert set(MATRIX) == set(Simulation.calls_by_name)
