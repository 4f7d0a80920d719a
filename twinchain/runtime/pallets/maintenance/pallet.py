"""Maintenance: deviation and predictive alerts, work orders, escrowed payment.

**Alerts.** Thresholds are configured per (twin, metric) by the twin's owner or an OPERATE
delegate, or per (class, metric) by root; a twin's own threshold wins. A threshold has a raise
level and a lower clear level in basis points of deviation (hysteresis) and a number of
consecutive windows. When a twin's telemetry window closes (``on_window_closed``), each
metric with a threshold is measured by ``Benchmark.deviation_bp``: ``min_windows`` consecutive
windows at or beyond ``raise_bp`` raise a Deviation alert, ``min_windows`` consecutive windows
within ``clear_bp`` clear it. At most one alert is open per (twin, metric), so a noisy signal
cannot flood the chain (an alert's ``raised_at`` is the block time). Off-chain predictive
workers (role PredictiveWorker) submit predictions (failure probability, horizon, model id,
evidence hash) with ``submit_prediction``: the model must be active in the Simulation pallet,
and the worker must be authorized for the twin's facility, i.e. its PredictiveWorker role was
granted by that facility's operator or by governance (root; such workers serve every facility).
One open Predicted alert per (twin, model): a new prediction updates it. Owners dismiss alerts.

**Prognoses** (spec 5). ``submit_prognosis`` is a prediction for one failure mode of the twin's
registered class (or ``anomaly``), with the remaining useful life's P10/P50/P90: one open alert
per (twin, model, mode), its latest prognosis kept beside it (``Prognoses``).

**Alarm lifecycle** (spec 5). An open alert is active and unacknowledged until the twin's owner,
an OPERATE delegate or its facility's operator acknowledges it; they may assign it to an account
and comment on it (``features/alarms.py``); any close (cleared, dismissed, resolved) clears it.

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

from typing import TYPE_CHECKING, Any

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
    Option,
    Str,
    Tuple,
    Vec,
)
from twinchain.runtime.framework import (
    DispatchError,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
)
from twinchain.runtime.pallets.equipment.types import OPERATE, EquipmentClass, TwinId
from twinchain.runtime.pallets.maintenance.config import Config
from twinchain.runtime.pallets.maintenance.features.alarms import AlarmsFeature
from twinchain.runtime.pallets.maintenance.features.alerts import AlertsFeature
from twinchain.runtime.pallets.maintenance.features.orders import WorkOrdersFeature
from twinchain.runtime.pallets.maintenance.types import (
    ALERT_STATES,
    COUNTER_MAX,
    DEFAULT_DEADLINE_BLOCKS,
    DEFAULT_VERIFY_WINDOWS,
    MAX_COMMENT,
    MAX_COMMENTS,
    MAX_DOWNTIME_MS,
    MAX_EXPIRIES_PER_BLOCK,
    MAX_LINE_DOWNTIMES,
    MAX_MIN_WINDOWS,
    MAX_MODE,
    MAX_OPEN_ORDERS,
    MAX_PARTS,
    ORDER_STATUSES,
    Alert,
    AlertAction,
    AlertKind,
    Assignment,
    Comment,
    Costs,
    LineKey,
    PartRecord,
    Prognosis,
    ProviderStats,
    Threshold,
    WorkOrder,
)
from twinchain.runtime.pallets.support import live

if TYPE_CHECKING:
    from twinchain.runtime.pallets.equipment.types import TwinInfo


class Maintenance(AlertsFeature, AlarmsFeature, WorkOrdersFeature, Pallet):
    name = "Maintenance"
    config: Config

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
    # Spec 5: prognoses per failure mode, and the alarm lifecycle.
    OpenPrognosis = StorageDoubleMap(
        TwinId, Tuple(H256, Str(MAX_MODE)), U64, doc="Open alert per (model, failure mode)."
    )
    Prognoses = StorageMap(U64, Prognosis.wire_type(), doc="Each prognosis alert's latest.")
    Acknowledged = StorageMap(U64, AlertAction.wire_type(), doc="Who acknowledged an alert.")
    Assignees = StorageMap(U64, Assignment.wire_type(), doc="Each assigned alert's assignee.")
    Comments = StorageDoubleMap(U64, U8, Comment.wire_type(), doc="Comments on each alert.")
    CommentCount = StorageMap(U64, U8, 0, doc="Comments on each alert so far.")

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
        PrognosisSubmitted = (
            ("alert", U64),
            ("twin", TwinId),
            ("mode", Str(MAX_MODE)),
            ("probability_bp", U16),
            ("rul_p10_ms", U64),
            ("rul_p50_ms", U64),
            ("rul_p90_ms", U64),
        )
        AlertAcknowledged = (("alert", U64), ("twin", TwinId), ("by", AccountId))
        AlertAssigned = (
            ("alert", U64),
            ("twin", TwinId),
            ("assignee", Option(AccountId)),
            ("by", AccountId),
        )
        AlertCommented = (("alert", U64), ("twin", TwinId), ("index", U8), ("by", AccountId))

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
        InvalidRul = "the remaining useful life needs rul_p10_ms <= rul_p50_ms <= rul_p90_ms"
        UnknownFailureMode = "the mode is not a failure mode of the twin's class nor 'anomaly'"
        NotAlertHandler = "the sender is not the twin's owner, an OPERATE delegate or its operator"
        AlreadyAcknowledged = "the alert was acknowledged already"
        NotAssigned = "the alert has no assignee"
        EmptyComment = "the comment is empty"
        TooManyComments = "the alert has the maximum number of comments"

    # ------------------------------------------------------------------ helpers
    def _live(self, twin: int) -> TwinInfo:
        return live(
            self.config.twins.twin(twin),
            self.Error.UnknownTwin,
            field="lifecycle",
            ended="Decommissioned",
            gone=self.Error.TwinDecommissioned,
        )

    def _ensure_operate(self, who: bytes, twin: int) -> TwinInfo:
        t = self._live(twin)
        if not self.config.twins.has_right(twin, who, OPERATE, t):
            raise self.Error.NoPermission()
        return t

    # ------------------------------------------------------------------ window hook
    def on_window_closed(self, twin: int, start: int, window_ms: int, aggs: dict[int, Any]) -> None:
        """Raise or clear deviation alerts; count good windows of claimed orders."""
        t = self.config.twins.twin(twin)
        if t is None:
            return
        devs = self._measure_deviations(twin, t.equipment_class, start, aggs)
        self._verify_by_window(twin, start, aggs, devs)

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
            if self.config.twins.twin(int(twin)) is None:
                raise ValueError(f"genesis line for unknown twin {twin}")
            self.Lines.insert(int(twin), int(line))

    # ------------------------------------------------------------------ metadata
    def constants(self) -> dict[str, Any]:
        return {
            "MaxOpenOrdersPerTwin": MAX_OPEN_ORDERS,
            "MaxLineDowntimes": MAX_LINE_DOWNTIMES,
            "MaxExpiriesPerBlock": MAX_EXPIRIES_PER_BLOCK,
            "MaxParts": MAX_PARTS,
            "MaxDowntimeMs": MAX_DOWNTIME_MS,
            "MaxMinWindows": MAX_MIN_WINDOWS,
            "OrderStatuses": list(ORDER_STATUSES),
            "AlertStates": list(ALERT_STATES),
            "MaxComment": MAX_COMMENT,
            "MaxComments": MAX_COMMENTS,
        }
