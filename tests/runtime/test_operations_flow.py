"""The four operations pallets together, on the mock chain, through signed extrinsics.

One story: four pumps in two facilities stream signed telemetry windows; Benchmark learns
their baselines and ranks them; one pump degrades, Maintenance raises a deviation alert (a
single noisy window does not), the owner opens a corrective work order with escrow, a service
provider schedules downtime, repairs and claims; the pump's own telemetry verifies the repair
and the escrow is paid. Analytics closes periods whose KPIs match the Delta sums submitted
(MTBF and MTTR see the failure and the repair), the improvement after the repair earns a
reward once; Simulation's twin state follows the windows, and a scenario anchored from it
survives a challenge while a tampered one is refuted. The same blocks imported by a fresh
chain give the same state roots.

Production figures are private by default: before the first window the owners make them
public with ``Telemetry.set_disclosure`` (the second owner keeps its energy use private, so
its pumps have no on-chain energy figures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from twinchain.primitives.codec import U128
from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.analytics.types import PPM, treasury_account
from twinchain.runtime.pallets.maintenance.types import Part
from twinchain.twinsim import engine

UNIT = 10**12
OWNER, OWNER2, MAKER, SP, OP0, OP1, CHARLIE = (
    Keypair.from_dev_name(n)
    for n in ("Owner", "Owner2", "Maker", "Service", "Operator0", "Operator1", "Charlie")
)
GW = Keypair.from_dev_name("Bob")
DEVS = [Keypair.from_dev_name(f"Pump{i}") for i in range(4)]
CLS = "pump"
WINDOW = 10_000  # ms; one block per window, 10 slots apart
PERIOD = 60_000  # six windows per KPI period
TEMP, VIB = 1, 2
ENERGY, UNITS, GOOD, BAD, RUN, DOWN = 5, 7, 8, 9, 11, 12
DELTAS = (ENERGY, UNITS, GOOD, BAD, RUN, DOWN)
BASE_T, HOT_T = 50_000, 65_000  # milli-degC: +30 % is beyond the 20 % raise level
PAY = 7 * UNIT
BOND = 2 * UNIT
REWARD = 25 * UNIT
FAR = 10**13
H_DESC, H_REPORT = b"\x0d" * 32, b"\x0e" * 32
PARTS = [Part("bearing 6205", 2, UNIT // 2), Part("mechanical seal", 1, 3 * UNIT)]


def world() -> dict[str, Any]:
    env = [[TEMP, -20_000, 120_000, 0]]
    pump = {"manufacturer": "//Maker", "class": CLS, "model": "P-40", "lifecycle": "Active"}
    funded = ("Alice", "Bob", "Charlie", "Owner", "Owner2", "Service", "Maker")
    return {
        "balances": {"balances": [[f"//{n}", 1_000 * UNIT] for n in funded]},
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Owner2", "EquipmentOwner"],
                ["//Operator0", "FacilityOperator"],
                ["//Operator1", "FacilityOperator"],
                ["//Bob", "Gateway"],
                ["//Service", "ServiceProvider"],
            ]
        },
        "facility": {
            "facilities": [
                {"operator": "//Operator0", "name": "North", "verified_until": FAR},
                {"operator": "//Operator1", "name": "South", "verified_until": FAR},
            ]
        },
        "equipment": {
            "twins": [
                pump | {"serial": "P0", "owner": "//Owner", "facility": 0, "envelope": env},
                pump | {"serial": "P1", "owner": "//Owner", "facility": 0, "envelope": env},
                pump | {"serial": "P2", "owner": "//Owner2", "facility": 1, "envelope": env},
                pump | {"serial": "P3", "owner": "//Owner2", "facility": 1, "envelope": env},
            ]
        },
        "telemetry": {
            "window_ms": WINDOW,
            "devices": [{"device": f"//Pump{i}", "twin": i, "gateway": "//Bob"} for i in range(4)],
        },
        "benchmark": {"baseline_windows": 3},
        "maintenance": {
            "verify_windows": 2,
            "deadline_blocks": 50,
            "class_thresholds": [[CLS, TEMP, 2_000, 500, 2]],
        },
        "analytics": {
            "period_ms": PERIOD,
            "treasury": 1_000 * UNIT,
            # 3600 units per hour: one unit per running second is 100 % performance.
            "ideal_rates": [[t, 3_600_000] for t in range(4)],
            "rewards": {
                "improvement_reward": REWARD,
                "improvement_periods": 1,
                "baseline_periods": 2,
                "min_improvement_bp": 500,
            },
        },
        "simulation": {"scenario_bond": BOND, "challenge_blocks": 100},
    }


@dataclass
class Window:
    """What one twin reports in one window (Delta metrics are the window's totals)."""

    temp: int = BASE_T
    run: int = 9
    down: int = 1
    units: int = 9
    good: int = 8
    bad: int = 1
    energy: int = 90

    def readings(self, w: int) -> list[tuple[int, int, int]]:
        t0 = w * WINDOW + 1_000
        out = [(TEMP, t0, self.temp - 300), (TEMP, t0 + 4_000, self.temp + 300)]
        out += [(VIB, t0, 2_500)]
        out += [
            (m, t0 + 100, v)
            for m, v in zip(DELTAS, (self.energy, self.units, self.good, self.bad, self.run,
                                     self.down), strict=True)
        ]  # fmt: skip
        return out

    def delta(self, m: int) -> int:
        return {ENERGY: self.energy, UNITS: self.units, GOOD: self.good, BAD: self.bad,
                RUN: self.run, DOWN: self.down}[m]  # fmt: skip


# What each pump's owner makes public beyond the default (condition metrics): Owner's pumps
# every production figure, Owner2's all but their energy use.
PUBLISHED = {0: DELTAS, 1: DELTAS, 2: DELTAS[1:], 3: DELTAS[1:]}
OWNER_OF = {0: OWNER, 1: OWNER, 2: OWNER2, 3: OWNER2}

NORMAL = Window()
DEGRADED = Window(temp=HOT_T, run=7, down=3, units=7, good=4, bad=3, energy=95)
STOPPED = Window(temp=BASE_T, run=0, down=10, units=0, good=0, bad=0, energy=2)
REPAIRED = Window(run=10, down=0, units=10, good=10, bad=0, energy=80)


@dataclass
class Story:
    chain: Any
    w: int = 0  # the window the next telemetry block reports
    seqs: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    sent: dict[tuple[int, int], Window] = field(default_factory=dict)  # (twin, window) -> data
    last_events: list[dict[str, Any]] = field(default_factory=list)  # of the last block()
    disclosed: bool = False

    def disclose(self) -> None:
        """The owners' disclosure policies (``PUBLISHED``), in a block of their own before
        the first window: signed ``set_disclosure`` extrinsics."""
        c = self.chain
        c.start_block(1)
        nonces: dict[bytes, int] = {}
        for twin, metrics in PUBLISHED.items():
            who = OWNER_OF[twin]
            for m in metrics:
                n = nonces.setdefault(who.public, c.nonce(who.public))
                ok(c.apply(c.sign(who, c.call("Telemetry", "set_disclosure", twin, m, True), n)))
                nonces[who.public] = n + 1
        c.finish_block()
        self.disclosed = True

    def block(
        self, windows: dict[int, Window], *calls: tuple[Keypair, str, str, tuple[Any, ...]]
    ) -> list[Any]:
        """One block at the window's slot: the gateway's signed submit of one batch per twin
        (closing each twin's previous window), then ``calls`` signed by their senders; then
        an empty block, whose start runs the closes the submit queued."""
        c = self.chain
        if not self.disclosed:
            self.disclose()
        batches = []
        for twin in sorted(windows):
            rs = windows[twin].readings(self.w)
            batches.append(c.commitment(DEVS[twin], twin, self.seqs[twin], rs))
            self.seqs[twin] += 1
            self.sent[(twin, self.w)] = windows[twin]
        slot = self.w * WINDOW // 1000 + 5
        c.start_block(slot)
        outs = [c.apply(c.sign(GW, c.call("Telemetry", "submit", batches)))]
        nonces: dict[bytes, int] = {}
        for who, pallet, name, args in calls:
            n = nonces.setdefault(who.public, c.nonce(who.public))
            outs.append(c.apply(c.sign(who, c.call(pallet, name, *args), n)))
            nonces[who.public] = n + 1
        c.finish_block()
        self.last_events = c.events()
        c.start_block(slot + 1)
        c.finish_block()
        self.last_events += c.events()
        self.w += 1
        assert outs[0].success, outs[0].error
        return outs

    def all_normal(self, **special: Window) -> dict[int, Window]:
        return {t: special.get(f"t{t}", NORMAL) for t in range(4)}

    def events(self, name: str, pallet: str | None = None) -> list[dict[str, Any]]:
        return [
            e["args"]
            for e in self.last_events
            if e["event"] == name and (pallet is None or e["pallet"] == pallet)
        ]

    def period_sums(self, twin: int, period: int) -> dict[int, int]:
        ws = [d for (t, w), d in self.sent.items() if t == twin and w * WINDOW // PERIOD == period]
        public = PUBLISHED[twin]  # a private metric has no on-chain sums
        return {m: sum(d.delta(m) for d in ws) if m in public else 0 for m in DELTAS} | {0: len(ws)}


def ok(out: Any) -> None:
    assert out.success, out.error


def failed(out: Any, error: str) -> None:
    assert not out.success and out.error is not None
    assert f"{out.error.module}.{out.error.error}" == error


def expected_oee(s: dict[int, int]) -> tuple[int, int, int, int]:
    """The KPI formulas of analytics' docstring, written out again for one twin-period."""
    planned = PERIOD // 1000
    total = max(s[UNITS], s[GOOD] + s[BAD])
    ideal_milli = 3_600_000 * s[RUN] // 3600
    availability = (planned - min(s[DOWN], planned)) * PPM // planned
    performance = total * 1000 * PPM // ideal_milli if ideal_milli else 0
    quality = min(s[GOOD], total) * PPM // total if total else 0
    oee = availability * min(performance, PPM) * quality // PPM**2
    return availability, performance, quality, oee


def test_operations_story_end_to_end(make_chain: Any) -> None:
    chain = make_chain(extra=world())
    rt = chain.rt
    st = Story(chain)
    bench, mt, an, sim = rt.benchmark, rt.maintenance, rt.analytics, rt.simulation

    # -- model registry: the manufacturer registers the class's degradation model.
    model, params = engine.class_model(CLS)
    outs = st.block(
        st.all_normal(),
        (MAKER, "Simulation", "register_model", (model, CLS, engine.DEGRADATION, params, 1)),
    )
    ok(outs[1])
    assert sim.model_active(model)

    # -- baselines: the first three closed windows of each twin.
    for _ in range(3):
        st.block(st.all_normal())
    assert sorted(e["twin"] for e in st.events("BaselineLearned") if e["metric"] == TEMP) == [
        0, 1, 2, 3,
    ]  # fmt: skip
    for t in range(4):
        assert bench.Baselines.get(t, TEMP).mean == BASE_T
        assert bench.percentile_bp(t) is None  # ranked from the first drift on
    st.block(st.all_normal())  # window 4 closes window 3: the first drift
    assert [bench.percentile_bp(t) for t in range(4)] == [(5_000, 4)] * 4  # all alike

    # -- hysteresis: one noisy window beyond the raise level raises nothing.
    st.block(st.all_normal(t0=Window(temp=HOT_T)))  # reports the noisy window 5
    st.block(st.all_normal())  # closes it
    assert mt.DevStates.get(0, TEMP) == (1, 0)  # one window over, not two
    st.block(st.all_normal())
    assert mt.NextAlertId.get() == 0 and mt.open_alerts(0) == 0
    assert bench.health_bp(0) < 10_000 == bench.health_bp(1)
    # Across both facilities: the noisy pump ranks last, the others tie above it.
    assert bench.percentile_bp(0) == (1_250, 4)
    assert [bench.percentile_bp(t) for t in (1, 2, 3)] == [(6_250, 4)] * 3

    # -- the rest of period 1 normal (windows 8..11).
    while st.w < 12:
        st.block(st.all_normal())

    # -- period 2: pump 0 degrades; two windows beyond the raise level raise the alert.
    st.block(st.all_normal(t0=DEGRADED))  # window 12
    st.block(st.all_normal(t0=DEGRADED))  # window 13, closes 12: one over
    assert mt.open_alerts(0) == 0
    outs = st.block(st.all_normal(t0=DEGRADED))  # window 14, closes 13: two over
    [raised] = st.events("AlertRaised")
    aid = raised["alert"]
    assert (raised["twin"], raised["kind"], raised["metric"]) == (0, "Deviation", TEMP)
    assert raised["deviation_bp"] == (HOT_T - BASE_T) * 10_000 // BASE_T
    assert mt.last_alert(0) == aid and mt.open_alerts(0) == 1
    health_low = bench.health_bp(0)
    assert bench.percentile_bp(0) == (1_250, 4)

    # Simulation's state of pump 0: the window just closed (13), its health, its alert.
    s = sim.twin_state(0)
    assert s.window_start == 13 * WINDOW and s.window_ms == WINDOW
    temp = next(m for m in s.metrics if m.metric == TEMP)
    assert (temp.count, temp.mean, temp.min, temp.max, temp.last) == (
        2, HOT_T, HOT_T - 300, HOT_T + 300, HOT_T + 300,
    )  # fmt: skip
    assert [m.metric for m in s.metrics] == sorted([TEMP, VIB, *DELTAS])
    assert s.health_bp == health_low and s.last_alert == aid

    # -- corrective work order with escrow, provider, scheduled downtime.
    owner_free = chain.free(OWNER.public)
    now = (st.w * WINDOW // 1000 + 5) * 1000
    outs = st.block(
        st.all_normal(t0=STOPPED),  # window 15: pump 0 stopped for the repair
        (OWNER, "Maintenance", "create_from_alert", (aid, H_DESC, PAY, "Telemetry")),
        (OWNER, "Maintenance", "assign", (0, SP.public)),
        (SP, "Maintenance", "schedule", (0, now, now + 4 * WINDOW)),
    )
    for o in outs[1:]:
        ok(o)
    assert chain.reserved(OWNER.public) == PAY
    assert chain.free(OWNER.public) == owner_free - PAY - sum(o.fee for o in outs[1:3])
    assert mt.order(0).status == "Scheduled" and mt.alert(aid).work_order == 0
    outs = st.block(st.all_normal(t0=STOPPED), (SP, "Maintenance", "start", (0,)))  # window 16
    ok(outs[1])
    started_at = mt.order(0).started_at
    assert rt.equipment.twin(0).lifecycle == "Maintenance"
    # The pump cooled down while stopped: the alert clears (hysteresis), the order stays.
    outs = st.block(
        st.all_normal(t0=STOPPED),  # window 17
        (SP, "Maintenance", "claim_completion", (0, H_REPORT, PARTS)),
    )
    ok(outs[1])
    assert mt.alert(aid).status == "Cleared" and mt.order(0).status == "Claimed"
    claimed_at = mt.order(0).claimed_at

    # -- verification by telemetry: windows that begin after the claim, K = 2 of them.
    sp_free = chain.free(SP.public)
    st.block(st.all_normal(t0=REPAIRED))  # window 18 (closes 17: before the claim)
    assert mt.order(0).ok_windows == 0 and 17 * WINDOW < claimed_at <= 18 * WINDOW
    st.block(st.all_normal(t0=REPAIRED))  # window 19 (closes 18: one good window)
    assert mt.order(0).ok_windows == 1 and mt.order(0).status == "Claimed"
    st.block(st.all_normal(t0=REPAIRED))  # window 20 (closes 19: verified)
    o = mt.order(0)
    assert o.status == "Verified" and o.verified_by is None
    completed_at = o.completed_at
    names = [e["event"] for e in chain.events() if e["pallet"] == "Maintenance"]
    assert {"WorkOrderVerified", "EscrowReleased"} <= set(names)
    assert chain.reserved(OWNER.public) == 0
    assert chain.free(SP.public) == sp_free + PAY
    assert rt.equipment.twin(0).lifecycle == "Active"
    [rec] = rt.equipment.service_history(0)
    assert (rec.provider, rec.kind, rec.report, rec.cost, rec.work_order) == (
        SP.public, "Corrective", H_REPORT, PAY, 0,
    )  # fmt: skip
    parts = mt.parts(0)
    assert [(p.part, p.quantity, p.cost, p.order) for p in parts] == [
        (p.part, p.quantity, p.cost, 0) for p in PARTS
    ]
    c = mt.TwinCosts.get(0)
    assert (c.orders, c.service, c.parts) == (1, PAY, sum(p.cost for p in PARTS))
    assert mt.alert(aid).status == "Resolved" and mt.open_alerts(0) == 0
    assert sim.twin_state(0).last_alert == aid

    # -- after the repair: periods 3..5 at the repaired rate.
    while st.w < 32:
        st.block(st.all_normal(t0=REPAIRED))  # the last one closes window 30: period 4

    # KPIs of every closed period of every twin match the Delta sums submitted.
    for twin in range(4):
        for period in range(5):
            rec = an.kpis(twin, period)
            exp = st.period_sums(twin, period)
            s_ = rec.sums
            got = {ENERGY: s_.energy_wh, UNITS: s_.units, GOOD: s_.good, BAD: s_.bad,
                   RUN: s_.run_s, DOWN: s_.down_s, 0: s_.windows}  # fmt: skip
            assert got == exp, (twin, period)
            assert s_.valid_windows == s_.windows == 6
            a_, p_, q_, oee = expected_oee(exp)
            assert (rec.availability_ppm, rec.performance_ppm, rec.quality_ppm, rec.oee_ppm) == (
                a_, p_, q_, oee,
            ), (twin, period)  # fmt: skip
            fails, repairs = (1, 0) if (twin, period) == (0, 2) else (0, 0)
            repairs = 1 if (twin, period) == (0, 3) else repairs
            assert (s_.failures, s_.repairs) == (fails, repairs), (twin, period)
    # Owner2 kept its energy use private: no aggregate, no sum, no energy KPI of its pumps.
    assert not [k for k, _ in rt.telemetry.aggregates(2) if k[0] == ENERGY]
    assert [k for k, _ in rt.telemetry.aggregates(0) if k[0] == ENERGY]
    assert an.kpis(2, 1).sums.energy_wh == 0 < an.kpis(0, 1).sums.energy_wh
    # MTBF: running seconds of the failure's period per failure; MTTR: start -> verified.
    assert an.kpis(0, 2).mtbf_s == st.period_sums(0, 2)[RUN]
    assert an.kpis(0, 3).mttr_ms == completed_at - started_at > 0
    assert an.kpis(1, 2).mtbf_s is None and an.kpis(1, 3).mttr_ms is None
    # Facilities: their twins' sums.
    for fac, twins in ((0, (0, 1)), (1, (2, 3))):
        for period in range(5):
            f = rt.analytics.FacilityKpis.get(fac, period)
            assert f.twins == 2
            assert f.sums.units == sum(st.period_sums(t, period)[UNITS] for t in twins)
            assert f.sums.failures == (1 if (fac, period) == (0, 2) else 0)
    degraded, baseline = an.kpis(0, 2).oee_ppm, an.Baselines.get(0)
    assert baseline.established and baseline.until == 1 and degraded < baseline.oee_ppm
    assert an.kpis(0, 4).oee_ppm == PPM  # repaired: every second running, no scrap

    # -- the improvement reward after the repair: once.
    treasury = chain.free(treasury_account())
    owner_free = chain.free(OWNER.public)
    outs = st.block(
        st.all_normal(t0=REPAIRED),
        (OWNER, "Analytics", "claim_improvement_reward", (0, 2)),  # the degraded period
        (OWNER, "Analytics", "claim_improvement_reward", (0, 4)),
        (OWNER, "Analytics", "claim_improvement_reward", (0, 4)),
        (OWNER, "Analytics", "claim_improvement_reward", (0, 3)),  # before the claimed one
        (OWNER, "Analytics", "claim_improvement_reward", (1, 4)),  # never improved
    )
    failed(outs[1], "Analytics.NoImprovement")
    ok(outs[2])
    failed(outs[3], "Analytics.AlreadyClaimed")
    failed(outs[4], "Analytics.OverlapsClaim")
    failed(outs[5], "Analytics.NoImprovement")
    assert chain.free(treasury_account()) == treasury - REWARD
    assert chain.free(OWNER.public) == owner_free + REWARD - sum(o.fee for o in outs[1:])

    # -- a scenario from pump 0's synchronized state: it survives a challenge.
    s = sim.twin_state(0)
    assert s.window_start == (st.w - 2) * WINDOW and s.last_alert == aid
    assert s.health_bp == bench.health_bp(0) > health_low  # recovering after the repair
    temp = next(m for m in s.metrics if m.metric == TEMP).mean
    m = engine.DegradationModel.decode(params)
    inputs = engine.default_inputs(
        m, start_ms=s.window_start + s.window_ms, health_bp=s.health_bp,
        temperature_milli=temp, steps=40, paths=50, risk_bp=500,
    ).encode()  # fmt: skip
    assert engine.ScenarioInputs.decode(inputs).start_wear > 0  # the health carried over
    out, good_hash = engine.run_encoded(model, params, "FailureRisk", inputs, 7)
    fb, ttf, ws, we = out.summary()
    charlie_free = chain.free(CHARLIE.public)
    outs = st.block(
        st.all_normal(t0=REPAIRED),
        (OWNER, "Simulation", "anchor_scenario",
         (0, model, "FailureRisk", inputs, 7, good_hash, fb, ttf, ws, we)),
        (OWNER, "Simulation", "anchor_scenario",  # the same run, a flattering headline
         (0, model, "FailureRisk", inputs, 7, good_hash, max(0, fb - 1), ttf + 1, ws, we)),
    )  # fmt: skip
    ok(outs[1])
    ok(outs[2])
    assert chain.reserved(OWNER.public) == 2 * BOND
    outs = st.block(
        st.all_normal(t0=REPAIRED),
        (CHARLIE, "Simulation", "challenge", (0,)),
        (CHARLIE, "Simulation", "challenge", (1,)),
    )
    failed(outs[1], "Simulation.ChallengeFailed")
    ok(outs[2])
    assert sim.scenario(0).status == "Anchored" and sim.scenario(0).bond == BOND
    assert sim.scenario(1).status == "Refuted" and sim.scenario(1).challenger == CHARLIE.public
    [refuted] = st.events("ScenarioRefuted")
    assert refuted["expected"] == good_hash and refuted["slashed"] == BOND
    assert chain.reserved(OWNER.public) == BOND
    assert chain.free(CHARLIE.public) == charlie_free + BOND - outs[1].fee - outs[2].fee
    # A challenge is weighed by the work it re-runs.
    assert outs[1].weight >= 40 * 50 * rt.simulation.constants()["WeightPerPathStep"]

    # -- determinism: a fresh chain importing the same blocks reaches the same roots.
    assert chain.total_balance() == chain.issuance()
    replay = make_chain(extra=world())
    for b in chain.blocks:
        replay.start_block(b.header.slot, inherent=False)
        for raw in b.extrinsics:
            replay.apply(raw)
        again = replay.finish_block()
        assert again.header.state_root == b.header.state_root, b.header.number
        assert again.header.hash == b.header.hash
    assert replay.state.data == chain.state.data


# --------------------------------------------------------------------------- regressions


def test_parts_cost_overflow_is_refused_and_cannot_block_telemetry(make_chain: Any) -> None:
    """A provider's parts whose total cost overflows u128 used to make the verifying window's
    completion raise a codec error inside the gateway's submit, failing every later submit
    of the twin's telemetry. The claim is refused now; the totals saturate besides."""
    chain = make_chain(extra=world())
    st = Story(chain)
    now = (5 * WINDOW // 1000 + 5) * 1000
    for _ in range(5):
        st.block(st.all_normal())
    outs = st.block(
        st.all_normal(),
        (OWNER, "Maintenance", "create", (0, "Preventive", H_DESC, PAY, "Telemetry")),
        (OWNER, "Maintenance", "assign", (0, SP.public)),
        (SP, "Maintenance", "schedule", (0, now, now + 10 * WINDOW)),
        (SP, "Maintenance", "start", (0,)),
    )
    for o in outs[1:]:
        ok(o)
    huge = [Part("gold-plated impeller", 1, U128.max), Part("seal", 1, 1)]
    outs = st.block(st.all_normal(), (SP, "Maintenance", "claim_completion", (0, H_REPORT, huge)))
    failed(outs[1], "Maintenance.Overflow")
    assert chain.rt.maintenance.order(0).status == "InProgress"
    # At the bound, the claim passes and the twin's telemetry verifies it in its submits.
    at_max = [Part("gold-plated impeller", 1, U128.max)]
    outs = st.block(st.all_normal(), (SP, "Maintenance", "claim_completion", (0, H_REPORT, at_max)))
    ok(outs[1])
    for _ in range(3):
        st.block(st.all_normal())  # the submits succeed (asserted in Story.block)
    assert chain.rt.maintenance.order(0).status == "Verified"
    assert chain.rt.maintenance.TwinCosts.get(0).parts == U128.max


def test_completion_failure_in_the_window_hook_never_fails_the_submit(make_chain: Any) -> None:
    """Whatever the completion raises (a codec overflow included), the window hook reverts
    only the completion: the gateway's submit succeeds and the order stays Claimed."""
    chain = make_chain(extra=world())
    st = Story(chain)
    now = (3 * WINDOW // 1000 + 5) * 1000
    for _ in range(3):
        st.block(st.all_normal())
    outs = st.block(
        st.all_normal(),
        (OWNER, "Maintenance", "create", (0, "Preventive", H_DESC, PAY, "Telemetry")),
        (OWNER, "Maintenance", "assign", (0, SP.public)),
        (SP, "Maintenance", "schedule", (0, now, now + 10 * WINDOW)),
        (SP, "Maintenance", "start", (0,)),
        (SP, "Maintenance", "claim_completion", (0, H_REPORT, PARTS)),
    )
    for o in outs[1:]:
        ok(o)
    mt = chain.rt.maintenance
    real = type(mt)._complete

    def broken(self: Any, oid: int, o: Any, by: bytes | None) -> None:
        real(self, oid, o, by)
        raise OverflowError("a bug after the writes")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(mt), "_complete", broken)
        for _ in range(3):
            st.block(st.all_normal())  # Story.block asserts each submit succeeded
        # Windows 4 and 5 were good: the completion ran, failed and was reverted; the order
        # needs K new windows (it must not hold up the twin's other orders meanwhile).
        o = mt.order(0)
        assert o.status == "Claimed" and o.ok_windows == 0
        assert chain.reserved(OWNER.public) == PAY  # the escrow's release was reverted
        assert chain.rt.equipment.service_history(0) == []
    st.block(st.all_normal())
    assert mt.order(0).ok_windows == 1
    st.block(st.all_normal())
    assert mt.order(0).status == "Verified" and chain.reserved(OWNER.public) == 0


def test_one_completion_per_window_close(make_chain: Any) -> None:
    """Orders verified by the same window complete one per close (a completion is the
    costliest part of a close): the next closes complete the others, whatever they show."""
    chain = make_chain(extra=world())
    st = Story(chain)
    now = (3 * WINDOW // 1000 + 5) * 1000
    for _ in range(3):
        st.block(st.all_normal())
    calls: list[tuple[Keypair, str, str, tuple[Any, ...]]] = []
    for oid in range(3):
        calls += [
            (OWNER, "Maintenance", "create", (0, "Preventive", H_DESC, PAY, "Telemetry")),
            (OWNER, "Maintenance", "assign", (oid, SP.public)),
            (SP, "Maintenance", "schedule", (oid, now, now + 10 * WINDOW)),
            (SP, "Maintenance", "start", (oid,)),
            (SP, "Maintenance", "claim_completion", (oid, H_REPORT, PARTS)),
        ]
    for o in st.block(st.all_normal(), *calls)[1:]:
        ok(o)
    mt = chain.rt.maintenance
    st.block(st.all_normal())  # closes window 3: it began before the claims
    st.block(st.all_normal())  # closes window 4: one good window each
    st.block(st.all_normal(t0=Window(temp=HOT_T)))  # closes 5: K = 2 for all three
    assert [mt.order(i).ok_windows for i in range(3)] == [2, 2, 2]
    assert [mt.order(i).status for i in range(3)] == ["Verified", "Claimed", "Claimed"]
    st.block(st.all_normal())  # closes the hot window 6: order 1 completes all the same
    assert [mt.order(i).status for i in range(3)] == ["Verified", "Verified", "Claimed"]
    st.block(st.all_normal())
    assert [mt.order(i).status for i in range(3)] == ["Verified"] * 3
    assert chain.reserved(OWNER.public) == 0 and mt.Verifying.get(0) is None


def test_due_periods_full_never_fails_a_submit(
    make_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MAX_DUE_PERIODS distinct periods queued, a window of a period after all of them
    (a device's future-dated readings are flagged, not dropped, so they open such windows)
    used to add a 65th key that does not encode: a codec error failing the gateway's submit.
    It now goes under the latest key, and on_initialize never closes it before its end.
    (Telemetry no longer lets readings from beyond the allowed clock drift open a window; the
    drift is widened here so that the Analytics guard is still exercised.)"""
    from twinchain.runtime.pallets.analytics.types import MAX_DUE_PERIODS
    from twinchain.runtime.pallets.telemetry import ingest

    monkeypatch.setattr(ingest, "MAX_FUTURE_DRIFT_MS", 10**15)
    chain = make_chain(extra=world())
    an = chain.rt.analytics
    chain.start_block(3)
    an.DuePeriods.put(list(range(MAX_DUE_PERIODS)))  # none due before 64 periods pass
    chain.finish_block()
    future = 1_000 * PERIOD
    for seq in (0, 1):
        rs = [(RUN, future + seq * WINDOW, 5), (TEMP, future + seq * WINDOW, BASE_T)]
        b = chain.commitment(DEVS[0], 0, seq, rs)
        [out] = chain.produce(chain.sign(GW, chain.call("Telemetry", "submit", [b])))
        assert out.success, out.error
    chain.produce()  # its start runs the close the second submit queued
    assert "WindowClosed" in [e["event"] for e in chain.events()]
    assert an.DuePeriods.get() == list(range(MAX_DUE_PERIODS))
    assert an.Cursors.get(0).open == 1_000 and an.Due.get(MAX_DUE_PERIODS - 1, 0) == 1_000
    # Sweeping every key (the last one long before period 1000 ends) closes nothing early:
    # the entry moves under its own key.
    chain.start_block(7)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(an, "_now", lambda: MAX_DUE_PERIODS * PERIOD + an.CloseGraceMs.get())
        assert an.on_initialize(chain.head_number + 1) > 0
    assert an.DuePeriods.get() == [1_000] and an.Due.get(1_000, 0) == 1_000
    assert an.Cursors.get(0).open == 1_000 and an.kpis(0, 1_000) is None


def test_hook_does_not_scan_state_prefixes(make_chain: Any) -> None:
    """The window hooks read keyed values only: an overlay prefix scan costs O(every write
    of the block so far), which made a block full of window closes quadratic. (The closes
    run at the next block's start; here right after the submit, in its block.)"""
    chain = make_chain(extra=world())
    st = Story(chain)
    for _ in range(5):
        st.block(st.all_normal())
    calls: list[bytes] = []
    chain.start_block(st.w * WINDOW // 1000 + 5)
    overlay = chain.rt.state
    real = overlay.iter_prefix

    def spy(prefix: bytes, start_after: bytes | None = None) -> Any:
        calls.append(prefix)
        return real(prefix, start_after)

    overlay.iter_prefix = spy  # type: ignore[method-assign]
    batches = []
    for twin in range(4):
        rs = NORMAL.readings(st.w)
        batches.append(chain.commitment(DEVS[twin], twin, st.seqs[twin], rs))
    out = chain.apply(chain.sign(GW, chain.call("Telemetry", "submit", batches)))
    assert out.success, out.error
    chain.close_windows()
    assert sum(1 for _, ev in overlay.events if ev.name == "TwinStateUpdated") == 4
    rt = chain.rt
    mine = [
        item.prefix
        for p in (rt.benchmark, rt.maintenance, rt.analytics, rt.simulation)
        for name in dir(type(p))
        if isinstance(item := getattr(p, name, None), object)
        and isinstance(getattr(item, "prefix", None), bytes)
        and item.prefix
    ]
    assert len(mine) > 40
    assert [c for c in calls if any(c.startswith(m) for m in mine)] == []


def test_dispatch_errors_are_typed(make_chain: Any) -> None:
    """Bad input on the cross-pallet paths gets a typed error and changes nothing."""
    chain = make_chain(extra=world())
    chain.start_block(1)
    before = dict(chain.rt.state.committed)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(Origin.signed(OWNER2.public), "Maintenance", "create",
                       0, "Preventive", H_DESC, PAY, "Telemetry")  # fmt: skip
    assert (e.value.module, e.value.error) == ("Maintenance", "NoPermission")
    with pytest.raises(DispatchError) as e:
        chain.dispatch(Origin.signed(OWNER.public), "Analytics", "claim_improvement_reward", 0, 0)
    assert (e.value.module, e.value.error) == ("Analytics", "PeriodNotClosed")
    assert dict(chain.rt.state.committed) == before


def test_on_initialize_returns_the_weight_it_used(make_chain: Any) -> None:
    """Both hooks charge their reads even when nothing is due, and each expiry or period
    close on top; the executive adds what they return to the block's weight."""
    from twinchain.runtime.weights import analytics as an_w
    from twinchain.runtime.weights import maintenance as mt_w

    # Story.block makes two blocks: the order's deadline is 2 blocks after the second.
    chain = make_chain(extra=world() | {"maintenance": {"deadline_blocks": 3}})
    st = Story(chain)
    st.block(st.all_normal())
    now = (WINDOW // 1000 + 5) * 1000
    st.block(
        st.all_normal(),
        (OWNER, "Maintenance", "create", (0, "Preventive", H_DESC, PAY, "Telemetry")),
        (OWNER, "Maintenance", "assign", (0, SP.public)),
        (SP, "Maintenance", "schedule", (0, now, now + 10 * WINDOW)),
        (SP, "Maintenance", "start", (0,)),
    )
    deadline = chain.rt.maintenance.order(0).deadline
    assert deadline == chain.head_number + 2
    chain.start_block(chain.slot + 1)
    assert chain.rt.maintenance.on_initialize(chain.head_number) == mt_w.W_INIT
    chain.finish_block()
    base = chain.rt.system.BlockWeight.get()
    chain.start_block(chain.slot + 1)  # the deadline block: its on_initialize expires it
    chain.finish_block()
    assert chain.head_number == deadline
    assert chain.rt.maintenance.order(0).status == "Expired"
    used = mt_w.W_INIT + mt_w.W_EXPIRY_READ + mt_w.W_EXPIRE
    assert chain.rt.system.BlockWeight.get() - base == used - mt_w.W_INIT
    # Analytics: the open periods of the four twins close once their end plus grace passed.
    an = chain.rt.analytics
    assert all(an.Cursors.get(t).open == 0 for t in range(4))
    slot = (PERIOD + an.CloseGraceMs.get()) // 1000 + 1
    chain.start_block(slot)
    chain.finish_block()
    before = chain.rt.system.BlockWeight.get()
    chain.start_block(slot + 1)  # sees the previous block's time: past the grace
    chain.finish_block()
    closes = an_w.W_SWEEP + 4 * (an_w.W_SWEEP + an_w.W_CLOSE)  # one key, four twins
    assert chain.rt.system.BlockWeight.get() - before == closes
    assert all(an.kpis(t, 0) is not None for t in range(4))
