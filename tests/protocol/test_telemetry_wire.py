"""Telemetry's protocol: the metric registry, packed readings on the wire, device batch
signing and verification, reading proofs and the chain's packed batch records."""

from __future__ import annotations

import pytest

from twinchain import native
from twinchain.native.merkle import merkle_root
from twinchain.primitives.codec import CodecError
from twinchain.primitives.keys import Keypair
from twinchain.protocol import telemetry as tp
from twinchain.protocol.telemetry import Batch, batch_root, sign_batch

DEV1, DEV2 = (Keypair.from_dev_name(n) for n in ("Device1", "Device2"))
NOW = 100_000
TEMP, GOOD = tp.TEMPERATURE, tp.GOOD_UNITS
GENESIS = b"\x07" * 32


# --------------------------------------------------------------------------- metric registry


def test_the_metric_registry_is_one_table_of_unique_ids() -> None:
    ids = [m[0] for m in tp.DEFAULT_METRICS]
    assert ids == sorted(set(ids)) == list(range(1, 16))
    by_name = {name: mid for mid, name, *_ in tp.DEFAULT_METRICS}
    assert by_name["temperature"] == tp.TEMPERATURE and by_name["energy"] == tp.ENERGY
    assert by_name["units_produced"] == tp.UNITS_PRODUCED and by_name["current"] == tp.CURRENT
    # Every metric is a gauge or a delta, never both; both lists in id order.
    assert sorted(tp.GAUGES + tp.DELTAS) == ids and not set(tp.GAUGES) & set(tp.DELTAS)
    assert tp.GAUGES == tuple(sorted(tp.GAUGES)) and tp.DELTAS == tuple(sorted(tp.DELTAS))
    assert tp.ENERGY in tp.DELTAS and tp.TEMPERATURE in tp.GAUGES
    for _, name, unit, scale, kind in tp.DEFAULT_METRICS:  # each fits its on-chain record
        info = tp.MetricInfo(name, unit, scale, kind)
        assert tp.MetricInfo.from_bytes(info.to_bytes()) == info


# --------------------------------------------------------------------------- readings


def test_readings_travel_as_packed_leaves_and_bad_ones_are_refused() -> None:
    rtype = Batch.wire_type().fields[2][1]
    readings = [(TEMP, NOW, -5), (GOOD, 2**64 - 1, 2**63 - 1), (65_535, 0, -(2**63))]
    raw = rtype.encode(readings)
    assert rtype.decode(raw) == readings
    # The wire form is the concatenation of the readings' Merkle leaves.
    assert rtype.to_wire(readings) == b"".join(tp.reading_leaf(*r) for r in readings)
    for bad in (
        [(TEMP, NOW, 1.5)],  # float
        [(TEMP, NOW, True)],  # bool is not an integer here
        [(65_536, NOW, 0)],  # metric over u16
        [(TEMP, -1, 0)],  # negative timestamp
        [(TEMP, NOW, 2**63)],  # value over i64
        [(TEMP, NOW)],  # two fields
        [(TEMP, NOW, 0)] * (tp.MAX_READINGS + 1),  # too many
        "not a list",
    ):
        with pytest.raises(CodecError):
            rtype.encode(bad)
    for wire in (b"\x00" * 17, b"\x00" * 18 * (tp.MAX_READINGS + 1), [1, 2, 3]):
        with pytest.raises(CodecError):
            rtype.from_wire(wire)


def test_decoded_readings_stay_packed_and_behave_like_the_list() -> None:
    rtype = Batch.wire_type().fields[2][1]
    readings = [(GOOD, NOW + 5, 2), (TEMP, NOW, -5), (TEMP, NOW + 9, 7)]
    decoded = rtype.decode(rtype.encode(readings))
    assert type(decoded) is tp.PackedReadings and decoded.raw == rtype.to_wire(readings)
    assert decoded == readings and readings == decoded and decoded == tuple(readings)
    assert decoded != readings[:2] and decoded != [*readings[:2], (TEMP, NOW + 9, 8)]
    assert len(decoded) == 3 and decoded[1] == (TEMP, NOW, -5) and list(decoded) == readings
    assert rtype.to_wire(decoded) is decoded.raw  # re-encoding is free
    # What import reads instead of the tuples: metrics in first-seen order, the time span.
    assert tp.survey_readings(decoded) == ((GOOD, TEMP), NOW, NOW + 9)
    assert tp.survey_readings(readings) == tp.survey_readings(decoded)
    assert tp.batch_root(decoded) == tp.batch_root(readings)
    assert tp.batch_root(readings) == merkle_root([tp.reading_leaf(*r) for r in readings])


def test_a_signed_batch_keeps_its_readings_packed_once() -> None:
    readings = [[TEMP, NOW, 5], (GOOD, NOW + 1, 2)]  # any (metric, ts, value) rows
    b = sign_batch(DEV1, b"\x07" * 32, 3, 0, readings)
    assert type(b.readings) is tp.PackedReadings and b.readings == [tuple(r) for r in readings]
    # The encoding reuses the packed bytes and equals the one of the plain list.
    plain = Batch(b.device, b.seq, [tuple(r) for r in readings], b.signature)
    assert Batch.wire_type().encode(b) == Batch.wire_type().encode(plain)
    msg = tp.batch_message(b"\x07" * 32, DEV1.public, 3, 0, batch_root(plain.readings), 2)
    assert native.verify_batch([DEV1.public], [msg], [b.signature]) == [True]
    # ``+`` gives a list, as the list it stands for did.
    assert b.readings + [(TEMP, NOW + 2, 6)] == [*plain.readings, (TEMP, NOW + 2, 6)]  # noqa: RUF005
    assert [(TEMP, 1, 1)] + b.readings == [(TEMP, 1, 1), *plain.readings]  # noqa: RUF005
    for bad in ([(TEMP, NOW, 2**63)], [(TEMP, NOW)], [(TEMP, NOW, 0)] * (tp.MAX_READINGS + 1)):
        with pytest.raises(CodecError):
            sign_batch(DEV1, b"\x07" * 32, 3, 0, bad)


# --------------------------------------------------------------------------- signatures


def test_device_signatures_verify_in_one_call_bound_to_chain_twin_and_seq() -> None:
    b = sign_batch(DEV1, GENESIS, 3, 5, [(TEMP, NOW, 1), (GOOD, NOW, 2)])
    root = batch_root(b.readings)

    def check(genesis: bytes, device: bytes, twin: int, seq: int) -> tp.Triple:
        return (device, tp.batch_message(genesis, device, twin, seq, root, 2), b.signature)

    triples = [
        check(GENESIS, DEV1.public, 3, 5),
        check(b"\x08" * 32, DEV1.public, 3, 5),  # another chain
        check(GENESIS, DEV1.public, 4, 5),  # another twin
        check(GENESIS, DEV1.public, 3, 6),  # another position
        check(GENESIS, DEV2.public, 3, 5),  # another device
    ]
    assert tp.verify_device_signatures(triples) == [True, False, False, False, False]


# --------------------------------------------------------------------------- reading proofs


def test_any_reading_is_proven_against_its_batch_root_alone() -> None:
    readings = [(TEMP, NOW + i, 20_000 + i) for i in range(7)]
    root, count = batch_root(readings), len(readings)
    for i, r in enumerate(readings):
        assert tp.verify_reading(root, r, i, count, tp.reading_proof(readings, i))
    proof = tp.reading_proof(readings, 3)
    m, ts, v = readings[3]
    assert not tp.verify_reading(root, (m, ts, v + 1), 3, count, proof)
    assert not tp.verify_reading(root, readings[3], 4, count, proof)
    assert not tp.verify_reading(root, (TEMP, -1, 0), 3, count, proof)  # not even encodable


# --------------------------------------------------------------------------- batch records


def test_a_batch_record_is_found_in_its_packed_chunk() -> None:
    rec = tp.BatchRecord(3, b"\x01" * 32, 12, NOW, NOW + 9, b"\x02" * 32, 40, 1)
    fields = (rec.twin, rec.root, rec.count, rec.first_ts, rec.last_ts, rec.gateway)
    chunk = b"".join(tp.BATCH_RECORD.pack(seq, *fields, rec.block, 1) for seq in (16, 18, 19))
    assert tp.chunk_record(chunk, 18) == rec
    assert tp.chunk_record(chunk, 17) is None and tp.chunk_record(chunk, 20) is None
    assert tp.chunk_record(b"", 16) is None
