"""Network benchmarks with real node processes on loopback.

* finality latency on the 4-validator devnet, in slots from a block's slot start to the
  moment a node reports it finalized (p50, p99);
* sync speed: a fresh node catching up a 10,000-block chain from one peer, in blocks/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from twinchain.client import RpcClient
from twinchain.devnet import manager
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair


def finality_latency(seconds: float = 60, slot_ms: int = 1000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        manager.up(base, 4, slot_ms)
        try:
            node = manager.load(base)[0]
            rpc = RpcClient(node.rpc_url, timeout=5)
            seen: dict[int, float] = {}
            slots: dict[int, int] = {}
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                fin_hash = rpc.call("chain_getFinalizedHead")
                fin = rpc.call("chain_getHeader", fin_hash)
                n, now_ms = int(fin["number"], 16), time.time() * 1000
                for k in range(max(seen, default=0) + 1, n + 1):
                    h = rpc.call("chain_getHeader", rpc.call("chain_getBlockHash", k))
                    slots[k] = int(h["slot"], 16)
                    seen[k] = now_ms
                time.sleep(0.05)
        finally:
            manager.down(base)
    # Skip the start-up blocks: the network was still forming.
    lat = [(seen[k] - slots[k] * slot_ms) / slot_ms for k in sorted(seen)[5:]]
    lat.sort()
    if not lat:
        raise RuntimeError("no block was finalized during the run")
    return {
        "blocks": len(lat),
        "p50_slots": statistics.median(lat),
        "p99_slots": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
    }


def _node(spec_path: Path, base: Path, rpc: int, p2p: int, boot: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "twinchain", "--log", "warning", "node",
           "--chain", str(spec_path), "--base-path", str(base),
           "--rpc-port", str(rpc), "--port", str(p2p), "--no-prometheus"]  # fmt: skip
    for b in boot:
        cmd += ["--bootnodes", b]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(rpc: RpcClient, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            rpc.call("system_health")
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError("node did not start")


def sync_speed(blocks: int = 10_000) -> dict[str, Any]:
    spec = dev_spec()
    spec.id = "bench_sync"
    alice = Keypair.from_dev_name("Alice")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        spec_path = root / "spec.json"
        spec_path.write_text(json.dumps(spec.to_json()))
        src = Blockchain(spec, root / "a")
        t0 = time.perf_counter()
        for slot in range(1, blocks + 1):
            _, res = src.propose(alice, slot, slot * 1000)
            if slot % 256 == 0 or slot == blocks:
                src.self_finalize(alice, res.hash)
        build_s = time.perf_counter() - t0
        src.close()
        ports = manager.free_ports(4)
        a = _node(spec_path, root / "a", ports[0], ports[1], [])
        b = None
        try:
            ra = RpcClient(f"http://127.0.0.1:{ports[0]}", timeout=5)
            _wait(ra)
            boot = ra.call("system_localListenAddresses")
            b = _node(spec_path, root / "b", ports[2], ports[3], boot)
            rb = RpcClient(f"http://127.0.0.1:{ports[2]}", timeout=5)
            _wait(rb)
            t0 = time.perf_counter()
            while int(rb.call("chain_getHeader")["number"], 16) < blocks:
                if time.perf_counter() - t0 > 600:
                    raise RuntimeError("sync did not finish in 10 minutes")
                time.sleep(0.2)
            sync_s = time.perf_counter() - t0
        finally:
            for p in (a, b):
                if p is not None:
                    p.terminate()
                    p.wait(20)
    return {"blocks": blocks, "build_s": build_s, "sync_s": sync_s, "blocks_per_s": blocks / sync_s}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60, help="finality run length")
    ap.add_argument("--blocks", type=int, default=10_000, help="chain length to sync")
    args = ap.parse_args(argv)
    fin = finality_latency(args.seconds)
    syn = sync_speed(args.blocks)
    t = Table(title="network (real processes on loopback)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("finality latency p50 (4 validators)", f"{fin['p50_slots']:.2f} slots")
    t.add_row("finality latency p99", f"{fin['p99_slots']:.2f} slots")
    t.add_row("blocks measured", str(fin["blocks"]))
    t.add_row(f"sync of {syn['blocks']:,} blocks by a fresh node", f"{syn['sync_s']:.1f} s")
    t.add_row("sync speed", f"{syn['blocks_per_s']:,.0f} blocks/s")
    Console().print(t)
    return {"finality": fin, "sync": syn}


if __name__ == "__main__":
    main()
