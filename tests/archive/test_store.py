"""Delivery, settling against the finalized chain, refusals, and reads of archived batches."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from archive.plant import GENESIS, T0, Plant, make_batch, readings

from twinchain.archive.query import ArchiveQuery
from twinchain.archive.store import (
    NEVER_COMMITTED,
    NOT_ON_CHAIN,
    NOT_THE_GATEWAY,
    NOT_THIS_FACILITY,
    UNKNOWN_DEVICE,
    ArchiveStore,
    twin_share,
)
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import (
    PRESSURE,
    TEMPERATURE,
    batch_root,
    reading_proof,
    verify_reading,
)


def count_rows(plant: Plant) -> int:
    with ArchiveQuery(plant.path) as q:
        return int(q.rows("SELECT count(*) FROM readings")[1][0][0])


def test_staged_until_final_then_archived_once(plant: Plant) -> None:
    b = make_batch(plant.dev, 7, 0, T0)
    (d,) = plant.store.deliver(plant.gw.public, [b])
    assert (d.status, d.reason) == ("staged", None)
    assert plant.store.on_finalized() == {"archived": 0, "refused": 0, "staged": 1}
    plant.chain.commit(b)
    assert plant.store.on_finalized() == {"archived": 1, "refused": 0, "staged": 0}
    # Delivered again (the gateway learns the batch is safe): answered, not stored twice.
    assert plant.store.deliver(plant.gw.public, [b])[0].status == "archived"
    assert plant.store.flush() == 50
    assert plant.store.deliver(plant.gw.public, [b])[0].status == "archived"
    assert plant.store.flush() == 0
    assert count_rows(plant) == 50
    s = plant.store.stats()
    assert (s["archived_batches"], s["archived_readings"], s["staged_batches"]) == (1, 50, 0)
    assert s["refused_batches"] == 0 and s["files"] == 1


def test_archived_at_once_when_the_commitment_is_already_final(plant: Plant) -> None:
    batches = [make_batch(plant.dev, 7, s, T0 + s * 10_000) for s in range(3)]
    for b in batches:
        plant.chain.commit(b)
    out = plant.store.deliver(plant.gw.public, batches)
    assert [d.status for d in out] == ["archived"] * 3
    assert [(d.device, d.seq) for d in out] == [(plant.dev.public, s) for s in range(3)]


def test_tampered_readings_refused_counted_and_nothing_archived(
    plant: Plant, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_batch(plant.dev, 7, 0, T0)
    plant.chain.commit(good)
    rs = list(good.readings)
    rs[3] = (rs[3][0], rs[3][1], rs[3][2] + 1)  # one value changed after signing
    forged = replace(good, readings=rs)
    with caplog.at_level(logging.WARNING, "twinchain.archive"):
        (d,) = plant.store.deliver(plant.gw.public, [forged])
    assert d.status == "refused"
    assert d.reason == "the readings do not give the committed Merkle root"
    assert "refused batch 0" in caplog.text
    # Staged before its commitment was final, then refused at settling: the same.
    forged1 = make_batch(plant.dev, 7, 1, T0 + 10_000)
    rs1 = list(forged1.readings)
    del rs1[-1]
    staged = replace(forged1, readings=rs1)
    assert plant.store.deliver(plant.gw.public, [staged])[0].status == "staged"
    plant.chain.commit(forged1)
    assert plant.store.on_finalized()["refused"] == 1
    # Summaries that are not those of the readings.
    b2 = make_batch(plant.dev, 7, 2, T0 + 20_000)
    plant.chain.commit(b2)
    lying = replace(b2, public=(b2.public[0]._replace(max=b2.public[0].max + 5), *b2.public[1:]))
    assert plant.store.deliver(plant.gw.public, [lying])[0].reason == (
        "the public summaries are not those of the readings"
    )
    s = plant.store.stats()
    assert s["refused"] == {
        "the readings do not give the committed Merkle root": 2,
        "the public summaries are not those of the readings": 1,
    }
    assert s["archived_batches"] == 0 and s["refused_batches"] == 3
    assert plant.store.flush() == 0
    assert count_rows(plant) == 0
    assert plant.store.readings(7, None, 0, 2**62) == []
    # The true batch is still welcome under its sequence number.
    assert plant.store.deliver(plant.gw.public, [good])[0].status == "archived"
    # The counts survive a restart.
    assert plant.reopen().stats()["refused_batches"] == 3


def test_another_facilitys_gateway_is_refused(plant: Plant) -> None:
    # Facility 2's device and gateway deliver into facility 1's archive.
    theirs = make_batch(plant.other, 9, 0, T0)
    plant.chain.commit(theirs)
    (d,) = plant.store.deliver(plant.gw2.public, [theirs])
    assert (d.status, d.reason) == ("refused", NOT_THIS_FACILITY)
    # Facility 2's gateway with a batch of facility 1's device: not its gateway.
    ours = make_batch(plant.dev, 7, 0, T0)
    plant.chain.commit(ours)
    (d,) = plant.store.deliver(plant.gw2.public, [ours])
    assert (d.status, d.reason) == ("refused", NOT_THE_GATEWAY)
    # And facility 2's own archive refuses facility 1's batch, even from its own gateway.
    other_archive = ArchiveStore(plant.path.parent / "b", 2, plant.chain)
    try:
        (d,) = other_archive.deliver(plant.gw.public, [ours])
        assert (d.status, d.reason) == ("refused", NOT_THIS_FACILITY)
        assert other_archive.deliver(plant.gw2.public, [theirs])[0].status == "archived"
    finally:
        other_archive.close()
    s = plant.store.stats()
    assert s["refused"] == {NOT_THE_GATEWAY: 1, NOT_THIS_FACILITY: 1}
    assert s["archived_batches"] == 0


def test_binder_relays_a_device_without_gateway(plant: Plant) -> None:
    solo = Keypair.from_dev_name("Dev3")
    plant.chain.bind(solo, 7, 1, None, plant.owner)
    b = make_batch(solo, 7, 0, T0)
    plant.chain.commit(b)
    assert plant.store.deliver(plant.gw.public, [b])[0].reason == NOT_THE_GATEWAY
    assert plant.store.deliver(plant.owner.public, [b])[0].status == "archived"


def test_unknown_device_skipped_sequence_and_timeout(plant: Plant) -> None:
    stranger = Keypair.from_dev_name("Nobody")
    b = make_batch(stranger, 7, 0, T0)
    assert plant.store.deliver(plant.gw.public, [b])[0].reason == UNKNOWN_DEVICE
    # seq 0 staged, then the chain accepts seq 1 without ever recording 0.
    b0, b1 = make_batch(plant.dev, 7, 0, T0), make_batch(plant.dev, 7, 1, T0 + 10_000)
    assert plant.store.deliver(plant.gw.public, [b0])[0].status == "staged"
    plant.chain.commit(b1)
    assert plant.store.on_finalized() == {"archived": 0, "refused": 1, "staged": 0}
    assert plant.store.deliver(plant.gw.public, [b0])[0].reason == NOT_ON_CHAIN
    # A batch that is never committed is dropped after the stage timeout.
    b5 = make_batch(plant.dev, 7, 5, T0 + 50_000)
    assert plant.store.deliver(plant.gw.public, [b5])[0].status == "staged"
    plant.now += 3_600_001
    assert plant.store.on_finalized()["refused"] == 1
    assert plant.store.stats()["refused"][NEVER_COMMITTED] == 1


def test_staged_batches_survive_a_restart(plant: Plant) -> None:
    b = make_batch(plant.dev, 7, 0, T0)
    plant.store.deliver(plant.gw.public, [b])
    store = plant.reopen()
    assert store.status(plant.dev.public, 0) == "staged"
    plant.chain.commit(b)
    assert store.on_finalized()["archived"] == 1
    store = plant.reopen()  # archived, not flushed yet: its rows wait in LevelDB
    assert store.pending_rows == 50
    assert store.flush() == 50
    assert count_rows(plant) == 50


@pytest.mark.parametrize("flushed", [False, True])
def test_readings_by_twin_metric_and_range(plant: Plant, flushed: bool) -> None:
    batches = plant.archive(range(4))  # 50 readings, 100 ms apart: 5 s per batch
    if flushed:
        assert plant.store.flush() == 200
    got = plant.store.readings(7, None, T0 + 6_000, T0 + 11_000)
    assert [(a.device, a.seq) for a in got] == [(plant.dev.public, 1), (plant.dev.public, 2)]
    for a in got:
        b = batches[a.seq]
        assert a.readings == b.readings and a.root == batch_root(b.readings)
        assert a.twin == 7 and (a.first_ts, a.last_ts) == (
            b.commitment().first_ts,
            b.commitment().last_ts,
        )
        # What twin_readings will serve: a proof per reading against the chain's root.
        i = 7
        proof = reading_proof(a.readings, i)
        assert verify_reading(a.root, a.readings[i], i, len(a.readings), proof)
    assert len(plant.store.readings(7, None, 0, 2**62)) == 4
    assert len(plant.store.readings(7, None, 0, 2**62, limit=3)) == 3
    assert plant.store.readings(9, None, 0, 2**62) == []
    # Only batches with a reading of that metric in range: the range holds one reading,
    # at T0 + 5000 (batch 1, index 0: temperature).
    assert [a.seq for a in plant.store.readings(7, TEMPERATURE, T0 + 5_000, T0 + 5_000)] == [1]
    assert plant.store.readings(7, PRESSURE, T0 + 5_000, T0 + 5_000) == []


def test_a_refused_copy_does_not_evict_the_staged_batch(plant: Plant) -> None:
    good = make_batch(plant.dev, 7, 0, T0)
    assert plant.store.deliver(plant.gw.public, [good])[0].status == "staged"
    # Another facility's gateway, and the right gateway with a bad copy once it is final.
    assert plant.store.deliver(plant.gw2.public, [good])[0].reason == NOT_THE_GATEWAY
    plant.chain.commit(good)
    rs = list(good.readings)
    rs[0] = (rs[0][0], rs[0][1], -1)
    assert plant.store.deliver(plant.gw.public, [replace(good, readings=rs)])[0].status == "refused"
    assert plant.store.on_finalized()["archived"] == 1


def test_a_batch_missing_a_public_summary_is_kept_and_counted(plant: Plant) -> None:
    from twinchain.protocol.telemetry import PRESSURE, TEMPERATURE, sign_batch

    full = make_batch(plant.dev, 7, 0, T0)
    # Signed summarizing temperature only, though pressure is public too.
    partial = sign_batch(plant.dev, GENESIS, 7, 1, readings(T0 + 10_000, 50), public={TEMPERATURE})
    for b in (full, partial):
        plant.chain.commit(b)
    got = plant.store.deliver(plant.gw.public, [full, partial])
    assert [d.status for d in got] == ["archived", "archived"]  # what the device signed
    assert plant.store.stats()["summaries_missing"] == 1
    # A twin that keeps pressure private: nothing is missing from such a batch.
    plant.chain.public[7] = frozenset({TEMPERATURE})
    again = sign_batch(plant.dev, GENESIS, 7, 2, readings(T0 + 20_000, 50), public={TEMPERATURE})
    plant.chain.commit(again)
    assert plant.store.deliver(plant.gw.public, [again])[0].status == "archived"
    assert plant.store.stats()["summaries_missing"] == 1
    assert PRESSURE not in plant.chain.public[7]
    # The count survives a reopen.
    plant.store.close()
    plant.store = plant.open()
    assert plant.store.stats()["summaries_missing"] == 1


def test_a_twin_share_writes_only_its_twins(plant: Plant) -> None:
    b = make_batch(plant.dev, 7, 0, T0)
    plant.chain.commit(b)
    plant.store.deliver(plant.gw.public, [b])
    mine = twin_share(7, 10)
    assert all(plant.store.flush(((mine + k) % 10, 10)) == 0 for k in range(1, 10))
    assert plant.store.flush((mine, 10)) == 50 and count_rows(plant) == 50


def test_twin_shares_spread_a_facilitys_twins() -> None:
    # Twins of one facility of four are often every 4th id: each share still gets a tenth.
    for step in (1, 4, 10):
        per_share = [0] * 10
        for twin in range(0, 1000 * step, step):
            per_share[twin_share(twin, 10)] += 1
        assert min(per_share) >= 80 and max(per_share) <= 120, (step, per_share)
