"""The archive hosted in a node: :class:`ArchiveService` (a ``NodeService``) and the
``twinchain node`` flags that ask for it (:class:`ArchiveOptions`).

The node never imports the archive. ``twinchain.cli`` adds :class:`ArchiveOptions` to
``NODE_SERVICES`` before the RPC options; the RPC service must use the SAME store (it serves
``archive_deliver`` and ``twin_readings`` from it), so it asks the options for it:
``archive_options.store_for(args)`` creates the store once and returns it to every caller.
With ``--archive-report-key`` the node also runs :class:`~twinchain.archive.reports.ReportService`:
each closed window's KPIs and alerts, computed here, anchored on chain by digest.

Nothing here blocks the node's event loop: checking staged batches against the finalized
chain, writing Parquet, compaction and retention all run in worker threads
(``trio.to_thread``).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from twinchain.node.services import NodeService
from twinchain.primitives.errors import CliError
from twinchain.primitives.keystore import KeystoreError, load_keypair

if TYPE_CHECKING:
    from twinchain.archive.store import ArchiveStore
    from twinchain.node.service import Node

log = logging.getLogger("twinchain.archive")

FLUSH_S = 10.0  # readings reach Parquet (and DuckDB's view) this long after archiving
# The flush period is split into this many ticks, each flushing one share of the twins: a
# validator flushing all its twins at once (277,000 readings every 10 s at 100,000 readings/s
# on the devnet) stalled its node long enough for gateways' extrinsics to miss their slot.
FLUSH_SHARES = 10
MAINTAIN_S = 300.0  # compaction and retention: days change slowly
# A report waits this long past its delay for a window's batches to be archived.
GRACE_MS = 600_000


@dataclass
class ArchiveService:
    """Runs ``store`` beside a node: settles staged batches on each finalized block, flushes
    to Parquet every ``flush_s`` seconds (sooner when ``store.flush_due()``), compacts and
    applies retention every ``maintain_s``. Closes the store when the node stops."""

    store: ArchiveStore
    flush_s: float = FLUSH_S
    maintain_s: float = MAINTAIN_S
    name: str = "archive"
    _finalized: trio.Event = field(default_factory=trio.Event, init=False, repr=False)
    _flush_now: trio.Event = field(default_factory=trio.Event, init=False, repr=False)

    async def run(self, node: Node, *, task_status: trio.TaskStatus[int]) -> None:
        from twinchain.archive.chain import BlockchainView

        self.store.bind(BlockchainView(node.chain))
        listeners = node.chain.finality_listeners
        listeners.append(self._on_finalized)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._settle_loop)
                nursery.start_soon(self._flush_loop)
                log.info("archive of facility %d in %s", self.store.facility, self.store.path)
                self._finalized.set()  # settle what was staged before a restart
                task_status.started(0)  # listens on no port
        finally:
            listeners.remove(self._on_finalized)
            # Waits for a worker thread still writing: LevelDB must not close under it.
            self.store.close()

    def _on_finalized(self, _header: object) -> None:
        self._finalized.set()  # many blocks finalized while settling: one more pass

    async def _settle_loop(self) -> None:
        while True:
            await self._finalized.wait()
            self._finalized = trio.Event()
            try:
                await trio.to_thread.run_sync(self.store.on_finalized)
            except Exception:  # a state pruned while read, a bug: the next block retries
                log.exception("archive: settling staged batches failed")
            if self.store.flush_due():
                self._flush_now.set()

    async def _flush_loop(self) -> None:
        next_maintain = trio.current_time()
        tick = 0
        while True:
            with trio.move_on_after(self.flush_s / FLUSH_SHARES):
                await self._flush_now.wait()
            # Rows past the store's limit flush all shares; a tick flushes its own share.
            share = None if self._flush_now.is_set() else (tick % FLUSH_SHARES, FLUSH_SHARES)
            tick += 1
            self._flush_now = trio.Event()
            try:
                if not await trio.to_thread.run_sync(self.store.flush, share):
                    # Refusals and staging change the counters too: keep stats.json current.
                    await trio.to_thread.run_sync(self.store.write_stats)
                if trio.current_time() >= next_maintain:
                    next_maintain = trio.current_time() + self.maintain_s
                    await trio.to_thread.run_sync(self.store.maintain)
            except OSError:  # disk full, a file in the way: the rows stay in LevelDB
                log.exception("archive: writing Parquet failed; retrying later")


class ArchiveOptions:
    """The archive flags of ``twinchain node``; creates the one store both the
    :class:`ArchiveService` and the RPC service use."""

    def __init__(self) -> None:
        self._tmp: list[tempfile.TemporaryDirectory[str]] = []

    def add_arguments(self, n: argparse.ArgumentParser) -> None:
        n.add_argument(
            "--archive-facility",
            type=int,
            metavar="N",
            help="keep the raw readings of facility N's twins (its gateways deliver here)",
        )
        n.add_argument(
            "--archive-dir", type=Path, help="the archive's folder (default: BASE_PATH/archive)"
        )
        n.add_argument(
            "--archive-retention-days",
            type=_positive_int,
            metavar="DAYS",
            help="delete day partitions older than this (default: keep all)",
        )
        n.add_argument(
            "--archive-flush-s",
            type=float,
            default=FLUSH_S,
            metavar="S",
            help=f"write archived readings to Parquet every S seconds (default {FLUSH_S:g})",
        )
        n.add_argument(
            "--archive-report-key",
            metavar="KEY",
            help="report each closed window's KPIs and per-reading alerts of the facility's "
            "twins off chain and anchor their digests (Telemetry.anchor) signed by KEY: the "
            "facility operator's or the twins' owner's (//Name, hex seed, key file or "
            "keystore folder); without it, no reports",
        )
        n.add_argument(
            "--archive-report-delay-ms",
            type=_non_negative_int,
            metavar="MS",
            help="report a window this long after its end on the finalized chain "
            "(default: one telemetry window)",
        )
        n.add_argument(
            "--archive-report-windows",
            type=_window_count,
            default=1,
            metavar="N",
            help="one report (and anchor) per N telemetry windows of a twin (default 1)",
        )
        n.add_argument(
            "--archive-report-grace-ms",
            type=_non_negative_int,
            default=GRACE_MS,
            metavar="MS",
            help="then wait at most this long for its batches to be archived; the report "
            f"names those it misses (default {GRACE_MS})",
        )

    def store_for(self, args: argparse.Namespace) -> ArchiveStore | None:
        """The archive store the flags ask for (created on the first call), None without
        ``--archive-facility``."""
        if getattr(args, "archive_facility", None) is None:
            return None
        # Kept on the parsed flags: one store per node, however many ask.
        store: ArchiveStore | None = getattr(args, "_archive_store", None)
        if store is None:
            from twinchain.archive.store import ArchiveStore  # pyarrow: only when asked for

            path = args.archive_dir
            if path is None and args.base_path is not None:
                path = Path(args.base_path) / "archive"
            if path is None:  # a --dev node without --base-path: as temporary as its chain
                tmp = tempfile.TemporaryDirectory(prefix="twinchain-archive-")
                self._tmp.append(tmp)
                path = Path(tmp.name)
            store = ArchiveStore(
                path, args.archive_facility, retention_days=args.archive_retention_days
            )
            args._archive_store = store
        return store

    def services(self, args: argparse.Namespace) -> list[NodeService]:
        store = self.store_for(args)
        if store is None:
            if getattr(args, "archive_report_key", None) is not None:
                raise CliError("--archive-report-key needs --archive-facility")
            return []
        out: list[NodeService] = [ArchiveService(store, flush_s=args.archive_flush_s)]
        if args.archive_report_key is not None:
            from twinchain.archive.reports import ReportService

            try:
                key = load_keypair(args.archive_report_key)
            except KeystoreError as exc:
                raise CliError(f"--archive-report-key: {exc}") from None
            out.append(
                ReportService(
                    store,
                    key,
                    delay_ms=args.archive_report_delay_ms,
                    grace_ms=args.archive_report_grace_ms,
                    windows=args.archive_report_windows,
                )
            )
        return out


def _non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


def _window_count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of windows, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("a report covers at least 1 window")
    return n


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("keep at least 1 day")
    return n


__all__ = ["ArchiveOptions", "ArchiveService"]
