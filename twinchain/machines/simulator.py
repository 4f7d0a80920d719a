"""A seeded factory simulator: machines that run jobs, wear out, develop faults and fail.

Each machine belongs to one equipment class (``cnc_mill``, ``pump``, ``compressor``) and
emits, every tick, one reading per metric in the telemetry protocol's ids and fixed-point
scales (``DEFAULT_METRICS``): temperature (milli-degC), vibration RMS (micro-metres/s, i.e.
mm/s at scale 3), pressure (Pa: kPa at scale 3; pumps and compressors), power (W), spindle
speed (rpm), current (mA), and the Delta counters energy (Wh), units produced / good / bad,
run time and downtime (s) as their increments over the tick.

The physics is deliberately simple but shaped like real machines:

* load varies from job to job; temperature follows load through a first-order thermal lag;
  CNC mills stop between some jobs for set-up (counted as downtime);
* wear grows with running time and raises vibration, temperature, power draw and scrap;
* an injected fault ramps its severity from 0 at ``at_ms`` to 1 at ``at_ms + ramp_ms``
  (effects grow with severity squared: slow at first, accelerating towards the end) and the
  machine fails when it reaches 1: it stops, produces nothing, and downtime accumulates
  until :meth:`FactorySimulator.repair`;
* a repair clears the fault, replaces worn parts (wear drops to a fifth) and restarts the
  machine, after an optional repair duration that counts as downtime.

Everything random comes from one ``random.Random`` per machine, seeded from the simulator
seed and the machine's index and name, so a run with the same seed, machines, faults and
calls repeats exactly; values come out as integers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twinchain.machines.classes import (
    AMBIENT_C,
    DEFAULT_WEAR_PER_DAY,
    EQUIPMENT_CLASSES,
    FAULT_EFFECTS,
    FAULT_KINDS,
    GRID_CO2_G_PER_WH,
    IDLE_POWER,
    PROFILES,
    THERMAL_TAU_S,
    W_PER_A,
    WEAR_POWER,
    WEAR_SCRAP,
    WEAR_TEMPERATURE_C,
    WEAR_VIBRATION,
    ClassProfile,
    SimulatorError,
)
from twinchain.protocol.telemetry import (
    CO2_EMITTED,
    DELTAS,
    DOWNTIME,
    ENERGY,
    GAUGES,
    RUN_TIME,
    UNITS_PRODUCED,
)


@dataclass
class MachineConfig:
    """One simulated machine. ``metrics`` restricts the emitted metrics (default: the
    class's set); ``wear_per_day`` is wear added per day of running."""

    name: str
    equipment_class: str
    model: str = ""
    serial: str = ""
    initial_wear: float = 0.0
    wear_per_day: float = DEFAULT_WEAR_PER_DAY
    metrics: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.equipment_class not in PROFILES:
            raise SimulatorError(f"unknown equipment class {self.equipment_class!r}")
        if not self.name:
            raise SimulatorError("machine name must not be empty")
        if not 0.0 <= self.initial_wear < 1.0 or self.wear_per_day < 0:
            raise SimulatorError("initial_wear must be in [0, 1) and wear_per_day >= 0")
        if not self.model:
            self.model = f"SIM-{self.equipment_class.upper()}"
        if not self.serial:
            self.serial = self.name
        if self.metrics is not None:
            bad = [m for m in self.metrics if m not in GAUGES + DELTAS]
            if bad:
                raise SimulatorError(f"unknown metrics {bad}")


@dataclass(frozen=True)
class SimReading:
    """One reading: ``value`` is fixed-point in the metric's telemetry scale."""

    machine: str
    metric: int
    ts_ms: int
    value: int


@dataclass(frozen=True)
class Fault:
    """A fault to inject: severity ramps from ``at_ms`` to failure at ``at_ms + ramp_ms``."""

    machine: str
    kind: str
    at_ms: int
    ramp_ms: int


@dataclass
class _Machine:
    cfg: MachineConfig
    profile: ClassProfile
    rng: random.Random
    metrics: tuple[int, ...]
    # Unit-to-unit variation, fixed for the machine's life.
    vib_factor: float
    temp_offset: float
    power_factor: float
    wear: float
    temperature: float
    load: float = 0.0
    speed: float = 0.0
    job_end_ms: int = 0
    setup_end_ms: int = 0
    fault: Fault | None = None
    failed_at_ms: int | None = None
    repair_end_ms: int | None = None
    pending: list[tuple[int, int, str, Any]] = field(default_factory=list)
    # Fractional Delta remainders carried between ticks, so the totals are exact.
    acc: dict[int, float] = field(default_factory=dict)
    units_total: int = 0


def default_machines(n: int, seed: int = 0) -> list[MachineConfig]:
    """``n`` machines cycling through the classes: cnc_mill-01, pump-02, compressor-03, ..."""
    if n <= 0:
        raise SimulatorError("the number of machines must be positive")
    out = []
    for i in range(n):
        cls = EQUIPMENT_CLASSES[i % len(EQUIPMENT_CLASSES)]
        out.append(MachineConfig(f"{cls}-{i + 1:02d}", cls, serial=f"SIM{seed}-{i + 1:04d}"))
    return out


class FactorySimulator:
    """``machines``: a count (see :func:`default_machines`) or configs; ``faults``: faults
    to inject (:class:`Fault` or ``(machine, kind, at_ms, ramp_ms)`` tuples)."""

    def __init__(
        self,
        seed: int,
        machines: int | Sequence[MachineConfig],
        *,
        start_ms: int,
        tick_ms: int = 1000,
        faults: Iterable[Fault | tuple[str, str, int, int]] = (),
    ) -> None:
        if tick_ms <= 0:
            raise SimulatorError("tick_ms must be positive")
        if start_ms < 0:
            raise SimulatorError("start_ms must not be negative")
        self.seed = seed
        self.tick_ms = tick_ms
        self.now_ms = start_ms
        cfgs = default_machines(machines, seed) if isinstance(machines, int) else list(machines)
        names = [c.name for c in cfgs]
        if not cfgs or len(set(names)) != len(names):
            raise SimulatorError("machine names must be unique and non-empty")
        self.machines: list[MachineConfig] = cfgs
        self._by_name: dict[str, _Machine] = {}
        self._seq = 0
        for i, cfg in enumerate(cfgs):
            rng = random.Random(f"twinchain-sim/{seed}/{i}/{cfg.name}")
            p = PROFILES[cfg.equipment_class]
            m = _Machine(
                cfg=cfg,
                profile=p,
                rng=rng,
                metrics=tuple(sorted(cfg.metrics if cfg.metrics is not None else p.metrics)),
                vib_factor=rng.uniform(0.85, 1.15),
                temp_offset=rng.uniform(-2.0, 2.0),
                power_factor=rng.uniform(0.97, 1.03),
                wear=cfg.initial_wear,
                temperature=AMBIENT_C,
            )
            self._new_job(m, start_ms)
            # Start near thermal steady state instead of at ambient.
            m.temperature = self._target_temperature(m, running=True)
            m.setup_end_ms = 0
            self._by_name[cfg.name] = m
        for f in faults:
            f = f if isinstance(f, Fault) else Fault(*f)
            self.inject(f.machine, f.kind, f.at_ms, f.ramp_ms)

    # ------------------------------------------------------------------ control
    def _machine(self, machine: str | int) -> _Machine:
        if isinstance(machine, int):
            if not 0 <= machine < len(self.machines):
                raise SimulatorError(f"no machine #{machine}")
            machine = self.machines[machine].name
        m = self._by_name.get(machine)
        if m is None:
            raise SimulatorError(f"unknown machine {machine!r}")
        return m

    def _schedule(self, m: _Machine, at_ms: int, kind: str, arg: Any) -> None:
        self._seq += 1
        m.pending.append((at_ms, self._seq, kind, arg))
        m.pending.sort(key=lambda e: (e[0], e[1]))

    def inject(self, machine: str | int, kind: str, at_ms: int, ramp_ms: int) -> None:
        """Start fault ``kind`` on ``machine`` at ``at_ms``; it fails at ``at_ms + ramp_ms``.
        A fault injected in the past is already that far along."""
        m = self._machine(machine)
        if kind not in FAULT_EFFECTS:
            raise SimulatorError(f"unknown fault kind {kind!r} (one of {FAULT_KINDS})")
        if ramp_ms <= 0 or at_ms < 0:
            raise SimulatorError("ramp_ms must be positive and at_ms non-negative")
        self._schedule(m, at_ms, "fault", Fault(m.cfg.name, kind, at_ms, ramp_ms))

    def repair(self, machine: str | int, at_ms: int, *, duration_ms: int = 0) -> None:
        """Repair ``machine`` at ``at_ms``: down for ``duration_ms`` (downtime), then the
        fault is gone, worn parts are replaced (wear / 5) and it runs again."""
        m = self._machine(machine)
        if at_ms < 0 or duration_ms < 0:
            raise SimulatorError("at_ms and duration_ms must not be negative")
        self._schedule(m, at_ms, "repair", duration_ms)

    def truth(self, machine: str | int) -> dict[str, Any]:
        """Ground truth now: wear, the active fault (kind, start, failure time), its
        severity, whether the machine has failed and when, whether it is under repair."""
        m = self._machine(machine)
        f = m.fault
        return {
            "machine": m.cfg.name,
            "equipment_class": m.cfg.equipment_class,
            "ts_ms": self.now_ms,
            "wear": m.wear,
            "fault": None if f is None else f.kind,
            "fault_at_ms": None if f is None else f.at_ms,
            "fails_at_ms": None if f is None else f.at_ms + f.ramp_ms,
            "severity": self._severity(m, self.now_ms),
            "failed": m.failed_at_ms is not None,
            "failed_at_ms": m.failed_at_ms,
            "in_repair": m.repair_end_ms is not None,
        }

    # ------------------------------------------------------------------ dynamics
    @staticmethod
    def _severity(m: _Machine, now: int) -> float:
        f = m.fault
        if f is None or now < f.at_ms:
            return 0.0
        return min(1.0, (now - f.at_ms) / f.ramp_ms)

    def _new_job(self, m: _Machine, now: int) -> None:
        p, rng = m.profile, m.rng
        m.load = rng.uniform(*p.load_range)
        m.speed = p.speed_rpm * (rng.uniform(0.6, 1.0) if p.variable_speed else 1.0)
        m.job_end_ms = now + max(60_000, int(rng.expovariate(1.0 / p.job_minutes) * 60_000))
        if rng.random() < p.setup_chance:
            m.setup_end_ms = now + int(rng.uniform(2.0, 8.0) * 60_000)

    def _target_temperature(self, m: _Machine, *, running: bool) -> float:
        p = m.profile
        if not running:
            return AMBIENT_C
        rise = (p.temperature_c - AMBIENT_C) * (0.45 + 0.55 * m.load)
        t = AMBIENT_C + m.temp_offset + rise + WEAR_TEMPERATURE_C * m.wear
        f = m.fault
        if f is not None:
            t += FAULT_EFFECTS[f.kind].temperature_c * self._severity(m, self.now_ms) ** 2
        return t

    def _apply_events(self, m: _Machine, now: int) -> None:
        while m.pending and m.pending[0][0] <= now:
            at, _, kind, arg = m.pending.pop(0)
            if kind == "fault":
                if m.failed_at_ms is None:  # a failed machine waits for its repair
                    m.fault = arg
            else:  # repair
                m.fault = None
                m.failed_at_ms = None
                m.wear *= 0.2
                m.repair_end_ms = at + int(arg)
                if m.repair_end_ms <= now:
                    m.repair_end_ms = None
                    self._new_job(m, now)

    def step(self) -> list[SimReading]:
        """Readings of every machine at the current tick, then advance one tick."""
        return [
            SimReading(name, metric, ts, value)
            for name, rows in self.step_rows()
            for metric, ts, value in rows
        ]

    def step_rows(self) -> list[tuple[str, list[tuple[int, int, int]]]]:
        """:meth:`step` as ``(machine, [(metric, ts_ms, value)])`` per machine (the same
        run: no reading object per reading, for the gateway's hot path)."""
        now, dt = self.now_ms, self.tick_ms / 1000.0
        # The same for every machine in a tick: computed once (the very same float ops).
        lag = 1.0 - math.exp(-dt / THERMAL_TAU_S)
        humidity = round((45.0 + 5.0 * math.sin(now / 86_400_000 * 2 * math.pi)) * 100)
        out = [
            (m.cfg.name, self._step_machine(m, now, dt, lag, humidity))
            for m in self._by_name.values()
        ]
        self.now_ms = now + self.tick_ms
        return out

    def _step_machine(
        self, m: _Machine, now: int, dt: float, lag: float, humidity: int
    ) -> list[tuple[int, int, int]]:
        p, rng = m.profile, m.rng
        gauss = rng.gauss
        if m.pending:
            self._apply_events(m, now)
        if m.repair_end_ms is not None and now >= m.repair_end_ms:
            m.repair_end_ms = None
            self._new_job(m, now)
        fault = m.fault
        sev = 0.0  # as _severity
        if fault is not None and now >= fault.at_ms:
            sev = min(1.0, (now - fault.at_ms) / fault.ramp_ms)
        if fault is not None and sev >= 1.0 and m.failed_at_ms is None:
            m.failed_at_ms = now
        if m.failed_at_ms is None and m.repair_end_ms is None and now >= m.job_end_ms:
            self._new_job(m, now)
        failed = m.failed_at_ms is not None or m.repair_end_ms is not None
        running = not failed and now >= m.setup_end_ms
        eff = FAULT_EFFECTS[fault.kind] if fault is not None else None
        e = sev * sev  # effects accelerate towards failure

        # Thermal lag towards the target (as _target_temperature, with this tick's severity).
        if running:
            rise = (p.temperature_c - AMBIENT_C) * (0.45 + 0.55 * m.load)
            target = AMBIENT_C + m.temp_offset + rise + WEAR_TEMPERATURE_C * m.wear
            if eff is not None:
                target += eff.temperature_c * sev**2
        else:
            target = AMBIENT_C
        m.temperature += (target - m.temperature) * lag
        temperature = m.temperature + gauss(0.0, 0.15)

        if running:
            vib = p.vibration_mm_s * m.vib_factor * (1.0 + WEAR_VIBRATION * m.wear)
            vib *= 0.8 + 0.2 * m.load
            if eff is not None:
                vib *= 1.0 + eff.vibration * e
                # A damaged bearing rattles: occasional impacts on top.
                if fault is not None and fault.kind == "bearing_wear" and rng.random() < e:
                    vib *= 1.0 + rng.uniform(0.0, 0.3) * e
            vib *= 1.0 + gauss(0.0, 0.04)
            jitter = eff.speed_jitter * e if eff is not None else 0.0
            speed = m.speed * (1.0 + gauss(0.0, 0.002 + jitter))
            power = p.power_w * m.power_factor * (0.15 + 0.85 * m.load)
            power *= 1.0 + WEAR_POWER * m.wear + (eff.power * e if eff is not None else 0.0)
            power *= 1.0 + gauss(0.0, 0.01)
            pressure = 0.0
            if p.pressure_kpa is not None:
                pressure = p.pressure_kpa * (0.9 + 0.1 * m.load)
                pressure *= 1.0 - (eff.pressure * e if eff is not None else 0.0)
                pressure *= 1.0 + gauss(0.0, 0.005)
        else:
            vib = abs(gauss(0.05, 0.01))
            speed = 0.0
            power = p.power_w * IDLE_POWER * (1.0 + gauss(0.0, 0.02))
            pressure = abs(gauss(0.0, 2.0)) if p.pressure_kpa is not None else 0.0
        power = max(0.0, power)

        # Deltas over the tick, with fractional remainders carried over.
        acc = m.acc
        energy_wh = power * dt / 3600.0
        units = p.units_per_hour * m.load * dt / 3600.0 if running else 0.0
        total = acc.get(UNITS_PRODUCED, 0.0) + units
        made = int(total)
        acc[UNITS_PRODUCED] = total - made
        scrap = p.scrap_rate + WEAR_SCRAP * m.wear + (eff.scrap * e if eff is not None else 0.0)
        bad = sum(1 for _ in range(made) if rng.random() < scrap) if made else 0
        if running:
            speedup = 1.0 if eff is None else 1.0 + eff.wear_speedup * sev
            m.wear = min(1.0, m.wear + m.cfg.wear_per_day * dt / 86_400.0 * speedup)
        carried = []
        for metric, amount in (
            (ENERGY, energy_wh),
            (RUN_TIME, dt if running else 0.0),
            (DOWNTIME, 0.0 if running else dt),
            (CO2_EMITTED, energy_wh * GRID_CO2_G_PER_WH),
        ):
            total = acc.get(metric, 0.0) + amount
            whole = int(total)
            acc[metric] = total - whole
            carried.append(whole)
        # Indexed by metric id (1..15; DEFAULT_METRICS' order).
        values = (
            0,
            round(temperature * 1000),
            round(max(0.0, vib) * 1000),
            round(pressure * 1000),
            round(power),
            carried[0],
            round(max(0.0, speed)),
            made,
            made - bad,
            bad,
            round(made * p.material_g_per_unit),
            carried[1],
            carried[2],
            carried[3],
            humidity,
            round(power / W_PER_A * 1000),
        )
        return [(metric, now, values[metric]) for metric in m.metrics]

    def run(self, ticks: int) -> list[SimReading]:
        """``ticks`` steps' readings, in order."""
        out: list[SimReading] = []
        for _ in range(ticks):
            out.extend(self.step())
        return out


def random_faults(
    seed: int,
    machines: Sequence[MachineConfig],
    *,
    start_ms: int,
    span_ms: int,
    fraction: float = 0.5,
    ramp_ms: tuple[int, int] = (36 * 3_600_000, 96 * 3_600_000),
) -> list[Fault]:
    """Faults on about ``fraction`` of the machines (at least one), each of a random kind
    with a ramp drawn from ``ramp_ms``, starting after the first tenth of the span and
    failing within it where the ramp fits."""
    rng = random.Random(f"twinchain-sim-faults/{seed}")
    chosen = [m for m in machines if rng.random() < fraction] or [rng.choice(list(machines))]
    out = []
    for m in chosen:
        ramp = rng.randint(*ramp_ms)
        earliest = start_ms + span_ms // 10
        at = rng.randint(earliest, max(earliest, start_ms + span_ms - ramp))
        out.append(Fault(m.name, rng.choice(FAULT_KINDS), at, ramp))
    return out


__all__ = [
    "FactorySimulator",
    "Fault",
    "MachineConfig",
    "SimReading",
    "default_machines",
    "random_faults",
]
