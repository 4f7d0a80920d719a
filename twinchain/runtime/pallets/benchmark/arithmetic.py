"""The Benchmark pallet's integer arithmetic: window values, rounding, deviations in bp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinchain.runtime.pallets.benchmark.types import BP, DRIFT_CLAMP_BP

if TYPE_CHECKING:
    from twinchain.runtime.pallets.telemetry import Aggregate


def div_round(a: int, b: int) -> int:
    """``a / b`` rounded half away from zero (``b > 0``), integers only."""
    q = (2 * abs(a) + b) // (2 * b)
    return q if a >= 0 else -q


def clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def bp_of(value: int, reference: int) -> int:
    """Signed deviation of ``value`` from ``reference`` in basis points of ``|reference|``."""
    den = abs(reference) or 1
    return clamp(div_round((value - reference) * BP, den), -DRIFT_CLAMP_BP, DRIFT_CLAMP_BP)


def trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero (``b > 0``)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def window_value(agg: Aggregate, kind: str) -> int:
    """A window's value of a metric: the rounded mean (Gauge) or the total (Delta)."""
    if kind == "Delta":
        return int(agg.sum)
    return div_round(agg.sum, agg.count) if agg.count else 0
