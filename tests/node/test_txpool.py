"""Transaction pool against the real runtime: genesis state, signed transfers, real blocks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.txpool import PoolError, TransactionPool
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Era, Extrinsic, SignedPart, extrinsic_hash
from twinchain.runtime.executive import Executive, ValidTransaction
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.runtime import Runtime
from twinchain.storage.abc import StateReader

GENESIS = b"\x11" * 32
FUNDS = 10**18
ALICE = Keypair.from_dev_name("Alice")
BOB = Keypair.from_dev_name("Bob")
CHARLIE = Keypair.from_dev_name("Charlie")
DAVE = Keypair.from_dev_name("Dave")
EVE = Keypair.from_dev_name("Eve")
PAUPER = Keypair.from_dev_name("Pauper")  # no funds: every transaction fails on the fee
CONFIG: dict[str, Any] = {
    "system": {"name": "dev"},
    "authority": {"authorities": ["//Alice"], "slot_duration_ms": 1000},
    "balances": {
        "balances": [[f"//{n}", FUNDS] for n in ("Alice", "Bob", "Charlie", "Dave", "Eve")]
    },
    "sudo": {"key": "//Alice"},
}


class DictState(StateReader):
    """A state as a plain dict (the storage layer is not under test here)."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iter_prefix(
        self, prefix: bytes, start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        for k in sorted(self.data):
            if k.startswith(prefix) and (start_after is None or k > start_after):
                yield k, self.data[k]


class Chain:
    """A one-validator chain: real blocks executed by the Executive on a dict state."""

    def __init__(self, genesis: dict[bytes, bytes]) -> None:
        self.rt = Runtime(genesis_hash=GENESIS)
        self.ex = Executive(self.rt)
        self.state = dict(genesis)
        self.number = 0
        self.hash = GENESIS

    def validate(self, raw: bytes) -> ValidTransaction:
        return self.ex.validate_transaction(DictState(self.state), raw, self.number, self.hash)

    def validate_hashed(self, raw: bytes, tx_hash: bytes) -> ValidTransaction:
        return self.ex.validate_transaction(
            DictState(self.state), raw, self.number, self.hash, tx_hash=tx_hash
        )

    def import_block(self, raws: list[bytes]) -> list[bytes]:
        """Execute a block with ``raws`` on the best state; return the included hashes."""
        n = self.number + 1
        self.ex.initialize_block(DictState(self.state), n, self.hash, slot=n)
        for raw in self.ex.inherents(n * 1000):
            self.ex.apply_extrinsic(raw)
        hashes = [self.ex.apply_extrinsic(raw).hash for raw in raws]
        for k, v in self.ex.finalize_block().items():
            if v is None:
                self.state.pop(k, None)
            else:
                self.state[k] = v
        self.number = n
        self.hash = hash_for(Domain.HEADER, n.to_bytes(8, "big"))
        return hashes

    def nonce(self, who: Keypair) -> int:
        self.rt.state = Overlay(DictState(self.state))
        return self.rt.system.nonce(who.public)

    def transfer(
        self,
        who: Keypair,
        nonce: int,
        tip: int = 0,
        value: int = 10**12,
        era: Era | None = None,
        birth_hash: bytes | None = None,
    ) -> bytes:
        call = self.rt.call_by_name("Balances", "transfer", BOB.public, value)
        xt = Extrinsic.sign(
            call,
            who,
            nonce,
            GENESIS,
            self.rt.spec_version,
            tip=tip,
            era=era,
            birth_hash=birth_hash,
        )
        return xt.encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def genesis() -> dict[bytes, bytes]:
    changes = Runtime(genesis_hash=GENESIS).build_genesis(CONFIG)
    return {k: v for k, v in changes.items() if v is not None}


@pytest.fixture
def chain(genesis: dict[bytes, bytes]) -> Chain:
    return Chain(genesis)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[tuple[bytes, str, Any]]:
    return []


@pytest.fixture
def pool(chain: Chain, clock: Clock, events: list[tuple[bytes, str, Any]]) -> TransactionPool:
    return TransactionPool(
        chain.validate, clock=clock, on_status=lambda h, s, d: events.append((h, s, d))
    )


def order(pool: TransactionPool) -> list[bytes]:
    return [h for h, _ in pool.ready()]


def check_consistent(pool: TransactionPool) -> None:
    """Cross-check the pool's indices against a from-scratch computation."""
    txs = pool._txs
    assert set(pool._ready) | set(pool._future) == set(txs)
    assert not set(pool._ready) & set(pool._future)
    assert pool.bytes == sum(len(e.raw) for e in txs.values())
    for e in txs.values():
        assert e.ready == (e.hash in pool._ready)
        for t in e.provides:
            assert pool._providers[t] == e.hash
        for t in e.requires:
            assert e.hash in pool._requirers[t]
        ready_ok = all(t in pool._providers and txs[pool._providers[t]].ready for t in e.requires)
        assert e.ready == ready_ok, e.nonce
    for t, waiting in pool._requirers.items():
        assert waiting and all(t in txs[h].requires for h in waiting)
    for t, h in pool._providers.items():
        assert t in txs[h].provides
    assert len(pool._future) <= pool.future_max_count
    assert len(txs) <= pool.max_count and pool.bytes <= pool.max_bytes


# ---------------------------------------------------------------------- ordering


def test_ready_ordered_by_tip_then_arrival(chain: Chain, pool: TransactionPool) -> None:
    low = pool.submit(chain.transfer(ALICE, 0, tip=1))
    high = pool.submit(chain.transfer(BOB, 0, tip=50))
    mid_first = pool.submit(chain.transfer(CHARLIE, 0, tip=10))
    mid_second = pool.submit(chain.transfer(DAVE, 0, tip=10))
    assert order(pool) == [high, mid_first, mid_second, low]
    assert pool.ready_count == 4 and pool.future_count == 0 and len(pool) == 4
    check_consistent(pool)


def test_dependency_beats_priority(chain: Chain, pool: TransactionPool) -> None:
    a0 = pool.submit(chain.transfer(ALICE, 0, tip=1))
    a1 = pool.submit(chain.transfer(ALICE, 1, tip=100))
    b0 = pool.submit(chain.transfer(BOB, 0, tip=5))
    # Alice's big tip cannot jump ahead of her own nonce 0.
    assert order(pool) == [b0, a0, a1]


def test_nonce_chain_in_reverse_becomes_ready_in_order(
    chain: Chain, pool: TransactionPool, events: list[tuple[bytes, str, Any]]
) -> None:
    raws = [chain.transfer(ALICE, n) for n in range(3)]
    h2 = pool.submit(raws[2])
    h1 = pool.submit(raws[1])
    assert pool.ready_count == 0 and pool.future_count == 2
    h0 = pool.submit(raws[0])
    assert pool.ready_count == 3 and pool.future_count == 0
    assert order(pool) == [h0, h1, h2]
    assert events == [
        (h2, "future", None),
        (h1, "future", None),
        (h0, "ready", None),
        (h1, "ready", None),
        (h2, "ready", None),
    ]
    assert pool.pending() == raws
    check_consistent(pool)


def test_gap_waits_in_future_until_filled(chain: Chain, pool: TransactionPool) -> None:
    hs = {n: pool.submit(chain.transfer(ALICE, n)) for n in (0, 1, 2)}
    hs[5] = pool.submit(chain.transfer(ALICE, 5))
    assert not pool.is_ready(hs[5]) and pool.future_count == 1
    hs[3] = pool.submit(chain.transfer(ALICE, 3))
    assert pool.is_ready(hs[3]) and not pool.is_ready(hs[5])
    hs[4] = pool.submit(chain.transfer(ALICE, 4))
    assert pool.future_count == 0
    assert order(pool) == [hs[n] for n in range(6)]
    check_consistent(pool)


def test_report_invalid_skips_dependants(chain: Chain, pool: TransactionPool) -> None:
    a = [pool.submit(chain.transfer(ALICE, n, tip=100)) for n in range(3)]
    b0 = pool.submit(chain.transfer(BOB, 0, tip=1))
    it = pool.ready()
    first, _ = next(it)
    assert first == a[0]
    it.report_invalid(first)  # e.g. it failed to apply in the block being built
    assert [h for h, _ in it] == [b0]
    # Reporting late (after a dependant was handed out) still skips the rest of the chain.
    it = pool.ready()
    assert next(it)[0] == a[0]
    assert next(it)[0] == a[1]
    it.report_invalid(a[0])
    assert [h for h, _ in it] == [b0]
    # The pool itself is unchanged: the next block tries again.
    assert order(pool) == [*a, b0]


# ---------------------------------------------------------------------- replacement


def test_replacement_by_higher_tip(
    chain: Chain, pool: TransactionPool, events: list[tuple[bytes, str, Any]]
) -> None:
    old0 = pool.submit(chain.transfer(ALICE, 0, tip=5))
    a1 = pool.submit(chain.transfer(ALICE, 1, tip=5))
    with pytest.raises(PoolError) as err:
        pool.submit(chain.transfer(ALICE, 0, tip=5, value=2 * 10**12))
    assert err.value.code == "ReplacementUnderpriced"
    with pytest.raises(PoolError) as err:
        pool.submit(chain.transfer(ALICE, 0, tip=4))
    assert err.value.code == "ReplacementUnderpriced"
    events.clear()
    new0 = pool.submit(chain.transfer(ALICE, 0, tip=6))
    assert not pool.contains(old0) and pool.contains(new0) and len(pool) == 2
    assert order(pool) == [new0, a1]
    # The dependant never flickered to "future" while its provider was swapped.
    assert events == [(old0, "usurped", new0), (new0, "ready", None)]
    check_consistent(pool)


def test_replacement_in_future_queue(chain: Chain, pool: TransactionPool) -> None:
    old = pool.submit(chain.transfer(ALICE, 3, tip=1))
    new = pool.submit(chain.transfer(ALICE, 3, tip=2))
    assert not pool.contains(old) and pool.future_count == 1 and pool.contains(new)


def test_duplicate_already_imported(chain: Chain, pool: TransactionPool) -> None:
    raw = chain.transfer(ALICE, 0)
    h = pool.submit(raw)
    with pytest.raises(PoolError) as err:
        pool.submit(raw)
    assert err.value.code == "AlreadyImported" and h.hex() in err.value.detail


# ---------------------------------------------------------------------- limits


def test_count_limit_evicts_lowest_priority(
    chain: Chain, clock: Clock, events: list[tuple[bytes, str, Any]]
) -> None:
    pool = TransactionPool(
        chain.validate, max_count=3, clock=clock, on_status=lambda *e: events.append(e)
    )
    a = pool.submit(chain.transfer(ALICE, 0, tip=5))
    a1 = pool.submit(chain.transfer(ALICE, 1, tip=50))  # depends on the worst
    c = pool.submit(chain.transfer(CHARLIE, 0, tip=7))
    with pytest.raises(PoolError) as err:
        pool.submit(chain.transfer(DAVE, 0, tip=5))  # ties the worst: not enough
    assert err.value.code == "TooLowPriority"
    assert len(pool) == 3
    d = pool.submit(chain.transfer(DAVE, 0, tip=6))
    # The worst left with the transaction that depended on it.
    assert set(pool._txs) == {c, d}
    assert (a, "dropped", "pool is full") in events and (a1, "dropped", "pool is full") in events
    e = pool.submit(chain.transfer(EVE, 0, tip=6))
    assert order(pool) == [c, d, e]
    # Among equal priorities the latest arrival is the worst.
    f = pool.submit(chain.transfer(BOB, 0, tip=8))
    assert order(pool) == [f, c, d]
    check_consistent(pool)


def test_byte_limit_evicts_lowest_priority(chain: Chain, clock: Clock) -> None:
    raws = [chain.transfer(k, 0, tip=t) for k, t in ((ALICE, 3), (BOB, 1), (CHARLIE, 2))]
    size = max(len(r) for r in raws)
    pool = TransactionPool(chain.validate, max_bytes=2 * size + size // 2, clock=clock)
    ha = pool.submit(raws[0])
    pool.submit(raws[1])
    hc = pool.submit(raws[2])  # evicts Bob's tip 1
    assert set(pool._txs) == {ha, hc} and pool.bytes <= pool.max_bytes
    with pytest.raises(PoolError) as err:
        pool.submit(chain.transfer(DAVE, 0, tip=1))
    assert err.value.code == "TooLowPriority"
    big = b"\x00" * (pool.max_bytes + 1)
    with pytest.raises(PoolError) as err:
        pool.submit(big)
    assert err.value.code == "LimitsExceeded"
    check_consistent(pool)


def test_future_queue_bounded_oldest_evicted(
    chain: Chain, clock: Clock, events: list[tuple[bytes, str, Any]]
) -> None:
    pool = TransactionPool(
        chain.validate, future_max_count=2, clock=clock, on_status=lambda *e: events.append(e)
    )
    f = [pool.submit(chain.transfer(ALICE, n, tip=9)) for n in (5, 6, 7)]
    assert pool.future_count == 2 and not pool.contains(f[0])
    assert (f[0], "dropped", "future queue is full") in events
    check_consistent(pool)


# ---------------------------------------------------------------------- invalid and bans


def forged(chain: Chain, victim: Keypair, forger: Keypair, nonce: int) -> bytes:
    """A transfer claiming to come from ``victim`` but signed by ``forger``."""
    real = Extrinsic.decode(chain.transfer(forger, nonce))
    assert real.signed is not None
    fake = SignedPart(victim.public, real.signed.signature, nonce, 0, Era.immortal())
    return Extrinsic(real.call, fake).encode()


def test_bad_signature_bans_hash_not_signer(chain: Chain, pool: TransactionPool) -> None:
    bad = forged(chain, ALICE, EVE, 0)
    with pytest.raises(PoolError) as err:
        pool.submit(bad)
    assert err.value.code == "Invalid:BadProof"
    with pytest.raises(PoolError) as err:
        pool.submit(bad)
    assert err.value.code == "TemporarilyBanned"
    # Many forgeries naming Alice never lock Alice out.
    for n in range(1, 6):
        with pytest.raises(PoolError) as err:
            pool.submit(forged(chain, ALICE, EVE, n))
        assert err.value.code == "Invalid:BadProof"
    h = pool.submit(chain.transfer(ALICE, 0))
    assert pool.is_ready(h) and len(pool) == 1


def test_ban_expires_with_clock(chain: Chain, pool: TransactionPool, clock: Clock) -> None:
    bad = forged(chain, ALICE, EVE, 0)
    with pytest.raises(PoolError):
        pool.submit(bad)
    clock.now += 29.9
    with pytest.raises(PoolError) as err:
        pool.submit(bad)
    assert err.value.code == "TemporarilyBanned"
    clock.now += 0.2
    with pytest.raises(PoolError) as err:
        pool.submit(bad)
    assert err.value.code == "Invalid:BadProof"  # validated again, and banned again
    assert pool.status()["banned"] == 1


def test_repeated_payment_failures_ban_signer(
    chain: Chain, pool: TransactionPool, clock: Clock
) -> None:
    for n in range(3):
        with pytest.raises(PoolError) as err:
            pool.submit(chain.transfer(PAUPER, n))
        assert err.value.code == "Invalid:Payment"
    with pytest.raises(PoolError) as err:
        pool.submit(chain.transfer(PAUPER, 7))
    assert err.value.code == "TemporarilyBanned" and "signer" in err.value.detail
    assert pool.status()["banned_signers"] == 1
    clock.now += 31
    with pytest.raises(PoolError) as err:
        pool.submit(chain.transfer(PAUPER, 7))
    assert err.value.code == "Invalid:Payment"


def test_strikes_expire_outside_window(chain: Chain, pool: TransactionPool, clock: Clock) -> None:
    for n in range(2):
        with pytest.raises(PoolError):
            pool.submit(chain.transfer(PAUPER, n))
    clock.now += 31
    for n in range(2, 4):
        with pytest.raises(PoolError) as err:
            pool.submit(chain.transfer(PAUPER, n))
        assert err.value.code == "Invalid:Payment"


def test_stale_resubmission_gives_no_strike(chain: Chain, pool: TransactionPool) -> None:
    old = [chain.transfer(ALICE, n) for n in range(4)]
    chain.import_block(old)
    for raw in old:  # anyone can replay a victim's included transactions
        with pytest.raises(PoolError) as err:
            pool.submit(raw)
        assert err.value.code == "Invalid:Stale"
    assert pool.status()["banned_signers"] == 0
    pool.submit(chain.transfer(ALICE, 4))


def test_status_callback_errors_are_contained(chain: Chain, clock: Clock) -> None:
    def boom(h: bytes, s: str, d: Any) -> None:
        raise RuntimeError("watcher bug")

    pool = TransactionPool(chain.validate, clock=clock, on_status=boom)
    h = pool.submit(chain.transfer(ALICE, 0))
    assert pool.is_ready(h)


# ---------------------------------------------------------------------- after a block


def test_prune_and_revalidate_drop_stale(
    chain: Chain, pool: TransactionPool, events: list[tuple[bytes, str, Any]]
) -> None:
    raws = [chain.transfer(ALICE, n) for n in range(4)]
    hs = [pool.submit(r) for r in raws]
    bob0 = pool.submit(chain.transfer(BOB, 0, tip=3))
    # Another author's block included a different nonce-1 transaction of Alice's.
    other1 = chain.transfer(ALICE, 1, tip=1)
    included = chain.import_block([raws[0], other1])
    assert pool.prune(included, number=chain.number) == 1
    assert not pool.contains(hs[0]) and len(pool) == 4
    assert pool.is_ready(hs[1])  # its requirement now comes from the chain
    events.clear()
    report = pool.revalidate()
    assert report == {"checked": 4, "invalid": 1, "stale": 0}
    assert (hs[1], "invalid", "Invalid:Stale") in events
    assert not pool.contains(hs[1])
    # nonce 2 now needs nothing from the pool (the chain is at nonce 2).
    assert order(pool) == [bob0, hs[2], hs[3]]
    # Included and invalid hashes are banned: a peer gossiping them back costs nothing.
    for raw in (raws[0], raws[1]):
        with pytest.raises(PoolError) as err:
            pool.submit(raw)
        assert err.value.code == "TemporarilyBanned"
    check_consistent(pool)


def test_revalidate_promotes_future_when_chain_fills_gap(
    chain: Chain, pool: TransactionPool
) -> None:
    h2 = pool.submit(chain.transfer(ALICE, 2))
    assert pool.future_count == 1
    # Nonces 0 and 1 reached the chain without passing through this pool.
    chain.import_block([chain.transfer(ALICE, 0), chain.transfer(ALICE, 1)])
    pool.prune([], number=chain.number)
    assert pool.future_count == 1
    pool.revalidate()
    assert pool.is_ready(h2) and order(pool) == [h2]


def test_revalidate_limit_goes_round(chain: Chain, pool: TransactionPool) -> None:
    hs = [pool.submit(chain.transfer(k, 0)) for k in (ALICE, BOB, CHARLIE)]
    chain.import_block([chain.transfer(k, 0) for k in (ALICE, BOB, CHARLIE)])
    pool.prune([], number=chain.number)
    assert pool.revalidate(limit=2)["invalid"] == 2
    assert [pool.contains(h) for h in hs] == [False, False, True]
    assert pool.revalidate(limit=2)["invalid"] == 1 and len(pool) == 0


def test_remove_demotes_dependants(chain: Chain, pool: TransactionPool) -> None:
    hs = [pool.submit(chain.transfer(ALICE, n)) for n in range(3)]
    assert pool.remove([hs[0]]) == 1
    assert pool.ready_count == 0 and pool.future_count == 2
    again = pool.submit(chain.transfer(ALICE, 0, tip=1))  # a new nonce 0 unblocks them
    assert order(pool) == [again, hs[1], hs[2]]
    check_consistent(pool)


def test_mortal_transaction_longevity(
    chain: Chain, pool: TransactionPool, clock: Clock, events: list[tuple[bytes, str, Any]]
) -> None:
    era = Era.mortal(4, chain.number)  # born at genesis, dies after block 4
    mortal = chain.transfer(ALICE, 0, era=era, birth_hash=chain.hash)
    h = pool.submit(mortal)
    immortal = pool.submit(chain.transfer(BOB, 0))
    for _ in range(3):
        chain.import_block([])
        pool.prune([], number=chain.number)
        pool.revalidate()
        assert pool.contains(h)
    # At best block 3 the next block (4) may still include it; at 4 it is dead.
    chain.import_block([])
    pool.prune([], number=chain.number)
    assert not pool.contains(h) and pool.contains(immortal)
    assert (h, "invalid", "longevity expired") in events
    with pytest.raises(PoolError) as err:
        pool.submit(mortal)
    assert err.value.code == "TemporarilyBanned"
    # Once the ban is over the runtime refuses it anyway: its era's birth hash moved on.
    clock.now += 31
    with pytest.raises(PoolError) as err:
        pool.submit(mortal)
    assert err.value.code == "Invalid:BadProof"


def test_block_built_from_ready_applies(chain: Chain, pool: TransactionPool) -> None:
    """The iterator's order is one the runtime accepts, and pruning empties the pool."""
    for n in reversed(range(5)):
        pool.submit(chain.transfer(ALICE, n, tip=n))
    for n in range(3):
        pool.submit(chain.transfer(BOB, n, tip=10))
    included = chain.import_block([raw for _, raw in pool.ready()])
    assert len(included) == 8
    pool.prune(included, number=chain.number)
    assert len(pool) == 0 and pool.bytes == 0
    assert pool.revalidate() == {"checked": 0, "invalid": 0, "stale": 0}


def test_random_operations_keep_pool_consistent(chain: Chain, clock: Clock) -> None:
    """Random submits, removals, blocks and revalidations against an index cross-check."""
    rng = random.Random(7)
    pool = TransactionPool(chain.validate, max_count=12, future_max_count=5, clock=clock)
    keys = [ALICE, BOB, CHARLIE, DAVE]
    built = 0
    for step in range(400):
        op = rng.random()
        if op < 0.7:
            who = rng.choice(keys)
            nonce = max(0, chain.nonce(who) + rng.randrange(-1, 7))
            raw = chain.transfer(who, nonce, tip=rng.randrange(0, 5))
            try:
                pool.submit(raw)
            except PoolError as err:
                assert err.code in {
                    "ReplacementUnderpriced",
                    "TooLowPriority",
                    "Invalid:Stale",
                    "TemporarilyBanned",
                }, err
        elif op < 0.8 and len(pool):
            pool.remove([rng.choice(list(pool._txs))])
        elif op < 0.9:
            # The chain accepts the iterator's order: any failure here raises.
            included = chain.import_block([raw for _, raw in pool.ready()][:4])
            built += len(included)
            pool.prune(included, number=chain.number)
            pool.revalidate(limit=rng.choice([None, 3]))
        else:
            clock.now += 10
        check_consistent(pool)
        seen: set[bytes] = set()
        for h, _ in pool.ready():
            assert all(pool._providers[t] in seen for t in pool._txs[h].requires), step
            seen.add(h)
        assert seen == set(pool._ready)
    assert built > 10  # the walk did build blocks


# ---------------------------------------------------------------------- known hashes, real chain


def test_revalidate_hands_the_known_hash_to_validate_hashed(chain: Chain) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def hashed(raw: bytes, h: bytes) -> ValidTransaction:
        seen.append((raw, h))
        return chain.validate_hashed(raw, h)

    def unhashed(raw: bytes) -> ValidTransaction:
        raise AssertionError("the pool has the hash: it must use validate_hashed")

    pool = TransactionPool(unhashed, validate_hashed=hashed)
    raws = [chain.transfer(ALICE, 0), chain.transfer(BOB, 0), chain.transfer(BOB, 1)]
    hs = [pool.submit(r) for r in raws]
    assert pool.revalidate() == {"checked": 3, "invalid": 0, "stale": 0}
    assert all(h == extrinsic_hash(raw) for raw, h in seen) and len(seen) == 6
    # A different nonce-0 transaction of Alice's reaches the chain: her pool entry, validated
    # (and memoized) twice already, is stale now; Bob's stay.
    chain.import_block([chain.transfer(ALICE, 0, tip=1)])
    pool.prune([], number=chain.number)
    assert pool.revalidate() == {"checked": 3, "invalid": 1, "stale": 0}
    assert [pool.contains(h) for h in hs] == [False, True, True]
    assert order(pool) == hs[1:]
    check_consistent(pool)


def test_chain_revalidation_follows_the_best_block() -> None:
    """The Blockchain keeps the best block's context between validations: a new best block must
    replace it, or a transaction made stale by that block would stay in the pool."""
    chain = Blockchain(dev_spec(), None)
    try:
        check = chain.validate_transaction
        pool = TransactionPool(check, validate_hashed=check)
        rt = chain.runtime

        def transfer(nonce: int, value: int) -> bytes:
            call = rt.call_by_name("Balances", "transfer", BOB.public, value)
            xt = Extrinsic.sign(call, ALICE, nonce, chain.genesis_hash, rt.spec_version)
            return xt.encode()

        h0 = pool.submit(transfer(0, 10**12))
        h1 = pool.submit(transfer(1, 10**12))
        assert pool.revalidate()["invalid"] == 0 and order(pool) == [h0, h1]
        other = transfer(0, 2 * 10**12)  # reaches the chain without passing through this pool
        _, result = chain.propose(ALICE, 1_001, 1_001_000, [(extrinsic_hash(other), other)])
        assert result.outcomes[-1].hash == extrinsic_hash(other) and result.outcomes[-1].success
        pool.prune([o.hash for o in result.outcomes], number=result.number)
        assert pool.revalidate() == {"checked": 2, "invalid": 1, "stale": 0}
        assert not pool.contains(h0) and order(pool) == [h1]  # nonce 1 is next on chain now
    finally:
        chain.close()
