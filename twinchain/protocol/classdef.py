"""Equipment classes as data: the TOML class file, its checks, and its fixed-point wire record.

A class file names a kind of machine's metrics (unit, decimal scale, gauge or delta, sensor
precision, the manufacturer's rated value, the operating envelope, the default disclosure)
and its failure modes (the metric that degrades, which way, the value at which the unit
counts as failed, the horizon a failure probability is reported for)::

    [class]
    name = "gearbox"
    window_s = 60

    [[metrics]]
    name = "oil_temperature"
    unit = "degC"
    scale = 2
    kind = "gauge"
    rated = 65.0
    min = -20.0
    max = 120.0

    [[failure_modes]]
    name = "overheating"
    metric = "oil_temperature"
    direction = "up"
    limit = 105.0
    horizon_s = 172800

:func:`load_class` reads and checks one (a path, or a built-in class's name:
:data:`BUILTIN_CLASSES`, shipped in ``twinchain/protocol/classes``); every fault raises
:class:`ClassDefError` naming the offending key. :func:`dump_class` writes one back.

Values are engineering units (floats) in the file and in :class:`EquipmentClass`; the chain
sees only integers: :func:`class_record` turns a class into its :class:`ClassDef` wire record,
every value fixed-point at its metric's scale (:meth:`EquipmentClass.to_fixed`), which is what
``Equipment.register_class`` takes. :func:`class_hash` is the BLAKE3 hash of that record with
the metric ids left out: it names what the class means (models are bound to it), not which
ids a chain gave its metrics, so a file and the class registered from it hash the same.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import tomli_w
from blake3 import blake3

from twinchain.primitives.codec import (
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    CodecError,
    Enum,
    Option,
    Record,
    Str,
    Vec,
)
from twinchain.protocol.telemetry import MAX_METRIC_NAME, MAX_UNIT, MetricKind

__all__ = [
    "BUILTIN_CLASSES",
    "DIRECTIONS",
    "FIRST_CLASS_METRIC_ID",
    "KINDS",
    "MAX_CLASS_NAME",
    "MAX_DESCRIPTION",
    "MAX_FAILURE_MODES",
    "MAX_HORIZON_S",
    "MAX_MODE_NAME",
    "MAX_SCALE",
    "MAX_WINDOW_S",
    "ClassDef",
    "ClassDefError",
    "ClassMetric",
    "Direction",
    "EquipmentClass",
    "FailureMode",
    "FailureModeDef",
    "MetricDef",
    "check_record",
    "class_from_record",
    "class_hash",
    "class_record",
    "dump_class",
    "genesis_classes",
    "load_class",
    "parse_class",
    "record_from_json",
    "record_to_json",
]

BUILTIN_CLASSES: tuple[str, ...] = ("cnc_mill", "pump", "compressor")

# Metric ids below this are governance's (the well-known set, Telemetry.register_metric);
# a metric a class brings that the chain lacks gets the next free id from here on.
FIRST_CLASS_METRIC_ID = 256
MAX_CLASS_NAME = 48  # the equipment pallet's class field
MAX_MODE_NAME = 32
MAX_DESCRIPTION = 256  # bytes
MAX_METRICS = 32
MAX_FAILURE_MODES = 16
MAX_SCALE = 18  # 10**18 still fits an i64 value of 1..9 units
MAX_WINDOW_S = 7 * 86_400
MAX_HORIZON_S = 10 * 365 * 86_400
KINDS = ("gauge", "delta")
DIRECTIONS = ("up", "down")

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_NAME = re.compile(r"[a-z0-9_]+")
_CLASS_KEYS = frozenset({"name", "description", "window_s"})
_METRIC_KEYS = frozenset(
    {"name", "unit", "scale", "kind", "precision", "rated", "min", "max", "max_step"}
    | {"public", "id"}
)
_MODE_KEYS = frozenset({"name", "metric", "direction", "limit", "horizon_s", "description"})
_HASH_CONTEXT = "twinchain 2026-11 equipment class"


class ClassDefError(ValueError):
    """A class file or class that breaks a rule; ``key`` names the offending key
    (``metrics[2].scale``, ``failure_modes[0].limit``, ``class.name``, ...)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


# --------------------------------------------------------------------------- the class


@dataclass(frozen=True)
class ClassMetric:
    """One metric of a class, in engineering units. ``min``/``max`` are the operating
    envelope (both or neither), ``max_step`` the largest plausible change between two
    readings; ``id`` binds the metric to an existing chain metric id."""

    name: str
    unit: str
    scale: int
    kind: str = "gauge"
    precision: float | None = None
    rated: float | None = None
    min: float | None = None
    max: float | None = None
    max_step: float | None = None
    public: bool = False
    id: int | None = None


@dataclass(frozen=True)
class FailureMode:
    """A way a unit of the class fails: ``metric`` moves ``direction`` (up or down) and the
    unit counts as failed at ``limit``; probabilities are reported within ``horizon_s``."""

    name: str
    metric: str
    direction: str
    limit: float
    horizon_s: int
    description: str = ""


@dataclass(frozen=True)
class EquipmentClass:
    """A checked equipment class (see the module's docstring)."""

    name: str
    metrics: tuple[ClassMetric, ...]
    failure_modes: tuple[FailureMode, ...] = ()
    description: str = ""
    window_s: int | None = None
    _by_name: dict[str, ClassMetric] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {m.name: m for m in self.metrics})

    def metric(self, name: str) -> ClassMetric:
        """The metric called ``name`` (ClassDefError if the class has none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ClassDefError("metrics", f"class {self.name!r} has no metric {name!r}") from None

    def failure_mode(self, name: str) -> FailureMode:
        """The failure mode called ``name`` (ClassDefError if the class has none)."""
        for mode in self.failure_modes:
            if mode.name == name:
                return mode
        raise ClassDefError("failure_modes", f"class {self.name!r} has no mode {name!r}")

    def to_fixed(self, metric: str | ClassMetric, value: float) -> int:
        """``value`` (engineering units) as the chain's fixed-point integer at the metric's
        scale, rounded half to even (``42.15`` at scale 2 is ``4215``)."""
        m = metric if isinstance(metric, ClassMetric) else self.metric(metric)
        return _fixed(value, m.scale, f"metrics.{m.name}")

    def from_fixed(self, metric: str | ClassMetric, value: int) -> float:
        """The engineering value of a fixed-point integer of ``metric``."""
        m = metric if isinstance(metric, ClassMetric) else self.metric(metric)
        return float(Decimal(value).scaleb(-m.scale))


def _fixed(value: float, scale: int, key: str) -> int:
    # Decimal of the shortest repr: 12.301 at scale 3 is exactly 12301 (no binary residue).
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        out = int(d.scaleb(scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError, OverflowError):
        raise ClassDefError(key, f"{value!r} is not a finite number") from None
    if not I64_MIN <= out <= I64_MAX:
        raise ClassDefError(key, f"{value!r} does not fit a 64-bit value at scale {scale}")
    return out


# --------------------------------------------------------------------------- wire records

Direction = Enum("Direction", ("Up", "Down"))


@dataclass
class MetricDef(Record):
    """A class metric on the wire: every value fixed-point at ``scale``."""

    name: str
    unit: str
    scale: int
    kind: str  # MetricKind: Gauge | Delta
    id: int | None
    precision: int | None
    rated: int | None
    min: int | None
    max: int | None
    max_step: int | None
    public: bool
    FIELDS: ClassVar = {
        "name": Str(MAX_METRIC_NAME),
        "unit": Str(MAX_UNIT),
        "scale": U8,
        "kind": MetricKind,
        "id": Option(U16),
        "precision": Option(I64),
        "rated": Option(I64),
        "min": Option(I64),
        "max": Option(I64),
        "max_step": Option(I64),
        "public": Bool,
    }


@dataclass
class FailureModeDef(Record):
    """A failure mode on the wire: ``limit`` fixed-point at its metric's scale."""

    name: str
    metric: str
    direction: str  # Direction: Up | Down
    limit: int
    horizon_s: int
    description: str
    FIELDS: ClassVar = {
        "name": Str(MAX_MODE_NAME),
        "metric": Str(MAX_METRIC_NAME),
        "direction": Direction,
        "limit": I64,
        "horizon_s": U64,
        "description": Str(MAX_DESCRIPTION),
    }


@dataclass
class ClassDef(Record):
    """A class as ``Equipment.register_class`` takes it (integers only)."""

    name: str
    description: str
    window_s: int | None
    metrics: list[MetricDef]
    failure_modes: list[FailureModeDef]
    FIELDS: ClassVar = {
        "name": Str(MAX_CLASS_NAME),
        "description": Str(MAX_DESCRIPTION),
        "window_s": Option(U32),
        "metrics": Vec(MetricDef.wire_type(), MAX_METRICS),
        "failure_modes": Vec(FailureModeDef.wire_type(), MAX_FAILURE_MODES),
    }


def class_record(cls: EquipmentClass) -> ClassDef:
    """``cls`` as its fixed-point wire record."""

    def opt(m: ClassMetric, v: float | None, key: str) -> int | None:
        return None if v is None else _fixed(v, m.scale, f"metrics.{m.name}.{key}")

    metrics = [
        MetricDef(
            m.name,
            m.unit,
            m.scale,
            m.kind.capitalize(),
            m.id,
            opt(m, m.precision, "precision"),
            opt(m, m.rated, "rated"),
            opt(m, m.min, "min"),
            opt(m, m.max, "max"),
            opt(m, m.max_step, "max_step"),
            m.public,
        )
        for m in cls.metrics
    ]
    modes = [
        FailureModeDef(
            f.name,
            f.metric,
            f.direction.capitalize(),
            cls.to_fixed(f.metric, f.limit),
            f.horizon_s,
            f.description,
        )
        for f in cls.failure_modes
    ]
    return ClassDef(cls.name, cls.description, cls.window_s, metrics, modes)


def class_from_record(rec: ClassDef) -> EquipmentClass:
    """The class a wire record describes (values back in engineering units), checked."""

    def eng(v: int | None, scale: int) -> float | None:
        return None if v is None else float(Decimal(v).scaleb(-scale))

    scales = {m.name: m.scale for m in rec.metrics}
    doc: dict[str, Any] = {
        "class": {"name": rec.name, "description": rec.description},
        "metrics": [],
        "failure_modes": [],
    }
    if rec.window_s is not None:
        doc["class"]["window_s"] = rec.window_s
    for m in rec.metrics:
        entry: dict[str, Any] = {
            "name": m.name,
            "unit": m.unit,
            "scale": m.scale,
            "kind": m.kind.lower(),
            "public": m.public,
        }
        for key in ("precision", "rated", "min", "max", "max_step"):
            v = eng(getattr(m, key), m.scale)
            if v is not None:
                entry[key] = v
        if m.id is not None:
            entry["id"] = m.id
        doc["metrics"].append(entry)
    for f in rec.failure_modes:
        doc["failure_modes"].append(
            {
                "name": f.name,
                "metric": f.metric,
                "direction": f.direction.lower(),
                "limit": eng(f.limit, scales.get(f.metric, 0)),
                "horizon_s": f.horizon_s,
                "description": f.description,
            }
        )
    return parse_class(doc)


def record_to_json(rec: ClassDef) -> dict[str, Any]:
    """The record as JSON-able data (integers, texts, enum variant names): how a chain spec's
    genesis (``equipment.classes``) carries a class."""
    return dataclasses.asdict(rec)


def record_from_json(data: Any) -> ClassDef:
    """A record from :func:`record_to_json`'s form; ClassDefError if it is malformed (a
    float anywhere included: the chain takes fixed-point integers only)."""
    try:
        rec = ClassDef(
            data["name"],
            data.get("description", ""),
            data.get("window_s"),
            [MetricDef(**m) for m in data["metrics"]],
            [FailureModeDef(**f) for f in data.get("failure_modes", [])],
        )
        return ClassDef.from_bytes(rec.to_bytes())  # every field's type checked
    except (KeyError, TypeError, AttributeError, CodecError) as exc:
        raise ClassDefError("record", f"not a class record: {exc}") from None


def genesis_classes(names: tuple[str, ...] = BUILTIN_CLASSES) -> list[dict[str, Any]]:
    """``equipment.classes`` of a chain spec's genesis: the named built-in classes' records."""
    return [record_to_json(class_record(load_class(n))) for n in names]


def class_hash(cls: EquipmentClass | ClassDef) -> bytes:
    """BLAKE3 (domain-separated) of the class's canonical wire record, metric ids left out."""
    rec = class_record(cls) if isinstance(cls, EquipmentClass) else cls
    unbound = replace(rec, metrics=[replace(m, id=None) for m in rec.metrics])
    return blake3(unbound.to_bytes(), derive_key_context=_HASH_CONTEXT).digest()


# --------------------------------------------------------------------------- reading


def load_class(source: str | Path) -> EquipmentClass:
    """Read and check a class file: a path, or the name of a built-in class."""
    if isinstance(source, str) and source in BUILTIN_CLASSES:
        data = resources.files("twinchain.protocol").joinpath(f"classes/{source}.toml")
        text = data.read_text(encoding="utf-8")
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ClassDefError("file", f"cannot read {source}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ClassDefError("file", f"{source} is not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClassDefError("file", f"not valid TOML: {exc}") from None
    return parse_class(doc)


def dump_class(cls: EquipmentClass) -> str:
    """``cls`` as class-file TOML (keys left at their defaults are omitted)."""
    head: dict[str, Any] = {"name": cls.name}
    if cls.description:
        head["description"] = cls.description
    if cls.window_s is not None:
        head["window_s"] = cls.window_s
    metrics = []
    for m in cls.metrics:
        entry: dict[str, Any] = {"name": m.name, "unit": m.unit, "scale": m.scale, "kind": m.kind}
        for key in ("precision", "rated", "min", "max", "max_step"):
            if getattr(m, key) is not None:
                entry[key] = getattr(m, key)
        if m.public:
            entry["public"] = True
        if m.id is not None:
            entry["id"] = m.id
        metrics.append(entry)
    doc: dict[str, Any] = {"class": head, "metrics": metrics}
    if cls.failure_modes:
        modes = []
        for f in cls.failure_modes:
            entry = {
                "name": f.name,
                "metric": f.metric,
                "direction": f.direction,
                "limit": f.limit,
                "horizon_s": f.horizon_s,
            }
            if f.description:
                entry["description"] = f.description
            modes.append(entry)
        doc["failure_modes"] = modes
    return tomli_w.dumps(doc)


def parse_class(doc: dict[str, Any]) -> EquipmentClass:
    """Check a parsed class file (a dict as tomllib returns it) and build the class: the
    types here, every other rule on its fixed-point record (:func:`check_record`, the same
    checks the chain runs)."""
    if not isinstance(doc, dict):
        raise ClassDefError("file", "expected a table")
    _no_extra(doc, frozenset({"class", "metrics", "failure_modes"}), "")
    head = doc.get("class")
    if not isinstance(head, dict):
        raise ClassDefError("class", "missing [class] table")
    _no_extra(head, _CLASS_KEYS, "class.")
    name = _name(head.get("name"), "class.name", MAX_CLASS_NAME)
    description = _text(head.get("description", ""), "class.description")
    window_s = head.get("window_s")
    if window_s is not None:
        window_s = _int(window_s, "class.window_s", 1, MAX_WINDOW_S)

    raw_metrics = doc.get("metrics")
    if not isinstance(raw_metrics, list) or not raw_metrics:
        raise ClassDefError("metrics", "at least one [[metrics]] table is required")
    if len(raw_metrics) > MAX_METRICS:
        raise ClassDefError("metrics", f"at most {MAX_METRICS} metrics")
    metrics = tuple(_metric(m, f"metrics[{i}]") for i, m in enumerate(raw_metrics))
    by_name = {m.name: m for m in metrics}

    raw_modes = doc.get("failure_modes", [])
    if not isinstance(raw_modes, list):
        raise ClassDefError("failure_modes", "expected [[failure_modes]] tables")
    if len(raw_modes) > MAX_FAILURE_MODES:
        raise ClassDefError("failure_modes", f"at most {MAX_FAILURE_MODES} failure modes")
    modes = tuple(_mode(by_name, f, f"failure_modes[{i}]") for i, f in enumerate(raw_modes))
    cls = EquipmentClass(name, metrics, modes, description, window_s)
    check_record(class_record(cls))
    return cls


def check_record(rec: ClassDef) -> None:
    """Every rule of a class on its fixed-point record (integers only: the runtime runs
    this on what ``Equipment.register_class`` receives); ClassDefError naming the key."""
    _name(rec.name, "class.name", MAX_CLASS_NAME)
    _text(rec.description, "class.description")
    if rec.window_s is not None:
        _int(rec.window_s, "class.window_s", 1, MAX_WINDOW_S)
    if not rec.metrics:
        raise ClassDefError("metrics", "at least one metric is required")
    if len(rec.metrics) > MAX_METRICS:
        raise ClassDefError("metrics", f"at most {MAX_METRICS} metrics")
    seen: dict[str, MetricDef] = {}
    ids: set[int] = set()
    for i, m in enumerate(rec.metrics):
        key = f"metrics[{i}]"
        _name(m.name, f"{key}.name", MAX_METRIC_NAME)
        if m.name in seen:
            raise ClassDefError(f"{key}.name", f"metric {m.name!r} appears twice")
        seen[m.name] = m
        if len(m.unit.encode()) > MAX_UNIT:
            raise ClassDefError(f"{key}.unit", f"at most {MAX_UNIT} bytes")
        _int(m.scale, f"{key}.scale", 0, MAX_SCALE)
        if m.id is not None:
            _int(m.id, f"{key}.id", 1, 65_535)
            if m.id in ids:
                raise ClassDefError(f"{key}.id", f"two metrics bind id {m.id}")
            ids.add(m.id)
        if (m.min is None) != (m.max is None):
            raise ClassDefError(f"{key}.{'max' if m.max is None else 'min'}", "give both")
        if m.min is not None and not m.min < m.max:  # type: ignore[operator]
            raise ClassDefError(f"{key}.max", "the envelope needs min < max")
        if m.precision is not None and m.precision <= 0:
            raise ClassDefError(f"{key}.precision", f"not positive at scale {m.scale}")
        if m.max_step is not None and m.max_step <= 0:
            raise ClassDefError(f"{key}.max_step", "must be positive")
        if (
            m.kind == "Gauge"
            and m.rated is not None
            and m.min is not None
            and not m.min <= m.rated <= m.max  # type: ignore[operator]
        ):
            raise ClassDefError(f"{key}.rated", "the rated value lies outside the envelope")
    if len(rec.failure_modes) > MAX_FAILURE_MODES:
        raise ClassDefError("failure_modes", f"at most {MAX_FAILURE_MODES} failure modes")
    names: set[str] = set()
    for i, f in enumerate(rec.failure_modes):
        key = f"failure_modes[{i}]"
        _name(f.name, f"{key}.name", MAX_MODE_NAME)
        if f.name in names:
            raise ClassDefError(f"{key}.name", f"mode {f.name!r} appears twice")
        names.add(f.name)
        m = seen.get(f.metric)
        if m is None:
            raise ClassDefError(f"{key}.metric", f"{f.metric!r} is not a metric of the class")
        # Sane: a limit the envelope lets readings reach, on the failing side of the rating.
        if m.min is not None and not m.min <= f.limit <= m.max:  # type: ignore[operator]
            raise ClassDefError(f"{key}.limit", "the limit lies outside the metric's envelope")
        if m.kind == "Gauge" and m.rated is not None:
            if (f.direction == "Up" and f.limit <= m.rated) or (
                f.direction == "Down" and f.limit >= m.rated
            ):
                raise ClassDefError(
                    f"{key}.limit", f"not {f.direction.lower()} from the rated value"
                )
        _int(f.horizon_s, f"{key}.horizon_s", 1, MAX_HORIZON_S)
        _text(f.description, f"{key}.description")


def _metric(raw: Any, key: str) -> ClassMetric:
    if not isinstance(raw, dict):
        raise ClassDefError(key, "expected a table")
    _no_extra(raw, _METRIC_KEYS, f"{key}.")
    name = _name(raw.get("name"), f"{key}.name", MAX_METRIC_NAME)
    unit = raw.get("unit")
    if not isinstance(unit, str) or len(unit.encode()) > MAX_UNIT:
        raise ClassDefError(f"{key}.unit", f"a text of at most {MAX_UNIT} bytes is required")
    scale = _int(raw.get("scale"), f"{key}.scale", 0, MAX_SCALE)
    kind = raw.get("kind", "gauge")
    if kind not in KINDS:
        raise ClassDefError(f"{key}.kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    values: dict[str, Any] = {}
    for k in ("precision", "rated", "min", "max", "max_step"):
        if k in raw:
            values[k] = _number(raw[k], f"{key}.{k}")
            _fixed(values[k], scale, f"{key}.{k}")
    if ("min" in values) != ("max" in values):
        raise ClassDefError(f"{key}.{'min' if 'max' in values else 'max'}", "give both")
    public = raw.get("public", False)
    if type(public) is not bool:
        raise ClassDefError(f"{key}.public", "true or false")
    mid = raw.get("id")
    if mid is not None:
        mid = _int(mid, f"{key}.id", 1, 65_535)
    return ClassMetric(name, unit, scale, kind, public=public, id=mid, **values)


def _mode(metrics: dict[str, ClassMetric], raw: Any, key: str) -> FailureMode:
    if not isinstance(raw, dict):
        raise ClassDefError(key, "expected a table")
    _no_extra(raw, _MODE_KEYS, f"{key}.")
    name = _name(raw.get("name"), f"{key}.name", MAX_MODE_NAME)
    m = metrics.get(raw.get("metric"))  # type: ignore[arg-type]
    if m is None:
        raise ClassDefError(f"{key}.metric", f"{raw.get('metric')!r} is not a metric of the class")
    direction = raw.get("direction")
    if direction not in DIRECTIONS:
        raise ClassDefError(f"{key}.direction", f"{direction!r} is not up or down")
    if "limit" not in raw:
        raise ClassDefError(f"{key}.limit", "required")
    limit = _number(raw["limit"], f"{key}.limit")
    _fixed(limit, m.scale, f"{key}.limit")
    horizon = _int(raw.get("horizon_s"), f"{key}.horizon_s", 1, MAX_HORIZON_S)
    description = _text(raw.get("description", ""), f"{key}.description")
    return FailureMode(name, m.name, direction, limit, horizon, description)


def _no_extra(table: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for k in table:
        if k not in allowed:
            raise ClassDefError(f"{prefix}{k}", "unknown key")


def _name(v: Any, key: str, max_len: int) -> str:
    if not isinstance(v, str) or not v:
        raise ClassDefError(key, "a name is required")
    if len(v) > max_len or not _NAME.fullmatch(v):
        raise ClassDefError(key, f"{v!r}: use a-z, 0-9 and _, at most {max_len} characters")
    return v


def _text(v: Any, key: str) -> str:
    if not isinstance(v, str) or len(v.encode()) > MAX_DESCRIPTION:
        raise ClassDefError(key, f"a text of at most {MAX_DESCRIPTION} bytes")
    return v


def _int(v: Any, key: str, lo: int, hi: int) -> int:
    if type(v) is not int:
        raise ClassDefError(key, f"an integer is required, got {v!r}")
    if not lo <= v <= hi:
        raise ClassDefError(key, f"{v} is outside {lo}..{hi}")
    return v


def _number(v: Any, key: str) -> float:
    if type(v) not in (int, float) or v != v or v in (float("inf"), float("-inf")):
        raise ClassDefError(key, f"a finite number is required, got {v!r}")
    return v  # type: ignore[no-any-return]
