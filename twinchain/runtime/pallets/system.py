"""System: accounts and nonces, block number and parent hash, recent block hashes, events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.primitives.codec import H256, U32, U64, U128, AccountId, Bytes, Record, Str
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.runtime.framework import (
    ROOT,
    Origin,
    Pallet,
    PalletErrors,
    PalletEvents,
    StorageMap,
    StorageValue,
    call,
    ensure_root,
    ensure_signed,
)
from twinchain.runtime.weights import system as weights

# Keep this many recent block hashes: mortal transactions must be born inside this window.
BLOCK_HASH_COUNT = 2400
# Weight is in nanoseconds of reference execution time.
MAX_BLOCK_WEIGHT = 2_000_000_000

PHASE_INIT, PHASE_APPLY, PHASE_FINAL = 0, 1, 2


@dataclass
class AccountInfo(Record):
    nonce: int
    providers: int
    FIELDS: ClassVar = {"nonce": U64, "providers": U32}


class System(Pallet):
    name = "System"

    Account = StorageMap(
        AccountId, AccountInfo.wire_type(), doc="Nonce and reference counts of each account."
    )
    Number = StorageValue(U64, 0, doc="The current block number.")
    ParentHash = StorageValue(H256, b"\x00" * 32, doc="Hash of the previous block.")
    BlockHash = StorageMap(U64, H256, doc="Hashes of the last BLOCK_HASH_COUNT blocks and genesis.")
    ExtrinsicCount = StorageValue(U32, 0, doc="Extrinsics applied in the current block.")
    BlockWeight = StorageValue(U64, 0, doc="Weight consumed by the current block so far.")
    Events = StorageValue(
        Bytes(64 << 20),
        b"",
        doc="Events of the current block: an encoded list of "
        "[phase, extrinsic index, pallet index, event index, [args]].",
    )
    EventCount = StorageValue(U32, 0, doc="Number of events of the current block.")
    ChainName = StorageValue(Str(64), "", doc="Human-readable chain name from the chain spec.")

    class Event(PalletEvents):
        ExtrinsicSuccess = (("weight", U64), ("fee", U128))
        ExtrinsicFailed = (("module", Str(64)), ("error", Str(64)), ("weight", U64), ("fee", U128))
        NewAccount = (("account", AccountId),)
        Remarked = (("sender", AccountId), ("hash", H256))

    class Error(PalletErrors):
        BadOrigin = "the call's origin is not allowed"
        CallFiltered = "the call is not allowed in this context"
        InvalidCall = "the call arguments do not decode"

    # -- calls
    @call(
        0,
        weight=lambda rt, remark: weights.W_REMARK + weights.W_REMARK_PER_BYTE * len(remark),
        origin="signed",
        args=(("remark", Bytes(4096)),),
    )
    def remark(self, origin: Origin, remark: bytes) -> None:
        """Put a remark on chain (its hash goes into an event)."""
        who = ensure_signed(origin)
        self.deposit(self.Event.Remarked(who, hash_for(Domain.EXTRINSIC, remark)))

    @call(1, weight=weights.W_SET_CHAIN_NAME, origin=ROOT, args=(("name", Str(64)),))
    def set_chain_name(self, origin: Origin, name: str) -> None:
        """Rename the chain (root only)."""
        ensure_root(origin)
        self.ChainName.put(name)

    # -- API used by the executive and other pallets
    def genesis(self, config: dict[str, Any]) -> None:
        self.ChainName.put(str(config.get("name", "")))

    def account(self, who: bytes) -> AccountInfo:
        return self.Account.get(who) or AccountInfo(0, 0)

    def nonce(self, who: bytes) -> int:
        info = self.Account.get(who)
        return 0 if info is None else info.nonce

    def inc_nonce(self, who: bytes) -> None:
        info = self.account(who)
        info.nonce += 1
        self.Account.insert(who, info)

    def inc_providers(self, who: bytes) -> None:
        info = self.Account.get(who)
        if info is None:
            self.Account.insert(who, AccountInfo(0, 1))
            self.deposit(self.Event.NewAccount(who))
        else:
            info.providers += 1
            self.Account.insert(who, info)

    def dec_providers(self, who: bytes) -> None:
        # The record (and so the nonce) is kept even at zero providers: a reaped account
        # that comes back must not accept its old transactions again.
        info = self.Account.get(who)
        if info is not None and info.providers > 0:
            info.providers -= 1
            self.Account.insert(who, info)

    def initialize(self, number: int, parent_hash: bytes) -> None:
        self.Number.put(number)
        self.ParentHash.put(parent_hash)
        if number > 0:
            self.BlockHash.insert(number - 1, parent_hash)
        old = number - 1 - BLOCK_HASH_COUNT
        if old > 0:  # block 0 (genesis) is kept forever: immortal transactions are born there
            self.BlockHash.remove(old)
        self.ExtrinsicCount.put(0)
        self.BlockWeight.put(0)
        self.Events.kill()
        self.EventCount.kill()

    def constants(self) -> dict[str, Any]:
        return {
            "BlockHashCount": BLOCK_HASH_COUNT,
            "MaxBlockWeight": MAX_BLOCK_WEIGHT,
            "ExtrinsicBaseWeight": weights.EXTRINSIC_BASE_WEIGHT,
        }
