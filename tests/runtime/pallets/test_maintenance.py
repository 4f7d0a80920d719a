"""Maintenance: deviation alerts with hysteresis, predictions, work orders with escrow, line
downtime, verification by telemetry or inspector, expiry, and the permission matrix."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives import codec
from twinchain.primitives.keys import Keypair
from twinchain.protocol.classdef import class_record, load_class
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.equipment.types import OPERATE
from twinchain.runtime.pallets.maintenance import Maintenance
from twinchain.runtime.pallets.maintenance.features import orders
from twinchain.runtime.pallets.maintenance.types import (
    MAX_DOWNTIME_MS,
    MAX_OPEN_ORDERS,
    Part,
    Threshold,
)

UNIT = 10**12
ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
OWNER, OWNER2, SP, SP2, AUD, OPR, WORKER, DELEGATE, NOBODY, MAKER = (
    Keypair.from_dev_name(n)
    for n in (
        "Owner", "Owner2", "Service", "Service2", "Auditor", "Operator", "Worker", "Delegate",
        "Nobody", "Maker",
    )
)  # fmt: skip
GW = BOB
DEV = [Keypair.from_dev_name(f"Device{i}") for i in range(3)]
SLOT = 200
NOW = SLOT * 1000
WINDOW = 1000
TEMP, VIB = 1, 2
CLS = "pump"
MODEL = b"\x42" * 32
H1, H2 = b"\x01" * 32, b"\x02" * 32
PAY = 5 * UNIT
K = 2
DEADLINE = 3
TH = Threshold(2_000, 500, 2)
ROOT = Origin.root()
FAR = 10**13


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world() -> dict[str, Any]:
    twin = {"manufacturer": "//Maker", "class": CLS, "lifecycle": "Active", "facility": 0}
    env = [[TEMP, -20_000, 90_000, 0]]
    funded = ["//Alice", "//Bob", "//Charlie", "//Owner", "//Owner2", "//Delegate", "//Nobody"]
    return {
        "balances": {"balances": [[n, 1_000 * UNIT] for n in funded]},
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Owner2", "EquipmentOwner"],
                ["//Bob", "Gateway"],
                ["//Service", "ServiceProvider"],
                ["//Service2", "ServiceProvider"],
                ["//Auditor", "CertifiedAuditor"],
                ["//Operator", "FacilityOperator"],
                ["//Worker", "PredictiveWorker"],
            ]
        },
        "facility": {
            "facilities": [
                {"operator": "//Operator", "name": "P", "verified_until": FAR},
                {"operator": "//Nobody", "name": "Q", "validator": "//Maker"},
            ]
        },
        "equipment": {
            "twins": [
                twin | {"serial": "A", "owner": "//Owner", "envelope": env},
                twin | {"serial": "B", "owner": "//Owner", "envelope": env},
                twin | {"serial": "C", "owner": "//Owner2", "envelope": env, "facility": 1},
            ]
        },
        "telemetry": {
            "window_ms": WINDOW,
            "devices": [{"device": f"//Device{i}", "twin": i} for i in range(3)],
        },
        "benchmark": {"baseline_windows": 3, "class_specs": [[CLS, TEMP, 50_000, 1_000]]},
        "maintenance": {
            "verify_windows": K,
            "deadline_blocks": DEADLINE,
            "class_thresholds": [[CLS, TEMP, 2_000, 500, 2]],
        },
    }


@pytest.fixture
def chain(make_chain: Any) -> Any:
    return make_chain(extra=world())


@pytest.fixture
def blk(chain: Any) -> Any:
    chain.start_block(SLOT)
    return chain


class Feeder:
    """One batch per window for a twin's device; each batch closes the previous window."""

    def __init__(self, chain: Any, twin: int, first_ts: int = 0) -> None:
        self.chain, self.twin, self.seq = chain, twin, 0
        self.w = first_ts // WINDOW

    def window(self, temp: int) -> list[Any]:
        r = [(TEMP, self.w * WINDOW + 10, temp)]
        b = self.chain.commitment(DEV[self.twin], self.twin, self.seq, r)
        self.seq += 1
        self.w += 1
        evs = self.chain.dispatch(signed(GW), "Telemetry", "submit", [b])
        return evs + self.chain.close_windows()  # type: ignore[no-any-return]

    def windows(self, *temps: int) -> list[Any]:
        evs: list[Any] = []
        for t in temps:
            evs += self.window(t)
        return evs


def ev(chain: Any, evs: list[Any], name: str, module: str = "Maintenance") -> list[dict[str, Any]]:
    return [chain.args(e) for e in evs if e.module == module and e.name == name]


def snapshot(chain: Any) -> list[tuple[bytes, bytes]]:
    return list(chain.rt.state.iter_prefix(b""))


def order(chain: Any, oid: int = 0) -> Any:
    return chain.rt.maintenance.Orders.get(oid)


def lifecycle(chain: Any, twin: int = 0) -> str:
    return str(chain.rt.equipment.twin(twin).lifecycle)


def raise_alert(chain: Any, f: Feeder) -> int:
    evs = f.windows(61_000, 61_000, 61_000)  # two closed windows beyond +20 %
    [raised] = ev(chain, evs, "AlertRaised")
    return int(raised["alert"])


def new_order(chain: Any, twin: int = 0, *, verification: str = "Telemetry", pay: int = PAY) -> int:
    oid = int(chain.rt.maintenance.NextOrderId.get())
    chain.dispatch(
        signed(OWNER), "Maintenance", "create", twin, "Preventive", H1, pay, verification
    )
    return oid


def scheduled(chain: Any, twin: int = 0, start: int = NOW - 1_000, end: int = NOW + 60_000,
              **kw: Any) -> int:  # fmt: skip
    oid = new_order(chain, twin, **kw)
    chain.dispatch(signed(OWNER), "Maintenance", "assign", oid, SP.public)
    chain.dispatch(signed(SP), "Maintenance", "schedule", oid, start, end)
    return oid


def claimed(chain: Any, twin: int = 0, **kw: Any) -> int:
    oid = scheduled(chain, twin, **kw)
    chain.dispatch(signed(SP), "Maintenance", "start", oid)
    parts = [Part("bearing 6204-2RS", 2, 40 * UNIT // 100), Part("seal kit", 1, UNIT)]
    chain.dispatch(signed(SP), "Maintenance", "claim_completion", oid, H2, parts)
    return oid


def register_model(chain: Any) -> None:
    """The predictive model, registered (and so active) in Simulation by the worker."""
    params = codec.encode(["artifact", 1])
    chain.dispatch(signed(WORKER), "Simulation", "register_model", MODEL, CLS, "gbm", params, 1)
    assert chain.rt.simulation.model_active(MODEL)


# --------------------------------------------------------------------------- the window hook


def test_window_close_reaches_both_pallets_in_index_order(
    blk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int, int, int, list[int]]] = []
    for name in ("benchmark", "maintenance"):
        p = getattr(blk.rt, name)
        real = p.on_window_closed

        def spy(twin: int, start: int, window_ms: int, aggs: Any, real: Any = real,
                name: str = name) -> None:  # fmt: skip
            seen.append((name, twin, start, window_ms, sorted(aggs)))
            real(twin, start, window_ms, aggs)

        monkeypatch.setattr(p, "on_window_closed", spy)
    f = Feeder(blk, 0)
    f.window(50_000)
    assert seen == []  # the first window is still open
    f.window(50_000)
    assert seen == [("benchmark", 0, 0, WINDOW, [TEMP]), ("maintenance", 0, 0, WINDOW, [TEMP])]
    assert blk.rt.benchmark.Twins.get(0).windows == 1


# --------------------------------------------------------------------------- deviation alerts


def test_deviation_alerts_with_hysteresis(blk: Any) -> None:
    m = blk.rt.maintenance
    f = Feeder(blk, 0)
    # +12 % sits between clear (5 %) and raise (20 %); one window beyond raise is not enough.
    evs = f.windows(50_000, 56_000, 61_000, 50_000, 61_000)
    assert ev(blk, evs, "AlertRaised") == [] and m.open_alerts(0) == 0
    evs = f.windows(61_000, 61_000, 61_000)  # the 2nd consecutive window beyond raise closes
    assert ev(blk, evs, "AlertRaised") == [
        {"alert": 0, "twin": 0, "kind": "Deviation", "metric": TEMP, "deviation_bp": 2_200,
         "probability_bp": 0}
    ]  # fmt: skip
    assert m.open_alerts(0) == 1 and m.last_alert(0) == 0
    evs = f.windows(61_000, 61_000, 70_000, 55_000, 50_100)  # no flood while open
    assert ev(blk, evs, "AlertRaised") == [] and m.NextAlertId.get() == 1
    evs = f.windows(50_000)  # closes 50.100: the 1st window within 5 %
    assert ev(blk, evs, "AlertCleared") == []
    evs = f.windows(50_000)  # the 2nd consecutive one: cleared
    assert ev(blk, evs, "AlertCleared") == [{"alert": 0, "twin": 0, "deviation_bp": 0}]
    assert m.open_alerts(0) == 0 and m.Alerts.get(0).status == "Cleared"
    assert m.OpenDeviation.get(0, TEMP) is None
    evs = f.windows(70_000, 70_000, 70_000)
    assert [a["alert"] for a in ev(blk, evs, "AlertRaised")] == [1]
    assert sorted(a for a, _ in m.TwinAlerts.iter_prefix(0)) == [0, 1]


def test_twin_threshold_overrides_the_class(blk: Any) -> None:
    m = blk.rt.maintenance
    tight = Threshold(500, 100, 1)
    evs = blk.dispatch(signed(OWNER), "Maintenance", "set_twin_threshold", 0, TEMP, tight)
    assert ev(blk, evs, "TwinThresholdSet") == [{"twin": 0, "metric": TEMP, "threshold": tight}]
    assert m.threshold(0, TEMP) == tight and m.threshold(1, TEMP) == TH
    f = Feeder(blk, 0)
    assert ev(blk, f.windows(53_000, 50_000), "AlertRaised")[0]["deviation_bp"] == 600
    assert m.TwinThresholdMetrics.get(0) == [TEMP]  # the hook's index of twin thresholds
    blk.dispatch(signed(OWNER), "Maintenance", "set_twin_threshold", 0, TEMP, None)
    assert m.threshold(0, TEMP) == TH and m.TwinThresholdMetrics.get(0) is None
    # Back on the class threshold (20 %): a 6 % deviation no longer counts as beyond raise.
    f.windows(53_000, 53_000)
    assert m.DevStates.get(0, TEMP) is None
    blk.dispatch(ROOT, "Maintenance", "set_class_threshold", CLS, TEMP, None)
    assert m.threshold(1, TEMP) is None


def test_dismissed_deviation_can_be_raised_again(blk: Any) -> None:
    f = Feeder(blk, 0)
    aid = raise_alert(blk, f)
    evs = blk.dispatch(signed(OWNER), "Maintenance", "dismiss_alert", aid)
    assert ev(blk, evs, "AlertDismissed") == [{"alert": aid, "by": OWNER.public}]
    assert blk.rt.maintenance.open_alerts(0) == 0
    assert ev(blk, f.windows(61_000), "AlertRaised") == []  # counting starts afresh
    assert len(ev(blk, f.windows(61_000), "AlertRaised")) == 1


# --------------------------------------------------------------------------- predictions


def test_predictions(blk: Any) -> None:
    m = blk.rt.maintenance
    args = (0, 7_500, 3_600_000, MODEL, H1)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(WORKER), "Maintenance", "submit_prediction", *args)
    assert err(e) == "Maintenance.ModelNotActive"
    register_model(blk)
    evs = blk.dispatch(signed(WORKER), "Maintenance", "submit_prediction", *args)
    [raised] = ev(blk, evs, "AlertRaised")
    assert (raised["kind"], raised["probability_bp"], raised["metric"]) == (
        "Predicted",
        7_500,
        None,
    )
    a = m.Alerts.get(raised["alert"])
    assert (a.model, a.evidence, a.horizon_ms, a.raised_by) == (MODEL, H1, 3_600_000, WORKER.public)
    # The same model again updates the open alert instead of raising another.
    evs = blk.dispatch(
        signed(WORKER), "Maintenance", "submit_prediction", 0, 9_000, 60_000, MODEL, H2
    )
    assert ev(blk, evs, "AlertUpdated") == [
        {"alert": raised["alert"], "probability_bp": 9_000, "horizon_ms": 60_000}
    ]
    assert m.open_alerts(0) == 1 and m.Alerts.get(raised["alert"]).evidence == H2
    # A worker granted by the operator of facility 0 serves twins there, not at facility 1.
    w2 = Keypair.from_dev_name("Worker2")
    blk.dispatch(signed(OPR), "Roles", "grant", w2.public, "PredictiveWorker")
    blk.dispatch(signed(w2), "Maintenance", "submit_prediction", 1, 100, 1, MODEL, H1)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(w2), "Maintenance", "submit_prediction", 2, 100, 1, MODEL, H1)
    assert err(e) == "Maintenance.NotAuthorizedForFacility"


@pytest.mark.parametrize(
    ("who", "args", "error"),
    [
        (NOBODY, (0, 100, 1, MODEL, H1), "NotPredictiveWorker"),
        (OWNER, (0, 100, 1, MODEL, H1), "NotPredictiveWorker"),
        (WORKER, (0, 10_001, 1, MODEL, H1), "InvalidProbability"),
        (WORKER, (0, 100, 0, MODEL, H1), "InvalidHorizon"),
        (WORKER, (9, 100, 1, MODEL, H1), "UnknownTwin"),
        (WORKER, (0, 100, 1, H2, H1), "ModelNotActive"),
    ],
)
def test_prediction_rejects(blk: Any, who: Keypair, args: tuple[Any, ...], error: str) -> None:
    register_model(blk)
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(who), "Maintenance", "submit_prediction", *args)
    assert err(e) == f"Maintenance.{error}"
    assert snapshot(blk) == before


# --------------------------------------------------------------------------- the full path


def test_alert_to_paid_order_verified_by_telemetry(blk: Any) -> None:
    rt, m = blk.rt, blk.rt.maintenance

    def analytics_period() -> Any:  # the twin's open Analytics period (one day: period 0)
        return rt.analytics.Acc.get(0, 0)

    f = Feeder(blk, 0)
    aid = raise_alert(blk, f)
    free0 = blk.free(OWNER.public)
    evs = blk.dispatch(signed(OWNER), "Maintenance", "create_from_alert", aid, H1, PAY, "Telemetry")
    assert ev(blk, evs, "WorkOrderCreated") == [
        {"order": 0, "twin": 0, "payer": OWNER.public, "alert": aid, "payment": PAY}
    ]
    assert blk.free(OWNER.public) == free0 - PAY and blk.reserved(OWNER.public) == PAY
    assert analytics_period().failures == 1  # Analytics counts the failure (for MTBF)
    assert m.Alerts.get(aid).work_order == 0 and order(blk).kind == "Corrective"
    blk.dispatch(signed(OWNER), "Maintenance", "assign", 0, SP.public)
    blk.dispatch(signed(SP), "Maintenance", "schedule", 0, NOW, NOW + 3_600_000)
    evs = blk.dispatch(signed(SP), "Maintenance", "start", 0)
    assert ev(blk, evs, "WorkOrderStarted") == [{"order": 0, "deadline": 1 + DEADLINE}]
    assert lifecycle(blk) == "Maintenance"
    parts = [Part("bearing", 2, UNIT), Part("seal", 1, 3 * UNIT)]
    blk.dispatch(signed(SP), "Maintenance", "claim_completion", 0, H2, parts)
    assert m.Verifying.get(0) == [0] and order(blk).claimed_at == NOW
    # Windows before the claim time are no evidence; from NOW on: one good window, one bad
    # (resets), then K good ones verify.
    f.w = NOW // WINDOW - 3
    evs = f.windows(50_000, 50_000, 50_000)
    assert ev(blk, evs, "VerificationProgress") == []
    evs = f.windows(50_000, 95_000, 50_000, 50_000, 50_000)
    assert [p["ok_windows"] for p in ev(blk, evs, "VerificationProgress")] == [1, 0, 1, 2]
    o = order(blk)
    assert o.status == "Verified" and o.completed_at == NOW and o.verified_by is None
    sp_free = blk.free(SP.public)
    assert sp_free == PAY and blk.reserved(OWNER.public) == 0
    assert lifecycle(blk) == "Active"
    [rec] = rt.equipment.service_history(0)
    assert (rec.provider, rec.kind, rec.report, rec.cost, rec.work_order) == (
        SP.public, "Corrective", H2, PAY, 0
    )  # fmt: skip
    assert [(p.part, p.quantity, p.cost, p.order) for p in m.parts(0)] == [
        ("bearing", 2, UNIT, 0), ("seal", 1, 3 * UNIT, 0)
    ]  # fmt: skip
    c = m.TwinCosts.get(0)
    assert (c.orders, c.service, c.parts) == (1, PAY, 4 * UNIT)
    s = m.Providers.get(SP.public)
    assert (s.completed, s.expired, s.earned) == (1, 0, PAY)
    assert m.Alerts.get(aid).status == "Resolved" and m.open_alerts(0) == 0
    assert m.Verifying.get(0) is None and m.OpenOrders.get(0) == 0
    assert m.Expiries.get(1 + DEADLINE, 0) is None
    acc = analytics_period()  # and the repair, started and verified at NOW (for MTTR)
    assert (acc.failures, acc.repairs, acc.repair_ms) == (1, 1, 0)
    assert rt.facility.audit_log(0)[-1].kind == "MaintenanceVerified"


def test_verification_needs_k_consecutive_good_windows(blk: Any) -> None:
    oid = claimed(blk)
    f = Feeder(blk, 0, first_ts=NOW)
    evs = f.windows(50_000, 95_000, 50_000, 50_000)
    assert [p["ok_windows"] for p in ev(blk, evs, "VerificationProgress")] == [1, 0, 1]
    assert order(blk, oid).status == "Claimed"
    evs = f.windows(61_000)  # inside the envelope but beyond the clear level: not good
    assert [p["ok_windows"] for p in ev(blk, evs, "VerificationProgress")] == [2]
    assert order(blk, oid).status == "Verified"
    evs = f.windows(61_000, 61_000)
    assert order(blk, oid).ok_windows == 2  # a verified order is no longer counted


def test_deviation_beyond_clear_blocks_verification(blk: Any) -> None:
    oid = claimed(blk)
    f = Feeder(blk, 0, first_ts=NOW)
    evs = f.windows(56_000, 56_000, 56_000, 56_000)  # +12 %: inside the envelope
    assert {p["ok_windows"] for p in ev(blk, evs, "VerificationProgress")} == {0}
    assert order(blk, oid).status == "Claimed"


def test_unverified_order_expires_and_escrow_returns(chain: Any) -> None:
    chain.start_block(SLOT)
    oid = claimed(chain)
    Feeder(chain, 0, first_ts=NOW).windows(95_000, 95_000, 95_000)  # out of the envelope
    assert chain.reserved(OWNER.public) == PAY
    free0 = chain.free(OWNER.public)
    chain.finish_block()
    for slot in range(SLOT + 1, SLOT + DEADLINE):
        chain.start_block(slot)
        chain.finish_block()
        assert chain.rt.maintenance.Orders.get(oid).status == "Claimed"
    chain.start_block(SLOT + DEADLINE)
    chain.finish_block()
    names = [(e["pallet"], e["event"]) for e in chain.events()]
    assert ("Maintenance", "EscrowReturned") in names and (
        "Maintenance",
        "WorkOrderExpired",
    ) in names
    assert [e["phase"] for e in chain.events() if e["pallet"] == "Maintenance"] == [
        "initialization"
    ] * 2
    m = chain.rt.maintenance
    o = m.Orders.get(oid)
    assert o.status == "Expired"
    assert chain.reserved(OWNER.public) == 0 and chain.free(OWNER.public) == free0 + PAY
    assert chain.free(SP.public) == 0 and m.Providers.get(SP.public).expired == 1
    assert m.Expiries.get(1 + DEADLINE, oid) is None and m.ExpiryCount.get(1 + DEADLINE) == 0
    assert m.OpenOrders.get(0) == 0 and m.LineDowntime.get((0, 0), oid) is None
    assert lifecycle(chain) == "Maintenance"  # the owner decides what happens next
    assert chain.rt.equipment.service_history(0) == []


def test_expiry_queue_is_bounded_per_block(blk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders, "MAX_EXPIRIES_PER_BLOCK", 1)
    a = scheduled(blk, 0)
    b = scheduled(blk, 1)
    blk.dispatch(signed(SP), "Maintenance", "start", a)
    blk.dispatch(signed(SP), "Maintenance", "start", b)
    assert (order(blk, a).deadline, order(blk, b).deadline) == (1 + DEADLINE, 2 + DEADLINE)
    monkeypatch.setattr(orders, "MAX_DEADLINE_PUSH", 1)
    c = scheduled(blk, 1, start=NOW + 70_000, end=NOW + 80_000)
    blk.rt.timestamp.Now.put(NOW + 70_000)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(SP), "Maintenance", "start", c)
    assert err(e) == "Maintenance.SchedulerFull"


# --------------------------------------------------------------------------- inspector


def test_inspector_approves_or_sends_back(blk: Any) -> None:
    oid = claimed(blk, verification="Inspector")
    m = blk.rt.maintenance
    assert oid not in (m.Verifying.get(0) or [])  # telemetry does not verify this one
    evs = blk.dispatch(signed(AUD), "Maintenance", "inspect", oid, False, H1)
    assert ev(blk, evs, "Inspected") == [
        {"order": oid, "inspector": AUD.public, "approved": False, "report": H1}
    ]
    assert order(blk, oid).status == "InProgress" and blk.reserved(OWNER.public) == PAY
    blk.dispatch(signed(SP), "Maintenance", "claim_completion", oid, H2, [])
    evs = blk.dispatch(signed(AUD), "Maintenance", "inspect", oid, True, H1)
    assert ev(blk, evs, "WorkOrderVerified") == [
        {"order": oid, "twin": 0, "provider": SP.public, "by": AUD.public}
    ]
    assert ev(blk, evs, "EscrowReleased") == [{"order": oid, "provider": SP.public, "amount": PAY}]
    assert order(blk, oid).verified_by == AUD.public and blk.free(SP.public) == PAY


def test_inspector_conflicts_and_mode(blk: Any) -> None:
    blk.dispatch(ROOT, "Roles", "force_grant", OWNER.public, "CertifiedAuditor")
    blk.dispatch(ROOT, "Roles", "force_grant", SP.public, "CertifiedAuditor")
    oid = claimed(blk, verification="Inspector")
    for who in (OWNER, SP):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Maintenance", "inspect", oid, True, H1)
        assert err(e) == "Maintenance.ConflictOfInterest"
    tel = claimed(blk, 1)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(AUD), "Maintenance", "inspect", tel, True, H1)
    assert err(e) == "Maintenance.WrongVerification"


# --------------------------------------------------------------------------- lines & scheduling


def test_downtime_on_a_line_never_overlaps(blk: Any) -> None:
    for twin in (0, 1):
        blk.dispatch(signed(OWNER), "Maintenance", "set_line", twin, 7)
    m = blk.rt.maintenance
    a = scheduled(blk, 0, start=NOW + 10_000, end=NOW + 20_000)
    assert m.LineDowntime.get((0, 7), a) == (NOW + 10_000, NOW + 20_000)
    b = new_order(blk, 1)
    blk.dispatch(signed(OWNER), "Maintenance", "assign", b, SP2.public)
    for s, e in ((NOW + 15_000, NOW + 25_000), (NOW + 5_000, NOW + 10_001), (NOW, NOW + 30_000)):
        with pytest.raises(DispatchError) as info:
            blk.dispatch(signed(SP2), "Maintenance", "schedule", b, s, e)
        assert err(info) == "Maintenance.DowntimeOverlap"
    blk.dispatch(signed(SP2), "Maintenance", "schedule", b, NOW + 20_000, NOW + 30_000)  # adjacent
    # Moving an order's own window never collides with itself.
    blk.dispatch(signed(SP), "Maintenance", "schedule", a, NOW + 12_000, NOW + 20_000)
    assert m.LineDowntime.get((0, 7), a) == (NOW + 12_000, NOW + 20_000)
    # A line with scheduled downtime cannot be changed under the twin; the facility's
    # operator may set lines; other facilities' line 7 is another line.
    with pytest.raises(DispatchError) as info:
        blk.dispatch(signed(OPR), "Maintenance", "set_line", 0, 8)
    assert err(info) == "Maintenance.LineBusy"
    blk.dispatch(signed(OWNER2), "Maintenance", "set_line", 2, 7)
    c = new_order_by(blk, OWNER2, 2)
    blk.dispatch(signed(OWNER2), "Maintenance", "assign", c, SP.public)
    blk.dispatch(signed(OWNER2), "Maintenance", "schedule", c, NOW + 10_000, NOW + 20_000)
    # Cancelling frees the window and returns the escrow.
    free0 = blk.free(OWNER.public)
    evs = blk.dispatch(signed(OWNER), "Maintenance", "cancel", a)
    assert ev(blk, evs, "EscrowReturned") == [{"order": a, "payer": OWNER.public, "amount": PAY}]
    assert blk.free(OWNER.public) == free0 + PAY and m.LineDowntime.get((0, 7), a) is None
    blk.dispatch(signed(OPR), "Maintenance", "set_line", 0, 8)
    assert m.Lines.get(0) == 8


def new_order_by(chain: Any, who: Keypair, twin: int) -> int:
    oid = int(chain.rt.maintenance.NextOrderId.get())
    chain.dispatch(signed(who), "Maintenance", "create", twin, "Preventive", H1, PAY, "Telemetry")
    return oid


def test_start_waits_for_the_window(blk: Any) -> None:
    oid = scheduled(blk, start=NOW + 5_000, end=NOW + 9_000)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(SP), "Maintenance", "start", oid)
    assert err(e) == "Maintenance.WindowNotStarted"


def test_open_orders_per_twin_are_bounded(blk: Any) -> None:
    for _ in range(MAX_OPEN_ORDERS):
        new_order(blk)
    with pytest.raises(DispatchError) as e:
        new_order(blk)
    assert err(e) == "Maintenance.TooManyOpenOrders"
    blk.dispatch(signed(OWNER), "Maintenance", "cancel", 0)
    new_order(blk)


def test_payment_must_be_covered(blk: Any) -> None:
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        new_order(blk, pay=10_000 * UNIT)
    assert err(e) == "Maintenance.InsufficientBalance"
    assert snapshot(blk) == before
    oid = new_order(blk, pay=0)  # warranty work: no escrow
    assert blk.reserved(OWNER.public) == 0 and order(blk, oid).payment == 0


# --------------------------------------------------------------------------- permission matrix

PARTIES: dict[str, Origin] = {
    "root": ROOT,
    "owner": signed(OWNER),
    "delegate": signed(DELEGATE),
    "provider": signed(SP),
    "provider2": signed(SP2),
    "auditor": signed(AUD),
    "operator": signed(OPR),
    "worker": signed(WORKER),
    "nobody": signed(NOBODY),
}
# Each call runs on a world prepared for it (see ``prepare``): None = allowed.
NP, NPay, NProv, BO, NAH = (
    "Maintenance.NoPermission", "Maintenance.NotPayer", "Maintenance.NotProvider",
    "System.BadOrigin", "Maintenance.NotAlertHandler",
)  # fmt: skip
MATRIX: dict[str, dict[str, str | None]] = {
    "set_twin_threshold": {"owner": None, "delegate": None, "root": BO, "provider": NP,
                           "provider2": NP, "auditor": NP, "operator": NP, "worker": NP,
                           "nobody": NP},
    "set_class_threshold": {"root": None} | {p: BO for p in PARTIES if p != "root"},
    "submit_prediction": {"worker": None, "root": BO}
    | {p: "Maintenance.NotPredictiveWorker" for p in PARTIES if p not in ("worker", "root")},
    "dismiss_alert": {"owner": None, "delegate": None, "root": BO, "provider": NP,
                      "provider2": NP, "auditor": NP, "operator": NP, "worker": NP, "nobody": NP},
    "set_line": {"owner": None, "delegate": None, "operator": None, "root": BO}
    | {p: "Maintenance.NotLineSetter" for p in ("provider", "provider2", "auditor", "worker",
                                                 "nobody")},
    "create": {"owner": None, "delegate": None, "root": BO, "provider": NP, "provider2": NP,
               "auditor": NP, "operator": NP, "worker": NP, "nobody": NP},
    "create_from_alert": {"owner": None, "delegate": None, "root": BO, "provider": NP,
                          "provider2": NP, "auditor": NP, "operator": NP, "worker": NP,
                          "nobody": NP},
    "assign": {"owner": None, "root": BO}
    | {p: NPay for p in PARTIES if p not in ("owner", "root")},
    "schedule": {"owner": None, "provider": None, "root": BO}
    | {p: NPay for p in PARTIES if p not in ("owner", "provider", "root")},
    "start": {"owner": None, "provider": None, "root": BO}
    | {p: NProv for p in PARTIES if p not in ("owner", "provider", "root")},
    "claim_completion": {"provider": None, "root": BO}
    | {p: NProv for p in PARTIES if p not in ("provider", "root")},
    "inspect": {"auditor": None, "root": BO}
    | {p: "Maintenance.NotInspector" for p in PARTIES if p not in ("auditor", "root")},
    "cancel": {"owner": None, "root": BO}
    | {p: NPay for p in PARTIES if p not in ("owner", "root")},
    "submit_prognosis": {"worker": None, "root": BO}
    | {p: "Maintenance.NotPredictiveWorker" for p in PARTIES if p not in ("worker", "root")},
    # The alarm lifecycle: the twin's owner, an OPERATE delegate or its facility's operator.
    **{
        name: {"owner": None, "delegate": None, "operator": None, "root": BO}
        | {p: NAH for p in ("provider", "provider2", "auditor", "worker", "nobody")}
        for name in ("acknowledge_alert", "assign_alert", "comment_alert")
    },
}  # fmt: skip


def prepare(chain: Any, name: str) -> tuple[Any, ...]:
    """Bring the world to where ``name`` may run; return its arguments."""
    chain.dispatch(signed(OWNER), "Equipment", "grant_access", 0, DELEGATE.public, OPERATE, FAR)
    if name == "set_twin_threshold":
        return (0, TEMP, TH)
    if name == "set_class_threshold":
        return (CLS, VIB, TH)
    if name == "submit_prediction":
        register_model(chain)
        return (0, 5_000, 60_000, MODEL, H1)
    if name == "submit_prognosis":
        register_model(chain)
        return (0, "anomaly", 5_000, 60_000, 10, 20, 30, MODEL, H1)
    if name in ("acknowledge_alert", "assign_alert", "comment_alert"):
        aid = raise_alert(chain, Feeder(chain, 0))
        extra = {"acknowledge_alert": (), "assign_alert": (SP.public,), "comment_alert": ("ok",)}
        return (aid, *extra[name])
    if name in ("dismiss_alert", "create_from_alert"):
        aid = raise_alert(chain, Feeder(chain, 0))
        return (aid,) if name == "dismiss_alert" else (aid, H1, PAY, "Telemetry")
    if name == "set_line":
        return (0, 3)
    if name == "create":
        return (0, "Preventive", H1, PAY, "Telemetry")
    if name in ("assign", "cancel"):
        oid = new_order(chain)
        return (oid, SP.public) if name == "assign" else (oid,)
    if name == "schedule":
        oid = new_order(chain)
        chain.dispatch(signed(OWNER), "Maintenance", "assign", oid, SP.public)
        return (oid, NOW, NOW + 10_000)
    if name == "start":
        return (scheduled(chain),)
    if name == "claim_completion":
        oid = scheduled(chain)
        chain.dispatch(signed(SP), "Maintenance", "start", oid)
        return (oid, H2, [Part("p", 1, 1)])
    assert name == "inspect"
    return (claimed(chain, verification="Inspector"), True, H1)


@pytest.mark.parametrize("party", list(PARTIES))
@pytest.mark.parametrize("name", list(MATRIX))
def test_permission_matrix(blk: Any, name: str, party: str) -> None:
    assert set(MATRIX[name]) == set(PARTIES)
    args = prepare(blk, name)
    expected = MATRIX[name][party]
    before = snapshot(blk)
    if expected is None:
        evs = blk.dispatch(PARTIES[party], "Maintenance", name, *args)
        assert any(e.module == "Maintenance" for e in evs)
    else:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(PARTIES[party], "Maintenance", name, *args)
        assert err(e) == expected
        assert snapshot(blk) == before


def test_every_call_is_in_the_matrix() -> None:
    assert set(MATRIX) == set(Maintenance.calls_by_name)


# --------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("who", "name", "args", "error"),
    [
        (OWNER, "set_twin_threshold", (0, TEMP, Threshold(0, 0, 1)), "InvalidThreshold"),
        (OWNER, "set_twin_threshold", (0, TEMP, Threshold(100, 200, 1)), "InvalidThreshold"),
        (OWNER, "set_twin_threshold", (0, TEMP, Threshold(100, 50, 0)), "InvalidThreshold"),
        (OWNER, "set_twin_threshold", (0, TEMP, Threshold(100, 50, 17)), "InvalidThreshold"),
        (OWNER, "set_twin_threshold", (0, 999, TH), "UnknownMetric"),
        (OWNER, "set_twin_threshold", (9, TEMP, TH), "UnknownTwin"),
        (None, "set_class_threshold", ("", TEMP, TH), "EmptyClass"),
        (OWNER, "dismiss_alert", (5,), "UnknownAlert"),
        (OWNER, "create_from_alert", (5, H1, PAY, "Telemetry"), "UnknownAlert"),
        (OWNER, "assign", (0, NOBODY.public), "NotServiceProvider"),
        (OWNER, "assign", (9, SP.public), "UnknownOrder"),
        (OWNER, "schedule", (0, NOW, NOW), "WrongStatus"),
        (OWNER, "start", (0,), "WrongStatus"),
        (SP, "claim_completion", (0, H2, []), "NotProvider"),
        (AUD, "inspect", (0, True, H1), "WrongVerification"),
        (OWNER, "create", (9, "Preventive", H1, PAY, "Telemetry"), "UnknownTwin"),
        (OWNER2, "set_line", (0, 1), "NotLineSetter"),
    ],
)
def test_invalid_input_changes_nothing(
    blk: Any, who: Keypair | None, name: str, args: tuple[Any, ...], error: str
) -> None:
    new_order(blk)  # order 0, Created
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(ROOT if who is None else signed(who), "Maintenance", name, *args)
    assert err(e) == f"Maintenance.{error}"
    assert snapshot(blk) == before


@pytest.mark.parametrize(
    ("start", "end"),
    [(NOW + 10, NOW + 10), (NOW - 5_000, NOW - 1), (NOW, NOW + MAX_DOWNTIME_MS + 1)],
)
def test_invalid_windows(blk: Any, start: int, end: int) -> None:
    oid = new_order(blk)
    blk.dispatch(signed(OWNER), "Maintenance", "assign", oid, SP.public)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(SP), "Maintenance", "schedule", oid, start, end)
    assert err(e) == "Maintenance.InvalidWindow"


def test_alert_states_block_orders(blk: Any) -> None:
    aid = raise_alert(blk, Feeder(blk, 0))
    blk.dispatch(signed(OWNER), "Maintenance", "create_from_alert", aid, H1, PAY, "Telemetry")
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Maintenance", "create_from_alert", aid, H1, PAY, "Telemetry")
    assert err(e) == "Maintenance.AlertHasOrder"
    blk.dispatch(signed(OWNER), "Maintenance", "dismiss_alert", aid)
    for name, args in (("dismiss_alert", (aid,)), ("create_from_alert", (aid, H1, 1, "Telemetry"))):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Maintenance", name, *args)
        assert err(e) == "Maintenance.AlertNotOpen"


# --------------------------------------------------------------------------- genesis


def test_genesis_config(make_chain: Any) -> None:
    cfg = world()
    cfg["maintenance"] |= {"twin_thresholds": [[1, VIB, 300, 100, 3]], "lines": [[0, 4], [1, 4]]}
    chain = make_chain(extra=cfg)
    m = chain.rt.maintenance
    assert (m.VerifyWindows.get(), m.DeadlineBlocks.get()) == (K, DEADLINE)
    assert m.ClassThresholds.get(CLS, TEMP) == TH
    assert m.TwinThresholds.get(1, VIB) == Threshold(300, 100, 3)
    assert (m.Lines.get(0), m.Lines.get(1), m.Lines.get(2)) == (4, 4, None)


@pytest.mark.parametrize(
    "extra",
    [
        {"verify_windows": 0},
        {"deadline_blocks": 0},
        {"class_thresholds": [[CLS, TEMP, 100, 200, 1]]},
        {"twin_thresholds": [[0, 999, 100, 50, 1]]},
        {"lines": [[7, 1]]},
    ],
)
def test_genesis_rejects(make_chain: Any, extra: dict[str, Any]) -> None:
    cfg = world()
    cfg["maintenance"] = extra
    with pytest.raises(ValueError):
        make_chain(extra=cfg)


def test_genesis_twin_thresholds_are_indexed_for_the_hook(make_chain: Any) -> None:
    w = world()
    w["maintenance"]["twin_thresholds"] = [[1, TEMP, 900, 100, 1]]
    chain = make_chain(extra=w)
    m = chain.rt.maintenance
    assert m.TwinThresholdMetrics.get(1) == [TEMP] and m.TwinThresholdMetrics.get(0) is None
    chain.start_block(SLOT)
    f = Feeder(chain, 1)
    evs = f.windows(55_000, 50_000)  # +10 %: beyond the twin's 9 %, within the class's 20 %
    assert [a["twin"] for a in ev(chain, evs, "AlertRaised")] == [1]


# --------------------------------------------------------------------------- spec 5: prognoses


def with_pump_class(chain: Any) -> None:
    """The built-in pump class registered (Root), so that its failure modes are known."""
    chain.dispatch(ROOT, "Equipment", "register_class", class_record(load_class("pump")))


def prognose(chain: Any, mode: str, p: int, rul: tuple[int, int, int], *, twin: int = 0) -> Any:
    return chain.dispatch(
        signed(WORKER), "Maintenance", "submit_prognosis", twin, mode, p, 172_800_000, *rul,
        MODEL, H1,
    )  # fmt: skip


def test_prognoses_per_failure_mode(blk: Any) -> None:
    register_model(blk)
    with_pump_class(blk)
    evs = prognose(blk, "bearing_wear", 9_200, (3_600_000, 7_200_000, 14_400_000))
    [raised] = ev(blk, evs, "AlertRaised")
    [prog] = ev(blk, evs, "PrognosisSubmitted")
    aid = raised["alert"]
    assert prog == {
        "alert": aid, "twin": 0, "mode": "bearing_wear", "probability_bp": 9_200,
        "rul_p10_ms": 3_600_000, "rul_p50_ms": 7_200_000, "rul_p90_ms": 14_400_000,
    }  # fmt: skip
    m = blk.rt.maintenance
    assert m.Prognoses.get(aid).rul_p50_ms == 7_200_000 and m.Prognoses.get(aid).at == NOW
    assert m.Alerts.get(aid).kind == "Predicted" and m.Alerts.get(aid).probability_bp == 9_200
    # The same (model, mode) updates its alert; another mode, or a plain prediction of the
    # same model, has an alert of its own.
    evs = prognose(blk, "bearing_wear", 9_500, (1_000, 2_000, 3_000))
    assert [e["alert"] for e in ev(blk, evs, "AlertUpdated")] == [aid]
    assert m.Prognoses.get(aid).rul_p10_ms == 1_000 and m.Alerts.get(aid).probability_bp == 9_500
    other = ev(blk, prognose(blk, "overheating", 100, (5, 5, 5)), "AlertRaised")[0]["alert"]
    anomaly = ev(blk, prognose(blk, "anomaly", 100, (0, 0, 0)), "AlertRaised")[0]["alert"]
    evs = blk.dispatch(signed(WORKER), "Maintenance", "submit_prediction", 0, 50, 1, MODEL, H1)
    plain = ev(blk, evs, "AlertRaised")[0]["alert"]
    assert len({aid, other, anomaly, plain}) == 4 and m.OpenAlertCount.get(0) == 4
    # Closing a mode's alert frees its slot only: the plain prediction stays open.
    blk.dispatch(signed(OWNER), "Maintenance", "dismiss_alert", aid)
    assert m.OpenPrognosis.get(0, (MODEL, "bearing_wear")) is None
    assert m.OpenPrediction.get(0, MODEL) == plain
    again = ev(blk, prognose(blk, "bearing_wear", 10, (1, 2, 3)), "AlertRaised")[0]["alert"]
    assert again not in (aid, other, anomaly, plain)


@pytest.mark.parametrize(
    ("mode", "p", "rul", "error"),
    [
        ("bearing_wear", 10_001, (1, 2, 3), "InvalidProbability"),
        ("bearing_wear", 10, (3, 2, 1), "InvalidRul"),
        ("bearing_wear", 10, (1, 3, 2), "InvalidRul"),
        ("cavitation", 10, (1, 2, 3), "UnknownFailureMode"),
        ("", 10, (1, 2, 3), "UnknownFailureMode"),
    ],
)
def test_prognosis_rejects(
    blk: Any, mode: str, p: int, rul: tuple[int, int, int], error: str
) -> None:
    register_model(blk)
    with_pump_class(blk)
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        prognose(blk, mode, p, rul)
    assert err(e) == f"Maintenance.{error}"
    assert snapshot(blk) == before


def test_prognosis_needs_a_registered_class_for_a_named_mode(blk: Any) -> None:
    register_model(blk)
    with pytest.raises(DispatchError) as e:
        prognose(blk, "bearing_wear", 10, (1, 2, 3))
    assert err(e) == "Maintenance.UnknownFailureMode"
    # "anomaly" needs no class (the worker, granted at genesis, serves every facility).
    assert ev(blk, prognose(blk, "anomaly", 10, (1, 2, 3), twin=2), "PrognosisSubmitted")


# --------------------------------------------------------------------------- alarm lifecycle


def state(chain: Any, aid: int) -> str:
    return chain.rt.maintenance.alert_state(aid)  # type: ignore[no-any-return]


def test_alarm_lifecycle_acknowledge_assign_comment_clear(blk: Any) -> None:
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", 0, DELEGATE.public, OPERATE, FAR)
    f = Feeder(blk, 0)
    aid = raise_alert(blk, f)
    assert state(blk, aid) == "ActiveUnacknowledged"
    evs = blk.dispatch(signed(OPR), "Maintenance", "acknowledge_alert", aid)
    assert ev(blk, evs, "AlertAcknowledged") == [{"alert": aid, "twin": 0, "by": OPR.public}]
    assert state(blk, aid) == "Acknowledged"
    assert blk.rt.maintenance.Acknowledged.get(aid).by == OPR.public
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Maintenance", "acknowledge_alert", aid)
    assert err(e) == "Maintenance.AlreadyAcknowledged"
    evs = blk.dispatch(signed(DELEGATE), "Maintenance", "assign_alert", aid, SP.public)
    assert ev(blk, evs, "AlertAssigned") == [
        {"alert": aid, "twin": 0, "assignee": SP.public, "by": DELEGATE.public}
    ]
    assert blk.rt.maintenance.Assignees.get(aid).assignee == SP.public
    blk.dispatch(signed(OWNER), "Maintenance", "assign_alert", aid, None)  # taken back
    assert blk.rt.maintenance.Assignees.get(aid) is None
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Maintenance", "assign_alert", aid, None)
    assert err(e) == "Maintenance.NotAssigned"
    evs = blk.dispatch(signed(OWNER), "Maintenance", "comment_alert", aid, "bearing noise")
    assert ev(blk, evs, "AlertCommented") == [
        {"alert": aid, "twin": 0, "index": 0, "by": OWNER.public}
    ]
    # Cleared by its telemetry (two windows back within the clear level): comments go on.
    evs = f.windows(50_000, 50_000, 50_000)
    assert [e["alert"] for e in ev(blk, evs, "AlertCleared")] == [aid]
    assert state(blk, aid) == "Cleared"
    for name, args in (("acknowledge_alert", ()), ("assign_alert", (SP.public,))):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Maintenance", name, aid, *args)
        assert err(e) == "Maintenance.AlertNotOpen"
    blk.dispatch(signed(OPR), "Maintenance", "comment_alert", aid, "replaced the bearing")
    assert [c.text for c in blk.rt.maintenance.comments(aid)] == [
        "bearing noise", "replaced the bearing",
    ]  # fmt: skip
    # The acknowledgement stays as the alert's history.
    assert blk.rt.maintenance.Acknowledged.get(aid).by == OPR.public


def test_alarms_clear_by_dismissal_and_by_a_verified_order(blk: Any) -> None:
    aid = raise_alert(blk, Feeder(blk, 0))
    blk.dispatch(signed(OWNER), "Maintenance", "dismiss_alert", aid)
    assert state(blk, aid) == "Cleared"
    aid2 = raise_alert(blk, Feeder(blk, 1))
    oid = int(blk.rt.maintenance.NextOrderId.get())
    blk.dispatch(signed(OWNER), "Maintenance", "create_from_alert", aid2, H1, PAY, "Inspector")
    blk.dispatch(signed(OWNER), "Maintenance", "assign", oid, SP.public)
    blk.dispatch(signed(SP), "Maintenance", "schedule", oid, NOW - 1_000, NOW + 60_000)
    blk.dispatch(signed(SP), "Maintenance", "start", oid)
    blk.dispatch(signed(SP), "Maintenance", "claim_completion", oid, H2, [])
    assert state(blk, aid2) == "ActiveUnacknowledged"
    blk.dispatch(signed(AUD), "Maintenance", "inspect", oid, True, H1)
    assert state(blk, aid2) == "Cleared" and blk.rt.maintenance.alert(aid2).status == "Resolved"


def test_comments_are_bounded(blk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinchain.runtime.pallets.maintenance.features import alarms

    aid = raise_alert(blk, Feeder(blk, 0))
    for bad, error in (("", "EmptyComment"), ("   ", "EmptyComment")):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Maintenance", "comment_alert", aid, bad)
        assert err(e) == f"Maintenance.{error}"
    with pytest.raises(codec.CodecError):  # 257 bytes do not even encode
        blk.dispatch(signed(OWNER), "Maintenance", "comment_alert", aid, "é" * 129)
    blk.dispatch(signed(OWNER), "Maintenance", "comment_alert", aid, "x" * 256)
    monkeypatch.setattr(alarms, "MAX_COMMENTS", 2)
    blk.dispatch(signed(OWNER), "Maintenance", "comment_alert", aid, "second")
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Maintenance", "comment_alert", aid, "third")
    assert err(e) == "Maintenance.TooManyComments"
    assert snapshot(blk) == before
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Maintenance", "acknowledge_alert", 99)
    assert err(e) == "Maintenance.UnknownAlert"
