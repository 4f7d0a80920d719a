"""Telemetry throughput in block import: commitments (and the readings they commit) per
second for a block full of device-signed batch commitments, re-executed by a second node.

The chain receives only each batch's commitment (count, time span, Merkle root, the public
metrics' summaries, the device's signature); its readings go to the facility archive. A dev
chain gets gateways, twins and device keys at genesis. Each batch of ``--readings`` readings
(condition and production metrics; the production ones private) is signed, and an author
fills one block with ``submit`` extrinsics (``--batches-per-xt`` commitments each) until the
block's weight or length is used up; a fresh client then imports it (extrinsic signatures in
one batch verification, each extrinsic's device signatures in one more, the summaries checked
and aggregated, the state root recomputed and the block written). Printed, from the same run:

* commitments/s and committed readings/s of the full import, with the extension as built
  (one thread: one core) and on the pure-Python fallback when the extension is available,
  and their ratio; block bytes per committed reading;
* how much of the import is device signatures: one ``verify_batch`` over every device
  signature of the block (what :meth:`Telemetry.pre_verify` does) against the import time;
* the import of a node that admitted the extrinsics by gossip first: their signatures and
  their devices' were checked on admission, and the import skips them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from twinchain import native
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import DEV_ENDOWMENT, dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Block, Extrinsic
from twinchain.protocol.telemetry import (
    BAD_UNITS,
    DEFAULT_PUBLIC,
    ENERGY,
    GOOD_UNITS,
    POWER,
    TEMPERATURE,
    UNITS_PRODUCED,
    sign_batch,
)
from twinchain.runtime.pallets.telemetry import (
    MAX_DEVICES_PER_TWIN,
    forget_good_signatures,
    remember_good_signatures,
)

SLOT = 10_000
NOW = SLOT * 1000
METRICS = (TEMPERATURE, POWER, ENERGY, UNITS_PRODUCED, GOOD_UNITS, BAD_UNITS)


def _spec(devices: int, gateways: int) -> Any:
    spec = dev_spec()
    g = spec.genesis
    g["balances"]["balances"] += [[f"//bench-gw-{i}", DEV_ENDOWMENT] for i in range(gateways)]
    g["roles"] = {
        "grants": [["//Alice", "EquipmentManufacturer"]]
        + [[f"//bench-gw-{i}", "Gateway"] for i in range(gateways)]
    }
    twins = (devices + MAX_DEVICES_PER_TWIN - 1) // MAX_DEVICES_PER_TWIN
    twin = {"manufacturer": "//Alice", "class": "cnc-mill", "model": "M", "lifecycle": "Active"}
    envelope = [[1, -20_000, 150_000, 50_000]]
    g["equipment"] = {
        "twins": [twin | {"serial": f"S{t}", "envelope": envelope} for t in range(twins)]
    }
    g["telemetry"] = {
        "devices": [
            {"device": f"//bench-dev-{d}", "twin": d // MAX_DEVICES_PER_TWIN}
            for d in range(devices)
        ]
    }
    return spec


def _readings(device: int, seq: int, n: int) -> list[tuple[int, int, int]]:
    """``n`` in-envelope readings; timestamps grow per device so none is flagged, and a
    batch never crosses a window boundary (the dev chain's windows are an hour)."""
    base = NOW - 3_000_000 + seq * n
    return [
        (METRICS[k % len(METRICS)], base + k, 20_000 + (device * 7 + k) % 1_000) for k in range(n)
    ]


def _extrinsics(
    client: Blockchain, n_batches: int, per_xt: int, readings: int, devices: int, gateways: int
) -> tuple[list[bytes], list[Any]]:
    rt = client.runtime
    devs = [Keypair.from_dev_name(f"bench-dev-{d}") for d in range(devices)]
    gws = [Keypair.from_dev_name(f"bench-gw-{i}") for i in range(gateways)]
    seqs = [0] * devices
    batches = []
    for i in range(n_batches):
        d = i % devices
        twin = d // MAX_DEVICES_PER_TWIN
        rs = _readings(d, seqs[d], readings)
        b = sign_batch(devs[d], client.genesis_hash, twin, seqs[d], rs, DEFAULT_PUBLIC)
        batches.append(b.commitment())
        seqs[d] += 1
    xts = []
    for j, start in enumerate(range(0, n_batches, per_xt)):
        call = rt.call_by_name("Telemetry", "submit", batches[start : start + per_xt])
        gw = gws[j % gateways]
        xt = Extrinsic.sign(call, gw, j // gateways, client.genesis_hash, rt.spec_version)
        xts.append(xt.encode())
    return xts, batches


def _import(
    spec: Any,
    raw: bytes,
    verified: list[bytes] | None = None,
    known: list[tuple[bytes, bytes, bytes]] | None = None,
    repeat: int = 3,
) -> float:
    """Best of ``repeat`` imports, each by a fresh client (the first run also warms caches).
    ``verified``: extrinsics whose signature the node's pool checked; ``known``: device
    signatures it checked on admission (else none: this process authored the block, and its
    memo of good signatures would spare the import every device check)."""
    best = float("inf")
    for _ in range(repeat):
        forget_good_signatures()
        remember_good_signatures(known or ())
        with tempfile.TemporaryDirectory() as d:
            client = Blockchain(spec, d)
            try:
                t0 = time.perf_counter()
                client.import_block(Block.decode(raw), verified=verified or (), check_time=False)
                best = min(best, time.perf_counter() - t0)
            finally:
                client.close()
    return best


def run(
    n_batches: int = 0,
    per_xt: int = 10,
    readings: int = 100,
    devices: int = 256,
    gateways: int = 8,
) -> dict[str, Any]:
    """``n_batches`` 0 fills the block; otherwise at most that many batches."""
    spec = _spec(devices, gateways)
    alice = Keypair.from_dev_name("Alice")
    threads = native.set_threads(1) if native.available else 1
    with tempfile.TemporaryDirectory() as a:
        author = Blockchain(spec, a)
        # Sign more than fits; the author stops where the block is full.
        want = n_batches or 4_000
        xts, batches = _extrinsics(author, want, per_xt, readings, devices, gateways)
        t0 = time.perf_counter()
        block, res = author.propose(alice, SLOT, NOW, ((b"", x) for x in xts))
        build_s = time.perf_counter() - t0
        gh = author.genesis_hash
        author.close()
    n_xt = len(block.extrinsics) - 1
    assert all(o.success for o in res.outcomes), "a telemetry extrinsic failed"
    included = batches[: min(len(batches), n_xt * per_xt)]
    n_readings = sum(b.count for b in included)
    raw = block.encode()

    import_s = _import(spec, raw)

    # Device signatures of the whole block in one call, as Telemetry.pre_verify does.
    msgs = []
    for i, b in enumerate(included):
        twin = i % devices // MAX_DEVICES_PER_TWIN
        msgs.append(b.message(gh, twin))
    t0 = time.perf_counter()
    oks = native.verify_batch([b.device for b in included], msgs, [b.signature for b in included])
    device_sig_s = time.perf_counter() - t0
    assert all(oks)
    # As a node that admitted the extrinsics by gossip: their signatures and their devices'
    # were checked then (Executive.signature_batch).
    pre = [o.hash for o in res.outcomes]
    triples = [(b.device, m, b.signature) for b, m in zip(included, msgs, strict=True)]
    preverified_s = _import(spec, raw, pre, triples)

    fallback_s = None
    if native.available:
        native.use_native(False)
        try:
            fallback_s = _import(spec, raw)
        finally:
            native.use_native(True)
            native.set_threads(None)
    return {
        "native": native.available,
        "threads": threads,
        "extrinsics": n_xt,
        "batches": len(included),
        "readings": n_readings,
        "block_bytes": len(raw),
        "build_s": build_s,
        "import_s": import_s,
        "commitments_per_s": len(included) / import_s,
        "readings_per_s": n_readings / import_s,
        "block_bytes_per_reading": len(raw) / max(1, n_readings),
        "preverified_s": preverified_s,
        "preverified_readings_per_s": n_readings / preverified_s,
        "device_sig_s": device_sig_s,
        "device_sig_share": device_sig_s / import_s,
        "fallback_s": fallback_s,
        "fallback_readings_per_s": None if fallback_s is None else n_readings / fallback_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=0, help="cap on batches (0: a full block)")
    ap.add_argument("--batches-per-xt", type=int, default=10)
    ap.add_argument(
        "--readings", type=int, default=100, help="readings per batch (committed, not carried)"
    )
    ap.add_argument("--devices", type=int, default=256)
    ap.add_argument("--gateways", type=int, default=8)
    args = ap.parse_args(argv)
    r = run(args.batches, args.batches_per_xt, args.readings, args.devices, args.gateways)
    t = Table(
        title=f"telemetry import: {r['batches']} commitments of {r['readings']:,} readings, "
        f"{r['extrinsics']} extrinsics, {r['block_bytes'] / 1e6:.1f} MB "
        f"(native={r['native']}, threads={r['threads']})"
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("build (author)", f"{r['build_s']:.2f} s")
    t.add_row("import (verify + re-execute + state root + write)", f"{r['import_s']:.2f} s")
    t.add_row("import commitments/s, one core", f"{r['commitments_per_s']:,.0f}")
    t.add_row("import committed readings/s, one core", f"{r['readings_per_s']:,.0f}")
    t.add_row("block bytes per committed reading", f"{r['block_bytes_per_reading']:.2f}")
    t.add_row("import, signatures checked on admission", f"{r['preverified_s']:.2f} s")
    t.add_row("pre-verified readings/s", f"{r['preverified_readings_per_s']:,.0f}")
    t.add_row("all device signatures in one verify_batch", f"{r['device_sig_s']:.3f} s")
    t.add_row("share of import spent on device signatures", f"{r['device_sig_share']:.0%}")
    if r["fallback_s"] is not None:
        t.add_row("import on the pure-Python fallback", f"{r['fallback_s']:.2f} s")
        t.add_row("fallback committed readings/s", f"{r['fallback_readings_per_s']:,.0f}")
        t.add_row("native / fallback", f"{r['fallback_s'] / r['import_s']:.2f}x")
    Console().print(t)
    return r


if __name__ == "__main__":
    main()
