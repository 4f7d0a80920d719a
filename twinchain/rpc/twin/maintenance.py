"""``twin_*`` JSON-RPC reads of the Maintenance pallet (registered by :mod:`twinchain.rpc.twin`).

twin_alerts([twin, openOnly, at])       alerts, of one twin or the latest MAX_PAGE overall,
                                        each with its lifecycle state, acknowledgement,
                                        assignee, comment count and prognosis (failure mode,
                                        probability, RUL P10/P50/P90) where it has one
twin_alert(id, [at])                    one alert in full, with its comments
twin_workOrders([twin, openOnly, at])   work orders, of one twin or the latest MAX_PAGE
twin_workOrder(id, [at])                one work order in full, with its alert, the
                                        provider's totals and the twin's cost totals
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.rpc.errors import invalid_params
from twinchain.rpc.twin.common import (
    Params,
    TwinMethod,
    bind_params,
    int_param,
    read_at,
    to_json,
)
from twinchain.runtime.pallets.maintenance.types import TERMINAL

if TYPE_CHECKING:
    from collections.abc import Iterable

    from twinchain.node.blockchain import Blockchain
    from twinchain.runtime.runtime import Runtime

MAX_PAGE = 1000


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if type(value) is not bool:
        raise invalid_params(f"{what} must be a boolean")
    return value


def _ids(twin: int | None, index: Any, next_id: int) -> Iterable[int]:
    """Ids of a twin (from its index) or the newest MAX_PAGE ids, ascending."""
    if twin is not None:
        return sorted(i for i, _ in index.iter_prefix(twin))[-MAX_PAGE:]
    return range(max(0, next_id - MAX_PAGE), next_id)


def _alert(m: Any, aid: int, a: Any) -> dict[str, Any]:
    """An alert with what spec 5 keeps beside it (absent on older chains: nulls)."""
    prognosis = m.Prognoses.get(aid)
    ack = m.Acknowledged.get(aid)
    assignee = m.Assignees.get(aid)
    return {
        "id": aid,
        **to_json(a),
        "open": a.status == "Open",
        "state": m.alert_state(aid, a),
        "acknowledged": None if ack is None else to_json(ack),
        "assignee": None if assignee is None else to_json(assignee),
        "comments": m.CommentCount.get(aid),
        "prognosis": None if prognosis is None else to_json(prognosis),
    }


def _order(oid: int, o: Any) -> dict[str, Any]:
    return {"id": oid, **to_json(o), "open": o.status not in TERMINAL}


def alerts(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    """Alerts, oldest first; ``openOnly`` keeps the open ones."""
    tid_v, open_v, at = bind_params(params, ("twin", "openOnly", "at"), 0)
    tid = None if tid_v is None else int_param(tid_v, "twin id")
    open_only = _bool(open_v, "openOnly")

    def read(rt: Runtime) -> list[dict[str, Any]]:
        m = rt.maintenance
        out = []
        for aid in _ids(tid, m.TwinAlerts, m.NextAlertId.get()):
            a = m.Alerts.get(aid)
            if a is not None and (not open_only or a.status == "Open"):
                out.append(_alert(m, aid, a))
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


def work_orders(client: Blockchain, params: Params) -> list[dict[str, Any]]:
    """Work orders, oldest first; ``openOnly`` keeps the unfinished ones."""
    tid_v, open_v, at = bind_params(params, ("twin", "openOnly", "at"), 0)
    tid = None if tid_v is None else int_param(tid_v, "twin id")
    open_only = _bool(open_v, "openOnly")

    def read(rt: Runtime) -> list[dict[str, Any]]:
        m = rt.maintenance
        out = []
        for oid in _ids(tid, m.TwinOrders, m.NextOrderId.get()):
            o = m.Orders.get(oid)
            if o is not None and (not open_only or o.status not in TERMINAL):
                out.append(_order(oid, o))
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


def work_order(client: Blockchain, params: Params) -> dict[str, Any] | None:
    """One work order (None if unknown) with its alert and the cost totals it feeds."""
    oid_v, at = bind_params(params, ("id", "at"), 1)
    oid = int_param(oid_v, "work order id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        m = rt.maintenance
        o = m.Orders.get(oid)
        if o is None:
            return None
        out = _order(oid, o)
        a = None if o.alert is None else m.Alerts.get(o.alert)
        out["alertDetail"] = None if a is None else _alert(m, o.alert, a)
        costs = m.TwinCosts.get(o.twin)
        out["twinCosts"] = None if costs is None else to_json(costs)
        stats = None if o.provider is None else m.Providers.get(o.provider)
        out["providerStats"] = None if stats is None else to_json(stats)
        out["twinLifecycle"] = rt.equipment.twin(o.twin).lifecycle
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


def alert(client: Blockchain, params: Params) -> dict[str, Any] | None:
    """One alert (None if unknown) with its comments, oldest first."""
    aid_v, at = bind_params(params, ("id", "at"), 1)
    aid = int_param(aid_v, "alert id")

    def read(rt: Runtime) -> dict[str, Any] | None:
        m = rt.maintenance
        a = m.Alerts.get(aid)
        if a is None:
            return None
        out = _alert(m, aid, a)
        out["commentList"] = [to_json(c) for c in m.comments(aid)]
        return out

    return read_at(client, at, read)  # type: ignore[no-any-return]


METHODS: dict[str, TwinMethod] = {
    "twin_alerts": alerts,
    "twin_alert": alert,
    "twin_workOrders": work_orders,
    "twin_workOrder": work_order,
}
