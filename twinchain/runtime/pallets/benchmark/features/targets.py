"""Benchmark targets: what Maintenance measures a window against, the condition-adjusted class
target or, without a class spec, the twin's baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinchain.runtime.pallets.benchmark.arithmetic import (
    bp_of,
    clamp,
    div_round,
    trunc_div,
    window_value,
)
from twinchain.runtime.pallets.benchmark.types import (
    BP,
    MAX_ADJ_BP,
    MIN_ADJ_BP,
    Baseline,
    ConditionRule,
    MetricTarget,
)

if TYPE_CHECKING:
    from twinchain.runtime.pallets.telemetry import Aggregate


class TargetsFeature:
    """Targets and deviations of the Benchmark pallet."""

    # ------------------------------------------------------------------ API for other pallets
    def target(
        self,
        twin: int,
        metric: int,
        start: int | None = None,
        *,
        cls: str | None = None,
        aggs: dict[int, Aggregate] | None = None,
    ) -> tuple[int, int] | None:
        """(condition-adjusted class target, tolerance) of a twin's metric for the window at
        ``start`` (no adjustment without a window), or None if its class has no spec.
        ``cls`` and ``aggs`` (the window's aggregates, from a window hook) save reads."""
        if cls is None:
            t = self.config.twins.twin(twin)
            if t is None:
                return None
            cls = t.equipment_class
        spec: MetricTarget | None = self.ClassSpecs.get(cls, metric)
        if spec is None:
            return None
        rules: list[ConditionRule] = self.ConditionRules.get(cls, metric) or []
        if start is None or not rules:
            return spec.expected, spec.tolerance
        tel = self.config.telemetry
        rated: dict[int, int] | None = None
        adj = 0
        for r in rules:
            agg = aggs.get(r.driver) if aggs is not None else tel.aggregate(twin, r.driver, start)
            kind = self.metric_kind(r.driver)
            if agg is None or not agg.count or kind is None:
                continue
            x = window_value(agg, kind)
            if r.relative:
                if rated is None:
                    spec_t = self.config.twins.spec(twin)
                    rated = dict(spec_t.rated) if spec_t is not None else {}
                r_val = rated.get(r.driver)
                if not r_val:
                    continue
                x = div_round(x * BP, abs(r_val))
            adj += trunc_div(r.slope_bp * (x - r.reference), r.unit)
        adj = clamp(adj, MIN_ADJ_BP, MAX_ADJ_BP)
        return spec.expected + trunc_div(spec.expected * adj, BP), spec.tolerance

    def deviation_bp(
        self,
        twin: int,
        metric: int,
        agg: Aggregate,
        *,
        cls: str | None = None,
        aggs: dict[int, Aggregate] | None = None,
    ) -> int | None:
        """Signed deviation of the window value from the condition-adjusted class target (or,
        without a class spec, the twin's baseline) in basis points; None without either.
        A window hook passes the twin's class and the window's ``aggs`` (fewer reads)."""
        if not agg.count:
            return None
        kind = self.metric_kind(metric)
        if kind is None:
            return None
        value = window_value(agg, kind)
        window = self.config.telemetry.window_ms()
        start = agg.last_ts - agg.last_ts % window
        tgt = self.target(twin, metric, start, cls=cls, aggs=aggs)
        if tgt is not None:
            return bp_of(value, tgt[0])
        base: Baseline | None = self.Baselines.get(twin, metric)
        return None if base is None else bp_of(value, base.mean)
