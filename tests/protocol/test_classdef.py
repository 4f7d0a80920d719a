"""Class files: the built-in classes load, round-trip through TOML and the wire record, bind
the chain's well-known metrics, and every broken rule raises ClassDefError naming its key."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from twinchain.protocol.classdef import (
    BUILTIN_CLASSES,
    ClassDef,
    ClassDefError,
    class_from_record,
    class_hash,
    class_record,
    dump_class,
    load_class,
    parse_class,
)
from twinchain.protocol.telemetry import DEFAULT_METRICS

GEARBOX = """
[class]
name = "gearbox"
description = "Helical gearbox"
window_s = 60

[[metrics]]
name = "oil_temperature"
unit = "degC"
scale = 2
kind = "gauge"
precision = 0.1
rated = 65.0
min = -20.0
max = 120.0
max_step = 5.0
public = true

[[metrics]]
name = "shaft_speed"
unit = "rpm"
scale = 0
rated = 1500

[[failure_modes]]
name = "overheating"
metric = "oil_temperature"
direction = "up"
limit = 105.0
horizon_s = 172800
description = "oil breaks down"
"""


def doc() -> dict[str, Any]:
    return tomllib.loads(GEARBOX)


@pytest.mark.parametrize("name", BUILTIN_CLASSES)
def test_builtin_classes_load_and_bind_the_well_known_metrics(name: str) -> None:
    cls = load_class(name)
    assert cls.name == name
    known = {m[0]: m for m in DEFAULT_METRICS}
    for m in cls.metrics:
        _, chain_name, unit, scale, kind = known[m.id]  # every metric binds a chain id
        assert (m.name, m.unit, m.scale, m.kind) == (chain_name, unit, scale, kind.lower())
    assert {f.name for f in cls.failure_modes} == {"bearing_wear", "overheating", "misalignment"}
    assert cls.failure_mode("bearing_wear").metric == "vibration_rms"


@pytest.mark.parametrize("name", BUILTIN_CLASSES)
def test_round_trip_toml_and_wire_record(name: str, tmp_path: Path) -> None:
    cls = load_class(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_class(cls))
    assert load_class(path) == cls
    rec = class_record(cls)
    assert ClassDef.from_bytes(rec.to_bytes()) == rec
    assert class_from_record(rec) == cls
    assert class_hash(rec) == class_hash(cls)


def test_gearbox_fixed_point_and_hash() -> None:
    cls = parse_class(doc())
    assert cls.to_fixed("oil_temperature", 42.15) == 4215
    assert cls.from_fixed("oil_temperature", 4215) == 42.15
    assert cls.to_fixed("shaft_speed", 1500) == 1500
    rec = class_record(cls)
    assert rec.metrics[0].precision == 10 and rec.failure_modes[0].limit == 10_500
    assert rec.metrics[0].kind == "Gauge" and rec.failure_modes[0].direction == "Up"
    assert parse_class(tomllib.loads(dump_class(cls))) == cls
    # The hash names what the class means, not the ids a chain bound its metrics to.
    bound = replace(cls, metrics=(replace(cls.metrics[0], id=300), cls.metrics[1]))
    assert class_hash(bound) == class_hash(cls)
    d = doc()
    d["failure_modes"][0]["limit"] = 106.0
    assert class_hash(parse_class(d)) != class_hash(cls)
    with pytest.raises(ClassDefError) as e:
        cls.metric("nope")
    assert e.value.key == "metrics"


def _set(path: str, value: Any) -> dict[str, Any]:
    d = doc()
    *head, last = path.split(".")
    node: Any = d
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return d


DELETE = object()

BAD: list[tuple[str, Any, str]] = [
    ("class.name", "Gear Box", "class.name"),
    ("class.name", "g" * 49, "class.name"),
    ("class.name", DELETE, "class.name"),
    ("class.colour", "red", "class.colour"),
    ("class.window_s", 0, "class.window_s"),
    ("class.window_s", 1.5, "class.window_s"),
    ("class.description", "x" * 257, "class.description"),
    ("metrics.0.name", "oil-temp", "metrics[0].name"),
    ("metrics.0.name", "o" * 33, "metrics[0].name"),
    ("metrics.1.name", "oil_temperature", "metrics[1].name"),
    ("metrics.0.unit", "u" * 17, "metrics[0].unit"),
    ("metrics.0.unit", DELETE, "metrics[0].unit"),
    ("metrics.0.scale", 19, "metrics[0].scale"),
    ("metrics.0.scale", -1, "metrics[0].scale"),
    ("metrics.0.scale", "2", "metrics[0].scale"),
    ("metrics.0.kind", "counter", "metrics[0].kind"),
    ("metrics.0.min", 121.0, "metrics[0].max"),
    ("metrics.0.min", 120.0, "metrics[0].max"),
    ("metrics.0.max", DELETE, "metrics[0].max"),
    ("metrics.0.rated", 130.0, "metrics[0].rated"),
    ("metrics.0.rated", "hot", "metrics[0].rated"),
    ("metrics.0.rated", float("nan"), "metrics[0].rated"),
    ("metrics.0.rated", 1e300, "metrics[0].rated"),
    ("metrics.0.precision", 0.001, "metrics[0].precision"),
    ("metrics.0.max_step", 0.0, "metrics[0].max_step"),
    ("metrics.0.public", "yes", "metrics[0].public"),
    ("metrics.0.id", 0, "metrics[0].id"),
    ("metrics.0.id", 70_000, "metrics[0].id"),
    ("metrics.0.colour", 1, "metrics[0].colour"),
    ("failure_modes.0.metric", "oil_pressure", "failure_modes[0].metric"),
    ("failure_modes.0.direction", "sideways", "failure_modes[0].direction"),
    ("failure_modes.0.limit", DELETE, "failure_modes[0].limit"),
    ("failure_modes.0.limit", 130.0, "failure_modes[0].limit"),
    ("failure_modes.0.limit", 60.0, "failure_modes[0].limit"),
    ("failure_modes.0.horizon_s", 0, "failure_modes[0].horizon_s"),
    ("failure_modes.0.horizon_s", DELETE, "failure_modes[0].horizon_s"),
    ("failure_modes.0.name", "Over Heat", "failure_modes[0].name"),
    ("failure_modes.0.extra", 1, "failure_modes[0].extra"),
]


@pytest.mark.parametrize(("path", "value", "key"), BAD)
def test_every_error_is_typed_and_names_its_key(path: str, value: Any, key: str) -> None:
    with pytest.raises(ClassDefError) as e:
        parse_class(_set(path, value))
    assert e.value.key == key, str(e.value)
    assert str(e.value).startswith(key)


def test_whole_file_errors(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = []
    d = doc()
    d["extra"] = {}
    cases.append((d, "extra"))
    d = doc()
    del d["class"]
    cases.append((d, "class"))
    d = doc()
    d["metrics"] = []
    cases.append((d, "metrics"))
    d = doc()
    d["metrics"] = [copy.deepcopy(d["metrics"][1]) for _ in range(33)]
    cases.append((d, "metrics"))
    d = doc()
    d["metrics"][1]["id"] = 7
    d["metrics"][0]["id"] = 7
    cases.append((d, "metrics[1].id"))
    d = doc()
    d["failure_modes"] = [dict(d["failure_modes"][0], name=f"m{i}") for i in range(17)]
    cases.append((d, "failure_modes"))
    d = doc()
    d["failure_modes"].append(dict(d["failure_modes"][0]))
    cases.append((d, "failure_modes[1].name"))
    for bad, key in cases:
        with pytest.raises(ClassDefError) as e:
            parse_class(bad)
        assert e.value.key == key
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[class\nname=1")
    for source in (bad_toml, tmp_path / "missing.toml", "no_such_builtin"):
        with pytest.raises(ClassDefError) as e:
            load_class(source)
        assert e.value.key == "file"


@pytest.mark.parametrize("name", BUILTIN_CLASSES)
def test_builtin_files_are_what_the_simulator_puts_on_chain(name: str) -> None:
    """The simulator's class_spec takes rated values and gauge envelopes from the file and
    derives delta limits per tick from its rates: at one reading a second those are the
    file's own delta limits, so the file describes the whole envelope."""
    from twinchain.machines.classes import class_spec

    cls = load_class(name)
    rec = class_record(cls)
    spec = class_spec(name, 1000)
    assert spec["rated"] == [[m.id, m.rated] for m in rec.metrics if m.rated is not None]
    envelope = [[m.id, m.min, m.max, m.max_step or 0] for m in rec.metrics if m.min is not None]
    assert spec["envelope"] == sorted(envelope)
