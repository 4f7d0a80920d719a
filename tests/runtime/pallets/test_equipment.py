"""Equipment: minting, ownership and provenance, every lifecycle transition, delegated access,
warranty, calibration, location, documents, service history and critical-equipment multisig."""

from __future__ import annotations

from typing import Any

import pytest

from twinchain.primitives.hashing import ZERO_HASH
from twinchain.primitives.keys import Keypair
from twinchain.runtime.framework import DispatchError, Origin
from twinchain.runtime.pallets.equipment.types import (
    LIFECYCLE,
    OPERATE,
    READ_TELEMETRY,
    SERVICE,
    TRANSITIONS,
    Envelope,
    Spec,
)
from twinchain.runtime.pallets.multisig import multi_account_id
from twinchain.runtime.pallets.support import chain_entry

ALICE, BOB, CHARLIE = (Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie"))
MAKER, OWNER, OWNER2, AUD, SP, OP, NOBODY = (
    Keypair.from_dev_name(n)
    for n in ("Maker", "Owner", "Owner2", "Auditor", "Service", "Operator", "Nobody")
)
H1, H2 = b"\x01" * 32, b"\x02" * 32
FAR = 10**12
SLOT_MS = 1000
SPEC = Spec([(1, 60_000), (4, 5_000)], [Envelope(1, -20_000, 90_000, 10_000)])
# Which call moves a twin into each lifecycle state.
CALL_TO = {
    "Commissioned": ("commission", (0,)),
    "Active": ("activate", ()),
    "Maintenance": ("begin_maintenance", ()),
    "Decommissioned": ("decommission", ()),
}


def err(e: pytest.ExceptionInfo[DispatchError]) -> str:
    return f"{e.value.module}.{e.value.error}"


def signed(k: Keypair) -> Origin:
    return Origin.signed(k.public)


def world() -> dict[str, Any]:
    return {
        "roles": {
            "grants": [
                ["//Maker", "EquipmentManufacturer"],
                ["//Owner", "EquipmentOwner"],
                ["//Owner2", "EquipmentOwner"],
                ["//Auditor", "CertifiedAuditor"],
                ["//Service", "ServiceProvider"],
                ["//Operator", "FacilityOperator"],
            ]
        },
        "facility": {
            "facilities": [
                {"operator": "//Operator", "name": "P", "verified_until": FAR},
                {"operator": "//Operator", "name": "Q", "validator": "//Nobody"},
            ]
        },
    }


@pytest.fixture
def blk(make_chain: Any) -> Any:
    chain = make_chain(extra=world())
    chain.start_block()
    return chain


def mint(chain: Any, serial: str = "SN-1", owner: Keypair = OWNER, spec: Spec = SPEC) -> int:
    twin = chain.rt.equipment.NextTwinId.get()
    chain.dispatch(
        signed(MAKER), "Equipment", "mint", "cnc-mill", "M-500", serial, spec, owner.public
    )
    return int(twin)


def twin(chain: Any, tid: int = 0) -> Any:
    return chain.rt.equipment.Twins.get(tid)


def force_lifecycle(chain: Any, tid: int, state: str) -> None:
    t = twin(chain, tid)
    t.lifecycle = state
    chain.rt.equipment.Twins.insert(tid, t)


def kinds(chain: Any, tid: int = 0) -> list[str]:
    return [e.kind for e in chain.rt.equipment.provenance(tid)]


# --------------------------------------------------------------------------- minting


def test_mint(blk: Any) -> None:
    tid = mint(blk)
    eq = blk.rt.equipment
    t = twin(blk, tid)
    assert (t.equipment_class, t.model, t.serial) == ("cnc-mill", "M-500", "SN-1")
    assert (t.manufacturer, t.owner, t.lifecycle, t.facility) == (
        MAKER.public, OWNER.public, "Manufactured", None
    )  # fmt: skip
    assert eq.spec(tid) == SPEC and eq.envelopes(tid) == {1: SPEC.envelope[0]}
    assert eq.OwnedBy.get(OWNER.public, tid) and eq.ByClass.get("cnc-mill", tid)
    assert eq.BySerial.get((MAKER.public, "SN-1")) == tid
    assert kinds(blk, tid) == ["Minted"]
    # A manufacturer may keep the twin itself.
    assert twin(blk, mint(blk, "SN-2", MAKER)).owner == MAKER.public


@pytest.mark.parametrize(
    ("who", "cls", "serial", "spec", "owner", "error"),
    [
        (OWNER, "c", "S", SPEC, OWNER, "NotManufacturer"),
        (AUD, "c", "S", SPEC, OWNER, "NotManufacturer"),
        (MAKER, "", "S", SPEC, OWNER, "EmptyField"),
        (MAKER, "c", "", SPEC, OWNER, "EmptyField"),
        (
            MAKER,
            "c",
            "S",
            Spec([], [Envelope(1, 0, 1, 0), Envelope(1, 0, 1, 0)]),
            OWNER,
            "InvalidSpec",
        ),
        (MAKER, "c", "S", Spec([(1, 0), (1, 1)], []), OWNER, "InvalidSpec"),
        (MAKER, "c", "S", Spec([], [Envelope(1, 5, 4, 0)]), OWNER, "InvalidSpec"),
        (MAKER, "c", "S", SPEC, NOBODY, "RecipientNotOwner"),
    ],
)
def test_mint_rejects(
    blk: Any, who: Keypair, cls: str, serial: str, spec: Spec, owner: Keypair, error: str
) -> None:
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(who), "Equipment", "mint", cls, "M", serial, spec, owner.public)
    assert err(e) == f"Equipment.{error}"
    assert blk.rt.equipment.NextTwinId.get() == 0


def test_serial_is_unique_per_manufacturer(blk: Any) -> None:
    mint(blk)
    with pytest.raises(DispatchError) as e:
        mint(blk)
    assert err(e) == "Equipment.DuplicateSerial"


# --------------------------------------------------------------------------- ownership


def test_transfer_moves_ownership_and_records_provenance(blk: Any) -> None:
    tid = mint(blk)
    eq = blk.rt.equipment
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", tid, SP.public, SERVICE, FAR)
    evs = blk.dispatch(signed(OWNER), "Equipment", "transfer", tid, OWNER2.public)
    assert blk.args(evs[-1]) == {"twin": tid, "from": OWNER.public, "to": OWNER2.public}
    assert twin(blk, tid).owner == OWNER2.public
    assert eq.OwnedBy.get(OWNER.public, tid) is None and eq.OwnedBy.get(OWNER2.public, tid)
    assert eq.Access.get(tid, SP.public) is None  # delegations end with the old owner
    hist = eq.provenance(tid)
    assert [(e.kind, e.owner, e.actor) for e in hist] == [
        ("Minted", OWNER.public, MAKER.public),
        ("Transferred", OWNER2.public, OWNER.public),
    ]
    for who, to, error in [
        (OWNER, OWNER.public, "NotOwner"),
        (OWNER2, OWNER2.public, "TransferToSelf"),
        (OWNER2, NOBODY.public, "RecipientNotOwner"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(who), "Equipment", "transfer", tid, to)
        assert err(e) == f"Equipment.{error}"
    # Back to the manufacturer is allowed without the owner role.
    blk.dispatch(signed(OWNER2), "Equipment", "transfer", tid, MAKER.public)
    assert twin(blk, tid).owner == MAKER.public


def test_provenance_is_hash_chained(blk: Any) -> None:
    tid = mint(blk)
    blk.dispatch(signed(OWNER), "Equipment", "commission", tid, 0)
    blk.dispatch(signed(OWNER), "Equipment", "transfer", tid, OWNER2.public)
    head = ZERO_HASH
    for entry in blk.rt.equipment.provenance(tid):
        head = chain_entry(head, entry)
    assert head == blk.rt.equipment.ProvenanceHead.get(tid)
    assert kinds(blk, tid) == ["Minted", "Commissioned", "Transferred"]


# --------------------------------------------------------------------------- lifecycle


def test_transition_table_is_the_specified_one() -> None:
    assert TRANSITIONS == {
        "Manufactured": {"Commissioned"},
        "Commissioned": {"Active", "Decommissioned"},
        "Active": {"Maintenance", "Decommissioned"},
        "Maintenance": {"Active", "Decommissioned"},
        "Decommissioned": set(),
    }


@pytest.mark.parametrize("start", LIFECYCLE)
@pytest.mark.parametrize("target", list(CALL_TO))
def test_every_lifecycle_transition(blk: Any, start: str, target: str) -> None:
    """Every (state, call) pair: allowed ones move and record provenance, the rest fail typed
    and change nothing."""
    tid = mint(blk)
    force_lifecycle(blk, tid, start)
    name, extra = CALL_TO[target]
    before = kinds(blk, tid)
    if target in TRANSITIONS[start]:
        evs = blk.dispatch(signed(OWNER), "Equipment", name, tid, *extra)
        assert blk.args(evs[-1]) == {"twin": tid, "from": start, "to": target}
        assert twin(blk, tid).lifecycle == target
        assert kinds(blk, tid) == [*before, blk.rt.equipment.provenance(tid)[-1].kind]
        assert blk.rt.equipment.provenance(tid)[-1].lifecycle == target
    else:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Equipment", name, tid, *extra)
        expected = "TwinDecommissioned" if start == "Decommissioned" else "InvalidTransition"
        assert err(e) == f"Equipment.{expected}"
        assert twin(blk, tid).lifecycle == start and kinds(blk, tid) == before


@pytest.mark.parametrize("start", LIFECYCLE)
@pytest.mark.parametrize("target", LIFECYCLE)
def test_lifecycle_api_for_other_pallets(blk: Any, start: str, target: str) -> None:
    tid = mint(blk)
    force_lifecycle(blk, tid, start)
    if target in TRANSITIONS[start]:
        blk.rt.equipment.set_lifecycle_by(tid, target, None)
        assert twin(blk, tid).lifecycle == target
    else:
        with pytest.raises(DispatchError) as e:
            blk.rt.equipment.set_lifecycle_by(tid, target, None)
        assert err(e) == "Equipment.InvalidTransition"


def test_commission_needs_a_verified_facility(blk: Any) -> None:
    tid = mint(blk)
    for fid, error in [(1, "FacilityNotVerified"), (7, "UnknownFacility")]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Equipment", "commission", tid, fid)
        assert err(e) == f"Equipment.{error}"
    blk.dispatch(signed(OWNER), "Equipment", "commission", tid, 0)
    assert twin(blk, tid).facility == 0


def test_decommissioned_twin_is_frozen(blk: Any) -> None:
    tid = mint(blk)
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", tid, SP.public, SERVICE, FAR)
    force_lifecycle(blk, tid, "Active")
    blk.dispatch(signed(OWNER), "Equipment", "decommission", tid)
    assert blk.rt.equipment.Access.get(tid, SP.public) is None
    assert not blk.rt.equipment.is_operational(tid)
    for name, args in [
        ("transfer", (tid, OWNER2.public)),
        ("grant_access", (tid, SP.public, 1, FAR)),
        ("update_location", (tid, 0, 0)),
        ("add_document", (tid, "manual", H1)),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Equipment", name, *args)
        assert err(e) == "Equipment.TwinDecommissioned"


# --------------------------------------------------------------------------- access rights


def test_delegated_rights_and_expiry(make_chain: Any) -> None:
    chain = make_chain(extra=world())
    chain.start_block()
    tid = mint(chain)
    force_lifecycle(chain, tid, "Commissioned")
    eq = chain.rt.equipment
    evs = chain.dispatch(signed(OWNER), "Equipment", "grant_access", tid, BOB.public, OPERATE, 2500)
    assert chain.args(evs[0]) == {
        "twin": tid,
        "who": BOB.public,
        "rights": OPERATE,
        "expires": 2500,
    }
    chain.dispatch(
        signed(OWNER), "Equipment", "grant_access", tid, CHARLIE.public, READ_TELEMETRY, FAR
    )
    assert eq.has_right(tid, BOB.public, OPERATE) and not eq.has_right(tid, BOB.public, SERVICE)
    assert eq.has_right(tid, OWNER.public, SERVICE)  # owners hold every right
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(CHARLIE), "Equipment", "activate", tid)
    assert err(e) == "Equipment.NoPermission"
    chain.dispatch(signed(BOB), "Equipment", "activate", tid)
    chain.dispatch(signed(BOB), "Equipment", "update_location", tid, 52_520_000, 13_405_000)
    loc = eq.Locations.get(tid)
    assert (loc.lat, loc.lon, loc.by, loc.at) == (52_520_000, 13_405_000, BOB.public, SLOT_MS)
    for _ in range(2):  # slot 3: Bob's grant (until 2500 ms) has expired
        chain.finish_block()
        chain.start_block()
    assert not eq.has_right(tid, BOB.public, OPERATE)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(BOB), "Equipment", "begin_maintenance", tid)
    assert err(e) == "Equipment.NoPermission"
    chain.dispatch(signed(OWNER), "Equipment", "revoke_access", tid, CHARLIE.public)
    assert not eq.has_right(tid, CHARLIE.public, READ_TELEMETRY)
    with pytest.raises(DispatchError) as e:
        chain.dispatch(signed(OWNER), "Equipment", "revoke_access", tid, CHARLIE.public)
    assert err(e) == "Equipment.NoAccess"


@pytest.mark.parametrize(
    ("who", "rights", "expires", "error"),
    [
        (BOB, 0, FAR, "InvalidRights"),
        (BOB, 8, FAR, "InvalidRights"),
        (OWNER, 1, FAR, "InvalidRights"),
        (BOB, 1, SLOT_MS, "InvalidExpiry"),
    ],
)
def test_grant_access_rejects(
    blk: Any, who: Keypair, rights: int, expires: int, error: str
) -> None:
    tid = mint(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Equipment", "grant_access", tid, who.public, rights, expires)
    assert err(e) == f"Equipment.{error}"


def test_service_delegate_may_start_maintenance(blk: Any) -> None:
    tid = mint(blk)
    force_lifecycle(blk, tid, "Active")
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", tid, SP.public, SERVICE, FAR)
    blk.dispatch(signed(SP), "Equipment", "begin_maintenance", tid)
    assert twin(blk, tid).lifecycle == "Maintenance"


# --------------------------------------------------------------------------- records


def test_warranty_by_the_manufacturer(blk: Any) -> None:
    tid = mint(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Equipment", "set_warranty", tid, 0, FAR, H1)
    assert err(e) == "Equipment.NotManufacturer"
    for start, end in [(5, 5), (0, SLOT_MS)]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(MAKER), "Equipment", "set_warranty", tid, start, end, H1)
        assert err(e) == "Equipment.InvalidValidity"
    blk.dispatch(signed(MAKER), "Equipment", "set_warranty", tid, 0, FAR, H1)
    w = blk.rt.equipment.Warranties.get(tid)
    assert (w.provider, w.starts, w.ends, w.terms) == (MAKER.public, 0, FAR, H1)
    assert kinds(blk, tid)[-1] == "WarrantySet"


def test_calibration_by_certified_parties(blk: Any) -> None:
    tid = mint(blk)
    evs = blk.dispatch(signed(AUD), "Equipment", "issue_calibration", tid, 1, H1, FAR, True)
    assert blk.args(evs[-1]) == {"twin": tid, "index": 0, "metric": 1, "passed": True}
    c = blk.rt.equipment.Calibrations.get(tid, 0)
    assert (c.issuer, c.certificate, c.issued, c.valid_until) == (AUD.public, H1, SLOT_MS, FAR)
    blk.dispatch(signed(AUD), "Equipment", "issue_calibration", tid, 4, H2, FAR, False)
    assert blk.rt.equipment.CalibrationCount.get(tid) == 2
    for who, metric, until, error in [
        (OWNER, 1, FAR, "NotAuditor"),
        (SP, 1, FAR, "NotAuditor"),
        (AUD, 9, FAR, "UnknownMetric"),
        (AUD, 1, SLOT_MS, "InvalidValidity"),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(
                signed(who), "Equipment", "issue_calibration", tid, metric, H1, until, True
            )
        assert err(e) == f"Equipment.{error}"
    blk.dispatch(Origin.root(), "Roles", "force_grant", AUD.public, "EquipmentOwner")
    own = mint(blk, "SN-9", AUD)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(AUD), "Equipment", "issue_calibration", own, 1, H1, FAR, True)
    assert err(e) == "Equipment.ConflictOfInterest"


@pytest.mark.parametrize(("lat", "lon"), [(90_000_001, 0), (0, -180_000_001), (-90_000_001, 0)])
def test_location_bounds(blk: Any, lat: int, lon: int) -> None:
    tid = mint(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Equipment", "update_location", tid, lat, lon)
    assert err(e) == "Equipment.InvalidLocation"


def test_documents(blk: Any) -> None:
    tid = mint(blk)
    blk.dispatch(signed(MAKER), "Equipment", "add_document", tid, "manual", H1)
    blk.dispatch(signed(OWNER), "Equipment", "add_document", tid, "drawing", H2)
    assert blk.rt.equipment.Documents.get(tid) == [("manual", H1), ("drawing", H2)]
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(SP), "Equipment", "add_document", tid, "x", H1)
    assert err(e) == "Equipment.NoPermission"
    for i in range(30):
        blk.dispatch(signed(OWNER), "Equipment", "add_document", tid, f"d{i}", H1)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Equipment", "add_document", tid, "one-too-many", H1)
    assert err(e) == "Equipment.TooManyDocuments"


def test_service_history(blk: Any) -> None:
    tid = mint(blk)
    eq = blk.rt.equipment
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(SP), "Equipment", "record_service", tid, "inspection", H1, 10)
    assert err(e) == "Equipment.NoPermission"
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", tid, SP.public, SERVICE, FAR)
    blk.dispatch(signed(OWNER), "Equipment", "grant_access", tid, BOB.public, SERVICE, FAR)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(BOB), "Equipment", "record_service", tid, "inspection", H1, 10)
    assert err(e) == "Equipment.NotServiceProvider"
    blk.dispatch(signed(SP), "Equipment", "record_service", tid, "inspection", H1, 10)
    assert eq.record_service_by(tid, SP.public, "bearing swap", H2, 250, 7) == 1
    hist = eq.service_history(tid)
    assert [(r.kind, r.cost, r.work_order, r.provider) for r in hist] == [
        ("inspection", 10, None, SP.public), ("bearing swap", 250, 7, SP.public)
    ]  # fmt: skip
    assert kinds(blk, tid)[-2:] == ["Serviced", "Serviced"]


# --------------------------------------------------------------------------- critical equipment


def as_multi(chain: Any, call: Any, first: Keypair, second: Keypair) -> list[Any]:
    """Run ``call`` through the 2-of-3 multisig of Alice, Bob and Charlie."""
    sigs = sorted(k.public for k in (ALICE, BOB, CHARLIE))
    wire = list(call.to_wire())

    def others(k: Keypair) -> list[bytes]:
        return [s for s in sigs if s != k.public]

    chain.dispatch(signed(first), "Multisig", "as_multi", 2, others(first), None, wire, 10**9)
    tp = (chain.rt.block.number, chain.rt.block.extrinsic_index)
    return chain.dispatch(
        signed(second), "Multisig", "as_multi", 2, others(second), tp, wire, 10**9
    )  # type: ignore[no-any-return]


def test_critical_equipment_needs_the_multisig(blk: Any) -> None:
    sigs = sorted(k.public for k in (ALICE, BOB, CHARLIE))
    ms = multi_account_id(sigs, 2)
    tid = mint(blk)
    force_lifecycle(blk, tid, "Active")
    evs = blk.dispatch(signed(OWNER), "Equipment", "set_critical_multisig", tid, sigs, 2)
    assert blk.args(evs[-1]) == {"twin": tid, "multisig": ms}
    assert twin(blk, tid).critical_multisig == ms
    for name, args in [
        ("transfer", (tid, OWNER2.public)),
        ("decommission", (tid,)),
        ("set_critical_multisig", (tid, sigs, 3)),
        ("clear_critical_multisig", (tid,)),
    ]:
        with pytest.raises(DispatchError) as e:
            blk.dispatch(signed(OWNER), "Equipment", name, *args)
        assert err(e) == "Equipment.MultisigRequired"
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(NOBODY), "Equipment", "transfer", tid, OWNER2.public)
    assert err(e) == "Equipment.NotOwner"
    # The signatories decommission it together.
    evs = as_multi(blk, blk.call("Equipment", "decommission", tid), ALICE, BOB)
    assert blk.args(evs[-1])["ok"] == "ok"
    assert twin(blk, tid).lifecycle == "Decommissioned"
    assert blk.rt.equipment.provenance(tid)[-1].actor == ms


def test_multisig_transfers_and_the_setting_ends_with_the_owner(blk: Any) -> None:
    sigs = sorted(k.public for k in (ALICE, BOB, CHARLIE))
    tid = mint(blk)
    blk.dispatch(signed(OWNER), "Equipment", "set_critical_multisig", tid, sigs, 2)
    evs = as_multi(blk, blk.call("Equipment", "transfer", tid, OWNER2.public), BOB, CHARLIE)
    assert blk.args(evs[-1])["ok"] == "ok"
    t = twin(blk, tid)
    assert t.owner == OWNER2.public and t.critical_multisig is None
    blk.dispatch(signed(OWNER2), "Equipment", "set_critical_multisig", tid, sigs, 2)
    as_multi(blk, blk.call("Equipment", "clear_critical_multisig", tid), ALICE, CHARLIE)
    assert twin(blk, tid).critical_multisig is None
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER2), "Equipment", "clear_critical_multisig", tid)
    assert err(e) == "Equipment.NoMultisig"


@pytest.mark.parametrize(
    ("sigs", "threshold"),
    [
        ([b"\x01" * 32], 1),
        ([b"\x01" * 32, b"\x02" * 32], 1),
        ([b"\x01" * 32, b"\x02" * 32], 3),
        ([b"\x02" * 32, b"\x01" * 32], 2),
        ([b"\x01" * 32, b"\x01" * 32], 2),
    ],
)
def test_invalid_multisig_settings(blk: Any, sigs: list[bytes], threshold: int) -> None:
    tid = mint(blk)
    with pytest.raises(DispatchError) as e:
        blk.dispatch(signed(OWNER), "Equipment", "set_critical_multisig", tid, sigs, threshold)
    assert err(e) == "Equipment.InvalidMultisig"


# --------------------------------------------------------------------------- genesis


def test_genesis_twins(make_chain: Any) -> None:
    extra = world() | {
        "equipment": {
            "twins": [
                {"manufacturer": "//Maker", "owner": "//Owner", "class": "press",
                 "model": "P1", "serial": "A", "lifecycle": "Active", "facility": 0,
                 "rated": [[4, 1000]], "envelope": [[1, 0, 100, 5]]},
            ]
        }
    }  # fmt: skip
    chain = make_chain(extra=extra)
    eq = chain.rt.equipment
    t = twin(chain, 0)
    assert (t.owner, t.lifecycle, t.facility) == (OWNER.public, "Active", 0)
    assert eq.envelopes(0) == {1: Envelope(1, 0, 100, 5)}
    assert kinds(chain, 0) == ["Minted", "Activated"]
    assert eq.provenance(0)[-1].lifecycle == "Active"


def test_genesis_access_grants(make_chain: Any) -> None:
    # The owner's delegations from the start (a facility's maintenance worker reads its
    # twins' private telemetry with them).
    twin_cfg = {"manufacturer": "//Maker", "owner": "//Owner", "class": "press", "serial": "A",
                "access": [["//Service", READ_TELEMETRY, FAR]]}  # fmt: skip
    chain = make_chain(extra=world() | {"equipment": {"twins": [twin_cfg]}})
    eq = chain.rt.equipment
    assert eq.has_right(0, SP.public, READ_TELEMETRY)
    assert not eq.has_right(0, SP.public, OPERATE) and not eq.has_right(0, NOBODY.public, 1)
    for bad in (["//Service", 0, FAR], ["//Service", 8, FAR], ["//Owner", READ_TELEMETRY, FAR]):
        with pytest.raises(ValueError, match="bad access grant"):
            make_chain(extra=world() | {"equipment": {"twins": [twin_cfg | {"access": [bad]}]}})


def test_genesis_rejects_a_duplicate_serial(make_chain: Any) -> None:
    twin = {"manufacturer": "//Maker", "class": "press", "serial": "A"}
    with pytest.raises(ValueError, match="DuplicateSerial"):
        make_chain(extra=world() | {"equipment": {"twins": [twin, twin]}})


def test_shared_reads_follow_the_stored_bytes(blk: Any) -> None:
    # ``get_shared`` serves one decoded object per stored value (telemetry import reads each
    # twin's spec for every batch); it is keyed by the bytes, so a write is seen at once.
    eq = blk.rt.equipment
    tid = mint(blk)
    first = eq.Specs.get_shared(tid)
    assert first == eq.Specs.get(tid) == SPEC and eq.Specs.get_shared(tid) is first
    other = Spec([(4, 7_000)], [Envelope(4, 0, 9_000, 0)])
    eq.Specs.insert(tid, other)
    assert eq.Specs.get_shared(tid) == other and eq.envelopes(tid) == {4: other.envelope[0]}
    assert eq.Specs.get_shared(tid + 1) is None
