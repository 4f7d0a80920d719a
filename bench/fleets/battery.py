"""Li-ion cells aging over discharge cycles: NASA ProgPy's ``BatteryElectroChemEODEOL``.

Physics: M. Daigle and C. Kulkarni, "Electrochemistry-based Battery Modeling for Prognostics"
(PHM 2013) for the discharge, and "End-of-discharge and End-of-life Prediction in Lithium-ion
Batteries with Electrochemistry-based Aging Models" (AIAA SciTech 2016) for the aging, as
implemented by ProgPy (``progpy.models.battery_electrochem``): an 18650 cell with lumped
electrode concentrations, surface overpotentials, ohmic drop and temperature; aging lowers
the mobile charge ``qMobile`` (``wq``), raises the ohmic resistance ``Ro`` (``wr``) and the
diffusion time constant (``wd``), each in proportion to the current drawn.

Failure criterion: the model's own ``InsufficientCapacity`` threshold, ``qMobile <
qMaxThreshold`` (5320 C, 70 % of the new cell's 7600 C, the manufacturers' usual end of life),
checked after every discharge. ``EOD`` (voltage under ``VEOD`` = 3.0 V) only ends a
discharge: the cell is then recharged and rested, and the next cycle starts from full.

The fleet: cells of one type (±3 % capacity and ±5 % resistance from manufacturing) in
machines that discharge them at their own current (1.5-3 A, ±8 % cycle to cycle), one
cycle every 6-12 h. One cycle in ``every`` is simulated (the whole fleet as one vectorised
state, Euler steps of 5 s) and recorded every 20 s of its discharge: terminal voltage, cell
temperature, current, and on its last row the discharged capacity (Ah, the battery
monitor's coulomb count). The cycles in between age each cell by the simulated cycle's
increments (aging is slow against one cycle: a multi-rate integration), with
``threshold_met`` checked after every cycle. Run-to-failure cells get a capacity fade rate
for a target life of 20-80 % of the horizon (the model decides the actual one); healthy
cells a low one. The capacity failure mode's limit is the capacity the model delivers at
the threshold at nominal current (``qMobile`` itself is not measurable).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from progpy.models import BatteryElectroChemEODEOL

from bench.fleets.common import (
    FailureModeSpec,
    Fleet,
    MetricSpec,
    UnitRun,
    plan_units,
    sense,
    unit_name,
)

DT = 5.0
HOUR = 3600.0
CYCLES = 360  # observation horizon, in cycles
SAMPLE_S = 20.0
RECORDS = 60  # recorded cycles over the horizon, per unit
I_NOM = 2.0
# charge that leaves a cell per cycle at nominal current (C), to turn a target life in
# cycles into a fade rate; the model decides the real life
_THROUGHPUT_C = 5200.0
_FADE_C = 7600.0 - 5320.0

METRICS = (
    MetricSpec("voltage", "V", 3, 0.001, 3.7, 0.0, 4.5, 0.5, "terminal voltage"),
    MetricSpec("temperature", "degC", 1, 0.1, 25.0, -20.0, 80.0, 5.0, "cell temperature"),
    MetricSpec("current", "A", 2, 0.01, I_NOM, 0.0, 10.0, None, "discharge current"),
    MetricSpec("capacity", "Ah", 3, 0.001, 1.5, 0.0, 3.0, None, "discharged per cycle"),
)


def _model() -> BatteryElectroChemEODEOL:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BatteryElectroChemEODEOL()


def _full(m: BatteryElectroChemEODEOL, q_mobile: np.ndarray, aged: dict[str, np.ndarray]):
    """A fully charged, rested cell state with the given aging states (vectorised)."""
    p = m.parameters
    n = len(q_mobile)
    q_max = q_mobile / (p["xnMax"] - p["xnMin"])
    x = {
        "tb": np.full(n, float(p["x0"]["tb"])),
        "Vo": np.zeros(n),
        "Vsn": np.zeros(n),
        "Vsp": np.zeros(n),
        "qnB": q_max * p["xnMax"] * (1.0 - p["VolSFraction"]),
        "qnS": q_max * p["xnMax"] * p["VolSFraction"],
        "qpB": q_max * p["xpMin"] * (1.0 - p["VolSFraction"]),
        "qpS": q_max * p["xpMin"] * p["VolSFraction"],
        "qMobile": q_mobile.astype(float),
        "tDiffusion": aged["tDiffusion"].astype(float),
        "Ro": aged["Ro"].astype(float),
    }
    return m.StateContainer(x)


def _discharge(
    m: BatteryElectroChemEODEOL,
    x,
    current: np.ndarray,
    record: np.ndarray,
    per: int,
):
    """Discharge every cell at its current until its EOD; returns the final state, the
    recorded samples (time, voltage, temperature, per unit) and the Ah delivered."""
    n = len(current)
    on = current > 0  # a retired cell is not discharged
    ah = np.zeros(n)
    samples: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
    k = 0
    while on.any():
        z = m.output(x)
        v = np.asarray(z["v"], dtype=float).ravel()
        on &= v >= m.parameters["VEOD"]
        if k % per == 0 and (on & record).any():
            t_c = np.asarray(z["t"], dtype=float).ravel()
            samples.append((k * DT, v.copy(), t_c.copy(), on & record))
        if not on.any():
            break
        i = np.where(on, current, 0.0)  # at EOD a cell waits for the others, unloaded
        ah += i * DT / HOUR
        x = m.next_state(x, {"i": i}, DT)
        k += 1
    return x, samples, ah


@functools.cache
def capacity_limit_ah() -> float:
    """Capacity delivered at nominal current by a cell at the model's end-of-life threshold."""
    m = _model()
    m.parameters["wq"] = m.parameters["wr"] = m.parameters["wd"] = 0.0
    q = np.array([float(m.parameters["qMaxThreshold"])])
    aged = {"Ro": np.array([m.parameters["x0"]["Ro"]]), "tDiffusion": np.array([7e6])}
    _, _, ah = _discharge(m, _full(m, q, aged), np.array([I_NOM]), np.zeros(1, bool), 10)
    return round(float(ah[0]), 3)


def modes(horizon_s: int) -> tuple[FailureModeSpec, ...]:
    return (
        FailureModeSpec(
            "capacity_fade", "capacity", "down", capacity_limit_ah(), horizon_s,
            "InsufficientCapacity",
            "capacity under 70 % of new (the model's qMaxThreshold), at nominal current",
        ),
    )  # fmt: skip


def generate(
    units: int,
    seed: int,
    healthy_fraction: float = 0.3,
    cycles: int = CYCLES,
    records: int = RECORDS,
) -> Fleet:
    """Simulate ``units`` cells over ``cycles`` discharge cycles (vectorised over the fleet)."""
    rng = np.random.default_rng(seed)
    fails = np.array(plan_units(rng, units, healthy_fraction))
    n = units
    m = _model()
    p = m.parameters
    q0 = 7600.0 * rng.uniform(0.97, 1.03, n)
    ro0 = float(p["x0"]["Ro"]) * rng.uniform(0.95, 1.05, n)
    i_unit = rng.uniform(1.5, 3.0, n)
    period = rng.uniform(6.0, 12.0, n) * HOUR
    life = rng.uniform(0.2, 0.8, n) * cycles
    wq = np.where(
        fails,
        -_FADE_C / (_THROUGHPUT_C * life),
        -_FADE_C / (_THROUGHPUT_C * cycles) * rng.uniform(0.0, 0.25, n),
    ) * (I_NOM / i_unit)  # the model's fade is per coulomb: same target life at any current
    wr = float(p["wr"]) * rng.uniform(0.0, 0.5, n) * (-wq / 1e-2)
    wd = float(p["wd"]) * rng.uniform(0.0, 0.5, n) * (-wq / 1e-2)
    p["wq"], p["wr"], p["wd"] = wq, wr, wd
    sig_v = rng.uniform(0.002, 0.006, n)
    sig_t = rng.uniform(0.1, 0.3, n)
    every = max(1, cycles // records)
    per = round(SAMPLE_S / DT)
    noise = np.random.default_rng([seed, 1])

    q = q0.copy()
    aged = {"Ro": ro0, "tDiffusion": np.full(n, 7e6)}
    alive = np.ones(n, dtype=bool)
    fail_t = np.full(n, np.nan)
    rows: list[list[tuple[float, float, float, float, float]]] = [[] for _ in range(n)]
    with np.errstate(all="ignore"):
        for c in range(0, cycles, every):
            current = np.where(alive, i_unit * rng.uniform(0.92, 1.08, n), 0.0)
            p["wq"] = np.where(alive, wq, 0.0)  # a retired cell ages no more
            before = (q, aged)
            x, samples, ah = _discharge(m, _full(m, q, aged), current, alive.copy(), per)
            for t, v, temp, mask in samples:
                for i in np.flatnonzero(mask):
                    rows[i].append((c * period[i] + t, v[i], temp[i], current[i], math.nan))
            for i in np.flatnonzero(alive):  # the monitor's coulomb count, last row
                t, v, temp, cur, _ = rows[i][-1]
                rows[i][-1] = (t, v, temp, cur, ah[i])
            q = np.asarray(x["qMobile"], dtype=float).ravel()
            aged = {k: np.asarray(x[k], dtype=float).ravel() for k in ("Ro", "tDiffusion")}
            # the unrecorded cycles until the next recorded one age the cells as this one
            # did (a multi-rate step: aging is slow against a cycle)
            dq = q - before[0]
            dag = {k: aged[k] - before[1][k] for k in aged}
            for j in range(min(every, cycles - c)):
                if j:
                    q = np.where(alive, q + dq, q)
                    aged = {k: np.where(alive, aged[k] + dag[k], aged[k]) for k in aged}
                met = m.threshold_met(_full(m, q, aged))["InsufficientCapacity"]
                for i in np.flatnonzero(np.asarray(met, dtype=bool).ravel() & alive):
                    fail_t[i] = (c + j + 1) * period[i]  # it cannot deliver the next cycle
                    alive[i] = False
            if not alive.any():
                break
    runs: list[UnitRun] = []
    for i in range(n):
        arr = np.array(rows[i], dtype=float).reshape(-1, 5)
        failed = not alive[i]
        runs.append(
            UnitRun(
                unit=unit_name("cell", seed, i),
                t=arr[:, 0],
                values={
                    "voltage": sense(noise, arr[:, 1], sig_v[i], 0.001),
                    "temperature": sense(noise, arr[:, 2], sig_t[i], 0.1),
                    "current": sense(noise, arr[:, 3], 0.01, 0.01),
                    "capacity": sense(noise, arr[:, 4], 0.005, 0.001),
                },
                failure_time_s=float(fail_t[i]) if failed else None,
                event="InsufficientCapacity" if failed else None,
                truth={
                    "wq": float(wq[i]),
                    "wr": float(wr[i]),
                    "wd": float(wd[i]),
                    "current_a": float(i_unit[i]),
                    "period_s": float(period[i]),
                    "q_mobile_end": float(q[i]),
                },
            )
        )
    return Fleet(
        kind="battery",
        class_name="progpy_li_ion_cell",
        description="18650 Li-ion cell (NASA ProgPy BatteryElectroChem physics, Daigle 2013/2016)",
        window_s=3600,
        metrics=METRICS,
        modes=modes(int(min(7 * 86400, cycles * 9 * HOUR / 4))),
        units=runs,
    )
