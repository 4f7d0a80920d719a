"""Gossip: three GossipSub topics per chain, validation before forwarding, paced publishing.

Topics are ``/twinchain/<genesis-hex>/blocks|transactions|votes/1``. Every message is a
canonical ``[kind, payload]`` (``twinchain.p2p.wire``).

Inbound: a synchronous GossipSub topic validator runs for each new message before py-libp2p
forwards it. It checks the sender's rate for the topic (a token bucket per peer and topic: the
spam protection, deliberately per topic and scored), decodes the envelope and hands the payload
to the node. Only ACCEPTed messages are forwarded, so an invalid block never travels further
than one hop; REJECT lowers the forwarding peer's score.

Outbound: py-libp2p's ``publish`` neither waits nor reports; each peer's queue holds 32 RPCs and
silently drops the rest. So ``publish_*`` only enqueue, and one sender task publishes in
priority order (blocks, votes, transaction batches), pausing while any peer's queue is more than
three quarters full (back-pressure) and spacing publishes a little (pacing). Transactions are
collected and published as one batch every ``tx_batch_interval``. Nothing here assumes delivery:
sync repairs any missed block.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio
from libp2p.abc import ISubscriptionAPI
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from twinchain.p2p.abc import NetworkHandler, Verdict
from twinchain.p2p.scoring import Penalty
from twinchain.p2p.wire import (
    MAX_GOSSIP_BYTES,
    GossipKind,
    ProtocolError,
    decode_topic_message,
    encode_gossip,
)
from twinchain.primitives.codec import CodecError
from twinchain.primitives.log import TRACE
from twinchain.primitives.types import Header, decode_block_or_compact

log = logging.getLogger("twinchain.p2p.gossip")


class Topics:
    """The chain's topic names, namespaced by its genesis hash."""

    def __init__(self, genesis_hash: bytes) -> None:
        prefix = f"/twinchain/{genesis_hash.hex()}"
        self.blocks = f"{prefix}/blocks/1"
        self.transactions = f"{prefix}/transactions/1"
        self.votes = f"{prefix}/votes/1"

    def by_kind(self) -> dict[GossipKind, str]:
        return {
            GossipKind.BLOCK: self.blocks,
            GossipKind.VOTE: self.votes,
            GossipKind.TRANSACTIONS: self.transactions,
        }


@dataclass(frozen=True)
class GossipLimits:
    """Rates and sizes of the gossip layer (per peer, per topic, for inbound messages)."""

    #: Inbound rate (messages per second) and burst per forwarding peer, per topic. Blocks come
    #: one per slot per author; votes one per block per authority; transaction batches at most
    #: 1/tx_batch_interval per publishing node. Each limit leaves generous headroom for a peer
    #: that relays for many others, while still capping a flooder.
    blocks_rate: float = 20.0
    blocks_burst: float = 40.0
    votes_rate: float = 200.0
    votes_burst: float = 400.0
    transactions_rate: float = 200.0
    transactions_burst: float = 400.0
    #: Transactions are published in batches, at most this often. Each gossip message costs
    #: py-libp2p far more per message than per byte (framing, encryption, a task per copy, up
    #: to three copies per peer): at 50 ms a loaded validator spent ~10 % more CPU than at
    #: 100 ms, for 25 ms less latency on average.
    tx_batch_interval: float = 0.1
    tx_batch_max_count: int = 1024
    tx_batch_max_bytes: int = 512 * 1024
    #: Unsent transactions kept at most (beyond, new ones are dropped: sync and the pool of the
    #: author repair nothing here, but the submitter's own node still has them).
    tx_pending_max: int = 20_000
    #: Outbound queues (oldest dropped beyond).
    blocks_outbox: int = 64
    votes_outbox: int = 2048
    tx_batches_outbox: int = 256
    #: Back-pressure: wait while any peer's py-libp2p queue (capacity 32) holds this many RPCs,
    #: but never longer than ``backpressure_max_wait`` for one message.
    queue_high_water: int = 24
    backpressure_max_wait: float = 1.0
    #: Pacing between two of our own publishes.
    publish_spacing: float = 0.002


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


# What each verdict means for a gossiped block or vote, for the debug lines.
_BLOCK_VERDICTS = {
    Verdict.ACCEPT: "imported, forwarded",
    Verdict.IGNORE: "not imported (known, a future slot or an unknown parent: sync repairs it)",
    Verdict.REJECT: "rejected (invalid)",
}
_VOTE_VERDICTS = {
    Verdict.ACCEPT: "accepted, forwarded",
    Verdict.IGNORE: "ignored (a round too far from ours)",
    Verdict.REJECT: "rejected (undecodable, another set, not an authority or a bad signature)",
}


#: (peer, header, verdict) of each gossiped block the node was given.
BlockSeen = Callable[[str, Header, Verdict], None]
#: (peer, penalty, reason).
Reporter = Callable[[str, int, str], None]


def call_handler(what: str, fn: Callable[..., Verdict], *args: object) -> Verdict:
    """Call a node handler; a raised exception is logged and counts as REJECT."""
    try:
        verdict = fn(*args)
    except Exception:
        log.exception("network handler %s raised; treating the data as invalid", what)
        return Verdict.REJECT
    if not isinstance(verdict, Verdict):
        log.error("network handler %s returned %r, not a Verdict; ignoring", what, verdict)
        return Verdict.IGNORE
    return verdict


class GossipService:
    """Subscribes to the chain's topics, validates inbound messages, publishes ours."""

    def __init__(
        self,
        handler: NetworkHandler,
        topics: Topics,
        *,
        report: Reporter,
        is_banned: Callable[[str], bool],
        on_block_seen: BlockSeen,
        limits: GossipLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler = handler
        self.topics = topics
        self.limits = limits or GossipLimits()
        self._report = report
        self._is_banned = is_banned
        self._on_block_seen = on_block_seen
        self._clock = clock
        self._pubsub: Pubsub | None = None
        self._me: ID | None = None
        self._buckets: dict[tuple[str, GossipKind], TokenBucket] = {}
        lim = self.limits
        self._blocks: deque[bytes] = deque(maxlen=lim.blocks_outbox)
        #: Votes and commits (the votes topic), each as its kind and payload.
        self._votes: deque[tuple[GossipKind, bytes]] = deque(maxlen=lim.votes_outbox)
        self._tx_pending: list[bytes] = []
        self._tx_batches: deque[bytes] = deque(maxlen=lim.tx_batches_outbox)
        self._wake = trio.Event()
        #: Since when each peer's outbound queue has been at the high-water mark (trio time).
        self._full_since: dict[ID, float] = {}
        #: Counters for tests and metrics.
        self.published: dict[GossipKind, int] = dict.fromkeys(GossipKind, 0)
        self.dropped_outbound = 0

    # ------------------------------------------------------------------ publishing
    def publish_block(self, raw: bytes) -> None:
        if len(self._blocks) == self._blocks.maxlen:
            self.dropped_outbound += 1
            log.debug("outbound block queue full (%d): dropped the oldest", len(self._blocks))
        self._blocks.append(raw)
        self._wake.set()

    def publish_vote(self, raw: bytes, kind: GossipKind = GossipKind.VOTE) -> None:
        """Queue a vote (or, with ``kind`` COMMIT, a finality commit) for the votes topic."""
        if len(self._votes) == self._votes.maxlen:
            self.dropped_outbound += 1
            log.debug("outbound vote queue full (%d): dropped the oldest", len(self._votes))
        self._votes.append((kind, raw))
        self._wake.set()

    def publish_transaction(self, raw: bytes) -> None:
        if len(self._tx_pending) >= self.limits.tx_pending_max:
            self.dropped_outbound += 1
            if self.dropped_outbound % 1000 == 1:  # one line per thousand, not per transaction
                log.debug(
                    "%d transactions wait to be gossiped: dropping new ones", len(self._tx_pending)
                )
            return
        self._tx_pending.append(raw)

    def _next_outbound(self) -> tuple[GossipKind, bytes] | None:
        if self._blocks:
            raw = self._blocks.popleft()
            data = encode_gossip(GossipKind.BLOCK, raw)
            if len(data) > MAX_GOSSIP_BYTES:
                # Too big for one pubsub RPC: peers fetch it by sync after their next status.
                log.info("block of %d bytes too large to gossip; peers will sync it", len(raw))
                return self._next_outbound()
            return GossipKind.BLOCK, data
        if self._votes:
            kind, raw = self._votes.popleft()
            return GossipKind.VOTE, encode_gossip(kind, raw)
        if self._tx_batches:
            return GossipKind.TRANSACTIONS, self._tx_batches.popleft()
        return None

    def _cut_batches(self) -> None:
        lim = self.limits
        batch: list[bytes] = []
        size = 0
        pending, self._tx_pending = self._tx_pending, []
        for raw in pending:
            if len(raw) + 16 > lim.tx_batch_max_bytes:
                self.dropped_outbound += 1  # larger than any batch may be
                continue
            if batch and (
                len(batch) >= lim.tx_batch_max_count
                or size + len(raw) + 16 > lim.tx_batch_max_bytes
            ):
                self._queue_batch(batch)
                batch, size = [], 0
            batch.append(raw)
            size += len(raw) + 16  # msgpack bin header and array slack
        if batch:
            self._queue_batch(batch)

    def _queue_batch(self, batch: list[bytes]) -> None:
        if len(self._tx_batches) == self._tx_batches.maxlen:
            self.dropped_outbound += len(batch)
        self._tx_batches.append(encode_gossip(GossipKind.TRANSACTIONS, batch))

    async def _batcher(self) -> None:
        while True:
            await trio.sleep(self.limits.tx_batch_interval)
            if self._tx_pending:
                self._cut_batches()
                self._wake.set()

    def _draining_queue_lengths(self, pubsub: Pubsub) -> list[int]:
        """The lengths of the peer queues that back-pressure waits for.

        A queue that stayed at the high-water mark for ``backpressure_max_wait`` belongs to a
        peer that takes nothing (a cut link whose TCP connection is not yet known dead: that
        takes the kernel minutes): it is left out until it drains below the mark again. Else
        one unreachable peer made every one of our publishes wait the full second, for
        everyone: in the chaos run's 3|1 partition the three connected validators' blocks and
        votes trickled out at one a second, and finality stalled until the fourth was back.
        """
        lim = self.limits
        now = trio.current_time()
        out: list[int] = []
        for peer, q in list(pubsub.peer_queues.items()):
            n = len(q)
            if n < lim.queue_high_water:
                self._full_since.pop(peer, None)
            elif now - self._full_since.setdefault(peer, now) < lim.backpressure_max_wait:
                out.append(n)
        for peer in [p for p in self._full_since if p not in pubsub.peer_queues]:
            del self._full_since[peer]
        return out

    async def _wait_for_room(self, pubsub: Pubsub) -> None:
        """Back-pressure: let full peer queues drain before adding to them."""
        lim = self.limits
        start = trio.current_time()
        deadline = start + lim.backpressure_max_wait
        fullest = 0
        while trio.current_time() < deadline:
            queues = self._draining_queue_lengths(pubsub)
            if not queues or max(queues) < lim.queue_high_water:
                if fullest:
                    log.debug(
                        "back-pressure: waited %.0f ms for peer queues (fullest %d RPCs)",
                        (trio.current_time() - start) * 1000,
                        fullest,
                    )
                return
            fullest = max(fullest, max(queues))
            await trio.sleep(0.005)
        log.debug(
            "peer queues still full after %.1f s; publishing anyway", lim.backpressure_max_wait
        )

    async def _sender(self, pubsub: Pubsub) -> None:
        topic_of = self.topics.by_kind()
        while True:
            item = self._next_outbound()
            if item is None:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            kind, data = item
            await self._wait_for_room(pubsub)
            try:
                await pubsub.publish(topic_of[kind], data)
                self.published[kind] += 1
                log.log(TRACE, "published a %s (%d bytes)", kind.name.lower(), len(data))
            except Exception:  # py-libp2p may raise while peers come and go
                log.exception("publishing a %s failed", kind.name.lower())
            await trio.sleep(self.limits.publish_spacing)

    # ------------------------------------------------------------------ receiving
    def _validator(self, kind: GossipKind) -> Callable[[ID, rpc_pb2.Message], bool]:
        def validate(forwarder: ID, msg: rpc_pb2.Message) -> bool:
            me = self._me
            if forwarder == me:
                return True  # our own publish: the node already has it
            if msg.from_id == (me.to_bytes() if me is not None else b""):
                return False  # our own message relayed back
            peer = forwarder.to_base58()
            if self._is_banned(peer):
                return False
            return self._accept(peer, kind, msg.data)

        return validate

    def _bucket(self, peer: str, kind: GossipKind) -> TokenBucket:
        b = self._buckets.get((peer, kind))
        if b is None:
            lim = self.limits
            rate, burst = {
                GossipKind.BLOCK: (lim.blocks_rate, lim.blocks_burst),
                GossipKind.VOTE: (lim.votes_rate, lim.votes_burst),
                GossipKind.TRANSACTIONS: (lim.transactions_rate, lim.transactions_burst),
            }[kind]
            b = self._buckets[(peer, kind)] = TokenBucket(rate, burst, self._clock)
        return b

    def _accept(self, peer: str, kind: GossipKind, data: bytes) -> bool:
        """Validate one inbound message; True: forward it to other peers."""
        if not self._bucket(peer, kind).take():
            log.debug("%s gossip from %s over its rate limit: dropped", kind.name.lower(), peer)
            self._report(peer, Penalty.RATE_LIMIT, f"{kind.name.lower()} gossip rate exceeded")
            return False
        try:
            kind, payload = decode_topic_message(data, kind)
        except ProtocolError as exc:
            log.debug("undecodable %s gossip from %s: %s", kind.name.lower(), peer, exc)
            self._report(peer, Penalty.GARBAGE, f"bad gossip: {exc}")
            return False
        if kind is GossipKind.BLOCK:
            assert isinstance(payload, bytes)
            try:
                header = decode_block_or_compact(payload).header
            except CodecError as exc:
                self._report(peer, Penalty.INVALID_BLOCK, f"undecodable block: {exc}")
                return False
            verdict = call_handler("on_block", self.handler.on_block, peer, payload)
            log.debug(
                "block #%d (0x%s…) from %s: %s",
                header.number,
                header.hash.hex()[:12],
                peer,
                _BLOCK_VERDICTS[verdict],
            )
            if verdict is Verdict.REJECT:
                self._report(peer, Penalty.INVALID_BLOCK, f"invalid block #{header.number}")
            self._on_block_seen(peer, header, verdict)
        elif kind is GossipKind.COMMIT:
            verdict = call_handler("on_commit", self.handler.on_commit, peer, payload)
            log.debug("finality commit from %s: %s", peer, verdict.value)
            if verdict is Verdict.REJECT:
                self._report(peer, Penalty.INVALID_VOTE, "invalid finality commit")
        elif kind is GossipKind.VOTE:
            verdict = call_handler("on_vote", self.handler.on_vote, peer, payload)
            # Accepted votes only at trace: there are a few per block per authority.
            level = TRACE if verdict is Verdict.ACCEPT else logging.DEBUG
            if log.isEnabledFor(level) and isinstance(payload, bytes):
                log.log(
                    level,
                    "%s from %s: %s",
                    self.handler.describe_vote(payload),
                    peer,
                    _VOTE_VERDICTS[verdict],
                )
            if verdict is Verdict.REJECT:
                self._report(peer, Penalty.INVALID_VOTE, "invalid vote")
        else:
            verdict = call_handler("on_transactions", self.handler.on_transactions, peer, payload)
            if verdict is not Verdict.ACCEPT:
                log.debug(
                    "%d transactions from %s: %s",
                    len(payload) if isinstance(payload, list) else 0,
                    peer,
                    "rejected (invalid)" if verdict is Verdict.REJECT else "ignored",
                )
            if verdict is Verdict.REJECT:
                self._report(peer, Penalty.INVALID_TRANSACTIONS, "invalid transactions")
        return verdict is Verdict.ACCEPT

    def forget_peer(self, peer: str) -> None:
        for kind in GossipKind:
            self._buckets.pop((peer, kind), None)

    async def _drain(self, subscription: ISubscriptionAPI) -> None:
        # Messages reach the node in the validator; the subscription queue only needs emptying
        # (py-libp2p drops, with a warning, what does not fit in it).
        while True:
            await subscription.get()

    # ------------------------------------------------------------------ task
    async def run(
        self, pubsub: Pubsub, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe, then publish until cancelled. ``started()`` once subscribed."""
        self._pubsub = pubsub
        self._me = pubsub.my_id
        async with trio.open_nursery() as nursery:
            for kind, topic in self.topics.by_kind().items():
                pubsub.set_topic_validator(topic, self._validator(kind), is_async_validator=False)
                subscription = await pubsub.subscribe(topic)
                nursery.start_soon(self._drain, subscription)
            nursery.start_soon(self._batcher)
            nursery.start_soon(self._sender, pubsub)
            task_status.started()
