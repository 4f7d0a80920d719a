"""Facility reports computed from known readings: per-metric statistics, derived KPIs,
per-reading alerts, and documents that are canonical (same bytes whatever the batch order)."""

from __future__ import annotations

from twinchain.archive.reports import (
    AlertReport,
    BatchReadings,
    Report,
    Rule,
    compute,
    decode_document,
    report_digest,
)
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    DOWNTIME,
    ENERGY,
    GOOD_UNITS,
    READING,
    RUN_TIME,
    TEMPERATURE,
    UNITS_PRODUCED,
)

GENESIS = bytes(range(32))
T0 = 1_700_000_000_000
DEV_A, DEV_B = Keypair.from_dev_name("DevA").public, Keypair.from_dev_name("DevB").public


def batch(device: bytes, seq: int, rows: list[tuple[int, int, int]]) -> BatchReadings:
    return BatchReadings(device, seq, bytes([seq]) * 32, b"".join(READING.pack(*r) for r in rows))


def production(device: bytes, seq: int, t: int) -> BatchReadings:
    """One minute of a machine: 50 s running, 10 s down, 12 units of which 1 bad, 300 Wh."""
    return batch(
        device,
        seq,
        [
            (RUN_TIME, t, 50),
            (DOWNTIME, t, 10),
            (UNITS_PRODUCED, t, 12),
            (GOOD_UNITS, t, 11),
            (BAD_UNITS, t, 1),
            (ENERGY, t, 300),
        ],
    )


def test_statistics_and_kpis_are_exact_integers() -> None:
    batches = [production(DEV_A, 0, T0 + 1_000), production(DEV_A, 1, T0 + 61_000)]
    temps = [(TEMPERATURE, T0 + 1_000 + i * 1_000, 20_000 + i * 7) for i in range(10)]
    batches.append(batch(DEV_B, 0, temps))
    # Ideal rate 900 units/h: 100 s of run time could make 25 units.
    report, alerts = compute(GENESIS, 0, 3, T0, T0 + 119_999, batches, [], [], 900_000)
    assert alerts is None and report.alerts == []
    t = report.stats(TEMPERATURE)
    assert t is not None
    values = [v for _, _, v in temps]
    assert (t.count, t.min, t.max, t.sum) == (10, min(values), max(values), sum(values))
    assert t.mean == sum(values) // 10
    assert report.stats(GOOD_UNITS).sum == 22  # type: ignore[union-attr]
    k = report.kpis
    assert k.total_units == 24
    assert k.availability_ppm == 100 * 1_000_000 // 120
    assert k.performance_ppm == 24 * 1000 * 1_000_000 // (900_000 * 100 // 3600)
    assert k.quality_ppm == 22 * 1_000_000 // 24
    assert k.scrap_ppm == 2 * 1_000_000 // 24
    assert k.oee_ppm == k.availability_ppm * k.performance_ppm * k.quality_ppm // 10**12
    assert k.energy_per_good_mwh == 600 * 1000 // 22
    # Covered batches in (device, seq) order.
    assert [(b.device, b.seq, b.count) for b in report.batches] == sorted(
        [(DEV_A, 0, 6), (DEV_A, 1, 6), (DEV_B, 0, 10)]
    )
    # Canonical: the order batches come in changes nothing; the bytes decode back.
    again, _ = compute(GENESIS, 0, 3, T0, T0 + 119_999, batches[::-1], [], [], 900_000)
    assert again.to_bytes() == report.to_bytes()
    assert decode_document(report.to_bytes()) == report


def test_kpis_without_inputs_are_none() -> None:
    temps = [(TEMPERATURE, T0 + i, 1) for i in range(3)]
    report, _ = compute(GENESIS, 0, 3, T0, T0 + 59_999, [batch(DEV_A, 0, temps)], [], [], 0)
    k = report.kpis
    assert (k.total_units, k.availability_ppm, k.oee_ppm, k.energy_per_good_mwh) == (
        None,
        None,
        None,
        None,
    )


def test_per_reading_alerts() -> None:
    # DevA reads temperature every 1000 ms except one reading 200 ms after the previous;
    # one step of +9000 (max_step 5000); one reading above the envelope's max.
    rows = [
        (TEMPERATURE, T0, 20_000),
        (TEMPERATURE, T0 + 1_000, 20_100),
        (TEMPERATURE, T0 + 1_200, 20_200),  # too fast (200 < 500)
        (TEMPERATURE, T0 + 2_200, 29_200),  # jump of 9000
        (TEMPERATURE, T0 + 3_200, 95_000),  # jump and out of range
    ]
    # DevB's readings 100 ms apart from DevA's are another device: no TooFast.
    other = [(TEMPERATURE, T0 + 100, 20_000), (TEMPERATURE, T0 + 1_100, 20_000)]
    rule = Rule(TEMPERATURE, 500, -20_000, 90_000, 5_000)
    batches = [batch(DEV_A, 4, rows[:3]), batch(DEV_A, 5, rows[3:]), batch(DEV_B, 0, other)]
    report, doc = compute(GENESIS, 0, 3, T0, T0 + 59_999, batches, [], [rule], 0)
    assert isinstance(doc, AlertReport)
    assert report.alerts == [("TooFast", 1), ("ImplausibleJump", 2), ("OutOfRange", 1)]
    assert doc.report == report_digest(report) and doc.total == 4
    got = [(a.kind, a.seq, a.index, a.ts, a.prev_ts, a.limit) for a in doc.alerts]
    assert got == [
        ("TooFast", 4, 2, T0 + 1_200, T0 + 1_000, 500),
        ("ImplausibleJump", 5, 0, T0 + 2_200, T0 + 1_200, 5_000),
        ("ImplausibleJump", 5, 1, T0 + 3_200, T0 + 2_200, 5_000),
        ("OutOfRange", 5, 1, T0 + 3_200, None, 90_000),
    ]
    assert decode_document(doc.to_bytes()) == doc
    assert isinstance(decode_document(report.to_bytes()), Report)


def test_missing_batches_are_named() -> None:
    temps = [(TEMPERATURE, T0, 1)]
    report, _ = compute(
        GENESIS, 0, 3, T0, T0 + 59_999, [batch(DEV_A, 0, temps)], [(DEV_A, 1)], [], 0
    )
    assert report.missing == [(DEV_A, 1)]
