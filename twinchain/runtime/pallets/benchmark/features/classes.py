"""Benchmark class specs: expected values and tolerances, condition rules and industry
standards per equipment class and metric, declared by the class's manufacturer or root."""

from __future__ import annotations

from twinchain.primitives.codec import I64, U16, U64, AccountId, Option, Str, Vec
from twinchain.runtime.framework import (
    ROOT,
    ROOT_OR_SIGNED,
    Origin,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.pallets.benchmark.types import (
    MAX_RULES,
    MAX_STANDARD_NAME,
    ConditionRule,
    MetricTarget,
    Standard,
)
from twinchain.runtime.pallets.equipment.types import EquipmentClass
from twinchain.runtime.pallets.roles import EQUIPMENT_MANUFACTURER
from twinchain.runtime.weights import benchmark as weights


class ClassesFeature:
    """Class specs, rules and standards of the Benchmark pallet."""

    # ------------------------------------------------------------------ helpers
    def _ensure_class_writer(self, origin: Origin, cls: str) -> bytes | None:
        """Root, or the class's manufacturer (a manufacturer claims an unowned class).
        Returns the account that claims the class, if it is unowned."""
        if not cls:
            raise self.Error.EmptyClass()
        if origin.kind == ROOT:
            return None
        who = ensure_signed(origin)
        if not self.config.roles.has(who, EQUIPMENT_MANUFACTURER):
            raise self.Error.NotManufacturer()
        owner = self.ClassOwner.get(cls)
        if owner is None:
            return who
        if owner != who:
            raise self.Error.NotClassOwner()
        return None

    def _claim(self, cls: str, who: bytes | None) -> None:
        if who is not None:
            self.ClassOwner.insert(cls, who)
            self.deposit(self.Event.ClassOwnerSet(cls, who))

    # ------------------------------------------------------------------ calls
    @call(
        0,
        weight=weights.W_SMALL,
        origin=ROOT,
        args=(("class", EquipmentClass), ("owner", Option(AccountId))),
    )
    def set_class_owner(self, origin: Origin, cls: str, owner: bytes | None) -> None:
        """Assign (or clear) the manufacturer that owns a class's specs (root)."""
        ensure_root(origin)
        if not cls:
            raise self.Error.EmptyClass()
        if owner is None:
            self.ClassOwner.remove(cls)
        else:
            self.ClassOwner.insert(cls, owner)
        self.deposit(self.Event.ClassOwnerSet(cls, owner))

    @call(
        1,
        weight=weights.W_SMALL,
        origin=ROOT_OR_SIGNED,
        args=(("class", EquipmentClass), ("metric", U16), ("expected", I64), ("tolerance", U64)),
    )
    def set_class_spec(
        self, origin: Origin, cls: str, metric: int, expected: int, tolerance: int
    ) -> None:
        """Set the expected value and tolerance of a metric for a class (its manufacturer, or
        root); the first manufacturer to declare a spec for an unowned class owns it."""
        claim = self._ensure_class_writer(origin, cls)
        self._ensure_metric(metric)
        self._claim(cls, claim)
        self.ClassSpecs.insert(cls, metric, MetricTarget(expected, tolerance))
        self.deposit(self.Event.ClassSpecSet(cls, metric, expected, tolerance))

    @call(
        2,
        weight=weights.W_SMALL,
        origin=ROOT_OR_SIGNED,
        args=(("class", EquipmentClass), ("metric", U16)),
    )
    def remove_class_spec(self, origin: Origin, cls: str, metric: int) -> None:
        """Remove a class spec (its manufacturer, or root)."""
        if self._ensure_class_writer(origin, cls) is not None:
            raise self.Error.NoSpec()  # an unowned class has no specs of a manufacturer
        if not self.ClassSpecs.contains(cls, metric):
            raise self.Error.NoSpec()
        self.ClassSpecs.remove(cls, metric)
        self.deposit(self.Event.ClassSpecRemoved(cls, metric))

    @call(
        3,
        weight=weights.W_SMALL,
        origin=ROOT_OR_SIGNED,
        args=(
            ("class", EquipmentClass),
            ("metric", U16),
            ("rules", Vec(ConditionRule.wire_type(), MAX_RULES)),
        ),
    )
    def set_condition_rules(
        self, origin: Origin, cls: str, metric: int, rules: list[ConditionRule]
    ) -> None:
        """Declare the condition adjustments of a class target (its manufacturer, or root);
        an empty list removes them."""
        claim = self._ensure_class_writer(origin, cls)
        self._ensure_metric(metric)
        for r in rules:
            if r.unit == 0 or r.driver == metric:
                raise self.Error.InvalidRule()
            self._ensure_metric(r.driver)
        self._claim(cls, claim)
        if rules:
            self.ConditionRules.insert(cls, metric, rules)
        else:
            self.ConditionRules.remove(cls, metric)
        self.deposit(self.Event.ConditionRulesSet(cls, metric, len(rules)))

    @call(
        4,
        weight=weights.W_SMALL,
        origin=ROOT,
        args=(
            ("class", EquipmentClass),
            ("metric", U16),
            ("name", Str(MAX_STANDARD_NAME)),
            ("min", I64),
            ("max", I64),
        ),
    )
    def set_standard(
        self, origin: Origin, cls: str, metric: int, name: str, lo: int, hi: int
    ) -> None:
        """Set an industry standard's limits of a metric for a class (root: governance)."""
        ensure_root(origin)
        if not cls:
            raise self.Error.EmptyClass()
        self._ensure_metric(metric)
        if not name or lo > hi:
            raise self.Error.InvalidStandard()
        self.Standards.insert(cls, metric, Standard(name, lo, hi))
        self.deposit(self.Event.StandardSet(cls, metric, name, lo, hi))

    @call(5, weight=weights.W_SMALL, origin=ROOT, args=(("class", EquipmentClass), ("metric", U16)))
    def remove_standard(self, origin: Origin, cls: str, metric: int) -> None:
        """Remove an industry standard (root)."""
        ensure_root(origin)
        if not self.Standards.contains(cls, metric):
            raise self.Error.NoStandard()
        self.Standards.remove(cls, metric)
        self.deposit(self.Event.StandardRemoved(cls, metric))
