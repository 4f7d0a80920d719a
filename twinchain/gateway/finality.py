"""The finality watch: how far finality is behind the best block.

The *head follower* tracks the node's best block and the settler reports each finalized
one. When finality falls more than ``finality_lag_alert`` blocks behind, the gateway says so
in its log (then every :data:`LAG_LOG_EVERY_S`, and once when it recovers) and status, and
every extrinsic just waits; once finality resumes the settler settles them and the rest are
looked at again at once (back-off reset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from twinchain.client import Subscription
from twinchain.gateway.state import GatewayState

log = logging.getLogger("twinchain.gateway")

LAG_LOG_EVERY_S = 30.0  # while finality is stalled, say so this often


def blocks(n: int) -> str:
    return f"{n} block" if n == 1 else f"{n} blocks"


class FinalityWatch:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.finalized_number = 0
        self.best_number = 0
        self.stalled_since: float | None = None  # finality lag above finality_lag_alert
        self.stall_ended = -1e9
        self.lag_logged = -1e9
        self.on_best: Callable[[Any], None] | None = None  # each new best head (JSON)

    async def follow_best(self, heads: Subscription[Any]) -> None:
        """The head follower task: track the node's best block."""
        while True:
            head = await heads.latest()
            if head is None:
                return  # connection closed
            self.best_number = int(head["number"], 16)
            self.check()
            if self.on_best is not None:
                self.on_best(head)

    def finalized(self, number: int) -> None:
        """Block ``number`` is final (as the settler sees it)."""
        self.finalized_number = number
        self.best_number = max(self.best_number, number)

    def lag(self) -> int:
        """How many blocks finality is behind the best block, as the node reports them."""
        return max(0, self.best_number - self.finalized_number)

    def check(self) -> None:
        """Say when finality falls ``finality_lag_alert`` blocks behind the best block, every
        ``LAG_LOG_EVERY_S`` while it stays behind, and once when it catches up."""
        s = self.state
        lag = self.lag()
        now = time.monotonic()
        limit = s.b.finality_lag_alert
        waiting = s.flying_readings()
        if self.stalled_since is None:
            if lag > limit and s.connected:
                self.stalled_since = self.lag_logged = now
                log.warning(
                    "finality is %s behind the best block (best #%d, finalized #%d): "
                    "%d readings in %d extrinsics wait for it; resubmissions back off",
                    blocks(lag),
                    self.best_number,
                    self.finalized_number,
                    waiting,
                    len(s.inflight),
                )
        elif lag <= limit // 2:  # hysteresis: a lag around the limit logs once, not per block
            log.info(
                "finality resumed: %s behind the best block (finalized #%d) after "
                "%.0f s; settling what waited",
                blocks(lag),
                self.finalized_number,
                now - self.stalled_since,
            )
            self.stalled_since = None
            self.stall_ended = now
            # What finality did not settle is looked at again now, back-off reset.
            for f in s.inflight.values():
                f.tries, f.due_at = 0, now
        elif now - self.lag_logged >= LAG_LOG_EVERY_S:
            self.lag_logged = now
            log.warning(
                "finality is %s behind the best block (best #%d, finalized #%d) for "
                "%.0f s: %d readings in %d extrinsics and %d more in the spool wait for it",
                blocks(lag),
                self.best_number,
                self.finalized_number,
                now - self.stalled_since,
                waiting,
                len(s.inflight),
                s.backlog() - waiting,
            )

    def note(self) -> str:
        """Finality in one plain sentence, for the status and the devnet's table."""
        note = f"finality is {blocks(self.lag())} behind the best block"
        if self.stalled_since is not None:
            s = time.monotonic() - self.stalled_since
            note += f" (stalled for {s:.0f} s; extrinsics wait for it, resubmissions back off)"
        return note


__all__ = ["LAG_LOG_EVERY_S", "FinalityWatch"]
