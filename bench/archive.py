"""The facility archive: archive write rate, a DuckDB query over one twin's day, and the
verification rate.

    python -m bench.archive [--readings 1200000] [--batch 8192] [--quick]

One device of one twin delivers a day's worth of signed batches (``--readings`` in batches
of ``--batch``, 10 ms apart, six metrics) whose commitments are already final (a chain of
dicts behind the archive's ``ChainView``, so only the archive is measured). Printed, from
the same run:

* archive write rate: readings/s of ``deliver`` (each batch checked against its record:
  Merkle root, count, span, summaries; staged durably in LevelDB) and of ``flush`` (LevelDB
  to Parquet, fsynced and renamed), and of both together;
* the query time of a few typical queries over that twin's day (>= 1,000,000 readings):
  per-metric aggregates, a 1-minute downsampling of one metric, one hour of raw readings;
  first run and the median of the following ones;
* the verification rate: readings/s of ``verify_archive`` (every batch's root recomputed
  from its Parquet rows and compared with its record).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from twinchain.archive.chain import DeviceBinding
from twinchain.archive.query import ArchiveQuery
from twinchain.archive.store import ArchiveStore
from twinchain.archive.verify import chain_records, verify_archive
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import (
    DEFAULT_METRICS,
    DEFAULT_PUBLIC,
    ENERGY,
    HUMIDITY,
    POWER,
    PRESSURE,
    TEMPERATURE,
    VIBRATION,
    Batch,
    BatchRecord,
    MetricInfo,
    sign_batch,
)

GENESIS = bytes(32)
TWIN, FACILITY = 1, 1
DAY0 = 20_000 * 86_400_000  # a UTC midnight
METRICS = (TEMPERATURE, VIBRATION, PRESSURE, HUMIDITY, POWER, ENERGY)


class DictChain:
    """Finalized records in a dict: the archive's ``ChainView`` without a node."""

    def __init__(self, device: bytes, gateway: bytes) -> None:
        self.records: dict[tuple[bytes, int], BatchRecord] = {}
        self.binding = {device: DeviceBinding(TWIN, gateway, gateway, True, 0)}

    def batch_record(self, device: bytes, seq: int) -> BatchRecord | None:
        return self.records.get((device, seq))

    def device(self, device: bytes) -> DeviceBinding | None:
        return self.binding.get(device)

    def twin_facility(self, twin: int) -> int | None:
        return FACILITY if twin == TWIN else None

    def metrics(self) -> dict[int, MetricInfo]:
        return {m[0]: MetricInfo(m[1], m[2], m[3], m[4]) for m in DEFAULT_METRICS}


def make_batches(device: Keypair, readings: int, size: int) -> list[Batch]:
    out = []
    for seq, lo in enumerate(range(0, readings, size)):
        rs = [
            (METRICS[i % len(METRICS)], DAY0 + i * 10, 20_000 + (i * 7919) % 5_000)
            for i in range(lo, min(lo + size, readings))
        ]
        out.append(sign_batch(device, GENESIS, TWIN, seq, rs, public=DEFAULT_PUBLIC))
    return out


def timed(fn: object, runs: int) -> tuple[float, float]:
    """(first run, median of the next ``runs``) in seconds."""
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return times[0], statistics.median(times[1:])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--readings", type=int, default=1_200_000, help="readings in the day")
    ap.add_argument("--batch", type=int, default=8192, help="readings per batch")
    ap.add_argument("--runs", type=int, default=5, help="query runs after the first")
    ap.add_argument("--quick", action="store_true", help="100,000 readings")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.readings
    console = Console()
    device, gateway = Keypair.from_dev_name("BenchDevice"), Keypair.from_dev_name("BenchGateway")
    chain = DictChain(device.public, gateway.public)
    console.print(f"signing {n:,} readings in batches of {args.batch:,} ...")
    batches = make_batches(device, n, args.batch)
    for b in batches:
        c = b.commitment()
        chain.records[(b.device, b.seq)] = BatchRecord(
            TWIN, c.root, c.count, c.first_ts, c.last_ts, gateway.public, 1, 0
        )
    table = Table("measure", "value", title=f"facility archive: {n:,} readings of one twin's day")
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        path = Path(tmp)
        store = ArchiveStore(path, FACILITY, chain, clock=lambda: DAY0 + 3_600_000)
        t = time.perf_counter()
        for i in range(0, len(batches), 64):  # as archive_deliver gets them
            out = store.deliver(gateway.public, batches[i : i + 64])
            assert all(d.status == "archived" for d in out), out[:1]
        t_deliver = time.perf_counter() - t
        t = time.perf_counter()
        assert store.flush() == n
        t_flush = time.perf_counter() - t
        size = store.stats()["file_bytes"]
        store.close()
        table.add_row("deliver (check + stage)", f"{n / t_deliver:,.0f} readings/s")
        table.add_row("flush to Parquet", f"{n / t_flush:,.0f} readings/s")
        table.add_row("archive write rate", f"{n / (t_deliver + t_flush):,.0f} readings/s")
        table.add_row("Parquet bytes per reading", f"{size / n:.2f}")
        day = "DATE '2024-10-04'"
        queries = {
            "aggregates per metric": (
                "SELECT metric, count(*), min(value), max(value), avg(value) FROM readings "
                f"WHERE twin = {TWIN} AND day = {day} GROUP BY metric"
            ),
            "1-minute means of one metric": (
                "SELECT time_bucket(INTERVAL 1 minute, time) AS t, avg(value) FROM readings "
                f"WHERE twin = {TWIN} AND day = {day} AND metric = {TEMPERATURE} "
                "GROUP BY t ORDER BY t"
            ),
            "one hour of raw readings": (
                "SELECT ts_ms, metric, value FROM readings "
                f"WHERE twin = {TWIN} AND day = {day} AND ts_ms BETWEEN {DAY0 + 3_600_000} "
                f"AND {DAY0 + 7_200_000} ORDER BY ts_ms"
            ),
        }
        with ArchiveQuery(path) as q:
            (count,) = q.rows(f"SELECT count(*) FROM readings WHERE twin = {TWIN} AND day = {day}")[
                1
            ]
            assert count[0] == n, count
            for name, sql in queries.items():
                first, median = timed(lambda sql=sql: q.rows(sql), args.runs)
                table.add_row(
                    f"query: {name}", f"{median * 1000:,.0f} ms (first {first * 1000:,.0f} ms)"
                )
        report = verify_archive(path, chain_records(chain))
        assert report.ok and report.readings == n, report.to_json()
        table.add_row("verification", f"{report.readings_per_s:,.0f} readings/s")
    console.print(table)


if __name__ == "__main__":
    main()
