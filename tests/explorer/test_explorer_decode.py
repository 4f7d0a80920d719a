"""The explorer's metadata-driven decoder, checked against the local runtime's own types (no
node process needed here)."""

from __future__ import annotations

import pytest

from twinchain.explorer.decode import DecodeError, Metadata, apply_outcomes
from twinchain.primitives import codec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call, Extrinsic
from twinchain.protocol.telemetry import sign_batch
from twinchain.runtime.runtime import Runtime

ALICE, BOB = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
DEVICE = Keypair.from_dev_name("Device1")


@pytest.fixture(scope="module")
def rt() -> Runtime:
    return Runtime()


@pytest.fixture(scope="module")
def meta(rt: Runtime) -> Metadata:
    return Metadata(rt.metadata())


def test_calls_decode_from_metadata_alone(rt: Runtime, meta: Metadata) -> None:
    transfer = rt.call_by_name("Balances", "transfer", BOB.public, 10**30)  # u128 on the wire
    c = meta.call(list(transfer.to_wire()))
    assert (c.name, c.args) == ("Balances.transfer", {"dest": BOB.address, "value": 10**30})

    reg = rt.call_by_name("Facility", "register", "Plant", "Brno", ["casting"], ALICE.public)
    c = meta.call(list(reg.to_wire()))
    assert c.args == {
        "name": "Plant",
        "location": "Brno",
        "capabilities": ["casting"],
        "validator": ALICE.address,
    }

    # A struct inside a vec (telemetry commitments), with its signature as hex and its
    # public summaries as records (on the wire relative to one base timestamp).
    batch = sign_batch(DEVICE, b"\x01" * 32, 0, 7, [(1, 1_000, -5), (2, 2_000, 9)], {1})
    commitment = batch.commitment()
    c = meta.call(list(rt.call_by_name("Telemetry", "submit", [commitment]).to_wire()))
    [b] = c.args["batches"]
    assert b["device"] == DEVICE.address and b["seq"] == 7 and b["count"] == 2
    assert (b["first_ts"], b["last_ts"]) == (1_000, 2_000)
    assert b["root"] == "0x" + commitment.root.hex()
    assert b["public"] == [[1, 1, -5, -5, -5, 1_000, -5]]
    assert b["signature"] == "0x" + batch.signature.hex()

    # A call nested in sudo decodes as a call too.
    inner = list(rt.call_by_name("Roles", "force_grant", BOB.public, "Gateway").to_wire())
    c = meta.call(list(rt.call_by_name("Sudo", "sudo", inner).to_wire()))
    assert c.args == {
        "call": {"call": "Roles.force_grant", "args": {"who": BOB.address, "role": "Gateway"}}
    }


def test_extrinsic_envelope_and_outcomes(rt: Runtime, meta: Metadata) -> None:
    call = rt.call_by_name("Balances", "transfer", BOB.public, 5)
    raw = Extrinsic.sign(call, ALICE, 3, b"\x00" * 32, rt.spec_version, tip=2).encode()
    x = meta.extrinsic(1, raw)
    assert (x.signer, x.nonce, x.tip, x.size) == (ALICE.public, 3, 2, len(raw))
    assert x.hash == Extrinsic.decode(raw).hash and x.success is None

    # System.Events as the node stores it: bytes of an encoded list of records.
    pi, ok = rt.event_index("System", "ExtrinsicSuccess")
    _, failed = rt.event_index("System", "ExtrinsicFailed")
    bp, tr = rt.event_index("Balances", "Transfer")
    u128 = (5).to_bytes(16, "big")
    fee = (77).to_bytes(16, "big")
    records = [
        [1, 0, pi, ok, [10, (0).to_bytes(16, "big")]],
        [1, 1, bp, tr, [ALICE.public, BOB.public, u128]],
        [1, 1, pi, failed, ["Balances", "InsufficientBalance", 9, fee]],
    ]
    events = meta.events(codec.encode(codec.encode(records)))
    assert [e.full_name for e in events] == [
        "System.ExtrinsicSuccess", "Balances.Transfer", "System.ExtrinsicFailed"
    ]  # fmt: skip
    assert events[1].args == {"from": ALICE.address, "to": BOB.address, "amount": 5}
    apply_outcomes([x], events)
    assert (x.success, x.fee, x.error) == (False, 77, "Balances.InsufficientBalance")
    assert meta.events(None) == [] and meta.events(codec.encode(b"")) == []


def test_bad_input_is_a_typed_error(rt: Runtime, meta: Metadata) -> None:
    with pytest.raises(DecodeError):
        meta.call([99, 0, []])  # no such pallet
    with pytest.raises(DecodeError):
        meta.call([3, 0, [BOB.public]])  # transfer takes two arguments
    with pytest.raises(DecodeError):
        meta.extrinsic(0, b"\xc1")
    with pytest.raises(DecodeError):
        meta.events(codec.encode(codec.encode([[1, 0, 250, 0, []]])))
    with pytest.raises(DecodeError):
        meta.value({"enum": "Lifecycle", "variants": ["A"]}, 3)
    # An undecodable call inside an otherwise valid extrinsic is shown, not dropped.
    raw = Extrinsic(Call(99, 1, ())).encode()
    assert meta.extrinsic(0, raw).call.name == "#99.#1"


def test_storage_keys_match_the_runtime(rt: Runtime, meta: Metadata) -> None:
    assert meta.storage_key("System", "Events") == rt.system.Events.key()
    assert meta.storage_key("Balances", "Account", BOB.public) == rt.balances.Account.key(
        BOB.public
    )
    with pytest.raises(DecodeError):
        meta.storage_key("System", "NoSuchItem")
