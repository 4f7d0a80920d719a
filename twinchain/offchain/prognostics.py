"""A prognostics engine for any equipment class: anomaly, failure probability and remaining
useful life (RUL) from window aggregates, learned from healthy history only.

Per window (:mod:`twinchain.offchain.windows`: count, min, max, sum, last per metric, exactly
as the chain aggregates) the engine reads **signals**: per gauge its window mean and spread
(max - min), per delta its rate (sum per second), per metric its reading count. Training
keeps those that move in healthy data and do not repeat another. Then, per unit:

1. **Baseline.** The unit's own level of each signal: the mean of its first
   ``baseline_windows`` windows, learning on slowly afterwards (a running mean over at most
   ``baseline_memory`` windows, paused while the unit looks abnormal), so that each unit is
   compared with itself, not with the fleet. The failure modes' metrics are corrected for
   the operating conditions (:class:`Adjustment`: a ridge fit on the metrics no mode names).
2. **Anomaly statistic.** Each signal's deviation from the baseline in units of the fleet's
   healthy within-unit spread (``sigma``): its EWMA (the deviation clipped at ``z_clip``, or
   at twice the EWMA when that is larger, so that a lasting drift is never capped), divided
   by the healthy spread of that EWMA, and the deviation itself (a combined Shewhart-EWMA
   chart: small lasting shifts and large sudden ones). Each part's alarm level
   (``threshold``, ``shewhart``) is extrapolated from the healthy units' block maxima held
   for ``confirm`` windows (a Gumbel fit) to a ``false_alarm`` chance over
   ``reference_windows``; the statistic is the larger part over its level.
3. **Failure modes.** Per mode the class names (metric, direction, limit, horizon): the
   unit's condition-corrected level of the metric is fitted as flat until an onset, then
   straight or bending towards the limit (:func:`trend_forecast`: every onset and shape,
   averaged with BIC weights). The mixture gives ``F(r)`` = P(the level is past the limit
   within r), whence RUL P10/P50/P90 (where F crosses 0.1, 0.5, 0.9) and P(failure within
   the horizon) = F(horizon). A class without failure modes (a provisional class derived
   from a CSV) gets one ``anomaly`` mode: the unclipped EWMA statistic, up, to
   ``anomaly_limit`` times its alarm level.
4. **Alert** (rule ``both``, the default): a window is abnormal when the statistic is at its
   alarm level and a mode is likely to fail within its horizon (``probability_bp``) or its
   RUL band is narrow ((P90 - P10) / P50 <= ``band``: a confident prognosis, whatever the
   horizon); ``confirm`` abnormal windows in a row raise an alert. Rules ``anomaly``,
   ``probability`` and ``either`` use one part or either.

:class:`UnitState` holds one unit's state and takes windows one at a time: the worker feeds it
what the chain finalizes, the evaluation feeds it a CSV's windows, through the same code.

A model file is canonical JSON (``twinchain-pdm/2``, kind ``prognostic``) bound to its class
by the class hash; its BLAKE3 hash is its identity on chain (:func:`models.model_hash`).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from twinchain.offchain.history import History, UnitHistory
from twinchain.offchain.models import MAX_PARAMS, ModelError, model_hash
from twinchain.offchain.windows import WindowTable, aggregate
from twinchain.primitives import codec
from twinchain.protocol.classdef import ClassMetric, EquipmentClass, class_hash

FORMAT = "twinchain-pdm/2"
KIND = "prognostic"
ANOMALY_MODE = "anomaly"
# RUL is reported up to this many horizons ahead; beyond it: "not within sight" (None).
RUL_HORIZONS = 20
_Q = (0.1, 0.5, 0.9)
RULES = ("anomaly", "probability", "either", "both")
MAX_CONFIRM = 8  # the training records the healthy peaks for confirm = 1..8
_GRID = 256  # points of the RUL grid
_ONSETS = 48  # onset candidates a trend fit tries
# trend shapes after an onset, as powers of the time since it: a + c h, a + c h + q h^2
SHAPES: tuple[tuple[int, ...] | float, ...] = ((0, 1), (0, 1, 2))


@dataclass(frozen=True)
class Settings:
    """The engine's tunables; the defaults are the detector before any per-class tuning."""

    baseline_windows: int = 8
    baseline_memory: int = 240
    ewma_alpha: float = 0.2
    z_clip: float = 4.0
    margin: float = 1.3
    reference_windows: int = 1000  # the threshold: P(alarm) of a healthy unit over this many
    false_alarm: float = 0.02  # ... windows
    confirm: int = 5
    rule: str = "both"  # "anomaly" | "probability" | "either" | "both"
    probability_bp: int = 5000
    band: float = 0.5  # rule "both": also alert when (P90 - P10) / P50 of the RUL is this narrow
    cusum_k: float = 0.5
    min_fit: int = 6
    trend_windows: int = 400
    anomaly_limit: float = 3.0

    def check(self) -> Settings:
        if self.rule not in RULES:
            raise ModelError(f"rule {self.rule!r}: one of {', '.join(RULES)}")
        if self.baseline_windows < 1 or self.confirm < 1 or self.min_fit < 4:
            raise ModelError("baseline_windows and confirm must be >= 1, min_fit >= 4")
        if self.trend_windows < self.min_fit:
            raise ModelError("trend_windows must be >= min_fit")
        if not 0.0 < self.ewma_alpha <= 1.0 or self.margin <= 0 or self.z_clip <= 0:
            raise ModelError("0 < ewma_alpha <= 1, margin > 0, z_clip > 0")
        if not 0 < self.probability_bp <= 10_000:
            raise ModelError("probability_bp in 1..10000")
        return self

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Settings:
        names = {f.name for f in fields(cls)}
        unknown = set(obj) - names
        if unknown:
            raise ModelError(f"unknown settings {sorted(unknown)}")
        return cls(**obj).check()


# ----------------------------------------------------------------------------- signals


FEATURES = ("mean", "spread", "rate", "count")


@dataclass(frozen=True)
class Signal:
    metric: str
    feature: str  # "mean" | "spread" | "rate" | "count"

    @property
    def name(self) -> str:
        return f"{self.metric}.{self.feature}"


def class_signals(cls: EquipmentClass) -> list[Signal]:
    """Every signal the engine can read from a class's windows (training keeps those that
    move in healthy data): gauges' mean and spread, deltas' rate, and each metric's reading
    count (which carries an event's duration where readings come only during events)."""
    out = []
    for m in cls.metrics:
        if m.kind == "delta":
            out.append(Signal(m.name, "rate"))
        else:
            out += [Signal(m.name, "mean"), Signal(m.name, "spread")]
        out.append(Signal(m.name, "count"))
    return out


def signal_values(
    table: WindowTable, metrics: Sequence[ClassMetric], signals: Sequence[Signal]
) -> np.ndarray:
    """(windows, signals) in engineering units; NaN where a window has no reading of the
    signal's metric. Element-wise only, so a window's values do not depend on its table."""
    col = {m.name: j for j, m in enumerate(metrics)}
    scale = {m.name: 10.0 ** (-m.scale) for m in metrics}
    out = np.full((len(table), len(signals)), np.nan)
    window_s = table.window_ms / 1000.0
    with np.errstate(invalid="ignore", divide="ignore"):
        for k, s in enumerate(signals):
            j = col[s.metric]
            n = table.count[:, j]
            has = n > 0
            if s.feature == "mean":
                v = table.sum[:, j] / np.maximum(n, 1) * scale[s.metric]
            elif s.feature == "spread":
                v = (table.max[:, j] - table.min[:, j]) * scale[s.metric]
            elif s.feature == "count":
                v = n.astype(np.float64)
            else:
                v = table.sum[:, j] * scale[s.metric] / window_s
            out[:, k] = np.where(has, v, np.nan)
    return out


def fixed_columns(cls: EquipmentClass, unit: UnitHistory) -> list[np.ndarray | None]:
    """A unit's readings per class metric as fixed-point values (float, NaN: no reading),
    rounded as :meth:`EquipmentClass.to_fixed` rounds (decimal half-even of the value's
    shortest repr: the few values where binary arithmetic could round otherwise are done
    one by one with it)."""
    out: list[np.ndarray | None] = []
    for m in cls.metrics:
        v = unit.values.get(m.name)
        if v is None:
            out.append(None)
            continue
        x = v * (10.0**m.scale)
        r = np.rint(x)
        frac = np.abs(x - np.trunc(x))
        tie = np.abs(frac - 0.5) < 1e-6
        for i in np.flatnonzero(tie & ~np.isnan(v)):
            r[i] = cls.to_fixed(m, float(v[i]))
        out.append(r)
    return out


def unit_windows(cls: EquipmentClass, unit: UnitHistory, window_ms: int) -> WindowTable:
    """A CSV unit's window table, as the chain would aggregate the same readings."""
    return aggregate(unit.t_ms, fixed_columns(cls, unit), window_ms)


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Mode:
    """A failure mode as the engine tracks it: the level of ``metric``'s window mean (the
    anomaly statistic for the ``anomaly`` mode, ``metric == ""``), which way it degrades,
    its limit, and the healthy noise of that level around the unit's own (``sigma``, with
    lag-1 autocorrelation ``rho``) that the trend filter weighs observations by."""

    name: str
    metric: str
    direction: int  # +1 up, -1 down
    limit: float
    horizon_ms: int
    sigma: float = 1.0
    rho: float = 0.0


@dataclass(frozen=True)
class Adjustment:
    """The part of a failure-mode signal that the operating conditions explain: a linear
    fit, on healthy deviations from each unit's baseline, of ``signal`` on the signals of
    the metrics no failure mode names (load, speed, ambient, ...)."""

    signal: str
    on: tuple[str, ...]
    coef: tuple[float, ...]


@dataclass
class PrognosticModel:
    """A trained prognostic model of one class (see the module's docstring)."""

    equipment_class: str
    class_hash: bytes
    version: int
    window_ms: int
    metrics: list[ClassMetric]
    signals: list[Signal]
    sigma: list[float]
    ewma_sd: list[float]
    threshold: float
    modes: list[Mode]
    settings: Settings
    adjust: list[Adjustment] = field(default_factory=list)
    shewhart: float = math.inf  # alarm level of the largest single-window |z|
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = KIND

    # -- identity and file format
    @property
    def horizon_ms(self) -> int:
        return max(m.horizon_ms for m in self.modes)

    @property
    def threshold_bp(self) -> int:
        return self.settings.probability_bp

    @property
    def confirm(self) -> int:
        return self.settings.confirm

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": KIND,
            "equipment_class": self.equipment_class,
            "class": {"name": self.equipment_class, "hash": self.class_hash.hex()},
            "version": self.version,
            "window_ms": self.window_ms,
            "metrics": [{"name": m.name, "scale": m.scale, "kind": m.kind} for m in self.metrics],
            "signals": [
                {"name": s.name, "sigma": sg, "ewma_sd": sd}
                for s, sg, sd in zip(self.signals, self.sigma, self.ewma_sd, strict=True)
            ],
            "threshold": self.threshold,
            "shewhart": self.shewhart,
            "adjust": [
                {"signal": a.signal, "on": list(a.on), "coef": list(a.coef)} for a in self.adjust
            ],
            "modes": [
                {
                    "name": m.name,
                    "metric": m.metric,
                    "direction": "up" if m.direction > 0 else "down",
                    "limit": m.limit,
                    "horizon_ms": m.horizon_ms,
                    "sigma": m.sigma,
                    "rho": m.rho,
                }
                for m in self.modes
            ],
            "settings": asdict(self.settings),
            "training": self.training,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> bytes:
        return model_hash(self.to_bytes())

    @property
    def filename(self) -> str:
        return f"{self.equipment_class}-{KIND}-v{self.version}.json"

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PrognosticModel:
        try:
            if obj.get("format") != FORMAT or obj.get("kind") != KIND:
                raise ModelError(f"not a {FORMAT} {KIND} model file")
            metrics = [
                ClassMetric(str(m["name"]), "", int(m["scale"]), str(m["kind"]))
                for m in obj["metrics"]
            ]
            names = {m.name for m in metrics}
            signals, sigma, sd = [], [], []
            for s in obj["signals"]:
                metric, _, feature = str(s["name"]).rpartition(".")
                if metric not in names or feature not in FEATURES:
                    raise ModelError(f"signal {s['name']!r} names no metric of the model")
                signals.append(Signal(metric, feature))
                sigma.append(float(s["sigma"]))
                sd.append(float(s["ewma_sd"]))
            if any(v <= 0 or not math.isfinite(v) for v in sigma + sd):
                raise ModelError("signal spreads must be positive")
            sig_names = {s.name for s in signals}
            adjust = []
            for a in obj.get("adjust", []):
                on = tuple(str(n) for n in a["on"])
                if a["signal"] not in sig_names or not set(on) <= sig_names:
                    raise ModelError(f"adjustment of {a['signal']!r} names unknown signals")
                coef = tuple(float(c) for c in a["coef"])
                if len(coef) != len(on):
                    raise ModelError(f"adjustment of {a['signal']!r}: one coefficient a signal")
                adjust.append(Adjustment(str(a["signal"]), on, coef))
            modes = []
            for m in obj["modes"]:
                if m["metric"] and f"{m['metric']}.mean" not in sig_names:
                    raise ModelError(f"mode {m['name']!r} names no metric of the model")
                modes.append(
                    Mode(
                        str(m["name"]),
                        str(m["metric"]),
                        1 if m["direction"] == "up" else -1,
                        float(m["limit"]),
                        int(m["horizon_ms"]),
                        float(m["sigma"]),
                        float(m["rho"]),
                    )
                )
            if not modes:
                raise ModelError("a prognostic model needs at least one mode")
            window_ms = int(obj["window_ms"])
            if window_ms <= 0:
                raise ModelError("window_ms must be positive")
            return cls(
                str(obj["equipment_class"]),
                bytes.fromhex(obj["class"]["hash"]),
                int(obj["version"]),
                window_ms,
                metrics,
                signals,
                sigma,
                sd,
                float(obj["threshold"]),
                modes,
                Settings.from_json(dict(obj["settings"])),
                adjust,
                float(obj["shewhart"]),
                dict(obj.get("training", {})),
            )
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"malformed model file: {exc}") from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> PrognosticModel:
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ModelError(f"malformed model file: {exc}") from exc
        if not isinstance(obj, dict):
            raise ModelError("malformed model file: not an object")
        return cls.from_json(obj)

    @classmethod
    def load(cls, path: Path, expect_hash: bytes | None = None) -> PrognosticModel:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {path}: {exc}") from exc
        if expect_hash is not None and model_hash(data) != expect_hash:
            raise ModelError(f"{path} does not hash to the expected model id")
        return cls.from_bytes(data)

    def chain_params(self) -> bytes:
        """``params`` of ``Simulation.register_model``: what a reader of an alert needs."""
        data = codec.encode(
            [
                FORMAT,
                KIND,
                self.window_ms,
                self.horizon_ms,
                self.settings.probability_bp,
                self.settings.confirm,
                [s.name for s in self.signals],
                self.class_hash,
                [m.name for m in self.modes],
            ]
        )
        if len(data) > MAX_PARAMS:
            raise ModelError("model params exceed 4096 bytes")
        return data

    def check_class(self, cls: EquipmentClass) -> None:
        """ModelError unless ``cls`` is the class this model was trained for."""
        if class_hash(cls) != self.class_hash:
            raise ModelError(
                f"model {self.filename} was trained for another version of class {cls.name!r}"
            )

    # -- scoring
    def signal_values(self, table: WindowTable) -> np.ndarray:
        return signal_values(table, self.metrics, self.signals)

    def new_state(self) -> UnitState:
        return UnitState(self)

    def with_settings(self, **changes: Any) -> PrognosticModel:
        """The same learned statistics under other alert settings (``margin`` and ``confirm``
        set the alarm levels from the healthy peaks the training recorded)."""
        settings = replace(self.settings, **changes).check()
        out = replace(self, settings=settings)
        if "margin" in changes or "confirm" in changes:
            t = self.training
            k = settings.confirm
            peaks, peaks_z = t.get("healthy_peaks") or [], t.get("healthy_peaks_z") or []
            if k > min(len(peaks), len(peaks_z)) or peaks[k - 1] is None or peaks_z[k - 1] is None:
                raise ModelError(f"the training recorded no healthy peak for confirm={k}")
            out.threshold = float(settings.margin * peaks[k - 1])
            out.shewhart = float(settings.margin * peaks_z[k - 1])
            out.modes = [
                replace(m, limit=settings.anomaly_limit * out.threshold) if not m.metric else m
                for m in out.modes
            ]
        return out


# ----------------------------------------------------------------------------- per unit


@dataclass
class ModeEstimate:
    """A failure mode's prognosis: P(failure within the horizon) and, when asked for, the
    RUL quantiles in seconds (None: not within :data:`RUL_HORIZONS` horizons)."""

    mode: str
    probability: float
    rul_p10_s: float | None = None
    rul_p50_s: float | None = None
    rul_p90_s: float | None = None


@dataclass
class WindowResult:
    """One window's outcome. ``statistic`` is None while the baseline forms."""

    start_ms: int
    end_ms: int
    statistic: float | None
    abnormal: bool
    alert: bool  # the window that completes ``confirm`` abnormal windows in a row
    best: ModeEstimate | None
    modes: list[ModeEstimate] = field(default_factory=list)

    @property
    def probability(self) -> float:
        return 0.0 if self.best is None else self.best.probability


def trend_forecast(
    t: np.ndarray,
    y: np.ndarray,
    direction: int,
    limit: float,
    horizon: float,
    rho: float,
    min_fit: int = 6,
) -> tuple[float, list[float | None]]:
    """The degradation trend of levels ``y`` at times ``t`` (windows; the last is now),
    extrapolated to ``limit``. A trend is flat until an onset, then straight or bending
    towards the limit: ``y = a + c h``, ``a + q h^2`` or ``a + c h + q h^2`` with
    ``h = max(t - onset, 0)`` (bends and slopes away from the limit are no wear-out and left
    out). Every onset and shape is fitted by least squares and the forecasts are averaged with
    weights exp(-BIC / 2) (Bayesian model averaging), the information criterion taken on the
    effective number of readings, n (1 - rho) / (1 + rho), and each fit's covariance widened
    by (1 + rho) / (1 - rho), for the autocorrelation ``rho`` of healthy levels. Returns
    P(the level is past the limit within ``horizon`` windows) and the RUL (windows) at which
    that probability reaches 0.1, 0.5 and 0.9 (None: not within :data:`RUL_HORIZONS`
    horizons)."""
    n = len(t)
    if n < max(min_fit, 4):
        return 0.0, [None, None, None]
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    r_c = min(max(rho, 0.0), 0.95)
    infl = (1 + r_c) / (1 - r_c)
    n_eff = max(n / infl, 3.0)
    span = max(float(t[-1] - t[0]), 1.0)
    u = (t - t[-1]) / span  # in [-1, 0]: conditioned times
    last = n - min_fit  # an onset leaves at least min_fit windows after it
    cand = np.unique(np.linspace(0, last, min(last + 1, _ONSETS)).round().astype(np.int64))
    onset = u[cand]  # (C,)
    h = np.maximum(u[None, :] - onset[:, None], 0.0)  # (C, n)
    r = np.r_[0.0, np.geomspace(horizon / 1000.0, RUL_HORIZONS * horizon, _GRID - 1)]
    fits = []  # (bic, mean (C, R), sd (C, R)) per shape
    # shapes after the onset: straight; bending from flat (a + q h^2); straight and bending
    for shape in SHAPES:
        if isinstance(shape, float):  # a + b (exp(lambda h) - 1): growth at rate lambda
            p, extra = 2, 1
            x = np.stack([np.ones_like(h), np.expm1(shape * h)], axis=2)
        else:
            p, extra = len(shape), 0
            x = np.stack([h**e for e in shape], axis=2)  # (C, n, p)
        xtx = np.einsum("cni,cnj->cij", x, x)
        ok = np.abs(np.linalg.det(xtx)) > 1e-12
        if not ok.any():
            continue
        xtx = np.where(ok[:, None, None], xtx, np.eye(p))
        xty = np.einsum("cni,n->ci", x, y)
        beta = np.linalg.solve(xtx, xty[..., None])[..., 0]
        res = y[None, :] - np.einsum("cni,ci->cn", x, beta)
        sse = np.maximum(np.einsum("cn,cn->c", res, res), 1e-300)
        k = p + extra + (cand > 0)  # the onset is a parameter too, but for a trend over all
        bic = n_eff * np.log(sse / n) + k * math.log(n_eff)
        bic = np.where(ok, bic, np.inf)
        if extra or 2 in shape:  # type: ignore[operator]  # bending away from the limit, or starting away: no wear-out
            bad = direction * beta[:, -1] <= 0
            if p == 3:
                bad |= direction * beta[:, 1] < 0
            bic = np.where(bad, np.inf, bic)
        cov = np.linalg.inv(xtx) * (sse / max(n - p - 1, 1) * infl)[:, None, None]
        hr = r[None, :] / span - onset[:, None]  # (C, R): the future is past the onset
        if extra:
            xr = np.stack([np.ones_like(hr), np.expm1(np.minimum(shape * hr, 50.0))], axis=2)
        else:
            xr = np.stack([hr**e for e in shape], axis=2)  # (C, R, p)
        mean = np.einsum("crp,cp->cr", xr, beta)
        var = np.einsum("cri,cij,crj->cr", xr, cov, xr)
        fits.append((bic, mean, np.sqrt(np.maximum(var, 1e-300))))
    if not fits:
        return 0.0, [None, None, None]
    bic = np.concatenate([f[0] for f in fits])
    if not np.isfinite(bic).any():
        return 0.0, [None, None, None]
    w = np.exp(-0.5 * (bic - bic[np.isfinite(bic)].min()))
    w = np.where(np.isfinite(w), w, 0.0)
    w /= w.sum()
    mean = np.concatenate([f[1] for f in fits])
    sd = np.concatenate([f[2] for f in fits])
    from scipy.special import ndtr

    use = w > 1e-6
    f = w[use] @ np.asarray(ndtr(direction * (mean[use] - limit) / sd[use]))
    f = np.maximum.accumulate(f)
    p_h = float(np.interp(horizon, r, f))
    out: list[float | None] = []
    for q in _Q:
        hit = np.flatnonzero(f >= q)
        if not len(hit):
            out.append(None)
            continue
        i = int(hit[0])
        if i == 0:
            out.append(0.0)
            continue
        f0, f1 = float(f[i - 1]), float(f[i])
        wq = (q - f0) / (f1 - f0) if f1 > f0 else 1.0
        out.append(float(r[i - 1] + wq * (r[i] - r[i - 1])))
    return p_h, out


class UnitState:
    """One unit's detector: feed windows in time order with :meth:`update`."""

    def __init__(self, model: PrognosticModel, *, learn: bool = True) -> None:
        self.model = model
        self.learn = learn  # False in training: the baseline learns whatever the statistic
        s = model.settings
        n = len(model.signals)
        names = [s.name for s in model.signals]
        self.sigma = np.asarray(model.sigma, dtype=np.float64)
        self.ewma_sd = np.asarray(model.ewma_sd, dtype=np.float64)
        self._adj = [
            (names.index(a.signal), np.asarray([names.index(o) for o in a.on], dtype=np.int64),
             np.asarray(a.coef, dtype=np.float64))
            for a in model.adjust
        ]  # fmt: skip
        self._mode_sig = [names.index(f"{m.metric}.mean") if m.metric else -1 for m in model.modes]
        self._first: list[np.ndarray] = []
        self.baseline: np.ndarray | None = None
        self.learned = np.zeros(n)
        self.ewma = np.zeros(n)
        self.ewma_raw = np.zeros(n)
        self.z = np.zeros(n)  # the last window's standardized deviations
        self.stat_raw = 0.0
        self.stat_ewma = 0.0
        self.stat_z = 0.0
        self.windows = 0
        self.index = 0.0  # time in windows since the unit's first window
        self.above = 0
        self.last_start: int | None = None
        keep = s.trend_windows
        self._t: deque[float] = deque(maxlen=keep)
        self._levels: list[deque[float]] = [deque(maxlen=keep) for _ in model.modes]
        self._cusum = [0.0] * len(model.modes)
        self._onset = [0.0] * len(model.modes)  # time (windows) the current rise began

    def reset(self) -> None:
        """After a repair: a new baseline, no accumulated evidence."""
        self.__init__(self.model, learn=self.learn)  # type: ignore[misc]

    def _deviation(self, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """x - b with the operating conditions' share taken out of the mode signals."""
        d = x - b
        for k, on, coef in self._adj:
            dc = d[on]
            d[k] -= float(coef @ np.where(np.isnan(dc), 0.0, dc))
        return d

    def update(self, start_ms: int, x: np.ndarray, *, full: bool = False) -> WindowResult:
        """Score the window starting at ``start_ms`` with signal values ``x`` (NaN: none);
        ``full``: the modes' prognoses whatever the statistic (always on an alert)."""
        m, s = self.model, self.model.settings
        end_ms = start_ms + m.window_ms
        if self.last_start is not None:
            if start_ms <= self.last_start:
                raise ValueError("windows must be fed in time order")
            self.index += (start_ms - self.last_start) / m.window_ms
        self.last_start = start_ms
        ok = ~np.isnan(x)
        self.windows += 1
        if self.baseline is None:
            self._first.append(x.copy())
            if self.windows >= s.baseline_windows:
                rows = np.vstack(self._first)
                cnt = (~np.isnan(rows)).sum(axis=0)
                with np.errstate(invalid="ignore"):
                    self.baseline = np.nansum(rows, axis=0) / cnt  # NaN: never seen
                self.learned = cnt.astype(np.float64)
                self._first = []
            return WindowResult(start_ms, end_ms, None, False, False, None)
        b = self.baseline
        valid = ok & ~np.isnan(b)
        with np.errstate(invalid="ignore"):
            d = self._deviation(x, b)
            z = np.where(valid, d / self.sigma, 0.0)
        self.z = z
        a = s.ewma_alpha
        # A lone wild window moves the EWMA by at most alpha * z_clip; a deviation that
        # persists widens the clip with it (twice the EWMA), so the statistic cannot stall
        # below the threshold however far the unit drifts.
        lim = np.maximum(s.z_clip, 2.0 * np.abs(self.ewma))
        zc = np.clip(z, -lim, lim)
        self.ewma = np.where(valid, (1 - a) * self.ewma + a * zc, self.ewma)
        self.ewma_raw = np.where(valid, (1 - a) * self.ewma_raw + a * z, self.ewma_raw)
        u = np.abs(self.ewma) / self.ewma_sd
        self.stat_ewma = float(u.max())
        self.stat_z = float(np.abs(z).max())
        # In units of the alarm level: the EWMA's (small, lasting shifts) or a single
        # window's (large, sudden ones), whichever is further along (a combined
        # Shewhart-EWMA chart).
        stat = max(self.stat_ewma / m.threshold, self.stat_z / m.shewhart)
        self.stat_raw = float((np.abs(self.ewma_raw) / self.ewma_sd).max())
        # Each mode's level at this unit's baseline conditions, and where its rise began:
        # a one-sided CUSUM of its standardized deviation, last at zero.
        self._t.append(self.index)
        for i, (mode, k) in enumerate(zip(m.modes, self._mode_sig, strict=True)):
            if k < 0:
                self._levels[i].append(self.stat_raw)
                if self.stat_raw < 0.5 * m.threshold:
                    self._onset[i] = self.index
                continue
            self._levels[i].append(float(b[k] + d[k]) if valid[k] else math.nan)
            if valid[k]:
                zi = min(mode.direction * float(z[k]), s.z_clip)
                self._cusum[i] = max(0.0, self._cusum[i] + zi - s.cusum_k)
                if self._cusum[i] == 0.0:
                    self._onset[i] = self.index
        # The baseline keeps learning while the unit looks healthy.
        if not self.learn or stat < 0.5:
            self.learned[valid] += 1
            step = 1.0 / np.minimum(np.maximum(self.learned, 1.0), s.baseline_memory)
            self.baseline = np.where(valid, b + step * (x - b), b)
        anomalous = stat >= 1.0
        estimates: list[ModeEstimate] = []
        p = 0.0
        if s.rule == "both":
            needs_p = anomalous
        else:
            needs_p = s.rule != "anomaly" and stat >= 0.5
        if full or needs_p:
            estimates = self.prognosis(u)
            p = max(e.probability for e in estimates)
        likely = p * 10_000 >= s.probability_bp
        if s.rule == "both" and anomalous and not likely and s.band > 0:
            likely = any(_narrow(e, s.band) for e in estimates)
        abnormal = {
            "anomaly": anomalous,
            "probability": likely,
            "either": anomalous or likely,
            "both": anomalous and likely,
        }[s.rule]
        self.above = self.above + 1 if abnormal else 0
        alert = self.above == s.confirm
        if alert and not estimates:
            estimates = self.prognosis(u)
        best = _best(estimates, m, u, self._mode_sig)
        return WindowResult(start_ms, end_ms, stat, abnormal, alert, best, estimates)

    def best(self) -> ModeEstimate | None:
        """The mode to report now, with its RUL quantiles (as on an alert window)."""
        u = np.abs(self.ewma) / self.ewma_sd
        return _best(self.prognosis(u), self.model, u, self._mode_sig)

    def prognosis(self, u: np.ndarray | None = None) -> list[ModeEstimate]:
        """Every mode's P(failure within its horizon) and RUL quantiles (seconds) now."""
        m, s = self.model, self.model.settings
        w_s = m.window_ms / 1000.0
        t_all = np.asarray(self._t)
        out = []
        for i, mode in enumerate(m.modes):
            y = np.asarray(self._levels[i])
            keep = ~np.isnan(y)
            if keep.sum() < s.min_fit:
                out.append(ModeEstimate(mode.name, 0.0))
                continue
            horizon = mode.horizon_ms / m.window_ms
            p, qs = trend_forecast(
                t_all[keep], y[keep], mode.direction, mode.limit, horizon, mode.rho, s.min_fit
            )
            rul = [None if v is None else v * w_s for v in qs]
            out.append(ModeEstimate(mode.name, p, *rul))
        return out


def _narrow(e: ModeEstimate, band: float) -> bool:
    """Whether a mode's RUL band is narrow enough to act on: (P90 - P10) / P50 <= band."""
    if e.rul_p10_s is None or e.rul_p50_s is None or e.rul_p90_s is None or e.rul_p50_s <= 0:
        return False
    return (e.rul_p90_s - e.rul_p10_s) / e.rul_p50_s <= band


def _best(
    estimates: list[ModeEstimate], model: PrognosticModel, u: np.ndarray, sig: list[int]
) -> ModeEstimate | None:
    """The mode to report: the most probable among those whose own signal is abnormal
    (all modes when none is), the shortest RUL P50 breaking ties."""
    if not estimates:
        return None
    half = 0.5 * model.threshold
    active = [e for e, k in zip(estimates, sig, strict=True) if k < 0 or u[k] >= half]
    pool = active or estimates
    return max(pool, key=lambda e: (e.probability, -(e.rul_p50_s or math.inf)))


def run_unit(
    model: PrognosticModel, table: WindowTable, *, learn: bool = True
) -> list[WindowResult]:
    """Every window of one unit through a fresh :class:`UnitState`."""
    state = UnitState(model, learn=learn)
    x = model.signal_values(table)
    return [state.update(int(st), x[i]) for i, st in enumerate(table.starts.tolist())]


# ----------------------------------------------------------------------------- training


class TrainingError(ValueError):
    """Training data that cannot give a model: too few windows, no usable signal."""


@dataclass
class _Pass:
    """What one pass over the healthy units saw, per unit: the deviations (after the
    baseline), their EWMA, the statistic and the raw statistic."""

    dev: list[np.ndarray] = field(default_factory=list)
    ewma: list[np.ndarray] = field(default_factory=list)
    stat: list[np.ndarray] = field(default_factory=list)  # the EWMA part
    stat_z: list[np.ndarray] = field(default_factory=list)  # the single-window part
    stat_raw: list[np.ndarray] = field(default_factory=list)
    prob: list[float] = field(default_factory=list)


def _run_healthy(model: PrognosticModel, tables: Sequence[WindowTable]) -> _Pass:
    out = _Pass()
    for table in tables:
        state = UnitState(model, learn=False)
        x = model.signal_values(table)
        dev, ew, st, sz, sr, pmax = [], [], [], [], [], 0.0
        for i, start in enumerate(table.starts.tolist()):
            r = state.update(int(start), x[i])
            if r.statistic is None:
                continue
            assert state.baseline is not None
            with np.errstate(invalid="ignore"):
                d = np.where(np.isnan(x[i]), np.nan, state.z * state.sigma)
            dev.append(d)
            ew.append(state.ewma.copy())
            st.append(state.stat_ewma)
            sz.append(state.stat_z)
            sr.append(state.stat_raw)
            pmax = max(pmax, r.probability)
        if dev:
            out.dev.append(np.vstack(dev))
            out.ewma.append(np.vstack(ew))
            out.stat.append(np.asarray(st))
            out.stat_z.append(np.asarray(sz))
            out.stat_raw.append(np.asarray(sr))
            out.prob.append(pmax)
    return out


def _distinct(dev: np.ndarray, keep: list[int], protected: set[int]) -> list[int]:
    """``keep`` without signals whose healthy deviations repeat an earlier kept one's
    (|correlation| > 0.995: current and power, counts of metrics read together); each
    repeat would only add noise to the largest-deviation statistic."""
    x = dev[:, keep]
    ok = ~np.isnan(x)
    xc = np.where(ok, x - np.nanmean(np.where(ok, x, np.nan), axis=0), 0.0)
    norm = np.sqrt((xc * xc).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (xc.T @ xc) / np.outer(norm, norm)
    out: list[int] = []
    for a, i in enumerate(keep):
        dup = any(abs(corr[a, keep.index(j)]) > 0.995 for j in out)
        if not dup or i in protected:
            out.append(i)
    return out


def _held_peak(stats: Sequence[np.ndarray], k: int, reference: int, q: float) -> float | None:
    """The alarm level for ``confirm = k``: the statistic held for k windows in a row that
    a healthy unit exceeds with probability ``q`` over ``reference`` windows. Block maxima
    (blocks of up to 50 windows) of the healthy units' held statistic are fitted with a
    Gumbel distribution by L-moments and extrapolated to the reference length; never below
    the largest held value seen."""
    held = [
        np.lib.stride_tricks.sliding_window_view(st, k).min(axis=1) for st in stats if len(st) >= k
    ]
    if not held:
        return None
    seen = max(float(h.max()) for h in held)
    block = int(max(5, min(50, np.median([len(h) for h in held]))))
    maxima = np.sort(
        np.asarray(
            [
                float(h[i : i + block].max())
                for h in held
                for i in range(0, len(h) - block // 2, block)
            ]
        )
    )
    if len(maxima) < 5:
        return seen
    n = len(maxima)
    b0 = float(maxima.mean())
    b1 = float((np.arange(n) / (n - 1)) @ maxima / n)
    scale = max((2 * b1 - b0) / math.log(2), 1e-12)
    loc = b0 - 0.5772156649 * scale
    g = (1.0 - q) ** (block / max(reference, block))  # per-block non-exceedance
    return max(seen, float(loc - scale * math.log(-math.log(g))))


def _rms(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Root mean square per column, NaNs skipped (NaN for a column without values)."""
    allv = np.vstack(parts) if parts[0].ndim == 2 else np.concatenate(parts)
    ok = ~np.isnan(allv)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(ok, allv, 0.0).__pow__(2).sum(axis=0) / n)


def _lag1(parts: Sequence[np.ndarray]) -> float:
    """Pooled lag-1 autocorrelation of within-unit series (NaNs skipped)."""
    num = den = 0.0
    for p in parts:
        v = p - np.nanmean(p) if np.isfinite(p).any() else p
        a, b = v[1:], v[:-1]
        ok = ~np.isnan(a) & ~np.isnan(b)
        num += float(a[ok] @ b[ok])
        w = v[~np.isnan(v)]
        den += float(w @ w)
    return num / den if den > 0 else 0.0


def _resolution(m: ClassMetric, feature: str, window_s: float) -> float:
    if feature == "count":
        return 1.0
    step = m.precision if m.precision else 10.0 ** (-m.scale)
    return step / window_s if feature == "rate" else step


def _fit_adjustments(
    signals: Sequence[Signal], dev: np.ndarray, modes: Sequence[Mode], sigma: np.ndarray
) -> list[Adjustment]:
    """Ridge fits of each mode signal's healthy deviation on the condition signals (the
    means and rates of metrics no mode names); kept where they explain >= 10 % of it."""
    mode_metrics = {m.metric for m in modes if m.metric}
    cond = [
        i
        for i, s in enumerate(signals)
        if s.metric not in mode_metrics and s.feature in ("mean", "rate")
    ]
    out: list[Adjustment] = []
    if not cond:
        return out
    xc = np.nan_to_num(dev[:, cond] / sigma[cond])  # scale-free, missing = no deviation
    for metric in sorted(mode_metrics):
        k = next(i for i, s in enumerate(signals) if s.name == f"{metric}.mean")
        y = dev[:, k]
        ok = ~np.isnan(y)
        if ok.sum() < 10 * (len(cond) + 1):
            continue
        xo, yo = xc[ok], y[ok]
        lam = 1e-3 * len(yo)
        beta = np.linalg.solve(xo.T @ xo + lam * np.eye(len(cond)), xo.T @ yo)
        resid = yo - xo @ beta
        if float(resid @ resid) > 0.9 * float(yo @ yo):
            continue
        coef = tuple(float(c) for c in beta / sigma[cond])
        out.append(Adjustment(signals[k].name, tuple(signals[i].name for i in cond), coef))
    return out


def train_prognostic(
    cls: EquipmentClass,
    history: History,
    *,
    window_s: float | None = None,
    settings: Settings | None = None,
    version: int = 1,
    training: dict[str, Any] | None = None,
) -> PrognosticModel:
    """A model of ``cls`` from healthy history (every row of ``history`` is healthy)."""
    w_s = window_s if window_s is not None else cls.window_s
    if w_s is None:
        raise TrainingError(
            f"class {cls.name!r} names no window_s: give the window length (--window-s)"
        )
    window_ms = round(w_s * 1000)
    if window_ms <= 0:
        raise TrainingError("the window must be at least a millisecond")
    tables = [unit_windows(cls, u, window_ms) for u in history.units]
    info = {"rows": history.rows, **(training or {})}
    return train_tables(cls, tables, settings=settings, version=version, training=info)


def train_tables(
    cls: EquipmentClass,
    tables: Sequence[WindowTable],
    *,
    settings: Settings | None = None,
    version: int = 1,
    training: dict[str, Any] | None = None,
) -> PrognosticModel:
    """A model of ``cls`` from healthy units' window tables (one window length)."""
    settings = (settings or Settings()).check()
    if not tables:
        raise TrainingError("no units to train on")
    window_ms = tables[0].window_ms
    if any(t.window_ms != window_ms for t in tables):
        raise TrainingError("the units' windows differ in length")
    w_s = window_ms / 1000.0
    need = settings.baseline_windows + 2 * settings.confirm + 2
    usable = [t for t in tables if len(t) >= need]
    if not usable:
        most = max((len(t) for t in tables), default=0)
        raise TrainingError(
            f"no unit has {need} windows of {w_s:g} s (the longest has {most}): give more "
            "history or a shorter window (--window-s)"
        )
    signals = class_signals(cls)
    modes = [
        Mode(f.name, f.metric, 1 if f.direction == "up" else -1, f.limit, f.horizon_s * 1000)
        for f in cls.failure_modes
    ]
    provisional = [Mode(ANOMALY_MODE, "", 1, math.inf, window_ms)]
    ones = [1.0] * len(signals)
    model = PrognosticModel(
        cls.name, class_hash(cls), version, window_ms, list(cls.metrics), signals, ones, ones,
        math.inf, provisional, settings, [], math.inf, training or {},
    )  # fmt: skip
    # 1. Deviations from each unit's baseline: their spread per signal. Signals that never
    # move in healthy data (constants, metrics without readings) carry nothing: dropped,
    # except a failure mode's level, whose trend is read whatever its spread.
    first = _run_healthy(model, usable)
    sigma = _rms(first.dev)
    by_name = {m.name: m for m in cls.metrics}
    mode_means = {f"{mo.metric}.mean" for mo in modes}
    keep = []
    for i, s in enumerate(signals):
        res = _resolution(by_name[s.metric], s.feature, w_s)
        if math.isfinite(sigma[i]) and sigma[i] > 2 * res:
            keep.append(i)
        elif s.name in mode_means:
            sigma[i] = max(sigma[i] if math.isfinite(sigma[i]) else 0.0, res)
            keep.append(i)
    if not keep:
        raise TrainingError("no metric varies in the healthy history: nothing to learn")
    keep = _distinct(
        np.vstack(first.dev), keep, {i for i, s in enumerate(signals) if s.name in mode_means}
    )
    model.signals = [signals[i] for i in keep]
    sig = sigma[keep]
    dev = [d[:, keep] for d in first.dev]
    # 2. Operating conditions: their share of the mode signals, then the spreads again.
    model.adjust = _fit_adjustments(model.signals, np.vstack(dev), modes, sig)
    model.sigma = [float(v) for v in sig]
    model.ewma_sd = [1.0] * len(keep)
    second = _run_healthy(model, usable)
    sig = np.maximum(_rms(second.dev), 1e-12)
    sig = np.where(np.isfinite(sig), sig, np.asarray(model.sigma))
    model.sigma = [float(v) for v in sig]
    names = [s.name for s in model.signals]
    model.modes = [
        replace(
            mo,
            sigma=float(sig[names.index(f"{mo.metric}.mean")]),
            rho=_lag1([d[:, names.index(f"{mo.metric}.mean")] for d in second.dev]),
        )
        for mo in modes
    ] or provisional
    # 3. The spread of the smoothed deviations, 4. the threshold (and the anomaly mode).
    third = _run_healthy(model, usable)
    ew = _rms(third.ewma)
    model.ewma_sd = [float(v) if math.isfinite(v) and v > 0 else 1.0 for v in ew]
    fourth = _run_healthy(model, usable)
    # the alarm level for each confirm = 1..8
    # a healthy unit in operation may run longer than any training unit
    ref = max(settings.reference_windows, 2 * max(len(t) for t in usable))
    q = settings.false_alarm
    # each part at half the false-alarm probability: together about the whole (Bonferroni)
    held = [_held_peak(fourth.stat, k, ref, q / 2) for k in range(1, MAX_CONFIRM + 1)]
    held_z = [_held_peak(fourth.stat_z, k, ref, q / 2) for k in range(1, MAX_CONFIRM + 1)]
    k = settings.confirm
    peak = held[k - 1] if k <= MAX_CONFIRM else _held_peak(fourth.stat, k, ref, q / 2)
    peak_z = held_z[k - 1] if k <= MAX_CONFIRM else _held_peak(fourth.stat_z, k, ref, q / 2)
    if peak is None or peak_z is None:
        raise TrainingError("no unit has enough windows after its baseline")
    model.threshold = float(settings.margin * peak)
    model.shewhart = float(settings.margin * peak_z)
    if not modes:
        raw = np.concatenate(fourth.stat_raw)
        centred = [r - raw.mean() for r in fourth.stat_raw]
        horizon = int(np.median([len(t) for t in usable]) * window_ms // 4)
        model.modes = [
            Mode(
                ANOMALY_MODE, "", 1, settings.anomaly_limit * model.threshold, horizon,
                float(raw.std()) or 1.0, _lag1(centred),
            )
        ]  # fmt: skip
    check = _run_healthy(model, usable)
    model.training = {
        **(training or {}),
        "units": len(usable),
        "windows": int(sum(len(t) for t in usable)),
        "healthy_peaks": held,
        "healthy_peaks_z": held_z,
        "healthy_probability_max": round(max(check.prob, default=0.0), 6),
    }
    return model


# ----------------------------------------------------------------------------- derived class


def _decimals(v: np.ndarray, max_scale: int = 6) -> int:
    for d in range(max_scale + 1):
        x = v * 10.0**d
        if np.all(np.abs(x - np.rint(x)) <= 1e-6 * np.maximum(1.0, np.abs(x))):
            return d
    return max_scale


def derive_class(history: History, name: str, *, window_s: int | None = None) -> EquipmentClass:
    """A provisional class for a CSV that no class file describes: one gauge per metric
    column, its scale from the finest step the readings show, its envelope the observed
    range widened by twice its span each way; no failure modes (the engine uses its
    ``anomaly`` mode until someone names them)."""
    from twinchain.protocol.classdef import parse_class

    metrics = []
    for col in history.metrics:
        v = np.concatenate([u.values[col] for u in history.units])
        v = v[~np.isnan(v)]
        if not len(v):
            continue
        sample = v[:: max(1, len(v) // 200_000)]
        scale = _decimals(sample)
        lo, hi = float(v.min()), float(v.max())
        span = max(hi - lo, 10.0**-scale)
        q = 10.0**scale
        entry: dict[str, Any] = {
            "name": col,
            "unit": "",
            "scale": scale,
            "kind": "gauge",
            "precision": 1.0 / q if scale else 1,
            "min": math.floor((lo - 2 * span) * q) / q,
            "max": math.ceil((hi + 2 * span) * q) / q,
        }
        if scale == 0:
            entry["min"], entry["max"] = int(entry["min"]), int(entry["max"])
        metrics.append(entry)
    if not metrics:
        raise TrainingError(f"{history.source}: no metric column has readings")
    head: dict[str, Any] = {
        "name": name,
        "description": f"Provisional class derived from {Path(history.source).name}"[:250],
    }
    if window_s is not None:
        head["window_s"] = int(window_s)
    return parse_class({"class": head, "metrics": metrics})


def suggest_window_s(history: History) -> int:
    """A window for data that names none: about 1/200 of the median unit's span and at least
    ten median reading intervals, rounded to 1, 2 or 5 times a power of ten seconds."""
    spans, steps = [], []
    for u in history.units:
        if len(u.t_ms) > 1:
            spans.append((u.end_ms - u.start_ms) / 1000.0)
            steps.append(float(np.median(np.diff(u.t_ms))) / 1000.0)
    if not spans:
        return 60
    target = max(float(np.median(spans)) / 200.0, 10.0 * float(np.median(steps)), 1.0)
    exp = 10 ** math.floor(math.log10(target))
    for f in (1, 2, 5, 10):
        if f * exp >= target:
            return int(max(1, f * exp))
    return int(10 * exp)


# ----------------------------------------------------------------------------- evaluation


@dataclass
class UnitReport:
    unit: str
    first_alert_s: float | None
    probability: float
    rul_s: float | None
    rul_p10_s: float | None
    rul_p90_s: float | None
    mode: str | None
    start_s: float
    end_s: float
    windows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "first_alert_s": self.first_alert_s,
            "probability": round(self.probability, 6),
            "rul_s": self.rul_s,
            "rul_p10_s": self.rul_p10_s,
            "rul_p90_s": self.rul_p90_s,
            "mode": self.mode,
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def evaluate_unit(model: PrognosticModel, cls: EquipmentClass, unit: UnitHistory) -> UnitReport:
    """One unit through the worker's detector: its first alert and the prognosis then (or,
    without an alert, the prognosis at its last window)."""
    table = unit_windows(cls, unit, model.window_ms)
    state = UnitState(model)
    x = model.signal_values(table)
    first: WindowResult | None = None
    last: WindowResult | None = None
    n = len(table)
    for i, start in enumerate(table.starts.tolist()):
        last = state.update(int(start), x[i], full=i == n - 1 and first is None)
        if last.alert and first is None:
            first = last
            break
    at = first if first is not None else last
    best = None if at is None else at.best
    return UnitReport(
        unit.unit,
        None if first is None else first.end_ms / 1000.0,
        0.0 if best is None else best.probability,
        None if best is None else _r(best.rul_p50_s),
        None if best is None else _r(best.rul_p10_s),
        None if best is None else _r(best.rul_p90_s),
        None if best is None else best.mode,
        unit.start_ms / 1000.0,
        unit.end_ms / 1000.0,
        n,
    )


def summarize(reports: Iterable[UnitReport], failures: dict[str, float | None]) -> dict[str, Any]:
    """The fleet's figures against the failures file (units it does not list are left
    out): failures alerted before they happened, lead time as a share of life, healthy
    units with any alarm, RUL P50 error at the first alert, and how often the true RUL lay
    between the alert's P10 and P90 (80 % if the band were calibrated)."""
    caught, leads, rul_ok, rul_err, covered = 0, [], 0, [], 0
    failed = healthy = alarmed = 0
    for r in reports:
        if r.unit not in failures:
            continue
        fail = failures[r.unit]
        if fail is None:
            healthy += 1
            alarmed += r.first_alert_s is not None
            continue
        failed += 1
        if r.first_alert_s is None or r.first_alert_s >= fail:
            continue
        caught += 1
        life = fail - r.start_s
        lead = fail - r.first_alert_s
        leads.append(lead / life if life > 0 else 0.0)
        if r.rul_s is not None and lead > 0:
            err = abs(r.rul_s - lead) / lead
            rul_err.append(err)
            rul_ok += err <= 0.25
        lo, hi = r.rul_p10_s, r.rul_p90_s
        covered += lo is not None and lo <= lead and (hi is None or lead <= hi)
    return {
        "failed_units": failed,
        "alerted_before_failure": caught,
        "alerted_share": caught / failed if failed else None,
        "lead_share_median": float(np.median(leads)) if leads else None,
        "lead_share_min": float(min(leads)) if leads else None,
        "healthy_units": healthy,
        "healthy_with_alarm": alarmed,
        "false_alarm_share": alarmed / healthy if healthy else None,
        "rul_within_25pct": rul_ok,
        "rul_within_25pct_share": rul_ok / caught if caught else None,
        "rul_error_median": float(np.median(rul_err)) if rul_err else None,
        "rul_band_coverage": covered / caught if caught else None,
    }


def find_model(folder: Path, equipment_class: str) -> PrognosticModel:
    """The newest version of ``equipment_class``'s prognostic model in ``folder``."""
    best: PrognosticModel | None = None
    files = sorted(folder.glob(f"{equipment_class}-{KIND}-v*.json")) if folder.is_dir() else []
    for f in files:
        m = PrognosticModel.load(f)
        if m.equipment_class == equipment_class and (best is None or m.version > best.version):
            best = m
    if best is None:
        raise ModelError(f"no {KIND} model of class {equipment_class!r} in {folder}")
    return best


def evaluate(model: PrognosticModel, cls: EquipmentClass, history: History) -> list[UnitReport]:
    return [evaluate_unit(model, cls, u) for u in history.units]


def score(summary: dict[str, Any]) -> float:
    """One number to tune by, in the order of the goals: failures alerted before they
    happen, no healthy unit alarmed, RUL P50 near the truth, lead time (up to 30 % of life:
    beyond the goal's 20 %, more lead buys little)."""
    caught = summary["alerted_share"] or 0.0
    fa = summary["false_alarm_share"] or 0.0
    rul = summary["rul_within_25pct_share"] or 0.0
    lead = min(summary["lead_share_median"] or 0.0, 0.3)
    return 2.0 * caught - 4.0 * fa + rul + lead


TUNE_GAIN = 0.05
TUNING_GRID: dict[str, tuple[Any, ...]] = {
    "rule": ("both", "anomaly"),
    "margin": (1.0, 1.3, 1.7),
    "confirm": (2, 3, 5),
    "probability_bp": (3000, 5000, 7000),
}


def tune(
    model: PrognosticModel,
    cls: EquipmentClass,
    runs: History,
    failures: dict[str, float | None],
    grid: dict[str, tuple[Any, ...]] | None = None,
) -> tuple[PrognosticModel, dict[str, Any]]:
    """Per-class tuning: the alert settings (``grid``, one at a time from the current ones,
    twice round) that :func:`score` best on labelled runs, a change kept only when it gains
    at least :data:`TUNE_GAIN` (a few labelled units cannot tell smaller gains from luck).
    Returns the tuned model and its summary on those runs (in-sample: report it on others)."""
    grid = grid or TUNING_GRID
    best = model
    best_sum = summarize(evaluate(model, cls, runs), failures)
    best_score = score(best_sum)
    for _ in range(2):
        start = best_score
        for name, values in grid.items():
            for v in values:
                if getattr(best.settings, name) == v:
                    continue
                cand = best.with_settings(**{name: v})
                summ = summarize(evaluate(cand, cls, runs), failures)
                sc = score(summ)
                if sc >= best_score + TUNE_GAIN:
                    best, best_sum, best_score = cand, summ, sc
        if best_score <= start:
            break
    best.training = {**best.training, "tuned_on": runs.source and Path(runs.source).name}
    return best, best_sum
