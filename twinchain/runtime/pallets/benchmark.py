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

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain.primitives.codec import (
    I32,
    I64,
    U16,
    U32,
    U64,
    AccountId,
    Bool,
    CodecError,
    Option,
    Record,
    Str,
    Tuple,
    Type,
    Vec,
)
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
    ROOT,
    ROOT_OR_SIGNED,
    SIGNED,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.pallets.equipment import OPERATE, EquipmentClass, TwinId
from twinchain.runtime.pallets.roles import EQUIPMENT_MANUFACTURER
from twinchain.runtime.pallets.telemetry import I128

if TYPE_CHECKING:
    from twinchain.runtime.pallets.telemetry import Aggregate

BP = 10_000
DEFAULT_BASELINE_WINDOWS = 5
MAX_BASELINE_WINDOWS = 1_000
MAX_RULES = 4
MAX_PEERS = 256
MAX_STANDARD_NAME = 64
RING = 8
EWMA_ALPHA_BP = 2_000  # weight of the newest window in the EWMA
DRIFT_CLAMP_BP = 1_000_000
MIN_ADJ_BP, MAX_ADJ_BP = -9_000, 40_000

# A call that reads and writes a few values costs 70-95 us of import (bench/operations.py);
# reset_baseline removes four per-metric prefixes of the twin.
W_SMALL = 120_000
W_RESET = 400_000

# Block notes key of the metric kinds read in this block's state. A registered metric is never
# changed or removed (Telemetry.register_metric only adds), so a kind read once stays true;
# the window hooks ask for the same few kinds dozens of times per close.
_KINDS = "benchmark/metric-kinds"


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


@dataclass
class MetricTarget(Record):
    """Expected value of a metric for a class and the tolerance around it (metric scale)."""

    expected: int
    tolerance: int
    FIELDS: ClassVar = {"expected": I64, "tolerance": U64}


@dataclass
class ConditionRule(Record):
    """Adds ``slope_bp * (x - reference) / unit`` bp to a target, ``x`` being the driver's
    window value (``relative``: in bp of the twin's rated value of the driver)."""

    driver: int
    relative: bool
    reference: int
    slope_bp: int
    unit: int
    FIELDS: ClassVar = {
        "driver": U16,
        "relative": Bool,
        "reference": I64,
        "slope_bp": I32,
        "unit": U64,
    }


@dataclass
class Standard(Record):
    name: str
    min: int
    max: int
    FIELDS: ClassVar = {"name": Str(MAX_STANDARD_NAME), "min": I64, "max": I64}


@dataclass
class Baseline(Record):
    mean: int
    windows: int
    learned_at: int
    FIELDS: ClassVar = {"mean": I64, "windows": U32, "learned_at": U64}


@dataclass
class Drift(Record):
    """Degradation of one metric against its baseline, in basis points."""

    last_bp: int
    ewma_bp: int
    trend_bp: int
    recent: list[int]
    windows: int
    last_value: int
    FIELDS: ClassVar = {
        "last_bp": I32,
        "ewma_bp": I32,
        "trend_bp": I32,
        "recent": Vec(I32, RING),
        "windows": U32,
        "last_value": I64,
    }


@dataclass
class TwinBench(Record):
    health_bp: int
    windows: int
    last_start: int
    violations: int
    FIELDS: ClassVar = {"health_bp": U16, "windows": U64, "last_start": U64, "violations": U32}


Key = Tuple(EquipmentClass, U16)

_PEER = struct.Struct(">HQ")


class _PeerList(Type):
    """``[(health u16, twin u64)]`` (at most MAX_PEERS) packed into one binary string of
    10-byte big-endian records. Every window close of a ranked twin reads and writes its
    class's list: as a msgpack array of pairs, decoding, checking and re-encoding 256 of
    them cost several milliseconds of the close; as one bin they cost microseconds."""

    name = "PeerList"

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, list) or len(value) > MAX_PEERS:
            raise CodecError(f"PeerList: expected a list of at most {MAX_PEERS} pairs")
        try:
            return b"".join(_PEER.pack(h, t) for h, t in value)
        except (struct.error, TypeError, ValueError) as exc:
            raise CodecError(f"PeerList: {exc}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not bytes or len(wire) % _PEER.size or len(wire) > MAX_PEERS * _PEER.size:
            raise CodecError("PeerList: expected a bin of at most 256 10-byte records")
        return list(_PEER.iter_unpack(wire))

    def describe(self) -> Any:
        return {"packed": ["u16", "u64"], "max": MAX_PEERS, "byteorder": "big"}


PeerList = _PeerList()


class Benchmark(Pallet):
    name = "Benchmark"

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
            info = self.runtime.telemetry.Metrics.get(metric)
            if info is None:
                return None
            kind = kinds[metric] = str(info.kind)
        return kind

    def _ensure_metric(self, metric: int) -> None:
        if not self.runtime.telemetry.Metrics.contains(metric):
            raise self.Error.UnknownMetric(str(metric))

    def _ensure_class_writer(self, origin: Origin, cls: str) -> bytes | None:
        """Root, or the class's manufacturer (a manufacturer claims an unowned class).
        Returns the account that claims the class, if it is unowned."""
        if not cls:
            raise self.Error.EmptyClass()
        if origin.kind == ROOT:
            return None
        who = ensure_signed(origin)
        if not self.runtime.roles.has(who, EQUIPMENT_MANUFACTURER):
            raise self.Error.NotManufacturer()
        owner = self.ClassOwner.get(cls)
        if owner is None:
            return who
        if owner != who:
            raise self.Error.NotClassOwner()
        return None

    def _claim(self, cls: str, who: bytes | None) -> None:
        if who is not None:
            self.ClassOwner.insert(cls, who)
            self.deposit(self.Event.ClassOwnerSet(cls, who))

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=W_SMALL,
        origin=ROOT,
        args=(("class", EquipmentClass), ("owner", Option(AccountId))),
    )
    def set_class_owner(self, origin: Origin, cls: str, owner: bytes | None) -> None:
        """Assign (or clear) the manufacturer that owns a class's specs (root)."""
        ensure_root(origin)
        if not cls:
            raise self.Error.EmptyClass()
        if owner is None:
            self.ClassOwner.remove(cls)
        else:
            self.ClassOwner.insert(cls, owner)
        self.deposit(self.Event.ClassOwnerSet(cls, owner))

    @call(
        1,
        weight=W_SMALL,
        origin=ROOT_OR_SIGNED,
        args=(("class", EquipmentClass), ("metric", U16), ("expected", I64), ("tolerance", U64)),
    )
    def set_class_spec(
        self, origin: Origin, cls: str, metric: int, expected: int, tolerance: int
    ) -> None:
        """Set the expected value and tolerance of a metric for a class (its manufacturer, or
        root); the first manufacturer to declare a spec for an unowned class owns it."""
        claim = self._ensure_class_writer(origin, cls)
        self._ensure_metric(metric)
        self._claim(cls, claim)
        self.ClassSpecs.insert(cls, metric, MetricTarget(expected, tolerance))
        self.deposit(self.Event.ClassSpecSet(cls, metric, expected, tolerance))

    @call(
        2, weight=W_SMALL, origin=ROOT_OR_SIGNED, args=(("class", EquipmentClass), ("metric", U16))
    )
    def remove_class_spec(self, origin: Origin, cls: str, metric: int) -> None:
        """Remove a class spec (its manufacturer, or root)."""
        if self._ensure_class_writer(origin, cls) is not None:
            raise self.Error.NoSpec()  # an unowned class has no specs of a manufacturer
        if not self.ClassSpecs.contains(cls, metric):
            raise self.Error.NoSpec()
        self.ClassSpecs.remove(cls, metric)
        self.deposit(self.Event.ClassSpecRemoved(cls, metric))

    @call(
        3,
        weight=W_SMALL,
        origin=ROOT_OR_SIGNED,
        args=(
            ("class", EquipmentClass),
            ("metric", U16),
            ("rules", Vec(ConditionRule.wire_type(), MAX_RULES)),
        ),
    )
    def set_condition_rules(
        self, origin: Origin, cls: str, metric: int, rules: list[ConditionRule]
    ) -> None:
        """Declare the condition adjustments of a class target (its manufacturer, or root);
        an empty list removes them."""
        claim = self._ensure_class_writer(origin, cls)
        self._ensure_metric(metric)
        for r in rules:
            if r.unit == 0 or r.driver == metric:
                raise self.Error.InvalidRule()
            self._ensure_metric(r.driver)
        self._claim(cls, claim)
        if rules:
            self.ConditionRules.insert(cls, metric, rules)
        else:
            self.ConditionRules.remove(cls, metric)
        self.deposit(self.Event.ConditionRulesSet(cls, metric, len(rules)))

    @call(
        4,
        weight=W_SMALL,
        origin=ROOT,
        args=(
            ("class", EquipmentClass),
            ("metric", U16),
            ("name", Str(MAX_STANDARD_NAME)),
            ("min", I64),
            ("max", I64),
        ),
    )
    def set_standard(
        self, origin: Origin, cls: str, metric: int, name: str, lo: int, hi: int
    ) -> None:
        """Set an industry standard's limits of a metric for a class (root: governance)."""
        ensure_root(origin)
        if not cls:
            raise self.Error.EmptyClass()
        self._ensure_metric(metric)
        if not name or lo > hi:
            raise self.Error.InvalidStandard()
        self.Standards.insert(cls, metric, Standard(name, lo, hi))
        self.deposit(self.Event.StandardSet(cls, metric, name, lo, hi))

    @call(5, weight=W_SMALL, origin=ROOT, args=(("class", EquipmentClass), ("metric", U16)))
    def remove_standard(self, origin: Origin, cls: str, metric: int) -> None:
        """Remove an industry standard (root)."""
        ensure_root(origin)
        if not self.Standards.contains(cls, metric):
            raise self.Error.NoStandard()
        self.Standards.remove(cls, metric)
        self.deposit(self.Event.StandardRemoved(cls, metric))

    @call(6, weight=W_RESET, origin=SIGNED, args=(("twin", TwinId),))
    def reset_baseline(self, origin: Origin, twin: int) -> None:
        """Forget a twin's baseline and drift and learn them again from its next windows (the
        owner or an OPERATE delegate, e.g. after an overhaul)."""
        who = ensure_signed(origin)
        t = self.runtime.equipment.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if not self.runtime.equipment.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        self.Learning.remove_prefix(twin)
        self.Baselines.remove_prefix(twin)
        self.Drifts.remove_prefix(twin)
        self.Ewmas.remove(twin)
        self.Twins.remove(twin)
        self._rank(t.equipment_class, twin, None)
        self.deposit(self.Event.BaselineReset(twin))

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
        metrics = self.runtime.telemetry.Metrics
        for cls, metric, *_ in (
            *config.get("class_specs", []),
            *config.get("condition_rules", []),
            *config.get("standards", []),
        ):
            if not metrics.contains(int(metric)) or not cls:
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

    # ------------------------------------------------------------------ window hook
    def on_window_closed(self, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        """Learn the baseline, track drift and health, count standard violations, rank."""
        t = self.runtime.equipment.twin(twin)
        if t is None:
            return
        cls = t.equipment_class
        n_base = self.BaselineWindows.get()
        bench: TwinBench = self.Twins.get(twin) or TwinBench(BP, 0, 0, 0)
        ewmas: dict[int, int] | None = None
        for metric, agg in sorted(aggs.items()):
            kind = self.metric_kind(metric)
            if kind is None:
                continue
            value = window_value(agg, kind)
            std: Standard | None = self.Standards.get(cls, metric)
            if std is not None and not std.min <= value <= std.max:
                bench.violations = min(bench.violations + 1, U32.max)
            if kind != "Gauge":
                continue
            base: Baseline | None = self.Baselines.get(twin, metric)
            if base is None:
                count, total = self.Learning.get(twin, metric) or (0, 0)
                count, total = count + 1, total + value
                if count >= n_base:
                    mean = div_round(total, count)
                    self.Baselines.insert(twin, metric, Baseline(mean, count, start))
                    self.Learning.remove(twin, metric)
                    self.deposit(self.Event.BaselineLearned(twin, metric, mean))
                else:
                    self.Learning.insert(twin, metric, (count, total))
                continue
            d: Drift = self.Drifts.get(twin, metric) or Drift(0, 0, 0, [], 0, 0)
            drift = bp_of(value, base.mean)
            d.last_bp = drift
            d.ewma_bp = (
                drift if d.windows == 0 else d.ewma_bp + (drift - d.ewma_bp) * EWMA_ALPHA_BP // BP
            )
            d.recent = [*d.recent, drift][-RING:]
            half = len(d.recent) // 2
            if half:
                old, new = d.recent[:half], d.recent[-half:]
                d.trend_bp = clamp((sum(new) - sum(old)) // half, -DRIFT_CLAMP_BP, DRIFT_CLAMP_BP)
            d.windows += 1
            d.last_value = value
            self.Drifts.insert(twin, metric, d)
            if ewmas is None:
                ewmas = dict(self.Ewmas.get(twin) or [])
            ewmas[metric] = abs(d.ewma_bp)
        if ewmas is not None:
            self.Ewmas.insert(twin, sorted(ewmas.items()))
        else:
            ewmas = dict(self.Ewmas.get(twin) or [])
        worst = max(ewmas.values(), default=None)
        bench.health_bp = BP - min(BP, worst or 0)
        bench.windows += 1
        bench.last_start = start
        self.Twins.insert(twin, bench)
        if worst is not None:
            self._rank(cls, twin, bench.health_bp)
        self.deposit(self.Event.Benchmarked(twin, start, bench.health_bp))

    def _rank(self, cls: str, twin: int, health: int | None) -> None:
        """Update (or with None drop) the twin's place in its class's sorted peer list."""
        old: list[tuple[int, int]] = self.ClassPeers.get(cls) or []
        peers = [p for p in old if p[1] != twin]
        had = len(peers) != len(old)
        if health is not None and (had or len(peers) < MAX_PEERS):
            peers.append((health, twin))
            peers.sort()
        if peers:
            self.ClassPeers.insert(cls, peers)
        else:
            self.ClassPeers.remove(cls)

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
            t = self.runtime.equipment.twin(twin)
            if t is None:
                return None
            cls = t.equipment_class
        spec: MetricTarget | None = self.ClassSpecs.get(cls, metric)
        if spec is None:
            return None
        rules: list[ConditionRule] = self.ConditionRules.get(cls, metric) or []
        if start is None or not rules:
            return spec.expected, spec.tolerance
        tel = self.runtime.telemetry
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
                    spec_t = self.runtime.equipment.spec(twin)
                    rated = dict(spec_t.rated) if spec_t is not None else {}
                r_val = rated.get(r.driver)
                if not r_val:
                    continue
                x = div_round(x * BP, abs(r_val))
            adj += _trunc_div(r.slope_bp * (x - r.reference), r.unit)
        adj = clamp(adj, MIN_ADJ_BP, MAX_ADJ_BP)
        return spec.expected + _trunc_div(spec.expected * adj, BP), spec.tolerance

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
        window = self.runtime.telemetry.WindowMs.get()
        start = agg.last_ts - agg.last_ts % window
        tgt = self.target(twin, metric, start, cls=cls, aggs=aggs)
        if tgt is not None:
            return bp_of(value, tgt[0])
        base: Baseline | None = self.Baselines.get(twin, metric)
        return None if base is None else bp_of(value, base.mean)

    def health_bp(self, twin: int) -> int | None:
        """0..10000 (10000 = as new) from the worst metric's drift EWMA; None before any drift."""
        b: TwinBench | None = self.Twins.get(twin)
        if b is None or not self.Ewmas.get(twin):
            return None
        return int(b.health_bp)

    def percentile_bp(self, twin: int) -> tuple[int, int] | None:
        """(percent rank in bp, peers ranked) of the twin among its class, or None."""
        t = self.runtime.equipment.twin(twin)
        if t is None:
            return None
        peers: list[tuple[int, int]] = self.ClassPeers.get(t.equipment_class) or []
        mine = next((h for h, tw in peers if tw == twin), None)
        if mine is None:
            return None
        below = sum(1 for h, _ in peers if h < mine)
        equal = sum(1 for h, _ in peers if h == mine)
        return (2 * below + equal) * BP // (2 * len(peers)), len(peers)

    def constants(self) -> dict[str, Any]:
        return {
            "MaxRules": MAX_RULES,
            "MaxPeers": MAX_PEERS,
            "Ring": RING,
            "EwmaAlphaBp": EWMA_ALPHA_BP,
            "DriftClampBp": DRIFT_CLAMP_BP,
            "AdjustmentBp": [MIN_ADJ_BP, MAX_ADJ_BP],
        }


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero (``b > 0``)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def window_value(agg: Aggregate, kind: str) -> int:
    """A window's value of a metric: the rounded mean (Gauge) or the total (Delta)."""
    if kind == "Delta":
        return int(agg.sum)
    return div_round(agg.sum, agg.count) if agg.count else 0
