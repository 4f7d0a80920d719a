"""Maintenance alerts: thresholds per twin or class, deviation alerts with hysteresis raised
and cleared by window closes, predicted-failure alerts from PredictiveWorkers (a probability,
or from spec 5 a prognosis per failure mode with the remaining useful life), dismissal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.primitives.codec import H256, U16, U64, Option, Str
from twinchain.runtime.framework import ROOT, SIGNED, Origin, call, ensure_root, ensure_signed
from twinchain.runtime.pallets.equipment.types import EquipmentClass, TwinId
from twinchain.runtime.pallets.maintenance.types import (
    ANOMALY,
    BP,
    COUNTER_MAX,
    MAX_MIN_WINDOWS,
    MAX_MODE,
    Alert,
    Prognosis,
    Threshold,
)
from twinchain.runtime.pallets.roles import PREDICTIVE_WORKER
from twinchain.runtime.weights import maintenance as weights

if TYPE_CHECKING:
    from twinchain.runtime.pallets.equipment.types import TwinInfo


class AlertsFeature:
    """Thresholds and alerts of the Maintenance pallet."""

    # ------------------------------------------------------------------ thresholds and alerts
    @call(
        0,
        weight=weights.W_SMALL,
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
        weight=weights.W_SMALL,
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
        weight=weights.W_PREDICT,
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
        who, _ = self._ensure_worker(origin, twin)
        self._check_forecast(probability_bp, horizon_ms, model)
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

    @call(
        13,
        weight=weights.W_PROGNOSIS,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("mode", Str(MAX_MODE)),
            ("probability_bp", U16),
            ("horizon_ms", U64),
            ("rul_p10_ms", U64),
            ("rul_p50_ms", U64),
            ("rul_p90_ms", U64),
            ("model", H256),
            ("evidence", H256),
        ),
        since=5,
    )
    def submit_prognosis(
        self,
        origin: Origin,
        twin: int,
        mode: str,
        probability_bp: int,
        horizon_ms: int,
        rul_p10_ms: int,
        rul_p50_ms: int,
        rul_p90_ms: int,
        model: bytes,
        evidence: bytes,
    ) -> None:
        """Raise (or update) the alert of a failure mode of a twin with its prognosis: the
        probability of failing within the horizon and the remaining useful life's P10, P50
        and P90 (ms). As submit_prediction: a PredictiveWorker authorized for the twin's
        facility, a model active in Simulation. ``mode``: one of the failure modes of the
        twin's registered class, or "anomaly". One open alert per (twin, model, mode)."""
        who, t = self._ensure_worker(origin, twin)
        self._check_forecast(probability_bp, horizon_ms, model)
        if not rul_p10_ms <= rul_p50_ms <= rul_p90_ms:
            raise self.Error.InvalidRul()
        modes = self.config.twins.failure_modes(t.equipment_class)
        if mode != ANOMALY and (modes is None or mode not in modes):
            raise self.Error.UnknownFailureMode(mode)
        now = self._now()
        prognosis = Prognosis(
            mode, probability_bp, horizon_ms, rul_p10_ms, rul_p50_ms, rul_p90_ms, now
        )
        aid = self.OpenPrognosis.get(twin, (model, mode))
        if aid is not None:
            a: Alert = self.Alerts.get(aid)
            a.probability_bp, a.horizon_ms, a.evidence = probability_bp, horizon_ms, evidence
            a.raised_by, a.raised_at, a.block = who, now, self.runtime.block.number
            self.Alerts.insert(aid, a)
            self.LastAlert.insert(twin, aid)
            self.deposit(self.Event.AlertUpdated(aid, probability_bp, horizon_ms))
        else:
            alert = Alert(
                twin, "Predicted", None, 0, probability_bp, horizon_ms, model, evidence, who,
                now, self.runtime.block.number, "Open", None,
            )  # fmt: skip
            aid = self._new_alert(alert)
            self.OpenPrognosis.insert(twin, (model, mode), aid)
        self.Prognoses.insert(aid, prognosis)
        self.deposit(
            self.Event.PrognosisSubmitted(
                aid, twin, mode, probability_bp, rul_p10_ms, rul_p50_ms, rul_p90_ms
            )
        )

    def _ensure_worker(self, origin: Origin, twin: int) -> tuple[bytes, TwinInfo]:
        """A PredictiveWorker authorized for the twin's facility: granted by its operator,
        or by governance (serving every facility)."""
        who = ensure_signed(origin)
        grant = self.config.roles.grant_of(who, PREDICTIVE_WORKER)
        if grant is None:
            raise self.Error.NotPredictiveWorker()
        t = self._live(twin)
        if grant.granted_by is not None:
            f = None if t.facility is None else self.config.facilities.facility(t.facility)
            if f is None or f.operator != grant.granted_by:
                raise self.Error.NotAuthorizedForFacility()
        return who, t

    def _check_forecast(self, probability_bp: int, horizon_ms: int, model: bytes) -> None:
        if probability_bp > BP:
            raise self.Error.InvalidProbability()
        if horizon_ms == 0:
            raise self.Error.InvalidHorizon()
        if not self.config.models.model_active(model):
            raise self.Error.ModelNotActive()

    @call(3, weight=weights.W_SMALL, origin=SIGNED, args=(("alert", U64),))
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

    def _check_threshold(self, th: Threshold | None) -> None:
        if th is not None and not (
            th.raise_bp > 0
            and th.clear_bp <= th.raise_bp
            and 1 <= th.min_windows <= MAX_MIN_WINDOWS
        ):
            raise self.Error.InvalidThreshold()

    def _ensure_metric(self, metric: int) -> None:
        if self.config.telemetry.metric(metric) is None:
            raise self.Error.UnknownMetric(str(metric))

    def threshold(self, twin: int, metric: int, cls: str | None = None) -> Threshold | None:
        """The twin's own threshold of a metric, else its class's."""
        th: Threshold | None = self.TwinThresholds.get(twin, metric)
        if th is not None:
            return th
        if cls is None:
            t = self.config.twins.twin(twin)
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
                prognosis: Prognosis | None = self.Prognoses.get(aid)
                if prognosis is None:
                    self.OpenPrediction.remove(a.twin, a.model)
                else:  # a failure mode's alert (spec 5): its own slot
                    self.OpenPrognosis.remove(a.twin, (a.model, prognosis.mode))
            self.OpenAlertCount.insert(a.twin, max(0, self.OpenAlertCount.get(a.twin) - 1))
        a.status = status
        self.Alerts.insert(aid, a)

    # ------------------------------------------------------------------ window hook
    def _measure_deviations(
        self, twin: int, cls: str, start: int, aggs: dict[int, Any]
    ) -> dict[int, tuple[int, Threshold]]:
        """Raise or clear the deviation alerts of a closed window; returns each thresholded
        metric's deviation (for the work orders its telemetry verifies)."""
        bench = self.config.deviations
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
        return devs

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

    # ------------------------------------------------------------------ API for other pallets
    def last_alert(self, twin: int) -> int | None:
        return self.LastAlert.get(twin)  # type: ignore[no-any-return]

    def open_alerts(self, twin: int) -> int:
        return int(self.OpenAlertCount.get(twin))

    def alert(self, aid: int) -> Alert | None:
        return self.Alerts.get(aid)  # type: ignore[no-any-return]


def _i32(v: int) -> int:
    return max(I32_MIN, min(I32_MAX, v))


I32_MIN, I32_MAX = -(2**31), 2**31 - 1
