"""Benchmark drift: each twin's baseline learned from its first windows, drift and health
tracked per closed window, standard violations counted, twins ranked among their class."""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import U32
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.benchmark.arithmetic import bp_of, clamp, div_round, window_value
from twinchain.runtime.pallets.benchmark.types import (
    BP,
    DRIFT_CLAMP_BP,
    EWMA_ALPHA_BP,
    MAX_PEERS,
    RING,
    Baseline,
    Drift,
    Standard,
    TwinBench,
)
from twinchain.runtime.pallets.equipment.types import OPERATE, TwinId
from twinchain.runtime.weights import benchmark as weights


class DriftFeature:
    """Baselines, drift, health and peers of the Benchmark pallet."""

    @call(6, weight=weights.W_RESET, origin=SIGNED, args=(("twin", TwinId),))
    def reset_baseline(self, origin: Origin, twin: int) -> None:
        """Forget a twin's baseline and drift and learn them again from its next windows (the
        owner or an OPERATE delegate, e.g. after an overhaul)."""
        who = ensure_signed(origin)
        t = self.config.twins.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if not self.config.twins.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        self.Learning.remove_prefix(twin)
        self.Baselines.remove_prefix(twin)
        self.Drifts.remove_prefix(twin)
        self.Ewmas.remove(twin)
        self.Twins.remove(twin)
        self._rank(t.equipment_class, twin, None)
        self.deposit(self.Event.BaselineReset(twin))

    # ------------------------------------------------------------------ window hook
    def on_window_closed(self, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        """Learn the baseline, track drift and health, count standard violations, rank."""
        t = self.config.twins.twin(twin)
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
    def health_bp(self, twin: int) -> int | None:
        """0..10000 (10000 = as new) from the worst metric's drift EWMA; None before any drift."""
        b: TwinBench | None = self.Twins.get(twin)
        if b is None or not self.Ewmas.get(twin):
            return None
        return int(b.health_bp)

    def percentile_bp(self, twin: int) -> tuple[int, int] | None:
        """(percent rank in bp, peers ranked) of the twin among its class, or None."""
        t = self.config.twins.twin(twin)
        if t is None:
            return None
        peers: list[tuple[int, int]] = self.ClassPeers.get(t.equipment_class) or []
        mine = next((h for h, tw in peers if tw == twin), None)
        if mine is None:
            return None
        below = sum(1 for h, _ in peers if h < mine)
        equal = sum(1 for h, _ in peers if h == mine)
        return (2 * below + equal) * BP // (2 * len(peers)), len(peers)
