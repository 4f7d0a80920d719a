"""A facility archive over a chain made of dicts: devices bound to twins of facilities,
batches signed by real device keys, records committed as the chain would keep them."""

from __future__ import annotations

from pathlib import Path

from twinchain.archive.chain import DeviceBinding
from twinchain.archive.store import ArchiveStore
from twinchain.primitives.keys import Keypair
from twinchain.protocol.telemetry import (
    DEFAULT_METRICS,
    DEFAULT_PUBLIC,
    PRESSURE,
    TEMPERATURE,
    Batch,
    BatchRecord,
    MetricInfo,
    sign_batch,
)

GENESIS = bytes(range(32))
DAY_MS = 86_400_000
T0 = 20_000 * DAY_MS + 3_600_000  # 2024-10-04 01:00 UTC


class FakeChain:
    """The finalized chain as the archive sees it (a ``ChainView``)."""

    def __init__(self) -> None:
        self.records: dict[tuple[bytes, int], BatchRecord] = {}
        self.devices: dict[bytes, DeviceBinding] = {}
        self.twins: dict[int, int | None] = {}
        self.registry = {m[0]: MetricInfo(m[1], m[2], m[3], m[4]) for m in DEFAULT_METRICS}
        self.public: dict[int, frozenset[int]] = {}

    def bind(
        self, device: Keypair, twin: int, facility: int, gateway: Keypair | None, by: Keypair
    ) -> None:
        self.twins[twin] = facility
        self.devices[device.public] = DeviceBinding(
            twin, gateway.public if gateway else None, by.public, True, 0
        )

    def commit(self, batch: Batch, gateway: bytes = b"\0" * 32, block: int = 1) -> BatchRecord:
        """Finalize ``batch``'s commitment: its record, and the device's next sequence."""
        c = batch.commitment()
        d = self.devices[batch.device]
        rec = BatchRecord(d.twin, c.root, c.count, c.first_ts, c.last_ts, gateway, block, 0)
        self.records[(batch.device, batch.seq)] = rec
        self.devices[batch.device] = d._replace(next_seq=max(d.next_seq, batch.seq + 1))
        return rec

    def batch_record(self, device: bytes, seq: int) -> BatchRecord | None:
        return self.records.get((device, seq))

    def device(self, device: bytes) -> DeviceBinding | None:
        return self.devices.get(device)

    def twin_facility(self, twin: int) -> int | None:
        return self.twins.get(twin)

    def metrics(self) -> dict[int, MetricInfo]:
        return dict(self.registry)

    def public_metrics(self, twin: int) -> frozenset[int]:
        return self.public.get(twin, DEFAULT_PUBLIC)


def readings(
    start: int, n: int, step_ms: int = 100, base: int = 20_000
) -> list[tuple[int, int, int]]:
    """``n`` readings alternating temperature and pressure from ``start`` ms."""
    return [
        (TEMPERATURE if i % 2 == 0 else PRESSURE, start + i * step_ms, base + (i * 37) % 1000)
        for i in range(n)
    ]


def make_batch(device: Keypair, twin: int, seq: int, start: int, n: int = 50) -> Batch:
    return sign_batch(device, GENESIS, twin, seq, readings(start, n), public=DEFAULT_PUBLIC)


class Plant:
    """Facility 1 with twin 7 (device ``dev``, relayed by ``gw``) and facility 2 with twin 9
    (device ``other``, relayed by ``gw2``); the archive of facility 1 at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chain = FakeChain()
        self.owner = Keypair.from_dev_name("Alice")
        self.dev, self.gw = Keypair.from_dev_name("Dev1"), Keypair.from_dev_name("Gw1")
        self.other, self.gw2 = Keypair.from_dev_name("Dev2"), Keypair.from_dev_name("Gw2")
        self.chain.bind(self.dev, 7, 1, self.gw, self.owner)
        self.chain.bind(self.other, 9, 2, self.gw2, self.owner)
        self.now = T0 + 3_600_000
        self.store = self.open()

    def open(self, **kw: object) -> ArchiveStore:
        return ArchiveStore(self.path, 1, self.chain, clock=lambda: self.now, **kw)  # type: ignore[arg-type]

    def reopen(self, **kw: object) -> ArchiveStore:
        self.store.close()
        self.store = self.open(**kw)
        return self.store

    def archive(self, seqs: range, start: int = T0, n: int = 50) -> list[Batch]:
        """Sign, commit and deliver batches of ``dev``: archived at once."""
        out = []
        for seq in seqs:
            b = make_batch(self.dev, 7, seq, start + seq * n * 100, n)
            self.chain.commit(b)
            (d,) = self.store.deliver(self.gw.public, [b])
            assert d.status == "archived", d
            out.append(b)
        return out
