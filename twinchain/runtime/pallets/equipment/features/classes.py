"""Equipment classes as data (spec 5): the registry of classes that a manufacturer or
governance registers from a class file (``twinchain.protocol.classdef``), and the rule that a
twin of a registered class specifies only the class's metrics.

A class's definition arrives fixed-point (the client converts the file's engineering values
at each metric's scale; the runtime never sees a float) and is checked with the same rules as
a file (:func:`classdef.check_record`). Each metric binds the chain's metric of its id, or of
its name, with the same unit, scale and kind, or, when the chain has no metric of that name,
is registered in Telemetry under the next free id at or above ``FIRST_CLASS_METRIC_ID``
(deterministic: every node allocates the same ids). A new class name is registered by an
EquipmentManufacturer or by Root; an update (the same name again) by its registrant or Root
bumps its version and keeps every metric it had.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twinchain.protocol.classdef import (
    ClassDef,
    ClassDefError,
    MetricDef,
    check_record,
    class_hash,
    record_from_json,
)
from twinchain.runtime.framework import ROOT_OR_SIGNED, DispatchError, Origin, call
from twinchain.runtime.pallets.equipment.types import ClassRecord, Spec
from twinchain.runtime.pallets.roles import EQUIPMENT_MANUFACTURER
from twinchain.runtime.weights import equipment as weights

# The spec version that introduced the class registry.
SINCE = 5


class ClassesFeature:
    """The Equipment pallet's class registry."""

    @call(
        15,
        weight=lambda rt, definition: (
            weights.W_REGISTER_CLASS
            + weights.W_PER_CLASS_METRIC * len(definition.metrics)
            + weights.W_PER_FAILURE_MODE * len(definition.failure_modes)
        ),
        origin=ROOT_OR_SIGNED,
        args=(("definition", ClassDef.wire_type()),),
        since=SINCE,
    )
    def register_class(self, origin: Origin, definition: ClassDef) -> None:
        """Register an equipment class (an EquipmentManufacturer, or Root), or update one
        (its registrant, or Root: the version goes up by one, every metric stays). Metrics
        the chain lacks are registered in Telemetry with the next free ids."""
        if origin.kind == "root":
            by = None
        else:
            by = origin.who
            assert by is not None
            if not self.config.roles.has(by, EQUIPMENT_MANUFACTURER):
                raise self.Error.NotManufacturer()
        self.do_register_class(definition, by, root=by is None)

    # ------------------------------------------------------------------ API
    def do_register_class(self, definition: ClassDef, by: bytes | None, *, root: bool) -> int:
        """Check, bind and store ``definition``; returns its version. ``by``: the signed
        registrant (None: Root or genesis)."""
        try:
            check_record(definition)
        except ClassDefError as exc:
            raise self.Error.InvalidClass(str(exc)) from None
        old: ClassRecord | None = self.Classes.get(definition.name)
        if old is not None and not root and old.registrant != by:
            raise self.Error.NotClassRegistrant()
        bound = self._bind_metrics(definition)
        if old is not None:
            before = {m.name: m for m in old.definition.metrics}
            after = {m.name: m for m in bound.metrics}
            for name, m in before.items():
                if name not in after or after[name].id != m.id:
                    raise self.Error.MetricRemoved(name)
        now = self.runtime.block.number
        version = 1 if old is None else old.version + 1
        record = ClassRecord(
            bound,
            class_hash(bound),
            by if old is None else old.registrant,
            version,
            now if old is None else old.registered_at,
            now,
        )
        self.Classes.insert(definition.name, record)
        self.deposit(self.Event.ClassRegistered(definition.name, version, by, record.hash))
        return version

    def _bind_metrics(self, definition: ClassDef) -> ClassDef:
        """``definition`` with every metric's chain id: the metric of its id or its name
        (the same unit, scale and kind), else a new one."""
        reg = self.config.metrics
        metrics: list[MetricDef] = []
        for m in definition.metrics:
            mid = m.id if m.id is not None else reg.metric_id(m.name)
            if mid is None:
                mid = reg.allocate_metric(m.name, m.unit, m.scale, m.kind)
                if mid is None:
                    raise self.Error.NoFreeMetricId(m.name)
            else:
                info = reg.metric(mid)
                if info is None:
                    raise self.Error.MetricMismatch(f"{m.name}: no metric {mid} on chain")
                if (info.name, info.unit, info.scale, info.kind) != (
                    m.name,
                    m.unit,
                    m.scale,
                    m.kind,
                ):
                    raise self.Error.MetricMismatch(
                        f"{m.name}: the chain's metric {mid} is {info.name} in {info.unit} "
                        f"at scale {info.scale} ({info.kind})"
                    )
            metrics.append(replace(m, id=mid))
        return replace(definition, metrics=metrics)

    def _check_class_spec(self, equipment_class: str, spec: Spec) -> None:
        """A twin of a registered class specifies only the class's metrics."""
        record: ClassRecord | None = self.Classes.get_shared(equipment_class)
        if record is None:
            return
        ids = {m.id for m in record.definition.metrics}
        for metric in [m for m, _ in spec.rated] + [e.metric for e in spec.envelope]:
            if metric not in ids:
                raise self.Error.SpecNotOfClass(f"metric {metric}")

    def equipment_class(self, name: str) -> ClassRecord | None:
        """A registered class, None if there is none of that name."""
        return self.Classes.get(name)  # type: ignore[no-any-return]

    def failure_modes(self, equipment_class: str) -> frozenset[str] | None:
        """The failure modes of a registered class; None if it is not registered."""
        record: ClassRecord | None = self.Classes.get_shared(equipment_class)
        if record is None:
            return None
        return frozenset(f.name for f in record.definition.failure_modes)

    # ------------------------------------------------------------------ genesis
    def post_genesis(self, config: dict[str, Any]) -> None:
        """``classes``: class records (``classdef.record_to_json``; a chain spec carries
        :func:`classdef.genesis_classes`), registered by Root after every pallet's genesis
        (their metrics bind Telemetry's), from spec 5 on; then each genesis twin of a
        registered class must specify only its metrics."""
        if self.runtime.spec_version < SINCE:
            return  # an older chain gets the built-in classes from spec 5's migration
        for data in config.get("classes", []):
            try:
                self.do_register_class(record_from_json(data), None, root=True)
            except (ClassDefError, DispatchError) as exc:
                raise ValueError(f"genesis class {data.get('name')!r}: {exc}") from exc
        for name, _ in self.Classes.iter():
            for twin, _ in self.ByClass.iter_prefix(name):
                try:
                    self._check_class_spec(name, self.Specs.get(twin))
                except DispatchError as exc:
                    raise ValueError(f"genesis twin {twin} of class {name!r}: {exc}") from exc
