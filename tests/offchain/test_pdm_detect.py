"""The PdM worker's detection logic on simulator runs, offline: the shipped models alert
before an injected failure and stay quiet on healthy machines over the same period; the
IsolationForest export scores as scikit-learn does; model files are tamper-evident."""

from __future__ import annotations

import numpy as np
import pytest

from twinchain.machines.classes import EQUIPMENT_CLASSES
from twinchain.machines.simulator import FactorySimulator, MachineConfig
from twinchain.offchain.cli import TRAINED
from twinchain.offchain.features import Agg, Rated, TwinFeatures, instant_features, windows_of
from twinchain.offchain.models import (
    KINDS,
    IsolationForestParams,
    Model,
    ModelError,
    model_hash,
)
from twinchain.offchain.training import (
    HOUR,
    PROFILES,
    MachineRun,
    alerts_of,
    evaluate,
    profile_runs,
    simulate,
    train,
)
from twinchain.offchain.worker import WorkerError, evidence_of, load_models
from twinchain.primitives import codec
from twinchain.protocol.telemetry import (
    DOWNTIME,
    POWER,
    RUN_TIME,
    TEMPERATURE,
    UNITS_PRODUCED,
    VIBRATION,
)

EVAL_SEED = 4242  # disjoint from the training seeds (1, 2) and the benchmark's (1000+)
PLANT = TRAINED / "plant"


@pytest.fixture(scope="module")
def models() -> dict[str, Model]:
    return load_models(PLANT)


_RUNS: dict[str, list[MachineRun]] = {}


def _runs(equipment_class: str) -> list[MachineRun]:
    """Two machines that fail and two healthy ones over the same period (shared by kinds)."""
    if equipment_class not in _RUNS:
        _RUNS[equipment_class] = simulate(
            equipment_class, EVAL_SEED, machines=4, days=3.0, faulty=2,
            fault_start_days=(1.0, 1.5), ramp_hours=(36, 72),
        )  # fmt: skip
    return _RUNS[equipment_class]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("equipment_class", EQUIPMENT_CLASSES)
def test_alert_before_failure_and_none_on_healthy_machines(equipment_class: str, kind: str) -> None:
    model = load_models(PLANT, kind)[equipment_class]
    assert model.kind == kind
    runs = _runs(equipment_class)
    faulty, healthy = runs[:2], runs[2:]
    for run in faulty:
        assert run.fault is not None and run.fails_at is not None
        alerts = alerts_of(model, run)
        assert alerts, f"no alert before the {run.fault.kind} failure of {run.name}"
        first_end, p = alerts[0]
        assert run.fault.at_ms <= first_end < run.fails_at, (run.fault, alerts)
        assert run.fails_at - first_end >= 6 * HOUR  # time to act
        assert p >= model.threshold_bp / 10_000
    end = max(r.end_ms for r in runs)
    for run in healthy:
        assert run.fault is None and run.end_ms == end  # the same period
        assert alerts_of(model, run) == [], run.name
    ev = evaluate(model, runs)
    assert ev.detected == 2 and ev.missed == 0 and ev.false_alarms == 0


def test_numpy_scoring_of_exported_forest_equals_sklearn() -> None:
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 8))
    probe = np.vstack([rng.normal(size=(200, 8)), rng.normal(3.0, 1.0, size=(50, 8))])
    forest = IsolationForest(n_estimators=40, max_samples=256, random_state=5).fit(x)
    ours = IsolationForestParams.from_sklearn(forest).score(probe)
    np.testing.assert_allclose(ours, -forest.score_samples(probe), rtol=1e-12, atol=0)
    assert ours[200:].mean() > ours[:200].mean()  # outliers score higher


def test_model_file_round_trip_and_tamper_evidence(models: dict[str, Model], tmp_path) -> None:
    m = models["pump"]
    data = m.to_bytes()
    assert (PLANT / m.filename).read_bytes() == data  # canonical: re-serialises identically
    assert Model.from_bytes(data).to_bytes() == data
    assert m.hash == model_hash(data) and len(m.hash) == 32
    path = m.save(tmp_path)
    assert Model.load(path, expect_hash=m.hash).hash == m.hash
    path.write_bytes(data.replace(b'"threshold_bp":5000', b'"threshold_bp":9000'))
    with pytest.raises(ModelError):
        Model.load(path, expect_hash=m.hash)
    with pytest.raises(ModelError):
        Model.from_bytes(b'{"format":"other"}')
    with pytest.raises(ModelError):
        Model.from_bytes(b"not json")
    params = m.chain_params()
    assert len(params) <= 4096
    decoded = codec.decode(params)
    assert decoded[:3] == ["twinchain-pdm/1", m.kind, m.window_ms]
    with pytest.raises(WorkerError):
        load_models(tmp_path / "empty")


def test_features_follow_the_chain_aggregates() -> None:
    rated = Rated.from_pairs([(TEMPERATURE, 50_000), (VIBRATION, 2_000), (POWER, 10_000),
                              (UNITS_PRODUCED, 60)])  # fmt: skip
    # 3 of 4 readings running at vibration 2.4 mm/s and 8 kW, one stopped at 0.1 / 400 W.
    w = {
        VIBRATION: Agg(4, 100, 2_400, 3 * 2_400 + 100),
        POWER: Agg(4, 400, 8_000, 3 * 8_000 + 400),
        TEMPERATURE: Agg(4, 45_000, 45_000, 4 * 45_000),
        RUN_TIME: Agg(4, 0, 900, 2_700),
        DOWNTIME: Agg(4, 0, 900, 900),
        UNITS_PRODUCED: Agg(4, 0, 15, 36),
    }
    f, x = instant_features(w, rated, HOUR)
    assert f == 0.75
    load, power, vib, temp, pressure, scrap = x
    assert load == pytest.approx(36 / 0.75 / 60)
    assert (power, vib, temp, pressure, scrap) == pytest.approx((0.8, 1.2, 0.9, 0.0, 0.0))
    # A window where the machine mostly stood still is not scored.
    w[RUN_TIME], w[DOWNTIME] = Agg(4, 0, 900, 900), Agg(4, 0, 900, 2_700)
    assert instant_features(w, rated, HOUR) is None
    # Rolling: windows in order only, trend over the history.
    tf = TwinFeatures(rated, HOUR)
    sim = FactorySimulator(1, [MachineConfig("p", "pump")], start_ms=0, tick_ms=60_000)
    wins = windows_of(sim.run(6 * 60), HOUR)["p"]
    xs = [tf.update(s, wins[s]) for s in sorted(wins)]
    assert all(v is not None and len(v) == 8 for v in xs)
    assert tf.update(0, wins[0]) is None  # not newer


def test_evidence_hash_commits_to_model_twin_windows_and_probability() -> None:
    wins = [(0, [1.0, 0.5]), (HOUR, [1.1, 0.6])]
    h, body = evidence_of(b"\x01" * 32, 7, wins, 6_500)
    assert h == evidence_of(b"\x01" * 32, 7, wins, 6_500)[0]
    assert codec.decode(body)[2:4] == [7, 6_500]
    assert h != evidence_of(b"\x01" * 32, 8, wins, 6_500)[0]
    assert h != evidence_of(b"\x02" * 32, 7, wins, 6_500)[0]
    assert h != evidence_of(b"\x01" * 32, 7, wins[:1], 6_500)[0]


def test_training_is_seeded() -> None:
    short = dict(fault_start_days=(0.5, 0.7), ramp_hours=(20, 30))
    healthy = simulate("compressor", 11, machines=3, days=2.0)
    calib = simulate("compressor", 12, machines=4, days=2.0, faulty=2, **short)
    runs = dict(healthy=healthy, calibration_runs=calib, n_estimators=10)
    a = train("compressor", "isolation_forest", seed=11, **runs)
    b = train("compressor", "isolation_forest", seed=11, **runs)
    assert a.to_bytes() == b.to_bytes()
    assert train("compressor", "isolation_forest", seed=12, **runs).hash != a.hash
    c = train("compressor", "cusum", seed=11, **runs)
    assert c.kind == "cusum" and c.hash != a.hash
    assert Model.from_bytes(c.to_bytes()).to_bytes() == c.to_bytes()


@pytest.mark.parametrize("equipment_class", ["cnc_mill", "pump"])
def test_devnet_profile_models_catch_minute_long_faults(equipment_class: str) -> None:
    """The models shipped for the devnet's 5 s windows (its gateways ramp faults over a
    minute) raise their alert before the failure, and none on the healthy machines."""
    profile = PROFILES["devnet"]
    model = load_models(TRAINED / "devnet")[equipment_class]
    assert model.window_ms == profile.window_ms == 5_000
    runs = profile_runs(equipment_class, EVAL_SEED, profile, machines=6, faulty=3)
    ev = evaluate(model, runs)
    assert ev.detected == 3 and ev.missed == 0 and ev.false_alarms == 0
    assert min(ev.lead_hours) * 3600 >= 5  # seconds of warning, at least a window
