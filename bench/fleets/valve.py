"""Pneumatic valves with seconds-long strokes: NASA ProgPy's ``PneumaticValveBase``.

Physics: M. Daigle and K. Goebel, "A Model-based Prognostics Approach Applied to Pneumatic
Valves", International Journal of PHM 2(2), 2011, as implemented by ProgPy
(``progpy.models.pneumatic_valve``): a normally-closed, double-acting pneumatic valve (the
cryogenic propellant-loading valves of Kennedy Space Center), with piston position and
velocity, the gas masses above and below the piston, and five damage processes with per-unit
wear rates: leaks at the bottom and top pneumatic ports (``Aeb``/``Aet`` grow with time,
``wb``/``wt``), an internal piston-seal leak (``Ai``, grows with sliding friction work,
``wi``), spring weakening (``k``, ``wk``) and friction growth (``r``, ``wr``), both with
motion.

Failure criterion: the model's own ``threshold_met`` (``Aeb > AbMax``, ``Aet > AtMax``,
``Ai > AiMax``, ``k < kMin``, ``r > rMax``: events Bottom Leak, Top Leak, Internal Leak,
Spring Failure, Friction Failure), or, first, the valve no longer reaching its open
indicator within 10 s of the command (``Fails To Open``, the model's own ``iT`` output).
The second matters: a bottom-port or internal leak starves the actuator of opening pressure
well before its area limit (at ~1.5e-5 m² of the 4e-5 m² ``AbMax``), and a valve that
cannot open has failed whatever its leak area; the internal leak, which grows only with
piston motion, would otherwise stall short of ``AiMax`` forever. Failure times are exact to
one valve cycle (a stall between two recorded cycles is found by bisection).

The fleet: each valve cycles (open, hold half a period, close, hold) every ``period`` s
(per unit, 60-180 s) against its own line pressures (``pL``/``pR``, varying a little
stroke to stroke) and its own supply pressure. A positioner records one cycle in ``every``
at 10 Hz (position, chamber pressures, flow) and adds the stroke signature on the last row of
each stroke: opening and closing times (the model's travel indicators) and the settled
chamber pressures. Recorded cycles are simulated in full with Euler steps of 7.5 ms (ProgPy's
explicit friction term makes the piston chatter at its end stops unless ``r dt / m`` stays
near 1 or under); between them the unrecorded cycles apply the
recorded cycle's damage increments (wear is slow against one cycle: a multi-rate
integration), checking ``threshold_met`` after each cycle. Run-to-failure units get one
dominant damage process (a target life of 20-80 % of the horizon; the model decides the
actual one) among the port leaks, the internal leak and the spring; healthy units only a
low background.

Friction growth is left out (``wr = 0``): ProgPy's explicit friction term chatters at the
end stops unless the step is under ``m / r`` (~1e-5 s near ``rMax``), far too fine for a
fleet. The failure modes' limits in the class file are the signature values the model gives
under nominal line pressures at each threshold, or at the last state that still opens.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from progpy.models import PneumaticValveBase

from bench.fleets.common import (
    FailureModeSpec,
    Fleet,
    MetricSpec,
    UnitRun,
    plan_units,
    sense,
    unit_name,
)

DT = 0.0075
HZ = 10
DAY = 86400.0
HORIZON_S = 4 * DAY
RECORDS = 30  # recorded cycles over the horizon, per unit
HOLD_S = 4.0  # simulated hold after a stroke completes (pressures have settled by then)
MAX_STROKE_S = 10.0
BAR = 1e-5

RAW = (
    MetricSpec("position", "mm", 1, 0.1, 38.1, -1.0, 40.0, None, "valve travel"),
    MetricSpec("pressure_bottom", "bar", 2, 0.01, 32.2, 0.0, 60.0, None),
    MetricSpec("pressure_top", "bar", 2, 0.01, 32.2, 0.0, 60.0, None),
    MetricSpec("flow", "m3/s", 3, 0.001, 1.44, 0.0, 3.0, None, "line flow"),
)
SIGNATURE = (
    MetricSpec("open_time", "s", 2, 0.01, 1.9, 0.0, 60.0, None, "stroke time to open"),
    MetricSpec("close_time", "s", 2, 0.01, 0.45, 0.0, 60.0, None, "stroke time to close"),
    MetricSpec("open_pressure_bottom", "bar", 2, 0.01, 32.2, 0.0, 60.0, None),
    MetricSpec("closed_pressure_top", "bar", 2, 0.01, 32.2, 0.0, 60.0, None),
    MetricSpec("closed_pressure_bottom", "bar", 2, 0.01, 1.01, 0.0, 60.0, None),
)
METRICS = RAW + SIGNATURE
WEAR = ("wb", "wt", "wi", "wk", "wr")


def _model(p_supply: float | None = None) -> PneumaticValveBase:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = PneumaticValveBase()
        if p_supply is not None:
            m.parameters["pSupply"] = p_supply
    return m


@dataclass
class Stroke:
    """One simulated stroke: 10 Hz samples from the command on, and its signature."""

    t: list[float]
    z: list[tuple[float, float, float, float]]  # position mm, pB bar, pT bar, flow
    travel_s: float  # NaN: did not reach the end stop within MAX_STROKE_S
    settled_pb: float
    settled_pt: float


def stroke(m: PneumaticValveBase, x: object, u: dict[str, object]) -> tuple[object, Stroke]:
    """Command one stroke (``u``) and simulate until the far indicator + ``HOLD_S``."""
    opening = bool(u["uBot"])
    per = round(1.0 / (HZ * DT))
    t_list: list[float] = []
    z_list: list[tuple[float, float, float, float]] = []
    travel = math.nan
    k = 0
    while True:
        t = k * DT
        if k % per == 0:
            z = m.output(x)
            t_list.append(round(t, 3))
            z_list.append(
                (
                    float(z["x"]) * 1000.0,
                    float(z["pB"]) * 10.0,  # the model's pB/pT are MPa
                    float(z["pT"]) * 10.0,
                    float(z["Q"]),
                )
            )
        if math.isnan(travel):
            at = x["x"] >= m.parameters["Ls"] - m.parameters["indicatorTol"]
            if not opening:
                at = x["x"] <= m.parameters["indicatorTol"]
            if at and k > 0:
                travel = t
        done = not math.isnan(travel) and t >= max(HOLD_S, travel + HOLD_S / 2)
        if done or t >= MAX_STROKE_S:
            break
        x = m.next_state(x, u, DT)
        k += 1
    zf = m.output(x)
    return x, Stroke(t_list, z_list, travel, float(zf["pB"]) * 10.0, float(zf["pT"]) * 10.0)


def _u(p_l: float, p_r: float, opening: bool) -> dict[str, object]:
    return {"pL": p_l, "pR": p_r, "uTop": not opening, "uBot": opening}


# Rough rates for a life of one cycle (period ``P`` s for the time-driven port leaks); the
# model decides the real life. Spring: k falls ~2.2e-5 wk per cycle and must lose 18 %;
# internal leak: Ai grows ~118 wi per cycle up to 1.7e-6; port leaks: 3e-5 m² at wb per s.
_RATE_1CYCLE = {"wk": 9.0, "wi": 1.44e-8}
_LEAK_AREA = 3e-5
# friction (wr) only as background: see the module docstring
DOMINANT = ("wb", "wt", "wi", "wk")


FAILS_TO_OPEN = "Fails To Open"


def _copy(m: PneumaticValveBase, x: object) -> object:
    return m.StateContainer({k: float(x[k]) for k in m.states})


def _advance(x: object, inc: dict[str, float], k_ratio: float, n: int) -> None:
    """Apply ``n`` cycles of damage increments (leak areas add, the spring decays)."""
    for key in ("Aeb", "Aet", "Ai"):
        x[key] = float(x[key]) + n * inc[key]
    x["k"] = float(x["k"]) * k_ratio**n


def _first_stall(
    m: PneumaticValveBase,
    gap: tuple[int, object, dict[str, float], float],
    u: dict[str, object],
    stalled: int,
) -> int:
    """The first cycle after the last recorded one that no longer opens, up to the recorded
    cycle ``stalled`` that did not (bisection: damage only grows, so a stall persists)."""
    c0, x0, inc, k_ratio = gap  # x0: the state at the start of cycle c0

    def stalls(c: int) -> bool:
        x = _copy(m, x0)
        _advance(x, inc, k_ratio, c - c0)
        return math.isnan(stroke(m, x, u)[1].travel_s)

    lo, hi = c0 - 1, stalled  # lo opened (it was recorded), hi did not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if stalls(mid) else (mid, hi)
    return hi


def _check(m: PneumaticValveBase, x: object) -> str | None:
    met = m.threshold_met(x)
    for e in m.events:
        if bool(np.asarray(met[e]).ravel()[0]):
            return e
    return None


def _simulate_unit(
    rng: np.random.Generator,
    noise: np.random.Generator,
    fails: bool,
    horizon_s: float,
    records: int,
) -> tuple[list[tuple[float, ...]], float | None, str | None, dict[str, float]]:
    period = rng.uniform(60.0, 180.0)
    cycles = int(horizon_s // period)
    every = max(1, cycles // records)
    p_supply = 5.272420892278394995e6 * rng.uniform(0.97, 1.03)
    p_l = rng.uniform(3.0e5, 5.0e5)
    dp = rng.uniform(0.8e5, 1.6e5)  # above ~2.2e5 Pa the actuator cannot open fully
    # the bottom port's leak stalls the valve after a small growth that shrinks with the
    # line differential (~3.5e-6 m² at 0.8 bar, ~1.2e-6 m² at 1.6 bar)
    margin = 3.5e-6 - 2.9e-11 * (dp - 0.8e5)
    rates = {
        "wb": margin / (horizon_s * 10.0) * rng.uniform(0.0, 1.0),
        "wt": _LEAK_AREA / (horizon_s * 6.0) * rng.uniform(0.0, 1.0),
        "wi": _RATE_1CYCLE["wi"] / (cycles * 6.0) * rng.uniform(0.0, 1.0),
        "wk": _RATE_1CYCLE["wk"] / (cycles * 6.0) * rng.uniform(0.0, 1.0),
        "wr": 0.0,
    }
    dominant = ""
    if fails:
        dominant = str(rng.choice(DOMINANT))
        life = rng.uniform(0.2, 0.8) * cycles
        if dominant == "wb":
            rates["wb"] = margin / (life * period)
        elif dominant == "wt":
            rates["wt"] = _LEAK_AREA / (life * period)
        else:
            rates[dominant] = _RATE_1CYCLE[dominant] / life
    m = _model(p_supply)
    for k, v in rates.items():
        m.parameters[k] = v
    x = m.initialize(_u(p_l, p_l - dp, False))
    sig_p = rng.uniform(0.05, 0.15)  # bar
    sig_x = rng.uniform(0.1, 0.3)  # mm
    rows: list[tuple[float, ...]] = []
    nan = math.nan
    c = 0
    fail_t: float | None = None
    event: str | None = None
    gap: tuple[int, object, dict[str, float], float] | None = None  # the last skipped run
    while c < cycles and event is None:
        start = _copy(m, x)
        before = {k: float(x[k]) for k in ("Aeb", "Aet", "Ai", "k")}
        d = dp * rng.uniform(0.95, 1.05)
        t0 = c * period
        n_rows = len(rows)
        for opening, t_cmd in ((True, t0), (False, t0 + period / 2.0)):
            x, s = stroke(m, x, _u(p_l, p_l - d, opening))
            if opening and math.isnan(s.travel_s):
                # fails to open on command: the first such cycle since the last record
                del rows[n_rows:]
                first = c if gap is None else _first_stall(m, gap, _u(p_l, p_l - d, True), c)
                fail_t, event = first * period, FAILS_TO_OPEN
                x = start
                break
            for t, (pos, pb, pt, q) in zip(s.t, s.z, strict=True):
                rows.append((t_cmd + t, pos, pb, pt, q, nan, nan, nan, nan, nan))
            last = list(rows[-1])
            if opening:
                last[5], last[7] = s.travel_s, s.settled_pb
            else:
                last[6], last[8], last[9] = s.travel_s, s.settled_pt, s.settled_pb
            rows[-1] = tuple(last)
            sim = s.t[-1]
            # the port leaks grow with time, also while the valve rests between strokes
            x["Aeb"] = float(x["Aeb"]) + rates["wb"] * (period / 2.0 - sim)
            x["Aet"] = float(x["Aet"]) + rates["wt"] * (period / 2.0 - sim)
        if event is not None:
            break
        event = _check(m, x)
        if event is not None:
            fail_t = (c + 1) * period
            break
        # unrecorded cycles: this cycle's damage increments (multi-rate step)
        inc = {k: float(x[k]) - v for k, v in before.items()}
        k_ratio = float(x["k"]) / before["k"]
        gap = (c + 1, _copy(m, x), inc, k_ratio)
        for j in range(1, min(every, cycles - c)):
            _advance(x, inc, k_ratio, 1)
            event = _check(m, x)
            if event is not None:
                fail_t = (c + j + 1) * period
                break
        c += every
    arr = np.array(rows, dtype=float).reshape(-1, 10)
    if len(arr):
        arr[:, 1] = sense(noise, arr[:, 1], sig_x, 0.1)
        for col in (2, 3, 7, 8, 9):
            arr[:, col] = sense(noise, arr[:, col], sig_p, 0.01)
        arr[:, 4] = sense(noise, arr[:, 4], 0.005, 0.001)
        for col in (5, 6):  # stroke times: the indicators' 10 ms timestamps
            arr[:, col] = np.round(arr[:, col], 2)
    truth = {k: float(v) for k, v in rates.items() if k != "wr"}
    truth.update({f"end_{k}": float(x[k]) for k in ("Aeb", "Aet", "Ai", "k", "r")})
    truth.update(period_s=period, p_supply=p_supply, dp=dp, every=float(every))
    truth["dominant"] = float(DOMINANT.index(dominant)) if dominant else -1.0
    return [tuple(r) for r in arr], fail_t, event, truth


P_LINE = (4.0e5, 2.8e5)  # nominal line pressures (Pa): the fleet's middle differential


def _signature(key: str, value: float) -> tuple[Stroke, Stroke]:
    """Open and close strokes of a new valve with one damage state set, nominal pressures."""
    m = _model()
    x = m.initialize(_u(*P_LINE, False))
    x[key] = value
    x, so = stroke(m, x, _u(*P_LINE, True))
    x, sc = stroke(m, x, _u(*P_LINE, False))
    return so, sc


def _last_open(key: str, lo: float, hi: float, steps: int = 8) -> tuple[Stroke, Stroke]:
    """The signature at the largest ``key`` (a leak area) with which the valve still opens."""
    best = _signature(key, lo)
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        sig = _signature(key, mid)
        if math.isnan(sig[0].travel_s):
            hi = mid
        else:
            lo, best = mid, sig
    return best


def derive_limits() -> dict[str, float]:
    """The failure modes' limits, from the model under nominal line and supply pressures: the
    signature at its threshold (spring, top leak), or where the valve stops opening, which
    comes first for the bottom-port and internal leaks. Slow (~40 strokes): its result is
    :data:`LIMITS`, which ``tests``-sized fleets use as is."""
    p = _model().parameters
    return {
        "spring": round(_signature("k", p["kMin"])[0].travel_s, 2),
        "top": round(_signature("Aet", p["AtMax"])[1].settled_pt, 2),
        "bottom": round(_last_open("Aeb", p["x0"]["Aeb"], p["AbMax"])[0].settled_pb, 2),
        "internal": round(_last_open("Ai", 0.0, p["AiMax"])[1].settled_pb, 2),
    }


# derive_limits() with ProgPy 1.9's PneumaticValve defaults and P_LINE
LIMITS = {"spring": 1.13, "top": 8.17, "bottom": 26.47, "internal": 2.78}


def modes(horizon_s: int) -> tuple[FailureModeSpec, ...]:
    """Failure modes on the stroke signature (limits: :data:`LIMITS`)."""
    lim = LIMITS
    return (
        FailureModeSpec(
            "spring_failure", "open_time", "down", lim["spring"], horizon_s,
            "Spring Failure",
            "return spring weakened to the model's kMin: the valve opens faster",
        ),
        FailureModeSpec(
            "bottom_port_leak", "open_pressure_bottom", "down", lim["bottom"], horizon_s,
            "Bottom Leak",
            "leak at the bottom pneumatic port: too little opening pressure to open",
        ),
        FailureModeSpec(
            "top_port_leak", "closed_pressure_top", "down", lim["top"], horizon_s,
            "Top Leak",
            "leak at the top pneumatic port (AtMax): closing pressure falls",
        ),
        FailureModeSpec(
            "internal_leak", "closed_pressure_bottom", "up", lim["internal"], horizon_s,
            "Internal Leak",
            "piston seal leak: gas crosses into the vented chamber until it cannot open",
        ),
    )  # fmt: skip


def generate(
    units: int,
    seed: int,
    healthy_fraction: float = 0.3,
    horizon_s: float = HORIZON_S,
    records: int = RECORDS,
) -> Fleet:
    """Simulate ``units`` valves, one after the other (ProgPy's valve is not vectorised)."""
    rng = np.random.default_rng(seed)
    fails = plan_units(rng, units, healthy_fraction)
    runs: list[UnitRun] = []
    names = [m.name for m in METRICS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ProgPy's gas flow warns at zero pressure ratios
        for i in range(units):
            unit_rng = np.random.default_rng([seed, 2, i])
            noise = np.random.default_rng([seed, 3, i])
            rows, fail_t, event, truth = _simulate_unit(
                unit_rng, noise, fails[i], horizon_s, records
            )
            arr = np.array(rows, dtype=float).reshape(-1, 10)
            runs.append(
                UnitRun(
                    unit=unit_name("valve", seed, i),
                    t=arr[:, 0],
                    values={n: arr[:, 1 + j] for j, n in enumerate(names)},
                    failure_time_s=fail_t,
                    event=event,
                    truth=truth,
                )
            )
        fleet_modes = modes(int(min(86400, horizon_s / 4)))
    return Fleet(
        kind="valve",
        class_name="progpy_pneumatic_valve",
        description="Pneumatic valve (NASA ProgPy PneumaticValve physics, Daigle 2011)",
        window_s=10,
        metrics=METRICS,
        modes=fleet_modes,
        units=runs,
    )
