"""The gateway's durable spool: SQLite in WAL mode with ``synchronous=FULL``.

A reading moves through three tables, each move one transaction:

* ``pending``: accepted from a source (the source is acknowledged only after this commit),
  with the wall-clock time it was received (for the reading-to-finalized latency);
* ``batches``: cut into a device batch, given the device's next sequence number and signed by
  the device key: ``body`` is the whole signed batch (its readings, for the facility
  archive), ``commit`` its commitment (what the chain gets); ``xt`` is the nonce of the
  extrinsic that carries the commitment, NULL until packed; ``final`` the finalized block
  that holds it, NULL until then; ``archive`` NULL until the archive refused it
  (``refused``, with its ``reason``: kept for the operator);
* ``xts``: the signed extrinsic itself (exact bytes, immortal era), so that after a restart of
  the gateway or of the node the *same* bytes are submitted again: the chain's nonce and the
  per-device sequence numbers make a repeat harmless.

An extrinsic is deleted once its nonce is used in a finalized block; its batches are then
marked final, and deleted only once the facility archive answered "archived" for them
(delivery is idempotent: after any crash, what is still here is delivered again). The
newest accepted timestamp per device and metric survives a restart, so that a redelivered
or out-of-order reading is refused then too: for readings still in ``pending`` it is read
from them, for readings that left it the ``newest`` table has it, one row per device
(written in the transaction that moves them out: writing it with every ingest cost a row
per device and metric each commit). Spools of earlier versions keep theirs in ``last_ts``,
a row per device and metric; it is still read.

Durability: ``synchronous=FULL`` (the WAL is fsynced at commit) for what is acknowledged or
sent out: ingested readings (a source's acknowledgement) and signed extrinsics (submitted
right after). Moving readings into batches and settling final ones commit with
``synchronous=NORMAL``: after a power cut such a transaction may be lost, whole and in
order (the readings are then still pending, or the batches still unsettled, and are simply
cut or settled again), and the next FULL commit's fsync of the WAL makes it durable first
of all; every extrinsic is stored by a FULL commit, so none ever leaves with a batch that
could be forgotten. (An fsync here costs about half a millisecond of CPU.)

The class is synchronous and not thread-safe: the gateway calls it from one worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

ReadingT = tuple[int, int, int]
Segments = list[tuple[int, int]]  # (received at ms, readings) runs, in reading order

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS counters(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seqs(device BLOB PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS newest(device BLOB PRIMARY KEY, ts BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS last_ts(
    device BLOB NOT NULL, metric INTEGER NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY(device, metric)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending(
    id INTEGER PRIMARY KEY AUTOINCREMENT, device BLOB NOT NULL, n INTEGER NOT NULL,
    segs BLOB NOT NULL, readings BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batches(
    id INTEGER PRIMARY KEY AUTOINCREMENT, device BLOB NOT NULL, seq INTEGER NOT NULL,
    n INTEGER NOT NULL, segs BLOB NOT NULL, body BLOB NOT NULL, xt INTEGER,
    "commit" BLOB, final INTEGER, final_ms INTEGER, archive TEXT, reason TEXT,
    UNIQUE(device, seq));
CREATE INDEX IF NOT EXISTS batches_xt ON batches(xt);
CREATE TABLE IF NOT EXISTS xts(
    nonce INTEGER PRIMARY KEY, hash BLOB NOT NULL, raw BLOB NOT NULL,
    created_ms INTEGER NOT NULL, batches INTEGER NOT NULL, readings INTEGER NOT NULL);
"""


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)


class SpoolError(RuntimeError):
    """The spool cannot be used by this gateway version."""


@dataclass
class PendingRow:
    id: int
    device: bytes
    segs: Segments
    readings: list[ReadingT]


@dataclass
class BatchRow:
    id: int
    device: bytes
    seq: int
    n: int
    segs: Segments
    body: bytes  # the Batch's wire form, msgpack-encoded (readings included: the archive's)
    xt: int | None
    commit: bytes = b""  # its Commitment's wire form, msgpack-encoded (the chain's)
    final: int | None = None  # the finalized block that holds the commitment
    final_ms: int = 0  # when the gateway saw it final
    archive: str | None = None  # "refused" (kept for the operator), else None
    reason: str = ""


# Every column of a BatchRow, in its order.
_BATCH_COLS = 'id, device, seq, n, segs, body, xt, "commit", final, final_ms, archive, reason'


@dataclass
class XtRow:
    nonce: int
    hash: bytes
    raw: bytes
    created_ms: int
    batches: int
    readings: int


class Spool:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self._full = True
        self.db.executescript(SCHEMA)
        self._migrate()
        self._packer = msgpack.Packer(use_bin_type=True)  # this thread's; reused per row
        # Device -> the ``newest`` row's map, as stored (it is rewritten whole per cut).
        self._newest: dict[bytes, dict[int, int]] = {
            bytes(d): {m: ts for m, ts in unpack(b)}
            for d, b in self.db.execute("SELECT device, ts FROM newest")
        }

    def _migrate(self) -> None:
        """A spool of the gateway before commitments: its batches table gains the columns
        (it must hold no batch: those carried readings to the chain, which no chain of this
        version takes)."""
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(batches)")}
        if "commit" in cols:
            return
        if self.db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]:
            raise SpoolError(
                f"{self.path} holds batches of an earlier gateway version (readings on chain): "
                "let that version finish them, or use a new spool file"
            )
        for col in ('"commit" BLOB', "final INTEGER", "final_ms INTEGER", "archive TEXT",
                    "reason TEXT"):  # fmt: skip
            self.db.execute(f"ALTER TABLE batches ADD COLUMN {col}")

    def _sync(self, full: bool) -> None:
        """``synchronous`` for the next transactions (see the module's Durability)."""
        if full != self._full:
            self.db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._full = full

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ meta and counters
    def get_meta(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._sync(True)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    def counters(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT key, value FROM counters").fetchall())

    def _bump(self, key: str, by: int) -> None:
        self.db.execute(
            "INSERT INTO counters VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (key, by),
        )

    # ------------------------------------------------------------------ ingest
    def ingest(
        self,
        groups: Sequence[tuple[bytes, Sequence[ReadingT], int]],
        last_ts: dict[tuple[bytes, int], int] | None = None,
        meta: dict[str, bytes] | None = None,
    ) -> list[int]:
        """Store accepted readings ``(device, readings, received_ms)`` (and, optionally,
        newest timestamps) in ONE transaction; returns the pending row ids (in ``groups``
        order)."""
        ids: list[int] = []
        self._sync(True)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if groups:
                p = self._packer.pack
                cur.executemany(
                    "INSERT INTO pending(device, n, segs, readings) VALUES(?, ?, ?, ?)",
                    [(d, len(rs), p([[rcv, len(rs)]]), p(rs)) for d, rs, rcv in groups],
                )
                # One writer, inside one transaction: AUTOINCREMENT gave consecutive ids.
                last = int(cur.execute("SELECT last_insert_rowid()").fetchone()[0])
                ids = list(range(last - len(groups) + 1, last + 1))
            if last_ts:
                cur.executemany(
                    "INSERT OR REPLACE INTO last_ts VALUES(?, ?, ?)",
                    [(d, m, ts) for (d, m), ts in last_ts.items()],
                )
            for k, v in (meta or {}).items():
                cur.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (k, v))
            self._bump("readings_spooled", sum(len(g[1]) for g in groups))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return ids

    def load_last_ts(self) -> dict[tuple[bytes, int], int]:
        """The newest accepted timestamp per (device, metric): the table's, or a newer one
        of a reading still pending."""
        rows = self.db.execute("SELECT device, metric, ts FROM last_ts").fetchall()
        out = {(bytes(d), m): ts for d, m, ts in rows}
        newer = [
            (dev, m, ts) for dev, by_metric in self._newest.items() for m, ts in by_metric.items()
        ]
        for d, rd in self.db.execute("SELECT device, readings FROM pending"):
            dev = bytes(d)
            newer += [(dev, m, ts) for m, ts, _ in unpack(rd)]
        for dev, m, ts in newer:
            if ts > out.get((dev, m), ts - 1):
                out[(dev, m)] = ts
        return out

    def load_pending(self) -> list[PendingRow]:
        rows = self.db.execute("SELECT id, device, segs, readings FROM pending ORDER BY id")
        return [
            PendingRow(i, bytes(d), [tuple(s) for s in unpack(sg)], [tuple(r) for r in unpack(rd)])  # type: ignore[misc]
            for i, d, sg, rd in rows
        ]

    def seqs(self) -> dict[bytes, int]:
        return {bytes(d): s for d, s in self.db.execute("SELECT device, next_seq FROM seqs")}

    # ------------------------------------------------------------------ batching
    def store_batches(
        self,
        device: bytes,
        batches: Sequence[tuple[int, int, Segments, bytes, bytes]],
        consumed_upto: int,
        remainder: tuple[Segments, list[ReadingT]] | None,
        next_seq: int,
        newest: dict[int, int] | None = None,
    ) -> int | None:
        """Signed batches ``(seq, n, segs, body, commit)`` of ``device`` replace its pending
        rows with id <= ``consumed_upto``; what was not batched goes back as one pending row
        (its id is returned: it takes the id of the last consumed row). ``newest``: the
        newest timestamp per metric of the readings batched. One transaction."""
        ids = [
            i
            for (i,) in self.db.execute(
                "SELECT id FROM pending WHERE device=? AND id<=? ORDER BY id",
                (device, consumed_upto),
            )
        ]
        cut = (device, batches, ids or [consumed_upto], remainder, next_seq, newest or {})
        return self.store_cuts([cut])[0]

    def store_cuts(
        self,
        cuts: Sequence[
            tuple[
                bytes,
                Sequence[tuple[int, int, Segments, bytes, bytes]],
                Sequence[int],
                tuple[Segments, list[ReadingT]] | None,
                int,
                dict[int, int],
            ]
        ],
    ) -> list[int | None]:
        """:meth:`store_batches` for several devices in ONE transaction; each names the ids
        of the pending rows it consumes, in order (found by primary key: a device's rows
        are spread over the whole table)."""
        cur = self.db.cursor()
        self._sync(False)
        cur.execute("BEGIN IMMEDIATE")
        rids: list[int | None] = []
        maps: dict[bytes, dict[int, int]] = {}
        try:
            for device, batches, consumed, remainder, next_seq, newest in cuts:
                cur.executemany(
                    'INSERT INTO batches(device, seq, n, segs, body, "commit") '
                    "VALUES(?, ?, ?, ?, ?, ?)",
                    [(device, seq, n, pack(segs), b, c) for seq, n, segs, b, c in batches],
                )
                cur.executemany("DELETE FROM pending WHERE id=?", [(i,) for i in consumed])
                consumed_upto = consumed[-1]
                rid = None
                if remainder is not None and remainder[1]:
                    # Under the last consumed row's id: it stays ahead of rows that came later.
                    segs, readings = remainder
                    cur.execute(
                        "INSERT INTO pending(id, device, n, segs, readings) VALUES(?, ?, ?, ?, ?)",
                        (consumed_upto, device, len(readings), pack(segs), pack(readings)),
                    )
                    rid = consumed_upto
                rids.append(rid)
                cur.execute("INSERT OR REPLACE INTO seqs VALUES(?, ?)", (device, next_seq))
                if newest:  # what was batched is newer than what was stored before
                    maps[device] = {**maps.get(device, self._newest.get(device, {})), **newest}
            cur.executemany(
                "INSERT OR REPLACE INTO newest VALUES(?, ?)",
                [(d, pack(sorted(m.items()))) for d, m in maps.items()],
            )
            self._bump("batches_signed", sum(len(c[1]) for c in cuts))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._newest.update(maps)
        return rids

    def set_seq(self, device: bytes, next_seq: int) -> None:
        self._sync(True)
        self.db.execute("INSERT OR REPLACE INTO seqs VALUES(?, ?)", (device, next_seq))

    def unpacked(self, limit: int) -> list[BatchRow]:
        """Batches not in any extrinsic yet and not final, oldest first."""
        rows = self.db.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE xt IS NULL AND final IS NULL "
            "ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_batch(r) for r in rows]

    def batch_totals(self) -> tuple[int, int, int, int]:
        """(pending readings, batched-unpacked readings, packed readings, batches packed)."""
        p = self.db.execute("SELECT COALESCE(SUM(n), 0) FROM pending").fetchone()[0]
        u = self.db.execute(
            "SELECT COALESCE(SUM(n), 0) FROM batches WHERE xt IS NULL AND final IS NULL"
        ).fetchone()[0]
        s, c = self.db.execute(
            "SELECT COALESCE(SUM(n), 0), COUNT(*) FROM batches WHERE xt IS NOT NULL"
        ).fetchone()
        return int(p), int(u), int(s), int(c)

    def resign(self, items: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Batches signed again under their sequence numbers: ``(id, body, commit)``."""
        self._sync(True)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                'UPDATE batches SET body=?, "commit"=? WHERE id=?', [(b, c, i) for i, b, c in items]
            )
            self._bump("batches_resigned", len(items))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ archive delivery
    def to_archive(self) -> list[BatchRow]:
        """Final batches the archive has not taken (nor refused) yet, oldest first."""
        rows = self.db.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE final IS NOT NULL AND archive IS NULL "
            "ORDER BY id"
        )
        return [_batch(r) for r in rows]

    def archived(self, ids: Sequence[int]) -> None:
        """The archive holds these batches: they leave the spool. One transaction."""
        self._sync(False)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            n = 0
            for chunk in _chunks(ids, 500):
                q = ",".join("?" * len(chunk))
                n += cur.execute(
                    f"SELECT COALESCE(SUM(n), 0) FROM batches WHERE id IN ({q})", chunk
                ).fetchone()[0]
                cur.execute(f"DELETE FROM batches WHERE id IN ({q})", chunk)
            self._bump("readings_archived", int(n))
            self._bump("batches_archived", len(ids))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def refuse(self, items: Sequence[tuple[int, str]]) -> None:
        """The archive refused these batches ``(id, reason)``: kept, not delivered again."""
        self._sync(True)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                "UPDATE batches SET archive='refused', reason=? WHERE id=?",
                [(r, i) for i, r in items],
            )
            self._bump("batches_refused", len(items))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def refused(self) -> list[BatchRow]:
        """The batches the archive refused, oldest first."""
        rows = self.db.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE archive='refused' ORDER BY id"
        )
        return [_batch(r) for r in rows]

    def refused_count(self) -> int:
        return int(
            self.db.execute("SELECT COUNT(*) FROM batches WHERE archive='refused'").fetchone()[0]
        )

    def retry_refused(self) -> int:
        """Deliver the refused batches again (the operator fixed the cause); how many."""
        self._sync(True)
        return self.db.execute(
            "UPDATE batches SET archive=NULL, reason=NULL WHERE archive='refused'"
        ).rowcount

    # ------------------------------------------------------------------ extrinsics
    def store_xt(self, xt: XtRow, batch_ids: Iterable[int]) -> None:
        self.store_xts([(xt, list(batch_ids))])

    def store_xts(self, items: Sequence[tuple[XtRow, Sequence[int]]]) -> None:
        """Signed extrinsics and the batches each carries, in one transaction."""
        self._sync(True)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for xt, batch_ids in items:
                cur.execute(
                    "INSERT INTO xts VALUES(?, ?, ?, ?, ?, ?)",
                    (xt.nonce, xt.hash, xt.raw, xt.created_ms, xt.batches, xt.readings),
                )
                cur.executemany(
                    "UPDATE batches SET xt=? WHERE id=?", [(xt.nonce, i) for i in batch_ids]
                )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def replace_xts(self, rows: Sequence[XtRow]) -> None:
        """The bytes of unsettled extrinsics signed again (same nonce, same batches, for a
        new runtime spec version), in one durable transaction; one settled meanwhile stays
        deleted."""
        self._sync(True)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                "UPDATE xts SET hash=?, raw=? WHERE nonce=?",
                [(x.hash, x.raw, x.nonce) for x in rows],
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def xts(self) -> list[XtRow]:
        rows = self.db.execute(
            "SELECT nonce, hash, raw, created_ms, batches, readings FROM xts ORDER BY nonce"
        )
        return [XtRow(n, bytes(h), bytes(r), c, b, k) for n, h, r, c, b, k in rows]

    def xt_batches(self, nonce: int) -> list[BatchRow]:
        rows = self.db.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE xt=? ORDER BY id", (nonce,)
        )
        return [_batch(r) for r in rows]

    def max_nonce(self) -> int | None:
        row = self.db.execute("SELECT MAX(nonce) FROM xts").fetchone()
        return None if row[0] is None else int(row[0])

    def settle(
        self,
        confirmed: Sequence[int],
        requeue: Sequence[int],
        lost: Sequence[int],
        xt_nonces: Sequence[int],
        last: tuple[bytes, int, int] | None,
        final: int = 0,
        final_ms: int = 0,
    ) -> None:
        """After finalized block ``final``: mark confirmed batches final (they stay until the
        archive has them), delete lost ones, give requeued ones back to the packer, delete
        the settled extrinsics. One transaction."""
        self._sync(False)
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                "UPDATE batches SET final=?, final_ms=?, xt=NULL WHERE id=?",
                [(final, final_ms, i) for i in confirmed],
            )
            done = list(lost)
            if confirmed:
                n = 0
                for chunk in _chunks(confirmed, 500):
                    q = ",".join("?" * len(chunk))
                    n += cur.execute(
                        f"SELECT COALESCE(SUM(n), 0) FROM batches WHERE id IN ({q})", chunk
                    ).fetchone()[0]
                self._bump("readings_finalized", int(n))
                self._bump("batches_finalized", len(confirmed))
            if lost:
                self._bump("batches_lost", len(lost))
            for chunk in _chunks(done, 500):
                q = ",".join("?" * len(chunk))
                cur.execute(f"DELETE FROM batches WHERE id IN ({q})", chunk)
            cur.executemany("UPDATE batches SET xt=NULL WHERE id=?", [(i,) for i in requeue])
            cur.executemany("DELETE FROM xts WHERE nonce=?", [(n,) for n in xt_nonces])
            if last is not None:
                cur.execute(
                    "INSERT OR REPLACE INTO meta VALUES('last_finalized', ?)", (pack(list(last)),)
                )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise


def _chunks(items: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _batch(r: tuple[Any, ...]) -> BatchRow:
    i, d, seq, n, segs, body, xt, commit, final, final_ms, archive, reason = r
    return BatchRow(
        i, bytes(d), seq, n, [tuple(s) for s in unpack(segs)], bytes(body), xt,  # type: ignore[misc]
        bytes(commit or b""), final, final_ms or 0, archive, reason or "",
    )  # fmt: skip
