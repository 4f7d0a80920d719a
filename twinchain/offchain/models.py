"""Anomaly models of one equipment class, their calibration to a failure probability, and
their model files.

Two detectors, both fed the features of :mod:`twinchain.offchain.features`:

* ``isolation_forest``: scikit-learn's IsolationForest trained on healthy windows only. The
  trained trees are exported to the model file and scored here with NumPy, bit for bit as
  scikit-learn scores them (tested), so a model file is plain data (no pickle) that anyone
  can audit and re-run. Its raw outputs per window are the anomaly score and an EWMA of it.
* ``cusum``: load-corrected residuals of vibration, temperature, power, pressure and scrap,
  each relative to the twin's own baseline (its first scored windows) and in units of the
  healthy within-twin spread, accumulated by one-sided CUSUMs (upwards; pressure downwards).
  Its raw outputs are the largest CUSUM statistic and the largest current z-score.

The worker runs ``cusum`` by default: on the simulator's fault runs it catches every fault
the forest catches, with a similar lead and no false alarms where the forest has some
(``bench/pdm.py`` prints both). It needs a few windows of a healthy twin (its baseline,
:data:`BASELINE_WINDOWS` by default) before it can alert; the forest alerts from the first.

Either maps its raw outputs to P(failure within ``horizon_ms``) with a logistic function
fitted on labelled simulator fault runs (seeds disjoint from the benchmark's): a window is a
positive if the machine fails within the horizon after the window ends. The probability is
therefore calibrated for the simulator's fault mix; see README.

A model file is canonical JSON (sorted keys, no spaces); its identity on chain is the BLAKE3
hash of the file bytes (:func:`model_hash`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinchain.offchain.features import BASELINE_WINDOWS, FEATURES, N_FEATURES
from twinchain.primitives import codec
from twinchain.primitives.hashing import blake3_hash

FORMAT = "twinchain-pdm/1"
KINDS = ("isolation_forest", "cusum")
# The worker's default: the better of the two on the simulator's fault runs (bench/pdm.py:
# as many faults caught, no false alarms where the forest has some, a similar lead).
DEFAULT_KIND = "cusum"
EWMA_ALPHA = 0.3
CUSUM_K = 0.5  # allowance, in healthy standard deviations
MAX_PARAMS = 4096

# (feature index, direction) of the CUSUM signals; the load is feature 0.
_CUSUM_SIGNALS: tuple[tuple[str, int], ...] = (
    ("power", 1),
    ("vibration", 1),
    ("temperature", 1),
    ("pressure", -1),
    ("scrap", 1),
)


class ModelError(ValueError):
    """A model file that is missing, malformed, of another format, or not the one expected."""


def model_hash(data: bytes) -> bytes:
    """The on-chain identity of a model file: BLAKE3 of its bytes."""
    return blake3_hash(data)


def _avg_path(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful BST search among ``n`` points (IF paper)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    nb = n[big]
    out[big] = 2.0 * (np.log(nb - 1.0) + np.euler_gamma) - 2.0 * (nb - 1.0) / nb
    return out


@dataclass
class Tree:
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_extra: np.ndarray  # depth of the node + c(samples at the node), used at leaves

    def to_json(self) -> list[Any]:
        return [
            self.left.tolist(),
            self.right.tolist(),
            self.feature.tolist(),
            [float(t) for t in self.threshold],
            [float(v) for v in self.leaf_extra],
        ]

    @classmethod
    def from_json(cls, obj: Sequence[Any]) -> Tree:
        left, right, feature, threshold, extra = obj
        return cls(
            np.asarray(left, dtype=np.int64),
            np.asarray(right, dtype=np.int64),
            np.asarray(feature, dtype=np.int64),
            np.asarray(threshold, dtype=np.float64),
            np.asarray(extra, dtype=np.float64),
        )

    def path_lengths(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return self.leaf_extra[node]
            f = self.feature[node]
            go_left = x[rows, np.maximum(f, 0)] <= self.threshold[node]
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(inner, nxt, node)


@dataclass
class IsolationForestParams:
    trees: list[Tree]
    max_samples: int

    def score(self, x: np.ndarray) -> np.ndarray:
        """Anomaly score in (0, 1), higher = more anomalous (``-score_samples`` in
        scikit-learn terms). Inputs go through float32 exactly as scikit-learn does."""
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        depth = np.zeros(len(x))
        for t in self.trees:
            depth += t.path_lengths(x)
        denom = len(self.trees) * float(_avg_path(np.array([self.max_samples]))[0])
        return np.asarray(2.0 ** (-depth / denom))

    @classmethod
    def fit(cls, x: np.ndarray, *, seed: int, n_estimators: int = 100) -> IsolationForestParams:
        from sklearn.ensemble import IsolationForest

        x = np.asarray(x, dtype=np.float64)
        samples = min(256, len(x))  # scikit-learn's default, capped for small training sets
        forest = IsolationForest(n_estimators=n_estimators, max_samples=samples, random_state=seed)
        forest.fit(x)
        return cls.from_sklearn(forest)

    @classmethod
    def from_sklearn(cls, forest: Any) -> IsolationForestParams:
        """Export a fitted ``sklearn.ensemble.IsolationForest``."""
        trees = []
        # Trees see a feature subset only when max_features < n_features (as in scoring).
        subsample = forest._max_features != forest.n_features_in_
        for est, feats in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = est.tree_
            if not subsample:
                feats = np.arange(forest.n_features_in_)
            depth = np.zeros(t.node_count, dtype=np.float64)
            for node in range(t.node_count):  # parents precede children in sklearn's layout
                for child in (t.children_left[node], t.children_right[node]):
                    if child >= 0:
                        depth[child] = depth[node] + 1
            feature = np.where(t.feature >= 0, np.asarray(feats)[np.maximum(t.feature, 0)], -1)
            trees.append(
                Tree(
                    t.children_left.astype(np.int64),
                    t.children_right.astype(np.int64),
                    feature.astype(np.int64),
                    t.threshold.astype(np.float64),
                    depth + _avg_path(t.n_node_samples),
                )
            )
        return cls(trees, int(forest.max_samples_))


@dataclass
class CusumParams:
    """Per signal: load correction (intercept, slope) and healthy within-twin spread."""

    coef: list[tuple[float, float]]
    sigma: list[float]
    k: float = CUSUM_K
    baseline: int = BASELINE_WINDOWS  # windows of a twin averaged into its baseline

    def residuals(self, x: Sequence[float]) -> list[float]:
        load = x[0]
        out = []
        for (name, _), (a, b) in zip(_CUSUM_SIGNALS, self.coef, strict=True):
            out.append(x[FEATURES.index(name)] - (a + b * load))
        return out

    @classmethod
    def fit(cls, per_twin: Sequence[np.ndarray], baseline: int = BASELINE_WINDOWS) -> CusumParams:
        """``per_twin``: the healthy feature rows of each training twin, in time order."""
        allx = np.vstack(per_twin)
        load = allx[:, 0]
        coef = []
        for name, _ in _CUSUM_SIGNALS:
            y = allx[:, FEATURES.index(name)]
            if np.ptp(load) > 0:
                b, a = np.polyfit(load, y, 1)
            else:
                a, b = float(np.mean(y)), 0.0
            coef.append((float(a), float(b)))
        params = cls(coef, [1.0] * len(coef), CUSUM_K, baseline)
        # Spread of a twin's residuals around its own baseline (as the detector sees them).
        devs: list[list[float]] = [[] for _ in _CUSUM_SIGNALS]
        for rows in per_twin:
            res = np.array([params.residuals(r) for r in rows])
            if len(res) <= baseline:
                continue
            base = res[:baseline].mean(axis=0)
            for j in range(len(_CUSUM_SIGNALS)):
                devs[j].extend((res[baseline:, j] - base[j]).tolist())
        params.sigma = [max(float(np.std(d)) if d else 1.0, 1e-4) for d in devs]
        return params


@dataclass
class Calibration:
    """p = sigmoid(intercept + coef . raw)."""

    coef: list[float]
    intercept: float

    def probability(self, raw: Sequence[float]) -> float:
        z = self.intercept + sum(c * r for c, r in zip(self.coef, raw, strict=True))
        if z < -60:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray) -> Calibration:
        from sklearn.linear_model import LogisticRegression

        if len(set(labels.tolist())) < 2:
            raise ModelError("calibration needs both failing and healthy windows")
        lr = LogisticRegression(C=10.0, max_iter=1000)
        lr.fit(raw, labels)
        return cls([float(c) for c in lr.coef_[0]], float(lr.intercept_[0]))


@dataclass
class Model:
    """A trained, calibrated model of one equipment class."""

    kind: str
    equipment_class: str
    version: int
    window_ms: int
    horizon_ms: int
    threshold_bp: int  # alert at or above this probability ...
    confirm: int  # ... in this many consecutive scored windows
    detector: IsolationForestParams | CusumParams
    calibration: Calibration
    training: dict[str, Any] = field(default_factory=dict)

    # -- file format
    def to_json(self) -> dict[str, Any]:
        if isinstance(self.detector, IsolationForestParams):
            det: dict[str, Any] = {
                "max_samples": self.detector.max_samples,
                "trees": [t.to_json() for t in self.detector.trees],
            }
        else:
            det = {
                "baseline": self.detector.baseline,
                "coef": [list(c) for c in self.detector.coef],
                "k": self.detector.k,
                "sigma": self.detector.sigma,
                "signals": [list(s) for s in _CUSUM_SIGNALS],
            }
        return {
            "format": FORMAT,
            "kind": self.kind,
            "equipment_class": self.equipment_class,
            "version": self.version,
            "window_ms": self.window_ms,
            "horizon_ms": self.horizon_ms,
            "threshold_bp": self.threshold_bp,
            "confirm": self.confirm,
            "features": list(FEATURES),
            "detector": det,
            "calibration": {
                "coef": self.calibration.coef,
                "intercept": self.calibration.intercept,
            },
            "training": self.training,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> bytes:
        return model_hash(self.to_bytes())

    @property
    def filename(self) -> str:
        return f"{self.equipment_class}-{self.kind}-v{self.version}.json"

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        try:
            obj = json.loads(data)
            if obj.get("format") != FORMAT:
                raise ModelError(f"not a {FORMAT} model file")
            if list(obj["features"]) != list(FEATURES):
                raise ModelError("the model was trained on other features")
            kind = obj["kind"]
            det = obj["detector"]
            detector: IsolationForestParams | CusumParams
            if kind == "isolation_forest":
                detector = IsolationForestParams(
                    [Tree.from_json(t) for t in det["trees"]], int(det["max_samples"])
                )
            elif kind == "cusum":
                if [tuple(s) for s in det["signals"]] != [tuple(s) for s in _CUSUM_SIGNALS]:
                    raise ModelError("the model uses other CUSUM signals")
                detector = CusumParams(
                    [(float(a), float(b)) for a, b in det["coef"]],
                    [float(s) for s in det["sigma"]],
                    float(det["k"]),
                    int(det["baseline"]),
                )
            else:
                raise ModelError(f"unknown model kind {kind!r}")
            cal = obj["calibration"]
            return cls(
                kind,
                str(obj["equipment_class"]),
                int(obj["version"]),
                int(obj["window_ms"]),
                int(obj["horizon_ms"]),
                int(obj["threshold_bp"]),
                int(obj["confirm"]),
                detector,
                Calibration([float(c) for c in cal["coef"]], float(cal["intercept"])),
                dict(obj.get("training", {})),
            )
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"malformed model file: {exc}") from exc

    @classmethod
    def load(cls, path: Path, expect_hash: bytes | None = None) -> Model:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {path}: {exc}") from exc
        if expect_hash is not None and model_hash(data) != expect_hash:
            raise ModelError(f"{path} does not hash to the expected model id")
        return cls.from_bytes(data)

    def chain_params(self) -> bytes:
        """The ``params`` of ``Simulation.register_model``: canonical msgpack of what the
        chain and its readers need to interpret an alert (integers and strings only)."""
        data = codec.encode(
            [
                FORMAT,
                self.kind,
                self.window_ms,
                self.horizon_ms,
                self.threshold_bp,
                self.confirm,
                list(FEATURES),
                int(self.training.get("seed", 0)),
            ]
        )
        if len(data) > MAX_PARAMS:
            raise ModelError("model params exceed 4096 bytes")
        return data

    # -- scoring
    def new_state(self) -> DetectorState:
        return DetectorState(self)


@dataclass
class DetectorState:
    """One twin's detector state: feed feature vectors in window order."""

    model: Model
    ewma: float | None = None
    baseline: list[list[float]] = field(default_factory=list)
    cusum: list[float] = field(default_factory=list)
    above: int = 0  # consecutive windows at or above the threshold

    def raw(self, x: Sequence[float], score: float | None = None) -> list[float] | None:
        """The detector's raw outputs for one window (None while a CUSUM baseline forms);
        ``score``: the forest's score of ``x`` when already computed (batch scoring)."""
        det = self.model.detector
        if isinstance(det, IsolationForestParams):
            s = float(det.score(np.asarray([x]))[0]) if score is None else score
            self.ewma = s if self.ewma is None else EWMA_ALPHA * s + (1 - EWMA_ALPHA) * self.ewma
            return [s, self.ewma]
        res = det.residuals(x)
        if len(self.baseline) < det.baseline:
            self.baseline.append(res)
            return None
        base = [sum(col) / len(col) for col in zip(*self.baseline, strict=True)]
        if not self.cusum:
            self.cusum = [0.0] * len(res)
        zmax = 0.0
        for j, ((_, direction), r, b, sd) in enumerate(
            zip(_CUSUM_SIGNALS, res, base, det.sigma, strict=True)
        ):
            z = direction * (r - b) / sd
            zmax = max(zmax, z)
            self.cusum[j] = max(0.0, self.cusum[j] + z - det.k)
        return [math.log1p(max(self.cusum)), zmax]

    def update(self, x: Sequence[float], score: float | None = None) -> tuple[float, bool]:
        """(failure probability, whether this window triggers an alert)."""
        raw = self.raw(x, score)
        if raw is None:
            return 0.0, False
        p = self.model.calibration.probability(raw)
        if p * 10_000 >= self.model.threshold_bp:
            self.above += 1
        else:
            self.above = 0
        return p, self.above == self.model.confirm

    def scores(self, xs: Sequence[Sequence[float]]) -> list[float | None]:
        """Forest scores of many windows in one pass (None per window for other kinds)."""
        det = self.model.detector
        if isinstance(det, IsolationForestParams) and len(xs):
            return [float(v) for v in det.score(np.asarray(xs))]
        return [None] * len(xs)

    def reset(self) -> None:
        """After a repair: a new baseline, no accumulated evidence."""
        self.ewma = None
        self.baseline.clear()
        self.cusum.clear()
        self.above = 0


def features_ok(x: Sequence[float]) -> bool:
    return len(x) == N_FEATURES and all(math.isfinite(v) for v in x)
