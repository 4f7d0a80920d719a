"""``twin_*`` JSON-RPC reads of the Analytics pallet (registered by :mod:`twinchain.rpc.twin`).

    twin_kpis(twin, [at])               the twin's KPI periods (latest last), open sums, baseline
    twin_facilityKpis(facility, [at])   a facility's KPI periods (sums of its twins)
    twin_reports([twin, at])            anchored reports (of one twin's scope, or all)
    twin_rewards(account, [at])         rewards paid to an account, the treasury and the rules

KPI ratios are parts per million (1_000_000 = 100 %); see the pallet's docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.protocol.jsonrpc import to_hex
from twinchain.rpc.twin.common import (
    Params,
    TwinMethod,
    account_param,
    bind_params,
    int_param,
    read_at,
    to_json,
)
from twinchain.runtime.pallets.analytics.types import treasury_account

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain
    from twinchain.runtime.runtime import Runtime


MAX_PERIODS = 100  # newest closed periods returned
MAX_REPORTS = 1000


def _periods(items: Any) -> list[dict[str, Any]]:
    recs = sorted(items, key=lambda kv: kv[0])[-MAX_PERIODS:]
    return [to_json(r) for _, r in recs]


def kpis(client: Blockchain, params: Params) -> dict[str, Any]:
    tid_v, at = bind_params(params, ("twin", "at"), 1)
    tid = int_param(tid_v, "twin id")

    def read(rt: Runtime) -> dict[str, Any]:
        an = rt.analytics
        cur = an.Cursors.get(tid)
        open_acc = None
        if cur is not None and cur.open is not None:
            acc = an.Acc.get(tid, cur.open)
            open_acc = None if acc is None else {"period": cur.open, **to_json(acc)}
        base = an.Baselines.get(tid)
        return {
            "twin": tid,
            "periodMs": an.PeriodMs.get(),
            "idealRateMilli": an.ideal_rate(tid),
            "plannedMs": an.planned_ms(tid),
            "openPeriod": None if cur is None else cur.open,
            "lastClosed": None if cur is None else cur.last_closed,
            "firstPeriod": None if cur is None else cur.first,
            "open": open_acc,
            "latest": to_json(an.latest_kpis(tid)),
            "periods": _periods(an.Kpis.iter_prefix(tid)),
            "baseline": None if base is None else to_json(base),
            "dataClaimedUpTo": an.DataClaimedUpTo.get(tid),
            "lastImprovementClaim": an.LastImprovementClaim.get(tid),
            "improvementClaims": sorted(p for p, _ in an.ImprovementClaimed.iter_prefix(tid)),
        }

    return read_at(client, at, read)  # type: ignore[no-any-return]


def facility_kpis(client: Blockchain, params: Params) -> dict[str, Any]:
    fid_v, at = bind_params(params, ("facility", "at"), 1)
    fid = int_param(fid_v, "facility id", 2**32 - 1)

    def read(rt: Runtime) -> dict[str, Any]:
        an = rt.analytics
        periods = _periods(an.FacilityKpis.iter_prefix(fid))
        return {
            "facility": fid,
            "periodMs": an.PeriodMs.get(),
            "latest": periods[-1] if periods else None,
            "periods": periods,
        }

    return read_at(client, at, read)  # type: ignore[no-any-return]


def _report(rid: int, r: Any) -> dict[str, Any]:
    out = {"id": rid, **to_json(r)}
    out["scope"] = {"kind": r.scope[0], "id": r.scope[1]}
    out["figures"] = [{"name": n, "value": v} for n, v in r.figures]
    return out


def reports(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    tid_v, at = bind_params(params, ("twin", "at"), 0)
    tid = None if tid_v is None else int_param(tid_v, "twin id")

    def read(rt: Runtime) -> list[dict[str, Any]]:
        an = rt.analytics
        if tid is None:
            ids = sorted(rid for rid, _ in an.Reports.iter())
        else:
            ids = sorted(rid for rid, _ in an.ReportsByScope.iter_prefix(("Twin", tid)))
        return [_report(rid, an.Reports.get(rid)) for rid in ids[-MAX_REPORTS:]]

    return read_at(client, at, read)  # type: ignore[no-any-return]


def rewards(client: Blockchain, params: Params) -> dict[str, Any]:
    who_v, at = bind_params(params, ("account", "at"), 1)
    who = account_param(who_v)

    def read(rt: Runtime) -> dict[str, Any]:
        an = rt.analytics
        treasury = treasury_account()
        items = [
            {"id": rid, **to_json(an.Rewards.get(rid))}
            for rid in sorted(rid for rid, _ in an.RewardsOf.iter_prefix(who))
        ]
        return {
            "account": to_hex(who),
            "rewards": items,
            "total": sum(i["amount"] for i in items),
            "treasury": to_hex(treasury),
            "treasuryBalance": rt.balances.free_balance(treasury),
            "totalRewarded": an.TotalRewarded.get(),
            "rules": to_json(an.Rules.get()),
        }

    return read_at(client, at, read)  # type: ignore[no-any-return]


METHODS: dict[str, TwinMethod] = {
    "twin_kpis": kpis,
    "twin_facilityKpis": facility_kpis,
    "twin_reports": reports,
    "twin_rewards": rewards,
}
