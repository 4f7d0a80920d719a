"""Balances: the native token. Transfers, existential deposit, reserves, transaction fees.

Fees: ``base + per_byte * length + weight / WEIGHT_PER_FEE_UNIT + tip`` are withdrawn before a
call runs (and kept if it fails); ``FEE_AUTHOR_PERCENT`` of each fee goes to the block author
and the rest is burned (taken out of total issuance).

An account whose free + reserved balance drops below the existential deposit is reaped: its
dust is burned and its balance record removed (its nonce stays in System, so old
transactions cannot be replayed when it is funded again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twinchain.primitives.codec import U128, AccountId, Record
from twinchain.primitives.keys import parse_account
from twinchain.runtime.framework import (
    ROOT,
    SIGNED,
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
from twinchain.runtime.weights import balances as weights

if TYPE_CHECKING:
    from twinchain.runtime.traits import AccountProviders

EXISTENTIAL_DEPOSIT = 1_000_000_000  # 0.001 TWIN at 12 decimals
TOKEN_DECIMALS = 12
TOKEN_SYMBOL = "TWIN"

BASE_FEE = 1_000_000
FEE_PER_BYTE = 1_000
WEIGHT_PER_FEE_UNIT = 1  # one fee unit per nanosecond of weight
FEE_AUTHOR_PERCENT = 80


@dataclass
class AccountData(Record):
    free: int
    reserved: int
    FIELDS: ClassVar = {"free": U128, "reserved": U128}


@dataclass(frozen=True)
class Config:
    """What Balances uses of its siblings (its FRAME ``Config``), wired by the runtime."""

    providers: AccountProviders  # accounts come and go with their balances (System)


class Balances(Pallet):
    name = "Balances"
    config: Config

    Account = StorageMap(AccountId, AccountData.wire_type(), doc="Free and reserved balances.")
    TotalIssuance = StorageValue(U128, 0, doc="Total tokens in existence.")

    class Event(PalletEvents):
        Endowed = (("account", AccountId), ("free", U128))
        Transfer = (("from", AccountId), ("to", AccountId), ("amount", U128))
        BalanceSet = (("who", AccountId), ("free", U128))
        Reserved = (("who", AccountId), ("amount", U128))
        Unreserved = (("who", AccountId), ("amount", U128))
        ReserveRepatriated = (("from", AccountId), ("to", AccountId), ("amount", U128))
        DustLost = (("account", AccountId), ("amount", U128))
        FeePaid = (("who", AccountId), ("fee", U128), ("tip", U128))

    class Error(PalletErrors):
        InsufficientBalance = "balance too low to send value"
        ExistentialDeposit = "value too low to create the account"
        KeepAlive = "transfer would kill the account"
        InsufficientReserve = "reserved balance too low"
        ZeroAmount = "amount must be positive"
        Overflow = "arithmetic overflow"

    # -- calls
    @call(0, weight=weights.W_TRANSFER, origin=SIGNED, args=(("dest", AccountId), ("value", U128)))
    def transfer(self, origin: Origin, dest: bytes, value: int) -> None:
        """Transfer free balance; the sender may be reaped if left below the deposit."""
        who = ensure_signed(origin)
        self.do_transfer(who, dest, value, keep_alive=False)

    @call(1, weight=weights.W_TRANSFER, origin=SIGNED, args=(("dest", AccountId), ("value", U128)))
    def transfer_keep_alive(self, origin: Origin, dest: bytes, value: int) -> None:
        """Transfer free balance, failing rather than reaping the sender."""
        who = ensure_signed(origin)
        self.do_transfer(who, dest, value, keep_alive=True)

    @call(
        2,
        weight=weights.W_TRANSFER,
        origin=ROOT,
        args=(("source", AccountId), ("dest", AccountId), ("value", U128)),
    )
    def force_transfer(self, origin: Origin, source: bytes, dest: bytes, value: int) -> None:
        """Transfer between any two accounts (root only)."""
        ensure_root(origin)
        self.do_transfer(source, dest, value, keep_alive=False)

    @call(
        3,
        weight=weights.W_FORCE_SET_BALANCE,
        origin=ROOT,
        args=(("who", AccountId), ("free", U128)),
    )
    def force_set_balance(self, origin: Origin, who: bytes, free: int) -> None:
        """Set an account's free balance, minting or burning the difference (root only)."""
        ensure_root(origin)
        data = self.data(who)
        old = data.free
        data.free = free
        self._set_issuance(self.TotalIssuance.get() - old + free)
        self._store(who, data, existed=self.Account.contains(who))
        self.deposit(self.Event.BalanceSet(who, free))

    # -- genesis
    def genesis(self, config: dict[str, Any]) -> None:
        total = 0
        for who_s, amount in config.get("balances", []):
            who, amount = parse_account(who_s), int(amount)
            if amount < EXISTENTIAL_DEPOSIT:
                raise ValueError(f"genesis balance of {who_s} is below the existential deposit")
            self.Account.insert(who, AccountData(amount, 0))
            self.config.providers.inc_providers(who)
            total += amount
        self.TotalIssuance.put(total)

    # -- API for other pallets
    def data(self, who: bytes) -> AccountData:
        return self.Account.get(who) or AccountData(0, 0)

    def free_balance(self, who: bytes) -> int:
        return self.data(who).free

    def _set_issuance(self, total: int) -> None:
        if total > U128.max:
            raise self.Error.Overflow()
        self.TotalIssuance.put(total)

    def _store(self, who: bytes, data: AccountData, existed: bool) -> None:
        """Write ``data``; reap the account if it fell below the existential deposit."""
        total = data.free + data.reserved
        if total < EXISTENTIAL_DEPOSIT:
            if existed:
                if total:
                    self.TotalIssuance.put(self.TotalIssuance.get() - total)
                    self.deposit(self.Event.DustLost(who, total))
                self.Account.remove(who)
                self.config.providers.dec_providers(who)
            elif total:
                raise self.Error.ExistentialDeposit()
            return
        self.Account.insert(who, data)
        if not existed:
            self.config.providers.inc_providers(who)
            self.deposit(self.Event.Endowed(who, data.free))

    def do_transfer(self, src: bytes, dest: bytes, value: int, keep_alive: bool) -> None:
        if value <= 0:
            raise self.Error.ZeroAmount()
        if src == dest:
            return
        s = self.Account.get(src)
        if s is None or s.free < value:
            raise self.Error.InsufficientBalance()
        if keep_alive and s.free - value + s.reserved < EXISTENTIAL_DEPOSIT:
            raise self.Error.KeepAlive()
        d = self.Account.get(dest)
        d_existed = d is not None
        if d is None:
            if value < EXISTENTIAL_DEPOSIT:
                raise self.Error.ExistentialDeposit()
            d = AccountData(0, 0)
        s.free -= value
        d.free += value
        self._store(dest, d, d_existed)
        self._store(src, s, True)
        self.deposit(self.Event.Transfer(src, dest, value))

    def reserve(self, who: bytes, amount: int) -> None:
        """Move ``amount`` from free to reserved (escrow, deposits)."""
        d = self.Account.get(who)
        if d is None or d.free < amount:
            raise self.Error.InsufficientBalance()
        d.free -= amount
        d.reserved += amount
        self.Account.insert(who, d)
        self.deposit(self.Event.Reserved(who, amount))

    def unreserve(self, who: bytes, amount: int) -> None:
        d = self.Account.get(who)
        if d is None or d.reserved < amount:
            raise self.Error.InsufficientReserve()
        d.reserved -= amount
        d.free += amount
        self.Account.insert(who, d)
        self.deposit(self.Event.Unreserved(who, amount))

    def repatriate_reserved(self, src: bytes, dest: bytes, amount: int) -> None:
        """Pay ``amount`` out of ``src``'s reserve into ``dest``'s free balance."""
        s = self.Account.get(src)
        if s is None or s.reserved < amount:
            raise self.Error.InsufficientReserve()
        d = self.Account.get(dest)
        d_existed = d is not None
        if d is None:
            if amount < EXISTENTIAL_DEPOSIT:
                raise self.Error.ExistentialDeposit()
            d = AccountData(0, 0)
        s.reserved -= amount
        d.free += amount
        self._store(dest, d, d_existed)
        self._store(src, s, True)
        self.deposit(self.Event.ReserveRepatriated(src, dest, amount))

    def mint(self, who: bytes, amount: int) -> None:
        """Create ``amount`` new tokens in ``who``'s free balance (treasury rewards, genesis)."""
        d = self.Account.get(who)
        existed = d is not None
        d = d or AccountData(0, 0)
        d.free += amount
        self._set_issuance(self.TotalIssuance.get() + amount)
        self._store(who, d, existed)

    # -- transaction payment
    @staticmethod
    def compute_fee(length: int, weight: int, tip: int) -> int:
        return BASE_FEE + FEE_PER_BYTE * length + weight // WEIGHT_PER_FEE_UNIT + tip

    def can_pay(self, who: bytes, fee: int) -> bool:
        d = self.Account.get(who)
        return d is not None and d.free >= fee

    def withdraw_fee(self, who: bytes, fee: int) -> bool:
        """Take ``fee`` from ``who``; False (and no change) if the free balance is short."""
        d = self.Account.get(who)
        if d is None or d.free < fee:
            return False
        d.free -= fee
        self._store(who, d, True)
        return True

    def distribute_fee(self, fee: int, author: bytes | None) -> None:
        to_author = fee * FEE_AUTHOR_PERCENT // 100 if author is not None else 0
        burned = fee - to_author
        if to_author:
            d = self.Account.get(author)  # type: ignore[arg-type]
            if d is None and to_author < EXISTENTIAL_DEPOSIT:
                burned += to_author
            else:
                existed = d is not None
                d = d or AccountData(0, 0)
                d.free += to_author
                self._store(author, d, existed)  # type: ignore[arg-type]
        if burned:
            self.TotalIssuance.put(self.TotalIssuance.get() - burned)

    def constants(self) -> dict[str, Any]:
        return {
            "ExistentialDeposit": EXISTENTIAL_DEPOSIT,
            "TokenDecimals": TOKEN_DECIMALS,
            "TokenSymbol": TOKEN_SYMBOL,
            "BaseFee": BASE_FEE,
            "FeePerByte": FEE_PER_BYTE,
            "WeightPerFeeUnit": WEIGHT_PER_FEE_UNIT,
            "FeeAuthorPercent": FEE_AUTHOR_PERCENT,
        }
