"""Authority: the proof-of-authority set (Aura), slot timing and sessions.

The author of slot ``s`` is ``authorities[s mod n]``. The set changes only at a session
boundary (every ``SessionLength`` blocks): ``set_authorities`` (root: sudo on dev chains,
governance later) queues the next set and it takes effect at the start of the next session.
"""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import U32, U64, AccountId, Option, Vec
from twinchain.primitives.keys import is_valid_public, parse_account
from twinchain.runtime.framework import (
    ROOT,
    BlockRejected,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageValue,
    call,
    ensure_root,
)

MAX_AUTHORITIES = 100
AuthorityList = Vec(AccountId, MAX_AUTHORITIES)


class Authority(Pallet):
    name = "Authority"

    Authorities = StorageValue(AuthorityList, [], doc="The current authority set, in order.")
    NextAuthorities = StorageValue(
        Option(AuthorityList), None, doc="Set queued for the next session boundary."
    )
    SlotDuration = StorageValue(U64, 1000, doc="Slot length in milliseconds.")
    SessionLength = StorageValue(U32, 600, doc="Blocks per session.")
    CurrentSession = StorageValue(U32, 0, doc="Index of the current session.")
    CurrentSlot = StorageValue(U64, 0, doc="Slot of the latest block.")

    class Event(PalletEvents):
        AuthoritiesQueued = (("authorities", AuthorityList),)
        NewSession = (("index", U32), ("authorities", AuthorityList))

    class Error(PalletErrors):
        EmptySet = "the authority set cannot be empty"
        TooMany = "too many authorities"
        Duplicate = "an authority appears twice"
        InvalidKey = "not a valid x-only public key"

    @call(0, weight=50_000, origin=ROOT, args=(("authorities", AuthorityList),))
    def set_authorities(self, origin: Origin, authorities: list[bytes]) -> None:
        """Queue a new authority set for the next session boundary."""
        ensure_root(origin)
        if not authorities:
            raise self.Error.EmptySet()
        if len(authorities) > MAX_AUTHORITIES:
            raise self.Error.TooMany()
        if len(set(authorities)) != len(authorities):
            raise self.Error.Duplicate()
        if not all(is_valid_public(a) for a in authorities):
            raise self.Error.InvalidKey()
        self.NextAuthorities.put(authorities)
        self.deposit(self.Event.AuthoritiesQueued(authorities))

    def genesis(self, config: dict[str, Any]) -> None:
        auths = [parse_account(a) for a in config.get("authorities", [])]
        if not auths:
            raise ValueError("genesis needs at least one authority")
        self.Authorities.put(auths)
        self.SlotDuration.put(int(config.get("slot_duration_ms", 1000)))
        self.SessionLength.put(int(config.get("session_length", 600)))

    def on_initialize(self, number: int) -> int:
        slot = self.runtime.block.slot
        if slot <= self.CurrentSlot.get() and number > 0:
            raise BlockRejected(f"slot {slot} does not advance past {self.CurrentSlot.get()}")
        self.CurrentSlot.put(slot)
        if number % self.SessionLength.get() == 0:
            nxt = self.NextAuthorities.get()
            session = self.CurrentSession.get() + 1
            self.CurrentSession.put(session)
            if nxt is not None:
                self.Authorities.put(nxt)
                self.NextAuthorities.kill()
                self.deposit(self.Event.NewSession(session, nxt))
            return 20_000
        return 5_000

    # -- API
    def authorities(self) -> list[bytes]:
        return self.Authorities.get()

    def slot_duration(self) -> int:
        return self.SlotDuration.get()

    def author_for_slot(self, slot: int) -> bytes | None:
        auths = self.Authorities.get()
        return auths[slot % len(auths)] if auths else None

    def constants(self) -> dict[str, Any]:
        return {"MaxAuthorities": MAX_AUTHORITIES}
