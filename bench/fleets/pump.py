"""Centrifugal pumps that live for days: NASA ProgPy's ``CentrifugalPumpBase``.

Physics: M. Daigle and K. Goebel, "Model-based Prognostics with Concurrent Damage
Progression Processes", IEEE Trans. SMC: Systems 43(4), 2013, as implemented by ProgPy
(``progpy.models.centrifugal_pump``): an induction motor driving a centrifugal pump, with the
shaft speed, flow, thrust/radial bearing and oil temperatures as states, and three damage
processes with per-unit wear rates (``wA``: impeller erosion, ``Adot = -wA Q²``;
``wThrust``/``wRadial``: bearing friction growth, ``rdot = w r ω²``).

Failure criterion: the model's own ``threshold_met`` (its ``lim`` parameters): impeller area
``A <= 9.5`` (``ImpellerWearFailure``), thrust or radial bearing ``T >= 370 K``, oil
``T >= 350 K``. The first event to fire is the failure time, checked at every sample.

The fleet: pumps in parallel on one header (shared suction/discharge pressures that vary
with the day's demand), each with its own supply voltage, room temperature (and daily swing),
sensor noise and wear rates. Run-to-failure units get one dominant damage process (a target
life of 20-80 % of the observation horizon; the model decides the actual one) plus a low
background of the others; healthy units only the background, so they are censored at the
horizon. Observation begins at commissioning after a 12 h warm-up without wear; one sample a
minute (``sample_s``), Euler steps of 2 s (the model is unstable above ~4 s).

Observables (engineering units): shaft speed (rpm), discharge flow (m³/h), thrust/radial
bearing and oil temperatures (°C), the header's discharge pressure (bar) and the ambient
temperature (°C). The impeller-wear failure mode is written on flow, with the limit the model
gives at ``A = 9.5`` under nominal load (impeller area itself is not measurable).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from progpy.models import CentrifugalPumpBase

from bench.fleets.common import (
    FailureModeSpec,
    Fleet,
    MetricSpec,
    UnitRun,
    plan_units,
    sense,
    unit_name,
)

DT = 2.0
DAY = 86400.0
HORIZON_S = 8 * DAY
SAMPLE_S = 60.0
WARMUP_S = 12 * 3600.0
V_NOM = 471.2389
WSYNC = 376.991118431  # 3600 rpm synchronous speed, the model's nominal
PDISCH = 928654.0
PSUC = 239179.0
K2C = 273.15
RPM = 60.0 / (2.0 * math.pi)

# Rough rates that give a life of 1 s (the model decides the real one): impeller area falls
# by ~3.2 at Q² ~ 0.0115; radial friction must grow ~x4 and thrust friction ~x2.1 at ω² ~ 1.37e5.
_RATE_1S = {"impeller": 3.2 / 0.0115, "radial": math.log(4.0) / 1.374e5}
_RATE_1S["thrust"] = math.log(2.1) / 1.374e5
_PARAM = {"impeller": "wA", "radial": "wRadial", "thrust": "wThrust"}
_END = ("A", "Tt", "Tr", "To")

METRICS = (
    MetricSpec("speed", "rpm", 0, 1.0, 3540.0, 0.0, 4000.0, 200.0, "shaft speed"),
    MetricSpec("flow", "m3/h", 1, 0.1, 397.0, 0.0, 600.0, 60.0, "discharge flow"),
    MetricSpec("thrust_bearing_temp", "degC", 1, 0.1, 60.0, -20.0, 150.0, 10.0),
    MetricSpec("radial_bearing_temp", "degC", 1, 0.1, 55.0, -20.0, 150.0, 10.0),
    MetricSpec("oil_temp", "degC", 1, 0.1, 45.0, -20.0, 130.0, 5.0),
    MetricSpec("discharge_pressure", "bar", 2, 0.01, 9.29, 0.0, 16.0, 2.0),
    MetricSpec("ambient_temp", "degC", 1, 0.1, 17.0, -30.0, 60.0, 5.0),
)


def _model() -> CentrifugalPumpBase:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CentrifugalPumpBase()


def _state(m: CentrifugalPumpBase, n: int) -> object:
    x0 = dict(m.parameters["x0"])
    x0["QLeak"] = 0.0
    x0["w"] = 0.98 * WSYNC  # at exactly synchronous speed the model's slip term divides by 0
    return m.StateContainer({k: np.full(n, float(v)) for k, v in x0.items()})


@functools.cache
def flow_limit_m3h() -> float:
    """Steady discharge flow at the impeller-wear threshold (``A = lim A``), nominal load."""
    m = _model()
    x = _state(m, 1)
    x["A"] = np.array([m.parameters["lim"]["A"]])
    u = {"Tamb": 290.0, "V": V_NOM, "pdisch": PDISCH, "psuc": PSUC, "wsync": WSYNC}
    for _ in range(600):
        x = m.next_state(x, u, DT)
    return round(float(np.atleast_1d(m.output(x)["Qout"])[0]) * 3600.0, 1)


def modes(horizon_s: int) -> tuple[FailureModeSpec, ...]:
    lim = _model().parameters["lim"]
    return (
        FailureModeSpec(
            "impeller_wear", "flow", "down", flow_limit_m3h(), horizon_s,
            "ImpellerWearFailure",
            "impeller erosion; flow at the model's impeller-area limit, nominal load",
        ),
        FailureModeSpec(
            "thrust_bearing_overheat", "thrust_bearing_temp", "up",
            round(lim["Tt"] - K2C, 2), horizon_s, "ThrustBearingOverheat",
            "thrust bearing friction growth until its temperature limit",
        ),
        FailureModeSpec(
            "radial_bearing_overheat", "radial_bearing_temp", "up",
            round(lim["Tr"] - K2C, 2), horizon_s, "RadialBearingOverheat",
            "radial bearing friction growth until its temperature limit",
        ),
        FailureModeSpec(
            "oil_overheat", "oil_temp", "up", round(lim["To"] - K2C, 2), horizon_s,
            "PumpOilOverheat", "bearing oil over its temperature limit",
        ),
    )  # fmt: skip


def generate(
    units: int,
    seed: int,
    healthy_fraction: float = 0.3,
    horizon_s: float = HORIZON_S,
    sample_s: float = SAMPLE_S,
) -> Fleet:
    """Simulate ``units`` pumps (vectorised: one ProgPy state of arrays for the whole fleet)."""
    rng = np.random.default_rng(seed)
    fails = plan_units(rng, units, healthy_fraction)
    n = units
    volt = V_NOM * rng.uniform(0.97, 1.03, n)
    t_off = rng.uniform(-4.0, 6.0, n)
    t_amp = rng.uniform(2.0, 5.0, n)
    t_phase = rng.uniform(0.0, 2.0 * math.pi, n)
    rates = {k: np.zeros(n) for k in _PARAM}
    dominant: list[str | None] = []
    for i in range(n):
        for k in _PARAM:  # background wear: would need >= ~6 horizons to fail
            rates[k][i] = _RATE_1S[k] / horizon_s * rng.uniform(0.0, 0.15)
        if fails[i]:
            k = str(rng.choice(list(_PARAM)))
            rates[k][i] = _RATE_1S[k] / (horizon_s * rng.uniform(0.2, 0.8))
            dominant.append(k)
        else:
            dominant.append(None)
    sig_flow = rng.uniform(0.3, 1.0, n)  # m³/h
    sig_temp = rng.uniform(0.1, 0.3, n)  # K
    sig_rpm = rng.uniform(1.0, 3.0, n)
    header_phase = rng.uniform(0.0, 2.0 * math.pi)
    header_walk = 0.0

    m = _model()
    x = _state(m, n)
    for k in _PARAM:
        m.parameters[_PARAM[k]] = np.zeros(n)

    def inputs(t: float) -> dict[str, object]:
        day = 2.0 * math.pi * t / DAY
        demand = 0.02 * math.sin(day + header_phase) + header_walk
        return {
            "Tamb": 290.0 + t_off + t_amp * np.sin(day + t_phase),
            "V": volt,
            "pdisch": PDISCH * (1.0 + demand),
            "psuc": PSUC * (1.0 + 0.3 * demand),
            "wsync": WSYNC,
        }

    per = round(sample_s / DT)
    warmup = min(WARMUP_S, horizon_s / 4)  # shorter only for tiny test fleets
    for step in range(int(warmup / DT)):  # commissioning warm-up, no wear yet
        x = m.next_state(x, inputs(-warmup + step * DT), DT)
    for k in _PARAM:
        m.parameters[_PARAM[k]] = rates[k].copy()
    n_samples = int(horizon_s / sample_s) + 1
    rec = {k: np.full((n_samples, n), np.nan) for k in ("w", "Qout", "Tt", "Tr", "To")}
    amb = np.zeros((n_samples, n))
    pd = np.zeros(n_samples)
    alive = np.ones(n, dtype=bool)
    fail_t = np.full(n, np.nan)
    event: list[str | None] = [None] * n
    end: list[dict[str, float]] = [{} for _ in range(n)]  # damage states at failure/censoring
    with np.errstate(all="ignore"):
        for s in range(n_samples):
            t = s * sample_s
            u = inputs(t)
            z = m.output(x)
            for k in rec:
                rec[k][s] = np.where(alive, np.asarray(z[k], dtype=float), np.nan)
            amb[s] = u["Tamb"]
            pd[s] = u["pdisch"]
            met = m.threshold_met(x)
            for e in m.events:
                hit = np.asarray(met[e], dtype=bool) & alive
                for i in np.flatnonzero(hit):
                    fail_t[i], event[i] = t, e
                    alive[i] = False
                    end[i] = {k: float(np.asarray(x[k])[i]) for k in _END}
            for k in _PARAM:  # a failed pump is taken down: stop its damage
                m.parameters[_PARAM[k]] = np.where(alive, rates[k], 0.0)
            if s == n_samples - 1 or not alive.any():
                break
            header_walk = 0.98 * header_walk + rng.normal(0.0, 0.002)
            for _ in range(per):
                x = m.next_state(x, u, DT)
    for i in np.flatnonzero(alive):
        end[i] = {k: float(np.asarray(x[k])[i]) for k in _END}
    runs: list[UnitRun] = []
    noise = np.random.default_rng([seed, 1])
    for i in range(n):
        # a failed unit's record ends with the last sample before its failure
        last = n_samples - 1 if alive[i] else round(fail_t[i] / sample_s) - 1
        k = np.arange(last + 1)
        t = k * sample_s
        vals = {
            "speed": sense(noise, rec["w"][k, i] * RPM, sig_rpm[i], 1.0),
            "flow": sense(noise, rec["Qout"][k, i] * 3600.0, sig_flow[i], 0.1),
            "thrust_bearing_temp": sense(noise, rec["Tt"][k, i] - K2C, sig_temp[i], 0.1),
            "radial_bearing_temp": sense(noise, rec["Tr"][k, i] - K2C, sig_temp[i], 0.1),
            "oil_temp": sense(noise, rec["To"][k, i] - K2C, sig_temp[i], 0.1),
            "discharge_pressure": sense(noise, pd[k] / 1e5, 0.02, 0.01),
            "ambient_temp": sense(noise, amb[k, i] - K2C, 0.2, 0.1),
        }
        failed = not alive[i]
        runs.append(
            UnitRun(
                unit=unit_name("pump", seed, i),
                t=t,
                values=vals,
                failure_time_s=float(fail_t[i]) if failed else None,
                event=event[i],
                truth={
                    "wA": rates["impeller"][i],
                    "wRadial": rates["radial"][i],
                    "wThrust": rates["thrust"][i],
                    "V": float(volt[i]),
                    **{f"end_{k}": v for k, v in end[i].items()},
                    "dominant": float(list(_PARAM).index(dominant[i])) if dominant[i] else -1.0,
                },
            )
        )
    return Fleet(
        kind="pump",
        class_name="progpy_centrifugal_pump",
        description="Centrifugal pump (NASA ProgPy CentrifugalPump physics, Daigle 2013)",
        window_s=1800,
        metrics=METRICS,
        modes=modes(int(min(172800, horizon_s / 4))),
        units=runs,
    )
