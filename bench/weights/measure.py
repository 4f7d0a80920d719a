"""Measure every weight of the runtime on a real chain.

One dev chain (:class:`World`) is authored block by block: preparation blocks, and timed blocks
of ``n`` calls of one kind each (plus control blocks of ``n`` empty remarks, with and without
sudo). Fresh clients then import the whole chain (LevelDB state, state root, write: what a
validator does), ``--repeat`` times, and each timed block's import is measured in CPU time of
this process, on one core (best of the repeats). A call's cost is its block over the control
block, per call, plus the remark's own dispatch::

    cost(call) = (T(n calls) - T(n remarks)) / n + remark

(root calls go through sudo, against sudo'd remarks that stop at their origin check). A
per-unit cost (a byte,
a capability, a reading) is the difference of two blocks that differ only in the units. The
read-only parts of hooks (a queue's bounds read, one entry read) are timed on a real state
by calling the hook directly. The window close, Maintenance's work-order calls and expiries,
and Analytics' period closes come from :mod:`bench.operations`, which measures them the same
way on a chain made for them.

:func:`run` returns every measurement by name (nanoseconds), as :mod:`bench.weights.catalogue`
names them.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench import operations
from bench.operations import ALICE, CLS, GW, MAKER, OWNER, PERIOD, SP, UNIT, WINDOW
from twinchain import native
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import DEV_ENDOWMENT
from twinchain.primitives import codec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Header
from twinchain.protocol.classdef import (
    MAX_FAILURE_MODES,
    ClassDef,
    FailureModeDef,
    MetricDef,
    genesis_classes,
)
from twinchain.protocol.telemetry import DEFAULT_PUBLIC, sign_batch
from twinchain.runtime.executive import decode_events
from twinchain.runtime.framework import Origin
from twinchain.runtime.runtime import BlockContext
from twinchain.twinsim import engine

BOB, CHARLIE = Keypair.from_dev_name("Bob"), Keypair.from_dev_name("Charlie")
OP = Keypair.from_dev_name("bench-op")  # operates the facilities Alice (an auditor) audits
WORKER = Keypair.from_dev_name("bench-worker")
OWNER2 = Keypair.from_dev_name("bench-owner2")
H = [bytes([i % 256, i // 256]) + b"\x11" * 30 for i in range(1 << 12)]  # distinct hashes
MAX_WEIGHT = 10**12
CAPS = [f"cap-{i}" for i in range(32)]
FULL_SPEC_METRICS = 32


def _account(name: str) -> bytes:
    return Keypair.from_dev_name(name).public


class World(operations.Chain):
    """The dev chain the calls are measured on: ``operations``' genesis (pumps with devices,
    class specs, thresholds, two facilities of Alice's) plus facilities of ``bench-op`` for
    Alice to audit, a predictive worker and a second equipment owner."""

    def __init__(self, path: str, n: int) -> None:
        self.n = n
        self.twins = max(2 * n, 8)
        spec = operations._spec(self.twins)
        g = spec.genesis
        g["balances"]["balances"] += [
            [f"//{a}", DEV_ENDOWMENT] for a in ("bench-op", "bench-worker", "bench-owner2")
        ]
        g["roles"]["grants"] += [
            ["//bench-op", "FacilityOperator"],
            ["//bench-idle-op", "FacilityOperator"],  # operates nothing: sync_member's worst
            ["//bench-worker", "PredictiveWorker"],
            ["//bench-owner2", "EquipmentOwner"],
        ]
        self.op_facilities = list(range(2, 2 + 3 * n))
        g["facility"]["facilities"] += [
            {
                "operator": "//bench-op",
                "name": f"OP{i}",
                "capabilities": ["cnc", "weld"],
                "validator": f"//bench-val-{i}",
                "verified_until": 10**13,
            }
            for i in range(3 * n)
        ]
        g["simulation"]["challenge_blocks"] = 3
        # The pumps' class registered (spec 5): mints check it, prognoses name its modes.
        g["equipment"]["classes"] = genesis_classes((CLS,))
        super().__init__(spec, path)
        self.spec = spec
        self.now = 20_000
        self.labels: dict[str, Block] = {}
        self.direct: dict[str, float] = {}  # measured by calling the runtime directly
        self.period = 0  # the Analytics period the twins' telemetry closes
        self.next_twin = self.twins
        self.next_facility = 2 + 3 * n

    # -- authoring
    def next(
        self,
        xts: list[bytes],
        label: str | None = None,
        *,
        at: int | None = None,
        fail: bool = False,
        inner_fails: bool = False,
    ) -> Block:
        """The next block, 1 s after the last one (or at ``at`` ms); ``label`` times it."""
        self.now = at if at is not None else self.now + 1000
        b = self.block(
            self.now, xts, expect_fail=frozenset(range(len(xts))) if fail else frozenset()
        )
        sudid = [e for e in self.events(b) if e["event"] in ("Sudid", "SudoAsDone")]
        bad = [e for e in sudid if e["args"]["ok"] != "ok"]
        if bad and not inner_fails:
            raise RuntimeError(f"{label or 'block'}: sudo'd call failed: {bad[0]['args']}")
        if label is not None:
            self.labels[label] = b
        return b

    def sudo(self, pallet: str, name: str, *args: Any) -> bytes:
        return self.xt(ALICE, "Sudo", "sudo", self.rt.call_by_name(pallet, name, *args).to_wire())

    def view(self) -> Any:
        """The runtime on the best block's state (read it, or time a hook on it)."""
        self.rt.state = operations._overlay(self.chain.state_at(self.chain.best.hash))
        self.rt.block = BlockContext(number=self.chain.best.number + 1, slot=self.now // 1000 + 1)
        return self.rt

    def events(self, b: Block) -> list[dict[str, Any]]:
        rt = self.rt
        raw = self.chain.state_at(b.header.hash).get(rt.system.Events.key())
        return decode_events(rt, raw or b"")

    def remarks(self, label: str) -> None:
        self.next([self.xt(OWNER, "System", "remark", b"") for _ in range(self.n)], label)

    def sudo_remarks(self, label: str) -> None:
        """The control of root calls: sudo of a call whose origin check fails at once."""
        xts = [self.sudo("System", "remark", b"") for _ in range(self.n)]
        self.next(xts, label, inner_fails=True)


def direct(rt: Any, fn: Callable[[], object], reps: int) -> float:
    """Best nanoseconds of ``fn()`` on the runtime's state, each run in a layer rolled back."""
    st = rt.state
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(reps):
            st.start_transaction()
            t0 = time.process_time_ns()
            fn()
            best = min(best, time.process_time_ns() - t0)
            st.rollback_transaction()
    finally:
        gc.enable()
    return best


def timed_import(world: World, repeat: int) -> dict[str, float]:
    """Best import nanoseconds of each labelled block, over ``repeat`` fresh clients that
    import the whole chain in order."""
    want = {b.header.hash: label for label, b in world.labels.items()}
    best = dict.fromkeys(world.labels, float("inf"))
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            c = Blockchain(world.spec, d)
            try:
                for b in world.blocks:
                    label = want.get(b.header.hash)
                    if label is None:
                        c.import_block(b, check_time=False)
                        continue
                    gc.collect()  # a collection would land in some block's time at random
                    gc.disable()
                    try:
                        t0 = time.process_time_ns()
                        c.import_block(b, check_time=False)
                        best[label] = min(best[label], time.process_time_ns() - t0)
                    finally:
                        gc.enable()
            finally:
                c.close()
    return best


# --------------------------------------------------------------------------- the world's blocks


def _system_and_friends(w: World) -> None:
    n = w.n
    w.remarks("remarks")
    w.sudo_remarks("sudo_remarks")
    w.next([], "empty")
    w.next([w.xt(OWNER, "System", "remark", b"x" * 4096) for _ in range(n)], "remarks_4k")
    w.next([w.sudo("System", "set_chain_name", f"bench-{i}") for i in range(n)],
           "System.set_chain_name")  # fmt: skip
    w.next([w.sudo("Authority", "set_authorities", [ALICE.public]) for _ in range(n)],
           "Authority.set_authorities")  # fmt: skip
    reports = []
    for i in range(n):  # Alice, the only authority, sealed two headers for one slot
        slot = 10 * w.chain.best.number + i
        a = Header(b"\x01" * 32, 5, b"\x02" * 32, b"\x03" * 32, slot).sealed(ALICE)
        b = Header(b"\x01" * 32, 5, b"\x04" * 32, b"\x03" * 32, slot).sealed(ALICE)
        reports.append(
            w.xt(OWNER, "Authority", "report_block_equivocation", a.encode(), b.encode())
        )
    w.next(reports, "Authority.report_block_equivocation")
    new = [_account(f"bench-new-{i}") for i in range(3 * n)]
    w.next([w.xt(ALICE, "Balances", "transfer", new[i], UNIT) for i in range(n)],
           "Balances.transfer")  # fmt: skip
    w.next([w.sudo("Balances", "force_transfer", ALICE.public, new[n + i], UNIT)
            for i in range(n)], "Balances.force_transfer")  # fmt: skip
    w.next([w.sudo("Balances", "force_set_balance", new[2 * n + i], UNIT) for i in range(n)],
           "Balances.force_set_balance")  # fmt: skip
    remark = w.rt.call_by_name("System", "remark", b"").to_wire()
    w.next([w.xt(ALICE, "Sudo", "sudo_as", BOB.public, remark) for _ in range(n)], "Sudo.sudo_as")
    w.next([w.xt(ALICE, "Sudo", "set_key", ALICE.public) for _ in range(n)], "Sudo.set_key")
    w.next([w.xt(ALICE, "Multisig", "as_multi_threshold_1", [BOB.public], remark)
            for _ in range(n)], "Multisig.as_multi_threshold_1")  # fmt: skip
    others = sorted([BOB.public, CHARLIE.public])
    calls = [w.rt.call_by_name("System", "remark", H[i]).to_wire() for i in range(n)]
    opened = w.next([w.xt(ALICE, "Multisig", "as_multi", 3, others, None, c, MAX_WEIGHT)
                     for c in calls], "Multisig.as_multi")  # fmt: skip
    from twinchain.runtime.pallets.multisig import call_hash_of

    points = [(opened.header.number, i + 1) for i in range(n)]  # 0: the timestamp inherent
    bob_others = sorted([ALICE.public, CHARLIE.public])
    w.next([w.xt(BOB, "Multisig", "approve_as_multi", 3, bob_others, points[i],
                 call_hash_of(calls[i]), MAX_WEIGHT) for i in range(n)],
           "Multisig.approve_as_multi")  # fmt: skip
    w.next([w.xt(ALICE, "Multisig", "cancel_as_multi", 3, others, points[i],
                 call_hash_of(calls[i])) for i in range(n)],
           "Multisig.cancel_as_multi")  # fmt: skip
    sps = [_account(f"bench-sp-{i}") for i in range(n)]
    w.next([w.xt(ALICE, "Roles", "grant", a, "ServiceProvider") for a in sps], "Roles.grant")
    w.next([w.xt(ALICE, "Roles", "revoke", a, "ServiceProvider") for a in sps], "Roles.revoke")
    w.next([w.sudo("Roles", "force_grant", a, "ServiceProvider") for a in sps],
           "Roles.force_grant")  # fmt: skip


def _facility(w: World) -> None:
    n, fac = w.n, w.op_facilities
    vals = [_account(f"bench-reg-{i}") for i in range(2 * n)]
    w.next([w.xt(OP, "Facility", "register", f"R{i}", "here", [], vals[i], ) for i in range(n)],
           "Facility.register")  # fmt: skip
    w.next([w.xt(OP, "Facility", "register", f"R{n + i}", "here", CAPS, vals[n + i])
            for i in range(n)], "Facility.register_caps")  # fmt: skip
    w.next([w.xt(OP, "Facility", "update", fac[i], "there", ["cnc", "weld"]) for i in range(n)],
           "Facility.update")  # fmt: skip
    w.next([w.xt(OP, "Facility", "set_rpc_url", fac[i], f"https://node-{i}.example:9944")
            for i in range(n)], "Facility.set_rpc_url")  # fmt: skip
    w.next([w.xt(ALICE, "Facility", "verify", fac[i], H[i], True, 10**13) for i in range(n)],
           "Facility.verify")  # fmt: skip
    w.next([w.xt(ALICE, "Facility", "assess_capability", fac[i], "cnc", 80, H[i])
            for i in range(n)], "Facility.assess_capability")  # fmt: skip
    w.next([w.xt(ALICE, "Facility", "issue_certification", fac[i], "ISO 9001", "all", 0,
                 10**13, H[i]) for i in range(n)], "Facility.issue_certification")  # fmt: skip
    w.next([w.xt(ALICE, "Facility", "revoke_certification", fac[i], 0) for i in range(n)],
           "Facility.revoke_certification")  # fmt: skip
    w.next([w.sudo("Facility", "create_rule_set", f"rules-{i}", ["ISO 9001"], ["cnc"], 50, 100,
                   True) for i in range(n)], "Facility.create_rule_set")  # fmt: skip
    w.next([w.xt(OP, "Facility", "check_compliance", fac[i], i) for i in range(n)],
           "Facility.check_compliance")  # fmt: skip
    w.next([w.xt(ALICE, "Facility", "report_incident", fac[i], 1, H[i]) for i in range(n)],
           "Facility.report_incident")  # fmt: skip
    # Each with its node's peer id (a SHA-256 multihash; distinct: one facility a node).
    w.next([w.xt(OP, "Facility", "propose_validator", fac[n + i], b"\x12\x20" + H[i])
            for i in range(n)], "Facility.propose_validator")  # fmt: skip
    w.next([w.sudo("Facility", "suspend", fac[2 * n + i], H[i]) for i in range(n)],
           "Facility.suspend")  # fmt: skip
    # A facility holding many certifications, for the per-certification cost of a check.
    certs = 32
    w.next([w.xt(ALICE, "Facility", "issue_certification", fac[n], f"STD {k}", "all", 0,
                 10**13, H[k]) for k in range(certs)])  # fmt: skip
    rt = w.view()
    rs = rt.facility.RuleSets.get(0)
    full = direct(rt, lambda: rt.facility.evaluate(fac[n], rs), 50)
    none = direct(rt, lambda: rt.facility.evaluate(fac[2 * n], rs), 50)  # no certification
    w.direct["facility_cert"] = max(0.0, full - none) / certs


def _class(name: str, metrics: int, modes: int) -> ClassDef:
    """A class of ``metrics`` metrics the chain lacks (each registered: the dearest binding)
    and ``modes`` failure modes."""
    ms = [
        MetricDef(f"{name}_m{k}", "u", 2, "Gauge", None, None, None, None, None, None, False)
        for k in range(metrics)
    ]
    fs = [
        FailureModeDef(f"mode_{k}", ms[0].name, "Up", 1_000 + k, 172_800, "x" * 64)
        for k in range(modes)
    ]
    return ClassDef(name, "bench", 60, ms, fs)


def _equipment(w: World) -> None:
    n = w.n
    from twinchain.runtime.pallets.equipment.types import Envelope, Spec

    # Classes: one new metric; the most metrics; one metric and the most failure modes.
    w.next([w.xt(MAKER, "Equipment", "register_class", _class(f"c{i}", 1, 0)) for i in range(n)],
           "Equipment.register_class")  # fmt: skip
    w.next([w.xt(MAKER, "Equipment", "register_class", _class(f"f{i}", FULL_SPEC_METRICS, 0))
            for i in range(n)], "Equipment.register_class_full")  # fmt: skip
    w.next([w.xt(MAKER, "Equipment", "register_class", _class(f"m{i}", 1, MAX_FAILURE_MODES))
            for i in range(n)], "Equipment.register_class_modes")  # fmt: skip
    # Twins of registered classes: a mint checks its spec against the class's metrics.
    full_ids = [m.id for m in w.view().equipment.equipment_class("f0").definition.metrics]
    small = Spec([], [Envelope(1, 0, 500_000, 0)])
    full = Spec([(m, 100) for m in full_ids], [Envelope(m, 0, 500_000, 0) for m in full_ids])
    first = w.next_twin

    def mint(i: int, spec: Spec, cls: str = CLS) -> bytes:
        return w.xt(MAKER, "Equipment", "mint", cls, "P", f"M{first + i}", spec, OWNER.public)

    w.next([mint(i, small) for i in range(n)], "Equipment.mint")
    w.next([mint(n + i, small) for i in range(n)])
    w.next([mint(2 * n + i, full, "f0") for i in range(n)], "Equipment.mint_full")
    w.next_twin += 3 * n
    twins = list(range(first, first + 2 * n))
    w.next([w.xt(OWNER, "Equipment", "commission", t, 0) for t in twins])
    w.next([w.xt(OWNER, "Equipment", "activate", t) for t in twins[:n]], "Equipment.activate")
    w.next([w.xt(OWNER, "Equipment", "grant_access", t, SP.public, 4, 10**13)
            for t in twins[:n]], "Equipment.grant_access")  # fmt: skip
    w.next([w.xt(ALICE, "Equipment", "issue_calibration", t, 1, H[t], 10**13, True)
            for t in twins[:n]], "Equipment.issue_calibration")  # fmt: skip
    w.next([w.xt(OWNER, "Equipment", "add_document", t, "manual", H[t]) for t in twins[:n]],
           "Equipment.add_document")  # fmt: skip
    w.next([w.xt(OWNER, "Equipment", "update_location", t, 48_000_000, 11_000_000)
            for t in twins[:n]], "Equipment.update_location")  # fmt: skip
    w.next([w.xt(SP, "Equipment", "record_service", t, "inspection", H[t], UNIT)
            for t in twins[:n]], "Equipment.record_service")  # fmt: skip
    w.next([w.xt(OWNER, "Equipment", "transfer", t, OWNER2.public) for t in twins[n:]],
           "Equipment.transfer")  # fmt: skip
    signers = sorted([OWNER2.public, ALICE.public])
    w.next([w.xt(OWNER2, "Equipment", "set_critical_multisig", t, signers, 2)
            for t in twins[n:]], "Equipment.set_critical_multisig")  # fmt: skip


# Public by default (DEFAULT_PUBLIC): temperature, vibration, pressure, humidity.
PUBLIC_METRICS = (1, 2, 3, 14)


def _readings(
    w0: int, count: int, offset: int = 1_000, metrics: int = 1
) -> list[tuple[int, int, int]]:
    """``count`` readings in window ``w0``, over the first ``metrics`` public metrics."""
    ts = w0 * WINDOW + offset
    return [(PUBLIC_METRICS[k % metrics], ts + 10 * k, 50_000 + k % 7) for k in range(count)]


def _telemetry_and_friends(w: World) -> None:
    """Telemetry's submits and calls; then windows close, Benchmark learns baselines and
    Analytics closes period 0, for the calls that need them."""
    n, gh = w.n, w.gh
    twins = list(range(n))
    seq = dict.fromkeys(range(w.twins), 0)

    def batch(t: int, w0: int, count: int, offset: int = 1_000, metrics: int = 1) -> Any:
        """The commitment of a device-signed batch (what the chain receives)."""
        dev = Keypair.from_dev_name(f"bench-pump-{t}")
        rs = _readings(w0, count, offset, metrics)
        b = sign_batch(dev, gh, t, seq[t], rs, DEFAULT_PUBLIC).commitment()
        seq[t] += 1
        return b

    def submit(batches: list[Any]) -> bytes:
        return w.xt(GW, "Telemetry", "submit", batches)

    # Window w0, the first of an Analytics period, opens for every twin; the timed submits
    # all land in it.
    w.period = w.now // PERIOD + 1
    w0 = w.period * PERIOD // WINDOW
    w.next([submit([batch(t, w0, 2)]) for t in range(w.twins)], at=w0 * WINDOW + 20_000)
    w.next([submit([batch(t, w0, 12, 2_000)]) for t in twins], "submit_12")
    w.next([submit([batch(t, w0, 12, 4_000, 4)]) for t in twins], "submit_4_public")
    w.next([submit([batch(t, w0, 12, 6_000 + 200 * k) for k in range(8)]) for t in twins],
           "submit_8x12")  # fmt: skip
    devs = [Keypair.from_dev_name(f"bench-dev-{i}").public for i in range(n)]
    w.next([w.xt(OWNER, "Telemetry", "bind_device", t, devs[t], None) for t in twins],
           "Telemetry.bind_device")  # fmt: skip
    w.next([w.xt(OWNER, "Telemetry", "unbind_device", devs[t]) for t in twins],
           "Telemetry.unbind_device")  # fmt: skip
    w.next([w.xt(OWNER, "Telemetry", "set_disclosure", t, 5, True) for t in twins],
           "Telemetry.set_disclosure")  # fmt: skip
    w.next([w.xt(OWNER, "Telemetry", "disclose", t, 5, 0, 10**12, ALICE.public) for t in twins],
           "Telemetry.disclose")  # fmt: skip
    w.next([w.xt(OWNER, "Telemetry", "withdraw_disclosure", t, 0) for t in twins],
           "Telemetry.withdraw_disclosure")  # fmt: skip
    w.next([w.xt(OWNER, "Telemetry", "anchor", t, 0, 0, 10**12, H[t]) for t in twins],
           "Telemetry.anchor")  # fmt: skip
    # The next window: each submit closes its twin's window w0 (queued for the next blocks).
    w.next([submit([batch(t, w0 + 1, 12)]) for t in twins], "submit_12_closing",
           at=(w0 + 1) * WINDOW + 20_000)  # fmt: skip
    while w.queued_closes(w.chain.best.hash):
        w.next([])
    rt = w.view()
    w.direct["close_init"] = direct(rt, lambda: rt.telemetry.on_initialize(rt.block.number), 200)
    # The next windows close the previous ones (baselines learn from two); the window closed
    # at w0 + 5 is the first of the next period, which closes the twins' period.
    for wi in range(w0 + 2, w0 + 6):
        w.next([submit([batch(t, wi, 12)]) for t in range(w.twins)], at=wi * WINDOW + 20_000)
        while w.queued_closes(w.chain.best.hash):
            w.next([])


def _benchmark_analytics(w: World) -> None:
    n = w.n
    twins = list(range(n))
    w.next([w.sudo("Benchmark", "set_class_spec", f"class-{i}", 1, 50_000, 5_000)
            for i in range(n)], "Benchmark.set_class_spec")  # fmt: skip
    from twinchain.runtime.pallets.benchmark.types import ConditionRule

    rules = [ConditionRule(d, False, 1_000, 10, 1_000) for d in (2, 3, 4, 6)]
    w.next([w.sudo("Benchmark", "set_condition_rules", f"class-{i}", 1, rules) for i in range(n)],
           "Benchmark.set_condition_rules")  # fmt: skip
    w.next([w.sudo("Benchmark", "set_standard", f"class-{i}", 1, "ISO", 0, 90_000)
            for i in range(n)], "Benchmark.set_standard")  # fmt: skip
    rt = w.view()
    if not all(rt.benchmark.Baselines.get(t, 1) for t in twins):
        raise RuntimeError("the twins have not learned their baselines")
    w.next([w.xt(OWNER, "Benchmark", "reset_baseline", t) for t in twins],
           "Benchmark.reset_baseline")  # fmt: skip
    w.next([w.xt(OWNER, "Analytics", "set_ideal_rate", t, 60_000) for t in twins],
           "Analytics.set_ideal_rate")  # fmt: skip
    w.next([w.xt(OWNER, "Analytics", "set_planned_time", t, 200_000) for t in twins],
           "Analytics.set_planned_time")  # fmt: skip
    rt = w.view()
    p = w.period
    if not all(rt.analytics.kpis(t, p) for t in twins):
        raise RuntimeError(f"period {p} is not closed")
    w.next([w.xt(OWNER, "Analytics", "anchor_report", ("Twin", t), p, [], H[t]) for t in twins],
           "Analytics.anchor_report")  # fmt: skip
    w.next([w.xt(OWNER, "Analytics", "claim_data_reward", t, p) for t in twins],
           "Analytics.claim_data_reward")  # fmt: skip
    rt = w.view()
    an = rt.analytics
    w.direct["analytics_claim_period"] = direct(rt, lambda: an.Kpis.get(0, p), 200)
    w.direct["period_init"] = direct(rt, lambda: an.on_initialize(rt.block.number), 200)
    due = [(k, e[0]) for k in an.DuePeriods.get() for e in an.Due.iter_prefix(k)]
    if not due:
        raise RuntimeError("no open period is due")
    key, twin_due = due[0]

    def sweep() -> None:
        next(an.Due.iter_prefix(key))
        an.Due.remove(key, twin_due)

    w.direct["period_sweep"] = direct(rt, sweep, 200)


def _maintenance(w: World) -> None:
    n = w.n
    twins = list(range(n))
    from twinchain.runtime.pallets.maintenance.types import Threshold

    th = Threshold(2_000, 500, 2)
    w.next([w.xt(OWNER, "Maintenance", "set_twin_threshold", t, 1, th) for t in twins],
           "Maintenance.set_twin_threshold")  # fmt: skip
    model = H[4000]
    w.next([w.xt(WORKER, "Simulation", "register_model", model, CLS, "gbm",
                 codec.encode(["artifact", 1]), 1)])  # fmt: skip
    rt = w.view()
    first_alert = rt.maintenance.NextAlertId.get()
    w.next([w.xt(WORKER, "Maintenance", "submit_prediction", t, 5_000, 3_600_000, model, H[t])
            for t in twins], "Maintenance.submit_prediction")  # fmt: skip
    w.next([w.xt(OWNER, "Maintenance", "dismiss_alert", first_alert + i) for i in range(n)],
           "Maintenance.dismiss_alert")  # fmt: skip
    # Prognoses per failure mode (the pump class's), and the alarm lifecycle on their alerts.
    rt = w.view()
    first_alert = rt.maintenance.NextAlertId.get()
    w.next([w.xt(WORKER, "Maintenance", "submit_prognosis", t, "bearing_wear", 9_000,
                 172_800_000, 1_000, 2_000, 3_000, model, H[t]) for t in twins],
           "Maintenance.submit_prognosis")  # fmt: skip
    alerts = [first_alert + i for i in range(n)]
    w.next([w.xt(OWNER, "Maintenance", "acknowledge_alert", a) for a in alerts],
           "Maintenance.acknowledge_alert")  # fmt: skip
    w.next([w.xt(OWNER, "Maintenance", "assign_alert", a, SP.public) for a in alerts],
           "Maintenance.assign_alert")  # fmt: skip
    w.next([w.xt(OWNER, "Maintenance", "comment_alert", a, "x" * 256) for a in alerts],
           "Maintenance.comment_alert")  # fmt: skip
    rt = w.view()
    first = rt.maintenance.NextOrderId.get()
    w.next([w.xt(OWNER, "Maintenance", "create", t, "Preventive", H[t], UNIT, "Telemetry")
            for t in twins])  # fmt: skip
    w.next([w.xt(OWNER, "Maintenance", "cancel", first + i) for i in range(n)],
           "Maintenance.cancel")  # fmt: skip
    # A production line with a scheduled window per twin, for the per-window cost of schedule.
    line_twins = [t for t in range(w.twins) if t % 2 == 0][: max(2, n)]
    w.next([w.xt(OWNER, "Maintenance", "set_line", t, 7) for t in line_twins])
    rt = w.view()
    first = rt.maintenance.NextOrderId.get()
    w.next([w.xt(OWNER, "Maintenance", "create", t, "Preventive", H[t], UNIT, "Telemetry")
            for t in line_twins])  # fmt: skip
    oids = [first + i for i in range(len(line_twins))]
    w.next([w.xt(OWNER, "Maintenance", "assign", o, SP.public) for o in oids])
    day = 86_400_000
    w.next([w.xt(SP, "Maintenance", "schedule", o, (i + 1) * day, (i + 1) * day + 1000)
            for i, o in enumerate(oids)])  # fmt: skip
    rt = w.view()
    m = rt.maintenance
    line = (0, 7)
    windows = len(oids)
    full = direct(rt, lambda: sum(1 for _ in m.LineDowntime.iter_prefix(line)), 200)
    empty = direct(rt, lambda: sum(1 for _ in m.LineDowntime.iter_prefix((1, 7))), 200)
    w.direct["maintenance_line_window"] = max(0.0, full - empty) / windows
    w.direct["expiry_init"] = direct(rt, lambda: m.on_initialize(rt.block.number), 200)
    w.direct["expiry_read"] = direct(rt, lambda: m.Orders.get(oids[0]), 200)


def _simulation(w: World, work: tuple[int, int]) -> None:
    n = w.n
    small, big = codec.encode(["a", 1]), codec.encode(["x" * 4000, 1])
    w.next([w.xt(MAKER, "Simulation", "register_model", H[3000 + i], CLS, "gbm", small, 1)
            for i in range(n)], "Simulation.register_model")  # fmt: skip
    w.next([w.xt(MAKER, "Simulation", "register_model", H[3500 + i], CLS, "gbm", big, 1)
            for i in range(n)], "Simulation.register_model_big")  # fmt: skip
    w.direct["param_bytes"] = len(big) - len(small)
    w.next([w.xt(MAKER, "Simulation", "deactivate_model", H[3000 + i]) for i in range(n)],
           "Simulation.deactivate_model")  # fmt: skip
    model, params = engine.class_model(CLS)
    w.next([w.xt(MAKER, "Simulation", "register_model", model, CLS, engine.DEGRADATION, params,
                 1)])  # fmt: skip
    rt = w.view()
    first = rt.simulation.NextScenarioId.get()

    def scenario(units: int, seed: int) -> bytes:
        steps = 10 if units <= 10_000 else 200
        inputs = engine.ScenarioInputs(
            w.now, 0, 50_000, engine.HOUR_MS, steps, max(1, units // steps), 1_000,
            ((engine.Segment(1, engine.PPM, engine.PPM),),),
        ).encode()  # fmt: skip
        out, h = engine.run_encoded(model, params, "FailureRisk", inputs, seed)
        fb, ttf, ws, we = out.summary()
        return w.xt(OWNER, "Simulation", "anchor_scenario", seed % w.twins, model, "FailureRisk",
                    inputs, seed, h, fb, ttf, ws, we)  # fmt: skip

    w.next([scenario(work[0], i) for i in range(n)], "Simulation.anchor_scenario")
    w.next([scenario(work[1], n + i) for i in range(n)])
    w.next([w.xt(ALICE, "Simulation", "challenge", first + i) for i in range(n)],
           "challenge_small", fail=True)  # fmt: skip
    w.next([w.xt(ALICE, "Simulation", "challenge", first + n + i) for i in range(n)],
           "challenge_big", fail=True)  # fmt: skip
    w.next([])
    w.next([w.xt(ALICE, "Simulation", "release_bond", first + i) for i in range(n)],
           "Simulation.release_bond")  # fmt: skip


def _council(w: World) -> None:
    """Motions between the council's two members, Alice and bench-op (the operators of the
    world's verified facilities): proposed, voted, closed (the call, a remark, dispatched as
    Root stops at its origin check, as sudo's control does)."""
    n = w.n
    first = w.view().council.MotionCount.get()
    small = [w.rt.call_by_name("System", "remark", H[i]).to_wire() for i in range(n)]
    big = [w.rt.call_by_name("System", "remark", H[n + i] + b"x" * 4064).to_wire()
           for i in range(n)]  # fmt: skip
    size = max(len(codec.encode(c)) for c in big)
    w.next([w.xt(OP, "Council", "propose", c, size) for c in small], "Council.propose")
    w.next([w.xt(OP, "Council", "propose", c, size) for c in big], "Council.propose_4k")
    w.next([w.xt(ALICE, "Council", "vote", first + i, True) for i in range(n)], "Council.vote")
    bound = w.rt.weigh_wire(small[0])
    w.next([w.xt(OWNER, "Council", "close", first + i, bound) for i in range(n)],
           "Council.close")  # fmt: skip
    idle = _account("bench-idle-op")
    w.next([w.xt(OWNER, "Council", "sync_member", idle) for _ in range(n)],
           "Council.sync_member")  # fmt: skip
    w.next([w.sudo("Council", "set_motion_duration", 100 + i) for i in range(n)],
           "Council.set_motion_duration")  # fmt: skip
    rt = w.view()
    facilities = rt.facility.NextFacilityId.get()
    scan = direct(rt, lambda: rt.council.qualifies(idle), 50)
    w.direct["council_facility"] = scan / facilities
    w.direct["council_facilities"] = float(facilities)


def _upgrades(w: World) -> None:
    """System.schedule_upgrade and cancel_upgrade (Root, through sudo). One upgrade can be
    pending at a time, so a block holds ``n`` pairs (schedule, then cancel) against a control
    of ``2n`` sudo'd remarks; the pair's cost is split between the two calls in the ratio of
    their dispatch times, timed directly on the state (the same reads and writes in both)."""
    n = w.n
    far = 10**9  # a block the chain never reaches: nothing switches
    w.next([w.sudo("System", "remark", b"") for _ in range(2 * n)], "sudo_remarks_x2",
           inner_fails=True)  # fmt: skip
    pairs: list[bytes] = []
    for i in range(n):
        pairs += [w.sudo("System", "schedule_upgrade", 100 + i, far),
                  w.sudo("System", "cancel_upgrade")]  # fmt: skip
    w.next(pairs, "System.upgrade_pairs")
    rt = w.view()
    root, sysp = Origin.root(), rt.system
    sched, cancel = sysp.calls_by_name["schedule_upgrade"], sysp.calls_by_name["cancel_upgrade"]

    def schedule() -> None:
        rt.dispatch(root, sysp, sched, [100, far])

    def pair() -> None:
        schedule()
        rt.dispatch(root, sysp, cancel, [])

    w.direct["upgrade_schedule_direct"] = direct(rt, schedule, 200)
    w.direct["upgrade_pair_direct"] = direct(rt, pair, 200)


def _session(w: World) -> None:
    """Session.set_keys (Alice, the authority, queues a new key each time: every call after
    the first also frees the key it replaces) and purge_keys (a block of n (set_keys,
    purge_keys) pairs over the block of n set_keys); a session boundary's costs per queued key
    made active and per authority entry read, timed on the state by calling enact_keys."""
    from twinchain.runtime.pallets.session import ownership_message

    n = w.n
    gh = w.chain.genesis_hash
    keys = [Keypair.from_dev_name(f"bench-session-{i}") for i in range(3 * n)]

    def set_keys(k: Keypair) -> bytes:
        return w.xt(ALICE, "Session", "set_keys", k.public,
                    k.sign(ownership_message(gh, ALICE.public)))  # fmt: skip

    w.next([set_keys(keys[i]) for i in range(n)], "Session.set_keys")
    pairs: list[bytes] = []
    for i in range(n):
        pairs += [set_keys(keys[n + i]), w.xt(ALICE, "Session", "purge_keys")]
    w.next(pairs, "session_set_and_purge")
    rt = w.view()
    sess = rt.session
    queued = 64
    for i in range(queued):  # validators with a queued key each, as a boundary meets them
        sess.QueuedKeys.insert(_account(f"bench-session-v{i}"), _account(f"bench-session-k{i}"))
    enact = direct(rt, lambda: sess.enact_keys([]), 50)
    for i in range(queued):
        sess.QueuedKeys.remove(_account(f"bench-session-v{i}"))
    entries = [_account(f"bench-session-a{i}") for i in range(queued)]
    read = direct(rt, lambda: sess.enact_keys(entries), 50)
    w.direct["session_enact_key"] = enact / queued
    w.direct["session_read_key"] = read / queued


# --------------------------------------------------------------------------- measurements


CALLS = [
    "System.set_chain_name", "Authority.set_authorities", "Authority.report_block_equivocation",
    "Balances.transfer", "Balances.force_transfer", "Balances.force_set_balance", "Sudo.set_key",
    "Multisig.approve_as_multi", "Multisig.cancel_as_multi", "Roles.grant", "Roles.revoke",
    "Roles.force_grant", "Facility.register", "Facility.update", "Facility.verify",
    "Facility.assess_capability", "Facility.issue_certification",
    "Facility.revoke_certification", "Facility.create_rule_set", "Facility.check_compliance",
    "Facility.report_incident", "Facility.propose_validator", "Facility.suspend",
    "Equipment.mint", "Equipment.activate", "Equipment.grant_access",
    "Equipment.issue_calibration", "Equipment.add_document", "Equipment.update_location",
    "Equipment.record_service", "Equipment.transfer", "Equipment.set_critical_multisig",
    "Telemetry.bind_device", "Telemetry.unbind_device", "Telemetry.set_disclosure",
    "Telemetry.disclose", "Telemetry.withdraw_disclosure", "Telemetry.anchor",
    "Facility.set_rpc_url", "Benchmark.set_class_spec",
    "Benchmark.set_condition_rules", "Benchmark.set_standard", "Benchmark.reset_baseline",
    "Analytics.set_ideal_rate", "Analytics.set_planned_time", "Analytics.anchor_report",
    "Analytics.claim_data_reward", "Maintenance.set_twin_threshold",
    "Maintenance.submit_prediction", "Maintenance.dismiss_alert", "Maintenance.cancel",
    "Maintenance.submit_prognosis", "Maintenance.acknowledge_alert",
    "Maintenance.assign_alert", "Maintenance.comment_alert", "Equipment.register_class",
    "Simulation.register_model", "Simulation.deactivate_model", "Simulation.anchor_scenario",
    "Simulation.release_bond", "Council.propose", "Council.vote", "Council.close",
    "Council.set_motion_duration", "Session.set_keys",
]  # fmt: skip
# Root calls: measured through sudo, against sudo'd remarks.
ROOT_CALLS = {
    "System.set_chain_name", "Authority.set_authorities", "Balances.force_transfer",
    "Balances.force_set_balance", "Roles.force_grant", "Facility.create_rule_set",
    "Facility.suspend", "Benchmark.set_class_spec", "Benchmark.set_condition_rules",
    "Benchmark.set_standard", "Council.set_motion_duration",
}  # fmt: skip


def world_measurements(n: int, repeat: int, work: tuple[int, int]) -> dict[str, float]:
    """Everything measured on the :class:`World` chain."""
    with tempfile.TemporaryDirectory() as d:
        w = World(d, n)
        _system_and_friends(w)
        _facility(w)
        _equipment(w)
        _telemetry_and_friends(w)
        _benchmark_analytics(w)
        _maintenance(w)
        _simulation(w, work)
        _council(w)
        _upgrades(w)
        _session(w)
        rt = w.view()
        alice = Origin.signed(ALICE.public)
        sysp = rt.system
        remark = sysp.calls_by_name["remark"]
        w.direct["System.remark"] = direct(rt, lambda: rt.dispatch(alice, sysp, remark, [b""]), 500)
        tsp = rt.timestamp
        ts_set = tsp.calls_by_name["set"]
        w.direct["Timestamp.set"] = direct(
            rt, lambda: rt.dispatch(Origin.none(), tsp, ts_set, [w.now + 1000]), 500
        )
        w.chain.close()
        t = timed_import(w, repeat)
        m: dict[str, float] = dict(w.direct)
    rem = m["System.remark"]

    def per_call(label: str) -> float:
        return (t[label] - t["remarks"]) / n + rem

    for name in CALLS:
        if name in ROOT_CALLS:  # against sudo'd calls that stop at their origin check
            m[name] = (t[name] - t["sudo_remarks"]) / n
        else:
            m[name] = per_call(name)
    m["extrinsic_base"] = (t["remarks"] - t["empty"]) / n - rem
    m["remark_byte"] = (t["remarks_4k"] - t["remarks"]) / (4096 * n)
    m["Sudo.sudo"] = (t["sudo_remarks"] - t["remarks"]) / n
    m["Sudo.sudo_as"] = (t["Sudo.sudo_as"] - t["remarks"]) / n
    m["Multisig.as_multi_threshold_1"] = (t["Multisig.as_multi_threshold_1"] - t["remarks"]) / n
    m["Multisig.as_multi"] = per_call("Multisig.as_multi")
    m["facility_capability"] = (t["Facility.register_caps"] - t["Facility.register"]) / (
        len(CAPS) * n
    )
    m["equipment_spec_entry"] = (t["Equipment.mint_full"] - t["Equipment.mint"]) / (
        (2 * FULL_SPEC_METRICS - 1) * n
    )
    m["equipment_class_metric"] = (
        t["Equipment.register_class_full"] - t["Equipment.register_class"]
    ) / ((FULL_SPEC_METRICS - 1) * n)
    m["equipment_class_mode"] = max(
        0.0, t["Equipment.register_class_modes"] - t["Equipment.register_class"]
    ) / (MAX_FAILURE_MODES * n)
    # submit_12: one batch, one public summary; submit_4_public: four summaries.
    summary = (t["submit_4_public"] - t["submit_12"]) / (3 * n)
    batch = (t["submit_8x12"] - t["submit_12"]) / (7 * n) - summary
    m["telemetry_summary"] = summary
    m["telemetry_batch"] = batch
    m["telemetry_submit"] = per_call("submit_12") - batch - summary
    m["close_queue"] = (t["submit_12_closing"] - t["submit_12"]) / n
    m["council_proposal_byte"] = max(
        0.0, (t["Council.propose_4k"] - t["Council.propose"]) / (4064 * n)
    )
    m["Council.sync_member"] = max(
        0.0, per_call("Council.sync_member") - m["council_facility"] * m.pop("council_facilities")
    )
    purge_xt = (t["session_set_and_purge"] - t["Session.set_keys"]) / n
    m["Session.purge_keys"] = purge_xt - m["extrinsic_base"]
    upgrade_pair = max(0.0, (t["System.upgrade_pairs"] - t["sudo_remarks_x2"]) / n)
    sched_share = min(1.0, m.pop("upgrade_schedule_direct") / m.pop("upgrade_pair_direct"))
    m["System.schedule_upgrade"] = upgrade_pair * sched_share
    m["System.cancel_upgrade"] = upgrade_pair - m["System.schedule_upgrade"]
    m["simulation_param_byte"] = (
        t["Simulation.register_model_big"] - t["Simulation.register_model"]
    ) / (m.pop("param_bytes") * n)
    small, big = per_call("challenge_small"), per_call("challenge_big")
    units = [max(1, u // s) * s for u, s in ((u, 10 if u <= 10_000 else 200) for u in work)]
    m["challenge_step"] = max(0.0, big - small) / (units[1] - units[0])
    m["challenge_base"] = small - m["challenge_step"] * units[0]
    return m


def operations_measurements(quick: bool, repeat: int) -> dict[str, float]:
    """The window close, Maintenance's work-order calls and expiries and Analytics' period
    closes, from :mod:`bench.operations`."""
    from twinchain.runtime.pallets.telemetry import MAX_CLOSES_PER_BLOCK

    twins, measured = (12, 4) if quick else (256, MAX_CLOSES_PER_BLOCK)
    wc = operations.window_close(twins, min(measured, twins // 3), repeat)
    oi = operations.on_initialize_and_challenge(repeat)
    m = {
        "close_completions": wc["close_completions_ns"],
        "close_alerts": wc["close_alerts_ns"],
        "close_plain": wc["close_plain_ns"],
        "expiry_total": oi["expiry_ns"],
        "period_close_total": oi["period_close_ns"],
    }
    for name in ("create", "assign", "schedule", "start", "claim_completion", "inspect"):
        m[f"Maintenance.{name}"] = oi[f"call_{name}_ns"]
    return m


def run(quick: bool = False, repeat: int = 3) -> dict[str, float]:
    """Every measurement the catalogue's rules use, in nanoseconds."""
    threads = native.set_threads(1) if native.available else None
    try:
        n = 4 if quick else 48
        work = (100, 2_000) if quick else (1_000, engine.MAX_WORK // 4)
        m = world_measurements(n, repeat, work)
        m |= operations_measurements(quick, repeat)
    finally:
        if threads is not None:
            native.set_threads(None)
    m["expiry"] = max(0.0, m.pop("expiry_total") - m["expiry_read"])
    m["period_close"] = max(0.0, m.pop("period_close_total") - m["period_sweep"])
    return m
