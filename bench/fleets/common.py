"""What every fleet generator shares: the unit plan, sensor models and the contract's files.

A generator (one module per machine kind) simulates a fleet with a NASA ProgPy physics model
and hands back a :class:`Fleet`: per unit, its sampled readings in engineering units, and the
failure time that the *model's own* ``threshold_met`` decided (``None``: the unit was still
healthy when observation ended, i.e. censored). :func:`write_fleet` writes the files of the
CSV contract in ``/tmp/s6/PLAN.md`` (and the README):

- ``<kind>.class.toml``: the equipment class (metrics, failure modes with the limits an
  engineer would take from the manufacturer / the physics model's thresholds);
- ``<stem>.csv``: wide CSV, ``unit,t_seconds,<metric>...``, empty cell = no reading;
- ``<stem>-failures.csv``: ``unit,failure_time_s`` (empty: did not fail);
- ``<stem>-truth.csv``: what the simulation knew (failure event, wear rates, loads), for
  reports only; no detector reads it.

Everything is a pure function of ``(kind, units, seed, healthy_fraction, horizon)``: the same
arguments give byte-identical files (fixed float formats, seeded generators, no clocks).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w


@dataclass(frozen=True)
class MetricSpec:
    """One observable column: name, unit, and how its sensor quantises and writes it."""

    name: str
    unit: str
    decimals: int  # CSV digits; also the class file's ``scale``
    precision: float  # sensor resolution (engineering units); readings are rounded to it
    rated: float | None = None
    lo: float | None = None  # envelope
    hi: float | None = None
    max_step: float | None = None
    description: str = ""

    def class_entry(self) -> dict[str, object]:
        d: dict[str, object] = {
            "name": self.name,
            "unit": self.unit,
            "scale": self.decimals,
            "kind": "gauge",
            "precision": self.precision,
        }
        if self.rated is not None:
            d["rated"] = self.rated
        if self.lo is not None and self.hi is not None:
            d["min"], d["max"] = self.lo, self.hi
        if self.max_step is not None:
            d["max_step"] = self.max_step
        d["public"] = True
        return d


@dataclass(frozen=True)
class FailureModeSpec:
    """A failure mode as an engineer writes it: the observable, its direction and limit, and
    the ProgPy event it stands for (the event decides the true failure time)."""

    name: str
    metric: str
    direction: str  # "up" | "down"
    limit: float
    horizon_s: int
    event: str
    description: str

    def class_entry(self) -> dict[str, object]:
        return {
            "name": self.name,
            "metric": self.metric,
            "direction": self.direction,
            "limit": self.limit,
            "horizon_s": self.horizon_s,
            "description": self.description,
        }


@dataclass
class UnitRun:
    """One simulated unit: sample times (s), readings per metric (NaN = no reading), truth."""

    unit: str
    t: np.ndarray
    values: dict[str, np.ndarray]
    failure_time_s: float | None
    event: str | None  # the ProgPy event that fired first (None: censored)
    truth: dict[str, float] = field(default_factory=dict)


@dataclass
class Fleet:
    """A generated fleet of one kind."""

    kind: str
    class_name: str
    description: str
    window_s: int
    metrics: Sequence[MetricSpec]
    modes: Sequence[FailureModeSpec]
    units: list[UnitRun]

    def class_toml(self) -> str:
        doc = {
            "class": {
                "name": self.class_name,
                "description": self.description,
                "window_s": self.window_s,
            },
            "metrics": [m.class_entry() for m in self.metrics],
            "failure_modes": [f.class_entry() for f in self.modes],
        }
        return tomli_w.dumps(doc)


@dataclass(frozen=True)
class FleetFiles:
    """Paths of one written fleet."""

    class_toml: Path
    csv: Path
    failures: Path
    truth: Path


def unit_name(prefix: str, seed: int, i: int) -> str:
    """Unit ids carry the seed, so units of two splits never share a name."""
    return f"{prefix}-s{seed}-{i:03d}"


def plan_units(rng: np.random.Generator, n: int, healthy_fraction: float) -> list[bool]:
    """Which units run to failure (True); the healthy count is rounded, then shuffled."""
    healthy = round(n * healthy_fraction)
    flags = [False] * healthy + [True] * (n - healthy)
    rng.shuffle(flags)
    return flags


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sense(rng: np.random.Generator, true: np.ndarray, sigma: float, precision: float) -> np.ndarray:
    """A sensor: the true value plus Gaussian noise, quantised to the sensor's resolution."""
    noisy = true + rng.normal(0.0, sigma, size=np.shape(true))
    return np.round(noisy / precision) * precision


def _fmt(v: float, decimals: int) -> str:
    if v != v:  # NaN: no reading
        return ""
    s = f"{v:.{decimals}f}"
    return "0" + s[2:] if s.startswith("-0") and float(s) == 0 else s


def write_fleet(fleet: Fleet, out: Path, stem: str | None = None) -> FleetFiles:
    """Write the contract's files for ``fleet`` under ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or fleet.kind
    files = FleetFiles(
        class_toml=out / f"{fleet.kind}.class.toml",
        csv=out / f"{stem}.csv",
        failures=out / f"{stem}-failures.csv",
        truth=out / f"{stem}-truth.csv",
    )
    files.class_toml.write_text(fleet.class_toml())
    names = [m.name for m in fleet.metrics]
    dec = [m.decimals for m in fleet.metrics]
    buf = io.StringIO()
    buf.write("unit,t_seconds," + ",".join(names) + "\n")
    for u in fleet.units:
        cols = [u.values[n] for n in names]
        for k, t in enumerate(u.t):
            cells = [_fmt(float(c[k]), d) for c, d in zip(cols, dec, strict=True)]
            buf.write(f"{u.unit},{_fmt(float(t), 1)}," + ",".join(cells) + "\n")
    files.csv.write_text(buf.getvalue())
    fail = ["unit,failure_time_s"]
    for u in fleet.units:
        ft = "" if u.failure_time_s is None else _fmt(u.failure_time_s, 1)
        fail.append(f"{u.unit},{ft}")
    files.failures.write_text("\n".join(fail) + "\n")
    keys = sorted({k for u in fleet.units for k in u.truth})
    truth = ["unit,failure_time_s,event,observed_until_s," + ",".join(keys)]
    for u in fleet.units:
        ft = "" if u.failure_time_s is None else _fmt(u.failure_time_s, 1)
        until = _fmt(float(u.t[-1]) if len(u.t) else 0.0, 1)
        vals = [f"{u.truth[k]:.6g}" if k in u.truth else "" for k in keys]
        truth.append(f"{u.unit},{ft},{u.event or ''},{until}," + ",".join(vals))
    files.truth.write_text("\n".join(truth) + "\n")
    return files


Generator = Callable[..., Fleet]
