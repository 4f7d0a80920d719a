"""Compaction of finished days and the retention period."""

from __future__ import annotations

from pathlib import Path

from archive.plant import DAY_MS, T0, Plant, make_batch

from twinchain.archive.query import ArchiveQuery
from twinchain.archive.store import EXPIRED


def days_on_disk(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "readings").glob("twin=*/day=*"))


def test_retention_deletes_old_days_and_refuses_expired_batches(plant: Plant) -> None:
    store = plant.reopen(retention_days=3)
    for day in range(10):  # two batches a day for ten days, one flush each
        plant.now = T0 + day * DAY_MS + 60_000
        start = T0 + day * DAY_MS - 2 * day * 5000  # batch seq starts at start + seq * 5 s
        for seq in (2 * day, 2 * day + 1):
            plant.archive(range(seq, seq + 1), start=start)
            store.flush()
    assert len(days_on_disk(plant.path)) == 10
    plant.now = T0 + 10 * DAY_MS
    out = store.maintain()
    # Days 0..6 are older than 3 days before day 10: gone; 7..9 kept and compacted (today
    # is day 10, an hour past midnight: day 9 is finished).
    assert out == {"compacted": 3, "expired": 7}
    assert days_on_disk(plant.path) == ["day=2024-10-11", "day=2024-10-12", "day=2024-10-13"]
    parts = {p.parent.name: 0 for p in (plant.path / "readings").rglob("*.parquet")}
    for p in (plant.path / "readings").rglob("*.parquet"):
        parts[p.parent.name] += 1
    assert parts == {"day=2024-10-11": 1, "day=2024-10-12": 1, "day=2024-10-13": 1}
    with ArchiveQuery(plant.path) as q:
        assert q.rows("SELECT count(*) FROM readings")[1] == [(6 * 50,)]
    s = store.stats()
    assert s["expired_batches"] == 14 and s["archived_batches"] == 20
    assert [a.seq for a in store.readings(7, None, 0, 2**62)] == list(range(14, 20))
    # A late delivery of an expired day is refused, not archived again.
    (d,) = store.deliver(plant.gw.public, [make_batch(plant.dev, 7, 0, T0)])
    assert (d.status, d.reason) == ("refused", EXPIRED)
    # Nothing left to do: a second pass changes nothing.
    assert store.maintain() == {"compacted": 0, "expired": 0}


def test_retention_also_drops_unflushed_rows_of_expired_days(plant: Plant) -> None:
    plant.archive(range(2))
    plant.now = T0 + 5 * DAY_MS
    store = plant.reopen(retention_days=1)
    assert store.pending_rows == 100
    assert store.maintain()["expired"] == 1
    assert store.pending_rows == 0
    assert store.flush() == 0
    assert store.stats()["files"] == 0
