"""The ProgPy fleet generators (``bench.fleets``): a tiny fleet of each kind writes the CSV
contract's files, its failure times come from the physics model's own thresholds, healthy
units have none, and the same seed gives the same bytes."""

from __future__ import annotations

import csv
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level package beside twinchain/
    sys.path.insert(0, str(ROOT))

from bench.fleets import generate  # noqa: E402
from bench.fleets.common import FleetFiles  # noqa: E402

# tiny: a few units over a short horizon, wear scaled to it (seconds, not minutes)
TINY = {
    "pump": {"horizon_s": 2 * 3600.0},
    "battery": {"cycles": 6, "records": 2},
    "valve": {"horizon_s": 4 * 3600.0, "records": 2},
}
UNITS = 4


@pytest.fixture(scope="module", params=sorted(TINY))
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    kind = request.param
    out = tmp_path_factory.mktemp(kind)
    files = generate(kind, UNITS, 5, out, healthy_fraction=0.5, **TINY[kind])
    return kind, files


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_contract_columns_and_class(fleet: tuple[str, FleetFiles]) -> None:
    _, files = fleet
    cls = tomllib.loads(files.class_toml.read_text())
    metrics = [m["name"] for m in cls["metrics"]]
    header = files.csv.read_text().splitlines()[0].split(",")
    assert header == ["unit", "t_seconds", *metrics]
    assert cls["class"]["window_s"] > 0
    for mode in cls["failure_modes"]:
        assert mode["metric"] in metrics and mode["direction"] in ("up", "down")
    data = rows(files.csv)
    assert {r["unit"] for r in data} == {r["unit"] for r in rows(files.failures)}
    for r in data[:200]:
        float(r["t_seconds"])
        assert any(r[m] != "" for m in metrics)
    assert files.failures.read_text().splitlines()[0] == "unit,failure_time_s"


def test_failures_follow_the_model_thresholds(fleet: tuple[str, FleetFiles]) -> None:
    kind, files = fleet
    truth = {r["unit"]: r for r in rows(files.truth)}
    fails = {r["unit"]: r["failure_time_s"] for r in rows(files.failures)}
    last_t: dict[str, float] = {}
    for r in rows(files.csv):
        last_t[r["unit"]] = float(r["t_seconds"])
    assert any(fails.values()) and not all(fails.values())  # some failed, some healthy
    for unit, ft in fails.items():
        t = truth[unit]
        if not ft:  # healthy: censored, no event, observed to the end
            assert t["event"] == ""
            continue
        assert float(ft) > last_t[unit]  # no reading at or after the failure
        met = threshold_met(kind, t)
        if t["event"] == "Fails To Open":  # the valve model's own open indicator decided
            assert kind == "valve"
            continue
        assert t["event"] in met, (unit, t["event"], met)
    for unit, t in truth.items():  # a censored unit met none of its model's thresholds
        if not fails[unit]:
            assert threshold_met(kind, t) == set(), unit


def threshold_met(kind: str, t: dict[str, str]) -> set[str]:
    """The model's own thresholds, applied to the damage state the simulation ended in."""
    if kind == "pump":
        from progpy.models import CentrifugalPumpBase

        lim = CentrifugalPumpBase.default_parameters["lim"]
        checks = {
            "ImpellerWearFailure": float(t["end_A"]) <= lim["A"],
            "ThrustBearingOverheat": float(t["end_Tt"]) >= lim["Tt"],
            "RadialBearingOverheat": float(t["end_Tr"]) >= lim["Tr"],
            "PumpOilOverheat": float(t["end_To"]) >= lim["To"],
        }
    elif kind == "valve":
        from progpy.models import PneumaticValveBase

        p = PneumaticValveBase.default_parameters
        checks = {
            "Bottom Leak": float(t["end_Aeb"]) > p["AbMax"],
            "Top Leak": float(t["end_Aet"]) > p["AtMax"],
            "Internal Leak": float(t["end_Ai"]) > p["AiMax"],
            "Spring Failure": float(t["end_k"]) < p["kMin"],
            "Friction Failure": float(t["end_r"]) > p["rMax"],
        }
    else:
        from progpy.models import BatteryElectroChemEODEOL

        q_min = BatteryElectroChemEODEOL.default_parameters["qMaxThreshold"]
        checks = {"InsufficientCapacity": float(t["q_mobile_end"]) < q_min}
    return {e for e, hit in checks.items() if hit}


def test_same_seed_same_bytes(fleet: tuple[str, FleetFiles], tmp_path: Path) -> None:
    kind, a = fleet
    b = generate(kind, UNITS, 5, tmp_path / "b", healthy_fraction=0.5, **TINY[kind])
    for name in ("class_toml", "csv", "failures", "truth"):
        assert getattr(a, name).read_bytes() == getattr(b, name).read_bytes(), name
    if kind == "pump":  # the seed matters
        c = generate(kind, UNITS, 6, tmp_path / "c", healthy_fraction=0.5, **TINY[kind])
        assert a.csv.read_bytes() != c.csv.read_bytes()
