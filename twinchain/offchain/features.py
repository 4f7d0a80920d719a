"""Per-twin features from windowed telemetry aggregates.

The chain keeps, per twin, public metric and window, an aggregate (count, min, max, sum,
last); the worker computes the same aggregate from its own facility's raw readings of the
metrics the twin keeps private (read from the archive with proofs). Each closed window
becomes one feature vector, normalised by the twin's rated values (its on-chain spec) so that
one model serves a whole equipment class:

* gauge means are over the *running* part of the window: stopped readings (set-up, idle) are
  taken out using the window's run fraction and its minimum as the idle level;
* the production rate (units per running hour over the rated rate) measures load, which
  temperature and power depend on;
* trends are least-squares slopes over the twin's last few scored windows.

Windows where the machine ran less than :data:`MIN_RUN_FRACTION` of the time are not scored
(a stopped machine has no vibration signature to judge); they do not reset the history.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from twinchain.machines.simulator import SimReading
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    DOWNTIME,
    POWER,
    PRESSURE,
    RUN_TIME,
    SPINDLE_SPEED,
    TEMPERATURE,
    UNITS_PRODUCED,
    VIBRATION,
)

MIN_RUN_FRACTION = 0.5
TREND_WINDOWS = 6
BASELINE_WINDOWS = 12

FEATURES: tuple[str, ...] = (
    "load",  # units per running hour / rated units per hour
    "power",  # running mean power / rated
    "vibration",  # running mean vibration / rated
    "temperature",  # mean temperature / rated
    "pressure",  # running mean pressure / rated (0 without a pressure sensor)
    "scrap",  # bad units / units
    "vibration_trend",  # slope of "vibration" per window, over the last windows
    "temperature_trend",  # slope of "temperature" per window
)
N_FEATURES = len(FEATURES)
# The metrics the features read: a twin keeps most of them private (only their commitments
# are on chain), so the worker reads those from its facility's archive (see worker.py).
FEATURE_METRICS: tuple[int, ...] = (
    TEMPERATURE, VIBRATION, POWER, PRESSURE, SPINDLE_SPEED,
    UNITS_PRODUCED, BAD_UNITS, RUN_TIME, DOWNTIME,
)  # fmt: skip


class AggLike(Protocol):
    count: int
    min: int
    max: int
    sum: int


@dataclass
class Agg:
    """A window aggregate as the telemetry pallet keeps it (the fields the worker needs)."""

    count: int = 0
    min: int = 0
    max: int = 0
    sum: int = 0
    last: int = 0

    def add(self, value: int) -> None:
        if self.count == 0:
            self.min = self.max = value
        else:
            self.min = min(self.min, value)
            self.max = max(self.max, value)
        self.count += 1
        self.sum += value
        self.last = value

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Agg:
        """From one ``twin_telemetryAggregates`` entry (i128 sums may arrive as strings)."""
        return cls(
            int(obj["count"]),
            int(obj["min"]),
            int(obj["max"]),
            int(obj["sum"]),
            int(obj.get("last", 0)),
        )


Window = dict[int, AggLike]  # metric id -> aggregate


def windows_of(
    readings: Iterable[SimReading], window_ms: int
) -> dict[str, dict[int, dict[int, Agg]]]:
    """Readings -> machine -> window start -> metric -> aggregate, as the chain computes them."""
    out: dict[str, dict[int, dict[int, Agg]]] = {}
    for r in readings:
        w = out.setdefault(r.machine, {}).setdefault(r.ts_ms - r.ts_ms % window_ms, {})
        agg = w.get(r.metric)
        if agg is None:
            agg = w[r.metric] = Agg()
        agg.add(r.value)
    return out


@dataclass(frozen=True)
class Rated:
    """The rated values the features are normalised by (fixed-point, telemetry scales)."""

    temperature: int
    vibration: int
    power: int
    units_per_hour: int
    pressure: int | None

    @classmethod
    def from_pairs(cls, rated: Iterable[tuple[int, int] | list[int]]) -> Rated:
        r = {int(m): int(v) for m, v in rated}
        missing = [m for m in (TEMPERATURE, VIBRATION, POWER) if r.get(m, 0) <= 0]
        if missing:
            raise ValueError(f"rated values missing for metrics {missing}")
        return cls(
            r[TEMPERATURE], r[VIBRATION], r[POWER], r.get(UNITS_PRODUCED, 0), r.get(PRESSURE)
        )


def _mean(a: AggLike | None) -> float | None:
    return None if a is None or a.count == 0 else a.sum / a.count


def _running_mean(a: AggLike | None, run_fraction: float) -> float | None:
    """Mean over the running readings: the stopped share of readings sits at the window min."""
    if a is None or a.count == 0:
        return None
    stopped = round(a.count * (1.0 - run_fraction))
    running = a.count - stopped
    if running <= 0:
        return None
    return (a.sum - stopped * a.min) / running


def run_fraction(w: Mapping[int, AggLike]) -> float | None:
    """Share of the window the machine ran: run time over run time plus downtime; without
    those counters, the share of readings with a non-zero speed is not known, so None."""
    run, down = w.get(RUN_TIME), w.get(DOWNTIME)
    if run is None and down is None:
        speed = w.get(SPINDLE_SPEED)
        return None if speed is None else (1.0 if speed.min > 0 else None)
    r = run.sum if run is not None else 0
    d = down.sum if down is not None else 0
    return None if r + d <= 0 else r / (r + d)


def instant_features(
    w: Mapping[int, AggLike], rated: Rated, window_ms: int
) -> tuple[float, list[float]] | None:
    """(run fraction, the first six features) of one window, or None if not scorable."""
    f = run_fraction(w)
    if f is None or f < MIN_RUN_FRACTION:
        return None
    vib, temp = _running_mean(w.get(VIBRATION), f), _mean(w.get(TEMPERATURE))
    power = _running_mean(w.get(POWER), f)
    if vib is None or temp is None or power is None:
        return None
    run = w.get(RUN_TIME)
    run_h = (run.sum / 3600.0) if run is not None else f * window_ms / 3_600_000
    units = w.get(UNITS_PRODUCED)
    made = units.sum if units is not None else 0
    load = made / run_h / rated.units_per_hour if rated.units_per_hour and run_h > 0 else 0.0
    bad = w.get(BAD_UNITS)
    scrap = (bad.sum / made) if bad is not None and made > 0 else 0.0
    pressure = 0.0
    if rated.pressure:
        p = _running_mean(w.get(PRESSURE), f)
        pressure = 0.0 if p is None else p / rated.pressure
    return f, [
        load,
        power / rated.power,
        vib / rated.vibration,
        temp / rated.temperature,
        pressure,
        scrap,
    ]


def slope(values: list[float]) -> float:
    """Least-squares slope per step (0 for fewer than 3 points)."""
    n = len(values)
    if n < 3:
        return 0.0
    xm = (n - 1) / 2.0
    ym = sum(values) / n
    num = sum((i - xm) * (v - ym) for i, v in enumerate(values))
    den = sum((i - xm) ** 2 for i in range(n))
    return num / den


@dataclass
class TwinFeatures:
    """Rolling feature state of one twin: feed closed windows in order."""

    rated: Rated
    window_ms: int
    history: deque[list[float]] = field(default_factory=lambda: deque(maxlen=TREND_WINDOWS))
    last_start: int | None = None

    def update(self, start: int, w: Mapping[int, AggLike]) -> list[float] | None:
        """The full feature vector of the window starting at ``start``, or None when it is
        not scorable or not newer than the last one seen."""
        if self.last_start is not None and start <= self.last_start:
            return None
        self.last_start = start
        inst = instant_features(w, self.rated, self.window_ms)
        if inst is None:
            return None
        x = inst[1]
        self.history.append(x)
        vib_trend = slope([h[2] for h in self.history])
        temp_trend = slope([h[3] for h in self.history])
        return [*x, vib_trend, temp_trend]

    def reset(self) -> None:
        """Forget the history (after a repair the old trend no longer applies)."""
        self.history.clear()
