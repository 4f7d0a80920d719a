"""A finalized chain with a twin whose device's batches are committed on chain and archived in
its facility's real ArchiveStore: what the authorized-read tests (server and client) share.

Facility 0 (operator Alice, audited by Bob), twin 0 owned by Alice with one device relayed by
Charlie (its gateway) and a manual (``MANUAL``) listed on chain, Eve granted READ_TELEMETRY,
Ferdie with no right at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stub_node import StubNode

from twinchain.archive.chain import BlockchainView
from twinchain.archive.store import ArchiveStore
from twinchain.primitives.hashing import blake3_hash
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.telemetry import (
    DEFAULT_PUBLIC,
    TEMPERATURE,
    UNITS_PRODUCED,
    Batch,
    sign_batch,
)
from twinchain.runtime.pallets.equipment.types import READ_TELEMETRY, Envelope, Spec

ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE = (
    Keypair.from_dev_name(n) for n in ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
)
DEVICE = Keypair.from_dev_name("Device1")
H = b"\x05" * 32
FAR = 10**13
SLOT = 1001
NOW = SLOT * 1000
TWIN = 0
RPC_URL = "https://plant-berlin.example:9944"
SPEC = Spec([(TEMPERATURE, 60_000)], [Envelope(TEMPERATURE, -20_000, 90_000, 0)])
# The twin's manual: its hash is on chain (Equipment.add_document), its content in the archive.
MANUAL = b"Mill M-1 operating manual, rev. C\n" * 200


def readings(seq: int, n: int) -> list[tuple[int, int, int]]:
    """``n`` readings of batch ``seq``: temperature and units produced, alternating."""
    base = NOW - 60_000 + seq * 20_000
    out = []
    for i in range(n):
        metric = TEMPERATURE if i % 2 == 0 else UNITS_PRODUCED
        out.append((metric, base + i * 100, 20_000 + 37 * i + seq if metric == TEMPERATURE else i))
    return out


def signed_batches(node: StubNode) -> list[Batch]:
    g = node.chain.genesis_hash
    return [
        sign_batch(DEVICE, g, TWIN, 0, readings(0, 41), DEFAULT_PUBLIC),
        sign_batch(DEVICE, g, TWIN, 1, readings(1, 30), DEFAULT_PUBLIC),
    ]


def populate(node: StubNode, batches: list[Batch]) -> bytes:
    """One finalized block: roles, a verified facility, an active twin with its device bound
    to Charlie, Eve's READ_TELEMETRY grant and the batches' commitments."""
    client = node.chain
    rt = client.runtime
    nonces: dict[bytes, int] = {}

    def xt(who: Keypair, pallet: str, name: str, *args: Any) -> bytes:
        n = nonces.get(who.public, 0)
        nonces[who.public] = n + 1
        call = rt.call_by_name(pallet, name, *args)
        return Extrinsic.sign(call, who, n, client.genesis_hash, rt.spec_version).encode()

    def sudo(pallet: str, name: str, *args: Any) -> bytes:
        return xt(ALICE, "Sudo", "sudo", list(rt.call_by_name(pallet, name, *args).to_wire()))

    ready = [
        sudo("Roles", "force_grant", ALICE.public, "FacilityOperator"),
        sudo("Roles", "force_grant", BOB.public, "CertifiedAuditor"),
        sudo("Roles", "force_grant", ALICE.public, "EquipmentManufacturer"),
        sudo("Roles", "force_grant", CHARLIE.public, "Gateway"),
        xt(ALICE, "Facility", "register", "Plant", "Berlin", ["milling"], DAVE.public),
        xt(BOB, "Facility", "verify", 0, H, True, FAR),
        xt(ALICE, "Facility", "set_rpc_url", 0, RPC_URL),
        xt(ALICE, "Equipment", "mint", "mill", "M-1", "SN-1", SPEC, ALICE.public),
        xt(ALICE, "Equipment", "commission", TWIN, 0),
        xt(ALICE, "Equipment", "activate", TWIN),
        xt(ALICE, "Telemetry", "bind_device", TWIN, DEVICE.public, CHARLIE.public),
        xt(ALICE, "Equipment", "grant_access", TWIN, EVE.public, READ_TELEMETRY, FAR),
        xt(ALICE, "Equipment", "add_document", TWIN, "manual", blake3_hash(MANUAL)),
        xt(CHARLIE, "Telemetry", "submit", [b.commitment() for b in batches]),
    ]
    node.slot = SLOT
    _, result = client.propose(ALICE, SLOT, NOW, [(b"", x) for x in ready])
    assert all(o.success for o in result.outcomes), [o.error for o in result.outcomes]
    assert client.self_finalize(ALICE, result.hash)
    return result.hash


@contextmanager
def archived_chain(node: StubNode, path: Path) -> Iterator[tuple[ArchiveStore, list[Batch]]]:
    """The chain populated and finalized, its batches delivered by Charlie and archived."""
    batches = signed_batches(node)
    populate(node, batches)
    store = ArchiveStore(path, 0, BlockchainView(node.chain))
    try:
        got = store.deliver(CHARLIE.public, batches)
        assert [d.status for d in got] == ["archived", "archived"], got
        yield store, batches
    finally:
        store.close()


def temperatures(batches: list[Batch], lo: int = 0, hi: int = 2**63) -> list[tuple[int, int]]:
    """(timestamp, value) of the temperature readings in ``[lo, hi]``, by time."""
    return sorted(
        (ts, v) for b in batches for m, ts, v in b.readings if m == TEMPERATURE and lo <= ts <= hi
    )
