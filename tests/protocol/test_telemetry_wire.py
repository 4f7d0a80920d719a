"""Telemetry's protocol: the metric registry, packed readings on the wire, public summaries,
device batch signing over commitments and verification, the archive's check of a delivered
batch against its record, reading proofs and the chain's packed batch records."""

from __future__ import annotations

import pytest

from twinchain import native
from twinchain.native.merkle import merkle_root
from twinchain.primitives import codec
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
    plain = Batch(b.device, b.seq, [tuple(r) for r in readings], b.public, b.signature)
    assert Batch.wire_type().encode(b) == Batch.wire_type().encode(plain)
    msg = tp.commitment_message(
        b"\x07" * 32, DEV1.public, 3, 0, 2, NOW, NOW + 1, batch_root(plain.readings), ()
    )
    assert native.verify_batch([DEV1.public], [msg], [b.signature]) == [True]
    # ``+`` gives a list, as the list it stands for did.
    assert b.readings + [(TEMP, NOW + 2, 6)] == [*plain.readings, (TEMP, NOW + 2, 6)]  # noqa: RUF005
    assert [(TEMP, 1, 1)] + b.readings == [(TEMP, 1, 1), *plain.readings]  # noqa: RUF005
    for bad in ([(TEMP, NOW, 2**63)], [(TEMP, NOW)], [(TEMP, NOW, 0)] * (tp.MAX_READINGS + 1)):
        with pytest.raises(CodecError):
            sign_batch(DEV1, b"\x07" * 32, 3, 0, bad)


# --------------------------------------------------------------------------- signatures


def test_device_signatures_verify_in_one_call_bound_to_chain_twin_and_seq() -> None:
    b = sign_batch(DEV1, GENESIS, 3, 5, [(TEMP, NOW, 1), (GOOD, NOW, 2)], tp.DEFAULT_PUBLIC)
    c = b.commitment()

    def check(genesis: bytes, device: bytes, twin: int, seq: int) -> tp.Triple:
        msg = tp.commitment_message(genesis, device, twin, seq, 2, NOW, NOW, c.root, c.public)
        return (device, msg, b.signature)

    triples = [
        check(GENESIS, DEV1.public, 3, 5),
        check(b"\x08" * 32, DEV1.public, 3, 5),  # another chain
        check(GENESIS, DEV1.public, 4, 5),  # another twin
        check(GENESIS, DEV1.public, 3, 6),  # another position
        check(GENESIS, DEV2.public, 3, 5),  # another device
    ]
    assert tp.verify_device_signatures(triples) == [True, False, False, False, False]
    assert triples[0][1] == c.message(GENESIS, 3)


# --------------------------------------------------------------------------- commitments


def test_summaries_are_the_public_metrics_and_nothing_else() -> None:
    readings = [(GOOD, NOW, 7), (TEMP, NOW + 2, 5), (TEMP, NOW + 1, -3), (TEMP, NOW + 2, 9)]
    assert tp.summarize(readings, {TEMP, tp.PRESSURE}) == (
        tp.MetricSummary(TEMP, 3, -3, 9, 11, NOW + 2, 9),  # the later of two at NOW + 2
    )
    assert tp.summarize(readings, ()) == ()
    both = tp.summarize(readings, {TEMP, GOOD})
    assert [s.metric for s in both] == [TEMP, GOOD]  # metric order
    assert tp.SUMMARIES.from_wire(tp.SUMMARIES.to_wire(both)) == both
    with pytest.raises(CodecError):
        tp.summarize([(TEMP, NOW, 2**63 - 1), (TEMP, NOW, 1)], {TEMP})  # sum beyond i64
    for bad in (both[::-1], (both[0], both[0]), (both[0]._replace(count=0),)):
        with pytest.raises(CodecError):
            tp.SUMMARIES.to_wire(bad)
    wire = tp.SUMMARIES.to_wire(both)
    assert wire[0] == NOW + 2 and [wire[1], wire[8]] == [TEMP, GOOD]
    malformed = (
        wire[::-1],  # out of order
        wire[:-1],  # a summary cut short
        # The same summaries relative to a later base: a second encoding of one value.
        [wire[0] + 1, *wire[1:6], wire[6] + 1, *wire[7:13], wire[13] + 1, wire[14]],
        [wire[0], *wire[1:6], -1, *wire[7:]],  # a timestamp after the base
        [wire[0], *wire[1:3], True, *wire[4:]],  # not an integer
        [wire[0], *wire[1:4], 2**63, *wire[5:]],  # beyond i64
        [*wire, *wire[1:8]],  # a metric twice
        b"".join(x.to_bytes(8, "big", signed=True) for x in wire),  # the old fixed records
        [0] * (1 + 7 * (tp.MAX_PUBLIC + 1)),  # too many
    )
    for bad in malformed:
        with pytest.raises(CodecError):
            tp.SUMMARIES.from_wire(bad)


def test_a_summary_takes_the_bytes_its_values_need() -> None:
    # A second of a pump's temperature at 20 ms: about 18 bytes a summary on the wire (a
    # fixed record took 46), the timestamps relative to one base.
    readings = [(TEMP, 1_700_000_000_000 + 20 * i, 6_530 + i % 7) for i in range(50)]
    one = tp.summarize(readings, {TEMP})
    three = one + tuple(s._replace(metric=s.metric + k) for k in (1, 2) for s in one)
    sizes = [len(codec.encode(tp.SUMMARIES.to_wire(x))) for x in (one, three)]
    assert sizes[0] <= 9 + 1 + 20 and (sizes[1] - sizes[0]) / 2 <= 20, sizes


def test_the_commitment_carries_no_reading() -> None:
    readings = [(GOOD, NOW + i, 1_000_000 + i) for i in range(500)] + [(TEMP, NOW, 20_000)]
    b = sign_batch(DEV1, GENESIS, 3, 0, readings, tp.DEFAULT_PUBLIC)
    c = b.commitment()
    assert (c.count, c.first_ts, c.last_ts, c.root) == (501, NOW, NOW + 499, batch_root(readings))
    assert c.public == (tp.MetricSummary(TEMP, 1, 20_000, 20_000, 20_000, NOW, 20_000),)
    wire = c.to_bytes()
    assert len(wire) < 250 and tp.Commitment.from_bytes(wire) == c
    for i in range(500):
        assert (1_000_000 + i).to_bytes(8, "big") not in wire
    with pytest.raises(CodecError):
        Batch(DEV1.public, 0, [], (), bytes(64)).commitment()


def test_check_batch_refuses_what_the_chain_did_not_accept() -> None:
    readings = [(TEMP, NOW + i, 20_000 + i) for i in range(5)] + [(GOOD, NOW + 5, 3)]
    b = sign_batch(DEV1, GENESIS, 3, 0, readings, tp.DEFAULT_PUBLIC)
    c = b.commitment()
    rec = tp.BatchRecord(3, c.root, c.count, c.first_ts, c.last_ts, b"\x02" * 32, 9, 0)
    assert tp.check_batch(b, rec) is None
    changed = [*readings[:-1], (GOOD, NOW + 5, 4)]
    other = Batch(b.device, b.seq, changed, b.public, b.signature)
    assert "Merkle root" in (tp.check_batch(other, rec) or "")
    lied = Batch(b.device, b.seq, b.readings, (b.public[0]._replace(max=99_999),), b.signature)
    assert "summaries" in (tp.check_batch(lied, rec) or "")
    shorter = tp.BatchRecord(3, c.root, 7, c.first_ts, c.last_ts, b"\x02" * 32, 9, 0)
    assert "count or time span" in (tp.check_batch(b, shorter) or "")
    assert tp.check_batch(Batch(b.device, 0, [], (), b.signature), rec) == "no readings"


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
