"""Analytics periods: closed telemetry windows, failures and repairs summed into each twin's
open period; periods closed by a later window or by ``on_initialize``, each into a KPI record,
the facility's record and the twin's baseline."""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import U64, Option
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    DOWNTIME,
    ENERGY,
    GOOD_UNITS,
    RUN_TIME,
    UNITS_PRODUCED,
)
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.analytics.types import (
    MAX_CLOSE_PER_BLOCK,
    MAX_DUE_PERIODS,
    U32_MAX,
    U64_MAX,
    Baseline,
    Cursor,
    KpiRecord,
    PeriodAcc,
    RewardRules,
    add_acc,
    compute_kpis,
    empty_acc,
)
from twinchain.runtime.pallets.equipment.types import TwinId
from twinchain.runtime.weights import analytics as weights


class PeriodsFeature:
    """KPI periods of the Analytics pallet."""

    # ------------------------------------------------------------------ helpers
    def ideal_rate(self, twin: int) -> int:
        """Units per hour x 1000: owner-set, else the spec's rated metric 7, else 0."""
        rate: int | None = self.IdealRate.get(twin)
        if rate is not None:
            return rate
        spec = self.config.twins.spec(twin)
        for metric, value in spec.rated if spec is not None else []:
            if metric == UNITS_PRODUCED:
                return max(0, value) * 1000
        return 0

    def planned_ms(self, twin: int) -> int:
        pm: int = self.PeriodMs.get()
        planned: int | None = self.PlannedTime.get(twin)
        return pm if planned is None else planned

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("units_per_hour_milli", Option(U64))),
    )
    def set_ideal_rate(self, origin: Origin, twin: int, units_per_hour_milli: int | None) -> None:
        """Set the twin's ideal rate (units per hour x 1000) for the performance KPI, or clear
        it back to the spec's rated value (owner or OPERATE delegate)."""
        who = ensure_signed(origin)
        self._ensure_operate(who, twin)
        if units_per_hour_milli is None:
            self.IdealRate.remove(twin)
        else:
            self.IdealRate.insert(twin, units_per_hour_milli)
        self.deposit(self.Event.IdealRateSet(twin, units_per_hour_milli))

    @call(
        1,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("planned_ms", Option(U64))),
    )
    def set_planned_time(self, origin: Origin, twin: int, planned_ms: int | None) -> None:
        """Set the planned production time per period (ms, at most the period), or clear it
        back to the whole period (owner or OPERATE delegate)."""
        who = ensure_signed(origin)
        self._ensure_operate(who, twin)
        if planned_ms is None:
            self.PlannedTime.remove(twin)
        else:
            if planned_ms > self.PeriodMs.get():
                raise self.Error.InvalidPlannedTime()
            self.PlannedTime.insert(twin, planned_ms)
        self.deposit(self.Event.PlannedTimeSet(twin, planned_ms))

    # ------------------------------------------------------------------ periods
    def _target(self, twin: int, at_ms: int) -> tuple[Cursor, int]:
        """The period data at ``at_ms`` goes to, opening one (and closing the open one when
        a later period begins) as needed. Never a closed period."""
        pm: int = self.PeriodMs.get()
        p = at_ms // pm
        cur: Cursor | None = self.Cursors.get(twin)
        if cur is None:
            cur = Cursor(None, None, p)
        if cur.last_closed is not None:
            p = max(p, cur.last_closed + 1)
        if cur.open is not None:
            if p > cur.open:
                self._close(twin, cur)
            else:
                return cur, cur.open
        cur.open = p
        self.Cursors.insert(twin, cur)
        self._schedule(twin, p)
        return cur, p

    def _schedule(self, twin: int, period: int) -> None:
        keys: list[int] = self.DuePeriods.get()
        key = period
        if key not in keys:
            if len(keys) < MAX_DUE_PERIODS:
                self.DuePeriods.put(sorted([*keys, key]))
            else:
                # Full: the first key at or after the period (swept late, never early); with
                # none, the latest key, and on_initialize moves it on if swept too early. A
                # 65th key would not encode, failing the gateway's submit that got here.
                key = next((k for k in keys if k >= period), keys[-1])
        self.Due.insert(key, twin, period)

    def _add(self, twin: int, period: int, fn: Any) -> None:
        acc: PeriodAcc = self.Acc.get(twin, period) or empty_acc()
        fn(acc)
        self.Acc.insert(twin, period, acc)

    def _close(self, twin: int, cur: Cursor) -> None:
        """Close the twin's open period: KPI record, baseline, facility sums, event."""
        period = cur.open
        assert period is not None
        acc: PeriodAcc = self.Acc.get(twin, period) or empty_acc()
        self.Acc.remove(twin, period)
        pm: int = self.PeriodMs.get()
        acc.planned_s = self.planned_ms(twin) // 1000
        acc.calendar_s = pm // 1000
        acc.ideal_milli = min(U64_MAX, self.ideal_rate(twin) * acc.run_s // 3600)
        t = self.config.twins.twin(twin)
        facility = None if t is None else t.facility
        rec = compute_kpis(period, 1, facility, acc)
        self.Kpis.insert(twin, period, rec)
        self.Due.remove(period, twin)
        cur.open, cur.last_closed = None, period
        self.Cursors.insert(twin, cur)
        if facility is not None:
            f: KpiRecord | None = self.FacilityKpis.get(facility, period)
            sums = empty_acc() if f is None else f.sums
            add_acc(sums, acc)
            twins = 1 if f is None else f.twins + 1
            self.FacilityKpis.insert(facility, period, compute_kpis(period, twins, None, sums))
        self._update_baseline(twin, period, rec)
        self.deposit(self.Event.PeriodClosed(twin, period, rec.oee_ppm, facility))

    def _update_baseline(self, twin: int, period: int, rec: KpiRecord) -> None:
        b: Baseline | None = self.Baselines.get(twin)
        if b is None:
            b = Baseline(0, 0, 0, 0, 0, False, 0, None)
        if b.established or rec.total_units == 0:
            return
        b.periods += 1
        b.oee_sum += rec.oee_ppm
        if rec.energy_per_good_mwh is not None:
            b.epu_sum = min(U64_MAX, b.epu_sum + rec.energy_per_good_mwh)
            b.epu_periods += 1
        b.until = period
        rules: RewardRules = self.Rules.get()
        if b.periods >= rules.baseline_periods:
            b.established = True
            b.oee_ppm = b.oee_sum // b.periods
            b.energy_per_good_mwh = b.epu_sum // b.epu_periods if b.epu_periods else None
            self.deposit(self.Event.BaselineEstablished(twin, b.oee_ppm, period))
        self.Baselines.insert(twin, b)

    # ------------------------------------------------------------------ hooks
    def on_window_closed(self, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        """Add the window's Delta metrics to the twin's period (bounded: a few reads/writes)."""
        _, period = self._target(twin, start)

        def total(metric: int) -> int:
            a = aggs.get(metric)
            return 0 if a is None else max(0, min(U64_MAX, a.sum))

        valid = all(a.flagged == 0 for a in aggs.values())

        def add(acc: PeriodAcc) -> None:
            acc.run_s = min(U64_MAX, acc.run_s + total(RUN_TIME))
            acc.down_s = min(U64_MAX, acc.down_s + total(DOWNTIME))
            acc.units = min(U64_MAX, acc.units + total(UNITS_PRODUCED))
            acc.good = min(U64_MAX, acc.good + total(GOOD_UNITS))
            acc.bad = min(U64_MAX, acc.bad + total(BAD_UNITS))
            acc.energy_wh = min(U64_MAX, acc.energy_wh + total(ENERGY))
            acc.windows = min(U32_MAX, acc.windows + 1)
            acc.valid_windows = min(U32_MAX, acc.valid_windows + int(valid))

        self._add(twin, period, add)

    def on_initialize(self, number: int) -> int:
        """Close periods whose end (plus grace) has passed: at most MAX_CLOSE_PER_BLOCK."""
        keys: list[int] = self.DuePeriods.get()
        if not keys:
            return weights.W_INIT
        pm: int = self.PeriodMs.get()
        deadline = self._now() - self.CloseGraceMs.get()
        budget = MAX_CLOSE_PER_BLOCK
        changed = False
        closed = visited = 0
        later: list[tuple[int, int]] = []  # swept under an earlier key, not over yet
        while keys and budget and (keys[0] + 1) * pm <= deadline:
            key = keys[0]
            visited += 1  # an empty key (its periods closed by windows) costs its reads too
            batch = []
            for twin, period in self.Due.iter_prefix(key):
                if len(batch) == budget:
                    break
                batch.append((twin, period))
            for twin, period in batch:
                self.Due.remove(key, twin)
                cur: Cursor | None = self.Cursors.get(twin)
                if cur is not None and cur.open == period:
                    if (period + 1) * pm <= deadline:
                        self._close(twin, cur)
                        closed += 1
                    else:
                        later.append((twin, period))
                budget -= 1
            if next(self.Due.iter_prefix(key), None) is not None:
                break  # budget spent: the rest next block
            keys = keys[1:]
            changed = True
        if changed:
            self.DuePeriods.put(keys)
        for twin, period in later:
            self._schedule(twin, period)
        swept = MAX_CLOSE_PER_BLOCK - budget
        return weights.W_INIT + weights.W_SWEEP * (swept + visited) + weights.W_CLOSE * closed

    # ------------------------------------------------------------------ API for other pallets
    def note_failure(self, twin: int, at_ms: int) -> None:
        """A failure of the twin (Maintenance: a corrective work order from an alert)."""
        cur: Cursor | None = self.Cursors.get(twin)
        period = cur.open if cur is not None and cur.open is not None else None
        if period is None:
            _, period = self._target(twin, at_ms)

        def add(acc: PeriodAcc) -> None:
            acc.failures = min(U32_MAX, acc.failures + 1)

        self._add(twin, period, add)

    def note_repair(self, twin: int, start_ms: int, end_ms: int) -> None:
        """A verified repair of the twin lasting ``end_ms - start_ms`` (for MTTR)."""
        cur: Cursor | None = self.Cursors.get(twin)
        period = cur.open if cur is not None and cur.open is not None else None
        if period is None:
            _, period = self._target(twin, end_ms)

        def add(acc: PeriodAcc) -> None:
            acc.repairs = min(U32_MAX, acc.repairs + 1)
            acc.repair_ms = min(U64_MAX, acc.repair_ms + max(0, end_ms - start_ms))

        self._add(twin, period, add)

    def kpis(self, twin: int, period: int) -> KpiRecord | None:
        return self.Kpis.get(twin, period)  # type: ignore[no-any-return]

    def latest_kpis(self, twin: int) -> KpiRecord | None:
        cur: Cursor | None = self.Cursors.get(twin)
        if cur is None or cur.last_closed is None:
            return None
        return self.Kpis.get(twin, cur.last_closed)  # type: ignore[no-any-return]
