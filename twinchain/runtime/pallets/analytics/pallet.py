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

from dataclasses import fields
from typing import Any

from twinchain.primitives.codec import H256, U64, U128, AccountId, Option, Vec
from twinchain.runtime.framework import (
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
)
from twinchain.runtime.pallets.analytics.config import Config
from twinchain.runtime.pallets.analytics.features.periods import PeriodsFeature
from twinchain.runtime.pallets.analytics.features.reports import ReportsFeature
from twinchain.runtime.pallets.analytics.features.rewards import RewardsFeature
from twinchain.runtime.pallets.analytics.types import (
    DEFAULT_PERIOD_MS,
    DEFAULT_RULES,
    KPI_FIGURES,
    MAX_CLAIM_PERIODS,
    MAX_CLOSE_PER_BLOCK,
    MAX_DUE_PERIODS,
    PPM,
    Baseline,
    Cursor,
    KpiRecord,
    PeriodAcc,
    Report,
    Reward,
    RewardRules,
    Scope,
    treasury_account,
)
from twinchain.runtime.pallets.balances import EXISTENTIAL_DEPOSIT
from twinchain.runtime.pallets.equipment.types import OPERATE, TwinId, TwinInfo
from twinchain.runtime.pallets.facility.types import FacilityId
from twinchain.runtime.pallets.support import found


class Analytics(PeriodsFeature, ReportsFeature, RewardsFeature, Pallet):
    name = "Analytics"
    config: Config

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
    def _twin(self, twin: int) -> TwinInfo:
        return found(self.config.twins.twin(twin), self.Error.UnknownTwin)

    def _ensure_operate(self, who: bytes, twin: int) -> TwinInfo:
        t = self._twin(twin)
        if not self.config.twins.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        return t

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
            grace = 2 * self.config.telemetry.window_ms()
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
            self.config.currency.mint(treasury_account(), treasury)
        for twin, rate in config.get("ideal_rates", []):
            self.IdealRate.insert(int(twin), int(rate))
        for twin, planned in config.get("planned", []):
            if int(planned) > pm:
                raise ValueError("analytics planned time above the period length")
            self.PlannedTime.insert(int(twin), int(planned))

    # ------------------------------------------------------------------ metadata
    def constants(self) -> dict[str, Any]:
        return {
            "Treasury": "0x" + treasury_account().hex(),
            "MaxClosePerBlock": MAX_CLOSE_PER_BLOCK,
            "MaxClaimPeriods": MAX_CLAIM_PERIODS,
            "KpiScale": PPM,
            "KpiFigures": list(KPI_FIGURES),
        }
