"""Machine fleets whose data no one here wrote: NASA ProgPy physics models of wear and failure.

    python -m bench.fleets KIND --units N --seed S --out DIR [--healthy-fraction F]
    python -m bench.fleets splits --out DIR          # the tuning kinds' standard splits

Each kind (``pump``, ``battery``, ``valve``) simulates a fleet with per-unit wear rates, loads
and sensor noise; some units run to the model's own failure threshold, the others stay
healthy until observation ends. The files follow the CSV contract (see
:mod:`bench.fleets.common`). :mod:`bench.fleets.heldout` keeps one kind out of all tuning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.fleets.common import Fleet, FleetFiles, write_fleet

CACHE = Path(__file__).resolve().parent.parent / ".fleets-cache"
TUNING_KINDS = ("pump", "battery")
HELDOUT_KIND = "valve"


def _generator(kind: str) -> Callable[..., Fleet]:
    # imported lazily: each pulls in its ProgPy model
    if kind == "pump":
        from bench.fleets import pump

        return pump.generate
    if kind == "battery":
        from bench.fleets import battery

        return battery.generate
    if kind == "valve":
        from bench.fleets import valve

        return valve.generate
    raise ValueError(f"unknown fleet kind {kind!r} (pump, battery, valve)")


KINDS = ("pump", "battery", "valve")


def generate(
    kind: str,
    units: int,
    seed: int,
    out: Path,
    healthy_fraction: float = 0.3,
    stem: str | None = None,
    **kw: float,
) -> FleetFiles:
    """Simulate a fleet of ``kind`` and write the contract's files under ``out``."""
    fleet = _generator(kind)(units, seed, healthy_fraction, **kw)
    return write_fleet(fleet, out, stem)


__all__ = [
    "CACHE",
    "HELDOUT_KIND",
    "KINDS",
    "TUNING_KINDS",
    "Fleet",
    "FleetFiles",
    "generate",
    "write_fleet",
]
