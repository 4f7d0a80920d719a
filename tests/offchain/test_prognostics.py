"""The prognostics engine for any class, end to end on small fleets generated here: train on
healthy rows, evaluate runs with failures through the worker's detector (the CLI, as a plant
engineer runs it), the derived-class path for a CSV no class file describes, the JSON it
prints, typed errors naming the row for bad input, and windows equal to the chain's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from twinchain.cli import main
from twinchain.offchain.features import Agg
from twinchain.offchain.history import CsvError, read_history
from twinchain.offchain.models import ModelError
from twinchain.offchain.prognostics import (
    PrognosticModel,
    UnitState,
    fixed_columns,
    run_unit,
    train_prognostic,
    unit_windows,
)
from twinchain.offchain.windows import aggregate
from twinchain.protocol.classdef import load_class

GEARBOX = """
[class]
name = "gearbox"
description = "Helical gearbox"
window_s = 60

[[metrics]]
name = "oil_temperature"
unit = "degC"
scale = 2
precision = 0.01

[[metrics]]
name = "shaft_speed"
unit = "rpm"
scale = 0

[[metrics]]
name = "acoustic_level"
unit = "dB"
scale = 1

[[failure_modes]]
name = "overheating"
metric = "oil_temperature"
direction = "up"
limit = 70.0
horizon_s = 3600
"""
STEP_S = 5
HEALTHY_S = 4 * 3600


def fleet(seed: int, n: int, failing: int) -> tuple[str, dict[str, float | None]]:
    """Gearboxes, a reading every 5 s: oil temperature follows the load (shaft speed) and a
    slow daily swing; a failing unit's oil heats up quadratically from an onset to 70 degC."""
    rng = np.random.default_rng(seed)
    lines = ["unit,t_seconds,oil_temperature,shaft_speed,acoustic_level"]
    failures: dict[str, float | None] = {}
    for i in range(n):
        unit = f"gb-{seed}-{i:02d}"
        base, load_phase = rng.uniform(45, 52), rng.uniform(0, 2 * math.pi)
        fails = i < failing
        onset = rng.uniform(1.2, 2.0) * 3600 if fails else math.inf
        ramp = rng.uniform(1.2, 2.2) * 3600
        t = np.arange(0, HEALTHY_S if not fails else onset + ramp, STEP_S, dtype=np.float64)
        speed = 1480 + 60 * np.sin(t / 1800 + load_phase) + rng.normal(0, 4, len(t))
        heat = np.where(t > onset, (70 - base - 3) * ((t - onset) / ramp) ** 2, 0.0)
        temp = base + 0.02 * (speed - 1480) + heat + rng.normal(0, 0.15, len(t))
        acoustic = 62 + 0.01 * (speed - 1480) + rng.normal(0, 0.3, len(t))
        cross = np.flatnonzero(base + heat >= 70)
        failures[unit] = float(t[cross[0]]) if fails and len(cross) else None
        if fails and not len(cross):
            failures[unit] = float(t[-1])
        for k in range(len(t)):
            ac = "" if k % 7 == 3 else f"{acoustic[k]:.1f}"  # gaps: no reading
            lines.append(f"{unit},{t[k]:g},{temp[k]:.2f},{speed[k]:.0f},{ac}")
    return "\n".join(lines) + "\n", failures


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plant")
    (d / "gearbox.toml").write_text(GEARBOX)
    healthy, _ = fleet(1, 6, 0)
    (d / "healthy.csv").write_text(healthy)
    runs, failures = fleet(2, 8, 4)
    (d / "runs.csv").write_text(runs)
    (d / "failures.csv").write_text(
        "unit,failure_time_s\n"
        + "".join(f"{u},{'' if f is None else f}\n" for u, f in failures.items())
    )
    return d


def _json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_train_and_evaluate_a_class_file(plant: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = plant / "models"
    assert main(["offchain", "train", "--class", str(plant / "gearbox.toml"),
                 "--csv", str(plant / "healthy.csv"), "--out", str(models)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["offchain", "evaluate", "--models", str(models), "--class",
                 str(plant / "gearbox.toml"), "--csv", str(plant / "runs.csv"),
                 "--failures", str(plant / "failures.csv"), "--json"]) == 0  # fmt: skip
    rows = _json_lines(capsys)
    units, summary = rows[:-1], rows[-1]["summary"]
    assert len(units) == 8
    for u in units:  # the JSON schema, one object per unit
        assert set(u) == {"unit", "first_alert_s", "probability", "rul_s", "rul_p10_s",
                          "rul_p90_s", "mode"}  # fmt: skip
    failures = {u["unit"]: u for u in units[:4]}
    for u in failures.values():
        assert u["first_alert_s"] is not None and u["mode"] == "overheating"
        assert u["rul_p10_s"] <= u["rul_s"] <= u["rul_p90_s"]
    for u in units[4:]:
        assert u["first_alert_s"] is None  # healthy units: no alarm
    assert summary["failed_units"] == 4 and summary["alerted_share"] == 1.0
    assert summary["false_alarm_share"] == 0.0
    assert summary["lead_share_median"] >= 0.1
    assert summary["rul_within_25pct"] >= 2


def test_a_csv_alone_derives_its_class(plant: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = plant / "derived"
    assert main(["offchain", "train", "--class", "gearbox_x", "--csv",
                 str(plant / "healthy.csv"), "--out", str(models)]) == 0  # fmt: skip
    cls = load_class(models / "gearbox_x.class.toml")
    assert [m.name for m in cls.metrics] == ["oil_temperature", "shaft_speed", "acoustic_level"]
    assert [m.scale for m in cls.metrics] == [2, 0, 1]  # from the readings' resolution
    assert cls.failure_modes == () and cls.window_s is not None
    model = PrognosticModel.load(next(models.glob("gearbox_x-prognostic-v*.json")))
    assert [m.name for m in model.modes] == ["anomaly"]
    capsys.readouterr()
    assert main(["offchain", "evaluate", "--models", str(models), "--class", "gearbox_x",
                 "--csv", str(plant / "runs.csv"), "--failures",
                 str(plant / "failures.csv"), "--json"]) == 0  # fmt: skip
    summary = _json_lines(capsys)[-1]["summary"]
    # without failure modes the anomaly statistic still catches the heating units
    assert summary["alerted_before_failure"] >= 3 and summary["healthy_with_alarm"] == 0


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        ("unit,t_seconds,oil_temperature\ngb,0,41.2\ngb,5,hot\n", 3, "oil_temperature"),
        ("unit,t_seconds,oil_temperature\ngb,0,41.2\n,5,41.3\n", 3, "unit"),
        ("unit,t_seconds,oil_temperature\ngb,0,41.2\ngb,5,41.3,9\n", 3, None),
        ("unit,time,oil_temperature\ngb,0,41.2\n", 1, "t_seconds"),
        ("unit,t_seconds,oil_temperature\ngb,2026-01-01T00:00:00Z,1\ngb,yesterday,2\n", 3,
         "t_seconds"),
        ("unit,t_seconds,oil_temperature\ngb,0,inf\n", 2, "oil_temperature"),
    ],
)  # fmt: skip
def test_bad_csv_is_a_typed_error_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, line: int, column: str | None
) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(body)
    with pytest.raises(CsvError) as err:
        read_history(f, ["oil_temperature"])
    assert err.value.line == line and err.value.column == column
    (tmp_path / "gearbox.toml").write_text(GEARBOX)
    code = main(["offchain", "train", "--class", str(tmp_path / "gearbox.toml"), "--csv",
                 str(f), "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 2 and f"line {line}" in capsys.readouterr().err


def test_windows_are_the_chains(plant: Path) -> None:
    cls = load_class(plant / "gearbox.toml")
    unit = read_history(plant / "runs.csv", [m.name for m in cls.metrics]).units[0]
    table = unit_windows(cls, unit, 60_000)
    # the chain folds reading by reading (features.Agg is the worker's copy of the pallet's)
    cols = fixed_columns(cls, unit)
    for j, m in enumerate(cls.metrics):
        chain: dict[int, Agg] = {}
        for t, v in zip(unit.t_ms.tolist(), cols[j].tolist(), strict=True):  # type: ignore[union-attr]
            if not math.isnan(v):
                chain.setdefault(t - t % 60_000, Agg()).add(int(v))
                assert int(v) == cls.to_fixed(m, float(unit.values[m.name][unit.t_ms == t][0]))
        rows = {int(s): i for i, s in enumerate(table.starts)}
        for start, agg in chain.items():
            i = rows[start]
            assert (agg.count, agg.min, agg.max, agg.sum, agg.last) == (
                table.count[i, j], table.min[i, j], table.max[i, j], table.sum[i, j],
                table.last[i, j],
            )  # fmt: skip
    # windows of a longer model merge the chain's exactly (both are aligned to the epoch)
    small = aggregate(unit.t_ms, cols, 10_000)
    assert small.coarsen(60_000).equals(table)


def test_model_file_is_canonical_and_scores_window_by_window(plant: Path) -> None:
    cls = load_class(plant / "gearbox.toml")
    hist = read_history(plant / "healthy.csv", [m.name for m in cls.metrics])
    model = train_prognostic(cls, hist)
    data = model.to_bytes()
    again = PrognosticModel.from_bytes(data)
    assert again.to_bytes() == data and again.hash == model.hash
    with pytest.raises(ModelError):
        PrognosticModel.load(plant / "healthy.csv")
    with pytest.raises(ModelError):
        bad = json.loads(data)
        bad["signals"][0]["name"] = "nope.mean"
        PrognosticModel.from_json(bad)
    runs = read_history(plant / "runs.csv", [m.name for m in cls.metrics])
    table = unit_windows(cls, runs.units[0], model.window_ms)
    batch = run_unit(again, table)
    state = UnitState(model)  # the worker's way: one window at a time, as the chain closes them
    for i, r in enumerate(batch):
        one = model.signal_values(table.rows(i, i + 1))[0]
        s = state.update(int(table.starts[i]), one)
        assert (s.statistic, s.alert, s.probability) == (r.statistic, r.alert, r.probability)
    assert any(r.alert for r in batch)
