"""The built-in simulator's machines as a plant history: wide rows, the class file's metric
names, engineering units, and a failures file.

A fleet of one class: ``machines`` units, the first ``faulty`` with a fault of a random kind
that starts within ``fault_start_days`` and ramps over ``ramp_hours`` (as
:func:`twinchain.offchain.training.simulate` draws them). A unit counts as failed when a
failure mode of its class file is reached, as a prognostics engine sees it: the first window
(``window_s``, the class's) whose mean of the mode's metric is beyond the mode's limit; a
fault that never gets there fails at the end of its ramp. A failed unit's history ends at its
failure, as run-to-failure data does; healthy units run the whole period.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from twinchain.machines.classes import FAULT_KINDS
from twinchain.machines.simulator import FactorySimulator, Fault, MachineConfig
from twinchain.offchain.history import History, UnitHistory
from twinchain.protocol.classdef import EquipmentClass, load_class
from twinchain.protocol.telemetry import DEFAULT_METRICS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


@dataclass
class SimFleet:
    """A simulated fleet: its class, history (t in seconds from the fleet's start), and
    each unit's failure time in seconds (None: healthy)."""

    cls: EquipmentClass
    history: History
    failures: dict[str, float | None]
    faults: dict[str, str]  # unit -> fault kind


def simulator_fleet(
    equipment_class: str,
    seed: int,
    *,
    machines: int,
    faulty: int,
    days: float = 8.0,
    tick_ms: int = 60_000,
    fault_start_days: tuple[float, float] = (1.5, 3.0),
    ramp_hours: tuple[int, int] = (36, 96),
    max_wear: float = 0.7,
) -> SimFleet:
    """Simulate a fleet (everything follows from ``seed``)."""
    cls = load_class(equipment_class)
    rng = random.Random(f"twinchain-prog/{equipment_class}/{seed}")
    cfgs = [
        MachineConfig(
            f"{equipment_class}-{seed}-{i:03d}",
            equipment_class,
            initial_wear=rng.uniform(0.0, max_wear),
        )
        for i in range(machines)
    ]
    faults = []
    for cfg in cfgs[:faulty]:
        at = T0 + int(rng.uniform(*fault_start_days) * DAY_MS)
        ramp = rng.randint(*ramp_hours) * HOUR_MS
        faults.append(Fault(cfg.name, rng.choice(FAULT_KINDS), at, ramp))
    end = T0 + int(days * DAY_MS)
    if faults:
        end = max(end, max(f.at_ms + f.ramp_ms for f in faults) + HOUR_MS)
    sim = FactorySimulator(seed, cfgs, start_ms=T0, tick_ms=tick_ms, faults=faults)
    ids = {m[0]: m[1] for m in DEFAULT_METRICS}
    metric_of_id: dict[int, tuple[str, int]] = {}
    for m in cls.metrics:
        mid = m.id if m.id is not None else next((i for i, n in ids.items() if n == m.name), None)
        if mid is not None:
            metric_of_id[mid] = (m.name, m.scale)
    names = [m.name for m in cls.metrics]
    col = {n: j for j, n in enumerate(names)}
    ticks = (end - T0) // tick_ms
    n_m = len(cfgs)
    vals = np.full((n_m, ticks, len(names)), np.nan)
    index = {c.name: i for i, c in enumerate(cfgs)}
    for k in range(ticks):
        for machine, rows in sim.step_rows():
            i = index[machine]
            for metric, _ts, value in rows:
                entry = metric_of_id.get(metric)
                if entry is not None:
                    vals[i, k, col[entry[0]]] = value / 10.0 ** entry[1]
    t_ms = np.arange(ticks, dtype=np.int64) * tick_ms
    window_ms = (cls.window_s or 3600) * 1000
    units: list[UnitHistory] = []
    failures: dict[str, float | None] = {}
    kinds: dict[str, str] = {}
    by_name = {f.machine: f for f in faults}
    for cfg in cfgs:
        i = index[cfg.name]
        fault = by_name.get(cfg.name)
        stop = ticks
        if fault is not None:
            fail_ms = fault.at_ms + fault.ramp_ms - T0
            fail_ms = min(fail_ms, _limit_crossing(cls, vals[i], names, t_ms, window_ms, fail_ms))
            failures[cfg.name] = fail_ms / 1000.0
            kinds[cfg.name] = fault.kind
            stop = int(np.searchsorted(t_ms, fail_ms))
        else:
            failures[cfg.name] = None
        values = {n: vals[i, :stop, j] for n, j in col.items()}
        units.append(UnitHistory(cfg.name, t_ms[:stop].copy(), values))
    history = History(units, names, "s", f"simulator:{equipment_class}:{seed}")
    return SimFleet(cls, history, failures, kinds)


def _limit_crossing(
    cls: EquipmentClass,
    vals: np.ndarray,
    names: list[str],
    t_ms: np.ndarray,
    window_ms: int,
    default: int,
) -> int:
    """End of the first window whose mean of a failure mode's metric is past its limit."""
    best = default
    w = t_ms // window_ms
    for mode in cls.failure_modes:
        v = vals[:, names.index(mode.metric)]
        ok = ~np.isnan(v)
        if not ok.any():
            continue
        ws, inv = np.unique(w[ok], return_inverse=True)
        means = np.bincount(inv, weights=v[ok]) / np.bincount(inv)
        past = means >= mode.limit if mode.direction == "up" else means <= mode.limit
        if past.any():
            best = min(best, int((ws[int(np.argmax(past))] + 1) * window_ms))
    return best
