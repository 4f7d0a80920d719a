"""Session: each validator's session key, rotated without downtime (Substrate's pallet-session
``set_keys`` is the model).

A validator has a stable identity, its *account* (the key it was made an authority with, or
its facility's registered validator key), and a *session key*, the key that stands in the
Authority set and signs Aura blocks and finality votes. Until it rotates, the two are the
same key. ``set_keys(key, proof)``, signed by the account, queues a new session key; the
proof is the new key's signature over the account (``ownership_message``), so nobody can
claim a key they do not hold, and a key another validator uses is refused. At the next
session boundary the Authority pallet's boundary code calls ``enact_keys``: each queued key
replaces its validator's entry in the set that session starts with (a new finality set id).
Until then the old key stays in force, so a node that holds both keys keeps authoring and
voting across the switch.
"""

from __future__ import annotations

from twinchain.primitives.codec import AccountId, Bytes
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import is_valid_public, verify
from twinchain.runtime.framework import (
    SIGNED,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageMap,
    call,
    ensure_signed,
)
from twinchain.runtime.weights import session as weights


def ownership_message(genesis_hash: bytes, account: bytes) -> bytes:
    """What the new session key signs for ``set_keys``: this chain and the account it is
    for (the genesis hash keeps a proof from being replayed on another chain)."""
    return hash_for(Domain.SESSION_KEYS, genesis_hash + account)


class Session(Pallet):
    name = "Session"

    Keys = StorageMap(
        AccountId,
        AccountId,
        doc="Active session key of each validator account that rotated (absent: the account "
        "is its own key).",
    )
    QueuedKeys = StorageMap(
        AccountId, AccountId, doc="Session key set by set_keys, active from the next session."
    )
    KeyOwner = StorageMap(
        AccountId,
        AccountId,
        doc="Account of each active or queued session key (not the accounts themselves).",
    )

    class Event(PalletEvents):
        KeysQueued = (("account", AccountId), ("key", AccountId))
        KeysActivated = (("account", AccountId), ("old", AccountId), ("key", AccountId))

    class Error(PalletErrors):
        NotValidator = "the sender is not a validator account"
        InvalidKey = "not a valid x-only public key"
        BadProof = "the proof is not the new key's signature over the account"
        KeyInUse = "another validator uses or has queued this key"
        NothingQueued = "no session key is queued for this account"

    @call(
        0,
        weight=weights.W_SET_KEYS,
        origin=SIGNED,
        args=(("key", AccountId), ("proof", Bytes(64))),
    )
    def set_keys(self, origin: Origin, key: bytes, proof: bytes) -> None:
        """Queue ``key`` as the sender's session key from the next session on.

        Origin: a validator account (its key in the current or queued authority set, or a
        facility's registered validator key). ``proof``: ``key``'s signature over
        ``ownership_message(genesis_hash, sender)``. Setting a key again replaces the queued
        one.
        """
        who = ensure_signed(origin)
        if not self.is_validator(who):
            raise self.Error.NotValidator()
        if not is_valid_public(key):
            raise self.Error.InvalidKey()
        if not verify(key, ownership_message(self.runtime.genesis_hash, who), proof):
            raise self.Error.BadProof()
        if self.owner_of(key) not in (None, who):
            raise self.Error.KeyInUse()
        old = self.QueuedKeys.get(who)
        if old is not None and old not in (key, self.key_of(who), who):
            self.KeyOwner.remove(old)  # the replaced queued key is free again
        self.QueuedKeys.insert(who, key)
        if key != who:
            self.KeyOwner.insert(key, who)
        self.deposit(self.Event.KeysQueued(who, key))

    @call(1, weight=weights.W_PURGE_KEYS, origin=SIGNED)
    def purge_keys(self, origin: Origin) -> None:
        """Drop the sender's queued session key (the active one stays until replaced)."""
        who = ensure_signed(origin)
        old = self.QueuedKeys.get(who)
        if old is None:
            raise self.Error.NothingQueued()
        self.QueuedKeys.remove(who)
        if old not in (self.key_of(who), who):
            self.KeyOwner.remove(old)

    # -- API
    def key_of(self, account: bytes) -> bytes:
        """The session key that stands for ``account`` in the authority set now."""
        key = self.Keys.get(account)
        return account if key is None else key

    def account_of(self, key: bytes) -> bytes:
        """The validator account behind session key ``key`` (a key no one rotated to is
        its own account)."""
        owner = self.KeyOwner.get(key)
        return key if owner is None else owner

    def is_validator(self, account: bytes) -> bool:
        """In the current or queued authority set, or a facility's validator key; never a
        session key another account rotated to (it signs blocks, not for the validator)."""
        if self.KeyOwner.contains(account):
            return False
        auth = self.runtime.authority
        key = self.key_of(account)
        queued = auth.NextAuthorities.get() or []
        return (
            key in auth.Authorities.get()
            or key in queued
            or self.runtime.facility.ValidatorOf.contains(account)
        )

    def owner_of(self, key: bytes) -> bytes | None:
        """Who uses ``key`` as an account or a session key (active or queued); None: no one."""
        owner = self.KeyOwner.get(key)
        if owner is not None:
            return owner
        auth = self.runtime.authority
        if (
            self.Keys.contains(key)
            or key in auth.Authorities.get()
            or key in (auth.NextAuthorities.get() or [])
            or self.runtime.facility.ValidatorOf.contains(key)
        ):
            return key
        return None

    def enact_keys(self, authorities: list[bytes]) -> tuple[list[bytes], int]:
        """At a session boundary: make every queued key active, and return ``authorities``
        (the set the session starts with) with each validator's entry as its active session
        key, and the weight used. Called by the Authority pallet's boundary code. An entry may
        name a validator by its account (a facility validator joining after it rotated): it
        becomes the account's session key too."""
        owners = [self.account_of(a) for a in authorities]  # before keys change hands
        queued = list(self.QueuedKeys.iter())
        for who, key in queued:
            old = self.key_of(who)
            if old not in (key, who):
                self.KeyOwner.remove(old)
            if key == who:
                self.Keys.remove(who)
            else:
                self.Keys.insert(who, key)
            self.QueuedKeys.remove(who)
            self.deposit(self.Event.KeysActivated(who, old, key))
        weight = weights.W_ENACT_KEY * len(queued) + weights.W_READ_KEY * len(authorities)
        return [self.key_of(o) for o in owners], weight
