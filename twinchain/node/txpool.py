"""The transaction pool: a graph of validated transactions, modelled on Substrate's.

Every transaction ``provides`` tags and may ``require`` tags (here: (signer, nonce) pairs, so a
nonce chain is a chain of tags). A transaction is *ready* when each tag it requires is provided
by a ready transaction in the pool; a tag the chain already provides is simply absent from
``requires`` (the runtime leaves it out, and :meth:`TransactionPool.prune` strips it). Every
other transaction waits in the *future* queue and is promoted, with everything that waits on
it, when its requirement arrives.

Block authors drain :meth:`TransactionPool.ready`, a best-first walk of the ready graph (like
Substrate's BestIterator): the highest priority first, then the earliest arrival, a
transaction never before the one providing its requirement.

Bans. A transaction that fails validation is banned *by hash* for ``ban_seconds``, so that
re-gossip of it costs no second signature check. The pool never bans a signer because of a bad
signature: the signer field of a forged transaction is whatever the attacker wrote, and banning
it would let anyone censor a victim's account. A signer is banned only after
``STRIKES_TO_BAN`` failures within ``ban_seconds`` whose codes the runtime reports after it has
verified the signature and that the signer alone causes afresh (``STRIKE_CODES``: cannot pay
the fee, heavier than a block). ``Stale`` gives no strike: every included transaction of a
victim is a validly signed stale transaction that anyone can replay.

The pool is a plain synchronous class, independent of storage and of trio: the node calls it
from its tasks, and the ``validate`` callable it supplies checks a transaction against the
current best state (raising ``InvalidTransaction``). If it also supplies ``validate_hashed``
(the same check, told the transaction's hash), the pool uses that one: it knows every hash
already, and hashing tens of kilobytes per entry after every block is not free.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from twinchain.primitives.codec import CodecError
from twinchain.primitives.types import MAX_EXTRINSIC_SIZE, Extrinsic, extrinsic_hash
from twinchain.runtime.executive import InvalidTransaction, ValidTransaction

log = logging.getLogger(__name__)

# Aliases keep annotations readable and unambiguous: the pool has a property named ``bytes``.
Hash = bytes
Tag = bytes
Raw = bytes
AccountId = bytes
BanKey = bytes  # a transaction hash or a signer
StatusCallback = Callable[[Hash, str, Any], None]

STRIKE_CODES = frozenset({"Payment", "ExhaustsResources"})
STRIKES_TO_BAN = 3
# A re-added retracted transaction (after a reorg) must get past the ban of its own inclusion.
SOURCE_IN_BLOCK = "inblock"
#: Received by transaction gossip: the node's peers hold it too.
SOURCE_NETWORK = "network"


class PoolError(Exception):
    """A rejected submission; ``code`` is stable (RPC maps it), ``detail`` is for humans."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(eq=False, slots=True)
class _Entry:
    hash: Hash
    raw: Raw
    signer: AccountId
    nonce: int
    priority: int
    requires: tuple[Tag, ...]
    provides: tuple[Tag, ...]
    valid_till: int  # last best-block number at which the transaction may still be pending
    seq: int  # arrival order; a replacement is a new arrival
    source: str
    ready: bool = False


def _signer_of(raw: Raw) -> AccountId | None:
    try:
        xt = Extrinsic.decode(raw)
    except CodecError:
        return None
    return None if xt.signed is None else xt.signed.signer


class ReadyIterator(Iterator[tuple[Hash, Raw]]):
    """Best-first walk over a snapshot of the ready graph, yielding ``(hash, raw)``.

    Only transactions whose in-pool providers were already yielded are candidates, so the
    order respects dependencies. :meth:`report_invalid` tells it that a yielded transaction
    failed to apply: the transactions depending on it (transitively) are skipped.
    """

    def __init__(self, entries: Iterable[_Entry], providers: dict[Tag, Hash]) -> None:
        snapshot = list(entries)
        self._raw: dict[Hash, Raw] = {e.hash: e.raw for e in snapshot}
        self._unlocks: dict[Hash, list[Hash]] = {}
        self._blocked: dict[Hash, int] = {}
        self._key: dict[Hash, tuple[int, int]] = {}
        self._invalid: set[Hash] = set()
        self._heap: list[tuple[int, int, Hash]] = []
        for e in snapshot:
            # Only providers in this snapshot hold a transaction back; the rest are on chain.
            deps = tuple(
                {
                    p
                    for t in e.requires
                    if (p := providers.get(t)) is not None and p in self._raw and p != e.hash
                }
            )
            self._key[e.hash] = (-e.priority, e.seq)
            for d in deps:
                self._unlocks.setdefault(d, []).append(e.hash)
            if deps:
                self._blocked[e.hash] = len(deps)
            else:
                self._heap.append((-e.priority, e.seq, e.hash))
        heapq.heapify(self._heap)

    def report_invalid(self, tx_hash: Hash) -> None:
        """``tx_hash`` could not go into the block: skip whatever depends on it.

        The whole subtree is marked, so a late report (after a dependant was already handed
        out) still keeps the rest of the chain out of this block.
        """
        todo = [tx_hash]
        while todo:
            h = todo.pop()
            if h not in self._invalid:
                self._invalid.add(h)
                todo.extend(self._unlocks.get(h, ()))

    def __iter__(self) -> ReadyIterator:
        return self

    def __next__(self) -> tuple[Hash, Raw]:
        while self._heap:
            _, _, h = heapq.heappop(self._heap)
            if h in self._invalid:
                continue
            for u in self._unlocks.get(h, ()):
                left = self._blocked[u] - 1
                self._blocked[u] = left
                if left == 0:
                    heapq.heappush(self._heap, (*self._key[u], u))
            return h, self._raw[h]
        raise StopIteration


class TransactionPool:
    """Validated transactions waiting for a block: a ready graph and a bounded future queue.

    Limits: ``max_count`` transactions and ``max_bytes`` of encoded transactions in all; at
    most ``future_max_count`` of them in the future queue (the oldest there is evicted). When
    the pool is full a newcomer must have a strictly higher priority than the worst resident
    (the lowest priority, the latest arrival among equals), which is dropped with the
    transactions depending on it; otherwise it is refused with ``TooLowPriority``.

    ``on_status(hash, status, detail)`` reports each change of a transaction's life, once
    per operation and after the pool is consistent again: ``"ready"``, ``"future"``,
    ``"invalid"`` (detail: the reason), ``"dropped"`` (detail: the reason) and ``"usurped"``
    (detail: the hash of the replacement). Inclusion is the node's to report: it knows the
    block; :meth:`prune` reports nothing.
    """

    def __init__(
        self,
        validate: Callable[[Raw], ValidTransaction],
        *,
        max_count: int = 8192,
        max_bytes: int = 20 * 1024 * 1024,
        future_max_count: int = 1024,
        ban_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        best_number: int = 0,
        on_status: StatusCallback | None = None,
        validate_hashed: Callable[[Raw, Hash], ValidTransaction] | None = None,
    ) -> None:
        self._validate = validate
        self._validate_hashed = validate_hashed
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.future_max_count = future_max_count
        self.ban_seconds = ban_seconds
        self._clock = clock
        self.best_number = best_number
        self.on_status = on_status
        self._txs: dict[Hash, _Entry] = {}  # insertion order is arrival (seq) order
        self._ready: dict[Hash, _Entry] = {}
        self._future: dict[Hash, _Entry] = {}  # order of entering the future queue
        self._providers: dict[Tag, Hash] = {}  # of ready and future transactions alike
        self._requirers: dict[Tag, set[Hash]] = {}
        self._size = 0
        self._seq = 0
        # Min-heap of (priority, -seq, hash): the worst first; stale items are skipped lazily.
        self._worst: list[tuple[int, int, Hash]] = []
        self._reval_cursor = -1
        # Ban tables map to an expiry; insertion order is expiry order (constant duration,
        # monotonic clock), so expired entries are trimmed from the front.
        self._ban_cap = max(4096, 4 * max_count)
        self._banned: dict[Hash, float] = {}
        self._banned_signers: dict[AccountId, float] = {}
        self._strikes: dict[AccountId, tuple[int, float]] = {}  # signer -> (count, window start)
        # Per-operation bookkeeping for on_status: state before the operation, and removals.
        self._touched: dict[Hash, str | None] = {}
        self._events: list[tuple[Hash, str, Any]] = []

    # ------------------------------------------------------------------ submission
    def submit(self, raw: Raw, source: str = "external") -> Hash:
        """Validate ``raw`` and add it; return its hash or raise :class:`PoolError`."""
        if len(raw) > min(self.max_bytes, MAX_EXTRINSIC_SIZE):
            raise PoolError("LimitsExceeded", f"transaction of {len(raw)} bytes")
        h = extrinsic_hash(raw)
        if h in self._txs:
            raise PoolError("AlreadyImported", h.hex())
        now = self._clock()
        if source != SOURCE_IN_BLOCK and self._is_banned(self._banned, h, now):
            raise PoolError("TemporarilyBanned", "transaction recently invalid or included")
        if self._banned_signers:
            signer = _signer_of(raw)
            if signer is not None and self._is_banned(self._banned_signers, signer, now):
                raise PoolError("TemporarilyBanned", "signer sent too many invalid transactions")
        try:
            vt = self._check(raw, h)
        except InvalidTransaction as exc:
            self._ban(self._banned, h, now)
            if exc.code in STRIKE_CODES:
                signer = _signer_of(raw)
                if signer is not None:
                    self._strike(signer, now)
            raise PoolError(f"Invalid:{exc.code}", exc.detail) from None

        replaced: dict[Hash, _Entry] = {}
        for tag in vt.provides:
            holder = self._providers.get(tag)
            if holder is None or holder in replaced:
                continue
            old = self._txs[holder]
            if old.priority >= vt.priority:
                raise PoolError(
                    "ReplacementUnderpriced",
                    f"{holder.hex()} has priority {old.priority} >= {vt.priority}",
                )
            replaced[holder] = old
        victims = self._plan_eviction(len(raw), vt.priority, replaced)

        self._seq += 1
        entry = _Entry(
            hash=h,
            raw=raw,
            signer=vt.signer,
            nonce=vt.nonce,
            priority=vt.priority,
            requires=tuple(vt.requires),
            provides=tuple(vt.provides),
            valid_till=self.best_number + vt.longevity,
            seq=self._seq,
            source=source,
        )
        try:
            for old in replaced.values():
                self._remove(old, "usurped", h)
            for v in victims:
                if v.hash in self._txs:
                    self._remove(v, "dropped", "pool is full")
            self._touched[h] = None
            self._insert(entry)
            self._enforce_future_limit()
        finally:
            self._flush()
        return h

    def _plan_eviction(
        self, length: int, priority: int, replaced: dict[Hash, _Entry]
    ) -> list[_Entry]:
        """Who must leave for a newcomer to fit; raises TooLowPriority and changes nothing
        if the newcomer does not beat them all."""
        count = len(self._txs) - len(replaced) + 1
        size = self._size - sum(len(e.raw) for e in replaced.values()) + length
        if count <= self.max_count and size <= self.max_bytes:
            return []
        gone = set(replaced)
        victims: list[_Entry] = []
        popped: list[tuple[int, int, Hash]] = []
        while count > self.max_count or size > self.max_bytes:
            worst = self._pop_worst(popped)
            if worst is None or worst.priority >= priority:
                for item in popped:
                    heapq.heappush(self._worst, item)
                raise PoolError("TooLowPriority", f"pool is full; priority {priority} too low")
            if worst.hash in gone:
                continue
            # Its dependants cannot go into a block without it: they leave with it.
            for e in self._subtree(worst):
                if e.hash not in gone:
                    gone.add(e.hash)
                    victims.append(e)
                    count -= 1
                    size -= len(e.raw)
        return victims

    def _pop_worst(self, popped: list[tuple[int, int, Hash]]) -> _Entry | None:
        while self._worst:
            item = heapq.heappop(self._worst)
            popped.append(item)
            prio, neg_seq, h = item
            e = self._txs.get(h)
            if e is not None and e.seq == -neg_seq and e.priority == prio:
                return e
        return None

    def _subtree(self, root: _Entry) -> list[_Entry]:
        out = [root]
        seen = {root.hash}
        i = 0
        while i < len(out):
            for t in out[i].provides:
                for d in self._requirers.get(t, ()):
                    if d not in seen:
                        seen.add(d)
                        out.append(self._txs[d])
            i += 1
        return out

    # ------------------------------------------------------------------ block building
    def ready(self) -> ReadyIterator:
        """Ready transactions in block-building order (see :class:`ReadyIterator`)."""
        return ReadyIterator(self._ready.values(), self._providers)

    def pending(self) -> list[Raw]:
        """Every transaction's bytes: the ready ones in block order, then the future ones."""
        return [raw for _, raw in self.ready()] + [e.raw for e in self._future.values()]

    # ------------------------------------------------------------------ after a block
    def prune(self, included_hashes: Iterable[Hash], *, number: int | None = None) -> int:
        """Forget transactions a newly imported best block included; return how many were here.

        ``number`` is the new best block's number (default: one more than before); it drives
        longevity. Included hashes are banned like Substrate's, so that peers gossiping them
        back cost nothing; their tags now come from the chain, so their dependants stay (or
        become) ready. Call :meth:`revalidate` next to catch what the block made stale.
        """
        self.best_number = self.best_number + 1 if number is None else number
        now = self._clock()
        n = 0
        try:
            for h in included_hashes:
                self._ban(self._banned, h, now)
                e = self._txs.get(h)
                if e is not None:
                    self._remove(e, None, None, chain_provided=True)
                    n += 1
            self._clear_stale(now)
            self._trim_expired(now)
        finally:
            self._flush()
        return n

    def revalidate(self, limit: int | None = None) -> dict[str, int]:
        """Re-check transactions against the new best state with ``validate``.

        Invalid ones (a stale nonce, a fee no longer payable, an expired era) are dropped and
        banned; the others get their fresh tags, so a transaction whose requirement the chain
        now provides becomes ready. Expired longevity is enforced for all. ``limit`` bounds
        the number of ``validate`` calls; successive calls go round the pool in arrival order.
        """
        now = self._clock()
        try:
            stale = self._clear_stale(now)
            entries = list(self._txs.values())
            if limit is not None and limit < len(entries):
                start = next((i for i, e in enumerate(entries) if e.seq > self._reval_cursor), 0)
                entries = (entries[start:] + entries[:start])[: max(0, limit)]
            if entries:
                self._reval_cursor = entries[-1].seq
            # Validate everything first: the pool changes only once all answers are in.
            results: list[tuple[_Entry, ValidTransaction | InvalidTransaction]] = []
            for e in entries:
                try:
                    results.append((e, self._check(e.raw, e.hash)))
                except InvalidTransaction as exc:
                    results.append((e, exc))
            invalid = 0
            for e, res in results:
                if self._txs.get(e.hash) is not e:
                    continue
                if isinstance(res, InvalidTransaction):
                    self._ban(self._banned, e.hash, now)
                    self._remove(e, "invalid", f"Invalid:{res.code}")
                    invalid += 1
                else:
                    self._update(e, res)
            self._enforce_future_limit()
        finally:
            self._flush()
        return {"checked": len(results), "invalid": invalid, "stale": stale}

    def _check(self, raw: Raw, h: Hash) -> ValidTransaction:
        if self._validate_hashed is not None:
            return self._validate_hashed(raw, h)
        return self._validate(raw)

    def _update(self, e: _Entry, vt: ValidTransaction) -> None:
        e.valid_till = self.best_number + vt.longevity
        if vt.priority != e.priority:
            e.priority = vt.priority
            heapq.heappush(self._worst, (e.priority, -e.seq, e.hash))
        requires, provides = tuple(vt.requires), tuple(vt.provides)
        if requires == e.requires and provides == e.provides:
            return
        if any(self._providers.get(t, e.hash) != e.hash for t in provides):
            self._remove(e, "dropped", "its tag is provided by another transaction")
            return
        old_dependants = self._dependants(e)
        self._unlink(e)
        e.requires, e.provides = requires, provides
        self._link(e)
        self._demote([e, *old_dependants])
        self._promote([e, *self._dependants(e)])

    def _clear_stale(self, now: float) -> int:
        """Drop transactions whose longevity ran out at the current best number."""
        stale = [e for e in self._txs.values() if e.valid_till < self.best_number]
        for e in stale:
            if self._txs.get(e.hash) is e:
                self._ban(self._banned, e.hash, now)
                self._remove(e, "invalid", "longevity expired")
        return len(stale)

    # ------------------------------------------------------------------ removal & queries
    def remove(self, hashes: Iterable[Hash]) -> int:
        """Drop these transactions; the ones depending on them wait in the future queue."""
        n = 0
        try:
            for h in hashes:
                e = self._txs.get(h)
                if e is not None:
                    self._remove(e, "dropped", "removed")
                    n += 1
            self._enforce_future_limit()
        finally:
            self._flush()
        return n

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._txs

    def contains(self, tx_hash: Hash) -> bool:
        return tx_hash in self._txs

    def source(self, tx_hash: Hash) -> str | None:
        """Where a pooled transaction came from ("external", "network", ...); None if absent."""
        e = self._txs.get(tx_hash)
        return None if e is None else e.source

    def get(self, tx_hash: Hash) -> Raw | None:
        e = self._txs.get(tx_hash)
        return None if e is None else e.raw

    def is_ready(self, tx_hash: Hash) -> bool:
        return tx_hash in self._ready

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    @property
    def future_count(self) -> int:
        return len(self._future)

    def status(self) -> dict[str, Any]:
        now = self._clock()
        self._trim_expired(now)
        return {
            "ready": len(self._ready),
            "future": len(self._future),
            "bytes": self._size,
            "max_count": self.max_count,
            "max_bytes": self.max_bytes,
            "future_max_count": self.future_max_count,
            "banned": len(self._banned),
            "banned_signers": len(self._banned_signers),
            "best_number": self.best_number,
        }

    # ------------------------------------------------------------------ graph internals
    def _is_ready_tag(self, tag: Tag) -> bool:
        p = self._providers.get(tag)
        return p is not None and self._txs[p].ready

    def _satisfied(self, e: _Entry) -> bool:
        return all(self._is_ready_tag(t) for t in e.requires)

    def _dependants(self, e: _Entry) -> list[_Entry]:
        return [self._txs[d] for t in e.provides for d in self._requirers.get(t, ())]

    def _link(self, e: _Entry) -> None:
        for t in e.provides:
            self._providers[t] = e.hash
        for t in e.requires:
            self._requirers.setdefault(t, set()).add(e.hash)

    def _unlink(self, e: _Entry) -> None:
        for t in e.provides:
            if self._providers.get(t) == e.hash:
                del self._providers[t]
        for t in e.requires:
            waiting = self._requirers.get(t)
            if waiting is not None:
                waiting.discard(e.hash)
                if not waiting:
                    del self._requirers[t]

    def _touch(self, e: _Entry) -> None:
        if e.hash not in self._touched:
            self._touched[e.hash] = "ready" if e.ready else "future"

    def _insert(self, e: _Entry) -> None:
        self._txs[e.hash] = e
        self._size += len(e.raw)
        self._link(e)
        heapq.heappush(self._worst, (e.priority, -e.seq, e.hash))
        e.ready = False
        self._future[e.hash] = e
        self._promote([e])
        if len(self._worst) > 2 * len(self._txs) + 64:
            self._worst = [(x.priority, -x.seq, x.hash) for x in self._txs.values()]
            heapq.heapify(self._worst)

    def _remove(
        self, e: _Entry, status: str | None, detail: Any, *, chain_provided: bool = False
    ) -> None:
        del self._txs[e.hash]
        self._size -= len(e.raw)
        (self._ready if e.ready else self._future).pop(e.hash)
        self._unlink(e)
        self._touched.pop(e.hash, None)
        if status is not None:
            self._events.append((e.hash, status, detail))
        dependants = self._dependants(e)
        if chain_provided:
            # The chain now provides these tags: requiring them no longer holds anyone back.
            gone = set(e.provides)
            for d in dependants:
                d.requires = tuple(t for t in d.requires if t not in gone)
            for t in gone:
                self._requirers.pop(t, None)
            self._promote(dependants)
        elif e.ready:
            self._demote(dependants)

    def _promote(self, queue: list[_Entry]) -> None:
        while queue:
            e = queue.pop()
            if e.ready or self._txs.get(e.hash) is not e or not self._satisfied(e):
                continue
            self._touch(e)
            e.ready = True
            del self._future[e.hash]
            self._ready[e.hash] = e
            queue.extend(d for d in self._dependants(e) if not d.ready)

    def _demote(self, queue: list[_Entry]) -> None:
        while queue:
            e = queue.pop()
            if not e.ready or self._txs.get(e.hash) is not e or self._satisfied(e):
                continue
            self._touch(e)
            e.ready = False
            del self._ready[e.hash]
            self._future[e.hash] = e
            queue.extend(d for d in self._dependants(e) if d.ready)

    def _enforce_future_limit(self) -> None:
        while len(self._future) > self.future_max_count:
            oldest = next(iter(self._future.values()))
            self._remove(oldest, "dropped", "future queue is full")

    def _flush(self) -> None:
        events, self._events = self._events, []
        touched, self._touched = self._touched, {}
        for h, before in touched.items():
            e = self._txs.get(h)
            if e is not None:
                state = "ready" if e.ready else "future"
                if state != before:
                    events.append((h, state, None))
        cb = self.on_status
        if cb is None:
            return
        for h, status, detail in events:
            try:
                cb(h, status, detail)
            except Exception:  # a broken watcher must not break the pool
                log.exception("txpool status callback failed")

    # ------------------------------------------------------------------ bans
    def _ban(self, table: dict[BanKey, float], key: BanKey, now: float) -> None:
        table.pop(key, None)  # re-insert at the end to keep expiry order
        table[key] = now + self.ban_seconds
        if len(table) > self._ban_cap:
            self._trim_expired(now)
            while len(table) > self._ban_cap:  # under a flood, the soonest to expire go first
                del table[next(iter(table))]

    def _is_banned(self, table: dict[BanKey, float], key: BanKey, now: float) -> bool:
        until = table.get(key)
        if until is None:
            return False
        if until > now:
            return True
        del table[key]
        return False

    def _strike(self, signer: AccountId, now: float) -> None:
        count, start = self._strikes.get(signer, (0, now))
        if now - start >= self.ban_seconds:
            self._strikes.pop(signer, None)
            count, start = 0, now
        count += 1
        if count >= STRIKES_TO_BAN:
            self._strikes.pop(signer, None)
            self._ban(self._banned_signers, signer, now)
            log.info("txpool: signer %s banned for %ss", signer.hex(), self.ban_seconds)
            return
        self._strikes[signer] = (count, start)
        while len(self._strikes) > self._ban_cap:
            del self._strikes[next(iter(self._strikes))]

    def _trim_expired(self, now: float) -> None:
        for table in (self._banned, self._banned_signers):
            while table:
                key = next(iter(table))
                if table[key] > now:
                    break
                del table[key]
        while self._strikes:
            key = next(iter(self._strikes))
            if self._strikes[key][1] + self.ban_seconds > now:
                break
            del self._strikes[key]

    @property
    def bytes(self) -> int:
        """Total encoded size of the pooled transactions."""
        return self._size
