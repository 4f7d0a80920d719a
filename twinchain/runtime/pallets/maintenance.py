"""Maintenance: deviation and predictive alerts, work orders, escrowed payment.

**Alerts.** Thresholds are configured per (twin, metric) by the twin's owner or an OPERATE
delegate, or per (class, metric) by root; a twin's own threshold wins. A threshold has a raise
level and a lower clear level in basis points of deviation (hysteresis) and a number of
consecutive windows. When a twin's telemetry window closes (:meth:`on_window_closed`), each
metric with a threshold is measured by ``Benchmark.deviation_bp``: ``min_windows`` consecutive
windows at or beyond ``raise_bp`` raise a Deviation alert, ``min_windows`` consecutive windows
within ``clear_bp`` clear it. At most one alert is open per (twin, metric), so a noisy signal
cannot flood the chain (an alert's ``raised_at`` is the block time). Off-chain predictive
workers (role PredictiveWorker) submit predictions (failure probability, horizon, model id,
evidence hash) with ``submit_prediction``: the model must be active in the Simulation pallet,
and the worker must be authorized for the twin's facility, i.e. its PredictiveWorker role was
granted by that facility's operator or by governance (root; such workers serve every facility).
One open Predicted alert per (twin, model): a new prediction updates it. Owners dismiss alerts.

**Work orders.** Created by hand (``create``) or from an open alert (``create_from_alert``: a
Corrective order; ``Analytics.note_failure`` is told) by the twin's owner or an OPERATE
delegate, who is the payer: the payment is reserved from its balance (escrow) at once. At most
``MAX_OPEN_ORDERS`` unfinished orders per twin. The payer assigns a ServiceProvider; the payer
or the provider schedules a downtime window ``[start, end)`` (ms), which must not overlap the
scheduled downtime of another order on the same production line (``set_line``: a line id per
twin, scoped to its facility, set by the owner, an OPERATE delegate or the facility's
operator). ``start`` (provider or payer, once the window began) takes the twin into
Maintenance and sets the deadline: ``DeadlineBlocks`` blocks later. The provider claims
completion with a report hash and the parts replaced. Verification, per the order's mode:

* ``Telemetry``: the twin verifies itself. Every window that closes after the claim (its start
  at or after the claim time) counts when every metric with an envelope stayed inside it
  (window min and max) and every metric with a threshold deviates no more than its clear
  level; ``VerifyWindows`` (K) consecutive such windows verify the order, any other window
  resets the count. A close completes at most ``MAX_COMPLETIONS_PER_CLOSE`` verified orders
  (the costliest work of a close): the twin's next closes complete the others. A completion
  that fails (its layer reverted) puts its order back to counting from zero.
* ``Inspector``: a CertifiedAuditor that is neither payer, provider nor owner approves (the
  order is verified) or rejects (back to InProgress for rework) with an inspection report.

A verified order releases the escrow to the provider, appends a service record to the twin
(``Equipment.record_service_by``), registers the parts, adds to the twin's and the provider's
cost totals, returns the twin to Active, resolves the linked alert, tells Analytics
(``note_repair``) and the facility (``note_verified_maintenance``). An order not verified by
its deadline expires in ``on_initialize`` of the deadline block (a per-block queue bounded by
``MAX_EXPIRIES_PER_BLOCK``; a full block pushes the deadline to the next one, as Substrate's
scheduler does): the escrow returns to the payer and the twin stays in Maintenance for its
owner to decide. Orders not yet started may be cancelled by the payer (escrow returned).

The window hook never raises: each order's completion runs in its own transactional layer,
and a business failure there (e.g. a reserve too small) only leaves the order unverified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain.primitives.codec import (
    H256,
    I32,
    U8,
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
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
    DispatchError,
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
from twinchain.runtime.pallets.equipment import OPERATE, EquipmentClass, TwinId
from twinchain.runtime.pallets.roles import (
    CERTIFIED_AUDITOR,
    FACILITY_OPERATOR,
    PREDICTIVE_WORKER,
    SERVICE_PROVIDER,
)

if TYPE_CHECKING:
    from twinchain.runtime.pallets.equipment import TwinInfo

BP = 10_000
DEFAULT_VERIFY_WINDOWS = 3
DEFAULT_DEADLINE_BLOCKS = 14_400  # four hours of 1 s blocks
MAX_MIN_WINDOWS = 16
MAX_OPEN_ORDERS = 4  # unfinished work orders per twin (bounds the window hook)
MAX_COMPLETIONS_PER_CLOSE = 1  # telemetry-verified orders completed by one window close
MAX_LINE_DOWNTIMES = 64  # scheduled windows per production line
MAX_EXPIRIES_PER_BLOCK = 64
MAX_DEADLINE_PUSH = 64  # blocks a deadline may move on because blocks are full
MAX_PARTS = 32
MAX_PART = 64
MAX_DOWNTIME_MS = 30 * 86_400_000
NO_FACILITY = 2**32 - 1  # line scope of twins without a facility
COUNTER_MAX = 255

# Measured with bench/operations.py (import by a fresh client, one core; each weight is
# about 1.3x the worst of several runs): a call that reads and writes a few values (assign)
# costs 70-95 us, create 130-150 us, start 180-215 us, claim 80-140 us, inspect (a
# completion) 650-710 us, an expiry in on_initialize 130-160 us.
W_SMALL = 120_000
W_ORDER = 300_000  # create / create_from_alert / start / claim_completion / cancel
W_PREDICT = 240_000  # not measured: like create (an alert instead of an order)
# A line's scheduled windows are iterated (not measured at a full line: ~8 us a window).
W_SCHEDULE = 120_000 + 8_000 * MAX_LINE_DOWNTIMES
W_COMPLETE = 900_000  # inspect: payment, service record, parts, lifecycle, Analytics, facility
W_INIT = 20_000  # on_initialize: the block's expiry queue read
W_EXPIRY_READ = 20_000  # a queued order read (and its queue entry removed)
W_EXPIRE = 180_000  # an order expired: escrow returned, provider stats, indexes

AlertKind = Enum("AlertKind", ("Deviation", "Predicted"))
AlertStatus = Enum("AlertStatus", ("Open", "Cleared", "Dismissed", "Resolved"))
OrderKind = Enum("OrderKind", ("Corrective", "Preventive"))
Verification = Enum("Verification", ("Telemetry", "Inspector"))
ORDER_STATUSES = (
    "Created",
    "Assigned",
    "Scheduled",
    "InProgress",
    "Claimed",
    "Verified",
    "Expired",
    "Cancelled",
)
OrderStatus = Enum("OrderStatus", ORDER_STATUSES)
TERMINAL = frozenset({"Verified", "Expired", "Cancelled"})
LineKey = Tuple(U32, U32)  # (facility or NO_FACILITY, line)


@dataclass
class Threshold(Record):
    """Raise at ``|deviation| >= raise_bp``, clear at ``|deviation| <= clear_bp``, each after
    ``min_windows`` consecutive windows."""

    raise_bp: int
    clear_bp: int
    min_windows: int
    FIELDS: ClassVar = {"raise_bp": U32, "clear_bp": U32, "min_windows": U8}


@dataclass
class Alert(Record):
    twin: int
    kind: str
    metric: int | None
    deviation_bp: int
    probability_bp: int
    horizon_ms: int
    model: bytes | None
    evidence: bytes | None
    raised_by: bytes | None
    raised_at: int
    block: int
    status: str
    work_order: int | None
    FIELDS: ClassVar = {
        "twin": TwinId,
        "kind": AlertKind,
        "metric": Option(U16),
        "deviation_bp": I32,
        "probability_bp": U16,
        "horizon_ms": U64,
        "model": Option(H256),
        "evidence": Option(H256),
        "raised_by": Option(AccountId),
        "raised_at": U64,
        "block": U64,
        "status": AlertStatus,
        "work_order": Option(U64),
    }


@dataclass
class Part(Record):
    """A line of the parts replaced: part number, quantity and the line's total cost."""

    part: str
    quantity: int
    cost: int
    FIELDS: ClassVar = {"part": Str(MAX_PART), "quantity": U32, "cost": U128}


@dataclass
class WorkOrder(Record):
    twin: int
    payer: bytes
    alert: int | None
    kind: str
    description: bytes
    payment: int
    verification: str
    provider: bytes | None
    status: str
    window: tuple[int, int] | None
    line: tuple[int, int] | None
    created_at: int
    started_at: int
    claimed_at: int
    completed_at: int
    deadline: int
    report: bytes | None
    parts: list[Part]
    ok_windows: int
    verified_by: bytes | None
    FIELDS: ClassVar = {
        "twin": TwinId,
        "payer": AccountId,
        "alert": Option(U64),
        "kind": OrderKind,
        "description": H256,
        "payment": U128,
        "verification": Verification,
        "provider": Option(AccountId),
        "status": OrderStatus,
        "window": Option(Tuple(U64, U64)),
        "line": Option(LineKey),
        "created_at": U64,
        "started_at": U64,
        "claimed_at": U64,
        "completed_at": U64,
        "deadline": U64,
        "report": Option(H256),
        "parts": Vec(Part.wire_type(), MAX_PARTS),
        "ok_windows": U8,
        "verified_by": Option(AccountId),
    }


@dataclass
class PartRecord(Record):
    part: str
    quantity: int
    cost: int
    order: int
    at: int
    FIELDS: ClassVar = {
        "part": Str(MAX_PART),
        "quantity": U32,
        "cost": U128,
        "order": U64,
        "at": U64,
    }


@dataclass
class Costs(Record):
    orders: int
    service: int
    parts: int
    FIELDS: ClassVar = {"orders": U32, "service": U128, "parts": U128}


@dataclass
class ProviderStats(Record):
    completed: int
    expired: int
    earned: int
    FIELDS: ClassVar = {"completed": U32, "expired": U32, "earned": U128}


class Maintenance(Pallet):
    name = "Maintenance"

    VerifyWindows = StorageValue(
        U8, DEFAULT_VERIFY_WINDOWS, doc="Consecutive good windows that verify a completion (K)."
    )
    DeadlineBlocks = StorageValue(
        U32, DEFAULT_DEADLINE_BLOCKS, doc="Blocks from start to an unverified order's expiry."
    )
    TwinThresholds = StorageDoubleMap(
        TwinId, U16, Threshold.wire_type(), doc="Alert thresholds per twin and metric."
    )
    # The window hook reads this one value instead of probing TwinThresholds for every metric
    # of the window (a missing key costs a full trie walk).
    TwinThresholdMetrics = StorageMap(
        TwinId, Vec(U16, 1 << 16), doc="Metrics with a twin threshold, ascending (an index)."
    )
    ClassThresholds = StorageDoubleMap(
        EquipmentClass, U16, Threshold.wire_type(), doc="Alert thresholds per class and metric."
    )
    DevStates = StorageDoubleMap(
        TwinId, U16, Tuple(U8, U8), doc="Consecutive windows (beyond raise, within clear)."
    )
    NextAlertId = StorageValue(U64, 0, doc="Id of the next alert.")
    Alerts = StorageMap(U64, Alert.wire_type(), doc="Alerts by id.")
    TwinAlerts = StorageDoubleMap(TwinId, U64, Bool, doc="Alerts of each twin (an index).")
    OpenDeviation = StorageDoubleMap(TwinId, U16, U64, doc="Open deviation alert per metric.")
    OpenPrediction = StorageDoubleMap(TwinId, H256, U64, doc="Open predicted alert per model.")
    OpenAlertCount = StorageMap(TwinId, U32, 0, doc="Open alerts per twin.")
    LastAlert = StorageMap(TwinId, U64, doc="Latest alert raised for each twin.")
    Lines = StorageMap(TwinId, U32, doc="Production line of each twin (within its facility).")
    LineDowntime = StorageDoubleMap(
        LineKey, U64, Tuple(U64, U64), doc="Scheduled downtime [start, end) per line and order."
    )
    NextOrderId = StorageValue(U64, 0, doc="Id of the next work order.")
    Orders = StorageMap(U64, WorkOrder.wire_type(), doc="Work orders by id.")
    TwinOrders = StorageDoubleMap(TwinId, U64, Bool, doc="Work orders of each twin (an index).")
    OpenOrders = StorageMap(TwinId, U32, 0, doc="Unfinished work orders per twin.")
    # A list, not a double map: the window hook reads it on every close, and a prefix scan
    # costs O(writes in the block) in the executive's overlay.
    Verifying = StorageMap(
        TwinId, Vec(U64, MAX_OPEN_ORDERS), doc="Claimed orders the twin's telemetry verifies."
    )
    Expiries = StorageDoubleMap(U64, U64, Bool, doc="Orders that expire at each block.")
    ExpiryCount = StorageMap(U64, U32, 0, doc="Orders queued to expire at each block.")
    Parts = StorageDoubleMap(TwinId, U32, PartRecord.wire_type(), doc="Parts register.")
    PartCount = StorageMap(TwinId, U32, 0, doc="Parts records per twin.")
    TwinCosts = StorageMap(TwinId, Costs.wire_type(), doc="Maintenance cost totals per twin.")
    Providers = StorageMap(
        AccountId, ProviderStats.wire_type(), doc="Completed and expired orders per provider."
    )

    class Event(PalletEvents):
        TwinThresholdSet = (
            ("twin", TwinId),
            ("metric", U16),
            ("threshold", Option(Threshold.wire_type())),
        )
        ClassThresholdSet = (
            ("class", EquipmentClass),
            ("metric", U16),
            ("threshold", Option(Threshold.wire_type())),
        )
        AlertRaised = (
            ("alert", U64),
            ("twin", TwinId),
            ("kind", AlertKind),
            ("metric", Option(U16)),
            ("deviation_bp", I32),
            ("probability_bp", U16),
        )
        AlertUpdated = (("alert", U64), ("probability_bp", U16), ("horizon_ms", U64))
        AlertCleared = (("alert", U64), ("twin", TwinId), ("deviation_bp", I32))
        AlertDismissed = (("alert", U64), ("by", AccountId))
        LineSet = (("twin", TwinId), ("line", Option(U32)))
        WorkOrderCreated = (
            ("order", U64),
            ("twin", TwinId),
            ("payer", AccountId),
            ("alert", Option(U64)),
            ("payment", U128),
        )
        WorkOrderAssigned = (("order", U64), ("provider", AccountId))
        WorkOrderScheduled = (("order", U64), ("start", U64), ("end", U64))
        WorkOrderStarted = (("order", U64), ("deadline", U64))
        CompletionClaimed = (("order", U64), ("report", H256), ("parts", U32))
        VerificationProgress = (("order", U64), ("ok_windows", U8))
        Inspected = (("order", U64), ("inspector", AccountId), ("approved", Bool), ("report", H256))
        WorkOrderVerified = (
            ("order", U64),
            ("twin", TwinId),
            ("provider", AccountId),
            ("by", Option(AccountId)),
        )
        EscrowReleased = (("order", U64), ("provider", AccountId), ("amount", U128))
        EscrowReturned = (("order", U64), ("payer", AccountId), ("amount", U128))
        WorkOrderExpired = (("order", U64),)
        WorkOrderCancelled = (("order", U64),)

    class Error(PalletErrors):
        UnknownTwin = "no twin with this id"
        TwinDecommissioned = "the twin is decommissioned"
        NoPermission = "the sender is neither the twin's owner nor an OPERATE delegate"
        NotLineSetter = "only the owner, an OPERATE delegate or the facility's operator may"
        UnknownMetric = "no registered metric with this id"
        EmptyClass = "the equipment class must not be empty"
        InvalidThreshold = "need 0 < raise_bp, clear_bp <= raise_bp, 1 <= min_windows <= 16"
        NotPredictiveWorker = "the sender does not hold the PredictiveWorker role"
        NotAuthorizedForFacility = "the worker was not authorized for the twin's facility"
        SimulationUnavailable = "the Simulation pallet has no model registry"
        ModelNotActive = "the model is not registered and active in Simulation"
        InvalidProbability = "probability_bp must be at most 10000"
        InvalidHorizon = "horizon_ms must be positive"
        UnknownAlert = "no alert with this id"
        AlertNotOpen = "the alert is not open"
        AlertHasOrder = "a work order was created from this alert already"
        UnknownOrder = "no work order with this id"
        NotPayer = "the sender is not the work order's payer"
        NotProvider = "the sender is not the provider assigned to the work order"
        NotServiceProvider = "the account does not hold the ServiceProvider role"
        NotInspector = "the sender does not hold the CertifiedAuditor role"
        ConflictOfInterest = "the inspector is the payer, provider or owner"
        WrongStatus = "the work order is not in a state that allows this"
        WrongVerification = "the work order is verified another way"
        TooManyOpenOrders = "the twin has the maximum number of unfinished work orders"
        InsufficientBalance = "the payer's free balance cannot cover the payment"
        InvalidWindow = "the window is empty, too long or already over"
        WindowNotStarted = "the scheduled downtime window has not begun"
        DowntimeOverlap = "the window overlaps scheduled downtime on the same line"
        LineFull = "the line has the maximum number of scheduled windows"
        LineBusy = "the twin has downtime scheduled on its current line"
        SchedulerFull = "no block near the deadline has room in the expiry queue"
        Overflow = "a counter overflowed"

    # ------------------------------------------------------------------ helpers
    def _live(self, twin: int) -> TwinInfo:
        t = self.runtime.equipment.twin(twin)
        if t is None:
            raise self.Error.UnknownTwin()
        if t.lifecycle == "Decommissioned":
            raise self.Error.TwinDecommissioned()
        return t

    def _ensure_operate(self, who: bytes, twin: int) -> TwinInfo:
        t = self._live(twin)
        if not self.runtime.equipment.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        return t

    def _order(self, oid: int) -> WorkOrder:
        o: WorkOrder | None = self.Orders.get(oid)
        if o is None:
            raise self.Error.UnknownOrder()
        return o

    def _status(self, o: WorkOrder, *allowed: str) -> None:
        if o.status not in allowed:
            raise self.Error.WrongStatus(f"{o.status}, needs {' or '.join(allowed)}")

    def _line_key(self, twin: int, t: TwinInfo) -> tuple[int, int] | None:
        line = self.Lines.get(twin)
        if line is None:
            return None
        return (NO_FACILITY if t.facility is None else t.facility, line)

    def _check_threshold(self, th: Threshold | None) -> None:
        if th is not None and not (
            th.raise_bp > 0
            and th.clear_bp <= th.raise_bp
            and 1 <= th.min_windows <= MAX_MIN_WINDOWS
        ):
            raise self.Error.InvalidThreshold()

    def _ensure_metric(self, metric: int) -> None:
        if not self.runtime.telemetry.Metrics.contains(metric):
            raise self.Error.UnknownMetric(str(metric))

    def threshold(self, twin: int, metric: int, cls: str | None = None) -> Threshold | None:
        """The twin's own threshold of a metric, else its class's."""
        th: Threshold | None = self.TwinThresholds.get(twin, metric)
        if th is not None:
            return th
        if cls is None:
            t = self.runtime.equipment.twin(twin)
            if t is None:
                return None
            cls = t.equipment_class
        return self.ClassThresholds.get(cls, metric)  # type: ignore[no-any-return]

    def _new_alert(self, alert: Alert) -> int:
        aid = self.NextAlertId.get()
        if aid >= U64.max:
            raise self.Error.Overflow()
        self.NextAlertId.put(aid + 1)
        self.Alerts.insert(aid, alert)
        self.TwinAlerts.insert(alert.twin, aid, True)
        self.OpenAlertCount.insert(alert.twin, self.OpenAlertCount.get(alert.twin) + 1)
        self.LastAlert.insert(alert.twin, aid)
        self.deposit(
            self.Event.AlertRaised(
                aid, alert.twin, alert.kind, alert.metric, alert.deviation_bp, alert.probability_bp
            )
        )
        return aid

    def _close_alert(self, aid: int, a: Alert, status: str) -> None:
        """Leave the Open state: free the (twin, metric) or (twin, model) slot."""
        if a.status == "Open":
            if a.kind == "Deviation" and a.metric is not None:
                self.OpenDeviation.remove(a.twin, a.metric)
            elif a.model is not None:
                self.OpenPrediction.remove(a.twin, a.model)
            self.OpenAlertCount.insert(a.twin, max(0, self.OpenAlertCount.get(a.twin) - 1))
        a.status = status
        self.Alerts.insert(aid, a)

    def _unschedule(self, oid: int, o: WorkOrder) -> None:
        if o.line is not None:
            self.LineDowntime.remove(o.line, oid)

    def _finish(self, oid: int, o: WorkOrder, status: str) -> None:
        """Write a terminal state and drop the order from every queue and index of work."""
        o.status = status
        self._unschedule(oid, o)
        verifying: list[int] = self.Verifying.get(o.twin) or []
        if oid in verifying:
            rest = [v for v in verifying if v != oid]
            if rest:
                self.Verifying.insert(o.twin, rest)
            else:
                self.Verifying.remove(o.twin)
        if o.deadline:
            if self.Expiries.contains(o.deadline, oid):
                self.Expiries.remove(o.deadline, oid)
                self.ExpiryCount.insert(o.deadline, max(0, self.ExpiryCount.get(o.deadline) - 1))
        self.OpenOrders.insert(o.twin, max(0, self.OpenOrders.get(o.twin) - 1))
        self.Orders.insert(oid, o)

    def _create(
        self,
        payer: bytes,
        twin: int,
        alert: int | None,
        kind: str,
        description: bytes,
        payment: int,
        verification: str,
    ) -> int:
        if self.OpenOrders.get(twin) >= MAX_OPEN_ORDERS:
            raise self.Error.TooManyOpenOrders()
        if payment and self.runtime.balances.free_balance(payer) < payment:
            raise self.Error.InsufficientBalance()
        oid = self.NextOrderId.get()
        if oid >= U64.max:
            raise self.Error.Overflow()
        if payment:
            self.runtime.balances.reserve(payer, payment)
        self.NextOrderId.put(oid + 1)
        o = WorkOrder(
            twin, payer, alert, kind, description, payment, verification, None, "Created",
            None, None, self._now(), 0, 0, 0, 0, None, [], 0, None,
        )  # fmt: skip
        self.Orders.insert(oid, o)
        self.TwinOrders.insert(twin, oid, True)
        self.OpenOrders.insert(twin, self.OpenOrders.get(twin) + 1)
        self.deposit(self.Event.WorkOrderCreated(oid, twin, payer, alert, payment))
        return oid

    # ------------------------------------------------------------------ thresholds and alerts
    @call(
        0,
        weight=W_SMALL,
        origin=SIGNED,
        args=(("twin", TwinId), ("metric", U16), ("threshold", Option(Threshold.wire_type()))),
    )
    def set_twin_threshold(
        self, origin: Origin, twin: int, metric: int, threshold: Threshold | None
    ) -> None:
        """Set (or with None remove) a twin's alert threshold of a metric (owner or OPERATE)."""
        who = ensure_signed(origin)
        self._ensure_operate(who, twin)
        self._ensure_metric(metric)
        self._check_threshold(threshold)
        if threshold is None:
            self.TwinThresholds.remove(twin, metric)
        else:
            self.TwinThresholds.insert(twin, metric, threshold)
        self._index_twin_threshold(twin, metric, threshold is not None)
        self.deposit(self.Event.TwinThresholdSet(twin, metric, threshold))

    def _index_twin_threshold(self, twin: int, metric: int, present: bool) -> None:
        metrics = set(self.TwinThresholdMetrics.get(twin) or [])
        if present == (metric in metrics):
            return
        metrics = metrics | {metric} if present else metrics - {metric}
        if metrics:
            self.TwinThresholdMetrics.insert(twin, sorted(metrics))
        else:
            self.TwinThresholdMetrics.remove(twin)

    @call(
        1,
        weight=W_SMALL,
        origin=ROOT,
        args=(
            ("class", EquipmentClass),
            ("metric", U16),
            ("threshold", Option(Threshold.wire_type())),
        ),
    )
    def set_class_threshold(
        self, origin: Origin, cls: str, metric: int, threshold: Threshold | None
    ) -> None:
        """Set (or remove) the default alert threshold of a metric for a class (root)."""
        ensure_root(origin)
        if not cls:
            raise self.Error.EmptyClass()
        self._ensure_metric(metric)
        self._check_threshold(threshold)
        if threshold is None:
            self.ClassThresholds.remove(cls, metric)
        else:
            self.ClassThresholds.insert(cls, metric, threshold)
        self.deposit(self.Event.ClassThresholdSet(cls, metric, threshold))

    @call(
        2,
        weight=W_PREDICT,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("probability_bp", U16),
            ("horizon_ms", U64),
            ("model", H256),
            ("evidence", H256),
        ),
    )
    def submit_prediction(
        self,
        origin: Origin,
        twin: int,
        probability_bp: int,
        horizon_ms: int,
        model: bytes,
        evidence: bytes,
    ) -> None:
        """Raise (or update) a predicted-failure alert (a PredictiveWorker authorized for the
        twin's facility, running a model active in Simulation)."""
        who = ensure_signed(origin)
        roles = self.runtime.roles
        grant = roles.Grants.get(who, PREDICTIVE_WORKER)
        if grant is None:
            raise self.Error.NotPredictiveWorker()
        t = self._live(twin)
        if grant.granted_by is not None:
            f = None if t.facility is None else self.runtime.facility.facility(t.facility)
            if f is None or f.operator != grant.granted_by:
                raise self.Error.NotAuthorizedForFacility()
        if probability_bp > BP:
            raise self.Error.InvalidProbability()
        if horizon_ms == 0:
            raise self.Error.InvalidHorizon()
        model_active = getattr(self.runtime.simulation, "model_active", None)
        if model_active is None:
            raise self.Error.SimulationUnavailable()
        if not model_active(model):
            raise self.Error.ModelNotActive()
        now = self._now()
        aid = self.OpenPrediction.get(twin, model)
        if aid is not None:
            a: Alert = self.Alerts.get(aid)
            a.probability_bp, a.horizon_ms, a.evidence = probability_bp, horizon_ms, evidence
            a.raised_by, a.raised_at, a.block = who, now, self.runtime.block.number
            self.Alerts.insert(aid, a)
            self.LastAlert.insert(twin, aid)
            self.deposit(self.Event.AlertUpdated(aid, probability_bp, horizon_ms))
            return
        alert = Alert(
            twin, "Predicted", None, 0, probability_bp, horizon_ms, model, evidence, who, now,
            self.runtime.block.number, "Open", None,
        )  # fmt: skip
        self.OpenPrediction.insert(twin, model, self._new_alert(alert))

    @call(3, weight=W_SMALL, origin=SIGNED, args=(("alert", U64),))
    def dismiss_alert(self, origin: Origin, alert: int) -> None:
        """Close an open alert without a work order (owner or OPERATE delegate)."""
        who = ensure_signed(origin)
        a: Alert | None = self.Alerts.get(alert)
        if a is None:
            raise self.Error.UnknownAlert()
        self._ensure_operate(who, a.twin)
        if a.status != "Open":
            raise self.Error.AlertNotOpen()
        if a.kind == "Deviation" and a.metric is not None:
            self.DevStates.remove(a.twin, a.metric)  # a persisting deviation raises again
        self._close_alert(alert, a, "Dismissed")
        self.deposit(self.Event.AlertDismissed(alert, who))

    # ------------------------------------------------------------------ lines
    @call(4, weight=W_SCHEDULE, origin=SIGNED, args=(("twin", TwinId), ("line", Option(U32))))
    def set_line(self, origin: Origin, twin: int, line: int | None) -> None:
        """Put the twin on a production line of its facility, or take it off (owner, OPERATE
        delegate, or the facility's operator)."""
        who = ensure_signed(origin)
        t = self._live(twin)
        if not self.runtime.equipment.has_right(twin, who, OPERATE, t):
            f = None if t.facility is None else self.runtime.facility.facility(t.facility)
            if f is None or f.operator != who or not self.runtime.roles.has(who, FACILITY_OPERATOR):
                raise self.Error.NotLineSetter()
        old = self._line_key(twin, t)
        if old is not None:  # bounded: at most MAX_LINE_DOWNTIMES windows per line
            for oid, _ in self.LineDowntime.iter_prefix(old):
                if self.TwinOrders.contains(twin, oid):
                    raise self.Error.LineBusy()
        if line is None:
            self.Lines.remove(twin)
        else:
            self.Lines.insert(twin, line)
        self.deposit(self.Event.LineSet(twin, line))

    # ------------------------------------------------------------------ work orders
    @call(
        5,
        weight=W_ORDER,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("kind", OrderKind),
            ("description", H256),
            ("payment", U128),
            ("verification", Verification),
        ),
    )
    def create(
        self,
        origin: Origin,
        twin: int,
        kind: str,
        description: bytes,
        payment: int,
        verification: str,
    ) -> None:
        """Open a work order by hand and reserve its payment from the sender (owner or
        OPERATE delegate) as escrow."""
        who = ensure_signed(origin)
        self._ensure_operate(who, twin)
        self._create(who, twin, None, kind, description, payment, verification)

    @call(
        6,
        weight=W_ORDER,
        origin=SIGNED,
        args=(
            ("alert", U64),
            ("description", H256),
            ("payment", U128),
            ("verification", Verification),
        ),
    )
    def create_from_alert(
        self, origin: Origin, alert: int, description: bytes, payment: int, verification: str
    ) -> None:
        """Open a corrective work order for an open alert (owner or OPERATE delegate); the
        payment is reserved as escrow and Analytics records the failure."""
        who = ensure_signed(origin)
        a: Alert | None = self.Alerts.get(alert)
        if a is None:
            raise self.Error.UnknownAlert()
        self._ensure_operate(who, a.twin)
        if a.status != "Open":
            raise self.Error.AlertNotOpen()
        if a.work_order is not None:
            raise self.Error.AlertHasOrder()
        oid = self._create(who, a.twin, alert, "Corrective", description, payment, verification)
        a.work_order = oid
        self.Alerts.insert(alert, a)
        note_failure = getattr(self.runtime.analytics, "note_failure", None)
        if note_failure is not None:
            note_failure(a.twin, a.raised_at)

    @call(7, weight=W_SMALL, origin=SIGNED, args=(("order", U64), ("provider", AccountId)))
    def assign(self, origin: Origin, order: int, provider: bytes) -> None:
        """Assign (or reassign, before scheduling) a ServiceProvider (the payer)."""
        who = ensure_signed(origin)
        o = self._order(order)
        if o.payer != who:
            raise self.Error.NotPayer()
        self._status(o, "Created", "Assigned")
        if not self.runtime.roles.has(provider, SERVICE_PROVIDER):
            raise self.Error.NotServiceProvider()
        o.provider, o.status = provider, "Assigned"
        self.Orders.insert(order, o)
        self.deposit(self.Event.WorkOrderAssigned(order, provider))

    @call(
        8,
        weight=W_SCHEDULE,
        origin=SIGNED,
        args=(("order", U64), ("start", U64), ("end", U64)),
    )
    def schedule(self, origin: Origin, order: int, start: int, end: int) -> None:
        """Schedule (or move) the downtime window ``[start, end)`` in ms (the payer or the
        assigned provider); it must not overlap other downtime on the twin's line."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who not in (o.payer, o.provider):
            raise self.Error.NotPayer()
        self._status(o, "Assigned", "Scheduled")
        if not start < end or end - start > MAX_DOWNTIME_MS or end <= self._now():
            raise self.Error.InvalidWindow()
        t = self._live(o.twin)
        line = self._line_key(o.twin, t)
        if line is not None:
            n = 0
            for other, (s, e) in self.LineDowntime.iter_prefix(line):
                if other == order:
                    continue
                n += 1
                if start < e and s < end:
                    raise self.Error.DowntimeOverlap(f"work order {other}")
            if n >= MAX_LINE_DOWNTIMES:
                raise self.Error.LineFull()
        self._unschedule(order, o)
        if line is not None:
            self.LineDowntime.insert(line, order, (start, end))
        o.window, o.line, o.status = (start, end), line, "Scheduled"
        self.Orders.insert(order, o)
        self.deposit(self.Event.WorkOrderScheduled(order, start, end))

    @call(9, weight=W_ORDER, origin=SIGNED, args=(("order", U64),))
    def start(self, origin: Origin, order: int) -> None:
        """Begin the work once its window began (provider or payer): the twin goes into
        Maintenance and the verification deadline is set."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who not in (o.payer, o.provider):
            raise self.Error.NotProvider()
        self._status(o, "Scheduled")
        now = self._now()
        if o.window is None or now < o.window[0]:
            raise self.Error.WindowNotStarted()
        t = self._live(o.twin)
        block = self.runtime.block.number + max(1, self.DeadlineBlocks.get())
        for _ in range(MAX_DEADLINE_PUSH):
            if self.ExpiryCount.get(block) < MAX_EXPIRIES_PER_BLOCK:
                break
            block += 1
        else:
            raise self.Error.SchedulerFull()
        if t.lifecycle == "Active":
            self.runtime.equipment.set_lifecycle_by(o.twin, "Maintenance", who)
        self.Expiries.insert(block, order, True)
        self.ExpiryCount.insert(block, self.ExpiryCount.get(block) + 1)
        o.status, o.started_at, o.deadline = "InProgress", now, block
        self.Orders.insert(order, o)
        self.deposit(self.Event.WorkOrderStarted(order, block))

    @call(
        10,
        weight=W_ORDER,
        origin=SIGNED,
        args=(("order", U64), ("report", H256), ("parts", Vec(Part.wire_type(), MAX_PARTS))),
    )
    def claim_completion(
        self, origin: Origin, order: int, report: bytes, parts: list[Part]
    ) -> None:
        """Claim the work done, with the report hash and the parts replaced (the provider)."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who != o.provider:
            raise self.Error.NotProvider()
        self._status(o, "InProgress")
        if sum(p.cost for p in parts) > U128.max:
            raise self.Error.Overflow("the parts' total cost exceeds u128")
        o.status, o.claimed_at, o.report, o.parts, o.ok_windows = (
            "Claimed", self._now(), report, parts, 0
        )  # fmt: skip
        self.Orders.insert(order, o)
        if o.verification == "Telemetry":
            self.Verifying.insert(o.twin, [*(self.Verifying.get(o.twin) or []), order])
        self.deposit(self.Event.CompletionClaimed(order, report, len(parts)))

    @call(
        11,
        weight=W_COMPLETE,
        origin=SIGNED,
        args=(("order", U64), ("approve", Bool), ("report", H256)),
    )
    def inspect(self, origin: Origin, order: int, approve: bool, report: bytes) -> None:
        """Approve (verify: the escrow is released) or reject (back to rework) a claimed
        completion as certified inspector (a CertifiedAuditor with no stake in the order)."""
        who = ensure_signed(origin)
        if not self.runtime.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotInspector()
        o = self._order(order)
        t = self._live(o.twin)
        if who in (o.payer, o.provider, t.owner):
            raise self.Error.ConflictOfInterest()
        if o.verification != "Inspector":
            raise self.Error.WrongVerification()
        self._status(o, "Claimed")
        self.deposit(self.Event.Inspected(order, who, approve, report))
        if approve:
            self._complete(order, o, who)
        else:
            o.status = "InProgress"
            self.Orders.insert(order, o)

    @call(12, weight=W_ORDER, origin=SIGNED, args=(("order", U64),))
    def cancel(self, origin: Origin, order: int) -> None:
        """Cancel an order that has not started (the payer): the escrow returns."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who != o.payer:
            raise self.Error.NotPayer()
        self._status(o, "Created", "Assigned", "Scheduled")
        if o.payment:
            self.runtime.balances.unreserve(o.payer, o.payment)
            self.deposit(self.Event.EscrowReturned(order, o.payer, o.payment))
        self._finish(order, o, "Cancelled")
        self.deposit(self.Event.WorkOrderCancelled(order))

    # ------------------------------------------------------------------ completion and expiry
    def _complete(self, oid: int, o: WorkOrder, by: bytes | None) -> None:
        """The order is verified: pay, record service and parts, totals, lifecycle, alert."""
        if o.provider is None:  # claimed orders always have one
            raise self.Error.WrongStatus("no provider")
        rt = self.runtime
        now = self._now()
        if o.payment:
            rt.balances.repatriate_reserved(o.payer, o.provider, o.payment)
        o.completed_at, o.verified_by = now, by
        self._finish(oid, o, "Verified")
        t = self._live(o.twin)
        if t.lifecycle == "Maintenance":
            rt.equipment.set_lifecycle_by(o.twin, "Active", o.provider)
        report = o.report or b"\x00" * 32
        rt.equipment.record_service_by(o.twin, o.provider, o.kind, report, o.payment, oid)
        n = self.PartCount.get(o.twin)
        parts_cost = 0
        for p in o.parts:
            self.Parts.insert(o.twin, n, PartRecord(p.part, p.quantity, p.cost, oid, now))
            n += 1
            parts_cost += p.cost
        self.PartCount.insert(o.twin, n)
        c: Costs = self.TwinCosts.get(o.twin) or Costs(0, 0, 0)
        self.TwinCosts.insert(
            o.twin,
            Costs(
                min(c.orders + 1, U32.max),
                min(c.service + o.payment, U128.max),
                min(c.parts + parts_cost, U128.max),
            ),
        )
        s: ProviderStats = self.Providers.get(o.provider) or ProviderStats(0, 0, 0)
        s.completed = min(s.completed + 1, U32.max)
        s.earned = min(s.earned + o.payment, U128.max)
        self.Providers.insert(o.provider, s)
        if o.alert is not None:
            a: Alert | None = self.Alerts.get(o.alert)
            if a is not None and a.status in ("Open", "Cleared"):
                self._close_alert(o.alert, a, "Resolved")
        note_repair = getattr(rt.analytics, "note_repair", None)
        if note_repair is not None:
            note_repair(o.twin, o.started_at, now)
        if t.facility is not None:
            self.in_layer(lambda: rt.facility.note_verified_maintenance(t.facility, report))
        if o.payment:
            self.deposit(self.Event.EscrowReleased(oid, o.provider, o.payment))
        self.deposit(self.Event.WorkOrderVerified(oid, o.twin, o.provider, by))

    def _expire(self, oid: int, o: WorkOrder) -> None:
        if o.payment:
            self.runtime.balances.unreserve(o.payer, o.payment)
        if o.provider is not None:
            s: ProviderStats = self.Providers.get(o.provider) or ProviderStats(0, 0, 0)
            s.expired = min(s.expired + 1, U32.max)
            self.Providers.insert(o.provider, s)
        o.deadline = 0  # its queue entry is being consumed
        self._finish(oid, o, "Expired")
        if o.payment:
            self.deposit(self.Event.EscrowReturned(oid, o.payer, o.payment))
        self.deposit(self.Event.WorkOrderExpired(oid))

    def on_initialize(self, number: int) -> int:
        """Expire the orders whose deadline is this block (at most MAX_EXPIRIES_PER_BLOCK)."""
        due = [oid for oid, _ in self.Expiries.iter_prefix(number)]
        if not due:
            return W_INIT  # the queue's (empty) prefix was read all the same
        expired = 0
        for oid in due:
            o: WorkOrder | None = self.Orders.get(oid)
            if o is not None and o.status in ("InProgress", "Claimed"):
                self.in_layer(lambda oid=oid, o=o: self._expire(oid, o))
                expired += 1
        self.Expiries.remove_prefix(number)
        self.ExpiryCount.remove(number)
        return W_INIT + W_EXPIRY_READ * len(due) + W_EXPIRE * expired

    # ------------------------------------------------------------------ window hook
    def on_window_closed(self, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        """Raise or clear deviation alerts; count good windows of claimed orders."""
        t = self.runtime.equipment.twin(twin)
        if t is None:
            return
        bench = self.runtime.benchmark
        cls = t.equipment_class
        own = set(self.TwinThresholdMetrics.get(twin) or [])
        devs: dict[int, tuple[int, Threshold]] = {}
        for metric, agg in sorted(aggs.items()):
            th: Threshold | None = (
                self.TwinThresholds.get(twin, metric)
                if metric in own
                else self.ClassThresholds.get(cls, metric)
            )
            if th is None:
                continue
            dev = bench.deviation_bp(twin, metric, agg, cls=cls, aggs=aggs)
            if dev is None:
                continue
            devs[metric] = (dev, th)
            self._evaluate(twin, metric, dev, th, start)
        verifying: list[int] = self.Verifying.get(twin) or []
        if not verifying:
            return
        env = self.runtime.equipment.envelopes(twin)
        good = all(
            env[m].min <= agg.min and agg.max <= env[m].max for m, agg in aggs.items() if m in env
        ) and all(abs(dev) <= th.clear_bp for dev, th in devs.values())
        k = max(1, self.VerifyWindows.get())
        completions = 0
        for oid in verifying:
            o: WorkOrder = self.Orders.get(oid)
            if o.ok_windows < k:
                if start < o.claimed_at:
                    continue  # the window began before the claim: not evidence of the repair
                o.ok_windows = min(o.ok_windows + 1, COUNTER_MAX) if good else 0
                self.Orders.insert(oid, o)
                self.deposit(self.Event.VerificationProgress(oid, o.ok_windows))
            # Verified by its telemetry; a completion costs more than the rest of the close,
            # so at most MAX_COMPLETIONS_PER_CLOSE run here and the others at the next close.
            if o.ok_windows >= k and completions < MAX_COMPLETIONS_PER_CLOSE:
                completions += 1
                if not self.in_layer(
                    lambda oid=oid: self._complete(oid, self.Orders.get(oid), None)
                ):
                    # Its layer reverted (e.g. the escrow is gone): it needs K new windows, and
                    # does not hold up the twin's other orders meanwhile.
                    o.ok_windows = 0
                    self.Orders.insert(oid, o)
                    self.deposit(self.Event.VerificationProgress(oid, 0))

    def _evaluate(self, twin: int, metric: int, dev: int, th: Threshold, at: int) -> None:
        prev: tuple[int, int] | None = self.DevStates.get(twin, metric)
        over, under = prev or (0, 0)
        if abs(dev) >= th.raise_bp:
            over, under = min(over + 1, COUNTER_MAX), 0
        elif abs(dev) <= th.clear_bp:
            over, under = 0, min(under + 1, COUNTER_MAX)
        else:
            over, under = 0, 0
        aid = self.OpenDeviation.get(twin, metric)
        if aid is None and over >= th.min_windows:
            alert = Alert(
                twin, "Deviation", metric, _i32(dev), 0, 0, None, None, None, self._now(),
                self.runtime.block.number, "Open", None,
            )  # fmt: skip
            self.OpenDeviation.insert(twin, metric, self._new_alert(alert))
        elif aid is not None and under >= th.min_windows:
            a: Alert = self.Alerts.get(aid)
            self._close_alert(aid, a, "Cleared")
            self.deposit(self.Event.AlertCleared(aid, twin, _i32(dev)))
        # Write only a change: each write is a state-root update paid in every window close.
        if over or under:
            if prev is None or tuple(prev) != (over, under):
                self.DevStates.insert(twin, metric, (over, under))
        elif prev is not None:
            self.DevStates.remove(twin, metric)

    # ------------------------------------------------------------------ genesis
    def genesis(self, config: dict[str, Any]) -> None:
        """``verify_windows`` (K, default 3); ``deadline_blocks`` (default 14400);
        ``class_thresholds``: [[class, metric, raise_bp, clear_bp, min_windows]];
        ``twin_thresholds``: [[twin, metric, raise_bp, clear_bp, min_windows]];
        ``lines``: [[twin, line]]."""
        k = int(config.get("verify_windows", DEFAULT_VERIFY_WINDOWS))
        if not 1 <= k <= COUNTER_MAX:
            raise ValueError("maintenance verify_windows must be 1..255")
        self.VerifyWindows.put(k)
        d = int(config.get("deadline_blocks", DEFAULT_DEADLINE_BLOCKS))
        if not 1 <= d <= U32.max:
            raise ValueError("maintenance deadline_blocks must be positive")
        self.DeadlineBlocks.put(d)
        for key, items in (
            ("class_thresholds", self.ClassThresholds),
            ("twin_thresholds", self.TwinThresholds),
        ):
            for scope, metric, raise_bp, clear_bp, n in config.get(key, []):
                th = Threshold(int(raise_bp), int(clear_bp), int(n))
                try:
                    self._ensure_metric(int(metric))
                    self._check_threshold(th)
                except DispatchError as exc:
                    raise ValueError(f"genesis {key} {scope}/{metric}: {exc}") from exc
                if key == "class_thresholds":
                    items.insert(str(scope), int(metric), th)
                else:
                    items.insert(int(scope), int(metric), th)
                    self._index_twin_threshold(int(scope), int(metric), True)
        for twin, line in config.get("lines", []):
            if self.runtime.equipment.twin(int(twin)) is None:
                raise ValueError(f"genesis line for unknown twin {twin}")
            self.Lines.insert(int(twin), int(line))

    # ------------------------------------------------------------------ API for other pallets
    def last_alert(self, twin: int) -> int | None:
        return self.LastAlert.get(twin)  # type: ignore[no-any-return]

    def open_alerts(self, twin: int) -> int:
        return int(self.OpenAlertCount.get(twin))

    def alert(self, aid: int) -> Alert | None:
        return self.Alerts.get(aid)  # type: ignore[no-any-return]

    def order(self, oid: int) -> WorkOrder | None:
        return self.Orders.get(oid)  # type: ignore[no-any-return]

    def parts(self, twin: int) -> list[PartRecord]:
        return [self.Parts.get(twin, i) for i in range(self.PartCount.get(twin))]

    def constants(self) -> dict[str, Any]:
        return {
            "MaxOpenOrdersPerTwin": MAX_OPEN_ORDERS,
            "MaxLineDowntimes": MAX_LINE_DOWNTIMES,
            "MaxExpiriesPerBlock": MAX_EXPIRIES_PER_BLOCK,
            "MaxParts": MAX_PARTS,
            "MaxDowntimeMs": MAX_DOWNTIME_MS,
            "MaxMinWindows": MAX_MIN_WINDOWS,
            "OrderStatuses": list(ORDER_STATUSES),
        }


def _i32(v: int) -> int:
    return max(I32_MIN, min(I32_MAX, v))


I32_MIN, I32_MAX = -(2**31), 2**31 - 1
