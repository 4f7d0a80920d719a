"""What the gateway's stages share (:class:`GatewayState`): the configured devices, the spool
and the one worker thread that touches it, what the gateway knows of the chain, the
extrinsics in flight, the counters, and the signals between the stages: ``batch_ready``
wakes the cutter, ``pack_ready`` the packer.

Each stage keeps its own state to itself (the intake its queue and back-pressure, the cutter
its flush point, the submitter its window and nonce, the finality watch the heads, the
archiver its retry timer).

``to_archive`` holds the batches whose commitments are final and that wait for the facility
archive to answer "archived"; ``archive_ready`` wakes the archiver.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twinchain.client.common import Codec
from twinchain.gateway.config import GatewayConfig
from twinchain.gateway.encoding import CachedKeypair
from twinchain.gateway.payloads import Metrics
from twinchain.gateway.spool import BatchRow, PendingRow, Spool, XtRow
from twinchain.primitives.keys import Keypair
from twinchain.protocol.jsonrpc import from_hex, to_hex
from twinchain.protocol.telemetry import DEFAULT_METRICS, DEFAULT_PUBLIC

T = TypeVar("T")

LATENCY_BUCKET_MS = 50
LATENCY_BUCKETS = 1200  # 60 s; later lands in the last bucket


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Device:
    name: str
    key: bytes
    keypair: Keypair
    twin: int
    topic: str | None
    next_seq: int = 0
    usable: bool = True  # False: the chain says it is not ours to submit
    problem: str = ""
    pending: list[PendingRow] = field(default_factory=list)
    pending_n: int = 0
    last_ts: dict[int, int] = field(default_factory=dict)  # newest accepted ts per metric


@dataclass
class InFlight:
    row: XtRow
    batches: list[BatchRow]
    submitted_at: float = 0.0
    tries: int = 0  # submissions since it was signed (or since finality last resumed)
    due_at: float = 0.0  # when to send it again (or check it, while ``on_best``)
    on_best: bool = False  # its nonce is used on the best chain: finality settles it
    # The runtime spec version its signature names (None: not known yet, as for extrinsics
    # reloaded from the spool: checked against the signature when it matters).
    spec_version: int | None = None


class Stats:
    """Counters of this run (the spool keeps the lifetime totals) and rate windows."""

    def __init__(self) -> None:
        self.received: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.spooled = 0
        self.batches_signed = 0
        self.xts_submitted = 0
        self.submit_attempts = 0  # every author_submitExtrinsic sent, accepted or not
        self.submit_errors: dict[str, int] = {}
        self.readings_final = 0
        self.batches_final = 0
        self.batches_lost = 0
        self.batches_requeued = 0
        self.batches_resigned = 0  # signed again with the twin's current disclosure policy
        self.xts_resigned = 0  # extrinsics signed again for a new runtime spec version
        self.batches_archived = 0
        self.readings_archived = 0
        self.archive_refused: dict[str, int] = {}  # by reason
        self.archive_attempts = 0  # archive_deliver calls
        self.archive_latency = [0] * LATENCY_BUCKETS  # seen final -> archived
        self.latency = [0] * LATENCY_BUCKETS  # reading arrival -> seen finalized
        self.chain_latency = [0] * LATENCY_BUCKETS  # extrinsic submitted -> seen finalized
        self._recent: deque[tuple[float, int, int]] = deque()  # (t, spooled, final)

    def tick(self) -> tuple[float, float]:
        """(spooled readings/s, finalized readings/s) over the last ~10 s."""
        t = time.monotonic()
        self._recent.append((t, self.spooled, self.readings_final))
        while len(self._recent) > 2 and t - self._recent[0][0] > 10:
            self._recent.popleft()
        t0, s0, f0 = self._recent[0]
        dt = t - t0
        if dt <= 0:
            return 0.0, 0.0
        return (self.spooled - s0) / dt, (self.readings_final - f0) / dt

    def observe_latency(self, ms: int, count: int, hist: list[int] | None = None) -> None:
        b = min(max(ms, 0) // LATENCY_BUCKET_MS, LATENCY_BUCKETS - 1)
        (self.latency if hist is None else hist)[b] += count

    def percentile(self, q: float, hist: list[int] | None = None) -> float | None:
        hist = self.latency if hist is None else hist
        total = sum(hist)
        if not total:
            return None
        target = q * total
        acc = 0
        for i, c in enumerate(hist):
            acc += c
            if acc >= target:
                return (i + 1) * LATENCY_BUCKET_MS / 1000
        return None


@dataclass
class ChainFacts:
    """What the gateway knows of the chain: kept in the spool (genesis, spec version), or
    learnt on connecting (slot length, the submit call's index, the metadata's codec)."""

    genesis: bytes | None = None
    spec_version: int = 0
    slot_ms: int = 0  # the chain's slot length (0: not known yet)
    window_ms: int = 0  # Telemetry's window: no batch spans two (0: not known yet)
    submit_index: tuple[int, int] | None = None  # Telemetry.submit's (pallet, call) index
    codec: Codec | None = None

    def key(self, pallet: str, item: str, *keys: Any) -> str:
        """The hex storage key of ``pallet.item[keys]``."""
        assert self.codec is not None
        return to_hex(self.codec.storage_key(pallet, item, keys))

    def decode(self, pallet: str, item: str, value: Any) -> Any:
        """A ``state_getStorage`` result decoded with the item's type (absent: its default)."""
        assert self.codec is not None
        raw = None if value is None else from_hex(value, "storage value")
        return self.codec.decode_value(pallet, item, raw)


class GatewayState:
    """The devices, spool, chain facts, extrinsics in flight and counters the stages share."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.b = cfg.batching
        self.keypair = CachedKeypair.of(cfg.gateway_keypair())
        keys = cfg.device_keypairs()
        self.devices = {
            d.name: Device(d.name, d.key, CachedKeypair.of(keys[d.name]), d.twin, d.topic)
            for d in cfg.devices
        }
        self.by_topic = {d.topic: d for d in self.devices.values() if d.topic}
        self.by_key = {d.key: d for d in self.devices.values()}
        self.metrics = Metrics({m[0]: (m[1], m[3]) for m in DEFAULT_METRICS})
        self.stats = Stats()
        self.chain = ChainFacts()
        self.spool: Spool | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self.inflight: dict[int, InFlight] = {}
        # Twin -> its public metrics (the chain's disclosure policy; DEFAULT_PUBLIC until
        # the chain says otherwise): what a new batch summarizes.
        self.policy: dict[int, frozenset[int]] = {d.twin: DEFAULT_PUBLIC for d in cfg.devices}
        self.to_archive: dict[int, BatchRow] = {}  # batch id -> final batch, not archived
        self.archive_n = 0  # readings in ``to_archive``
        self.refused_n = 0  # batches the archive refused, kept in the spool
        self.archive_error = ""  # why the archive cannot be reached ("" when it answers)
        self.archive_ready = asyncio.Event()
        self.unpacked_n = 0  # readings in batches not yet packed
        self.last_final: tuple[bytes, int, int] | None = None  # (device, seq, block)
        self.connected = False  # to the node
        # Source name -> what it reports (plain JSON: position, refusals by reason, error).
        self.sources: dict[str, dict[str, Any]] = {}
        self.batch_ready = asyncio.Event()
        self.pack_ready = asyncio.Event()

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the spool's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def close_db(self) -> None:
        self._db.shutdown(wait=True)

    def pending_readings(self) -> int:
        """Readings spooled and not cut into batches yet."""
        return sum(d.pending_n for d in self.devices.values())

    def flying_readings(self) -> int:
        """Readings in extrinsics submitted and not settled."""
        return sum(x.row.readings for x in self.inflight.values())

    def archive_readings(self) -> int:
        """Readings final on chain that the archive has not taken yet."""
        return self.archive_n

    def archive_lag_s(self) -> float:
        """How long the oldest final batch has waited for the archive (0: none waits)."""
        if not self.to_archive:
            return 0.0
        oldest = min(b.final_ms for b in self.to_archive.values())
        return max(0.0, (now_ms() - oldest) / 1000)

    def backlog(self) -> int:
        """Readings in the spool that are not final yet, or final and not archived: what
        back-pressure bounds (an archive that does not answer pauses the sources too)."""
        return (
            self.pending_readings()
            + self.unpacked_n
            + self.flying_readings()
            + self.archive_readings()
        )


__all__ = [
    "LATENCY_BUCKETS",
    "LATENCY_BUCKET_MS",
    "ChainFacts",
    "Device",
    "GatewayState",
    "InFlight",
    "Stats",
    "now_ms",
]
