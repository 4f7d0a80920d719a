"""Telemetry's window closes: queued by ``submit`` (:func:`.ingest.queue_closes`), run at
most ``MAX_CLOSES_PER_BLOCK`` a block, oldest first, by ``on_initialize``; each hands the
closed window's aggregates to the window-close listeners the runtime wires in
(:class:`.config.Config`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinchain.runtime.pallets.telemetry.types import MAX_CLOSES_PER_BLOCK
from twinchain.runtime.weights import telemetry as weights

if TYPE_CHECKING:
    from twinchain.runtime.pallets.telemetry.pallet import Telemetry


def run_queued_closes(tel: Telemetry) -> int:
    """Run the hooks of at most ``MAX_CLOSES_PER_BLOCK`` queued window closes, oldest
    first (a twin's windows close in order); returns the weight used. Each close runs in its
    own layer: one that fails (a hook's bug, an encoding overflow) is reverted and reported
    with ``WindowCloseFailed``; raised from here it would fail the block, every block."""
    head, tail = tel.CloseQueueBounds.get()
    if head == tail:
        return weights.W_CLOSE_INIT
    end = min(tail, head + MAX_CLOSES_PER_BLOCK)
    for pos in range(head, end):
        twin, start, window_ms = tel.CloseQueue.get(pos)
        tel.CloseQueue.remove(pos)
        if not tel.in_layer(lambda t=twin, s=start, w=window_ms: close_window(tel, t, s, w)):
            tel.deposit(tel.Event.WindowCloseFailed(twin, start))
    tel.CloseQueueBounds.put((end, tail))
    return weights.W_CLOSE_INIT + weights.W_WINDOW_CLOSE * (end - head)


def queued_closes(tel: Telemetry) -> int:
    """Closed windows whose hooks have not run yet."""
    head, tail = tel.CloseQueueBounds.get()
    return int(tail - head)


def close_window(tel: Telemetry, twin: int, start: int, window_ms: int) -> None:
    """Hand a closed window's aggregates of the metrics the twin makes public now to the
    window-close listeners, in order (a metric made private since gives them nothing)."""
    public = tel.public_metrics(twin)
    aggs = {m: a for m, a in tel.window_aggregates(twin, start).items() if a.count and m in public}
    if not aggs:
        return
    tel.deposit(tel.Event.WindowClosed(twin, start))
    for listener in tel.config.window_listeners:
        listener.on_window_closed(twin, start, window_ms, aggs)
