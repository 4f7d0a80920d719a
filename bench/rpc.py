"""JSON-RPC throughput against a real dev node process, from one sequential client.

    python -m bench.rpc [--reads 2000] [--extrinsics 2000]

Starts ``twinchain node --dev`` on free ports, then times, each from one client core
(a single thread, one HTTP keep-alive connection, one request in flight):

(a) ``state_getStorage`` of a Balances.Account key: read requests per second;
(b) ``author_submitExtrinsic`` of transfers pre-signed (outside the timing) from every dev
    account with consecutive nonces: extrinsics submitted and pool-validated per second.

The node keeps authoring 1 s blocks meanwhile, as it would in service.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from twinchain.client import Client, RpcClient
from twinchain.primitives.keys import DEV_NAMES, Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.jsonrpc import to_hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(base: str, rpc_port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "twinchain", "--log", "warning", "node", "--dev",
           "--base-path", base, "--rpc-port", str(rpc_port), "--port", str(_free_port()),
           "--no-prometheus"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    with RpcClient(url, timeout=2.0) as rpc:
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"node exited with {proc.returncode}")
            try:
                rpc.call("system_health")
                return
            except Exception:  # not listening yet
                time.sleep(0.2)
    raise RuntimeError("node did not start")


def bench_reads(client: Client, n: int) -> dict[str, Any]:
    key = to_hex(
        client.codec.storage_key("Balances", "Account", (Keypair.from_dev_name("Bob").public,))
    )
    rpc = client.rpc
    for _ in range(min(100, n)):  # warm the connection and the node's caches
        rpc.call("state_getStorage", key)
    t0 = time.perf_counter()
    for _ in range(n):
        if rpc.call("state_getStorage", key) is None:
            raise RuntimeError("Bob's account is missing")
    dt = time.perf_counter() - t0
    return {"n": n, "seconds": dt}


def bench_submits(client: Client, n: int) -> dict[str, Any]:
    signers = [Keypair.from_dev_name(name) for name in DEV_NAMES]
    dest = Keypair.from_dev_name("Alice").public
    call = client.call_function("Balances", "transfer", dest=dest, value=10**9)
    info = client.info
    nonces = {kp.public: client.rpc.next_index(kp.public) for kp in signers}
    raw: list[str] = []
    for i in range(n):  # round-robin over senders, consecutive nonces each
        kp = signers[i % len(signers)]
        nonce = nonces[kp.public]
        nonces[kp.public] += 1
        xt = Extrinsic.sign(call, kp, nonce, info.genesis_hash, info.spec_version)
        raw.append(to_hex(xt.encode()))
    rpc = client.rpc
    t0 = time.perf_counter()
    for x in raw:
        rpc.call("author_submitExtrinsic", x)
    dt = time.perf_counter() - t0
    return {"n": n, "seconds": dt, "senders": len(signers)}


def run(reads: int = 2000, extrinsics: int = 2000) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as base:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _start_node(base, port)
        try:
            _wait_up(url, proc)
            with Client(url) as client:
                return {
                    "reads": bench_reads(client, reads),
                    "submits": bench_submits(client, extrinsics),
                }
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--extrinsics", type=int, default=2000)
    args = ap.parse_args(argv)
    res = run(args.reads, args.extrinsics)
    table = Table(title="JSON-RPC over HTTP keep-alive, one sequential client")
    for col in ("measure", "requests", "seconds", "per second", "mean latency"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    rows = [
        ("state_getStorage (reads)", res["reads"]),
        (f"author_submitExtrinsic ({res['submits']['senders']} senders)", res["submits"]),
    ]
    for label, r in rows:
        table.add_row(
            label,
            str(r["n"]),
            f"{r['seconds']:.2f}",
            f"{r['n'] / r['seconds']:,.0f}",
            f"{r['seconds'] / r['n'] * 1e6:,.0f} µs",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
