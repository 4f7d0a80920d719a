"""The JSON the dashboard's pages show, assembled from the chain's reads (:mod:`.chain`) for
one signed-in account: what the chain lets that account see, and nothing else.

Public for every signed-in user: facilities, twins and their lifecycle, health, public window
aggregates, alerts, work orders, the Analytics pallet's KPIs, the network. Private (a twin's
raw readings of private metrics, its documents, its facility's anchored reports): only when
:meth:`ChainView.may_read` says the account may read the twin.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from twinchain.dashboard.chain import ChainView, NotFound
from twinchain.primitives.keys import encode_address
from twinchain.protocol.jsonrpc import to_hex

#: Alarm states as plants know them from SCADA (ISA-18.2's shelving left out).
UNACKED, ACKED, CLEARED = "active-unacknowledged", "acknowledged", "cleared"
PPM = 1_000_000


def g(d: dict[str, Any] | None, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in ``d`` (camelCase or snake_case)."""
    if not d:
        return default
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return default


#: The chain's alert states (spec 5, Maintenance.alert_state) as the pages name them.
CHAIN_STATES = {"ActiveUnacknowledged": UNACKED, "Acknowledged": ACKED, "Cleared": CLEARED}


def alarm_state(a: dict[str, Any]) -> str:
    """The lifecycle state: the chain's own (spec 5), else from the alert's status (an
    older chain has no acknowledgement: an open alert is active-unacknowledged)."""
    if a.get("state") in CHAIN_STATES:
        return CHAIN_STATES[a["state"]]
    if not a.get("open", g(a, "status") == "Open"):
        return CLEARED
    return ACKED if a.get("acknowledged") else UNACKED


def alarm_json(a: dict[str, Any], names: dict[int, str], metrics: dict[int, Any]) -> dict[str, Any]:
    metric = g(a, "metric")
    prog = g(a, "prognosis")
    return {
        "id": a["id"],
        "twin": a.get("twin"),
        "machine": names.get(int(a.get("twin", -1)), f"twin {a.get('twin')}"),
        "kind": a.get("kind"),
        "metric": None if metric is None else g(metrics.get(metric), "name", default=str(metric)),
        "state": alarm_state(a),
        "status": a.get("status"),
        "probability": g(a, "probabilityBp", default=0) / 100,
        "horizonMs": g(a, "horizonMs", default=0),
        "deviationBp": g(a, "deviationBp", default=0),
        "raisedAt": g(a, "raisedAt"),
        "block": a.get("block"),
        "workOrder": g(a, "workOrder"),
        "acknowledgedBy": _addr(g(a.get("acknowledged"), "by")),
        "acknowledgedAt": g(a.get("acknowledged"), "at"),
        "assignee": _addr(g(a.get("assignee"), "assignee")),
        "commentCount": a.get("comments") if isinstance(a.get("comments"), int) else 0,
        "comments": [
            {"by": _addr(g(c, "by")), "at": g(c, "at"), "text": _text(g(c, "text", default=""))}
            for c in a.get("commentList") or []
            if isinstance(c, dict)
        ],
        "prognosis": prog,
        "failureBy": _failure_by(a, prog),
    }


def _failure_by(a: dict[str, Any], prog: dict[str, Any] | None) -> int | None:
    """When the machine is expected to fail: the prognosis's median remaining life from its
    time, else the end of a prediction's horizon; None for a deviation alert."""
    if prog and g(prog, "rulP50Ms") is not None:
        return int(g(prog, "at", default=0)) + int(prog["rulP50Ms"])
    h = g(a, "horizonMs", default=0)
    return int(g(a, "raisedAt", default=0)) + int(h) if h else None


def _addr(h: Any) -> str | None:
    if not isinstance(h, str) or not h.startswith("0x") or len(h) != 66:
        return None
    return encode_address(bytes.fromhex(h[2:]))


def _text(v: Any) -> str:
    if isinstance(v, str) and v.startswith("0x"):
        try:
            return bytes.fromhex(v[2:]).decode("utf-8", "replace")
        except ValueError:
            return v
    return str(v)


def machine_status(twin: dict[str, Any], alarms: list[dict[str, Any]]) -> str:
    life = twin.get("lifecycle")
    if life not in (None, "Active"):
        return "MAINTENANCE" if life == "Maintenance" else str(life).upper()
    open_ = [a for a in alarms if a["state"] != CLEARED]
    if any(a["state"] == UNACKED for a in open_):
        return "ALARM"
    return "WARNING" if open_ else "OK"


def twin_name(t: dict[str, Any]) -> str:
    spec = t.get("spec") or {}
    serial = g(spec, "serial", default="") or g(t, "serial", default="")
    cls = g(t, "equipmentClass", default="") or g(spec, "equipmentClass", default="")
    return f"{cls} {serial}".strip() or f"twin {t.get('id')}"


async def names(view: ChainView) -> dict[int, str]:
    return {int(t["id"]): twin_name(t) for t in await view.twins()}


async def overview(view: ChainView, facility: int | None) -> dict[str, Any]:
    twins = await view.twins()
    nm = {int(t["id"]): twin_name(t) for t in twins}
    alerts = [alarm_json(a, nm, view.metrics) for a in await view.at_head("twin_alerts")]
    orders = await view.at_head("twin_workOrders")
    facs = {f["id"]: f.get("name", str(f["id"])) for f in await view.at_head("twin_facilities")}
    out = []
    for t in twins:
        tid = int(t["id"])
        if facility is not None and t.get("facility") != facility:
            continue
        mine = [a for a in alerts if a["twin"] == tid]
        st = await view.at_head("twin_state", tid)
        health = g(st, "healthBp")
        nxt = None
        for o in orders:
            if o.get("twin") == tid and o.get("open") and o.get("window"):
                start = o["window"][0]
                nxt = start if nxt is None else min(nxt, start)
        due = [a["failureBy"] for a in mine if a["state"] != CLEARED and a["failureBy"]]
        rul = min(due) if due else None
        out.append(
            {
                "id": tid,
                "name": nm[tid],
                "class": g(t, "equipmentClass"),
                "facility": t.get("facility"),
                "facilityName": facs.get(t.get("facility"), "-"),
                "lifecycle": t.get("lifecycle"),
                "health": None if health is None else health / 100,
                "status": machine_status(t, mine),
                "openAlarms": sum(1 for a in mine if a["state"] != CLEARED),
                "unacknowledged": sum(1 for a in mine if a["state"] == UNACKED),
                "nextMaintenance": nxt,
                "failureBy": rul,
            }
        )
    return {"machines": out, "facilities": facs, "head": _head(view)}


def _head(view: ChainView) -> dict[str, Any] | None:
    h = view.head
    return None if h is None else {"number": h.number, "hash": h.hash}


async def machine(view: ChainView, tid: int, account: bytes) -> dict[str, Any]:
    t = await view.at_head("twin_equipment", tid)
    if t is None:
        raise NotFound(f"no twin {tid}")
    nm = await names(view)
    public = await view.public_metrics(tid)
    readable = await view.may_read(tid, account)
    spec = t.get("spec") or {}
    spec_metrics = [int(r[0]) for r in spec.get("rated") or []]
    spec_metrics += [int(e["metric"]) for e in spec.get("envelope") or []]
    metrics = []
    for mid in sorted(set(spec_metrics) | public):
        m = view.metrics.get(mid, {})
        metrics.append(
            {
                "id": mid,
                "name": m.get("name", str(mid)),
                "unit": m.get("unit", ""),
                "scale": m.get("scale", 0),
                "public": mid in public,
                "readable": mid in public or readable,
            }
        )
    alerts = [alarm_json(a, nm, view.metrics) for a in await view.at_head("twin_alerts", tid)]
    orders = [order_json(o, nm) for o in await view.at_head("twin_workOrders", tid)]
    kpis = await view.at_head("twin_kpis", tid)
    state = await view.at_head("twin_state", tid)
    out: dict[str, Any] = {
        "id": tid,
        "name": nm.get(tid, f"twin {tid}"),
        "class": g(t, "equipmentClass"),
        "facility": t.get("facility"),
        "owner": _addr(t.get("owner")),
        "lifecycle": t.get("lifecycle"),
        "health": None if g(state, "healthBp") is None else g(state, "healthBp") / 100,
        "status": machine_status(t, alerts),
        "mayReadPrivate": readable,
        "metrics": metrics,
        "alarms": alerts,
        "orders": orders,
        "kpis": kpi_rows(kpis),
        "serviceHistory": t.get("serviceHistory") or [],
        "provenance": t.get("provenance") or [],
        "provenanceHead": t.get("provenanceHead"),
        "calibrations": t.get("calibrations") or [],
        "documents": (t.get("documents") or []) if readable else [],
        "facilityReports": [],
        "documentsHidden": 0 if readable else len(t.get("documents") or []),
        "head": _head(view),
    }
    return out


ANCHOR_KPI = 0  # Telemetry anchor kind of a facility's KPI report (runtime telemetry types)


async def facility_reports(
    view: ChainView, tid: int, api_key: str | None, limit: int = 6
) -> list[dict[str, Any]]:
    """The newest KPI reports the twin's facility anchored (from its private readings), read
    from the archive and checked against their anchored digest. The caller has checked that
    the account may read the twin."""
    from twinchain.archive.reports import ReportError, decode_document, document_json

    client = view.rpc.client
    if client is None:
        return []
    count = int(await client.read_storage("Telemetry", "AnchorCount", tid, verify=False) or 0)
    out: list[dict[str, Any]] = []
    for n in range(count - 1, max(-1, count - 4 * limit - 1), -1):
        rec = await client.read_storage("Telemetry", "Anchors", tid, n, verify=False)
        if rec is None or rec.kind != ANCHOR_KPI:
            continue
        try:
            doc = document_json(
                decode_document(await view.document(tid, rec.digest, api_key=api_key))
            )
        except (ReportError, NotFound):
            continue
        k = doc.get("kpis") or {}
        out.append(
            {
                "from": rec.from_ms,
                "to": rec.to_ms,
                "digest": "0x" + rec.digest.hex(),
                "block": rec.block,
                "oee": _pct(k.get("oee_ppm")),
                "availability": _pct(k.get("availability_ppm")),
                "performance": _pct(k.get("performance_ppm")),
                "quality": _pct(k.get("quality_ppm")),
                "scrap": _pct(k.get("scrap_ppm")),
                "units": k.get("total_units"),
                "energyPerGood": k.get("energy_per_good_mwh"),
                "alerts": sum(int(c) for _, c in doc.get("alerts") or []),
            }
        )
        if len(out) >= limit:
            break
    return out[::-1]


def kpi_rows(k: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for p in g(k, "periods", default=[]) or []:
        kp = p.get("kpis", p)
        rows.append(
            {
                "period": p.get("period"),
                "oee": _pct(g(kp, "oeePpm", "oee")),
                "availability": _pct(g(kp, "availabilityPpm", "availability")),
                "performance": _pct(g(kp, "performancePpm", "performance")),
                "quality": _pct(g(kp, "qualityPpm", "quality")),
                "energyPerGood": g(kp, "energyPerGoodMwh", "energyPerGood"),
                "mtbf": None if g(kp, "mtbfS") is None else g(kp, "mtbfS") * 1000,
                "mttr": g(kp, "mttrMs", "mttr"),
            }
        )
    return rows


def _pct(v: Any) -> float | None:
    return None if v is None else round(int(v) / PPM * 100, 2)


def order_json(o: dict[str, Any], nm: dict[int, str]) -> dict[str, Any]:
    return {
        "id": o["id"],
        "twin": o.get("twin"),
        "machine": nm.get(int(o.get("twin", -1)), f"twin {o.get('twin')}"),
        "alert": o.get("alert"),
        "kind": o.get("kind"),
        "status": o.get("status"),
        "open": o.get("open"),
        "payment": str(o.get("payment", 0)),
        "verification": o.get("verification"),
        "provider": _addr(o.get("provider")),
        "payer": _addr(o.get("payer")),
        "window": o.get("window"),
        "createdAt": g(o, "createdAt"),
        "completedAt": g(o, "completedAt"),
        "okWindows": g(o, "okWindows"),
        "verifiedBy": _addr(g(o, "verifiedBy")),
    }


async def alarms(view: ChainView, state: str | None, facility: int | None) -> dict[str, Any]:
    twins = await view.twins()
    nm = {int(t["id"]): twin_name(t) for t in twins}
    fac = {int(t["id"]): t.get("facility") for t in twins}
    raw = await view.at_head("twin_alerts")
    for i, a in enumerate(raw):
        if isinstance(a.get("comments"), int) and a["comments"] > 0:
            full = await view.at_head("twin_alert", a["id"])  # with its comments
            if full:
                raw[i] = {**a, "commentList": full.get("commentList") or []}
    out = [alarm_json(a, nm, view.metrics) for a in raw]
    if state:
        out = [a for a in out if a["state"] == state]
    if facility is not None:
        out = [a for a in out if a["twin"] is not None and fac.get(int(a["twin"])) == facility]
    out.sort(key=lambda a: (a["state"] == CLEARED, -(a["raisedAt"] or 0)))
    return {"alarms": out, "head": _head(view), "actions": await available_actions(view)}


async def available_actions(view: ChainView) -> list[str]:
    """The Maintenance calls this chain's metadata has, of those the pages offer."""
    client = view.rpc.client
    if client is None:
        return []
    try:
        pallets = client.codec.info.metadata["pallets"]
    except Exception:
        return []
    calls = set()
    for p in pallets:
        if p.get("name") == "Maintenance":
            calls = {c["name"] for c in p.get("calls", [])}
    return sorted(
        calls & {"acknowledge_alert", "assign_alert", "comment_alert", "create_from_alert"}
    )


async def orders(view: ChainView, facility: int | None) -> dict[str, Any]:
    twins = await view.twins()
    nm = {int(t["id"]): twin_name(t) for t in twins}
    fac = {int(t["id"]): t.get("facility") for t in twins}
    out = [order_json(o, nm) for o in await view.at_head("twin_workOrders")]
    if facility is not None:
        out = [o for o in out if o["twin"] is not None and fac.get(int(o["twin"])) == facility]
    out.sort(key=lambda o: (not o["open"], -o["id"]))
    return {"orders": out, "head": _head(view)}


async def report(view: ChainView, facility: int | None) -> dict[str, Any]:
    """The KPI report: each twin's latest closed periods and the facility's, from the
    Analytics pallet (public: computed on chain from public aggregates)."""
    twins = await view.twins()
    rows = []
    for t in twins:
        if facility is not None and t.get("facility") != facility:
            continue
        k = await view.at_head("twin_kpis", int(t["id"]))
        for r in kpi_rows(k):
            rows.append({"machine": twin_name(t), "twin": t["id"], **r})
    fk = None
    if facility is not None:
        fk = kpi_rows(await view.at_head("twin_facilityKpis", facility))
    period = None
    k0 = await view.at_head("twin_kpis", int(twins[0]["id"])) if twins else None
    if k0:
        period = k0.get("periodMs")
    return {"rows": rows, "facility": fk, "periodMs": period, "head": _head(view)}


def report_csv(rep: dict[str, Any]) -> str:
    buf = io.StringIO()
    cols = ["machine", "twin", "period", "oee", "availability", "performance", "quality"]
    cols += ["energyPerGood", "mtbf", "mttr"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rep["rows"]:
        w.writerow(r)
    return buf.getvalue()


async def network(view: ChainView) -> dict[str, Any]:
    facs = await view.at_head("twin_facilities")
    health = await view.call("system_health")
    try:
        peers = await view.call("system_peers")
    except Exception:
        peers = None
    try:
        rounds = await view.call("grandpa_roundState")
    except Exception:
        rounds = None
    best = await view.call("chain_getHeader")
    auths = []
    client = view.rpc.client
    if client is not None:
        try:
            auths = await client.read_storage("Authority", "Authorities", verify=False) or []
        except Exception:
            auths = []
    return {
        "chain": view.chain_name,
        "facilities": [
            {
                "id": f["id"],
                "name": f.get("name"),
                "verified": f.get("verifiedNow"),
                "validator": _addr(f.get("validator")),
                "operator": _addr(f.get("operator")),
                "reputation": f.get("reputation"),
            }
            for f in facs
        ],
        "validators": [a if isinstance(a, str) else encode_address(a) for a in auths],
        "best": int(best["number"], 16) if best else None,
        "finalized": None if view.head is None else view.head.number,
        "peers": health.get("peers"),
        "peerList": [
            {"peerId": p.get("peerId"), "roles": p.get("roles"), "best": p.get("bestNumber")}
            for p in (peers or [])
        ],
        "syncing": health.get("isSyncing"),
        "round": None if not rounds else {"setId": rounds.get("setId"), "best": rounds.get("best")},
        "genesis": None if view.genesis is None else to_hex(view.genesis),
    }


__all__ = [
    "ACKED",
    "CLEARED",
    "UNACKED",
    "alarm_state",
    "alarms",
    "machine",
    "network",
    "orders",
    "overview",
    "report",
    "report_csv",
]
