"""The twin registry as a whole: the permission matrix of every call of Roles, Facility,
Equipment and Telemetry, and random call sequences that must keep the invariants (one owner
per twin, append-only provenance, aggregates equal to a recomputation from the readings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import Keypair
from twinchain.protocol.classdef import class_record, load_class
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.equipment.types import LIFECYCLE, OPERATE, SERVICE, Envelope, Spec
from twinchain.runtime.pallets.multisig import multi_account_id
from twinchain.runtime.pallets.support import chain_entry
from twinchain.runtime.runtime import Runtime

FAR = 10**12
SLOT = 50
NOW = SLOT * 1000
H = b"\x07" * 32
K = {
    n: Keypair.from_dev_name(n)
    for n in (
        "Operator", "Operator2", "Auditor", "Maker", "Owner", "Owner2", "Service", "Gateway",
        "Delegate", "Nobody", "Newbie", "Device1", "Device2", "Alice", "Bob", "Charlie",
    )
}  # fmt: skip
SIGNATORIES = sorted(K[n].public for n in ("Alice", "Bob", "Charlie"))
MULTISIG = multi_account_id(SIGNATORIES, 2)
SPEC = Spec([(1, 60_000)], [Envelope(1, -20_000, 90_000, 10_000)])

# Who may act, as the origin of a call: root, every role holder, a delegate, the multisig
# account of critical equipment, and an account without any role.
ACTORS: dict[str, Origin] = {
    "root": Origin.root(),
    "op": Origin.signed(K["Operator"].public),
    "op2": Origin.signed(K["Operator2"].public),
    "aud": Origin.signed(K["Auditor"].public),
    "maker": Origin.signed(K["Maker"].public),
    "owner": Origin.signed(K["Owner"].public),
    "owner2": Origin.signed(K["Owner2"].public),
    "sp": Origin.signed(K["Service"].public),
    "gw": Origin.signed(K["Gateway"].public),
    "delegate": Origin.signed(K["Delegate"].public),
    "multisig": Origin.signed(MULTISIG),
    "nobody": Origin.signed(K["Nobody"].public),
}


def world() -> dict[str, Any]:
    twin = {"manufacturer": "//Maker", "owner": "//Owner", "class": "mill", "model": "M"}
    envelope = [[1, -20_000, 90_000, 10_000]]
    return {
        "roles": {
            "grants": [
                ["//Operator", "FacilityOperator"],
                ["//Operator2", "FacilityOperator"],
                ["//Auditor", "CertifiedAuditor"],
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Owner2", "EquipmentOwner"],
                ["//Service", "ServiceProvider"],
                ["//Gateway", "Gateway"],
            ]
        },
        "facility": {
            "facilities": [
                {"operator": "//Operator", "name": "A", "capabilities": ["milling"],
                 "verified_until": FAR},
                {"operator": "//Operator2", "name": "B", "validator": "//Newbie"},
            ],
            "rule_sets": [{"name": "base", "standards": ["ISO 9001"]}],
        },
        "equipment": {
            "twins": [
                twin | {"serial": "0", "lifecycle": "Active", "facility": 0, "envelope": envelope},
                twin | {"serial": "1"},
                twin | {"serial": "2", "owner": "//Owner2", "lifecycle": "Active",
                        "envelope": envelope},
            ]
        },
        "telemetry": {
            "window_ms": 5_000,
            "devices": [{"device": "//Device1", "twin": 0}, {"device": "//Device2", "twin": 2}],
        },
    }  # fmt: skip


def setup_block(chain: Any) -> None:
    """Acts genesis cannot express: delegations and one certification."""
    sig = ACTORS["owner"]
    chain.dispatch(sig, "Equipment", "grant_access", 0, K["Service"].public, SERVICE, FAR)
    chain.dispatch(sig, "Equipment", "grant_access", 0, K["Delegate"].public, OPERATE, FAR)
    chain.dispatch(
        ACTORS["aud"], "Facility", "issue_certification", 0, "ISO 9001", "all", 0, FAR, H
    )


@pytest.fixture
def world_chain(make_chain: Any) -> Any:
    """The committed world of one matrix case; each actor's try runs in a layer rolled back."""
    chain = make_chain(extra=world())
    chain.start_block(SLOT - 1)
    setup_block(chain)
    chain.finish_block()
    return chain


# --------------------------------------------------------------------------- permission matrix


@dataclass
class Case:
    pallet: str
    call: str
    args: tuple[Any, ...] | Callable[[Any], tuple[Any, ...]]
    allowed: tuple[str, ...]
    error: str = ""  # what every other signed actor gets
    errors: dict[str, str] = field(default_factory=dict)  # per-actor exceptions
    prep: Callable[[Any], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.pallet}.{self.call}" + ("+prep" if self.prep else "")


def _as(actor: str, pallet: str, call: str, *args: Any) -> Callable[[Any], None]:
    def prep(chain: Any) -> None:
        chain.dispatch(ACTORS[actor], pallet, call, *args)

    return prep


def _submit_args(chain: Any) -> tuple[Any, ...]:
    readings = [(1, NOW - 2_000, 20_000), (8, NOW - 1_000, 3)]
    return ([chain.commitment(K["Device1"], 0, 0, readings)],)


ROOT_ONLY = "System.BadOrigin"
PEER = bytes([0, 36, 8, 1, 18, 32]) + b"\x07" * 32  # a libp2p peer id (an Ed25519 key's)
NEW = K["Newbie"].public
CASES = [
    # Roles
    Case("Roles", "force_grant", (NEW, "Gateway"), ("root",)),
    Case("Roles", "force_revoke", (K["Gateway"].public, "Gateway"), ("root",)),
    Case("Roles", "grant", (NEW, "Gateway"), ("op", "op2"), "Roles.NotGrantor"),
    Case(
        "Roles", "revoke", (NEW, "Gateway"), ("op",), "Roles.NotGranter",
        prep=_as("op", "Roles", "grant", NEW, "Gateway"),
    ),
    Case("Roles", "renounce", ("Gateway",), ("gw",), "Roles.NotGranted"),
    # Facility
    Case(
        "Facility", "register", ("X", "loc", ["a"], K["Delegate"].public), ("op", "op2"),
        "Facility.NotOperator",
    ),
    Case("Facility", "update", (0, "x", ["milling"]), ("op",), "Facility.NotFacilityOperator"),
    Case("Facility", "verify", (1, H, True, FAR), ("aud",), "Facility.NotAuditor"),
    Case("Facility", "assess_capability", (0, "milling", 50, H), ("aud",), "Facility.NotAuditor"),
    Case(
        "Facility", "issue_certification", (0, "ISO 14001", "s", 0, FAR, H), ("aud",),
        "Facility.NotAuditor",
    ),
    Case("Facility", "revoke_certification", (0, 0), ("aud",), "Facility.NotIssuer"),
    Case("Facility", "create_rule_set", ("r", [], [], 0, 0, True), ("root",)),
    Case("Facility", "update_rule_set", (0, [], [], 0, 0, True, True), ("root",)),
    Case(
        "Facility", "check_compliance", (0, 0), ("op", "aud"), "Facility.NotOperatorOrAuditor"
    ),
    Case("Facility", "report_incident", (0, 2, H), ("aud",), "Facility.NotAuditor"),
    Case("Facility", "propose_validator", (0, PEER), ("op",), "Facility.NotFacilityOperator"),
    Case(
        "Facility", "withdraw_validator", (0,), ("op",), "Facility.NotFacilityOperator",
        prep=_as("op", "Facility", "propose_validator", 0, PEER),
    ),
    Case(
        "Facility", "approve_validator", (0,), ("root",),
        prep=_as("op", "Facility", "propose_validator", 0, PEER),
    ),
    Case("Facility", "add_node", (0, PEER), ("op",), "Facility.NotFacilityOperator"),
    Case(
        "Facility", "remove_node", (0, PEER), ("op", "root"), "Facility.NotFacilityOperator",
        prep=_as("op", "Facility", "add_node", 0, PEER),
    ),
    Case("Facility", "add_well_known_node", (PEER,), ("root",)),
    Case(
        "Facility", "remove_well_known_node", (PEER,), ("root",),
        prep=_as("root", "Facility", "add_well_known_node", PEER),
    ),
    Case("Facility", "suspend", (0, H), ("root",)),
    Case("Facility", "reinstate", (0,), ("root",), prep=_as("root", "Facility", "suspend", 0, H)),
    Case("Facility", "revoke", (0, H), ("root",)),
    # Equipment
    Case(
        "Equipment", "mint", ("mill", "M", "new", SPEC, K["Owner2"].public), ("maker",),
        "Equipment.NotManufacturer",
    ),
    Case("Equipment", "transfer", (0, K["Owner2"].public), ("owner",), "Equipment.NotOwner"),
    Case(
        "Equipment", "transfer", (0, K["Owner2"].public), ("multisig",), "Equipment.NotOwner",
        {"owner": "Equipment.MultisigRequired"},
        prep=_as("owner", "Equipment", "set_critical_multisig", 0, SIGNATORIES, 2),
    ),
    Case("Equipment", "commission", (1, 0), ("owner",), "Equipment.NotOwner"),
    Case(
        "Equipment", "activate", (0,), ("owner", "delegate"), "Equipment.NoPermission",
        prep=_as("owner", "Equipment", "begin_maintenance", 0),
    ),
    Case(
        "Equipment", "begin_maintenance", (0,), ("owner", "delegate", "sp"),
        "Equipment.NoPermission",
    ),
    Case("Equipment", "decommission", (0,), ("owner",), "Equipment.NotOwner"),
    Case(
        "Equipment", "decommission", (0,), ("multisig",), "Equipment.NotOwner",
        {"owner": "Equipment.MultisigRequired"},
        prep=_as("owner", "Equipment", "set_critical_multisig", 0, SIGNATORIES, 2),
    ),
    Case("Equipment", "grant_access", (0, NEW, 1, FAR), ("owner",), "Equipment.NotOwner"),
    Case("Equipment", "revoke_access", (0, K["Service"].public), ("owner",), "Equipment.NotOwner"),
    Case("Equipment", "set_warranty", (0, 0, FAR, H), ("maker",), "Equipment.NotManufacturer"),
    Case(
        "Equipment", "issue_calibration", (0, 1, H, FAR, True), ("aud",), "Equipment.NotAuditor"
    ),
    Case(
        "Equipment", "update_location", (0, 1, 1), ("owner", "delegate"), "Equipment.NoPermission"
    ),
    Case("Equipment", "add_document", (0, "m", H), ("owner", "maker"), "Equipment.NoPermission"),
    Case(
        "Equipment", "record_service", (0, "k", H, 1), ("sp",), "Equipment.NotServiceProvider"
    ),
    Case(
        "Equipment", "set_critical_multisig", (0, SIGNATORIES, 2), ("owner",),
        "Equipment.NotOwner",
    ),
    Case(
        "Equipment", "clear_critical_multisig", (0,), ("multisig",), "Equipment.MultisigRequired",
        prep=_as("owner", "Equipment", "set_critical_multisig", 0, SIGNATORIES, 2),
    ),
    Case(
        "Equipment", "register_class", (class_record(load_class("pump")),), ("root", "maker"),
        "Equipment.NotManufacturer",
    ),
    # Telemetry
    Case("Telemetry", "bind_device", (0, NEW, None), ("owner",), "Telemetry.NotOwner"),
    Case("Telemetry", "unbind_device", (K["Device1"].public,), ("owner",), "Telemetry.NotOwner"),
    Case(
        "Telemetry", "set_capture_config", (0, 1, 0, 1_000), ("owner", "delegate"),
        "Telemetry.NoPermission",
    ),
    Case("Telemetry", "register_metric", (100, "torque", "N.m", 2, "Gauge"), ("root",)),
    Case("Telemetry", "submit", _submit_args, ("gw",), "Telemetry.NotGateway"),
    Case("Telemetry", "set_disclosure", (0, 8, True), ("owner",), "Telemetry.NotOwner"),
    Case(
        "Telemetry", "disclose", (0, 8, 0, FAR, K["Auditor"].public), ("owner",),
        "Telemetry.NotOwner",
    ),
    Case(
        "Telemetry", "withdraw_disclosure", (0, 0), ("owner",), "Telemetry.NotOwner",
        prep=_as("owner", "Telemetry", "disclose", 0, 8, 0, FAR, None),
    ),
    Case("Telemetry", "anchor", (0, 0, 0, FAR, H), ("owner", "op"), "Telemetry.NotOwnerOrOperator"),
    Case("Facility", "set_rpc_url", (0, "https://a"), ("op",), "Facility.NotFacilityOperator"),
]  # fmt: skip


def test_matrix_covers_every_call() -> None:
    rt = Runtime()
    covered = {(c.pallet, c.call) for c in CASES}
    for name in ("Roles", "Facility", "Equipment", "Telemetry"):
        for cd in rt.by_name[name].calls.values():
            assert (name, cd.name) in covered, f"{name}.{cd.name} has no permission case"


def snapshot(chain: Any) -> tuple[list[tuple[bytes, bytes]], int]:
    return list(chain.rt.state.iter_prefix(b"")), len(chain.rt.state.events)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_permission_matrix(world_chain: Any, case: Case) -> None:
    """Every actor tries the call: the right ones succeed, every other one gets the call's
    typed error and leaves state and events exactly as they were."""
    chain = world_chain
    chain.start_block(SLOT)
    st_ = chain.rt.state
    try:
        for actor, origin in ACTORS.items():
            st_.start_transaction()
            try:
                if case.prep is not None:
                    case.prep(chain)
                args = case.args(chain) if callable(case.args) else case.args
                before = snapshot(chain)
                if actor in case.allowed:
                    evs = chain.dispatch(origin, case.pallet, case.call, *args)
                    assert evs, f"{actor} succeeded without an event"
                    continue
                with pytest.raises(DispatchError) as e:
                    chain.dispatch(origin, case.pallet, case.call, *args)
                expected = case.errors.get(actor) or (
                    ROOT_ONLY if actor == "root" or not case.error else case.error
                )
                assert f"{e.value.module}.{e.value.error}" == expected, actor
                assert snapshot(chain) == before, f"{actor} changed state"
            finally:
                st_.rollback_transaction()
    finally:
        while st_.depth:
            st_.rollback_transaction()


# --------------------------------------------------------------------------- random sequences

OWNERS = ("Owner", "Owner2", "Maker")
DEVICES = {"Device1": 0, "Device2": 2}  # device -> twin (both bound at genesis)
# "<owner>" stands for whoever owns the twin at the time, so that most calls can succeed.
CALLERS = ("<owner>", "<owner>", "<owner>", "Owner", "Owner2", "Maker", "Delegate", "Nobody")
TARGETS = {
    "Commissioned": ("commission", (0,)),
    "Active": ("activate", ()),
    "Maintenance": ("begin_maintenance", ()),
    "Decommissioned": ("decommission", ()),
}

reading = st.tuples(
    st.sampled_from([1, 5, 8]),
    st.integers(-9_000, 2_000),
    st.integers(-100_000, 100_000),
)
op = st.one_of(
    st.tuples(st.just("mint"), st.sampled_from(OWNERS)),
    st.tuples(
        st.just("transfer"), st.integers(0, 4), st.sampled_from(CALLERS), st.sampled_from(OWNERS)
    ),
    st.tuples(
        st.just("lifecycle"),
        st.integers(0, 4),
        st.sampled_from(list(TARGETS)),
        st.sampled_from(CALLERS),
    ),
    st.tuples(st.just("delegate"), st.integers(0, 4), st.sampled_from(CALLERS)),
    st.tuples(
        st.just("submit"),
        st.sampled_from(list(DEVICES)),
        st.integers(-1, 2),
        st.lists(reading, min_size=1, max_size=6),
        st.booleans(),
    ),
    st.tuples(st.just("policy"), st.integers(0, 4), st.sampled_from([1, 5, 8]), st.booleans()),
    st.tuples(st.just("block")),
)


@dataclass
class Shadow:
    """What the tests know independently of the pallets' storage."""

    provenance: dict[int, list[Any]] = field(default_factory=dict)
    readings: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    next_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEVICES, 0))


def recompute(readings: list[tuple[int, int, int]], window: int) -> dict[Any, tuple[int, ...]]:
    out: dict[Any, list[int]] = {}
    for m, ts, v in readings:
        key = (m, ts - ts % window)
        a = out.setdefault(key, [0, v, v, 0, v, ts])
        a[0] += 1
        a[1], a[2], a[3] = min(a[1], v), max(a[2], v), a[3] + v
        if ts >= a[5]:
            a[4], a[5] = v, ts
    return {k: tuple(a) for k, a in out.items()}


def check_invariants(chain: Any, shadow: Shadow) -> None:
    eq, tel = chain.rt.equipment, chain.rt.telemetry
    owners: dict[int, list[bytes]] = {}
    for who, tid, _ in eq.OwnedBy.iter():
        owners.setdefault(tid, []).append(who)
    twins = dict(eq.Twins.iter())
    # One owner per twin, and the index agrees with the token.
    assert {t: [info.owner] for t, info in twins.items()} == owners
    for tid, info in twins.items():
        # Provenance only grows: what was seen before is still there, unchanged.
        hist = eq.provenance(tid)
        seen = shadow.provenance.get(tid, [])
        assert hist[: len(seen)] == seen, f"provenance of twin {tid} rewritten"
        shadow.provenance[tid] = hist
        head = ZERO_HASH
        for entry in hist:
            head = chain_entry(head, entry)
        assert head == eq.ProvenanceHead.get(tid)
        assert (hist[-1].owner, hist[-1].lifecycle) == (info.owner, info.lifecycle)
        # Aggregates are exactly a recomputation from the accepted readings.
        stored = {
            k: (a.count, a.min, a.max, a.sum, a.last, a.last_ts) for k, a in tel.aggregates(tid)
        }
        assert stored == recompute(shadow.readings.get(tid, []), tel.WindowMs.get())
    for name, seq in shadow.next_seq.items():
        assert tel.device(K[name].public).next_seq == seq


def caller(chain: Any, name: str, twin: int) -> str:
    if name != "<owner>":
        return name
    owner = chain.rt.equipment.Twins.get(twin).owner
    return next(n for n in OWNERS if K[n].public == owner)


def run_op(chain: Any, shadow: Shadow, o: tuple[Any, ...], serial: list[int]) -> None:
    kind = o[0]
    n_twins = chain.rt.equipment.NextTwinId.get()
    if kind == "block":
        chain.finish_block()
        chain.start_block()
        return
    if kind == "mint":
        serial[0] += 1
        args: tuple[Any, ...] = ("mill", "M", f"s{serial[0]}", SPEC, K[o[1]].public)
        who, pallet, call = "Maker", "Equipment", "mint"
    elif kind == "transfer":
        who, pallet, call = caller(chain, o[2], o[1] % n_twins), "Equipment", "transfer"
        args = (o[1] % n_twins, K[o[3]].public)
    elif kind == "lifecycle":
        who, pallet = caller(chain, o[3], o[1] % n_twins), "Equipment"
        call, extra = TARGETS[o[2]]
        args = (o[1] % n_twins, *extra)
    elif kind == "policy":  # the owner makes a metric public or private
        who, pallet, call = caller(chain, "<owner>", o[1] % n_twins), "Telemetry", "set_disclosure"
        args = (o[1] % n_twins, o[2], o[3])
    elif kind == "delegate":
        who, pallet, call = caller(chain, o[2], o[1] % n_twins), "Equipment", "grant_access"
        args = (o[1] % n_twins, K["Delegate"].public, OPERATE, FAR)
    else:
        _, dev, delta, rel, corrupt = o
        now = chain.rt.timestamp.Now.get()
        readings = [(m, max(0, now + dt), v) for m, dt, v in rel]
        seq = max(0, shadow.next_seq[dev] + delta)
        b = chain.commitment(K[dev], DEVICES[dev], seq, readings)
        if corrupt:
            b.signature = K["Nobody"].sign(b"\x01" * 32)
        who, pallet, call, args = "Gateway", "Telemetry", "submit", ([b],)
    before = list(chain.rt.state.iter_prefix(b""))
    try:
        chain.dispatch(Origin.signed(K[who].public), pallet, call, *args)
    except DispatchError as e:
        assert list(chain.rt.state.iter_prefix(b"")) == before, f"failed {call} changed state"
        event(f"{call}: {e.error}")
        return
    event(f"{call}: ok")
    if kind == "submit":
        assert not corrupt and seq >= shadow.next_seq[dev]
        shadow.next_seq[dev] = seq + 1
        # Only the public metrics' summaries reach the chain's aggregates.
        public = chain.rt.telemetry.public_metrics(DEVICES[dev])
        shadow.readings.setdefault(DEVICES[dev], []).extend(r for r in readings if r[0] in public)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, max_size=25))
def test_random_sequences_keep_the_invariants(make_chain: Any, ops: list[tuple[Any, ...]]) -> None:
    chain = make_chain(extra=world())
    chain.start_block(SLOT)
    shadow = Shadow()
    serial = [100]
    check_invariants(chain, shadow)
    for o in ops:
        run_op(chain, shadow, o, serial)
        check_invariants(chain, shadow)
    chain.finish_block()
    check_invariants(chain, shadow)


def test_lifecycle_states_are_the_documented_ones() -> None:
    assert LIFECYCLE == ("Manufactured", "Commissioned", "Active", "Maintenance", "Decommissioned")
