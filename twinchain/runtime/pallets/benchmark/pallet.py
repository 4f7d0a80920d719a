"""Benchmark: performance benchmarks per equipment class, baselines, degradation, peer comparison.

What a twin is measured against, per metric:

* **Class specs** (``ClassSpecs``): the manufacturer's expected value and tolerance of a metric
  for an equipment class, in the metric's fixed-point scale. A class belongs to the
  EquipmentManufacturer that first declares a spec for it (``ClassOwner``; root may assign or
  clear the owner); root (governance) may set anything.
* **Condition rules** (``ConditionRules``): declared linear adjustments of a class target, at
  most ``MAX_RULES`` per (class, metric). Each rule names a driver metric and adds
  ``slope_bp * (x - reference) / unit`` basis points to the target, where ``x`` is the driver's
  window value (``relative``: as basis points of the twin's rated value of the driver, i.e. the
  load; otherwise the absolute value, e.g. ambient temperature). The sum is clamped to
  ``[MIN_ADJ_BP, MAX_ADJ_BP]``; a driver without readings in the window contributes nothing.
* **Industry standards** (``Standards``): limits ``[min, max]`` of a metric for a class set by
  root; a window value outside them counts as a standard violation of the twin.
* **Baselines** (``Baselines``): each twin learns, per Gauge metric, the mean of its first
  ``BaselineWindows`` closed windows (genesis ``baseline_windows``, default 5) through
  :meth:`Benchmark.on_window_closed`; ``reset_baseline`` (owner or OPERATE delegate) relearns.

A window's *value* of a metric is its mean (rounded half away from zero, in the metric's
scale) for a Gauge metric and its total (the sum) for a Delta metric.

Degradation: after the baseline is learned, every closed window gives each Gauge metric a drift
``(value - baseline) * 10000 / |baseline|`` in basis points (denominator 1 when the baseline is
0; clamped to ``±DRIFT_CLAMP_BP``). The pallet keeps the last drift, an integer EWMA
(``ewma += (drift - ewma) * EWMA_ALPHA_BP / 10000``), the last ``RING`` drifts and a trend (mean
of the newer half of the ring minus the older half). Health is
``10000 - min(10000, max |ewma| over the twin's metrics)``: 10000 as new, 0 at 100 % drift.

Peer comparison: per class a list of ``(health, twin)`` kept sorted (``ClassPeers``), bounded
to ``MAX_PEERS`` twins: the first twins of a class to finish learning a baseline are ranked;
the others are not (percentile None) until a place frees up. The percentile of a twin is its
percent rank ``(2 * below + equal) * 10000 / (2 * n)`` in basis points (``equal`` counts the
twin itself), across every facility.

``deviation_bp(twin, metric, agg)`` (for Maintenance) measures a window value against the
condition-adjusted class target when the class has a spec for the metric, else against the
twin's baseline; None when neither exists. All arithmetic is integer.
"""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import I64, U16, U32, U64, AccountId, Option, Str, Tuple, Vec
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
)
from twinchain.runtime.pallets.benchmark.config import Config
from twinchain.runtime.pallets.benchmark.features.classes import ClassesFeature
from twinchain.runtime.pallets.benchmark.features.drift import DriftFeature
from twinchain.runtime.pallets.benchmark.features.targets import TargetsFeature
from twinchain.runtime.pallets.benchmark.types import (
    DEFAULT_BASELINE_WINDOWS,
    DRIFT_CLAMP_BP,
    EWMA_ALPHA_BP,
    MAX_ADJ_BP,
    MAX_BASELINE_WINDOWS,
    MAX_PEERS,
    MAX_RULES,
    MAX_STANDARD_NAME,
    MIN_ADJ_BP,
    RING,
    Baseline,
    ConditionRule,
    Drift,
    MetricTarget,
    PeerList,
    Standard,
    TwinBench,
)
from twinchain.runtime.pallets.equipment.types import EquipmentClass, TwinId
from twinchain.runtime.pallets.telemetry import I128

# Block notes key of the metric kinds read in this block's state. A registered metric is never
# changed or removed (Telemetry.register_metric only adds), so a kind read once stays true;
# the window hooks ask for the same few kinds dozens of times per close.
_KINDS = "benchmark/metric-kinds"


class Benchmark(ClassesFeature, DriftFeature, TargetsFeature, Pallet):
    name = "Benchmark"
    config: Config

    BaselineWindows = StorageValue(
        U32, DEFAULT_BASELINE_WINDOWS, doc="Closed windows a twin's baseline is learned from."
    )
    ClassOwner = StorageMap(
        EquipmentClass, AccountId, doc="The manufacturer that declares the specs of a class."
    )
    ClassSpecs = StorageDoubleMap(
        EquipmentClass, U16, MetricTarget.wire_type(), doc="Expected value per class and metric."
    )
    ConditionRules = StorageDoubleMap(
        EquipmentClass,
        U16,
        Vec(ConditionRule.wire_type(), MAX_RULES),
        doc="Declared condition adjustments of a class target.",
    )
    Standards = StorageDoubleMap(
        EquipmentClass, U16, Standard.wire_type(), doc="Industry limits per class and metric."
    )
    Learning = StorageDoubleMap(
        TwinId, U16, Tuple(U32, I128), doc="(windows, sum of window means) while learning."
    )
    Baselines = StorageDoubleMap(
        TwinId, U16, Baseline.wire_type(), doc="Learned baseline per twin and metric."
    )
    Drifts = StorageDoubleMap(
        TwinId, U16, Drift.wire_type(), doc="Drift against the baseline per twin and metric."
    )
    Twins = StorageMap(TwinId, TwinBench.wire_type(), doc="Benchmark summary per twin.")
    # (metric, |EWMA|) of the twin's drifting metrics: the hook reads health from this one
    # value instead of iterating Drifts (a prefix scan costs O(writes in the block)).
    Ewmas = StorageMap(
        TwinId, Vec(Tuple(U16, U32), 1 << 16), doc="|Drift EWMA| per drifting metric of a twin."
    )
    ClassPeers = StorageMap(
        EquipmentClass, PeerList, doc="(health, twin) of the ranked twins of a class, ascending."
    )

    class Event(PalletEvents):
        ClassOwnerSet = (("class", EquipmentClass), ("owner", Option(AccountId)))
        ClassSpecSet = (
            ("class", EquipmentClass),
            ("metric", U16),
            ("expected", I64),
            ("tolerance", U64),
        )
        ClassSpecRemoved = (("class", EquipmentClass), ("metric", U16))
        ConditionRulesSet = (("class", EquipmentClass), ("metric", U16), ("rules", U32))
        StandardSet = (
            ("class", EquipmentClass),
            ("metric", U16),
            ("name", Str(MAX_STANDARD_NAME)),
            ("min", I64),
            ("max", I64),
        )
        StandardRemoved = (("class", EquipmentClass), ("metric", U16))
        BaselineLearned = (("twin", TwinId), ("metric", U16), ("mean", I64))
        BaselineReset = (("twin", TwinId),)
        Benchmarked = (("twin", TwinId), ("start", U64), ("health_bp", U16))

    class Error(PalletErrors):
        NotClassOwner = "the sender is not the manufacturer that owns this class (nor root)"
        NotManufacturer = "the sender does not hold the EquipmentManufacturer role"
        NoPermission = "the sender is neither the twin's owner nor an OPERATE delegate"
        UnknownTwin = "no twin with this id"
        UnknownMetric = "no registered metric with this id"
        EmptyClass = "the equipment class must not be empty"
        InvalidStandard = "the standard's min exceeds its max, or its name is empty"
        InvalidRule = "a rule has unit 0 or drives a metric by itself"
        NoSpec = "the class has no spec for this metric"
        NoStandard = "the class has no standard for this metric"

    # ------------------------------------------------------------------ helpers
    def metric_kind(self, metric: int) -> str | None:
        """ "Gauge" or "Delta" of a registered metric, None if unknown (cached per block)."""
        notes = self.runtime.block.notes
        cached = notes.get(_KINDS)
        if cached is None or cached[0] is not self.runtime.state:
            # Bound to the state it was read from: a runtime that reads other states between
            # blocks (RPC, another fork) never sees another state's kinds.
            cached = notes[_KINDS] = (self.runtime.state, {})
        kinds: dict[int, str] = cached[1]
        kind = kinds.get(metric)
        if kind is None:
            info = self.config.telemetry.metric(metric)
            if info is None:
                return None
            kind = kinds[metric] = str(info.kind)
        return kind

    def _ensure_metric(self, metric: int) -> None:
        if self.config.telemetry.metric(metric) is None:
            raise self.Error.UnknownMetric(str(metric))

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``baseline_windows`` (default 5); ``class_owners``: [[class, account]];
        ``class_specs``: [[class, metric, expected, tolerance]]; ``condition_rules``:
        [[class, metric, [[driver, relative, reference, slope_bp, unit], ...]]];
        ``standards``: [[class, metric, name, min, max]]."""
        n = int(config.get("baseline_windows", DEFAULT_BASELINE_WINDOWS))
        if not 1 <= n <= MAX_BASELINE_WINDOWS:
            raise ValueError(f"benchmark baseline_windows must be 1..{MAX_BASELINE_WINDOWS}")
        self.BaselineWindows.put(n)
        for cls, who in config.get("class_owners", []):
            self.ClassOwner.insert(str(cls), parse_account(who))
        telemetry = self.config.telemetry
        for cls, metric, *_ in (
            *config.get("class_specs", []),
            *config.get("condition_rules", []),
            *config.get("standards", []),
        ):
            if telemetry.metric(int(metric)) is None or not cls:
                raise ValueError(f"benchmark genesis: unknown metric {metric} or empty class")
        for cls, metric, expected, tolerance in config.get("class_specs", []):
            self.ClassSpecs.insert(
                str(cls), int(metric), MetricTarget(int(expected), int(tolerance))
            )
        for cls, metric, rules in config.get("condition_rules", []):
            rs = [
                ConditionRule(int(d), bool(rel), int(ref), int(s), int(u))
                for d, rel, ref, s, u in rules
            ]
            if len(rs) > MAX_RULES or any(r.unit <= 0 or r.driver == int(metric) for r in rs):
                raise ValueError(f"invalid genesis condition rules for {cls}/{metric}")
            self.ConditionRules.insert(str(cls), int(metric), rs)
        for cls, metric, name, lo, hi in config.get("standards", []):
            if int(lo) > int(hi) or not name:
                raise ValueError(f"invalid genesis standard for {cls}/{metric}")
            self.Standards.insert(str(cls), int(metric), Standard(str(name), int(lo), int(hi)))

    # ------------------------------------------------------------------ metadata
    def constants(self) -> dict[str, Any]:
        return {
            "MaxRules": MAX_RULES,
            "MaxPeers": MAX_PEERS,
            "Ring": RING,
            "EwmaAlphaBp": EWMA_ALPHA_BP,
            "DriftClampBp": DRIFT_CLAMP_BP,
            "AdjustmentBp": [MIN_ADJ_BP, MAX_ADJ_BP],
        }
