"""Benchmark: class specs and their ownership, condition rules, industry standards, baselines
learned from closed windows, drift and health, peer percentiles, and the permission matrix."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.benchmark.arithmetic import bp_of, div_round
from twinchain.runtime.pallets.benchmark.features import drift
from twinchain.runtime.pallets.benchmark.types import (
    DRIFT_CLAMP_BP,
    MAX_ADJ_BP,
    RING,
    ConditionRule,
)
from twinchain.runtime.pallets.equipment.types import OPERATE
from twinchain.runtime.pallets.telemetry import Aggregate

MAKER, MAKER2, OWNER, OWNER2, GW, DELEGATE, NOBODY = (
    Keypair.from_dev_name(n)
    for n in ("Maker", "Maker2", "Owner", "Owner2", "Bob", "Delegate", "Nobody")
)
DEV = [Keypair.from_dev_name(f"Device{i}") for i in range(3)]
SLOT = 200
NOW = SLOT * 1000
WINDOW = 1000
TEMP, VIB, POWER, ENERGY, HUMID = 1, 2, 4, 5, 14
CLS = "cnc_mill"
ROOT = Origin.root()


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world(n_base: int = 3, **bench: Any) -> dict[str, Any]:
    twin = {"manufacturer": "//Maker", "class": CLS, "lifecycle": "Active"}
    return {
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Maker2", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Bob", "Gateway"],
            ]
        },
        "equipment": {
            "twins": [
                twin | {"serial": f"S{i}", "owner": "//Owner", "rated": [[POWER, 5_000]]}
                for i in range(3)
            ]
        },
        "telemetry": {
            "window_ms": WINDOW,
            "devices": [{"device": f"//Device{i}", "twin": i} for i in range(3)],
        },
        "benchmark": {"baseline_windows": n_base, **bench},
    }


@pytest.fixture
def blk(make_chain: Any) -> Any:
    chain = make_chain(extra=world())
    chain.start_block(SLOT)
    return chain


class Feeder:
    """Submits one batch per window for a twin's device; each batch closes the previous one.
    The metrics it feeds are made public first (set_disclosure by the twin's owner)."""

    def __init__(self, chain: Any, twin: int) -> None:
        self.chain, self.twin, self.seq, self.w = chain, twin, 0, 0

    def window(self, values: dict[int, int | list[int]]) -> list[Any]:
        readings = []
        for m, v in values.items():
            vs = v if isinstance(v, list) else [v]
            readings += [(m, self.w * WINDOW + 10 + i, x) for i, x in enumerate(vs)]
        # Power and energy are private by default: these twins' owners make them public.
        private = set(values) - self.chain.rt.telemetry.public_metrics(self.twin)
        if private:
            self.chain.make_public(self.twin, *sorted(private))
        b = self.chain.commitment(DEV[self.twin], self.twin, self.seq, readings)
        self.seq += 1
        self.w += 1
        evs = self.chain.dispatch(signed(GW), "Telemetry", "submit", [b])
        return evs + self.chain.close_windows()  # type: ignore[no-any-return]

    def windows(self, n: int, values: dict[int, int | list[int]]) -> list[Any]:
        evs: list[Any] = []
        for _ in range(n):
            evs += self.window(values)
        return evs


def names(evs: list[Any], module: str = "Benchmark") -> list[str]:
    return [e.name for e in evs if e.module == module]


def snapshot(chain: Any) -> list[tuple[bytes, bytes]]:
    return list(chain.rt.state.iter_prefix(b""))


# --------------------------------------------------------------------------- arithmetic


def test_integer_rounding() -> None:
    assert [div_round(a, 2) for a in (3, -3, 1, -1, 4)] == [2, -2, 1, -1, 2]
    assert bp_of(105, 100) == 500 and bp_of(95, 100) == -500 and bp_of(3, 0) == 30_000
    assert bp_of(10**15, 1) == DRIFT_CLAMP_BP


# --------------------------------------------------------------------------- baselines & drift


def test_baseline_learned_from_first_n_windows_then_drift(blk: Any) -> None:
    f = Feeder(blk, 0)
    b = blk.rt.benchmark
    # Three windows at 50.000, 52.000 and 54.000 degC; the fourth batch closes the third.
    f.window({TEMP: [49_000, 51_000], ENERGY: 10})
    f.window({TEMP: 52_000, ENERGY: 10})
    f.window({TEMP: 54_000, ENERGY: 10})
    assert b.Baselines.get(0, TEMP) is None and b.Learning.get(0, TEMP) == (2, 102_000)
    evs = f.window({TEMP: 60_600})
    learned = [blk.args(e) for e in evs if e.name == "BaselineLearned"]
    assert learned == [{"twin": 0, "metric": TEMP, "mean": 52_000}]
    assert b.Baselines.get(0, ENERGY) is None  # Delta metrics have no baseline
    assert b.health_bp(0) is None  # nothing drifted yet
    f.window({TEMP: 57_200})  # closes the 60.600 window: +16.5 %
    d = b.Drifts.get(0, TEMP)
    assert (d.last_bp, d.ewma_bp, d.windows, d.last_value) == (1_654, 1_654, 1, 60_600)
    assert b.health_bp(0) == 10_000 - 1_654
    f.window({TEMP: 52_000})  # closes 57.200: +10 %; EWMA moves 20 % of the way
    d = b.Drifts.get(0, TEMP)
    assert (d.last_bp, d.ewma_bp) == (1_000, 1_654 + (1_000 - 1_654) * 2_000 // 10_000)
    assert d.recent == [1_654, 1_000] and d.trend_bp == -654
    assert b.Twins.get(0).windows == 5 and b.Twins.get(0).last_start == 4 * WINDOW


def test_trend_over_the_ring_and_health_floor(blk: Any) -> None:
    f = Feeder(blk, 0)
    f.windows(3, {TEMP: 10_000})
    for v in range(11_000, 11_000 + 10 * 2_000, 2_000):  # a steady climb, 10 windows
        f.window({TEMP: v})
    f.window({TEMP: 40_000})  # closes the last climb window
    d = blk.rt.benchmark.Drifts.get(0, TEMP)
    assert len(d.recent) == RING and d.windows == 10
    assert d.recent == sorted(d.recent) and d.trend_bp == 4 * 2_000  # +2000 bp per window
    f.windows(12, {TEMP: 40_000})  # 300 % drift: health bottoms out at 0
    assert blk.rt.benchmark.health_bp(0) == 0


def test_reset_baseline_relearns(blk: Any) -> None:
    f = Feeder(blk, 0)
    f.windows(5, {TEMP: 20_000})
    b = blk.rt.benchmark
    assert b.Baselines.get(0, TEMP).mean == 20_000 and b.Drifts.get(0, TEMP) is not None
    assert b.percentile_bp(0) is not None
    evs = blk.dispatch(signed(OWNER), "Benchmark", "reset_baseline", 0)
    assert names(evs) == ["BaselineReset"]
    assert b.Baselines.get(0, TEMP) is None and b.Drifts.get(0, TEMP) is None
    assert b.Twins.get(0) is None and b.percentile_bp(0) is None
    f.windows(4, {TEMP: 30_000})  # the window open at the reset (20.000) counts too
    assert b.Baselines.get(0, TEMP).mean == div_round(20_000 + 30_000 + 30_000, 3)


# --------------------------------------------------------------------------- targets


def test_deviation_against_class_spec_then_baseline(blk: Any) -> None:
    b = blk.rt.benchmark
    agg = Aggregate(2, 54_000, 56_000, 110_000, 56_000, 10, 0)
    assert b.deviation_bp(0, TEMP, agg) is None  # neither spec nor baseline
    Feeder(blk, 0).windows(4, {TEMP: 50_000})
    assert b.deviation_bp(0, TEMP, agg) == 1_000  # 55.000 against the 50.000 baseline
    blk.dispatch(ROOT, "Benchmark", "set_class_spec", CLS, TEMP, 44_000, 2_000)
    assert b.deviation_bp(0, TEMP, agg) == 2_500  # the class spec wins
    assert b.target(0, TEMP) == (44_000, 2_000)
    # A Delta metric's window value is its total.
    blk.dispatch(ROOT, "Benchmark", "set_class_spec", CLS, ENERGY, 100, 10)
    assert b.deviation_bp(0, ENERGY, Aggregate(3, 30, 50, 120, 50, 10, 0)) == 2_000
    assert b.deviation_bp(0, ENERGY, Aggregate(0, 0, 0, 0, 0, 0, 0)) is None


def test_condition_rules_adjust_the_target(blk: Any) -> None:
    b = blk.rt.benchmark
    blk.dispatch(ROOT, "Benchmark", "set_class_spec", CLS, TEMP, 60_000, 3_000)
    rules = [
        # +20 % of the target per 100 % of rated power above rated (load)
        ConditionRule(POWER, True, 10_000, 2_000, 10_000),
        # -1 % per %RH of humidity above 50.00 %RH (absolute, scale 2: unit 100)
        ConditionRule(HUMID, False, 5_000, -100, 100),
    ]
    evs = blk.dispatch(ROOT, "Benchmark", "set_condition_rules", CLS, TEMP, rules)
    assert blk.args(evs[0]) == {"class": CLS, "metric": TEMP, "rules": 2}
    f = Feeder(blk, 0)
    f.window({TEMP: 66_000, POWER: 7_500})  # 150 % load: target 66.000
    start = 0
    assert b.target(0, TEMP, start) == (66_000, 3_000)
    agg = blk.rt.telemetry.aggregate(0, TEMP, start)
    assert b.deviation_bp(0, TEMP, agg) == 0
    f.window({TEMP: 63_000, POWER: 7_500, HUMID: 5_500})  # +1000 bp load, -500 bp humidity
    assert b.target(0, TEMP, WINDOW) == (63_000, 3_000)
    f.window({TEMP: 60_000})  # no drivers in this window: the plain spec
    assert b.target(0, TEMP, 2 * WINDOW) == (60_000, 3_000)
    f.window({TEMP: 1, POWER: 500_000})  # 100x load: clamped at MAX_ADJ_BP
    assert b.target(0, TEMP, 3 * WINDOW)[0] == 60_000 * (10_000 + MAX_ADJ_BP) // 10_000
    # Clearing the rules with an empty list.
    blk.dispatch(ROOT, "Benchmark", "set_condition_rules", CLS, TEMP, [])
    assert b.ConditionRules.get(CLS, TEMP) is None


def test_standards_count_violations(blk: Any) -> None:
    blk.dispatch(ROOT, "Benchmark", "set_standard", CLS, VIB, "ISO 10816-3 zone B", 0, 4_500)
    f = Feeder(blk, 0)
    f.window({VIB: 2_000})
    f.window({VIB: 7_100})
    f.window({VIB: 7_100})
    f.window({VIB: 3_000})
    assert blk.rt.benchmark.Twins.get(0).violations == 2
    blk.dispatch(ROOT, "Benchmark", "remove_standard", CLS, VIB)
    assert blk.rt.benchmark.Standards.get(CLS, VIB) is None


# --------------------------------------------------------------------------- peers


def test_peer_percentiles_across_the_class(blk: Any) -> None:
    b = blk.rt.benchmark
    for twin, late in ((0, 50_000), (1, 55_000), (2, 60_000)):
        f = Feeder(blk, twin)
        f.windows(3, {TEMP: 50_000})
        f.windows(2, {TEMP: late})
    peers = b.ClassPeers.get(CLS)
    assert [tw for _, tw in peers] == [2, 1, 0]  # ascending health
    assert [h for h, _ in peers] == sorted(h for h, _ in peers)
    assert b.percentile_bp(0) == (5 * 10_000 // 6, 3)
    assert b.percentile_bp(1) == (3 * 10_000 // 6, 3)
    assert b.percentile_bp(2) == (1 * 10_000 // 6, 3)


def test_peer_list_is_bounded(blk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "MAX_PEERS", 2)  # the ranking's bound
    feeders = [Feeder(blk, twin) for twin in range(3)]
    for f in feeders:
        f.windows(5, {TEMP: 50_000})
    b = blk.rt.benchmark
    assert b.ClassPeers.get(CLS) == [(10_000, 0), (10_000, 1)]  # equal health: by twin id
    assert b.percentile_bp(2) is None and b.health_bp(2) == 10_000
    blk.dispatch(signed(OWNER), "Benchmark", "reset_baseline", 0)  # frees a place
    feeders[2].window({TEMP: 50_000})
    assert sorted(tw for _, tw in b.ClassPeers.get(CLS)) == [1, 2]


# --------------------------------------------------------------------------- permissions


SPEC_ARGS = (CLS, TEMP, 60_000, 2_000)


def test_class_ownership(blk: Any) -> None:
    b = blk.rt.benchmark
    evs = blk.dispatch(signed(MAKER), "Benchmark", "set_class_spec", *SPEC_ARGS)
    assert names(evs) == ["ClassOwnerSet", "ClassSpecSet"]
    assert b.ClassOwner.get(CLS) == MAKER.public
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(MAKER2), "Benchmark", "set_class_spec", *SPEC_ARGS)
    assert err(e) == "Benchmark.NotClassOwner"
    blk.dispatch(ROOT, "Benchmark", "set_class_owner", CLS, MAKER2.public)
    blk.dispatch(signed(MAKER2), "Benchmark", "set_class_spec", CLS, TEMP, 61_000, 1)
    assert b.ClassSpecs.get(CLS, TEMP).expected == 61_000
    blk.dispatch(ROOT, "Benchmark", "set_class_owner", CLS, None)
    assert b.ClassOwner.get(CLS) is None


RULE = [ConditionRule(POWER, True, 10_000, 100, 10_000)]
# call -> args; every call below is tried by every party.
CALLS: dict[str, tuple[Any, ...]] = {
    "set_class_owner": (CLS, MAKER.public),
    "set_class_spec": SPEC_ARGS,
    "remove_class_spec": (CLS, TEMP),
    "set_condition_rules": (CLS, TEMP, RULE),
    "set_standard": (CLS, TEMP, "EN 60204", 0, 90_000),
    "remove_standard": (CLS, TEMP),
    "reset_baseline": (0,),
}
# Expected outcome per (party, call) on a chain where MAKER owns the class and a spec, a
# standard and a baseline exist: None = allowed.
MATRIX: dict[str, dict[str, str | None]] = {
    "root": {
        "set_class_owner": None, "set_class_spec": None, "remove_class_spec": None,
        "set_condition_rules": None, "set_standard": None, "remove_standard": None,
        "reset_baseline": "System.BadOrigin",
    },
    "maker": {
        "set_class_owner": "System.BadOrigin", "set_class_spec": None,
        "remove_class_spec": None, "set_condition_rules": None,
        "set_standard": "System.BadOrigin", "remove_standard": "System.BadOrigin",
        "reset_baseline": "Benchmark.NoPermission",
    },
    "maker2": {
        "set_class_owner": "System.BadOrigin", "set_class_spec": "Benchmark.NotClassOwner",
        "remove_class_spec": "Benchmark.NotClassOwner",
        "set_condition_rules": "Benchmark.NotClassOwner",
        "set_standard": "System.BadOrigin", "remove_standard": "System.BadOrigin",
        "reset_baseline": "Benchmark.NoPermission",
    },
    "owner": {
        "set_class_owner": "System.BadOrigin", "set_class_spec": "Benchmark.NotManufacturer",
        "remove_class_spec": "Benchmark.NotManufacturer",
        "set_condition_rules": "Benchmark.NotManufacturer",
        "set_standard": "System.BadOrigin", "remove_standard": "System.BadOrigin",
        "reset_baseline": None,
    },
    "delegate": {
        "set_class_owner": "System.BadOrigin", "set_class_spec": "Benchmark.NotManufacturer",
        "remove_class_spec": "Benchmark.NotManufacturer",
        "set_condition_rules": "Benchmark.NotManufacturer",
        "set_standard": "System.BadOrigin", "remove_standard": "System.BadOrigin",
        "reset_baseline": None,
    },
    "nobody": {
        "set_class_owner": "System.BadOrigin", "set_class_spec": "Benchmark.NotManufacturer",
        "remove_class_spec": "Benchmark.NotManufacturer",
        "set_condition_rules": "Benchmark.NotManufacturer",
        "set_standard": "System.BadOrigin", "remove_standard": "System.BadOrigin",
        "reset_baseline": "Benchmark.NoPermission",
    },
}  # fmt: skip
PARTIES = {
    "root": ROOT,
    "maker": signed(MAKER),
    "maker2": signed(MAKER2),
    "owner": signed(OWNER),
    "delegate": signed(DELEGATE),
    "nobody": signed(NOBODY),
}


@pytest.mark.parametrize("party", list(MATRIX))
@pytest.mark.parametrize("name", list(CALLS))
def test_permission_matrix(blk: Any, party: str, name: str) -> None:
    blk.dispatch(signed(MAKER), "Benchmark", "set_class_spec", *SPEC_ARGS)
    blk.dispatch(ROOT, "Benchmark", "set_standard", CLS, TEMP, "EN 60204", 0, 90_000)
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", 0, DELEGATE.public, OPERATE, 10**13)
    Feeder(blk, 0).windows(4, {TEMP: 50_000})
    expected = MATRIX[party][name]
    before = snapshot(blk)
    if expected is None:
        evs = blk.dispatch(PARTIES[party], "Benchmark", name, *CALLS[name])
        assert evs and all(e.module == "Benchmark" for e in evs)
    else:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(PARTIES[party], "Benchmark", name, *CALLS[name])
        assert err(e) == expected
        assert snapshot(blk) == before


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("set_class_spec", ("", TEMP, 1, 1), "EmptyClass"),
        ("set_class_spec", (CLS, 999, 1, 1), "UnknownMetric"),
        ("set_class_owner", ("", None), "EmptyClass"),
        ("remove_class_spec", (CLS, VIB), "NoSpec"),
        ("set_condition_rules", (CLS, TEMP, [ConditionRule(POWER, True, 0, 1, 0)]), "InvalidRule"),
        ("set_condition_rules", (CLS, TEMP, [ConditionRule(TEMP, True, 0, 1, 1)]), "InvalidRule"),
        ("set_condition_rules", (CLS, TEMP, [ConditionRule(999, True, 0, 1, 1)]), "UnknownMetric"),
        ("set_standard", (CLS, TEMP, "", 0, 1), "InvalidStandard"),
        ("set_standard", (CLS, TEMP, "X", 2, 1), "InvalidStandard"),
        ("set_standard", ("", TEMP, "X", 0, 1), "EmptyClass"),
        ("remove_standard", (CLS, VIB), "NoStandard"),
    ],
)
def test_invalid_input_changes_nothing(
    blk: Any, name: str, args: tuple[Any, ...], error: str
) -> None:
    blk.dispatch(ROOT, "Benchmark", "set_class_spec", *SPEC_ARGS)
    before = snapshot(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(ROOT, "Benchmark", name, *args)
    assert err(e) == f"Benchmark.{error}"
    assert snapshot(blk) == before


def test_reset_baseline_of_unknown_twin(blk: Any) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Benchmark", "reset_baseline", 99)
    assert err(e) == "Benchmark.UnknownTwin"


# --------------------------------------------------------------------------- genesis


def test_genesis_config(make_chain: Any) -> None:
    chain = make_chain(
        extra=world(
            n_base=2,
            class_owners=[[CLS, "//Maker"]],
            class_specs=[[CLS, TEMP, 60_000, 2_000]],
            condition_rules=[[CLS, TEMP, [[POWER, True, 10_000, 2_000, 10_000]]]],
            standards=[[CLS, VIB, "ISO 10816-3", 0, 4_500]],
        )
    )
    b = chain.rt.benchmark
    assert b.BaselineWindows.get() == 2 and b.ClassOwner.get(CLS) == MAKER.public
    assert b.ClassSpecs.get(CLS, TEMP).tolerance == 2_000
    assert b.ConditionRules.get(CLS, TEMP)[0].slope_bp == 2_000
    assert b.Standards.get(CLS, VIB).name == "ISO 10816-3"


@pytest.mark.parametrize(
    "bench",
    [
        {"baseline_windows": 0},
        {"condition_rules": [[CLS, TEMP, [[POWER, True, 0, 1, 0]]]]},
        {"standards": [[CLS, VIB, "X", 5, 1]]},
        {"class_specs": [[CLS, 999, 1, 1]]},
        {"class_specs": [["", TEMP, 1, 1]]},
    ],
)
def test_genesis_rejects(make_chain: Any, bench: dict[str, Any]) -> None:
    cfg = world()
    cfg["benchmark"] = bench
    with pytest.raises(ValueError):
        make_chain(extra=cfg)


def test_peer_list_packs_and_rejects_bad_values() -> None:
    """The class peer list is one packed bin (10-byte records): it round-trips, orders by
    (health, twin), and refuses what does not fit with a typed codec error."""
    from twinchain.primitives.codec import CodecError
    from twinchain.runtime.pallets.benchmark.types import MAX_PEERS, PeerList

    peers = [(0, 7), (9_999, 2**64 - 1), (10_000, 0)]
    raw = PeerList.encode(peers)
    assert PeerList.decode(raw) == peers and len(PeerList.to_wire(peers)) == 30
    for bad in ([(70_000, 1)], [(1, -1)], [(1,)], [(1, 2)] * (MAX_PEERS + 1), "x"):
        with pytest.raises(CodecError):
            PeerList.encode(bad)
    for wire in (b"\x00" * 9, b"\x00" * 10 * (MAX_PEERS + 1), [1, 2]):
        with pytest.raises(CodecError):
            PeerList.from_wire(wire)
