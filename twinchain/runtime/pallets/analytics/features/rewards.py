"""Analytics rewards: the treasury pays a twin's owner for improving on its own baseline and
for valid telemetry windows; governance sets the rules."""

from __future__ import annotations

from twinchain.primitives.codec import U64, U128
from twinchain.runtime.framework import ROOT, SIGNED, Origin, call, ensure_root, ensure_signed
from twinchain.runtime.pallets.analytics.types import (
    BP,
    MAX_CLAIM_PERIODS,
    Baseline,
    Cursor,
    KpiRecord,
    Reward,
    RewardRules,
    treasury_account,
)
from twinchain.runtime.pallets.balances import EXISTENTIAL_DEPOSIT
from twinchain.runtime.pallets.equipment.types import TwinId
from twinchain.runtime.weights import analytics as weights


class RewardsFeature:
    """Treasury rewards of the Analytics pallet."""

    @call(
        3,
        weight=lambda rt, twin, period: (
            weights.W_CLAIM + weights.W_CLAIM_PER_PERIOD * MAX_CLAIM_PERIODS
        ),
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
        weight=lambda rt, twin, up_to: (
            weights.W_CLAIM + weights.W_CLAIM_PER_PERIOD * MAX_CLAIM_PERIODS
        ),
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

    @call(5, weight=weights.W_SMALL, origin=ROOT, args=(("rules", RewardRules.wire_type()),))
    def set_reward_rules(self, origin: Origin, rules: RewardRules) -> None:
        """Replace the reward rules (root: governance)."""
        ensure_root(origin)
        if not rules.valid():
            raise self.Error.InvalidRules()
        self.Rules.put(rules)
        self.deposit(self.Event.RulesUpdated())

    def _pay(self, kind: str, twin: int, first: int, last: int, amount: int, to: bytes) -> int:
        treasury = treasury_account()
        bal = self.config.currency
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
