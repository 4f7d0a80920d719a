"""A real node process killed with SIGKILL at random moments while it authors blocks under a
stream of transfers: it must restart every time on its last committed block, lose no block it
had committed, and hold a state that a from-genesis re-execution of its blocks reproduces."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from realnet import free_port

from twinchain.client import RpcClient
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Extrinsic
from twinchain.protocol.jsonrpc import RpcError

KILLS = 20
SENDERS = ["Bob", "Charlie", "Dave", "Eve"]


def start_node(base: Path, port: int, log: Path, p2p_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twinchain",
            "--log",
            "warning",
            "node",
            "--dev",
            "--base-path",
            str(base),
            "--rpc-port",
            str(port),
            "--no-prometheus",
            "--state-pruning",
            "archive",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_rpc(rpc: RpcClient, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_bytes()[-3000:].decode(errors="replace")
            raise AssertionError(f"node exited with {proc.returncode} during start-up:\n{tail}")
        try:
            return rpc.call("chain_getHeader")
        except (RpcError, OSError, Exception):
            time.sleep(0.1)
    raise AssertionError("node did not answer RPC in time")


class TransferStream(threading.Thread):
    """Submits signed transfers as fast as the node takes them until stopped."""

    def __init__(self, rpc: RpcClient, genesis: bytes) -> None:
        super().__init__(daemon=True)
        self.rpc, self.genesis = rpc, genesis
        self.stop = threading.Event()
        self.accepted = 0

    def run(self) -> None:
        dest = Keypair.from_dev_name("Ferdie").public
        keys = [Keypair.from_dev_name(n) for n in SENDERS]
        rt_call = None
        while not self.stop.is_set():
            for kp in keys:
                try:
                    nonce = self.rpc.call("system_accountNextIndex", "0x" + kp.public.hex())
                    if rt_call is None:
                        from twinchain.runtime.runtime import Runtime

                        rt = Runtime()
                        rt_call = rt.call_by_name("Balances", "transfer", dest, 10**12)
                    for k in range(5):
                        xt = Extrinsic.sign(rt_call, kp, nonce + k, self.genesis, rt.spec_version)
                        self.rpc.call("author_submitExtrinsic", "0x" + xt.encode().hex())
                        self.accepted += 1
                except Exception:  # node killed mid-request: keep going until stopped
                    time.sleep(0.05)
            time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("TWINCHAIN_CRASH_SEED", "20261123")))
    base = tmp_path / "node"
    log = tmp_path / "node.log"
    port, p2p_port = free_port(), free_port()
    rpc = RpcClient(f"http://127.0.0.1:{port}")
    genesis = dev_spec().genesis_block().hash
    committed: dict[int, str] = {}  # number -> hash the node reported as finalized
    accepted = 0
    for i in range(KILLS + 1):
        proc = start_node(base, port, log, p2p_port)
        try:
            head = wait_rpc(rpc, proc, log)
            # Every block seen finalized before a kill is still there, with the same hash.
            for n, h in committed.items():
                assert rpc.call("chain_getBlockHash", n) == h, f"block #{n} lost after kill {i}"
            assert int(head["number"], 16) >= max(committed, default=0)
            if i == KILLS:
                break
            stream = TransferStream(rpc, genesis)
            stream.start()
            time.sleep(rng.uniform(0.3, 2.5))
            try:
                fin = rpc.call("chain_getFinalizedHead")
                num = int(rpc.call("chain_getHeader", fin)["number"], 16)
                committed[num] = fin
            except Exception:
                pass
            time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            stream.stop.set()
            stream.join(5)
            accepted += stream.accepted
        except BaseException:
            proc.kill()
            proc.wait(10)
            raise
    # Graceful stop of the last run.
    head = rpc.call("chain_getHeader")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert accepted > 0, "no transfer was ever accepted"
    best_number = int(head["number"], 16)
    assert best_number >= 10, "the node should have authored blocks between kills"

    # Re-execute every block from genesis in a fresh database: same state root at the head.
    node = Blockchain(dev_spec(), base, pruning=None)
    replay = Blockchain(dev_spec(), None, pruning=None)
    try:
        best = node.best
        transfers = 0
        for n in range(1, best.number + 1):
            block = node.blocks.block(node.blocks.hash_at(n))
            assert block is not None
            transfers += len(block.extrinsics) - 1
            replay.import_block(block, check_time=False)
        assert replay.best.hash == best.hash
        assert replay.best.state_root == best.state_root
        assert transfers > 0, "blocks carried no transfers"
    finally:
        node.close()
        replay.close()
