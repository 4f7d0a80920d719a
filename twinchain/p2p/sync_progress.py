"""Progress of a long catch-up: a rich progress bar on a terminal, and a log line every few
seconds (on the sync log target, as the rest of sync's lines)."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("twinchain.p2p.sync")


class SyncProgress:
    """A rich progress bar for long catch-ups, plus a log line every few seconds."""

    LOG_EVERY = 5.0

    def __init__(self, enabled: bool | None) -> None:
        console = Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        self._console = console
        self._progress: Progress | None = None
        self._task: object = None
        self._start = 0
        self._t0 = 0.0
        self._last_log = 0.0

    def start(self, current: int, target: int) -> None:
        self._start, self._t0, self._last_log = current, time.monotonic(), time.monotonic()
        log.info("⚙️  syncing from #%d to #%d", current, target)
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold blue]⚙️  Syncing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks · {task.fields[speed]:.0f} blocks/s"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("sync", total=target, completed=current, speed=0.0)

    def update(self, current: int, target: int) -> None:
        now = time.monotonic()
        speed = (current - self._start) / max(now - self._t0, 1e-6)
        if self._progress is not None:
            self._progress.update(self._task, completed=current, total=target, speed=speed)  # type: ignore[arg-type]
        if now - self._last_log >= self.LOG_EVERY:
            self._last_log = now
            log.info("⚙️  syncing #%d / #%d (%.0f blocks/s)", current, target, speed)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def stop(self, current: int) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elapsed = time.monotonic() - self._t0
        log.info(
            "sync reached #%d: %d blocks in %.1f s (%.0f blocks/s)",
            current,
            current - self._start,
            elapsed,
            (current - self._start) / max(elapsed, 1e-6),
        )
