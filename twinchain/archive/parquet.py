"""The archive's files: batches of readings as Parquet tables, written so that a crash never
leaves a half file where a reader (DuckDB, Spark, Trino) looks.

Layout under the archive's folder (hive partitions, as every Parquet engine reads them)::

    readings/twin=<id>/day=<YYYY-MM-DD>/part-<n>.parquet
    metrics.parquet

A batch lives whole in the partition of the UTC day of its first reading, so retention and
verification always see whole batches. Columns: ``device`` (hex string), ``seq`` u64, ``idx``
u32 (the reading's position in its batch: its Merkle leaf index), ``metric`` u16, ``ts_ms``
i64, ``value`` i64 (fixed point in the metric's scale) and ``time`` (timestamp[ms, UTC], the
same instant as ``ts_ms`` for engines that want a time type); ``twin`` and ``day`` come from
the path.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twinchain.protocol.telemetry import READING, MetricInfo

DAY_MS = 86_400_000
READINGS_DIR = "readings"
METRICS_FILE = "metrics.parquet"
TMP_SUFFIX = ".tmp"

#: One packed reading (its Merkle leaf) as numpy sees it: the wire's big-endian fields.
LEAF = np.dtype([("metric", ">u2"), ("ts", ">u8"), ("value", ">i8")])
assert LEAF.itemsize == READING.size

SCHEMA = pa.schema(
    [
        ("device", pa.string()),
        ("seq", pa.uint64()),
        ("idx", pa.uint32()),
        ("metric", pa.uint16()),
        ("ts_ms", pa.int64()),
        ("value", pa.int64()),
        ("time", pa.timestamp("ms", tz="UTC")),
    ]
)
METRICS_SCHEMA = pa.schema(
    [("id", pa.uint16()), ("name", pa.string()), ("unit", pa.string()), ("scale", pa.uint8())]
)


def day_of(ts_ms: int) -> int:
    """Days since 1970-01-01 (UTC) of a timestamp in ms."""
    return ts_ms // DAY_MS


def day_name(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (the ``day=`` partition value)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def partition(twin: int, day: int) -> str:
    """The partition folder of a twin's day, relative to the archive's folder."""
    return f"{READINGS_DIR}/twin={twin}/day={day_name(day)}"


# ---------------------------------------------------------------------------- writing


def batches_table(batches: Sequence[tuple[bytes, int, bytes]]) -> pa.Table:
    """One table of whole batches, each ``(device, seq, packed readings)``, rows in the given
    order and each batch's readings in leaf order. Built with numpy from the packed bytes: no
    Python object per reading."""
    counts = np.fromiter((len(raw) // READING.size for _, _, raw in batches), np.int64)
    leaves = np.frombuffer(b"".join(raw for _, _, raw in batches), dtype=LEAF)
    starts = np.cumsum(counts) - counts
    devices: dict[bytes, int] = {}
    codes = np.fromiter((devices.setdefault(d, len(devices)) for d, _, _ in batches), np.int32)
    device = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(codes, counts)), pa.array([d.hex() for d in devices])
    )
    ts = leaves["ts"].astype(np.int64)
    return pa.Table.from_arrays(
        [
            device.cast(pa.string()),
            pa.array(np.repeat(np.fromiter((s for _, s, _ in batches), np.uint64), counts)),
            pa.array((np.arange(len(leaves)) - np.repeat(starts, counts)).astype(np.uint32)),
            pa.array(leaves["metric"].astype(np.uint16)),
            pa.array(ts),
            pa.array(leaves["value"].astype(np.int64)),
            pa.array(ts, type=pa.timestamp("ms", tz="UTC")),
        ],
        schema=SCHEMA,
    )


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_path(final: Path) -> Path:
    """Where ``final`` is written before its rename: a dot file that no ``*.parquet`` glob of
    a reader matches."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def write_tmp(table: pa.Table, final: Path) -> Path:
    """Write ``table`` to ``final``'s temporary name, flushed to disk; returns that name."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    return tmp


def publish(tmp: Path, final: Path) -> None:
    """Atomically give the written file its final name (readers see all of it or nothing)."""
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_metrics(root: Path, metrics: dict[int, MetricInfo]) -> None:
    """``metrics.parquet``: the registry (id, name, unit, scale), replaced atomically."""
    ids = sorted(metrics)
    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.uint16()),
            pa.array([metrics[i].name for i in ids], pa.string()),
            pa.array([metrics[i].unit for i in ids], pa.string()),
            pa.array([metrics[i].scale for i in ids], pa.uint8()),
        ],
        schema=METRICS_SCHEMA,
    )
    final = root / METRICS_FILE
    publish(write_tmp(table, final), final)


# ---------------------------------------------------------------------------- reading


def packed_rows(metric: np.ndarray, ts: np.ndarray, value: np.ndarray) -> bytes:
    """Rows back to their packed readings (the Merkle leaves, back to back)."""
    leaves = np.empty(len(metric), dtype=LEAF)
    leaves["metric"], leaves["ts"], leaves["value"] = metric, ts, value
    return leaves.tobytes()


def read_batches(path: Path, wanted: Iterable[tuple[bytes, int]]) -> dict[tuple[bytes, int], bytes]:
    """The packed readings of the ``wanted`` (device, seq) batches found in one file, each in
    leaf order. Row groups whose seq statistics miss every wanted batch are not read."""
    wanted = set(wanted)
    if not wanted:
        return {}
    seqs = sorted({s for _, s in wanted})
    table = pq.read_table(
        path,
        columns=["device", "seq", "idx", "metric", "ts_ms", "value"],
        filters=[("seq", "in", seqs)],
    )
    devices = {d.hex() for d, _ in wanted}
    table = table.filter(pc.is_in(table["device"], pa.array(sorted(devices))))
    table = table.sort_by([("device", "ascending"), ("seq", "ascending"), ("idx", "ascending")])
    out: dict[tuple[bytes, int], bytes] = {}
    if not table.num_rows:
        return out
    encoded = pc.dictionary_encode(table["device"]).combine_chunks()
    code = encoded.indices.to_numpy()
    names = encoded.dictionary.to_pylist()
    seq = table["seq"].to_numpy()
    metric, ts, value = (table[c].to_numpy() for c in ("metric", "ts_ms", "value"))
    # Batch boundaries: where (device, seq) changes.
    change = np.flatnonzero((seq[1:] != seq[:-1]) | (code[1:] != code[:-1])) + 1
    for lo, hi in zip(np.r_[0, change], np.r_[change, len(seq)], strict=True):
        key = (bytes.fromhex(names[code[lo]]), int(seq[lo]))
        if key in wanted:
            out[key] = packed_rows(metric[lo:hi], ts[lo:hi], value[lo:hi])
    return out


__all__ = [
    "DAY_MS",
    "LEAF",
    "METRICS_FILE",
    "READINGS_DIR",
    "SCHEMA",
    "batches_table",
    "day_name",
    "day_of",
    "fsync_dir",
    "packed_rows",
    "partition",
    "publish",
    "read_batches",
    "tmp_path",
    "write_metrics",
    "write_tmp",
]
