"""The factory simulator: determinism, envelopes, fault ramps, failure and repair."""

from __future__ import annotations

import statistics

import pytest

from twinchain.machines.classes import EQUIPMENT_CLASSES, FAULT_KINDS, SimulatorError, class_spec
from twinchain.machines.simulator import (
    FactorySimulator,
    Fault,
    MachineConfig,
    SimReading,
    random_faults,
)
from twinchain.protocol.telemetry import (
    DEFAULT_METRICS,
    DOWNTIME,
    TEMPERATURE,
    UNITS_PRODUCED,
    VIBRATION,
)
from twinchain.runtime.pallets.equipment.types import Envelope, Spec

T0 = 1_750_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR
MINUTE = 60_000


def _series(readings: list[SimReading], machine: str, metric: int) -> list[int]:
    return [r.value for r in readings if r.machine == machine and r.metric == metric]


def test_same_seed_same_run_other_seed_differs() -> None:
    faults = [Fault("pump-02", "bearing_wear", T0 + HOUR, 3 * HOUR)]
    a = FactorySimulator(42, 3, start_ms=T0, tick_ms=MINUTE, faults=faults).run(300)
    b = FactorySimulator(42, 3, start_ms=T0, tick_ms=MINUTE, faults=faults).run(300)
    c = FactorySimulator(43, 3, start_ms=T0, tick_ms=MINUTE, faults=faults).run(300)
    assert a == b
    assert a != c
    assert all(type(r.value) is int and type(r.ts_ms) is int for r in a)


def test_readings_use_telemetry_metric_ids_and_tick_timestamps() -> None:
    sim = FactorySimulator(1, 3, start_ms=T0, tick_ms=1000)
    assert [m.equipment_class for m in sim.machines] == list(EQUIPMENT_CLASSES)
    known = {m[0] for m in DEFAULT_METRICS}
    first, second = sim.step(), sim.step()
    assert {r.ts_ms for r in first} == {T0} and {r.ts_ms for r in second} == {T0 + 1000}
    assert {r.metric for r in first} <= known
    for m in sim.machines:
        metrics = [r.metric for r in first if r.machine == m.name]
        assert metrics == sorted(set(metrics)) and len(metrics) >= 11


@pytest.mark.parametrize("tick_ms", [1000, MINUTE])
def test_healthy_worn_machines_stay_inside_class_envelope(tick_ms: int) -> None:
    machines = [
        MachineConfig(f"{cls}-{i}", cls, initial_wear=wear)
        for cls in EQUIPMENT_CLASSES
        for i, wear in enumerate((0.0, 0.95))
    ]
    sim = FactorySimulator(9, machines, start_ms=T0, tick_ms=tick_ms)
    envs = {}
    for cls in EQUIPMENT_CLASSES:
        spec = class_spec(cls, tick_ms)
        # The equipment pallet's genesis shape decodes into its Spec record.
        Spec([tuple(r) for r in spec["rated"]], [Envelope(*e) for e in spec["envelope"]])
        envs[cls] = {e[0]: e[1:] for e in spec["envelope"]}
    cls_of = {m.name: m.equipment_class for m in machines}
    last: dict[tuple[str, int], int] = {}
    ticks = 3000 if tick_ms == 1000 else 2 * 1440
    for r in sim.run(ticks):
        lo, hi, step = envs[cls_of[r.machine]][r.metric]
        assert lo <= r.value <= hi, r
        prev = last.get((r.machine, r.metric))
        if step and prev is not None:
            assert abs(r.value - prev) <= step, r
        last[(r.machine, r.metric)] = r.value


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_fault_ramps_then_machine_fails_and_repair_restores(kind: str) -> None:
    machines = [MachineConfig("m", "pump"), MachineConfig("twin", "pump")]
    sim = FactorySimulator(5, machines, start_ms=T0, tick_ms=MINUTE)
    sim.inject("m", kind, T0 + 6 * HOUR, 24 * HOUR)
    sim.repair("m", T0 + 40 * HOUR, duration_ms=2 * HOUR)
    phases: dict[str, list[SimReading]] = {"before": [], "late": [], "failed": [], "after": []}
    while sim.now_ms < T0 + 60 * HOUR:
        now = sim.now_ms
        rs = sim.step()
        if now < T0 + 6 * HOUR:
            phases["before"] += rs
        elif T0 + 26 * HOUR <= now < T0 + 30 * HOUR:
            phases["late"] += rs
            assert not sim.truth("m")["failed"]
        elif T0 + 31 * HOUR <= now < T0 + 40 * HOUR:
            phases["failed"] += rs
            truth = sim.truth("m")
            assert truth["failed"] and truth["failed_at_ms"] == T0 + 30 * HOUR
            assert truth["fault"] == kind and truth["severity"] == 1.0
        elif now >= T0 + 44 * HOUR:
            phases["after"] += rs

    def mean(phase: str, metric: int, machine: str = "m") -> float:
        return statistics.fmean(_series(phases[phase], machine, metric))

    signal = TEMPERATURE if kind == "overheating" else VIBRATION
    # The fault shows late in its ramp, on the faulty machine only.
    assert mean("late", signal) > 1.3 * mean("before", signal)
    assert mean("late", signal, "twin") < 1.1 * mean("before", signal, "twin")
    # Failed: nothing produced, a minute of downtime per minute.
    assert sum(_series(phases["failed"], "m", UNITS_PRODUCED)) == 0
    assert sum(_series(phases["failed"], "m", DOWNTIME)) == 9 * 60 * 60
    assert mean("failed", VIBRATION) < 200  # mm/s at scale 3
    # Repaired: producing again, back to its healthy level.
    truth = sim.truth("m")
    assert not truth["failed"] and truth["fault"] is None and not truth["in_repair"]
    assert sum(_series(phases["after"], "m", UNITS_PRODUCED)) > 0
    assert mean("after", signal) < 1.1 * mean("before", signal)


def test_repair_during_a_fault_ramp_cancels_it() -> None:
    sim = FactorySimulator(3, 1, start_ms=T0, tick_ms=MINUTE)
    sim.inject(0, "misalignment", T0, 10 * HOUR)
    sim.repair(0, T0 + 5 * HOUR)
    sim.run(6 * 60)
    assert sim.truth(0)["fault"] is None
    sim.run(6 * 60)
    assert not sim.truth(0)["failed"]


def test_wear_grows_with_running_time() -> None:
    sim = FactorySimulator(
        3, [MachineConfig("p", "pump", wear_per_day=0.05)], start_ms=T0, tick_ms=MINUTE
    )
    w0 = sim.truth("p")["wear"]
    sim.run(2 * 1440)
    assert 0.05 < sim.truth("p")["wear"] - w0 <= 0.1 + 1e-9


def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(SimulatorError):
        MachineConfig("x", "lathe")
    with pytest.raises(SimulatorError):
        FactorySimulator(1, [MachineConfig("a", "pump"), MachineConfig("a", "pump")], start_ms=0)
    sim = FactorySimulator(1, 2, start_ms=T0)
    with pytest.raises(SimulatorError):
        sim.inject("cnc_mill-01", "corrosion", T0, HOUR)
    with pytest.raises(SimulatorError):
        sim.inject("nope", "overheating", T0, HOUR)
    with pytest.raises(SimulatorError):
        sim.inject(0, "overheating", T0, 0)
    with pytest.raises(SimulatorError):
        class_spec("lathe")
    assert sim.truth(0)["fault"] is None  # nothing was scheduled


def test_random_faults_are_seeded_and_fit_the_span() -> None:
    machines = FactorySimulator(0, 12, start_ms=T0).machines
    a = random_faults(7, machines, start_ms=T0, span_ms=14 * DAY)
    assert a == random_faults(7, machines, start_ms=T0, span_ms=14 * DAY)
    assert a and all(f.kind in FAULT_KINDS for f in a)
    assert all(T0 < f.at_ms and f.at_ms + f.ramp_ms <= T0 + 14 * DAY for f in a)


def test_step_rows_is_step_and_the_run_is_pinned() -> None:
    """The gateway's ``step_rows`` is ``step`` without reading objects, and the run itself
    is pinned to the digest the simulator gave before it was optimized: the off-chain
    models are trained on it and regenerated byte for byte."""
    import hashlib

    faults = [
        Fault("cnc_mill-01", "bearing_wear", T0 + HOUR, 5 * HOUR),
        Fault("pump-02", "overheating", T0 + 2 * HOUR, 3 * HOUR),
        Fault("compressor-03", "misalignment", T0, 4 * HOUR),
    ]
    sims = [FactorySimulator(9, 6, start_ms=T0, tick_ms=MINUTE, faults=faults) for _ in "ab"]
    for sim in sims:
        sim.repair("pump-02", T0 + 6 * HOUR, duration_ms=30 * MINUTE)
        sim.repair("compressor-03", T0 + 2 * HOUR)
    h = hashlib.blake2b(digest_size=16)
    for _ in range(600):
        readings = sims[0].step()
        rows = sims[1].step_rows()
        assert readings == [SimReading(n, m, t, v) for n, rs in rows for m, t, v in rs]
        for r in readings:
            h.update(f"{r.machine},{r.metric},{r.ts_ms},{r.value};".encode())
    assert h.hexdigest() == "6fb487e4d2c5621b48c4989358eef1fc"
    assert sims[1].truth("cnc_mill-01")["failed"] and sims[0].truth(2) == sims[1].truth(2)
