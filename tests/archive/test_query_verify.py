"""DuckDB over the archive's files, exports, and verification against the chain's roots
(through a ChainView, and through JSON-RPC ``twin_batchRecord`` answers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from archive.plant import T0, FakeChain, Plant

from twinchain.archive import parquet
from twinchain.archive.query import ArchiveQuery
from twinchain.archive.verify import chain_records, rpc_records, verify_archive
from twinchain.cli import main
from twinchain.protocol.jsonrpc import to_hex
from twinchain.protocol.telemetry import PRESSURE, TEMPERATURE


def test_empty_archive_has_empty_views(tmp_path: Path) -> None:
    with ArchiveQuery(tmp_path) as q:
        assert q.rows("SELECT count(*) FROM readings")[1] == [(0,)]
        assert q.rows("SELECT count(*) FROM metrics")[1] == [(0,)]


def test_sql_over_partitions_and_exports(plant: Plant, tmp_path: Path) -> None:
    plant.archive(range(4))
    plant.store.flush()
    with ArchiveQuery(plant.path) as q:
        cols, rows = q.rows(
            "SELECT twin, day, m.name, count(*), min(value) FROM readings r "
            "JOIN metrics m ON m.id = r.metric GROUP BY ALL ORDER BY m.name"
        )
        assert cols[:3] == ["twin", "day", "name"]
        assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [
            (7, "2024-10-04", "pressure", 100),
            (7, "2024-10-04", "temperature", 100),
        ]
        # The time column and ts_ms are the same instant; values scaled by the registry.
        (row,) = q.rows(
            "SELECT epoch_ms(time) = ts_ms, value / 10 ^ m.scale FROM readings r "
            "JOIN metrics m ON m.id = r.metric WHERE seq = 0 AND idx = 0"
        )[1]
        assert row == (True, 20.0)
        n = q.export(
            "SELECT * FROM readings WHERE metric = 1 ORDER BY seq, idx", tmp_path / "t.csv"
        )
        assert n == 100
        with open(tmp_path / "t.csv") as f:
            lines = list(csv.DictReader(f))
        assert len(lines) == 100 and lines[0]["metric"] == str(TEMPERATURE)
        assert q.export("SELECT * FROM readings", tmp_path / "all.parquet", "parquet") == 200
    assert pq.read_table(tmp_path / "all.parquet").num_rows == 200
    # The same through the command line.
    assert (
        main(
            [
                "archive",
                "query",
                "--dir",
                str(plant.path),
                "SELECT 1",
                "--csv",
                str(tmp_path / "c.csv"),
            ]
        )
        == 0
    )
    assert (tmp_path / "c.csv").read_text().splitlines() == ["1", "1"]
    assert (
        main(
            [
                "archive",
                "query",
                "--dir",
                str(plant.path),
                f"SELECT count(*) FROM readings WHERE metric = {PRESSURE}",
            ]
        )
        == 0
    )
    assert main(["archive", "stats", "--dir", str(plant.path), "--json"]) == 0


def test_verify_against_the_chain(plant: Plant) -> None:
    plant.archive(range(5))
    plant.store.flush()
    plant.archive(range(5, 8))
    plant.store.flush()
    report = verify_archive(plant.path, chain_records(plant.chain))
    assert report.ok and (report.batches, report.verified, report.readings) == (8, 8, 400)
    assert report.readings_per_s > 0
    assert verify_archive(plant.path, chain_records(plant.chain), twin=9).batches == 0


def rewrite(path: Path, change: Any) -> None:
    """Replace a Parquet file's table by ``change(table)`` (an attacker with disk access)."""
    table = pq.read_table(path, schema=parquet.SCHEMA)
    pq.write_table(change(table), path)


def test_verify_finds_tampered_rows(plant: Plant) -> None:
    plant.archive(range(4))
    plant.store.flush()
    (f,) = (plant.path / "readings").rglob("part-*.parquet")

    def bump_one_value(t: pa.Table) -> pa.Table:
        hit = pc.and_(pc.equal(t["seq"], 1), pc.equal(t["idx"], 10))
        return t.set_column(5, "value", pc.if_else(hit, pc.add(t["value"], 1), t["value"]))

    rewrite(f, bump_one_value)
    report = verify_archive(plant.path, chain_records(plant.chain))
    assert (report.batches, report.verified) == (4, 3)
    (m,) = report.mismatches
    assert (m.seq, m.reason) == (1, "the rows do not give the committed Merkle root")

    def drop_a_row(t: pa.Table) -> pa.Table:
        return t.filter(pc.invert(pc.and_(pc.equal(t["seq"], 2), pc.equal(t["idx"], 0))))

    rewrite(f, drop_a_row)
    reasons = {
        m.seq: m.reason for m in verify_archive(plant.path, chain_records(plant.chain)).mismatches
    }
    assert reasons == {
        1: "the rows do not give the committed Merkle root",
        2: "49 rows, the commitment counts 50",
    }

    def swap_rows(t: pa.Table) -> pa.Table:  # same values, another order: another root
        rest = t.filter(pc.not_equal(t["seq"], 3))
        three = t.filter(pc.equal(t["seq"], 3))
        idx = three["idx"].to_pylist()
        idx[4], idx[5] = idx[5], idx[4]
        return pa.concat_tables([rest, three.set_column(2, "idx", pa.array(idx, pa.uint32()))])

    rewrite(f, swap_rows)
    reasons = {
        m.seq: m.reason for m in verify_archive(plant.path, chain_records(plant.chain)).mismatches
    }
    assert reasons[3] == "the rows do not give the committed Merkle root"
    # Batches the chain does not know (asked of another chain).
    other = FakeChain()
    assert all(
        m.reason == "no finalized record on chain"
        for m in verify_archive(plant.path, chain_records(other)).mismatches
    )


class FakeRpc:
    """``twin_batchRecord`` answers as JSON, the way a node serves them."""

    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain
        self.calls: list[list[tuple[str, list[Any]]]] = []

    def call(self, method: str, *params: Any) -> Any:
        assert method == "chain_getFinalizedHead"
        return "0x" + "ab" * 32

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        self.calls.append(calls)
        out = []
        for method, (dev, seq, at) in calls:
            assert method == "twin_batchRecord" and at == "0x" + "ab" * 32
            rec = self.chain.batch_record(bytes.fromhex(dev[2:]), seq)
            out.append(
                None
                if rec is None
                else {
                    "twin": rec.twin, "root": to_hex(rec.root), "count": rec.count,
                    "firstTs": rec.first_ts, "lastTs": rec.last_ts,
                    "gateway": to_hex(rec.gateway), "block": rec.block, "flagged": 0,
                }
            )  # fmt: skip
        return out

    def close(self) -> None:
        pass


def test_verify_over_rpc_answers_and_the_command(plant: Plant, capsys: Any) -> None:
    plant.archive(range(6))
    plant.store.flush()
    rpc = FakeRpc(plant.chain)
    report = verify_archive(plant.path, rpc_records(rpc), lookup_size=4)
    assert report.ok and report.batches == 6
    assert [len(c) for c in rpc.calls] == [4, 2]
    # The command, with the RPC client the top-level CLI hands in replaced by the fake.
    from twinchain import cli

    archive_cmd = next(c for c in cli.COMMANDS if type(c).__name__ == "ArchiveCommands")
    real = archive_cmd.rpc
    archive_cmd.rpc = lambda url, ca_file=None: FakeRpc(plant.chain)  # type: ignore[attr-defined]
    try:
        capsys.readouterr()
        assert main(["archive", "verify", "--dir", str(plant.path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["batches"], out["verified"], out["mismatched"]) == (6, 6, 0)
        del plant.chain.records[(plant.dev.public, 2)]
        assert main(["archive", "verify", "--dir", str(plant.path)]) == 2
    finally:
        archive_cmd.rpc = real  # type: ignore[attr-defined]


def test_ts_spans_a_day_boundary_stay_in_the_first_days_partition(plant: Plant) -> None:
    # A batch from 23:59:58 to 00:00:02: whole in its first reading's day.
    midnight = (T0 // 86_400_000 + 1) * 86_400_000
    plant.archive(range(1), start=midnight - 2_000, n=40)
    plant.store.flush()
    assert sorted(p.name for p in (plant.path / "readings" / "twin=7").iterdir()) == [
        "day=2024-10-04"
    ]
    assert verify_archive(plant.path, chain_records(plant.chain)).ok
