"""Timestamp: the block's time, set once per block by an inherent and checked against the slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twinchain.primitives.codec import U64, Bool
from twinchain.runtime.framework import (
    NONE,
    BlockRejected,
    Origin,
    Pallet,
    PalletErrors,
    StorageValue,
    call,
    ensure_none,
)
from twinchain.runtime.weights import timestamp as weights

if TYPE_CHECKING:
    from twinchain.runtime.traits import SlotClock


@dataclass(frozen=True)
class Config:
    """What Timestamp uses of its siblings (its FRAME ``Config``), wired by the runtime."""

    slots: SlotClock  # the slot length the time must follow (Authority)


class Timestamp(Pallet):
    name = "Timestamp"
    config: Config

    Now = StorageValue(U64, 0, doc="Unix time in milliseconds of the current block.")
    DidUpdate = StorageValue(Bool, False, doc="Whether the inherent ran in this block.")

    class Error(PalletErrors):
        AlreadySet = "the timestamp was already set in this block"
        TooEarly = "timestamp is not later than the previous one by the minimum period"
        WrongSlot = "timestamp does not fall into the block's slot"

    @call(0, weight=weights.W_SET, origin=NONE, args=(("now", U64),), inherent=True)
    def set(self, origin: Origin, now: int) -> None:
        """Set the block time (inherent, first extrinsic of every block)."""
        ensure_none(origin)
        if self.DidUpdate.get():
            raise self.Error.AlreadySet()
        prev = self.Now.get()
        duration = self.config.slots.slot_duration()
        if prev and now < prev + duration // 2:
            raise self.Error.TooEarly()
        if now // duration != self.runtime.block.slot:
            raise self.Error.WrongSlot(f"{now} ms is not in slot {self.runtime.block.slot}")
        self.Now.put(now)
        self.DidUpdate.put(True)

    def on_finalize(self, number: int) -> None:
        if not self.DidUpdate.get():
            raise BlockRejected("timestamp inherent missing")
        self.DidUpdate.kill()

    def genesis(self, config: dict[str, Any]) -> None:
        self.Now.put(int(config.get("now", 0)))

    def inherent_call_wire(self, now: int) -> list[Any]:
        return [self.index, self.calls_by_name["set"].index, [now]]
