"""The simulated equipment classes: how a healthy machine of each class behaves, what each
fault kind does to it, and the rated values and operating envelope a class's twins get on
chain (:func:`class_spec`). Plain data and formulas, so that a later step can load them from
data files; :mod:`twinchain.machines.simulator` runs machines of these classes.

Readings use the telemetry protocol's metric ids and fixed-point scales
(:data:`twinchain.protocol.telemetry.DEFAULT_METRICS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twinchain.protocol.telemetry import (
    BAD_UNITS,
    CO2_EMITTED,
    CURRENT,
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

EQUIPMENT_CLASSES = ("cnc_mill", "pump", "compressor")
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


# Pumps and compressors report pressure; both report the same set.
_FLUID_METRICS = (
    TEMPERATURE,
    VIBRATION,
    PRESSURE,
    POWER,
    ENERGY,
    SPINDLE_SPEED,
    UNITS_PRODUCED,
    GOOD_UNITS,
    BAD_UNITS,
    RUN_TIME,
    DOWNTIME,
    CURRENT,
)

PROFILES: dict[str, ClassProfile] = {
    "cnc_mill": ClassProfile(
        temperature_c=42.0,
        vibration_mm_s=1.6,
        speed_rpm=12_000.0,
        power_w=7_500.0,
        pressure_kpa=None,
        units_per_hour=24.0,
        scrap_rate=0.015,
        material_g_per_unit=850.0,
        variable_speed=True,
        setup_chance=0.3,
        job_minutes=45.0,
        load_range=(0.55, 1.0),
        metrics=(
            TEMPERATURE,
            VIBRATION,
            POWER,
            ENERGY,
            SPINDLE_SPEED,
            UNITS_PRODUCED,
            GOOD_UNITS,
            BAD_UNITS,
            MATERIAL_USED,
            RUN_TIME,
            DOWNTIME,
            CURRENT,
        ),
    ),
    "pump": ClassProfile(
        temperature_c=55.0,
        vibration_mm_s=2.2,
        speed_rpm=2_950.0,
        power_w=15_000.0,
        pressure_kpa=400.0,
        units_per_hour=60.0,  # cubic metres delivered
        scrap_rate=0.002,
        material_g_per_unit=0.0,
        variable_speed=False,
        setup_chance=0.02,
        job_minutes=120.0,
        load_range=(0.7, 1.0),
        metrics=_FLUID_METRICS,
    ),
    "compressor": ClassProfile(
        temperature_c=78.0,
        vibration_mm_s=2.8,
        speed_rpm=1_480.0,
        power_w=22_000.0,
        pressure_kpa=800.0,
        units_per_hour=90.0,  # receiver fills
        scrap_rate=0.005,
        material_g_per_unit=0.0,
        variable_speed=False,
        setup_chance=0.05,
        job_minutes=90.0,
        load_range=(0.6, 1.0),
        metrics=_FLUID_METRICS,
    ),
}


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
    [[metric, min, max, max_step]]}``. The envelope holds a healthy machine of any wear
    below 1 at any load (and stops/starts); a fault near failure leaves it. Delta limits
    are per reading, so they depend on ``tick_ms``."""
    p = profile(equipment_class)
    if tick_ms <= 0:
        raise SimulatorError("tick_ms must be positive")
    tick_s = tick_ms / 1000.0
    amps = current_a(p.power_w)
    rated: list[list[int]] = [
        [TEMPERATURE, round(p.temperature_c * 1000)],
        [VIBRATION, round(p.vibration_mm_s * 1000)],
        [POWER, round(p.power_w)],
        [SPINDLE_SPEED, round(p.speed_rpm)],
        [CURRENT, round(amps * 1000)],
        [UNITS_PRODUCED, round(p.units_per_hour)],  # ideal rate at full load, per hour
    ]
    if p.pressure_kpa is not None:
        rated.insert(2, [PRESSURE, round(p.pressure_kpa * 1000)])

    def per_tick(per_hour: float) -> int:
        return math.ceil(per_hour * tick_s / 3600.0 * 1.5) + 2

    energy_max = per_tick(p.power_w * 1.3)
    envelope: list[list[int]] = [
        [TEMPERATURE, -10_000, round((p.temperature_c + 25.0) * 1000), 5_000],
        [VIBRATION, 0, round(p.vibration_mm_s * 4000), round(p.vibration_mm_s * 2500)],
        [POWER, 0, round(p.power_w * 1.3), round(p.power_w * 1.3)],
        [ENERGY, 0, energy_max, 0],
        [SPINDLE_SPEED, 0, round(p.speed_rpm * 1.1), round(p.speed_rpm * 1.1)],
        [UNITS_PRODUCED, 0, per_tick(p.units_per_hour), 0],
        [GOOD_UNITS, 0, per_tick(p.units_per_hour), 0],
        [BAD_UNITS, 0, per_tick(p.units_per_hour), 0],
        [RUN_TIME, 0, math.ceil(tick_s) + 1, 0],
        [DOWNTIME, 0, math.ceil(tick_s) + 1, 0],
        [CURRENT, 0, round(amps * 1.3 * 1000), round(amps * 1.3 * 1000)],
    ]
    if p.pressure_kpa is not None:
        kpa = p.pressure_kpa
        envelope.append([PRESSURE, 0, round(kpa * 1.25 * 1000), round(kpa * 1.25 * 1000)])
    if p.material_g_per_unit:
        grams = per_tick(p.units_per_hour) * math.ceil(p.material_g_per_unit)
        envelope.append([MATERIAL_USED, 0, grams, 0])
    envelope.append([CO2_EMITTED, 0, math.ceil(energy_max * GRID_CO2_G_PER_WH) + 2, 0])
    envelope.append([HUMIDITY, 0, 10_000, 2_000])
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
    "EQUIPMENT_CLASSES",
    "FAULT_EFFECTS",
    "FAULT_KINDS",
    "PROFILES",
    "ClassProfile",
    "FaultEffect",
    "SimulatorError",
    "class_spec",
    "current_a",
    "profile",
]
