"""System: accounts and nonces, block number and parent hash, recent block hashes, events, and
the runtime's version: the one in effect, a scheduled upgrade, each pallet's storage version
(see ``twinchain.runtime.migrations``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from twinchain.primitives.codec import H256, U16, U32, U64, U128, AccountId, Bytes, Record, Str
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


@dataclass
class ChainInfoRecord(Record):
    """The chain's name and the block that set it (0: at genesis or before spec 4)."""

    name: str
    set_at: int
    FIELDS: ClassVar = {"name": Str(64), "set_at": U64}


@dataclass
class UpgradeSchedule(Record):
    spec_version: int
    at_block: int
    FIELDS: ClassVar = {"spec_version": U32, "at_block": U64}


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
    ChainName = StorageValue(
        Str(64), "", doc="Human-readable chain name (until spec 4: then System.ChainInfo)."
    )
    ChainInfo = StorageValue(
        ChainInfoRecord.wire_type(), doc="The chain's name and the block that set it (spec 4 on)."
    )
    SpecVersion = StorageValue(
        U32,
        doc="The runtime spec version the last block ran with (FRAME's LastRuntimeUpgrade); "
        "absent on chains from before upgrades existed: 3.",
    )
    ScheduledUpgrade = StorageValue(
        UpgradeSchedule.wire_type(),
        doc="The next spec version and the first block that runs it (one at a time).",
    )
    StorageVersions = StorageMap(
        Str(64), U16, doc="Each pallet's storage layout version, bumped by its migrations."
    )

    class Event(PalletEvents):
        ExtrinsicSuccess = (("weight", U64), ("fee", U128))
        ExtrinsicFailed = (("module", Str(64)), ("error", Str(64)), ("weight", U64), ("fee", U128))
        NewAccount = (("account", AccountId),)
        Remarked = (("sender", AccountId), ("hash", H256))
        UpgradeScheduled = (("spec_version", U32), ("at_block", U64))
        UpgradeCancelled = (("spec_version", U32), ("at_block", U64))
        RuntimeUpgraded = (("from_version", U32), ("to_version", U32), ("weight", U64))
        MigrationApplied = (("pallet", Str(64)), ("storage_version", U16), ("weight", U64))

    class Error(PalletErrors):
        BadOrigin = "the call's origin is not allowed"
        CallFiltered = "the call is not allowed in this context"
        InvalidCall = "the call arguments do not decode"
        SpecVersionNotNewer = "an upgrade must raise the spec version"
        UpgradeBlockPassed = "an upgrade must take effect at a later block than this one"
        UpgradeAlreadyScheduled = "an upgrade is scheduled already: cancel it first"
        NoUpgradeScheduled = "no upgrade is scheduled"

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
        self._put_chain_name(name, self.runtime.block.number)

    @call(
        2,
        weight=weights.W_SCHEDULE_UPGRADE,
        origin=ROOT,
        args=(("spec_version", U32), ("at_block", U64)),
    )
    def schedule_upgrade(self, origin: Origin, spec_version: int, at_block: int) -> None:
        """Switch the runtime to ``spec_version`` at block ``at_block`` (root: a council
        motion). Nodes whose software lacks that version stop at that block."""
        ensure_root(origin)
        active = self.spec_version()
        if spec_version <= active:
            raise self.Error.SpecVersionNotNewer(f"{spec_version} <= {active} in effect")
        number = self.runtime.block.number
        if at_block <= number:
            raise self.Error.UpgradeBlockPassed(f"block {at_block} <= this block {number}")
        pending = self.ScheduledUpgrade.get()
        if pending is not None:
            raise self.Error.UpgradeAlreadyScheduled(
                f"spec {pending.spec_version} at block {pending.at_block}"
            )
        self.ScheduledUpgrade.put(UpgradeSchedule(spec_version, at_block))
        self.deposit(self.Event.UpgradeScheduled(spec_version, at_block))

    @call(3, weight=weights.W_CANCEL_UPGRADE, origin=ROOT)
    def cancel_upgrade(self, origin: Origin) -> None:
        """Drop the scheduled upgrade (root: a council motion)."""
        ensure_root(origin)
        pending = self.ScheduledUpgrade.get()
        if pending is None:
            raise self.Error.NoUpgradeScheduled()
        self.ScheduledUpgrade.kill()
        self.deposit(self.Event.UpgradeCancelled(pending.spec_version, pending.at_block))

    # -- API used by the executive and other pallets
    def genesis(self, config: dict[str, Any]) -> None:
        from twinchain.runtime import migrations  # it imports this module

        spec = int(config.get("spec_version", migrations.NEWEST_SPEC_VERSION))
        if not migrations.knows(spec):
            raise ValueError(f"genesis spec_version {spec}: this software has none such")
        # A new chain starts with the layouts of its version: no migration up to it runs.
        self.runtime.spec_version = spec
        self.SpecVersion.put(spec)
        for pallet, version in migrations.genesis_storage_versions(spec).items():
            self.set_storage_version(pallet, version)
        self._put_chain_name(str(config.get("name", "")), 0)

    def _put_chain_name(self, name: str, number: int) -> None:
        if self.runtime.spec_version >= 4:
            self.ChainInfo.put(ChainInfoRecord(name, number))
        else:
            self.ChainName.put(name)

    def chain_name(self) -> str:
        """The chain's name, in the layout of the version in effect."""
        if self.runtime.spec_version >= 4:
            info = self.ChainInfo.get()
            return "" if info is None else str(info.name)
        return str(self.ChainName.get())

    def spec_version(self) -> int:
        """The version in effect (the last block's; the one before an upgrade block's)."""
        from twinchain.runtime.migrations import LEGACY_SPEC_VERSION

        v = self.SpecVersion.get()
        return LEGACY_SPEC_VERSION if v is None else int(v)

    def upgrade_due(self, number: int) -> UpgradeSchedule | None:
        """The scheduled upgrade if block ``number`` must run it (the first block at or after
        its height: block numbers are consecutive, so exactly that block)."""
        pending = self.ScheduledUpgrade.get()
        return pending if pending is not None and number >= pending.at_block else None

    def enact_upgrade(self, spec_version: int) -> None:
        self.SpecVersion.put(spec_version)
        self.ScheduledUpgrade.kill()

    def storage_version(self, pallet: str) -> int:
        return int(self.StorageVersions.get(pallet) or 0)

    def set_storage_version(self, pallet: str, version: int) -> None:
        self.StorageVersions.insert(pallet, version)

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
