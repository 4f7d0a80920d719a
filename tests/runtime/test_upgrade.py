"""Runtime upgrades: System.schedule_upgrade (Root only, checked), the switch at the scheduled
block with each migration run exactly once and weighed into that block, the version in
effect, and software that lacks the version stopping at that block."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.keys import Keypair
from twinchain.protocol.classdef import (
    BUILTIN_CLASSES,
    class_hash,
    class_record,
    genesis_classes,
    load_class,
)
from twinchain.runtime import migrations
from twinchain.runtime.executive import Executive, InvalidTransaction, UnsupportedRuntime
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.migrations import v5
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.pallets.council import TWO_THIRDS, threshold_of
from twinchain.runtime.pallets.equipment.types import Spec
from twinchain.runtime.pallets.system import ChainInfoRecord, UpgradeSchedule
from twinchain.runtime.runtime import SPEC_VERSION, Runtime

ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")


@pytest.fixture
def old(make_chain: Any) -> Any:
    """A chain that starts at spec 3 and has run one block (so its runtime is at 3)."""
    chain = make_chain(extra={"system": {"name": "old", "spec_version": 3}})
    chain.produce()
    assert chain.rt.spec_version == 3
    return chain


def sudo(chain: Any, pallet: str, name: str, *args: Any, spec_version: int | None = None) -> bytes:
    inner = list(chain.call(pallet, name, *args).to_wire())
    return chain.sign(ALICE, chain.call("Sudo", "sudo", inner), spec_version=spec_version)  # type: ignore[no-any-return]


def sudo_ok(chain: Any, events: list[dict[str, Any]]) -> None:
    done = [e for e in events if e["event"] == "Sudid"]
    assert done and done[0]["args"]["error"] == "", events


def test_the_registry_ends_at_spec_version_and_knows_its_storage_versions() -> None:
    assert migrations.NEWEST_SPEC_VERSION == SPEC_VERSION == 5
    assert migrations.genesis_storage_versions(3) == {}
    assert migrations.genesis_storage_versions(4) == {"System": 1}
    assert migrations.genesis_storage_versions(5) == {"System": 1, "Equipment": 1, "Telemetry": 1}
    assert migrations.software_max_spec_version({}) == 5
    assert migrations.software_max_spec_version({migrations.MAX_SPEC_ENV: "3"}) == 3
    for bad in ("9", "2", "four"):
        with pytest.raises(migrations.SpecVersionKnobError):
            migrations.software_max_spec_version({migrations.MAX_SPEC_ENV: bad})
    assert Runtime(max_spec_version=3).version()["specVersion"] == 3


def test_a_new_chain_starts_at_the_newest_version_with_its_layouts(chain: Any) -> None:
    rt = chain.view()
    assert rt.system.spec_version() == SPEC_VERSION
    assert rt.system.storage_version("System") == 1
    assert rt.system.ChainInfo.get() == ChainInfoRecord("test", 0)
    assert not rt.system.ChainName.exists()
    assert rt.system.chain_name() == "test"
    chain.produce()
    assert [e for e in chain.events() if e["event"] == "RuntimeUpgraded"] == []


def test_scheduling_is_root_only_and_refuses_backwards_past_and_a_second_one(old: Any) -> None:
    old.start_block()
    n = old.head_number + 1  # the open block
    with pytest.raises(DispatchError) as e:
        old.dispatch(Origin.signed(ALICE.public), "System", "schedule_upgrade", 4, n + 5)
    assert e.value.error == "BadOrigin"
    with pytest.raises(DispatchError) as e:
        old.dispatch(Origin.signed(BOB.public), "System", "cancel_upgrade")
    assert e.value.error == "BadOrigin"
    for spec, at, error in (
        (3, n + 5, "SpecVersionNotNewer"),
        (2, n + 5, "SpecVersionNotNewer"),
        (4, n, "UpgradeBlockPassed"),
        (4, n - 1, "UpgradeBlockPassed"),
    ):
        with pytest.raises(DispatchError) as e:
            old.dispatch(Origin.root(), "System", "schedule_upgrade", spec, at)
        assert e.value.error == error, (spec, at)
    with pytest.raises(DispatchError) as e:
        old.dispatch(Origin.root(), "System", "cancel_upgrade")
    assert e.value.error == "NoUpgradeScheduled"
    # A version this software lacks may be scheduled: nodes without it stop at its block.
    evs = old.dispatch(Origin.root(), "System", "schedule_upgrade", 7, n + 1)
    assert [(ev.name, ev.args) for ev in evs] == [("UpgradeScheduled", (7, n + 1))]
    with pytest.raises(DispatchError) as e:
        old.dispatch(Origin.root(), "System", "schedule_upgrade", 4, n + 5)
    assert e.value.error == "UpgradeAlreadyScheduled"
    evs = old.dispatch(Origin.root(), "System", "cancel_upgrade")
    assert [(ev.name, ev.args) for ev in evs] == [("UpgradeCancelled", (7, n + 1))]
    old.dispatch(Origin.root(), "System", "schedule_upgrade", 4, n + 5)
    assert old.rt.system.ScheduledUpgrade.get() == UpgradeSchedule(4, n + 5)
    # Outside sudo, Root is a council motion: runtime changes need two thirds.
    wire = list(old.call("System", "schedule_upgrade", 4, n + 5).to_wire())
    assert threshold_of(old.rt, wire) == TWO_THIRDS
    assert threshold_of(old.rt, list(old.call("System", "cancel_upgrade").to_wire())) == TWO_THIRDS


def test_the_upgrade_block_migrates_once_weighs_it_and_switches_the_version(old: Any) -> None:
    old.produce(sudo(old, "System", "set_chain_name", "factory-net"))
    assert old.view().system.ChainName.get() == "factory-net"  # spec 3's layout
    h = old.head_number + 3
    outs = old.produce(sudo(old, "System", "schedule_upgrade", 4, h))
    assert outs[0].success
    sudo_ok(old, old.events())
    old.produce()  # h - 1: still spec 3
    assert old.head_number == h - 1 and old.rt.spec_version == 3
    assert old.rt.system.spec_version() == 3
    plain_weight = old.rt.system.BlockWeight.get()

    old.produce()  # h: the upgrade block
    rt = old.view()
    events = old.events()
    upgraded = [e for e in events if e["event"] == "RuntimeUpgraded"]
    applied = [e for e in events if e["event"] == "MigrationApplied"]
    assert [e["phase"] for e in upgraded + applied] == ["initialization"] * 2
    assert applied[0]["args"] == {"pallet": "System", "storage_version": 1, "weight": 45_000}
    weight = upgraded[0]["args"]["weight"]
    assert upgraded[0]["args"]["from_version"] == 3 and upgraded[0]["args"]["to_version"] == 4
    assert weight == migrations.W_UPGRADE_BASE + migrations.W_STORAGE_VERSION_READ + 45_000
    # Charged to block h, on top of what the same empty block weighed before.
    assert rt.system.BlockWeight.get() == plain_weight + weight
    assert rt.spec_version == 4 and rt.system.spec_version() == 4
    assert rt.system.ScheduledUpgrade.get() is None
    assert rt.system.storage_version("System") == 1
    # The migrated layout: the old key is gone, the new record holds the name.
    assert not rt.system.ChainName.exists()
    assert rt.system.ChainInfo.get() == ChainInfoRecord("factory-net", 0)
    assert rt.system.chain_name() == "factory-net"

    # Exactly once: the next block runs no migration, and a second run of the hook (another
    # upgrade from 3 replayed on this state) finds the storage version bumped.
    old.produce()
    assert not [e for e in old.events() if e["event"] in ("RuntimeUpgraded", "MigrationApplied")]
    rt = old.view()
    rt.state = Overlay(old.state)
    rt.system.ChainName.put("stale")
    migrations.on_runtime_upgrade(rt, 3, 4)
    assert [ev.name for _, ev in rt.state.events] == ["RuntimeUpgraded"]
    assert rt.system.ChainInfo.get() == ChainInfoRecord("factory-net", 0)

    # The new behaviour from then on: a rename records its block.
    old.produce(sudo(old, "System", "set_chain_name", "renamed"))
    assert old.view().system.ChainInfo.get() == ChainInfoRecord("renamed", old.head_number)


def test_blocks_re_execute_to_the_same_state_and_old_software_stops_at_the_upgrade(
    old: Any,
) -> None:
    h = old.head_number + 3
    old.produce(sudo(old, "System", "schedule_upgrade", 4, h))
    old.produce()
    old.produce()
    assert old.head_number == h
    blocks, pre = old.blocks[-3:], old.pre_states[-3:]
    # Import on another node with this software: the same changes, the upgrade included.
    fresh = Executive(Runtime(old.rt.genesis_hash))
    for block, state in zip(blocks, pre, strict=True):
        changes = fresh.execute_block(state, block).changes
    assert changes == old.last_changes and fresh.rt.spec_version == 4

    # Software that stops at 3 runs everything before h, and refuses h with what to install.
    stale = Executive(Runtime(old.rt.genesis_hash, max_spec_version=3))
    for block, state in zip(blocks[:-1], pre[:-1], strict=True):
        stale.execute_block(state, block)
    with pytest.raises(UnsupportedRuntime) as e:
        stale.execute_block(pre[-1], blocks[-1])
    assert (e.value.spec_version, e.value.at_block) == (4, h)
    assert str(e.value) == (
        f"runtime spec version 4 scheduled at block {h}: install twinchain with spec 4 "
        "(this node runs spec versions up to 3)"
    )
    # Nor does its pool take transactions for block h.
    raw = old.sign(BOB, old.call("System", "remark", b"x"), 0, spec_version=4)
    parent = blocks[-2].header
    with pytest.raises(InvalidTransaction) as ie:
        stale.validate_transaction(pre[-1], raw, parent.number, parent.hash)
    assert ie.value.code == "UpgradeRequired" and "install twinchain with spec 4" in str(ie.value)
    # On a chain already at 4, it refuses every block.
    with pytest.raises(UnsupportedRuntime, match="in effect before block"):
        stale.initialize_block(old.state, h + 1, old.head_hash, old.slot + 1)


def test_a_transaction_names_the_version_of_the_block_it_goes_into(old: Any) -> None:
    """The signing payload holds the spec version: from the upgrade block on, only a
    transaction signed for the new version is valid (as in Substrate)."""
    h = old.head_number + 3
    old.produce(sudo(old, "System", "schedule_upgrade", 4, h))
    pool = Executive(Runtime(old.rt.genesis_hash))
    for_3 = old.sign(BOB, old.call("System", "remark", b"3"), 0, spec_version=3)
    for_4 = old.sign(BOB, old.call("System", "remark", b"4"), 0, spec_version=4)
    # Best is h - 2: the next block (h - 1) runs 3.
    assert pool.validate_transaction(old.state, for_3, old.head_number, old.head_hash).nonce == 0
    with pytest.raises(InvalidTransaction, match="BadProof"):
        pool.validate_transaction(old.state, for_4, old.head_number, old.head_hash)
    old.produce()
    # Best is h - 1: the next block is the upgrade block.
    assert pool.validate_transaction(old.state, for_4, old.head_number, old.head_hash).nonce == 0
    with pytest.raises(InvalidTransaction, match="BadProof"):
        pool.validate_transaction(old.state, for_3, old.head_number, old.head_hash)
    outs = old.produce(for_4)
    assert outs[0].success and old.rt.spec_version == 4


def test_a_genesis_version_this_software_lacks_is_refused(make_chain: Any) -> None:
    with pytest.raises(ValueError, match="spec_version 9"):
        make_chain(extra={"system": {"spec_version": 9}})


# --------------------------------------------------------------------------- spec 5


@pytest.fixture
def at4(make_chain: Any) -> Any:
    """A chain that starts at spec 4 with a manufacturer, an owner and a pump twin."""
    chain = make_chain(
        extra={
            "system": {"name": "four", "spec_version": 4},
            "roles": {"grants": [["//Bob", "EquipmentManufacturer"]]},
            "equipment": {
                "twins": [{"manufacturer": "//Bob", "class": "pump", "serial": "P1",
                           "rated": [[1, 55_000]]}],
                "classes": genesis_classes(),  # ignored before spec 5
            },
        }
    )  # fmt: skip
    chain.produce()
    assert chain.rt.spec_version == 4
    return chain


def test_spec_5_calls_do_not_exist_before_it(at4: Any) -> None:
    """Before the switch this release runs 4 exactly as the release before it: the calls of
    spec 5 do not decode (the old release cannot decode them either) and genesis ignored
    the classes; nothing of spec 5's storage exists."""
    rt = at4.view()
    assert rt.equipment.equipment_class("pump") is None
    assert list(rt.telemetry.MetricIds.iter()) == []
    names = {c["name"] for p in rt.metadata()["pallets"] for c in p["calls"]}
    assert not names & {"register_class", "submit_prognosis", "acknowledge_alert"}
    raw = sudo(at4, "Equipment", "register_class", class_record(load_class("pump")))
    pool = Executive(Runtime(at4.rt.genesis_hash))
    pool.validate_transaction(at4.state, raw, at4.head_number, at4.head_hash)  # sudo decodes
    outs = at4.produce(raw)
    assert outs[0].success  # ... but the nested call does not: Sudid with InvalidCall
    [sudid] = [e for e in at4.events() if e["event"] == "Sudid"]
    assert sudid["args"]["error"] == "System.InvalidCall"
    direct = at4.sign(
        BOB, at4.call("Equipment", "register_class", class_record(load_class("pump")))
    )
    with pytest.raises(InvalidTransaction) as e:
        pool.validate_transaction(at4.state, direct, at4.head_number, at4.head_hash)
    assert e.value.code == "Decode"


def test_the_upgrade_to_5_registers_the_built_in_classes_and_indexes_metric_names(
    at4: Any,
) -> None:
    h = at4.head_number + 2
    at4.produce(sudo(at4, "System", "schedule_upgrade", 5, h))
    at4.produce()  # h
    rt = at4.view()
    assert rt.spec_version == 5
    applied = [e["args"] for e in at4.events() if e["event"] == "MigrationApplied"]
    assert [(a["pallet"], a["storage_version"]) for a in applied] == [
        ("Equipment", 1),
        ("Telemetry", 1),
    ]
    for name in BUILTIN_CLASSES:
        rec = rt.equipment.equipment_class(name)
        assert rec.version == 1 and rec.registrant is None
        assert rec.hash == class_hash(load_class(name))
    assert [rt.telemetry.metric_id(n) for n in ("temperature", "current")] == [1, 15]
    # The new calls from then on; the existing twin keeps its spec, new ones follow the class.
    outs = at4.produce(
        at4.sign(
            BOB, at4.call("Equipment", "mint", "pump", "P", "P2", Spec([(10, 1)], []), BOB.public)
        )
    )
    failed = [e for e in at4.events() if e["event"] == "ExtrinsicFailed"]
    assert not outs[0].success and failed[0]["args"]["error"] == "SpecNotOfClass", failed
    # Exactly once: a replayed hook on this state migrates nothing.
    rt = at4.view()
    rt.state = Overlay(at4.state)
    migrations.on_runtime_upgrade(rt, 4, 5)
    assert [ev.name for _, ev in rt.state.events] == ["RuntimeUpgraded"]
    # Another node re-executes the upgrade block to the same changes.
    fresh = Executive(Runtime(at4.rt.genesis_hash))
    for block, state in zip(at4.blocks[-2:], at4.pre_states[-2:], strict=True):
        changes = fresh.execute_block(state, block).changes
    assert changes == at4.last_changes


def test_the_frozen_built_in_classes_are_the_files_of_this_release() -> None:
    """Spec 5's migration carries the classes as it shipped them; today they are the files.
    When a class file changes, this fails: leave v5's records as they are (a migration is
    history), and register the new version through Equipment.register_class."""
    assert [r.name for r in v5.builtin_records()] == list(BUILTIN_CLASSES)
    for rec in v5.builtin_records():
        assert rec == class_record(load_class(rec.name))
