"""What the archive reads of the chain: the seam between the facility archive and the node.

The archive trusts only what is final. :class:`ChainView` is everything it asks: a batch's
record (its committed Merkle root, count and time span), a device's binding, a twin's
facility and the metric registry. :class:`BlockchainView` answers from a node's
:class:`~twinchain.node.blockchain.Blockchain` at its finalized block; tests answer from
dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from twinchain.protocol.telemetry import BatchRecord, MetricInfo
from twinchain.runtime.overlay import Overlay
from twinchain.runtime.runtime import Runtime

if TYPE_CHECKING:
    from twinchain.node.blockchain import Blockchain


class DeviceBinding(NamedTuple):
    """A device key as the chain binds it: its twin, the gateway that relays its batches
    (None: whoever bound it, ``bound_by``, relays them), whether it is bound now, and the
    next sequence number the chain expects of it."""

    twin: int
    gateway: bytes | None
    bound_by: bytes
    active: bool
    next_seq: int

    @property
    def relay(self) -> bytes:
        """The one account allowed to deliver this device's batches."""
        return self.gateway if self.gateway is not None else self.bound_by


class ChainView(Protocol):
    """The finalized chain as the archive sees it. Every answer is read at one finalized
    block (never a best block that could still be reverted); calls may come from worker
    threads."""

    def batch_record(self, device: bytes, seq: int) -> BatchRecord | None:
        """The record of batch ``seq`` of ``device`` if its commitment is final, else None."""
        ...

    def device(self, device: bytes) -> DeviceBinding | None:
        """The device's binding, None if the chain never bound it."""
        ...

    def twin_facility(self, twin: int) -> int | None:
        """The facility a twin is installed in, None if none (or no such twin)."""
        ...

    def metrics(self) -> dict[int, MetricInfo]:
        """The registered metrics by id."""
        ...

    def public_metrics(self, twin: int) -> frozenset[int]:
        """The metrics the twin's owner makes public (its disclosure policy)."""
        ...


class BlockchainView:
    """:class:`ChainView` over a node's chain, read at its finalized block through a runtime
    of its own (as the ``twin_*`` RPC reads do), so the runtime that imports blocks is never
    touched.

    Safe from a worker thread: a finalized state is immutable, and the node's trie-node cache
    only ever gains or drops whole entries (single dict operations). A state pruned while
    being read raises ``StateError``; the archive tries again at the next finalized block."""

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self._at: tuple[bytes, Runtime] | None = None

    def _runtime(self) -> Runtime:
        head = self.chain.finalized
        at = self._at
        if at is not None and at[0] == head.hash:
            return at[1]
        rt = Runtime(self.chain.genesis_hash)
        rt.state = Overlay(self.chain.state_at(head.hash))
        self._at = (head.hash, rt)
        return rt

    def batch_record(self, device: bytes, seq: int) -> BatchRecord | None:
        return self._runtime().telemetry.batch(device, seq)

    def device(self, device: bytes) -> DeviceBinding | None:
        d = self._runtime().telemetry.device(device)
        if d is None:
            return None
        return DeviceBinding(d.twin, d.gateway, d.bound_by, d.active, d.next_seq)

    def twin_facility(self, twin: int) -> int | None:
        t = self._runtime().equipment.twin(twin)
        return None if t is None else t.facility

    def metrics(self) -> dict[int, MetricInfo]:
        return dict(self._runtime().telemetry.Metrics.iter())

    def public_metrics(self, twin: int) -> frozenset[int]:
        return frozenset(self._runtime().telemetry.public_metrics(twin))


__all__ = ["BlockchainView", "ChainView", "DeviceBinding"]
