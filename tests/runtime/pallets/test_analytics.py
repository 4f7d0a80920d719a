"""Analytics: KPI periods against hand-computed values, period closing, facility sums,
reports, treasury rewards (no double claim, no claim without improvement) and the
permission matrix of every call."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.analytics.types import (
    DEFAULT_RULES,
    KPI_FIGURES,
    PPM,
    RewardRules,
    compute_kpis,
    treasury_account,
)
from twinchain.runtime.pallets.balances import EXISTENTIAL_DEPOSIT
from twinchain.runtime.pallets.equipment.types import OPERATE, READ_TELEMETRY
from twinchain.runtime.pallets.telemetry import Aggregate

MAKER, OWNER, OWNER2, OP, DELEGATE, READER, NOBODY = (
    Keypair.from_dev_name(n)
    for n in ("Maker", "Owner", "Owner2", "Operator", "Delegate", "Reader", "Nobody")
)
GW = Keypair.from_dev_name("Bob")
DEV = Keypair.from_dev_name("Device1")
UNIT = 10**12
HOUR = 3_600_000
WINDOW = 600_000
FAR = 10**13
TREASURY = 10_000 * UNIT
H1, H2 = b"\x01" * 32, b"\x02" * 32
ENERGY, UNITS, GOOD, BAD, RUN, DOWN, TEMP = 5, 7, 8, 9, 11, 12, 1
RULES = {
    "improvement_reward": 50 * UNIT,
    "improvement_periods": 2,
    "baseline_periods": 2,
    "min_improvement_bp": 500,  # 5 %
    "data_reward_per_window": UNIT,
    "max_windows_per_period": 4,
}


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world(**analytics: Any) -> dict[str, Any]:
    twin = {"manufacturer": "//Maker", "owner": "//Owner", "class": "cnc_mill", "model": "M"}
    return {
        "balances": {
            "balances": [[f"//{n}", 1_000 * UNIT] for n in ("Alice", "Bob", "Owner", "Operator")]
        },
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Owner2", "EquipmentOwner"],
                ["//Operator", "FacilityOperator"],
                ["//Bob", "Gateway"],
            ]
        },
        "facility": {
            "facilities": [{"operator": "//Operator", "name": "Plant", "verified_until": FAR}]
        },
        "equipment": {
            "twins": [
                # 60 units per hour rated: the default ideal rate.
                twin | {"serial": "A", "lifecycle": "Active", "facility": 0, "rated": [[7, 60]]},
                twin | {"serial": "B", "lifecycle": "Active", "facility": 0, "rated": [[7, 120]]},
                twin | {"serial": "C", "owner": "//Owner2", "lifecycle": "Active"},
            ]
        },
        "telemetry": {"window_ms": WINDOW, "devices": [{"device": "//Device1", "twin": 0}]},
        "analytics": {"period_ms": HOUR, "treasury": TREASURY, "rewards": RULES} | analytics,
    }


@pytest.fixture
def chain(make_chain: Any) -> Any:
    return make_chain(extra=world())


@pytest.fixture
def blk(chain: Any) -> Any:
    chain.start_block(100)
    return chain


def agg(value: int, flagged: int = 0) -> Aggregate:
    return Aggregate(1, value, value, value, value, 0, flagged)


def feed(
    chain: Any,
    twin: int,
    start: int,
    *,
    run: int = 0,
    down: int = 0,
    units: int = 0,
    good: int = 0,
    bad: int = 0,
    energy: int = 0,
    flagged: int = 0,
) -> None:
    """One closed window through the real hook (as Telemetry.close_window calls it)."""
    aggs = {
        m: agg(v)
        for m, v in ((RUN, run), (DOWN, down), (UNITS, units), (GOOD, good), (BAD, bad),
                     (ENERGY, energy))
        if v
    }  # fmt: skip
    aggs[TEMP] = agg(40_000, flagged)
    chain.rt.analytics.on_window_closed(twin, start, WINDOW, aggs)


def close(chain: Any, twin: int, period: int) -> Any:
    """Close ``period`` by a window of the next period; return its KPI record."""
    feed(chain, twin, (period + 1) * HOUR)
    return chain.rt.analytics.kpis(twin, period)


# --------------------------------------------------------------------------- KPIs by hand


def test_kpis_normal_period_by_hand(blk: Any) -> None:
    an = blk.rt.analytics
    # Period 0 in six windows: 3000 s running, 600 s down, 40 units (38 good, 2 scrap).
    feed(blk, 0, 0, run=1000, down=600, units=15, good=14, bad=1, energy=700)
    feed(blk, 0, WINDOW, run=1000, units=15, good=14, bad=1, energy=700)
    feed(blk, 0, 2 * WINDOW, run=1000, units=10, good=10, energy=600)
    an.note_failure(0, 1_000_000)
    an.note_failure(0, 2_000_000)
    an.note_repair(0, 1_000_000, 1_900_000)  # 900 s
    an.note_repair(0, 2_000_000, 2_300_000)  # 300 s
    assert an.kpis(0, 0) is None  # still open
    k = close(blk, 0, 0)
    s = k.sums
    assert (s.run_s, s.down_s, s.units, s.good, s.bad, s.energy_wh) == (3000, 600, 40, 38, 2, 2000)
    assert (s.planned_s, s.calendar_s, s.windows, s.valid_windows) == (3600, 3600, 3, 3)
    assert (s.failures, s.repairs, s.repair_ms) == (2, 2, 1_200_000)
    # ideal: 60 units/h x 3000 s = 50 units = 50_000 milli-units.
    assert s.ideal_milli == 50_000
    assert k.availability_ppm == 833_333  # (3600 - 600) / 3600
    assert k.performance_ppm == 800_000  # 40 / 50
    assert k.quality_ppm == 950_000  # 38 / 40
    assert k.oee_ppm == 633_333  # 833_333 * 800_000 * 950_000 // 1e12
    assert k.utilization_ppm == 833_333  # 3000 / 3600
    assert k.mtbf_s == 1500  # 3000 s / 2 failures
    assert k.mttr_ms == 600_000  # 1_200_000 ms / 2 repairs
    assert k.energy_per_good_mwh == 52_631  # 2000 Wh * 1000 // 38
    assert (k.total_units, k.twins, k.facility) == (40, 1, 0)
    assert an.latest_kpis(0) == k


def test_kpis_zero_downtime(blk: Any) -> None:
    feed(blk, 0, 0, run=3600, units=60, good=60, energy=1200)
    k = close(blk, 0, 0)
    assert (k.availability_ppm, k.performance_ppm, k.quality_ppm, k.oee_ppm) == (PPM,) * 4
    assert (k.utilization_ppm, k.mtbf_s, k.mttr_ms, k.energy_per_good_mwh) == (
        PPM,
        None,
        None,
        20_000,
    )


def test_kpis_zero_production(blk: Any) -> None:
    feed(blk, 0, 0, down=3600)
    blk.rt.analytics.note_failure(0, 10)
    k = close(blk, 0, 0)
    assert (k.availability_ppm, k.performance_ppm, k.quality_ppm, k.oee_ppm) == (0, 0, 0, 0)
    assert (k.total_units, k.utilization_ppm, k.energy_per_good_mwh) == (0, 0, None)
    assert k.mtbf_s == 0  # no running time before the failure


def test_kpis_all_scrap(blk: Any) -> None:
    feed(blk, 0, 0, run=1800, units=30, bad=30, energy=900)
    k = close(blk, 0, 0)
    # ideal 60/h x 1800 s = 30 units: performance 100 %, quality 0 -> OEE 0.
    assert (k.availability_ppm, k.performance_ppm, k.quality_ppm, k.oee_ppm) == (PPM, PPM, 0, 0)
    assert k.energy_per_good_mwh is None and k.utilization_ppm == 500_000


def test_kpis_owner_rate_planned_time_and_overspeed(blk: Any) -> None:
    blk.dispatch(signed(OWNER), "Analytics", "set_ideal_rate", 0, 30_000)  # 30 units/h
    blk.dispatch(signed(OWNER), "Analytics", "set_planned_time", 0, 1_800_000)  # half an hour
    feed(blk, 0, 0, run=1800, down=900, units=20, good=20)
    k = close(blk, 0, 0)
    assert k.sums.planned_s == 1800 and k.sums.ideal_milli == 15_000
    assert k.availability_ppm == 500_000  # (1800 - 900) / 1800
    assert k.performance_ppm == 1_333_333  # 20 / 15: reported as is...
    assert k.oee_ppm == 500_000  # ...but counts as 100 % in OEE
    blk.dispatch(signed(OWNER), "Analytics", "set_planned_time", 0, 0)
    feed(blk, 0, HOUR, run=10, units=1, good=1)
    assert close(blk, 0, 1).availability_ppm == 0  # nothing planned: defined as 0


def test_compute_kpis_never_divides_by_zero() -> None:
    from twinchain.runtime.pallets.analytics.types import empty_acc

    k = compute_kpis(7, 1, None, empty_acc())
    assert (k.availability_ppm, k.performance_ppm, k.quality_ppm, k.oee_ppm) == (0, 0, 0, 0)
    assert (k.utilization_ppm, k.mtbf_s, k.mttr_ms, k.energy_per_good_mwh) == (0, None, None, None)


def test_total_is_the_larger_of_counted_and_good_plus_bad(blk: Any) -> None:
    feed(blk, 0, 0, run=3600, good=45, bad=5)  # units_produced not reported
    assert close(blk, 0, 0).total_units == 50


def test_facility_kpis_sum_its_twins(blk: Any) -> None:
    feed(blk, 0, 0, run=3000, down=600, units=40, good=38, bad=2, energy=2000)
    feed(blk, 1, 0, run=3600, units=100, good=90, bad=10, energy=3000)
    feed(blk, 2, 0, run=3600, units=999, good=999)  # no facility: not in the sums
    for t in (0, 1, 2):
        close(blk, t, 0)
    f = blk.rt.analytics.FacilityKpis.get(0, 0)
    s = f.sums
    assert (f.twins, s.run_s, s.down_s, s.units, s.good, s.energy_wh) == (
        2,
        6600,
        600,
        140,
        128,
        5000,
    )
    assert (s.planned_s, s.calendar_s) == (7200, 7200)
    # ideal: 50 units (twin 0) + 120 units (twin 1) = 170_000 milli-units.
    assert s.ideal_milli == 170_000
    assert f.availability_ppm == 916_666  # (7200 - 600) / 7200
    assert f.performance_ppm == 823_529  # 140 / 170
    assert f.quality_ppm == 914_285  # 128 / 140
    assert f.oee_ppm == 916_666 * 823_529 * 914_285 // 10**12 == 690_194
    assert f.energy_per_good_mwh == 39_062  # 5000 * 1000 // 128
    assert blk.rt.analytics.FacilityKpis.get(1, 0) is None


# --------------------------------------------------------------------------- periods


def test_data_for_a_closed_period_goes_to_the_open_one(blk: Any) -> None:
    an = blk.rt.analytics
    feed(blk, 0, 0, run=100)
    feed(blk, 0, HOUR, run=200)  # closes period 0
    feed(blk, 0, 0, run=50)  # a late window of period 0: counted in period 1
    assert an.kpis(0, 0).sums.run_s == 100
    assert an.Acc.get(0, 1).run_s == 250
    an.note_failure(0, 5)  # an old failure: the open period too
    assert an.Acc.get(0, 1).failures == 1
    cur = an.Cursors.get(0)
    assert (cur.open, cur.last_closed, cur.first) == (1, 0, 0)


def test_periods_close_in_on_initialize_after_grace(chain: Any) -> None:
    an = chain.rt.analytics
    chain.start_block(100)
    feed(chain, 0, 0, run=3600, units=60, good=60)
    chain.finish_block()
    assert an.DuePeriods.get() == [0]
    grace = an.CloseGraceMs.get()
    assert grace == 2 * WINDOW  # default: two telemetry windows
    # on_initialize sees the previous block's time: it must be at the end plus grace.
    deadline_slot = (HOUR + grace) // 1000
    chain.start_block(deadline_slot - 1)
    chain.finish_block()
    chain.start_block(deadline_slot)
    assert an.kpis(0, 0) is None  # saw one second before the deadline
    chain.finish_block()
    chain.start_block()
    assert an.kpis(0, 0).oee_ppm == PPM
    assert an.DuePeriods.get() == [] and an.Cursors.get(0).open is None
    chain.finish_block()
    [ev] = [e for e in chain.events() if e["event"] == "PeriodClosed"]
    assert ev["phase"] == "initialization"
    assert ev["args"] == {"twin": 0, "period": 0, "oee_ppm": PPM, "facility": 0}


def test_telemetry_window_close_feeds_analytics(chain: Any) -> None:
    """End to end: device-signed batches through Telemetry.submit close windows that reach
    the Analytics period, which on_initialize then closes."""
    an = chain.rt.analytics
    chain.start_block(700)
    readings = [(RUN, 100_000, 500), (UNITS, 100_000, 9), (GOOD, 200_000, 8), (BAD, 300_000, 1)]
    b0 = chain.commitment(DEV, 0, 0, readings)
    # Production metrics are private by default: no on-chain KPIs come of them.
    chain.dispatch(signed(GW), "Telemetry", "submit", [b0])
    chain.dispatch(
        signed(GW), "Telemetry", "submit", [chain.commitment(DEV, 0, 1, [(RUN, 650_000, 60)])]
    )
    chain.close_windows()
    assert an.Acc.get(0, 0) is None
    chain.finish_block()
    # Made public by the owner, they are counted from the next window on.
    chain.start_block(1_300)
    chain.make_public(0, RUN, UNITS, GOOD, BAD)
    readings = [(r[0], r[1] + WINDOW, r[2]) for r in readings]
    b0 = chain.commitment(DEV, 0, 2, readings)
    b1 = chain.commitment(DEV, 0, 3, [(RUN, 650_000 + WINDOW, 60)])  # closes window 1
    chain.dispatch(signed(GW), "Telemetry", "submit", [b0])
    chain.dispatch(signed(GW), "Telemetry", "submit", [b1])
    assert an.Acc.get(0, 0) is None  # the close is queued for the next block's start
    chain.close_windows()
    acc = an.Acc.get(0, 0)
    assert (acc.run_s, acc.units, acc.good, acc.bad, acc.windows, acc.valid_windows) == (
        500, 9, 8, 1, 1, 1
    )  # fmt: skip
    chain.finish_block()
    for slot in (5000, 5001):
        chain.start_block(slot)
        chain.finish_block()
    k = an.kpis(0, 0)
    assert (k.sums.run_s, k.total_units, k.quality_ppm) == (500, 9, 888_888)


# --------------------------------------------------------------------------- reports


def test_anchor_report_checks_kpi_figures(blk: Any) -> None:
    feed(blk, 0, 0, run=3600, units=60, good=60)
    k = close(blk, 0, 0)
    figs = [("oee_ppm", k.oee_ppm), ("scrap_cost_eur", 12)]
    evs = blk.dispatch(signed(OWNER), "Analytics", "anchor_report", ("Twin", 0), 0, figs, H1)
    assert blk.args(evs[-1]) == {"id": 0, "scope": ("Twin", 0), "period": 0, "hash": H1}
    r = blk.rt.analytics.Reports.get(0)
    assert (r.figures, r.by, r.report_hash) == (figs, OWNER.public, H1)
    cases = [
        ([("oee_ppm", k.oee_ppm - 1)], H2, 0, "FigureMismatch"),
        ([("mtbf_s", 5)], H2, 0, "FigureMismatch"),  # None on chain
        ([("a", 1), ("a", 2)], H2, 0, "DuplicateFigure"),
        (figs, H1, 0, "DuplicateReport"),
        (figs, H2, 1, "PeriodNotClosed"),
    ]
    for f, h, period, error in cases:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Analytics", "anchor_report", ("Twin", 0), period, f, h)
        assert err(e) == f"Analytics.{error}"
    assert blk.rt.analytics.NextReportId.get() == 1
    f = blk.rt.analytics.FacilityKpis.get(0, 0)
    blk.dispatch(
        signed(OP), "Analytics", "anchor_report", ("Facility", 0), 0, [("oee_ppm", f.oee_ppm)], H2
    )
    assert set(KPI_FIGURES) <= set(k.__dataclass_fields__)


# --------------------------------------------------------------------------- rewards


def good_period(chain: Any, p: int, good: int) -> None:
    """A period of twin 0 with 3600 s running, 60 units of which ``good`` good, 1 kWh."""
    feed(chain, 0, p * HOUR, run=3600, units=60, good=good, bad=60 - good, energy=1000)


def test_improvement_reward_once_and_only_with_improvement(blk: Any) -> None:
    an, treasury = blk.rt.analytics, treasury_account()
    assert blk.free(treasury) == TREASURY
    good_period(blk, 0, 40)
    good_period(blk, 1, 42)
    good_period(blk, 2, 43)  # closes period 1: baseline of periods 0, 1
    base = an.Baselines.get(0)
    assert base.established and base.until == 1
    assert base.oee_ppm == (666_666 + 700_000) // 2  # quality 40/60 and 42/60
    with pytest.raises(DispatchError) as e:  # period 2 still open
        blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, 2)
    assert err(e) == "Analytics.PeriodNotClosed"
    good_period(blk, 3, 50)
    good_period(blk, 4, 30)  # closes 3
    # Periods 2, 3: OEE 716_666 and 833_333 vs baseline 683_333: +4.9 % is below 5 %.
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, 3)
    assert err(e) == "Analytics.NoImprovement"
    good_period(blk, 5, 55)  # closes 4 (bad)
    good_period(blk, 6, 55)  # closes 5
    with pytest.raises(DispatchError) as e:  # 4 and 5: period 4 is worse
        blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, 5)
    assert err(e) == "Analytics.NoImprovement"
    good_period(blk, 7, 55)  # closes 6
    before = blk.free(OWNER.public)
    evs = blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, 6)
    assert blk.args(evs[-1]) == {
        "twin": 0, "period": 6, "beneficiary": OWNER.public, "amount": 50 * UNIT
    }  # fmt: skip
    assert blk.free(OWNER.public) == before + 50 * UNIT
    assert blk.free(treasury) == TREASURY - 50 * UNIT
    # Never twice: the same period, nor a window overlapping it.
    for period, error in [(6, "AlreadyClaimed"), (7, "PeriodNotClosed")]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, period)
        assert err(e) == f"Analytics.{error}"
    good_period(blk, 8, 55)  # closes 7
    with pytest.raises(DispatchError) as e:  # periods 6, 7: 6 is claimed already
        blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, 7)
    assert err(e) == "Analytics.OverlapsClaim"
    assert blk.free(treasury) == TREASURY - 50 * UNIT
    [(rid, amount)] = list(an.RewardsOf.iter_prefix(OWNER.public))
    assert amount == 50 * UNIT and an.Rewards.get(rid).kind == "Improvement"


def test_energy_improvement_counts_too(blk: Any) -> None:
    an = blk.rt.analytics
    for p in range(2):
        feed(blk, 0, p * HOUR, run=3600, units=60, good=50, bad=10, energy=1000)
    for p in range(2, 5):  # same OEE, 20 % less energy per good unit
        feed(blk, 0, p * HOUR, run=3600, units=60, good=50, bad=10, energy=800)
    base = an.Baselines.get(0)
    assert base.established and base.energy_per_good_mwh == 1000 * 1000 // 50
    for p in (2, 3):  # no better in OEE: only the energy improvement can pay
        k = an.kpis(0, p)
        assert k.oee_ppm == base.oee_ppm and k.energy_per_good_mwh == 800 * 1000 // 50
    before = blk.free(OWNER.public)
    evs = blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, 3)
    assert blk.args(evs[-1]) == {
        "twin": 0, "period": 3, "beneficiary": OWNER.public, "amount": 50 * UNIT
    }  # fmt: skip
    assert blk.free(OWNER.public) == before + 50 * UNIT
    assert an.LastImprovementClaim.get(0) == 3


def test_no_baseline_no_reward(blk: Any) -> None:
    feed(blk, 0, 0, down=3600)  # nothing produced: not part of the baseline
    good_period(blk, 1, 40)
    good_period(blk, 2, 60)  # closes period 1: one productive period of the two needed
    for period, error in [(1, "NoBaseline"), (0, "NoImprovement")]:  # 0: fewer than M periods
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Analytics", "claim_improvement_reward", 0, period)
        assert err(e) == f"Analytics.{error}"
    assert blk.rt.analytics.Baselines.get(0).periods == 1


def test_data_reward_per_valid_window_once(blk: Any) -> None:
    an = blk.rt.analytics
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Analytics", "claim_data_reward", 0, 0)
    assert err(e) == "Analytics.NothingToClaim"
    for i in range(3):
        feed(blk, 0, i * WINDOW, run=10)
    feed(blk, 0, 3 * WINDOW, run=10, flagged=1)  # a window with a flagged reading: not valid
    for i in range(6):  # six valid windows in period 1: capped at 4
        feed(blk, 0, HOUR + i * WINDOW, run=10)
    feed(blk, 0, 2 * HOUR)  # closes period 1
    assert an.kpis(0, 0).sums.valid_windows == 3 and an.kpis(0, 0).sums.windows == 4
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Analytics", "claim_data_reward", 0, 2)
    assert err(e) == "Analytics.PeriodNotClosed"
    before = blk.free(OWNER.public)
    evs = blk.dispatch(signed(OWNER), "Analytics", "claim_data_reward", 0, 1)
    assert blk.args(evs[-1])["windows"] == 3 + 4
    assert blk.free(OWNER.public) == before + 7 * UNIT
    for up_to in (0, 1):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Analytics", "claim_data_reward", 0, up_to)
        assert err(e) == "Analytics.AlreadyClaimed"
    assert an.DataClaimedUpTo.get(0) == 1


def test_treasury_empty_is_typed_and_changes_nothing(make_chain: Any) -> None:
    chain = make_chain(extra=world(treasury=EXISTENTIAL_DEPOSIT + UNIT // 2))
    chain.start_block(100)
    feed(chain, 0, 0, run=10)
    feed(chain, 0, HOUR)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OWNER), "Analytics", "claim_data_reward", 0, 0)
    assert err(e) == "Analytics.TreasuryEmpty"
    assert chain.rt.analytics.DataClaimedUpTo.get(0) is None


def test_genesis_defaults_and_rules(make_chain: Any) -> None:
    chain = make_chain()
    an = chain.rt.analytics
    assert an.PeriodMs.get() == 86_400_000 and an.Rules.get() == DEFAULT_RULES
    assert chain.free(treasury_account()) == 0
    with pytest.raises(ValueError, match="unknown analytics reward rules"):
        make_chain(extra={"analytics": {"rewards": {"bogus": 1}}})
    with pytest.raises(ValueError, match="out of range"):
        make_chain(extra={"analytics": {"rewards": {"improvement_periods": 0}}})


# --------------------------------------------------------------------------- permissions

ROOT = "root"
ACTORS = {"owner": OWNER, "delegate": DELEGATE, "reader": READER, "operator": OP, "nobody": NOBODY}


def origin_of(actor: str) -> Origin:
    return Origin.root() if actor == ROOT else signed(ACTORS[actor])


def _prepare(blk: Any) -> None:
    eq = "Equipment"
    blk.dispatch(signed(OWNER), eq, "grant_access", 0, DELEGATE.public, OPERATE, FAR)
    blk.dispatch(signed(OWNER), eq, "grant_access", 0, READER.public, READ_TELEMETRY, FAR)
    for p in range(5):
        good_period(blk, p, 40 if p < 2 else 60)
    feed(blk, 0, 5 * HOUR)


CALLS: dict[str, tuple[Any, ...]] = {
    "set_ideal_rate": (0, 1000),
    "set_planned_time": (0, 1000),
    "twin_report": (("Twin", 0), 0, [], H1),
    "facility_report": (("Facility", 0), 0, [], H2),
    "claim_improvement_reward": (0, 3),
    "claim_data_reward": (0, 1),
    "set_reward_rules": (RewardRules(**RULES),),
}
# Expected outcome per (call, actor): "ok" or the error.
MATRIX: dict[str, dict[str, str]] = {
    "set_ideal_rate": {"owner": "ok", "delegate": "ok", "reader": "NoPermission",
                       "operator": "NoPermission", "nobody": "NoPermission", ROOT: "BadOrigin"},
    "set_planned_time": {"owner": "ok", "delegate": "ok", "reader": "NoPermission",
                         "operator": "NoPermission", "nobody": "NoPermission", ROOT: "BadOrigin"},
    "twin_report": {"owner": "ok", "delegate": "ok", "reader": "NoPermission", "operator": "ok",
                    "nobody": "NoPermission", ROOT: "BadOrigin"},
    "facility_report": {"owner": "NotFacilityOperator", "delegate": "NotFacilityOperator",
                        "reader": "NotFacilityOperator", "operator": "ok",
                        "nobody": "NotFacilityOperator", ROOT: "BadOrigin"},
    "claim_improvement_reward": {"owner": "ok", "delegate": "ok", "reader": "NoPermission",
                                 "operator": "NoPermission", "nobody": "NoPermission",
                                 ROOT: "BadOrigin"},
    "claim_data_reward": {"owner": "ok", "delegate": "ok", "reader": "NoPermission",
                          "operator": "NoPermission", "nobody": "NoPermission",
                          ROOT: "BadOrigin"},
    "set_reward_rules": {a: "BadOrigin" for a in ACTORS} | {ROOT: "ok"},
}  # fmt: skip


@pytest.mark.parametrize("actor", [*ACTORS, ROOT])
@pytest.mark.parametrize("name", list(CALLS))
def test_permission_matrix(blk: Any, name: str, actor: str) -> None:
    _prepare(blk)
    call = "anchor_report" if name.endswith("_report") else name
    expected = MATRIX[name][actor]
    before = blk.free(OWNER.public)
    if expected == "ok":
        blk.dispatch(origin_of(actor), "Analytics", call, *CALLS[name])
        if name.startswith("claim"):
            assert blk.free(OWNER.public) > before  # paid to the owner, whoever claims
        return
    snapshot = list(blk.rt.state.iter_prefix(b""))
    with pytest.raises(DispatchError) as e:
        blk.dispatch(origin_of(actor), "Analytics", call, *CALLS[name])
    module = "System" if expected == "BadOrigin" else "Analytics"
    assert err(e) == f"{module}.{expected}"
    assert list(blk.rt.state.iter_prefix(b"")) == snapshot


def test_matrix_covers_every_call() -> None:
    from twinchain.runtime.pallets.analytics import Analytics

    assert {("anchor_report" if n.endswith("_report") else n) for n in CALLS} == set(
        Analytics.calls_by_name
    )
