"""Equipment classes on chain (spec 5): registration by a manufacturer or Root, metrics bound
to the chain's or registered with deterministic ids, updates with versions, the spec rule for
twins of a registered class, and the genesis of the built-in classes."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from typing import Any

import pytest

from twinchain.node.chain_spec import dev_spec, local_spec
from twinchain.primitives.keys import Keypair
from twinchain.protocol.classdef import (
    BUILTIN_CLASSES,
    FIRST_CLASS_METRIC_ID,
    class_hash,
    class_record,
    genesis_classes,
    load_class,
    parse_class,
)
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.equipment.types import Envelope, Spec
from twinchain.runtime.runtime import Runtime

MAKER, MAKER2, NOBODY = (Keypair.from_dev_name(n) for n in ("Maker", "Maker2", "Nobody"))
ROOT = Origin.root()
GEARBOX = """
[class]
name = "gearbox"
window_s = 60

[[metrics]]
name = "oil_temperature"
unit = "degC"
scale = 2
rated = 65.0
min = -20.0
max = 120.0

[[metrics]]
name = "temperature"
unit = "degC"
scale = 3

[[metrics]]
name = "acoustic_level"
unit = "dB"
scale = 1
public = true

[[failure_modes]]
name = "overheating"
metric = "oil_temperature"
direction = "up"
limit = 105.0
horizon_s = 172800
"""


def gearbox(**edit: Any) -> Any:
    doc = tomllib.loads(GEARBOX)
    for path, value in edit.items():
        i, key = path.split("__")
        doc["metrics"][int(i.removeprefix("m"))][key] = value
    return class_record(parse_class(doc))


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


@pytest.fixture
def blk(make_chain: Any) -> Any:
    chain = make_chain(
        extra={
            "roles": {
                "grants": [
                    ["//Maker", "EquipmentManufacturer"],
                    ["//Maker2", "EquipmentManufacturer"],
                ]
            }
        }
    )
    chain.start_block()
    return chain


def snapshot(chain: Any) -> list[tuple[bytes, bytes]]:
    return list(chain.rt.state.iter_prefix(b""))


def test_a_manufacturer_registers_a_class_and_its_new_metrics_get_ids(blk: Any) -> None:
    evs = blk.dispatch(signed(MAKER), "Equipment", "register_class", gearbox())
    names = blk.names(evs)
    assert names == ["Telemetry.MetricRegistered"] * 2 + ["Equipment.ClassRegistered"]
    tel, eq = blk.rt.telemetry, blk.rt.equipment
    # New names: the next free ids from the documented base, in the class's order; an
    # existing name binds the chain's metric (temperature is the well-known id 1).
    assert [blk.args(e)["metric"] for e in evs[:2]] == [
        FIRST_CLASS_METRIC_ID,
        FIRST_CLASS_METRIC_ID + 1,
    ]
    assert tel.metric_id("oil_temperature") == FIRST_CLASS_METRIC_ID
    assert tel.metric(FIRST_CLASS_METRIC_ID + 1).unit == "dB"
    rec = eq.equipment_class("gearbox")
    assert [m.id for m in rec.definition.metrics] == [256, 1, 257]
    assert (rec.version, rec.registrant) == (1, MAKER.public)
    assert rec.hash == class_hash(gearbox())  # the file's hash: ids are not part of it
    assert blk.args(evs[-1]) == {
        "class": "gearbox", "version": 1, "by": MAKER.public, "hash": rec.hash
    }  # fmt: skip
    assert eq.failure_modes("gearbox") == frozenset({"overheating"})
    # A second class reuses the metrics by name and allocates after them.
    g = gearbox()
    pressure = replace(g.metrics[0], name="oil_pressure", unit="bar")
    other = replace(g, name="press", metrics=[pressure, *g.metrics[1:]], failure_modes=[])
    evs = blk.dispatch(signed(MAKER2), "Equipment", "register_class", other)
    assert [blk.args(e)["metric"] for e in evs if e.name == "MetricRegistered"] == [258]
    assert [m.id for m in eq.equipment_class("press").definition.metrics] == [258, 1, 257]


def test_allocation_skips_ids_governance_took(blk: Any) -> None:
    blk.dispatch(ROOT, "Telemetry", "register_metric", 256, "torque", "Nm", 1, "Gauge")
    blk.dispatch(ROOT, "Telemetry", "register_metric", 257, "flow", "l/min", 1, "Gauge")
    blk.dispatch(ROOT, "Equipment", "register_class", gearbox())
    assert [m.id for m in blk.rt.equipment.equipment_class("gearbox").definition.metrics] == [
        258, 1, 259,
    ]  # fmt: skip
    # Names are unique from spec 5 on: governance cannot register a second "flow".
    with pytest.raises(DispatchError) as e:
        blk.dispatch(ROOT, "Telemetry", "register_metric", 400, "flow", "l/min", 1, "Gauge")
    assert err(e) == "Telemetry.MetricNameTaken"


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (gearbox(m1__unit="K"), "Equipment.MetricMismatch"),  # temperature is degC on chain
        (gearbox(m1__scale=2), "Equipment.MetricMismatch"),
        (gearbox(m1__kind="delta"), "Equipment.MetricMismatch"),
        (gearbox(m1__id=2), "Equipment.MetricMismatch"),  # id 2 is vibration_rms
        (gearbox(m1__id=999), "Equipment.MetricMismatch"),  # no such id
    ],
)
def test_a_metric_that_differs_from_the_chains_is_refused(
    blk: Any, record: Any, error: str
) -> None:
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(MAKER), "Equipment", "register_class", record)
    assert err(e) == error
    assert snapshot(blk) == before  # nothing allocated either


def test_a_record_that_breaks_a_rule_is_refused_with_its_key(blk: Any) -> None:
    good = gearbox()
    bad = replace(good, failure_modes=[replace(good.failure_modes[0], limit=13_000)])
    for record, key in (
        (bad, "failure_modes[0].limit"),
        (replace(good, name="Gear Box"), "class.name"),
        (replace(good, metrics=[replace(good.metrics[0], min=200_00)]), "metrics[0].max"),
        (replace(good, metrics=good.metrics * 2), "metrics[3].name"),
        (replace(good, window_s=0), "class.window_s"),
    ):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(MAKER), "Equipment", "register_class", record)
        assert err(e) == "Equipment.InvalidClass" and str(e.value).split(": ")[2] == key


def test_updates_by_the_registrant_or_root_bump_the_version(blk: Any) -> None:
    blk.dispatch(signed(MAKER), "Equipment", "register_class", gearbox())
    eq = blk.rt.equipment
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(MAKER2), "Equipment", "register_class", gearbox())
    assert err(e) == "Equipment.NotClassRegistrant"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(NOBODY), "Equipment", "register_class", gearbox())
    assert err(e) == "Equipment.NotManufacturer"
    more = gearbox(m2__rated=80.0)
    more = replace(
        more, metrics=[*more.metrics, replace(more.metrics[0], name="oil_level", id=None)]
    )
    evs = blk.dispatch(signed(MAKER), "Equipment", "register_class", more)
    assert blk.args(evs[-1])["version"] == 2
    rec = eq.equipment_class("gearbox")
    assert rec.version == 2 and rec.registrant == MAKER.public and len(rec.definition.metrics) == 4
    evs = blk.dispatch(ROOT, "Equipment", "register_class", more)
    assert blk.args(evs[-1]) | {"hash": None} == {
        "class": "gearbox", "version": 3, "by": None, "hash": None
    }  # fmt: skip
    assert eq.equipment_class("gearbox").registrant == MAKER.public  # stays the maker's
    # Every metric stays: dropping one is refused.
    with pytest.raises(DispatchError) as e:
        blk.dispatch(ROOT, "Equipment", "register_class", gearbox())
    assert err(e) == "Equipment.MetricRemoved"


def test_a_twin_of_a_registered_class_specifies_its_metrics(blk: Any) -> None:
    blk.dispatch(signed(MAKER), "Equipment", "register_class", gearbox())
    ok = Spec([(256, 6_500), (1, 40_000)], [Envelope(256, -2_000, 12_000, 0)])
    blk.dispatch(signed(MAKER), "Equipment", "mint", "gearbox", "G1", "s1", ok, MAKER.public)
    before = snapshot(blk)
    for spec in (Spec([(2, 1_000)], []), Spec([], [Envelope(4, 0, 1, 0)])):
        with pytest.raises(DispatchError) as e:
            blk.dispatch(
                signed(MAKER), "Equipment", "mint", "gearbox", "G1", "s2", spec, MAKER.public
            )
        assert err(e) == "Equipment.SpecNotOfClass"
    assert snapshot(blk) == before
    # A class nobody registered keeps the old freedom.
    blk.dispatch(
        signed(MAKER), "Equipment", "mint", "lathe", "L", "s3", Spec([(2, 1)], []), MAKER.public
    )


def test_the_dev_local_and_consortium_specs_register_the_built_in_classes() -> None:
    for spec in (dev_spec(), local_spec(["//Alice", "//Bob"])):
        rt = Runtime()
        rt.build_genesis(spec.genesis)
        for name in BUILTIN_CLASSES:
            rec = rt.equipment.equipment_class(name)
            assert rec is not None and rec.version == 1 and rec.registrant is None
            assert rec.hash == class_hash(load_class(name))
        # The built-in classes bind the well-known metrics: nothing was allocated.
        assert rt.telemetry.NextMetricId.get() == FIRST_CLASS_METRIC_ID
        assert rt.telemetry.metric_id("vibration_rms") == 2


def test_genesis_twins_of_a_registered_class_must_fit_it(make_chain: Any) -> None:
    twin = {"manufacturer": "//Alice", "class": "pump", "serial": "P1"}
    ok = {
        "equipment": {"classes": genesis_classes(("pump",)), "twins": [twin | {"rated": [[3, 1]]}]}
    }
    make_chain(extra=ok)
    bad = {
        "equipment": {"classes": genesis_classes(("pump",)), "twins": [twin | {"rated": [[10, 1]]}]}
    }
    with pytest.raises(ValueError, match="SpecNotOfClass"):
        make_chain(extra=bad)  # pumps use no material
    broken = genesis_classes(("pump",))
    broken[0]["metrics"][0]["unit"] = "K"
    with pytest.raises(ValueError, match="MetricMismatch"):
        make_chain(extra={"equipment": {"classes": broken}})
    # A chain that starts at spec 4 gets its classes from spec 5's migration instead.
    old = make_chain(extra={"system": {"name": "old", "spec_version": 4}} | bad)
    assert old.rt.equipment.equipment_class("pump") is None
