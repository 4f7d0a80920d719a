"""Analytics: efficiency KPIs (OEE, MTBF, MTTR, energy per unit), reports, rewards.

Periods. Time is cut into periods of ``PeriodMs`` (genesis ``period_ms``, default one day);
period ``p`` is ``[p * PeriodMs, (p + 1) * PeriodMs)``. Each closed telemetry window of a twin
(``on_window_closed``) is added to the twin's open period, the period of the window's start.
Per window the Delta metrics are summed (a negative window sum counts as 0): run_time (11, s),
downtime (12, s), units_produced (7), good_units (8), bad_units (9), energy (5, Wh); a window is
*valid* when no reading in it was flagged. Nothing lands in a closed period: data (a late
window, a failure) for a period before the open one goes to the open one.

A period closes when a window of a later period arrives, or in ``on_initialize`` once the
block time (the previous block's ``Timestamp.Now``) passes its end plus ``CloseGraceMs``
(at most ``MAX_CLOSE_PER_BLOCK`` twins per block). Closing stores the twin's
:class:`KpiRecord` and adds its sums into the record of the twin's facility for that period.

KPIs (all integers; ratios in parts per million, 1_000_000 = 100 %, each floored once):

* planned_s = PlannedTime(twin) // 1000 (owner-set, per period) else PeriodMs // 1000;
* total = max(units_produced, good + bad); ideal_milli = IdealRate(twin) * run_s // 3600,
  where IdealRate is units per hour x 1000: owner-set, else 1000 x the equipment spec's
  rated value of metric 7 (read as units per hour), else 0;
* availability = (planned_s - min(down_s, planned_s)) * 1e6 // planned_s (0 if planned_s = 0);
* performance = total * 1000 * 1e6 // ideal_milli (0 if ideal_milli = 0); may exceed 1e6 when
  the ideal rate is understated;
* quality = min(good, total) * 1e6 // total (0 if total = 0);
* oee = availability * min(performance, 1e6) * quality // 1e12 (so zero production and all
  scrap give 0);
* mtbf_s = run_s // failures, mttr_ms = repair_ms // repairs, energy_per_good_mwh =
  energy_wh * 1000 // good (milli-Wh per good unit): None when the divisor is 0;
* utilization = run_s * 1e6 // calendar_s (calendar_s = PeriodMs // 1000 per twin).

Failures and repairs come from the Maintenance pallet through :meth:`Analytics.note_failure`
and :meth:`Analytics.note_repair` (a repair's duration end - start counts for MTTR). A
facility's record sums the sums of its twins' records (per period) and applies the same
formulas (ideal_milli summed per twin).

Reports. ``anchor_report(scope, period, figures, report_hash)`` stores a report's hash with its
figures for a closed period: scope ("Twin", id) by the twin's owner, an OPERATE delegate or
the operator of its facility; ("Facility", id) by the facility's operator. A figure named like
a KPI field (see ``KPI_FIGURES``) must equal the stored value; other names are free.

Treasury and rewards. The treasury is the account ``treasury_account()`` =
``hash_for(ACCOUNT_DERIVE, msgpack(["pallet", "analytics/treasury"]))``, funded at genesis
(``treasury``, minted) or by transfers. Rules (genesis ``rewards``, root may replace them):

* baseline: the mean OEE (and energy per good unit) of the twin's first ``baseline_periods``
  closed periods with production;
* ``claim_improvement_reward(twin, period)``: the ``improvement_periods`` (M) periods ending at
  ``period`` all come after the baseline, are closed, produced, and all beat the baseline by
  ``min_improvement_bp`` (relative) in OEE, or all in energy per good unit; pays
  ``improvement_reward``. A claimed period never counts again: a (twin, period) is claimed
  once, and a new claim's M periods must all come after the last claimed one;
* ``claim_data_reward(twin, up_to_period)``: ``data_reward_per_window`` per valid window
  (at most ``max_windows_per_period`` per period) of the closed periods after the last data
  claim up to ``up_to_period`` (at most ``MAX_CLAIM_PERIODS`` periods per claim).

Rewards go to the twin's owner; the owner or an OPERATE delegate claims. The treasury pays
while it keeps the existential deposit (``TreasuryEmpty`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    I64,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Enum,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.runtime.framework import (
    ROOT,
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
from twinchain.runtime.pallets.balances import EXISTENTIAL_DEPOSIT
from twinchain.runtime.pallets.equipment import OPERATE, TwinId
from twinchain.runtime.pallets.facility import FacilityId
from twinchain.runtime.pallets.roles import FACILITY_OPERATOR

PPM = 1_000_000
BP = 10_000
DEFAULT_PERIOD_MS = 86_400_000
MAX_CLOSE_PER_BLOCK = 16
MAX_DUE_PERIODS = 64
MAX_CLAIM_PERIODS = 64
MAX_FIGURES = 32
MAX_FIGURE_NAME = 32

# Metric ids (telemetry.DEFAULT_METRICS).
M_ENERGY, M_UNITS, M_GOOD, M_BAD, M_RUN, M_DOWN = 5, 7, 8, 9, 11, 12

# Measured with bench/operations.py (import by a fresh client, one core): a period close
# (KPI record, facility record, baseline, cursor) 265-325 us; a call that reads and writes
# a few values 70-95 us.
W_SMALL = 120_000
W_REPORT = 150_000
W_CLAIM = 200_000
W_CLAIM_PER_PERIOD = 15_000
W_INIT = 20_000  # on_initialize reading the due keys
W_SWEEP = 20_000  # one Due entry read and removed
W_CLOSE = 400_000  # one period close in on_initialize

ScopeKind = Enum("ReportScope", ("Twin", "Facility"))
Scope = Tuple(ScopeKind, U64)
RewardKind = Enum("RewardKind", ("Improvement", "Data"))
Figures = Vec(Tuple(Str(MAX_FIGURE_NAME), I64), MAX_FIGURES)


def treasury_account() -> bytes:
    """The treasury's account id (no key exists for it; only this pallet moves its funds)."""
    return hash_for(Domain.ACCOUNT_DERIVE, codec.encode(["pallet", "analytics/treasury"]))


@dataclass
class PeriodAcc(Record):
    """Sums of one twin (or facility) over one period."""

    planned_s: int
    calendar_s: int
    run_s: int
    down_s: int
    units: int
    good: int
    bad: int
    energy_wh: int
    ideal_milli: int
    windows: int
    valid_windows: int
    failures: int
    repairs: int
    repair_ms: int
    FIELDS: ClassVar = {
        "planned_s": U64,
        "calendar_s": U64,
        "run_s": U64,
        "down_s": U64,
        "units": U64,
        "good": U64,
        "bad": U64,
        "energy_wh": U64,
        "ideal_milli": U64,
        "windows": U32,
        "valid_windows": U32,
        "failures": U32,
        "repairs": U32,
        "repair_ms": U64,
    }


def empty_acc() -> PeriodAcc:
    return PeriodAcc(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1


def _add_acc(into: PeriodAcc, other: PeriodAcc) -> None:
    for f in fields(PeriodAcc):
        cap = _U32_MAX if PeriodAcc.FIELDS[f.name] is U32 else _U64_MAX
        setattr(into, f.name, min(cap, getattr(into, f.name) + getattr(other, f.name)))


@dataclass
class KpiRecord(Record):
    """A closed period of a twin (``twins`` = 1) or of a facility (its twins' sums)."""

    period: int
    twins: int
    facility: int | None
    sums: PeriodAcc
    total_units: int
    availability_ppm: int
    performance_ppm: int
    quality_ppm: int
    oee_ppm: int
    utilization_ppm: int
    mtbf_s: int | None
    mttr_ms: int | None
    energy_per_good_mwh: int | None
    FIELDS: ClassVar = {
        "period": U64,
        "twins": U32,
        "facility": Option(FacilityId),
        "sums": PeriodAcc.wire_type(),
        "total_units": U64,
        "availability_ppm": U64,
        "performance_ppm": U64,
        "quality_ppm": U64,
        "oee_ppm": U64,
        "utilization_ppm": U64,
        "mtbf_s": Option(U64),
        "mttr_ms": Option(U64),
        "energy_per_good_mwh": Option(U64),
    }


# Figures of a report that are checked against the stored record.
KPI_FIGURES = (
    "availability_ppm",
    "performance_ppm",
    "quality_ppm",
    "oee_ppm",
    "utilization_ppm",
    "mtbf_s",
    "mttr_ms",
    "energy_per_good_mwh",
    "total_units",
)


def compute_kpis(period: int, twins: int, facility: int | None, s: PeriodAcc) -> KpiRecord:
    """The KPI formulas of the module docstring, applied to one period's sums."""
    total = max(s.units, s.good + s.bad)
    planned = s.planned_s
    availability = (planned - min(s.down_s, planned)) * PPM // planned if planned else 0
    performance = total * 1000 * PPM // s.ideal_milli if s.ideal_milli else 0
    quality = min(s.good, total) * PPM // total if total else 0
    oee = availability * min(performance, PPM) * quality // (PPM * PPM)
    utilization = s.run_s * PPM // s.calendar_s if s.calendar_s else 0
    return KpiRecord(
        period=period,
        twins=twins,
        facility=facility,
        sums=s,
        total_units=total,
        availability_ppm=min(availability, _U64_MAX),
        performance_ppm=min(performance, _U64_MAX),
        quality_ppm=quality,
        oee_ppm=oee,
        utilization_ppm=min(utilization, _U64_MAX),
        mtbf_s=s.run_s // s.failures if s.failures else None,
        mttr_ms=s.repair_ms // s.repairs if s.repairs else None,
        energy_per_good_mwh=min(s.energy_wh * 1000 // s.good, _U64_MAX) if s.good else None,
    )


@dataclass
class Cursor(Record):
    """A twin's open period (receiving data) and its last closed one."""

    open: int | None
    last_closed: int | None
    first: int
    FIELDS: ClassVar = {"open": Option(U64), "last_closed": Option(U64), "first": U64}


@dataclass
class Baseline(Record):
    """A twin's own reference: means over its first ``baseline_periods`` productive periods."""

    periods: int
    oee_sum: int
    epu_sum: int
    epu_periods: int
    until: int
    established: bool
    oee_ppm: int
    energy_per_good_mwh: int | None
    FIELDS: ClassVar = {
        "periods": U32,
        "oee_sum": U64,
        "epu_sum": U64,
        "epu_periods": U32,
        "until": U64,
        "established": Bool,
        "oee_ppm": U64,
        "energy_per_good_mwh": Option(U64),
    }


@dataclass
class RewardRules(Record):
    improvement_reward: int
    improvement_periods: int
    baseline_periods: int
    min_improvement_bp: int
    data_reward_per_window: int
    max_windows_per_period: int
    FIELDS: ClassVar = {
        "improvement_reward": U128,
        "improvement_periods": U32,
        "baseline_periods": U32,
        "min_improvement_bp": U16,
        "data_reward_per_window": U128,
        "max_windows_per_period": U32,
    }

    def valid(self) -> bool:
        return (
            1 <= self.improvement_periods <= MAX_CLAIM_PERIODS
            and 1 <= self.baseline_periods <= MAX_CLAIM_PERIODS
            and 0 < self.min_improvement_bp < BP
        )


DEFAULT_RULES = RewardRules(
    improvement_reward=100 * 10**12,
    improvement_periods=3,
    baseline_periods=3,
    min_improvement_bp=200,
    data_reward_per_window=10**10,
    max_windows_per_period=1_000,
)


@dataclass
class Report(Record):
    scope: tuple[str, int]
    period: int
    figures: list[tuple[str, int]]
    report_hash: bytes
    by: bytes
    block: int
    at: int
    FIELDS: ClassVar = {
        "scope": Scope,
        "period": U64,
        "figures": Figures,
        "report_hash": H256,
        "by": AccountId,
        "block": U64,
        "at": U64,
    }


@dataclass
class Reward(Record):
    kind: str
    twin: int
    from_period: int
    to_period: int
    amount: int
    beneficiary: bytes
    block: int
    FIELDS: ClassVar = {
        "kind": RewardKind,
        "twin": TwinId,
        "from_period": U64,
        "to_period": U64,
        "amount": U128,
        "beneficiary": AccountId,
        "block": U64,
    }


class Analytics(Pallet):
    name = "Analytics"

    PeriodMs = StorageValue(U64, DEFAULT_PERIOD_MS, doc="Length of a KPI period.")
    CloseGraceMs = StorageValue(U64, 0, doc="Wait after a period's end before closing it.")
    Rules = StorageValue(RewardRules.wire_type(), doc="Reward rules.")
    IdealRate = StorageMap(TwinId, U64, doc="Owner-set ideal rate, units per hour x 1000.")
    PlannedTime = StorageMap(TwinId, U64, doc="Owner-set planned production ms per period.")
    Cursors = StorageMap(TwinId, Cursor.wire_type(), doc="Open and last closed period per twin.")
    Acc = StorageDoubleMap(TwinId, U64, PeriodAcc.wire_type(), doc="Sums of open periods.")
    Kpis = StorageDoubleMap(TwinId, U64, KpiRecord.wire_type(), doc="Closed periods per twin.")
    FacilityKpis = StorageDoubleMap(
        FacilityId, U64, KpiRecord.wire_type(), doc="Closed periods per facility (sums of twins)."
    )
    Due = StorageDoubleMap(U64, TwinId, U64, doc="Open periods to close: (key, twin) -> period.")
    DuePeriods = StorageValue(Vec(U64, MAX_DUE_PERIODS), [], doc="Keys of Due, sorted.")
    Baselines = StorageMap(TwinId, Baseline.wire_type(), doc="Each twin's own baseline.")
    ImprovementClaimed = StorageDoubleMap(TwinId, U64, U64, doc="Claimed period -> reward id.")
    LastImprovementClaim = StorageMap(TwinId, U64, doc="Latest period of an improvement claim.")
    DataClaimedUpTo = StorageMap(TwinId, U64, doc="Data rewards are paid up to this period.")
    NextReportId = StorageValue(U64, 0, doc="Id of the next report.")
    Reports = StorageMap(U64, Report.wire_type(), doc="Anchored reports.")
    ReportsByScope = StorageDoubleMap(Scope, U64, H256, doc="Report ids per scope -> hash.")
    ReportByHash = StorageDoubleMap(Scope, H256, U64, doc="Report id per scope and hash.")
    NextRewardId = StorageValue(U64, 0, doc="Id of the next reward.")
    Rewards = StorageMap(U64, Reward.wire_type(), doc="Rewards paid.")
    RewardsOf = StorageDoubleMap(AccountId, U64, U128, doc="Reward ids per beneficiary.")
    TotalRewarded = StorageValue(U128, 0, doc="Everything the treasury paid out.")

    class Event(PalletEvents):
        PeriodClosed = (
            ("twin", TwinId),
            ("period", U64),
            ("oee_ppm", U64),
            ("facility", Option(FacilityId)),
        )
        BaselineEstablished = (("twin", TwinId), ("oee_ppm", U64), ("until", U64))
        IdealRateSet = (("twin", TwinId), ("units_per_hour_milli", Option(U64)))
        PlannedTimeSet = (("twin", TwinId), ("planned_ms", Option(U64)))
        ReportAnchored = (("id", U64), ("scope", Scope), ("period", U64), ("hash", H256))
        ImprovementRewarded = (
            ("twin", TwinId),
            ("period", U64),
            ("beneficiary", AccountId),
            ("amount", U128),
        )
        DataRewarded = (
            ("twin", TwinId),
            ("from", U64),
            ("to", U64),
            ("windows", U64),
            ("beneficiary", AccountId),
            ("amount", U128),
        )
        RulesUpdated = ()

    class Error(PalletErrors):
        UnknownTwin = "no twin with this id"
        UnknownFacility = "no facility with this id"
        NoPermission = "the sender is neither the owner nor an OPERATE delegate of the twin"
        NotFacilityOperator = "the sender is not the operator of the facility"
        InvalidPlannedTime = "planned time must be at most the period length"
        PeriodNotClosed = "the period is not closed (no KPI record)"
        FigureMismatch = "a KPI figure differs from the stored record"
        DuplicateFigure = "a figure name appears twice"
        DuplicateReport = "this report hash is anchored already for this scope"
        NoBaseline = "the twin's baseline is not established yet"
        NoImprovement = "the periods do not beat the baseline by the minimum improvement"
        AlreadyClaimed = "this period (or a later one) was claimed already"
        OverlapsClaim = "the claimed periods overlap a previous claim"
        NothingToClaim = "no valid telemetry windows to reward"
        TooManyPeriods = "claim at most MAX_CLAIM_PERIODS periods at once"
        TreasuryEmpty = "the treasury cannot pay this reward"
        InvalidRules = "periods must be 1..64 and min_improvement_bp 1..9999"
        Overflow = "too many reports or rewards"

    # ------------------------------------------------------------------ helpers
    def _twin(self, twin: int) -> Any:
        t = self.runtime.equipment.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        return t

    def _ensure_operate(self, who: bytes, twin: int) -> Any:
        t = self._twin(twin)
        if not self.runtime.equipment.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        return t

    def ideal_rate(self, twin: int) -> int:
        """Units per hour x 1000: owner-set, else the spec's rated metric 7, else 0."""
        rate: int | None = self.IdealRate.get(twin)
        if rate is not None:
            return rate
        spec = self.runtime.equipment.spec(twin)
        for metric, value in spec.rated if spec is not None else []:
            if metric == M_UNITS:
                return max(0, value) * 1000
        return 0

    def planned_ms(self, twin: int) -> int:
        pm: int = self.PeriodMs.get()
        planned: int | None = self.PlannedTime.get(twin)
        return pm if planned is None else planned

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=W_SMALL,
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

    @call(1, weight=W_SMALL, origin=SIGNED, args=(("twin", TwinId), ("planned_ms", Option(U64))))
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

    @call(
        2,
        weight=W_REPORT,
        origin=SIGNED,
        args=(("scope", Scope), ("period", U64), ("figures", Figures), ("report_hash", H256)),
    )
    def anchor_report(
        self,
        origin: Origin,
        scope: tuple[str, int],
        period: int,
        figures: list[tuple[str, int]],
        report_hash: bytes,
    ) -> None:
        """Anchor a periodic report's hash with its figures (twin: owner, OPERATE delegate or
        facility operator; facility: its operator); KPI-named figures must match the chain."""
        who = ensure_signed(origin)
        kind, sid = scope
        if kind == "Twin":
            t = self._twin(sid)
            if not self.runtime.equipment.has_right(sid, who, OPERATE, t) and not (
                t.facility is not None and self._is_operator(who, t.facility)
            ):
                raise self.Error.NoPermission()
            rec: KpiRecord | None = self.Kpis.get(sid, period)
        else:
            if sid > _U32_MAX or self.runtime.facility.facility(sid) is None:
                raise self.Error.UnknownFacility()
            if not self._is_operator(who, sid):
                raise self.Error.NotFacilityOperator()
            rec = self.FacilityKpis.get(sid, period)
        if rec is None:
            raise self.Error.PeriodNotClosed()
        names = [n for n, _ in figures]
        if len(set(names)) != len(names):
            raise self.Error.DuplicateFigure()
        for name, value in figures:
            if name in KPI_FIGURES and getattr(rec, name) != value:
                raise self.Error.FigureMismatch(name)
        if self.ReportByHash.contains((kind, sid), report_hash):
            raise self.Error.DuplicateReport()
        rid = self.NextReportId.get()
        if rid >= U64.max:
            raise self.Error.Overflow()
        self.NextReportId.put(rid + 1)
        report = Report(
            (kind, sid), period, figures, report_hash, who, self.runtime.block.number, self._now()
        )
        self.Reports.insert(rid, report)
        self.ReportsByScope.insert((kind, sid), rid, report_hash)
        self.ReportByHash.insert((kind, sid), report_hash, rid)
        self.deposit(self.Event.ReportAnchored(rid, (kind, sid), period, report_hash))

    def _is_operator(self, who: bytes, facility: int) -> bool:
        f = self.runtime.facility.facility(facility)
        return (
            f is not None and f.operator == who and self.runtime.roles.has(who, FACILITY_OPERATOR)
        )

    @call(
        3,
        weight=lambda rt, twin, period: W_CLAIM + W_CLAIM_PER_PERIOD * MAX_CLAIM_PERIODS,
        origin=SIGNED,
        args=(("twin", TwinId), ("period", U64)),
    )
    def claim_improvement_reward(self, origin: Origin, twin: int, period: int) -> None:
        """Claim the improvement reward for the M periods ending at ``period`` (owner or
        OPERATE delegate; paid to the owner)."""
        who = ensure_signed(origin)
        t = self._ensure_operate(who, twin)
        rules: RewardRules = self.Rules.get()
        if self.Kpis.get(twin, period) is None:
            raise self.Error.PeriodNotClosed()
        if self.ImprovementClaimed.contains(twin, period):
            raise self.Error.AlreadyClaimed()
        m = rules.improvement_periods
        first = period - m + 1
        if first < 0:
            raise self.Error.NoImprovement(f"fewer than {m} periods up to {period}")
        last_claim: int | None = self.LastImprovementClaim.get(twin)
        if last_claim is not None and first <= last_claim:
            raise self.Error.OverlapsClaim()
        base: Baseline | None = self.Baselines.get(twin)
        if base is None or not base.established:
            raise self.Error.NoBaseline()
        if first <= base.until:
            raise self.Error.NoImprovement("the periods overlap the baseline")
        recs = []
        for p in range(first, period + 1):
            r: KpiRecord | None = self.Kpis.get(twin, p)
            if r is None or r.total_units == 0:
                raise self.Error.NoImprovement(f"period {p} is not closed or produced nothing")
            recs.append(r)
        bp = rules.min_improvement_bp
        oee_better = base.oee_ppm > 0 and all(
            r.oee_ppm * BP >= base.oee_ppm * (BP + bp) for r in recs
        )
        epu_base = base.energy_per_good_mwh
        epu_better = bool(epu_base) and all(
            r.energy_per_good_mwh is not None and r.energy_per_good_mwh * BP <= epu_base * (BP - bp)  # type: ignore[operator]
            for r in recs
        )
        if not oee_better and not epu_better:
            raise self.Error.NoImprovement()
        rid = self._pay("Improvement", twin, first, period, rules.improvement_reward, t.owner)
        self.ImprovementClaimed.insert(twin, period, rid)
        self.LastImprovementClaim.insert(twin, period)
        self.deposit(
            self.Event.ImprovementRewarded(twin, period, t.owner, rules.improvement_reward)
        )

    @call(
        4,
        weight=lambda rt, twin, up_to: W_CLAIM + W_CLAIM_PER_PERIOD * MAX_CLAIM_PERIODS,
        origin=SIGNED,
        args=(("twin", TwinId), ("up_to_period", U64)),
    )
    def claim_data_reward(self, origin: Origin, twin: int, up_to_period: int) -> None:
        """Claim the data-contribution reward for the valid telemetry windows of the closed
        periods after the last data claim, up to ``up_to_period`` (owner or OPERATE
        delegate; paid to the owner)."""
        who = ensure_signed(origin)
        t = self._ensure_operate(who, twin)
        rules: RewardRules = self.Rules.get()
        cur: Cursor | None = self.Cursors.get(twin)
        if cur is None or cur.last_closed is None:
            raise self.Error.NothingToClaim("no closed period")
        claimed: int | None = self.DataClaimedUpTo.get(twin)
        start = cur.first if claimed is None else claimed + 1
        if claimed is not None and up_to_period <= claimed:
            raise self.Error.AlreadyClaimed()
        if up_to_period > cur.last_closed:
            raise self.Error.PeriodNotClosed()
        if up_to_period < start:
            raise self.Error.NothingToClaim()
        if up_to_period - start + 1 > MAX_CLAIM_PERIODS:
            raise self.Error.TooManyPeriods(f"claim up to {start + MAX_CLAIM_PERIODS - 1}")
        windows = 0
        for p in range(start, up_to_period + 1):
            r: KpiRecord | None = self.Kpis.get(twin, p)
            if r is not None:
                windows += min(r.sums.valid_windows, rules.max_windows_per_period)
        amount = windows * rules.data_reward_per_window
        if amount == 0:
            raise self.Error.NothingToClaim()
        self._pay("Data", twin, start, up_to_period, amount, t.owner)
        self.DataClaimedUpTo.insert(twin, up_to_period)
        self.deposit(self.Event.DataRewarded(twin, start, up_to_period, windows, t.owner, amount))

    @call(5, weight=W_SMALL, origin=ROOT, args=(("rules", RewardRules.wire_type()),))
    def set_reward_rules(self, origin: Origin, rules: RewardRules) -> None:
        """Replace the reward rules (root: governance)."""
        ensure_root(origin)
        if not rules.valid():
            raise self.Error.InvalidRules()
        self.Rules.put(rules)
        self.deposit(self.Event.RulesUpdated())

    def _pay(self, kind: str, twin: int, first: int, last: int, amount: int, to: bytes) -> int:
        treasury = treasury_account()
        bal = self.runtime.balances
        if amount > U128.max or bal.free_balance(treasury) < amount + EXISTENTIAL_DEPOSIT:
            raise self.Error.TreasuryEmpty()
        bal.do_transfer(treasury, to, amount, keep_alive=True)
        rid = self.NextRewardId.get()
        if rid >= U64.max:
            raise self.Error.Overflow()
        self.NextRewardId.put(rid + 1)
        self.Rewards.insert(
            rid, Reward(kind, twin, first, last, amount, to, self.runtime.block.number)
        )
        self.RewardsOf.insert(to, rid, amount)
        self.TotalRewarded.put(min(U128.max, self.TotalRewarded.get() + amount))
        return int(rid)

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
        acc.ideal_milli = min(_U64_MAX, self.ideal_rate(twin) * acc.run_s // 3600)
        t = self.runtime.equipment.twin(twin)
        facility = None if t is None else t.facility
        rec = compute_kpis(period, 1, facility, acc)
        self.Kpis.insert(twin, period, rec)
        self.Due.remove(period, twin)
        cur.open, cur.last_closed = None, period
        self.Cursors.insert(twin, cur)
        if facility is not None:
            f: KpiRecord | None = self.FacilityKpis.get(facility, period)
            sums = empty_acc() if f is None else f.sums
            _add_acc(sums, acc)
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
            b.epu_sum = min(_U64_MAX, b.epu_sum + rec.energy_per_good_mwh)
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
            return 0 if a is None else max(0, min(_U64_MAX, a.sum))

        valid = all(a.flagged == 0 for a in aggs.values())

        def add(acc: PeriodAcc) -> None:
            acc.run_s = min(_U64_MAX, acc.run_s + total(M_RUN))
            acc.down_s = min(_U64_MAX, acc.down_s + total(M_DOWN))
            acc.units = min(_U64_MAX, acc.units + total(M_UNITS))
            acc.good = min(_U64_MAX, acc.good + total(M_GOOD))
            acc.bad = min(_U64_MAX, acc.bad + total(M_BAD))
            acc.energy_wh = min(_U64_MAX, acc.energy_wh + total(M_ENERGY))
            acc.windows = min(_U32_MAX, acc.windows + 1)
            acc.valid_windows = min(_U32_MAX, acc.valid_windows + int(valid))

        self._add(twin, period, add)

    def on_initialize(self, number: int) -> int:
        """Close periods whose end (plus grace) has passed: at most MAX_CLOSE_PER_BLOCK."""
        keys: list[int] = self.DuePeriods.get()
        if not keys:
            return W_INIT
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
        return W_INIT + W_SWEEP * (swept + visited) + W_CLOSE * closed

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``period_ms`` (default 86_400_000), ``close_grace_ms`` (default: two telemetry
        windows), ``treasury`` (minted into the treasury account), ``rewards``: {
        improvement_reward, improvement_periods, baseline_periods, min_improvement_bp,
        data_reward_per_window, max_windows_per_period} (missing keys: defaults),
        ``ideal_rates``: [[twin, units_per_hour_milli]], ``planned``: [[twin, planned_ms]]."""
        pm = int(config.get("period_ms", DEFAULT_PERIOD_MS))
        if pm < 1000:
            raise ValueError("analytics period_ms must be at least 1000")
        self.PeriodMs.put(pm)
        grace = config.get("close_grace_ms")
        if grace is None:
            grace = 2 * self.runtime.telemetry.WindowMs.get()
        self.CloseGraceMs.put(int(grace))
        r = dict(config.get("rewards", {}))
        unknown = set(r) - {f.name for f in fields(RewardRules)}
        if unknown:
            raise ValueError(f"unknown analytics reward rules: {sorted(unknown)}")
        rules = RewardRules(
            **{
                f.name: int(r.get(f.name, getattr(DEFAULT_RULES, f.name)))
                for f in fields(RewardRules)
            }
        )
        if not rules.valid():
            raise ValueError("analytics reward rules out of range")
        self.Rules.put(rules)
        treasury = int(config.get("treasury", 0))
        if treasury:
            if treasury < EXISTENTIAL_DEPOSIT:
                raise ValueError("analytics treasury below the existential deposit")
            self.runtime.balances.mint(treasury_account(), treasury)
        for twin, rate in config.get("ideal_rates", []):
            self.IdealRate.insert(int(twin), int(rate))
        for twin, planned in config.get("planned", []):
            if int(planned) > pm:
                raise ValueError("analytics planned time above the period length")
            self.PlannedTime.insert(int(twin), int(planned))

    # ------------------------------------------------------------------ API
    def note_failure(self, twin: int, at_ms: int) -> None:
        """A failure of the twin (Maintenance: a corrective work order from an alert)."""
        cur: Cursor | None = self.Cursors.get(twin)
        period = cur.open if cur is not None and cur.open is not None else None
        if period is None:
            _, period = self._target(twin, at_ms)

        def add(acc: PeriodAcc) -> None:
            acc.failures = min(_U32_MAX, acc.failures + 1)

        self._add(twin, period, add)

    def note_repair(self, twin: int, start_ms: int, end_ms: int) -> None:
        """A verified repair of the twin lasting ``end_ms - start_ms`` (for MTTR)."""
        cur: Cursor | None = self.Cursors.get(twin)
        period = cur.open if cur is not None and cur.open is not None else None
        if period is None:
            _, period = self._target(twin, end_ms)

        def add(acc: PeriodAcc) -> None:
            acc.repairs = min(_U32_MAX, acc.repairs + 1)
            acc.repair_ms = min(_U64_MAX, acc.repair_ms + max(0, end_ms - start_ms))

        self._add(twin, period, add)

    def kpis(self, twin: int, period: int) -> KpiRecord | None:
        return self.Kpis.get(twin, period)  # type: ignore[no-any-return]

    def latest_kpis(self, twin: int) -> KpiRecord | None:
        cur: Cursor | None = self.Cursors.get(twin)
        if cur is None or cur.last_closed is None:
            return None
        return self.Kpis.get(twin, cur.last_closed)  # type: ignore[no-any-return]

    def constants(self) -> dict[str, Any]:
        return {
            "Treasury": "0x" + treasury_account().hex(),
            "MaxClosePerBlock": MAX_CLOSE_PER_BLOCK,
            "MaxClaimPeriods": MAX_CLAIM_PERIODS,
            "KpiScale": PPM,
            "KpiFigures": list(KPI_FIGURES),
        }
