"""The simulated equipment classes: how a healthy machine of each class behaves, what each
fault kind does to it, and the rated values and operating envelope a class's twins get on
chain (:func:`class_spec`); :mod:`twinchain.machines.simulator` runs machines of these classes.

What a class *is* comes from its class file (``twinchain/protocol/classes/<name>.toml``, read
with :func:`twinchain.protocol.classdef.load_class`): its metrics, their rated values and
envelopes. What only the simulator needs (jobs, loads, scrap, set-ups, the physics of wear
and faults) stays here. Readings use the telemetry protocol's metric ids and fixed-point scales
(:data:`twinchain.protocol.telemetry.DEFAULT_METRICS`), which the class files bind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twinchain.protocol.classdef import BUILTIN_CLASSES, EquipmentClass, load_class
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    CO2_EMITTED,
    DOWNTIME,
    ENERGY,
    GOOD_UNITS,
    HUMIDITY,
    MATERIAL_USED,
    POWER,
    PRESSURE,
    RUN_TIME,
    SPINDLE_SPEED,
    TEMPERATURE,
    UNITS_PRODUCED,
    VIBRATION,
)

EQUIPMENT_CLASSES = BUILTIN_CLASSES
FAULT_KINDS = ("bearing_wear", "overheating", "misalignment")

AMBIENT_C = 22.0
LINE_VOLTAGE = 400.0  # three-phase
POWER_FACTOR = 0.88
GRID_CO2_G_PER_WH = 0.4  # 400 g CO2 per kWh
THERMAL_TAU_S = 900.0  # machine body heats and cools with a ~15 min time constant
IDLE_POWER = 0.04  # of rated, when stopped (controls, cooling)


class SimulatorError(ValueError):
    """Bad simulator input: unknown class, machine or fault kind, or an invalid time."""


@dataclass(frozen=True)
class ClassProfile:
    """Nominal behaviour of one equipment class (engineering units)."""

    temperature_c: float  # at full load, healthy, steady state
    vibration_mm_s: float  # healthy, as new (ISO 10816 "good" zone for the class)
    speed_rpm: float
    power_w: float  # at full load
    pressure_kpa: float | None  # discharge pressure, None: not measured
    units_per_hour: float  # at full load
    scrap_rate: float  # fraction of bad units when healthy
    material_g_per_unit: float
    variable_speed: bool  # CNC spindles change speed with the job; pumps do not
    setup_chance: float  # chance of a set-up stop between two jobs
    job_minutes: float  # mean job length
    load_range: tuple[float, float]
    metrics: tuple[int, ...]  # emitted by default


@dataclass(frozen=True)
class _Behaviour:
    """What only the simulator knows about a class: its jobs, losses and set-ups."""

    scrap_rate: float  # fraction of bad units when healthy
    material_g_per_unit: float
    variable_speed: bool  # CNC spindles change speed with the job; pumps do not
    setup_chance: float  # chance of a set-up stop between two jobs
    job_minutes: float  # mean job length
    load_range: tuple[float, float]


BEHAVIOUR: dict[str, _Behaviour] = {
    "cnc_mill": _Behaviour(0.015, 850.0, True, 0.3, 45.0, (0.55, 1.0)),
    "pump": _Behaviour(0.002, 0.0, False, 0.02, 120.0, (0.7, 1.0)),  # units: m3 delivered
    "compressor": _Behaviour(0.005, 0.0, False, 0.05, 90.0, (0.6, 1.0)),  # units: fills
}

# Metrics of the class files that a simulated machine emits only when asked to (its
# MachineConfig.metrics): the hall's humidity and the CO2 its energy stands for.
ON_REQUEST = frozenset({CO2_EMITTED, HUMIDITY})

CLASSES: dict[str, EquipmentClass] = {name: load_class(name) for name in EQUIPMENT_CLASSES}


def _rated(cls: EquipmentClass, metric: int) -> float | None:
    m = next((m for m in cls.metrics if m.id == metric), None)
    return None if m is None or m.rated is None else float(m.rated)


def _profile(name: str) -> ClassProfile:
    cls, b = CLASSES[name], BEHAVIOUR[name]

    def rated(metric: int) -> float:
        v = _rated(cls, metric)
        if v is None:
            raise SimulatorError(f"class file {name!r} has no rated value for metric {metric}")
        return v

    return ClassProfile(
        temperature_c=rated(TEMPERATURE),
        vibration_mm_s=rated(VIBRATION),
        speed_rpm=rated(SPINDLE_SPEED),
        power_w=rated(POWER),
        pressure_kpa=_rated(cls, PRESSURE),
        units_per_hour=rated(UNITS_PRODUCED),
        scrap_rate=b.scrap_rate,
        material_g_per_unit=b.material_g_per_unit,
        variable_speed=b.variable_speed,
        setup_chance=b.setup_chance,
        job_minutes=b.job_minutes,
        load_range=b.load_range,
        metrics=tuple(
            sorted(m.id for m in cls.metrics if m.id is not None and m.id not in ON_REQUEST)
        ),
    )


PROFILES: dict[str, ClassProfile] = {name: _profile(name) for name in EQUIPMENT_CLASSES}


@dataclass(frozen=True)
class FaultEffect:
    """What a fault does at full severity (multipliers are added to 1)."""

    vibration: float
    temperature_c: float
    power: float
    scrap: float
    speed_jitter: float  # relative rpm wobble
    pressure: float  # relative drop
    wear_speedup: float


FAULT_EFFECTS: dict[str, FaultEffect] = {
    "bearing_wear": FaultEffect(4.0, 12.0, 0.05, 0.02, 0.004, 0.03, 3.0),
    "overheating": FaultEffect(0.3, 40.0, 0.12, 0.08, 0.0, 0.05, 1.0),
    "misalignment": FaultEffect(2.5, 6.0, 0.08, 0.05, 0.01, 0.08, 1.5),
}

# Wear (0 = new, 1 = worn out) at full: its effects, and how fast it grows while running.
WEAR_VIBRATION = 0.6
WEAR_TEMPERATURE_C = 4.0
WEAR_POWER = 0.05
WEAR_SCRAP = 0.02
DEFAULT_WEAR_PER_DAY = 0.003  # of running time: ~330 running days to worn out


def class_spec(equipment_class: str, tick_ms: int = 1000) -> dict[str, list[list[int]]]:
    """Rated values and operating envelope of a class, in telemetry fixed-point scales, as
    the equipment pallet's genesis takes them: ``{"rated": [[metric, value]], "envelope":
    [[metric, min, max, max_step]]}``, from the class file (rated values in its order,
    gauges' envelopes). The envelope holds a healthy machine of any wear below 1 at any load
    (and stops/starts); a fault near failure leaves it. Delta limits are per reading, so
    they depend on ``tick_ms``: the class files give them for one reading a second, and the
    simulator's rates give them for any tick."""
    p = profile(equipment_class)
    if tick_ms <= 0:
        raise SimulatorError("tick_ms must be positive")
    cls = CLASSES[equipment_class]
    tick_s = tick_ms / 1000.0
    rated: list[list[int]] = []
    envelope: list[list[int]] = []
    for m in cls.metrics:
        assert m.id is not None  # the built-in files bind every metric
        if m.rated is not None:
            rated.append([m.id, cls.to_fixed(m, m.rated)])
        if m.kind == "gauge" and m.min is not None and m.max is not None:
            step = 0 if m.max_step is None else cls.to_fixed(m, m.max_step)
            envelope.append([m.id, cls.to_fixed(m, m.min), cls.to_fixed(m, m.max), step])

    def per_tick(per_hour: float) -> int:
        return math.ceil(per_hour * tick_s / 3600.0 * 1.5) + 2

    # Delta metrics: what can accrue in one tick at the machine's rates, with headroom.
    units = per_tick(p.units_per_hour)
    energy_max = per_tick(p.power_w * 1.3)
    deltas = {
        ENERGY: energy_max,
        UNITS_PRODUCED: units,
        GOOD_UNITS: units,
        BAD_UNITS: units,
        RUN_TIME: math.ceil(tick_s) + 1,
        DOWNTIME: math.ceil(tick_s) + 1,
        MATERIAL_USED: units * math.ceil(p.material_g_per_unit),
        CO2_EMITTED: math.ceil(energy_max * GRID_CO2_G_PER_WH) + 2,
    }
    for m in cls.metrics:
        if m.kind == "delta" and m.id in deltas:
            envelope.append([m.id, 0, deltas[m.id], 0])
    envelope.sort()
    return {"rated": rated, "envelope": envelope}


def profile(equipment_class: str) -> ClassProfile:
    """The profile of ``equipment_class`` (SimulatorError if there is no such class)."""
    try:
        return PROFILES[equipment_class]
    except KeyError:
        raise SimulatorError(f"unknown equipment class {equipment_class!r}") from None


W_PER_A = math.sqrt(3.0) * LINE_VOLTAGE * POWER_FACTOR  # three-phase: watts per amp


def current_a(power_w: float) -> float:
    """Three-phase line current at ``power_w``."""
    return power_w / W_PER_A


__all__ = [
    "BEHAVIOUR",
    "CLASSES",
    "EQUIPMENT_CLASSES",
    "FAULT_EFFECTS",
    "FAULT_KINDS",
    "ON_REQUEST",
    "PROFILES",
    "ClassProfile",
    "FaultEffect",
    "SimulatorError",
    "class_spec",
    "current_a",
    "profile",
]
