"""Sudo: one key that may dispatch any call as root. Only the dev chain spec sets a key;
without one every sudo call fails. ``local`` and consortium chains govern through the Council
pallet instead: a motion its members pass dispatches as root."""

from __future__ import annotations

from typing import Any

from twinchain.primitives.codec import AccountId, Option, Str
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
    SIGNED,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    RuntimeCall,
    StorageValue,
    call,
    ensure_signed,
    nested_call_weight,
)
from twinchain.runtime.weights import sudo as weights


class Sudo(Pallet):
    name = "Sudo"

    Key = StorageValue(Option(AccountId), None, doc="The sudo key, if any.")

    class Event(PalletEvents):
        Sudid = (("ok", Str(8)), ("error", Str(128)))
        KeyChanged = (("old", Option(AccountId)), ("new", AccountId))
        SudoAsDone = (("ok", Str(8)), ("error", Str(128)))

    class Error(PalletErrors):
        RequireSudo = "sender is not the sudo key"

    def _ensure_sudo(self, origin: Origin) -> bytes:
        who = ensure_signed(origin)
        key = self.Key.get()
        if key is None or key != who:
            raise self.Error.RequireSudo()
        return who

    def _run(self, origin: Origin, call_wire: Any) -> tuple[str, str]:
        # The inner call's failure is reported in the event, as Substrate's Sudid does; the
        # outer sudo call succeeds so the key's fee and nonce are accounted normally.
        err = self.runtime.dispatch_in_layer(origin, call_wire)
        return ("ok", "") if err is None else ("err", f"{err.module}.{err.error}")

    @call(
        0,
        weight=nested_call_weight(weights.SUDO_OVERHEAD, 0),
        origin=SIGNED,
        args=(("call", RuntimeCall),),
    )
    def sudo(self, origin: Origin, call: Any) -> None:
        """Dispatch ``call`` with root origin."""
        self._ensure_sudo(origin)
        self.deposit(self.Event.Sudid(*self._run(Origin.root(), call)))

    @call(1, weight=weights.W_SET_KEY, origin=SIGNED, args=(("new", AccountId),))
    def set_key(self, origin: Origin, new: bytes) -> None:
        """Hand the sudo key to another account."""
        old = self._ensure_sudo(origin)
        self.Key.put(new)
        self.deposit(self.Event.KeyChanged(old, new))

    @call(
        2,
        weight=nested_call_weight(weights.SUDO_OVERHEAD, 1),
        origin=SIGNED,
        args=(("who", AccountId), ("call", RuntimeCall)),
    )
    def sudo_as(self, origin: Origin, who: bytes, call: Any) -> None:
        """Dispatch ``call`` as if signed by ``who``."""
        self._ensure_sudo(origin)
        self.deposit(self.Event.SudoAsDone(*self._run(Origin.signed(who), call)))

    def genesis(self, config: dict[str, Any]) -> None:
        key = config.get("key")
        if key:
            self.Key.put(parse_account(key))
